"""Damaged data directories, opened through ``Database.open``.

A torn tail (the write a crash cut off) is truncated and the database carries on. Damage
anywhere else is ``CorruptLog``, naming the file and byte, and leaves every file as it
was, so an operator can still inspect or repair it. A damaged newest snapshot is skipped
for the one before it (or for the log alone), and no data is lost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import random
from pathlib import Path

import pytest

import cosmictron
from cosmictron import CorruptLog, Database, DurabilityConfig
from cosmictron.durability.record import FRAME_HEADER_BYTES
from cosmictron.testing import flip_byte, frame_spans

MODULE = """
from cosmictron import ReducerContext, field, reducer, table


@table(name="entry")
class Entry:
    id: int = field(primary_key=True)
    text: str = ""


@reducer
def put(ctx: ReducerContext, id: int) -> None:
    ctx.db.entry.insert(Entry(id=id, text=f"entry {id} " + "x" * (id % 37)))
"""

FAST = DurabilityConfig(fsync_policy="never")
SYNCED = DurabilityConfig(fsync_policy="always")
SEGMENT_HEADER_BYTES = 16


@pytest.fixture
def module_path(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt_module.py"
    path.write_text(MODULE)
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def populate(
    data_dir: Path,
    module_path: Path,
    count: int,
    durability: DurabilityConfig = FAST,
    snapshot_at: tuple[int, ...] = (),
) -> None:
    """Commit ``put(1) .. put(count)``, snapshotting after the offsets in ``snapshot_at``."""
    with Database.open(data_dir, module_path, durability=durability) as database:
        for n in range(1, count + 1):
            database.call("put", n)
            if n in snapshot_at:
                database.snapshot()
        assert database.tx_offset == count


def assert_holds(database: Database, count: int) -> None:
    """The database holds exactly ``put(1) .. put(count)`` and is consistent."""
    assert database.tx_offset == count
    assert sorted(row.id for row in database.rows("entry")) == list(range(1, count + 1))
    for row in database.rows("entry"):
        assert row.text == f"entry {row.id} " + "x" * (row.id % 37)
    database.check_invariants()


def assert_accepts_writes(data_dir: Path, count: int) -> None:
    """Reopened at ``count``: it takes new writes, and they survive another reopen."""
    with Database.open(data_dir, durability=FAST) as database:
        assert_holds(database, count)
        database.call("put", count + 1)
        database.call("put", count + 2)
        assert_holds(database, count + 2)
    with Database.open(data_dir, durability=FAST) as database:
        assert_holds(database, count + 2)


def segments(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "log").glob("*.log"))


def snapshots(data_dir: Path) -> list[Path]:
    """Snapshot files, newest first."""
    return sorted((data_dir / "snapshots").glob("*.snap"), reverse=True)


def frame_positions(path: Path) -> list[tuple[int, int]]:
    return frame_spans(path)


def digest(data_dir: Path) -> dict[str, str]:
    """Every file's content hash, except the lock file (its content is the holder's)."""
    return {
        str(path.relative_to(data_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(data_dir.rglob("*"))
        if path.is_file() and path.name != "LOCK"
    }


def open_corrupt(data_dir: Path) -> CorruptLog:
    """Open must fail with CorruptLog, change no file, and release the directory."""
    before = digest(data_dir)
    with pytest.raises(CorruptLog) as first:
        Database.open(data_dir, durability=FAST)
    assert digest(data_dir) == before, "a refused open changed the data directory"
    # The lock was released: a second attempt fails the same way, not with DatabaseInUse.
    with pytest.raises(CorruptLog) as second:
        Database.open(data_dir, durability=FAST)
    assert str(second.value) == str(first.value)
    return first.value


# -- torn tails -----------------------------------------------------------------------


@pytest.mark.parametrize("cut", ["frame_header", "payload", "last_byte"])
def test_a_torn_last_record_is_dropped_and_writing_resumes(
    data_dir: Path, module_path: Path, cut: str
) -> None:
    populate(data_dir, module_path, 20)
    (last,) = segments(data_dir)
    start, length = frame_positions(last)[-1]
    keep = {
        "frame_header": start + 3,
        "payload": start + FRAME_HEADER_BYTES + length // 2,
        "last_byte": start + FRAME_HEADER_BYTES + length - 1,
    }[cut]
    os.truncate(last, keep)

    assert_accepts_writes(data_dir, 19)


@pytest.mark.parametrize("garbage", ["random", "zeros", "half_frame_copy"])
def test_garbage_after_the_last_record_is_dropped(
    data_dir: Path, module_path: Path, garbage: str
) -> None:
    populate(data_dir, module_path, 20)
    (last,) = segments(data_dir)
    data = last.read_bytes()
    start, length = frame_positions(last)[-1]
    tail = {
        "random": random.Random(7).randbytes(300),
        "zeros": bytes(4096),  # a preallocated, never-written tail
        "half_frame_copy": data[start : start + FRAME_HEADER_BYTES + length // 2],
    }[garbage]
    with open(last, "ab") as file:
        file.write(tail)

    assert_accepts_writes(data_dir, 20)
    # The garbage is gone, not just skipped: the new records follow the old ones directly.
    assert frame_positions(segments(data_dir)[-1])[-1][0] > start


def test_a_torn_tail_after_a_segment_rollover(data_dir: Path, module_path: Path) -> None:
    durability = dataclasses.replace(FAST, segment_bytes_max=600)
    populate(data_dir, module_path, 40, durability)
    files = segments(data_dir)
    assert len(files) >= 3
    start, _ = frame_positions(files[-1])[-1]
    os.truncate(files[-1], start + 1)

    assert_accepts_writes(data_dir, 39)


# -- damage in the middle -------------------------------------------------------------


@pytest.mark.parametrize("part", ["length", "crc", "payload", "durable"])
def test_a_flipped_byte_mid_log_is_corrupt_log(
    data_dir: Path, module_path: Path, part: str
) -> None:
    # Under always every later frame vouches that transaction 10 was synced before it.
    populate(data_dir, module_path, 20, SYNCED)
    (segment,) = segments(data_dir)
    start, length = frame_positions(segment)[9]  # transaction 10 of 20
    flip_byte(
        segment,
        {
            "length": start,
            "crc": start + 4,
            "durable": start + 8,
            "payload": start + FRAME_HEADER_BYTES + length // 2,
        }[part],
    )

    error = open_corrupt(data_dir)

    assert Path(error.path) == segment
    assert error.byte_offset == start
    assert str(segment) in str(error)
    assert f"byte {start}" in str(error)


def test_damage_in_a_never_synced_tail_is_cut_and_kept(data_dir: Path, module_path: Path) -> None:
    """Under never, nothing vouches for unsynced records: damage there is a torn tail.

    Recovery cuts the log at the damage, as SQLite and PostgreSQL do, but first keeps the
    bytes it cuts in ``<segment>.torn-<byte>``, so nothing is destroyed.
    """
    with Database.open(data_dir, module_path, durability=FAST) as database:
        for n in range(1, 21):
            database.call("put", n)
            if n == 12:
                database.snapshot()  # syncs the log through 12: later frames vouch for it
    (segment,) = segments(data_dir)
    start, length = frame_positions(segment)[14]  # transaction 15, never synced
    original = segment.read_bytes()
    flip_byte(segment, start + FRAME_HEADER_BYTES + length // 2)
    with Database.open(data_dir, durability=FAST) as database:
        assert_holds(database, 14)
    (kept,) = (data_dir / "log").glob("*.torn-*")
    assert kept.name == f"{segment.name}.torn-{start}"
    assert len(kept.read_bytes()) == len(original) - start
    assert_accepts_writes(data_dir, 14)

    start, length = frame_positions(segment)[5]  # transaction 6: synced by the snapshot
    flip_byte(segment, start + FRAME_HEADER_BYTES + length // 2)
    open_corrupt(data_dir)


def test_a_flipped_byte_in_an_older_segment_is_corrupt_log(
    data_dir: Path, module_path: Path
) -> None:
    durability = dataclasses.replace(FAST, segment_bytes_max=600)
    populate(data_dir, module_path, 40, durability)
    files = segments(data_dir)
    assert len(files) >= 3
    start, length = frame_positions(files[1])[1]
    flip_byte(files[1], start + FRAME_HEADER_BYTES + length // 2)

    error = open_corrupt(data_dir)

    assert Path(error.path) == files[1]
    assert error.byte_offset == start
    assert str(files[1]) in str(error) and f"byte {start}" in str(error)


def test_a_missing_middle_segment_is_corrupt_log(data_dir: Path, module_path: Path) -> None:
    durability = dataclasses.replace(FAST, segment_bytes_max=600)
    populate(data_dir, module_path, 40, durability)
    files = segments(data_dir)
    assert len(files) >= 4
    missing = files[2]
    missing.unlink()

    error = open_corrupt(data_dir)

    # The error points at the segment after the hole and names the missing file.
    assert Path(error.path) == files[3]
    assert missing.name in str(error)


def test_a_missing_middle_segment_is_corrupt_log_even_behind_a_snapshot(
    data_dir: Path, module_path: Path
) -> None:
    """A hole after the snapshot's offset cannot be covered by the snapshot."""
    durability = dataclasses.replace(FAST, segment_bytes_max=600)
    populate(data_dir, module_path, 60, durability, snapshot_at=(5,))
    files = segments(data_dir)
    assert len(files) >= 4
    files[-2].unlink()

    open_corrupt(data_dir)


