"""Recovery: the newest valid snapshot, then every record after it, verified.

The records are yielded lazily so the host applies them while they are read, and a long
log never sits in memory twice. The log's tail is only repaired (a torn tail truncated)
and opened for appending once the iterator is exhausted, so appending before replay has
finished is refused. The per-segment rule (what is torn, what is corrupt) is in
``segment.py``; this module adds what spans segments and snapshots:

- Offsets are contiguous across segments; a gap is ``CorruptLog`` naming the missing range.
- Segments wholly before the snapshot are not read: the snapshot stands in for them, and
  checking the full history is the ledger's ``verify``, not every restart's job.
- The snapshot must belong to this log: the record at ``offset`` hashes to its
  ``last_hash`` and the record at ``offset + 1`` names it as ``prev_hash``, and the log must
  reach ``offset`` (a snapshot is written only after the log is synced through it).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cosmictron.durability.files import write_file_durably
from cosmictron.durability.record import Record
from cosmictron.durability.segment import SegmentReader, list_segments, segment_path
from cosmictron.durability.snapshot import Snapshot
from cosmictron.durability.storage import Storage
from cosmictron.errors import CorruptLog
from cosmictron.ledger import GENESIS_HASH

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogTail:
    """Where appending resumes: handed to the writer when replay is exhausted.

    ``path`` is ``None`` when there is no segment yet and the writer must create one.
    """

    path: str | None
    valid_bytes: int
    next_offset: int
    last_hash: bytes
    torn: bool = False


class Recovery:
    """What :meth:`PersistenceLayer.recover` returns.

    Attributes:
        snapshot: the newest valid snapshot, or ``None`` (also after ``release_snapshot``).
        records: the verified records after the snapshot, in offset order.
        last_offset: the last valid offset (0 for an empty log); final once ``records``
            is exhausted.
    """

    def __init__(
        self,
        storage: Storage,
        log_dir: str,
        snapshot: Snapshot | None,
        record_bytes_max: int,
        finish: Callable[[LogTail], None],
    ) -> None:
        self.storage = storage
        self.log_dir = log_dir
        self.snapshot = snapshot
        self.record_bytes_max = record_bytes_max
        self.last_offset = snapshot.offset if snapshot is not None else 0
        self._finish = finish
        self.batches: Iterator[list[Record]] = self._replay()
        """The same records in lists, as the segments are checked (``SegmentReader.batches``);
        iterate this or ``records``, not both."""
        self.records: Iterator[Record] = itertools.chain.from_iterable(self.batches)

    def release_snapshot(self) -> None:
        """Drop the snapshot, its state applied and ``batches`` exhausted.

        The persistence layer keeps this object (to refuse a second ``recover``), and a
        decoded state holds a list per row: kept, it doubled the memory of the rows and
        made the first collection after replay walk all of them (0.26 s for 200k rows).
        """
        self.snapshot = None

    def _replay(self) -> Iterator[list[Record]]:
        snapshot = self.snapshot
        snapshot_offset = snapshot.offset if snapshot is not None else 0
        snapshot_hash = snapshot.last_hash if snapshot is not None else GENESIS_HASH
        segments = list_segments(self.storage, self.log_dir, remove_leftovers=True)
        if not segments:
            if snapshot_offset:
                raise CorruptLog(
                    self.log_dir, 0, f"no log segments, but a snapshot at {snapshot_offset}"
                )
            self._finish(LogTail(None, 0, 1, GENESIS_HASH))
            return
        first = self._first_segment_index(segments, snapshot_offset + 1)
        base_offset, _ = segments[first]
        expected = base_offset
        last_hash: bytes | None = GENESIS_HASH if base_offset == 1 else None
        reader = None
        for index in range(first, len(segments)):
            base_offset, path = segments[index]
            if base_offset != expected:
                raise CorruptLog(
                    path,
                    0,
                    _gap_reason(self.log_dir, expected, base_offset),
                    expected,
                )
            is_last = index == len(segments) - 1
            reader = SegmentReader(
                self.storage,
                path,
                base_offset,
                last_hash,
                self.record_bytes_max,
                is_last,
                skip_through=snapshot_offset,
                skip_hash=snapshot_hash,
            )
            for batch in reader.batches():
                head = batch[0]
                if (
                    head.offset <= snapshot_offset + 1 <= batch[-1].offset
                    and batch[snapshot_offset + 1 - head.offset].prev_hash != snapshot_hash
                ):
                    raise CorruptLog(
                        path,
                        0,
                        "prev_hash does not match the snapshot's last_hash",
                        snapshot_offset + 1,
                    )
                self.last_offset = batch[-1].offset
                yield batch
            expected, last_hash = reader.next_offset, reader.last_hash
        assert reader is not None
        if expected - 1 < snapshot_offset:
            raise CorruptLog(
                reader.path,
                reader.valid_bytes,
                f"the log ends at offset {expected - 1}, before the snapshot at {snapshot_offset}",
                expected,
            )
        if reader.torn_at is not None:
            self._keep_torn_tail(reader.path, reader.data, reader.torn_at, expected)
        self._finish(
            LogTail(
                reader.path,
                reader.valid_bytes,
                expected,
                last_hash or snapshot_hash,
                torn=reader.torn_at is not None,
            )
        )

    def _keep_torn_tail(self, path: str, data: bytes, torn_at: int, offset: int) -> None:
        """Confirm a torn tail with a second read, and keep its bytes before truncation.

        A tail that reads differently twice is refused rather than cut: a flaky read
        must never destroy a record the disk holds intact. The bytes cut off go to
        ``<segment>.torn-<byte>`` first, so truncating loses nothing an operator could
        still want; recovery ignores such files.
        """
        if self.storage.read_file(path) != data:
            raise CorruptLog(
                path,
                torn_at,
                "the segment read differently twice, so its tail cannot be judged (the disk "
                "or its cache returns unstable data); nothing was truncated",
                offset,
            )
        kept = f"{path}.torn-{torn_at}"
        # Trailing zeros are allocation the writer made ahead, and carry nothing.
        write_file_durably(kept, [data[torn_at:].rstrip(b"\0")], self.storage)
        logger.warning(
            "truncating the torn tail of %s at byte %d; its %d bytes are kept in %s",
            path,
            torn_at,
            len(data) - torn_at,
            kept,
        )

    def _first_segment_index(self, segments: list[tuple[int, str]], start_offset: int) -> int:
        """The segment holding ``start_offset``: the last one whose base is at or below it."""
        candidates = [i for i, (base, _) in enumerate(segments) if base <= start_offset]
        if not candidates:
            base_offset, path = segments[0]
            raise CorruptLog(
                path, 0, _gap_reason(self.log_dir, start_offset, base_offset), start_offset
            )
        return candidates[-1]


def _gap_reason(log_dir: str, expected: int, base_offset: int) -> str:
    if base_offset < expected:
        return f"segment starts at offset {base_offset}, overlapping records before {expected}"
    return (
        f"records {expected}..{base_offset - 1} are missing; expected a segment "
        f"{segment_path(log_dir, expected)}"
    )
