"""Archiving log segments below a snapshot, with their records still provable.

``log_retention = "archive"`` bounds ``log/``: after each snapshot, the snapshot thread
moves every sealed segment whose records all lie at or below

- the snapshot's offset (recovery starts from the snapshot and never reads them), and
- the size of the newest checkpoint already in the side file ``ledger/checkpoints``
  (so the database's open check, which starts at that checkpoint, never needs them, and
  the tree below it is the one a signed checkpoint vouches for)

and below every anchor record whose ``ledger/anchors`` entry is not written yet,
to ``log_archive_dir`` (default ``<data_dir>/archive/log``). Before the first move, the
tree's stored hashes are synced (they are now the only copy of those leaves' hashes in
the data directory) and ``ledger/archived.json`` is written (``ledger/archived.py``): the
state ``verify`` resumes from. A crash between the two leaves the segments in ``log/``
and a manifest that is ignored until they move; a crash between moves leaves a segment
in both places at worst (the copy in ``log/`` is removed only after the archived copy is
synced), never in neither.

What this does not do: a backup of such a database holds only the segments still in
``log/`` and its snapshot; restoring one needs the archived segments too (not built:
``docs/guide/ledger.md``, "Retention").
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
from typing import Any

from cosmictron.durability.files import fsync_directory
from cosmictron.durability.ledger_writer import LedgerWriter
from cosmictron.ledger.archived import ArchivedRange, read_archived, write_archived
from cosmictron.ledger.logread import FRAME_HEADER, SEGMENT_HEADER, list_segments
from cosmictron.ledger.record_format import ORIGIN, PREV_HASH, TIME_US, unpack_fields
from cosmictron.ledger.signing import KeyRange, KeyRing
from cosmictron.ledger.verifier import read_side_checkpoints

logger = logging.getLogger(__name__)

ARCHIVE_DIR = os.path.join("archive", "log")


def archive_dir(data_dir: str, configured: str | None) -> str:
    return configured if configured is not None else os.path.join(data_dir, ARCHIVE_DIR)


def archive_below(
    data_dir: str, snapshot_offset: int, ledger: LedgerWriter, destination: str
) -> int:
    """Move the segments wholly below ``snapshot_offset`` and the last side-file
    checkpoint to ``destination``; return the last archived seq (0: nothing moved)."""
    log_dir = os.path.join(data_dir, "log")
    segments = list_segments(log_dir)
    side = read_side_checkpoints(data_dir)
    checkpointed = max((int(e.get("size", 0)) for e in side), default=0)
    tree = ledger.tree
    if tree is None:
        return 0
    limit = min(snapshot_offset, checkpointed, tree.size)
    # An anchor record whose ledger/anchors entry is not written yet stays in log/: once
    # archived, only that entry lets verify check it (and an anchor in log/ that stamps
    # an archived checkpoint is checked against the side file's note).
    unwritten = ledger.unwritten_side()[1]
    if unwritten:
        limit = min(limit, min(int(e["seq"]) for e in unwritten) - 1)
    chosen: list[str] = []
    through = 0
    for (_, path), (next_base, _) in itertools.pairwise(segments):
        if next_base - 1 > limit:
            break
        chosen.append(path)
        through = next_base - 1
    if not chosen:
        return 0
    previous = read_archived(data_dir)
    if previous is not None and previous.through >= through:
        return 0
    first_live = os.path.join(log_dir, f"{through + 1:020d}.log")
    fields = unpack_fields(_first_payload(first_live))
    sync = getattr(tree.store, "sync", None)
    if sync is not None:
        sync()
    archived = ArchivedRange(
        through=through,
        last_hash=fields[PREV_HASH],
        last_time_us=fields[TIME_US],
        origin=fields[ORIGIN],
        frontier=tree.frontier_at(through),
        keys=archived_keys(ledger.ring, previous, through, read_side_checkpoints(data_dir)),
        joined_at=previous.joined_at if previous is not None else 0,
        joined_frontier=previous.joined_frontier if previous is not None else [],
    )
    os.makedirs(destination, exist_ok=True)
    write_archived(data_dir, archived)
    for path in chosen:
        _move(path, destination)
    fsync_directory(log_dir)
    logger.info("archived records 1..%d of %s to %s", through, data_dir, destination)
    return through


def archived_keys(
    ring: KeyRing, previous: ArchivedRange | None, through: int, side: list[dict[str, Any]]
) -> list[KeyRange]:
    """The key ranges of records ``1..through``: the ring's, with the previous archive's
    ``first`` for a key it already knew, else the first side-file checkpoint that lists
    the key (every checkpoint lists the keys valid at it, so each side-file checkpoint
    the key signed is covered).

    After an open the ring knows each key only from the side file's last checkpoint on
    (the open check reads no further back), so its ``first`` is that checkpoint's seq;
    an archive written then would name no key for the records below it, and ``verify``
    would refuse their side-file checkpoints. The previous archive knew where each of
    its keys began, and keys it lists that the ring no longer holds stay as they were.
    """
    earlier = {r.key.fingerprint: r for r in previous.keys} if previous is not None else {}
    ranges = {r.key.fingerprint: r for r in ring.ranges()}
    found: list[KeyRange] = []
    for fingerprint, old in earlier.items():
        current = ranges.get(fingerprint)
        if current is None:
            found.append(old)
        elif current.ended_at is not None and current.ended_at <= through:
            found.append(KeyRange(current.key, old.first, current.last, current.ended_at))
        else:
            found.append(KeyRange(current.key, old.first))
    listed: dict[str, int] = {}
    for entry in side:
        for text in entry.get("keys", []):
            listed.setdefault(text, int(entry["seq"]))
    for r in ring.ranges():  # as ``KeyRing.as_of`` does, from the adjusted first
        first = min(r.first, listed.get(r.key.to_text(), r.first))
        if r.key.fingerprint in earlier or first > through:
            continue
        if r.ended_at is not None and r.ended_at <= through:
            found.append(KeyRange(r.key, first, r.last, r.ended_at))
        else:
            found.append(KeyRange(r.key, first))
    return found


def _first_payload(path: str) -> bytes:
    """The first record's payload of a segment (read from the file, not the whole file)."""
    with open(path, "rb") as file:
        head = file.read(SEGMENT_HEADER.size + FRAME_HEADER.size)
        length = FRAME_HEADER.unpack_from(head, SEGMENT_HEADER.size)[0]
        return file.read(length)


def _move(path: str, destination: str) -> None:
    """Move a sealed segment: rename when on one file system, else copy, sync, unlink."""
    target = os.path.join(destination, os.path.basename(path))
    try:
        os.rename(path, target)
    except OSError:
        shutil.copyfile(path, target)
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(path)
    fsync_directory(destination)


__all__ = ["ARCHIVE_DIR", "archive_below", "archive_dir", "archived_keys"]