# -- snapshots ------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_a_corrupt_newest_snapshot_falls_back_to_the_older_one(
    data_dir: Path, module_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    populate(data_dir, module_path, 25, snapshot_at=(10, 20))
    newest, older = snapshots(data_dir)
    assert (newest.name, older.name) == (f"{20:020d}.snap", f"{10:020d}.snap")
    size = newest.stat().st_size
    if damage == "flip":
        flip_byte(newest, size // 2)
    else:
        os.truncate(newest, size // 2 if damage == "truncate" else 0)

    with caplog.at_level(logging.WARNING):
        assert_accepts_writes(data_dir, 25)
    assert any(str(newest) in record.getMessage() for record in caplog.records)


def test_every_snapshot_corrupt_replays_the_whole_log(data_dir: Path, module_path: Path) -> None:
    populate(data_dir, module_path, 25, snapshot_at=(10, 20))
    for snapshot in snapshots(data_dir):
        flip_byte(snapshot, snapshot.stat().st_size // 2)

    assert_accepts_writes(data_dir, 25)


def test_automatic_snapshots_with_a_corrupt_newest_still_recover_everything(
    data_dir: Path, module_path: Path
) -> None:
    durability = dataclasses.replace(FAST, snapshot_interval_tx=7, segment_bytes_max=600)
    populate(data_dir, module_path, 50, durability)
    newest = snapshots(data_dir)[0]
    flip_byte(newest, newest.stat().st_size - 1)

    with Database.open(data_dir, durability=durability) as database:
        assert_holds(database, 50)


def test_database_in_use_is_not_reported_as_corruption(data_dir: Path, module_path: Path) -> None:
    populate(data_dir, module_path, 3)
    with (
        Database.open(data_dir, durability=FAST),
        pytest.raises(cosmictron.DatabaseInUse),
    ):
        Database.open(data_dir, durability=FAST)
