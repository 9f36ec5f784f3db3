"""Backups of a data directory's log: what to copy at a cut, how to check and cut it again.

The container (a tar with a checksummed manifest) is ``archive.py``. This module chooses
what goes in it and checks what comes out:

- At a cut (``PersistenceLayer.cut``: the last offset, its hash, and where its record
  ends in its segment) a backup holds every segment from offset 1, the cut's segment
  only up to the cut's record, and the newest valid snapshot at or before the cut.
- A backup's log is *valid* when its segments are contiguous from offset 1, every frame
  is valid (``segment.py``, with no torn tail allowed anywhere: the archive is complete
  by construction), the chain is unbroken and ends at ``cut_offset`` with ``cut_hash``;
  and its snapshot, if any, is valid (``snapshot.py``), at or before the cut, and hashes
  to the record at its offset. Anything else is ``BackupDamaged`` naming what is wrong.
- An archive comes from outside the process, so its snapshot's state and every log
  record (those the snapshot covers included: restoring to an earlier offset replays
  them) must nest at most ``limits.msgpack_depth_max`` deep (``depth.py``); a deeper one
  is ``BackupDamaged`` naming the member (and the record's offset) before anything walks
  it.
- Restoring to an offset N (at most the cut) keeps every segment up to N's record, cuts
  the one holding it right after that record, and drops the snapshot when it is after
  N: the result is an ordinary data directory whose log ends at N, so the database
  continues the hash chain from there.

The whole log is kept (not only the records after the snapshot) because segments are
never deleted (the ledger's history, ``docs/design/commitlog-format.md``) and because
restoring to an offset before the snapshot needs the records before it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cosmictron import limits
from cosmictron.durability.archive import Manifest, MemberSource
from cosmictron.durability.depth import payload_too_deep, value_too_deep
from cosmictron.durability.record import FRAME_HEADER, Record
from cosmictron.durability.segment import (
    SEGMENT_HEADER_BYTES,
    SegmentReader,
    list_segments,
)
from cosmictron.durability.snapshot import SnapshotDirectory, check_snapshot, read_snapshot
from cosmictron.durability.storage import FILE_STORAGE, Storage
from cosmictron.errors import BackupDamaged, CorruptLog
from cosmictron.ledger import GENESIS_HASH

RECORD_BYTES_MAX = 1 << 40
"""Frames are checked against the file's length, not a configured limit: the archive may
come from a database with a larger ``record_bytes_max`` than the restoring one."""


def log_members(
    data_dir: str,
    cut_offset: int,
    segment_base_offset: int,
    segment_bytes: int,
    snapshot: tuple[int, str] | None,
    storage: Storage = FILE_STORAGE,
) -> list[MemberSource]:
    """The snapshot and log segments of ``data_dir`` that hold its state at ``cut_offset``.

    Args:
        data_dir: the database's data directory (``log/``, ``snapshots/``).
        cut_offset: the last record to include (``PersistenceLayer.cut``).
        segment_base_offset: the segment the cut's record is in (or the empty segment
            after it); only its first ``segment_bytes`` are taken.
        segment_bytes: where the cut's record ends in that segment.
        snapshot: ``(offset, path)`` from ``pinned_snapshot_at_or_before``, whose pin
            must be held until the archive is written.

    Every byte named here is immutable while the archive is written: segments before
    the cut's are sealed, the cut's record ends at ``segment_bytes`` in an append-only
    file, and snapshot files are written once and the chosen one is pinned.
    """
    members = []
    if snapshot is not None:
        offset, path = snapshot
        members.append(
            MemberSource(f"snapshots/{offset:020d}.snap", os.path.getsize(path), path=path)
        )
    for base, path in list_segments(storage, os.path.join(data_dir, "log")):
        if base > cut_offset:
            break
        size = segment_bytes if base == segment_base_offset else os.path.getsize(path)
        members.append(MemberSource(f"log/{base:020d}.log", size, path=path))
    return members


@contextmanager
def pinned_snapshot_at_or_before(
    snapshots: SnapshotDirectory, offset: int
) -> Iterator[tuple[int, str] | None]:
    """The newest valid snapshot at or before ``offset``, kept on disk while the block runs.

    A damaged snapshot is skipped: an older one, or the whole log, gives the same state.
    """
    with snapshots.pinned_at_or_before(offset) as candidates:
        chosen = None
        for snapshot_offset, path in candidates:
            try:
                check_snapshot(snapshots.storage, path, snapshot_offset)
            except (ValueError, OSError):
                continue
            chosen = (snapshot_offset, path)
            break
        yield chosen


def verify_log(
    directory: str,
    manifest: Manifest,
    visit: Callable[[Record], None] | None = None,
    storage: Storage = FILE_STORAGE,
) -> None:
    """Check that the extracted log replays from offset 1 exactly to the cut.

    Args:
        visit: called with every record in order; without it, the records the snapshot
            covers are checked (frames and chain) but their bodies are not decoded.

    Raises:
        BackupDamaged: a frame, the chain, the cut or the snapshot does not check.
    """
    snapshot_offset = manifest.snapshot_offset or 0
    snapshot_hash = GENESIS_HASH
    if manifest.snapshot_offset is not None:
        name = f"snapshots/{snapshot_offset:020d}.snap"
        try:
            snapshot = read_snapshot(storage, os.path.join(directory, name), snapshot_offset)
        except ValueError as exc:
            raise BackupDamaged(f"the backup's snapshot {name} is not valid: {exc}") from None
        snapshot_hash = snapshot.last_hash
        if value_too_deep(snapshot.state, limits.msgpack_depth_max):
            raise BackupDamaged(
                f"the backup's snapshot {name} nests arrays and maps more than "
                f"{limits.msgpack_depth_max} deep (limits.msgpack_depth_max)"
            )
    if snapshot_offset > manifest.cut_offset:
        raise BackupDamaged(
            f"the backup's snapshot at {snapshot_offset} is after its cut {manifest.cut_offset}"
        )
    skip_through = 0 if visit is not None else snapshot_offset
    walk = _LogWalk(directory, skip_through, snapshot_hash, storage)
    try:
        for record in walk:
            if record.offset == snapshot_offset and record.hash != snapshot_hash:
                raise BackupDamaged(
                    f"the backup's snapshot does not belong to its log: the record at "
                    f"{snapshot_offset} does not hash to the snapshot's last_hash"
                )
            if visit is not None:
                visit(record)
    except CorruptLog as exc:
        raise BackupDamaged(f"the backup's log is damaged: {exc}") from None
    if walk.last_offset != manifest.cut_offset or walk.last_hash != manifest.cut_hash:
        raise BackupDamaged(
            f"the backup's log ends at offset {walk.last_offset}, but its manifest says the cut is "
            f"offset {manifest.cut_offset} with hash {manifest.cut_hash.hex()[:16]}…"
        )
    check_log_depth(directory, storage)


def check_log_depth(directory: str, storage: Storage = FILE_STORAGE) -> None:
    """Refuse an extracted log with a record nested past ``limits.msgpack_depth_max``.

    Runs after the walk verified every frame, so frame lengths are trusted here.

    Raises:
        BackupDamaged: naming the segment member and the record's offset.
    """
    depth_max = limits.msgpack_depth_max
    log_dir = os.path.join(directory, "log")
    for base, path in list_segments(storage, log_dir):
        data = storage.read_file(path)
        position, offset = SEGMENT_HEADER_BYTES, base
        while position + FRAME_HEADER.size <= len(data):
            length = FRAME_HEADER.unpack_from(data, position)[0]
            start = position + FRAME_HEADER.size
            if payload_too_deep(memoryview(data)[start : start + length], depth_max):
                member = f"log/{os.path.basename(path)}"
                raise BackupDamaged(
                    f"the backup's {member} holds a record (offset {offset}) nesting arrays "
                    f"and maps more than {depth_max} deep (limits.msgpack_depth_max)"
                )
            position, offset = start + length, offset + 1


def truncate_log(directory: str, offset: int, snapshot_offset: int | None) -> None:
    """Cut a verified extracted log right after the record at ``offset`` (point in time).

    Segments after it are removed, as is the snapshot if it is after ``offset``, so the
    directory holds the database exactly as of ``offset``.
    """
    if snapshot_offset is not None and snapshot_offset > offset:
        os.unlink(os.path.join(directory, "snapshots", f"{snapshot_offset:020d}.snap"))
    log_dir = os.path.join(directory, "log")
    for base, path in list_segments(FILE_STORAGE, log_dir):
        if base > offset:
            os.unlink(path)
            continue
        end = _frame_end(path, base, offset)
        if end is not None:
            os.truncate(path, end)


class _LogWalk:
    """Every record of an extracted log, no torn tail allowed (each segment whole).

    Afterwards ``last_offset`` and ``last_hash`` are where the chain ended, counting the
    records the snapshot covers, which are checked but not yielded.
    """

    def __init__(
        self, directory: str, skip_through: int, skip_hash: bytes, storage: Storage
    ) -> None:
        self.log_dir = os.path.join(directory, "log")
        self.skip_through = skip_through
        self.skip_hash = skip_hash
        self.storage = storage
        self.last_offset = 0
        self.last_hash = GENESIS_HASH

    def __iter__(self) -> Iterator[Record]:
        for base, path in list_segments(self.storage, self.log_dir):
            expected = self.last_offset + 1
            if base != expected:
                raise CorruptLog(path, 0, f"expected a segment starting at offset {expected}", base)
            reader = SegmentReader(
                self.storage,
                path,
                base,
                self.last_hash,
                RECORD_BYTES_MAX,
                is_last=False,
                skip_through=self.skip_through,
                skip_hash=self.skip_hash,
            )
            yield from reader
            assert reader.last_hash is not None, "the chain starts at GENESIS_HASH"
            self.last_offset, self.last_hash = reader.next_offset - 1, reader.last_hash


def _frame_end(path: str, base: int, offset: int) -> int | None:
    """Where the frame of record ``offset`` ends in a verified segment, or None if past it."""
    with open(path, "rb") as file:
        data = file.read()
    position, current = SEGMENT_HEADER_BYTES, base
    while position < len(data):
        length = FRAME_HEADER.unpack_from(data, position)[0]
        position += FRAME_HEADER.size + length
        if current == offset:
            return position
        current += 1
    return None
