"""Snapshots on real files: written in the background, loaded on recovery, verified.

A damaged newest snapshot must fall back to the older one; a snapshot that does not
belong to the log must be refused.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from cosmictron.durability import TX_RECORD_KIND, Snapshot
from cosmictron.durability.snapshot import list_snapshots, write_snapshot
from cosmictron.durability.storage import FILE_STORAGE
from cosmictron.errors import CorruptLog

from .conftest import OpenLayer, flip_byte, recover_all


def build_log_with_snapshots(open_layer: OpenLayer, snapshot_at: list[int], count: int) -> None:
    layer = open_layer()
    recover_all(layer)
    state: dict[str, int] = {}
    for n in range(1, count + 1):
        layer.append(TX_RECORD_KIND, n)
        state = {**state, str(n): n}
        if n in snapshot_at:
            frozen = dict(state)
            layer.request_snapshot(lambda frozen=frozen: frozen)
            layer.wait_snapshots()
    layer.close()


def test_recovery_starts_after_the_newest_snapshot(open_layer: OpenLayer) -> None:
    build_log_with_snapshots(open_layer, [10, 20], 25)
    layer = open_layer()
    recovery = layer.recover()
    assert recovery.snapshot is not None
    assert recovery.snapshot.offset == 20
    assert recovery.snapshot.state == {str(n): n for n in range(1, 21)}
    assert [record.offset for record in recovery.records] == [21, 22, 23, 24, 25]
    assert recovery.last_offset == 25
    assert layer.append(TX_RECORD_KIND, 26) == 26


def test_snapshot_at_the_last_offset_leaves_nothing_to_replay(open_layer: OpenLayer) -> None:
    build_log_with_snapshots(open_layer, [5], 5)
    layer = open_layer()
    recovery = layer.recover()
    assert list(recovery.records) == []
    assert recovery.last_offset == 5
    assert layer.append(TX_RECORD_KIND, 6) == 6


def test_only_the_two_newest_snapshots_are_kept(open_layer: OpenLayer, data_dir: str) -> None:
    build_log_with_snapshots(open_layer, [2, 4, 6, 8], 9)
    offsets = [
        offset for offset, _ in list_snapshots(FILE_STORAGE, os.path.join(data_dir, "snapshots"))
    ]
    assert offsets == [8, 6]


def test_corrupt_newest_snapshot_falls_back_to_the_older_one(
    open_layer: OpenLayer, data_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    build_log_with_snapshots(open_layer, [10, 20], 25)
    (_, newest), _ = list_snapshots(FILE_STORAGE, os.path.join(data_dir, "snapshots"))
    flip_byte(newest, os.path.getsize(newest) - 2)
    recovery = open_layer().recover()
    assert recovery.snapshot is not None and recovery.snapshot.offset == 10
    assert [record.offset for record in recovery.records] == list(range(11, 26))
    assert "skipping damaged snapshot" in caplog.text


def test_every_snapshot_corrupt_means_full_replay(open_layer: OpenLayer, data_dir: str) -> None:
    build_log_with_snapshots(open_layer, [10, 20], 25)
    for _, path in list_snapshots(FILE_STORAGE, os.path.join(data_dir, "snapshots")):
        os.truncate(path, 30)
    recovery = open_layer().recover()
    assert recovery.snapshot is None
    assert len(list(recovery.records)) == 25


def test_snapshot_from_another_log_is_refused(open_layer: OpenLayer, data_dir: str) -> None:
    build_log_with_snapshots(open_layer, [], 10)
    write_snapshot(FILE_STORAGE, os.path.join(data_dir, "snapshots"), Snapshot(5, b"\x01" * 32, {}))
    with pytest.raises(CorruptLog, match="snapshot"):
        recover_all(open_layer())


def test_snapshot_ahead_of_the_log_is_refused(open_layer: OpenLayer, data_dir: str) -> None:
    build_log_with_snapshots(open_layer, [], 3)
    write_snapshot(
        FILE_STORAGE, os.path.join(data_dir, "snapshots"), Snapshot(50, b"\x01" * 32, {})
    )
    with pytest.raises(CorruptLog, match="before the snapshot"):
        recover_all(open_layer())


def test_failing_build_state_is_logged_and_the_layer_keeps_working(
    open_layer: OpenLayer, caplog: pytest.LogCaptureFixture
) -> None:
    layer = open_layer()
    recover_all(layer)
    layer.append(TX_RECORD_KIND, 1)

    def broken() -> object:
        raise RuntimeError("boom")

    layer.request_snapshot(broken)
    layer.wait_snapshots()
    assert "writing the snapshot at offset 1 failed" in caplog.text
    assert layer.statistics().snapshot_count == 0
    assert layer.append(TX_RECORD_KIND, 2) == 2


class _Text(str):
    """A str subclass: the compiled packer leaves the state to msgpack."""


@pytest.mark.parametrize("subclass", [False, True])
def test_a_snapshot_file_holds_msgpacks_bytes_of_the_state(tmp_path: Any, subclass: bool) -> None:
    """Whichever packer wrote it (the compiled one, or msgpack for what that one leaves to
    it, or with ``COSMICTRON_PURE=1``), the payload is ``msgpack.packb(state)``."""
    import msgpack

    from cosmictron.durability.snapshot import SNAPSHOT_HEADER

    name = _Text("item") if subclass else "item"
    rows = [[i, f"name {i}", i * 1.5, None, True, b"\x00\xff"] for i in range(300)]
    state = {"module": [b"source", "app.py"], "tables": [[name, rows, [[0, 301]]]]}
    path = write_snapshot(FILE_STORAGE, str(tmp_path), Snapshot(7, b"h" * 32, state))
    with open(path, "rb") as file:
        payload = file.read()[SNAPSHOT_HEADER.size :]
    assert payload == msgpack.packb(state, use_bin_type=True)
