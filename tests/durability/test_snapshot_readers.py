"""Readers of snapshot files beside the snapshot writer (issue 23's race).

The snapshot thread writes ``.tmp`` files, renames them and prunes old snapshots while
backups read the directory. A writer appends and forces a snapshot after every few
records; readers pin the newest snapshot at or before the durable offset, in a tight
loop, and read it whole. Every read must find a valid snapshot once one exists, and
every requested snapshot must be written: a reader that deletes the writer's temp, or a
writer that prunes the file a reader chose, fails one of the two. Before the fix (a
listing that deleted every ``.tmp`` and pruning that ignored readers) this failed on
every run, on both storages.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from cosmictron.durability import (
    TX_RECORD_KIND,
    DurabilityConfig,
    FileStorage,
    PersistenceConfig,
    PersistenceLayer,
    Storage,
)
from cosmictron.durability.backup import pinned_snapshot_at_or_before
from cosmictron.durability.snapshot import read_snapshot
from cosmictron.testing import MemoryStorage

STRESS_SECONDS = 2.0
SOAK_RUNS = 200
SOAK_RUN_SECONDS = 0.5


def stress(storage: Storage, data_dir: str, seconds: float) -> tuple[int, int]:
    """Run a writer with forced snapshots and two readers; return (written, pinned reads)."""
    layer = PersistenceLayer(
        PersistenceConfig(data_dir), DurabilityConfig(fsync_policy="never"), storage=storage
    )
    list(layer.recover().records)
    errors: list[BaseException] = []
    stop = threading.Event()
    written_through = [0]
    reads = [0]
    found = [0]
    requested = [0]

    def write() -> None:
        try:
            n = 0
            while not stop.is_set():
                for _ in range(3):
                    n += 1
                    layer.append(TX_RECORD_KIND, {"n": n, "pad": "x" * 200})
                state = {"through": n, "pad": "y" * 4096}
                if layer.request_snapshot(lambda state=state: state):
                    requested[0] += 1
                layer.wait_snapshots()
                written_through[0] = n
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    def read() -> None:
        try:
            while not stop.is_set():
                floor = written_through[0]
                durable = layer.durable_offset
                with pinned_snapshot_at_or_before(layer.snapshots, durable) as chosen:
                    reads[0] += 1
                    if floor == 0:
                        continue
                    if chosen is None:
                        # Legitimate only when two newer snapshots replaced every one at or
                        # before ``durable`` before the pin was taken.
                        newest = [o for o, _ in layer.snapshots.files()][:2]
                        assert len(newest) == 2 and min(newest) > durable, (
                            f"no snapshot at or before {durable} though one at {floor} "
                            f"exists and the directory holds {newest}"
                        )
                        continue
                    found[0] += 1
                    offset, path = chosen
                    assert offset <= durable, (offset, durable)
                    snapshot = read_snapshot(storage, path, offset)  # still there: pinned
                    assert snapshot.state["through"] == offset
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.01)
    stop.set()
    for thread in threads:
        thread.join()
    statistics = layer.statistics()
    layer.close()
    if errors:
        raise errors[0]
    assert statistics.snapshots_failed == 0
    assert statistics.snapshot_count == requested[0], (
        f"{requested[0] - statistics.snapshot_count} requested snapshots were lost"
    )
    return statistics.snapshot_count, found[0]


def data_dir_for(kind: str, tmp_path: Path) -> tuple[Storage, str]:
    if kind == "file":
        return FileStorage(), os.fspath(tmp_path / "data")
    return MemoryStorage(), "/data"


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_readers_and_the_snapshot_writer_never_lose_a_file(tmp_path: Path, kind: str) -> None:
    storage, data_dir = data_dir_for(kind, tmp_path)
    written, reads = stress(storage, data_dir, STRESS_SECONDS)
    assert written > 10 and reads > 10, (written, reads)


@pytest.mark.soak
@pytest.mark.parametrize("run", range(SOAK_RUNS))
@pytest.mark.parametrize("kind", ["file", "memory"])
def test_readers_and_the_snapshot_writer_soak(tmp_path: Path, kind: str, run: int) -> None:
    storage, data_dir = data_dir_for(kind, tmp_path)
    stress(storage, data_dir, SOAK_RUN_SECONDS)


def test_a_pinned_snapshot_outlives_pruning_and_goes_at_a_later_write(tmp_path: Path) -> None:
    storage, data_dir = data_dir_for("file", tmp_path)
    layer = PersistenceLayer(
        PersistenceConfig(data_dir), DurabilityConfig(fsync_policy="never"), storage=storage
    )
    list(layer.recover().records)

    def snapshot_after(n: int) -> None:
        layer.append(TX_RECORD_KIND, n)
        layer.request_snapshot(lambda: {"through": n})
        layer.wait_snapshots()

    snapshot_after(1)
    with pinned_snapshot_at_or_before(layer.snapshots, 1) as chosen:
        assert chosen is not None and chosen[0] == 1
        snapshot_after(2)
        snapshot_after(3)  # would prune the one at 1, but it is pinned
        assert [o for o, _ in layer.snapshots.files()] == [3, 2, 1]
    snapshot_after(4)
    assert [o for o, _ in layer.snapshots.files()] == [4, 3]
    layer.close()


def test_opening_removes_an_interrupted_writes_temp_and_listing_never_does(
    tmp_path: Path,
) -> None:
    storage, data_dir = data_dir_for("file", tmp_path)
    layer = PersistenceLayer(PersistenceConfig(data_dir), storage=storage)
    list(layer.recover().records)
    temp = Path(layer.snapshot_dir) / f"{7:020d}.snap.tmp"
    temp.write_bytes(b"half a snapshot")
    assert layer.snapshots.files() == []
    assert temp.exists(), "listing must not delete a temp: it may be the writer's"
    layer.close()
    PersistenceLayer(PersistenceConfig(data_dir), storage=storage).close()
    assert not temp.exists(), "opening (under the lock, no writer yet) removes leftovers"
