"""Log segments: the files that hold the commit log, and how recovery reads them.

A segment is ``<data_dir>/log/{base_offset:020d}.log``; zero-padding makes name order
offset order. Byte layout::

    0                8                16
    +----------------+----------------+-------+-------+-----
    | magic          | base_offset    | frame | frame | ...
    +----------------+----------------+-------+-------+-----
    magic        8 bytes  b"CTLOG\\x00\\x02\\x00" (format version 2: frames carry the
                          durability watermark; version 1 segments are refused)
    base_offset  u64le    offset of the segment's first record; equals the file name
    frame        see ``record.py``

A segment is created complete (header written to a temporary file, synced, renamed, the
directory synced), so a segment never has a partial header. The writer closes a segment
once it passes ``segment_bytes_max``, syncing it first, so only the last segment can hold
unsynced bytes.

Recovery rule:

1. Segments are read in offset order. Offsets must be contiguous across segments: a
   segment whose base_offset is past the next expected offset means a missing segment,
   and is ``CorruptLog`` naming the missing range.
2. In any segment but the last, a frame that is not valid (``record.py``) is
   ``CorruptLog(path, byte_offset, reason, tx_offset)``.
3. In the last segment, a frame that is short, too long, zero-length or fails its crc at
   offset N is a *torn tail* (writes the crash cut off or lost, never synced) unless some
   later byte starts a frame whose crc verifies and whose ``durable`` watermark is at
   least N: that frame was written after N was synced, so the damage is to durable data
   and recovery refuses with ``CorruptLog``. (The scan tests only the positions a
   header's length before each ``PAYLOAD_PREFIX``, since every payload starts with it.)
   Verifying frames with a lower watermark are unsynced debris (a disk may write back
   pages out of order, so a later unsynced write can survive an earlier one). A torn
   tail is read a second time (unstable reads are refused, not truncated), its bytes are
   kept in ``<segment>.torn-<byte>``, and the segment is truncated there and synced;
   appending resumes. No byte is ever destroyed.
4. A frame whose crc verifies but whose content is wrong (does not decode, wrong offset,
   wrong prev_hash) can never come from a torn write: it is ``CorruptLog`` anywhere.

Reading in batches: replay of a log of small transactions is dominated by per-record
interpreter overhead, not by the C work (crc32, msgpack, sha256). So the reader walks
up to ``BATCH_FRAMES`` frame headers (the only per-record Python loop: each frame's
length says where the next begins), then checks the batch's crcs, decodes its payloads,
hashes them and compares offsets and the chain with ``map`` and list equality. Only a
batch that fails a check is read again record by record, to name the first bad one; the
rules above are unchanged, and what is yielded is the same.
"""

from __future__ import annotations

import functools
import operator
import os
import struct
from collections.abc import Callable, Iterator
from hashlib import sha256 as _sha256
from zlib import crc32 as _crc32

from msgpack import unpackb as _unpackb

from cosmictron.durability.files import write_file_durably
from cosmictron.durability.record import (
    FIELD_COUNT,
    FORMAT_VERSION,
    FRAME_HEADER,
    FRAME_HEADER_BYTES,
    PAYLOAD_PREFIX,
    RECORD_KINDS,
    Record,
    RecordError,
    decode_header,
    decode_payload,
    plausible_frame_durable,
    record_hash,
)
from cosmictron.durability.storage import Storage
from cosmictron.errors import CorruptLog
from cosmictron.ledger.record_format import LEGACY_FIELD_COUNT, LEGACY_FORMAT_VERSION

SEGMENT_MAGIC = b"CTLOG\x00\x02\x00"
SEGMENT_HEADER = struct.Struct("<8sQ")
SEGMENT_HEADER_BYTES = SEGMENT_HEADER.size
SEGMENT_SUFFIX = ".log"

