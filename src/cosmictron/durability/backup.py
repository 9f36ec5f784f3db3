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

**Archived segments** (``log_retention = "archive"``): records ``1..A`` left ``log/``, so
the backup's log starts at ``A + 1``, and it carries what stands in for them
(:func:`ledger_members`): ``ledger/archived.json`` (where the chain and the tree resume),
the tree's stored hashes of the archived leaves (``ledger/tree.hashes``, the prefix
that covers ``1..A``), and the side files' entries up to the cut (the open check starts
from a checkpoint after ``A``). The walk then starts at ``A + 1`` from the manifest's
hash, and a restore is possible only to an offset the log can rebuild from
(:func:`first_restorable`: the snapshot's, and a side-file checkpoint's after ``A``).
"""

from __future__ import annotations

import json
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
from cosmictron.ledger.anchor import ANCHORS_FILE, read_side_anchors
from cosmictron.ledger.archived import ARCHIVED_FILE, read_archived
from cosmictron.ledger.merkle import HASH_SIZE, stored_count
from cosmictron.ledger.verifier import CHECKPOINTS_FILE, read_side_checkpoints

TREE_MEMBER = "ledger/tree.hashes"

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


def ledger_members(data_dir: str, cut_offset: int) -> list[MemberSource]:
    """What a backup carries in place of archived segments (none when nothing is).

    Called under the writer lock with the cut: the side files' entries are taken up to
    the cut; the tree's hashes of the archived leaves never change again.
    """
    try:
        archived = read_archived(data_dir)
    except ValueError as exc:
        raise BackupDamaged(f"the database's {ARCHIVED_FILE} does not parse: {exc}") from None
    segments = list_segments(FILE_STORAGE, os.path.join(data_dir, "log"))
    if archived is None or not segments or segments[0][0] != archived.through + 1:
        return []
    tree_path = os.path.join(data_dir, *TREE_MEMBER.split("/"))
    tree_bytes = stored_count(archived.through) * HASH_SIZE
    members = [_data_member(ARCHIVED_FILE, archived.to_json().encode())]
    if os.path.exists(tree_path) and os.path.getsize(tree_path) >= tree_bytes:
        members.append(MemberSource(TREE_MEMBER, tree_bytes, path=tree_path))
    for name, entries in (
        (CHECKPOINTS_FILE, read_side_checkpoints(data_dir)),
        (ANCHORS_FILE, read_side_anchors(data_dir)),
    ):
        lines = [json.dumps(e, separators=(",", ":")) + "\n" for e in entries]
        kept = [line for e, line in zip(entries, lines, strict=True) if e["seq"] <= cut_offset]
        if kept:
            members.append(_data_member(name, "".join(kept).encode()))
    return members


def _data_member(name: str, data: bytes) -> MemberSource:
    return MemberSource(name.replace(os.sep, "/"), len(data), data=data)


def first_restorable(directory: str, manifest: Manifest) -> tuple[int, int]:
    """``(A, first)``: records ``1..A`` are archived (0: none), and the first offset an
    extracted backup can be restored to (the log before it is not in the backup)."""
    archived = read_archived(directory)
    if archived is None:
        return 0, 0
    after = [int(e["seq"]) for e in read_side_checkpoints(directory) if e["seq"] > archived.through]
    first = max(manifest.snapshot_offset or 0, min(after, default=manifest.cut_offset + 1))
    return archived.through, first


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
        archived = (
            read_archived(directory)
            if ARCHIVED_FILE.replace(os.sep, "/") in manifest.members
            else None
        )
    except ValueError as exc:
        raise BackupDamaged(f"the backup's {ARCHIVED_FILE} does not parse: {exc}") from None
    if archived is not None:
        if snapshot_offset < archived.through or (
            snapshot_offset == archived.through and snapshot_hash != archived.last_hash
        ):
            raise BackupDamaged(
                f"the backup's snapshot at {snapshot_offset} is not after its archived "
                f"records 1..{archived.through}: nothing could replay them"
            )
        walk.last_offset, walk.last_hash = archived.through, archived.last_hash
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

    Segments after it are removed, as is the snapshot if it is after ``offset``, and
    side-file entries of records after it (an archived database's backup carries them),
    so the directory holds the database exactly as of ``offset``.
    """
    for name, read in (
        (CHECKPOINTS_FILE, read_side_checkpoints),
        (ANCHORS_FILE, read_side_anchors),
    ):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            entries = [e for e in read(directory) if e["seq"] <= offset]
            with open(path, "w", encoding="utf-8") as file:
                file.writelines(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
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