BATCH_FRAMES = 32
"""Frames recovery checks together (see ``SegmentReader.batches``). Measured on a log of
200k one-row transactions: 32 frames per batch read it in 2.64 µs a record, 128 in
2.96, 4096 in 5.7 (a large batch's decoded records fall out of the CPU cache before they
are used), the record-at-a-time reader in 3.03."""

_VERSION, _KIND, _OFFSET, _PREV_HASH, _BODY = (operator.itemgetter(i) for i in range(5))
_digest = operator.methodcaller("digest")
_new_record = functools.partial(tuple.__new__, Record)
"""``Record`` from a 5-tuple, without the generated ``__new__``'s Python frame."""
_UNPACK_KWARGS = {"raw": False, "strict_map_key": False}
_RECORD_FORMATS = {FORMAT_VERSION: FIELD_COUNT, LEGACY_FORMAT_VERSION: LEGACY_FIELD_COUNT}
"""Record format versions the reader accepts, with their field counts (``record.py``)."""

_read_frames: Callable[..., tuple[list[Record], int, int, bytes | None]] | None = None
"""The compiled frame reader (``_frames.pyx``), or None: not built, or ``COSMICTRON_PURE``
is set. It only accepts frames that pass every check below; where it stops, the Python
reader takes over and applies the recovery rule (docs/design/hot-path.md)."""
if not os.environ.get("COSMICTRON_PURE"):
    try:
        from cosmictron.durability._frames import read_frames as _compiled_read_frames
    except ImportError:  # built without a compiler: the pure-Python reader
        pass
    else:
        _read_frames = _compiled_read_frames
COMPILED = _read_frames is not None
"""Whether replay uses the compiled frame reader (tests check both ways are run)."""


def segment_path(log_dir: str, base_offset: int) -> str:
    """Return the path of the segment whose first record is ``base_offset``."""
    return os.path.join(log_dir, f"{base_offset:020d}{SEGMENT_SUFFIX}")


def list_segments(
    storage: Storage, log_dir: str, *, remove_leftovers: bool = False
) -> list[tuple[int, str]]:
    """Return ``(base_offset, path)`` for every segment, in offset order.

    ``remove_leftovers`` (recovery only, before any writer runs) deletes temporary files
    from an interrupted segment creation: they were never renamed, so no record was ever
    written to them. Anyone listing a live log (a backup) must leave them alone: one may
    be the writer's next segment, about to be renamed.
    """
    segments = []
    for name in storage.list_directory(log_dir):
        path = os.path.join(log_dir, name)
        if name.endswith(".tmp"):
            if remove_leftovers:
                storage.unlink(path)
            continue
        stem = name.removesuffix(SEGMENT_SUFFIX)
        if name.endswith(SEGMENT_SUFFIX) and len(stem) == 20 and stem.isdigit():
            segments.append((int(stem), path))
    segments.sort()
    return segments


def create_segment(storage: Storage, log_dir: str, base_offset: int) -> int:
    """Create a segment durably and return a handle open for appending."""
    path = segment_path(log_dir, base_offset)
    write_file_durably(path, [SEGMENT_HEADER.pack(SEGMENT_MAGIC, base_offset)], storage)
    return storage.open_write(path)


def open_segment_for_append(storage: Storage, path: str, valid_bytes: int, torn: bool) -> int:
    """Open the last segment for writing after its last frame, cutting a torn tail off.

    Args:
        path: the last segment.
        valid_bytes: where its last valid frame ends.
        torn: whether the bytes after it are a torn tail (cut and synced) rather than
            zeros the writer allocated ahead (kept, and written over).
    """
    handle = storage.open_write(path)
    if torn and storage.size(handle) != valid_bytes:
        storage.truncate(handle, valid_bytes)
        storage.sync(handle, "fsync")
    return handle


def check_header(path: str, data: bytes, base_offset: int) -> None:
    """Refuse a segment whose header is not ours or disagrees with its name."""
    if len(data) < SEGMENT_HEADER_BYTES:
        raise CorruptLog(path, 0, "segment header is incomplete", base_offset)
    magic, header_base = SEGMENT_HEADER.unpack_from(data)
    if magic != SEGMENT_MAGIC:
        raise CorruptLog(path, 0, f"bad segment magic {magic!r}", base_offset)
    if header_base != base_offset:
        raise CorruptLog(
            path, 8, f"header says base offset {header_base}, file name says {base_offset}"
        )


class SegmentReader:
    """Reads and verifies one segment's records, applying the recovery rule.

    Iterate it for the records; afterwards ``valid_bytes`` is where the last valid frame
    ends, ``torn_at`` the byte where a torn tail began (``None`` if there was none), and
    ``next_offset`` and ``last_hash`` continue the chain.

    Args:
        storage: where the segment is.
        path: the segment file.
        base_offset: from the file name.
        prev_hash: the hash the first record must name, or ``None`` when the previous
            segments were skipped (a snapshot covers them) and the chain starts here.
        record_bytes_max: the largest frame length believed.
        is_last: whether a torn tail is allowed here.
        skip_through: records up to this offset are covered by a snapshot: their frames
            and chain are verified but their bodies are not decoded, and they are not
            yielded.
        skip_hash: the hash the record at ``skip_through`` must have (the snapshot's).
    """

    def __init__(
        self,
        storage: Storage,
        path: str,
        base_offset: int,
        prev_hash: bytes | None,
        record_bytes_max: int,
        is_last: bool,
        skip_through: int = 0,
        skip_hash: bytes | None = None,
    ) -> None:
        self.path = path
        self.skip_through = skip_through
        self.skip_hash = skip_hash
        self.next_offset = base_offset
        self.last_hash = prev_hash
        self.record_bytes_max = record_bytes_max
        self.is_last = is_last
        self.valid_bytes = SEGMENT_HEADER_BYTES
        self.torn_at: int | None = None
        self.data = storage.read_file(path)
        check_header(path, self.data, base_offset)

    def __iter__(self) -> Iterator[Record]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[Record]]:
        """The segment's records, verified, in lists of up to ``BATCH_FRAMES``.

        Replay works a batch at a time (see "Reading in batches" above): the frame walk
        is the only per-record Python loop; crc, decoding, hashing and the chain are
        checked over the whole batch by C-level ``map`` and list comparisons. A batch
        that fails any of them is read again one record at a time, which raises the
        precise ``CorruptLog``; a bad frame ends the segment after the records before it
        are yielded.
        """
        data = self.data
        view = memoryview(data)
        size = len(data)
        position = SEGMENT_HEADER_BYTES
        unpack_header = FRAME_HEADER.unpack_from
        record_bytes_max = self.record_bytes_max
        read_frames = _read_frames if type(data) is bytes else None
        while position < size:
            if read_frames is not None and self.next_offset < self.skip_through:
                # Frames a snapshot covers: verified in C, no records built. The kernel
                # stops before the last covered one, which the reader below checks
                # against the snapshot's hash (and names, if it is not).
                _, end, self.next_offset, self.last_hash = read_frames(
                    data,
                    position,
                    record_bytes_max,
                    self.skip_through - self.next_offset,
                    self.next_offset,
                    self.last_hash,
                    _unpackb,
                    _UNPACK_KWARGS,
                    RECORD_KINDS,
                    _RECORD_FORMATS,
                    Record,
                    False,
                )
                if end != position:
                    position = self.valid_bytes = end
                    continue
                # The first frame from here failed a check: the reader below names it.
            elif read_frames is not None and self.next_offset > self.skip_through:
                records, end, self.next_offset, self.last_hash = read_frames(
                    data,
                    position,
                    record_bytes_max,
                    BATCH_FRAMES,
                    self.next_offset,
                    self.last_hash,
                    _unpackb,
                    _UNPACK_KWARGS,
                    RECORD_KINDS,
                    _RECORD_FORMATS,
                    Record,
                )
                if records:
                    position = self.valid_bytes = end
                    yield records
                    continue
                # The first frame from here failed a check: the reader below names it.
            reason = None
            starts: list[int] = []
            payloads: list[memoryview] = []
            watermarks: list[memoryview] = []
            crcs: list[int] = []
            frame = position
            while frame < size and len(starts) < BATCH_FRAMES:
                start = frame + FRAME_HEADER_BYTES
                if start > size:
                    reason = "frame header is incomplete"
                    break
                length, crc, _ = unpack_header(data, frame)
                end = start + length
                if length == 0:
                    reason = "frame length is zero"
                    break
                if length > record_bytes_max:
                    reason = f"frame length {length} exceeds record_bytes_max"
                    break
                if end > size:
                    reason = f"frame of {length} bytes runs past the end of the file"
                    break
                starts.append(frame)
                watermarks.append(view[frame + 8 : start])
                payloads.append(view[start:end])
                crcs.append(crc)
                frame = end
            if list(map(_crc32, watermarks, map(_crc32, payloads))) != crcs:
                good = next(
                    i
                    for i, (w, p, c) in enumerate(zip(watermarks, payloads, crcs, strict=True))
                    if _crc32(w, _crc32(p)) != c
                )
                reason, frame = "crc mismatch", starts[good]
                del starts[good:], payloads[good:]
            if payloads:
                records = self._verify_batch(starts, payloads)
                position = self.valid_bytes = starts[-1] + FRAME_HEADER_BYTES + len(payloads[-1])
                if records:
                    yield records
            if reason is not None:
                self._refuse_unless_torn(frame, reason)
                return

    def _verify_batch(self, starts: list[int], payloads: list[memoryview]) -> list[Record]:
        """Verify consecutive valid frames; return the records past ``skip_through``."""
        first = self.next_offset
        covered = max(0, min(len(payloads), self.skip_through - first + 1))
        if covered:
            if (
                max(map(len, payloads[:covered])) < 4096
                and self._chain_holds(first, payloads[:covered], want_records=False) is not None
            ):
                if first + covered - 1 == self.skip_through and self.last_hash != self.skip_hash:
                    raise CorruptLog(
                        self.path,
                        starts[covered - 1],
                        "the snapshot's last_hash is not this record's hash",
                        self.skip_through,
                    )
            else:
                for position, payload in zip(starts[:covered], payloads[:covered], strict=True):
                    self.last_hash = self._check_covered(position, payload)
                    self.next_offset += 1
        live = payloads[covered:]
        if not live:
            return []
        records = self._chain_holds(self.next_offset, live, want_records=True)
        if records is None:
            records = []
            for position, payload in zip(starts[covered:], live, strict=True):
                record = self._check(position, payload)
                records.append(record)
                self.last_hash = record.hash
                self.next_offset += 1
        return records

    def _chain_holds(
        self, first: int, payloads: list[memoryview], want_records: bool
    ) -> list[Record] | None:
        """Decode and check ``payloads`` (offsets from ``first``) as a whole.

        Returns the records (an empty list unless ``want_records``) and advances
        ``next_offset`` and ``last_hash``; None, changing nothing, if any record is not
        well formed or breaks the chain (the caller then finds which, one by one).
        """
        try:
            # A comprehension, not ``map`` over a ``partial``: keyword arguments through
            # a partial cost a dict merge per call, doubling msgpack's time here.
            fields = [_unpackb(p, raw=False, strict_map_key=False) for p in payloads]
        except Exception:  # msgpack raises several unrelated types for bad input.
            return None
        count = len(fields)
        if set(map(type, fields)) != {list} or set(map(len, fields)) != {FIELD_COUNT}:
            return None
        versions = list(map(_VERSION, fields))
        kinds = list(map(_KIND, fields))
        offsets = list(map(_OFFSET, fields))
        prev_hashes = list(map(_PREV_HASH, fields))
        try:
            # Exact types, as ``record.py`` checks one record: True == 1 and 2.0 == 2, so
            # set and list equality alone would let a bool version or a float offset in.
            if (
                set(versions) != {FORMAT_VERSION}
                or set(map(type, versions)) != {int}
                or set(map(type, offsets)) != {int}
                or set(map(type, kinds)) != {int}
                or not RECORD_KINDS.issuperset(kinds)
                or offsets != list(range(first, first + count))
            ):
                return None
        except TypeError:  # an unhashable version: not a record
            return None
        digests = list(map(_digest, map(_sha256, payloads)))
        if self.last_hash is None:
            if prev_hashes[1:] != digests[:-1]:
                return None
        elif prev_hashes[0] != self.last_hash or prev_hashes[1:] != digests[:-1]:
            return None
        self.next_offset = first + count
        self.last_hash = digests[-1]
        if not want_records:
            return []
        bodies = map(_BODY, fields)
        return list(
            map(_new_record, zip(offsets, kinds, prev_hashes, bodies, digests, strict=True))
        )

    def _check(self, position: int, payload: memoryview) -> Record:
        try:
            kind, offset, prev_hash, body = decode_payload(payload)
        except RecordError as exc:
            raise CorruptLog(self.path, position, str(exc), self.next_offset) from None
        self._check_chain(position, offset, prev_hash)
        return Record(offset, kind, prev_hash, body, record_hash(payload))

    def _check_chain(self, position: int, offset: int, prev_hash: bytes) -> None:
        """The record must be the next offset and name the previous record's hash."""
        expected = self.next_offset
        if offset != expected:
            raise CorruptLog(self.path, position, f"record says offset {offset}", expected)
        if self.last_hash is not None and prev_hash != self.last_hash:
            raise CorruptLog(
                self.path, position, "prev_hash is not the previous record's hash", expected
            )

    def _check_covered(self, position: int, payload: memoryview) -> bytes:
        """Verify a record the snapshot covers, without decoding its body; return its hash."""
        expected = self.next_offset
        try:
            # Small records decode faster whole than through a streaming header read.
            if len(payload) < 4096:
                _, offset, prev_hash, _ = decode_payload(payload)
            else:
                _, offset, prev_hash = decode_header(payload)
        except RecordError as exc:
            raise CorruptLog(self.path, position, str(exc), expected) from None
        self._check_chain(position, offset, prev_hash)
        digest = record_hash(payload)
        if expected == self.skip_through and digest != self.skip_hash:
            raise CorruptLog(
                self.path, position, "the snapshot's last_hash is not this record's hash", expected
            )
        return digest

    def _refuse_unless_torn(self, position: int, reason: str) -> None:
        """Decide whether a bad frame in the last segment is a torn tail (rule 3)."""
        if not self.is_last:
            raise CorruptLog(self.path, position, reason, self.next_offset)
        data = self.data
        if not data.count(0, position) < len(data) - position:
            return  # only zeros follow: space the writer allocated ahead, not damage
        expected = self.next_offset
        # Every payload starts with PAYLOAD_PREFIX, so only the bytes before one of its
        # occurrences can start a frame: find() jumps between them at C speed instead of
        # testing every byte of what may be megabytes of damage.
        later = data.find(PAYLOAD_PREFIX, position + 1 + FRAME_HEADER_BYTES)
        while later != -1:
            start = later - FRAME_HEADER_BYTES
            durable = plausible_frame_durable(data, start, self.record_bytes_max)
            if durable is not None and durable >= expected:
                raise CorruptLog(
                    self.path,
                    position,
                    f"{reason}; the frame at byte {start} was written after offset "
                    f"{expected} was synced, so this is damage to durable data, not a torn "
                    "tail",
                    expected,
                )
            later = data.find(PAYLOAD_PREFIX, later + 1)
        self.torn_at = position
