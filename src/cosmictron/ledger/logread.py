"""Reading a data directory's commit log as raw payloads, for the verifier.

The verifier reads the log itself instead of going through ``durability/``'s recovery:
it is a second, independent reader of the format (so a bug in one is caught by the
other), and it must report damage as a finding, never repair it. The byte layout is
``durability/segment.py`` and ``durability/record.py``'s: segments
``<data_dir>/log/<base offset, 20 digits>.log`` of a 16-byte header (magic, base offset)
then frames ``u32 length, u32 crc32, u64 durable watermark, payload``.

A frame that does not check at the end of the last segment is a torn tail (a crash cut
the write off; the database truncates it on its next open): reading stops there and
``torn_at`` says so. Anywhere else it is damage, reported as :class:`LogDamage`.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

SEGMENT_MAGIC = b"CTLOG\x00\x02\x00"
SEGMENT_HEADER = struct.Struct("<8sQ")
FRAME_HEADER = struct.Struct("<IIQ")
SEGMENT_SUFFIX = ".log"


class LogDamage(Exception):
    """The log cannot be read past a point: ``seq`` is the first record not read."""

    def __init__(self, seq: int, path: str, byte_offset: int, reason: str) -> None:
        super().__init__(f"{path} at byte {byte_offset}: {reason}")
        self.seq = seq
        self.path = path
        self.byte_offset = byte_offset
        self.reason = reason


@dataclass
class RawRecord:
    """One frame's payload and where it is; ``seq`` is its position in the log."""

    seq: int
    payload: bytes
    path: str
    byte_offset: int


def list_segments(log_dir: str) -> list[tuple[int, str]]:
    """``(base offset, path)`` of every segment, in order."""
    found = []
    try:
        names = os.listdir(log_dir)
    except FileNotFoundError:
        return []
    for name in names:
        stem = name.removesuffix(SEGMENT_SUFFIX)
        if name.endswith(SEGMENT_SUFFIX) and len(stem) == 20 and stem.isdigit():
            found.append((int(stem), os.path.join(log_dir, name)))
    return sorted(found)


class LogReader:
    """Iterates a log's payloads from ``start_seq``; afterwards ``torn_at`` and ``last_seq``.

    Raises:
        LogDamage: (while iterating) a missing segment, a bad header, or a bad frame
            anywhere but the last segment's tail.
    """

    def __init__(self, data_dir: str, start_seq: int = 1) -> None:
        self.log_dir = os.path.join(data_dir, "log")
        self.start_seq = start_seq
        self.torn_at: tuple[str, int] | None = None
        self.last_seq = 0

    def __iter__(self) -> Iterator[RawRecord]:
        segments = list_segments(self.log_dir)
        if not segments:
            return
        first = 0
        for index, (base, _) in enumerate(segments):
            if base <= self.start_seq:
                first = index
        expected = segments[first][0]
        if expected > self.start_seq:
            # Records before the first segment are missing; when they were archived the
            # caller starts after them (``ledger/archived.py``) and this never fires.
            raise LogDamage(
                self.start_seq,
                segments[0][1],
                0,
                f"records {self.start_seq}..{expected - 1} are missing",
            )
        for index in range(first, len(segments)):
            base, path = segments[index]
            if base != expected:
                raise LogDamage(expected, path, 0, f"records {expected}..{base - 1} are missing")
            is_last = index == len(segments) - 1
            for record in self._read_segment(path, base, is_last):
                expected = record.seq + 1
                self.last_seq = record.seq
                if record.seq >= self.start_seq:
                    yield record

    def _read_segment(self, path: str, base: int, is_last: bool) -> Iterator[RawRecord]:
        with open(path, "rb") as file:
            data = file.read()
        if len(data) < SEGMENT_HEADER.size:
            raise LogDamage(base, path, 0, "segment header is incomplete")
        magic, header_base = SEGMENT_HEADER.unpack_from(data)
        if magic != SEGMENT_MAGIC or header_base != base:
            raise LogDamage(base, path, 0, "segment header is not this segment's")
        position = SEGMENT_HEADER.size
        seq = base
        size = len(data)
        view = memoryview(data)
        while position < size:
            reason = None
            start = position + FRAME_HEADER.size
            if start > size:
                reason = "frame header is incomplete"
            else:
                length, crc, durable = FRAME_HEADER.unpack_from(data, position)
                end = start + length
                if length == 0:
                    reason = "frame length is zero"
                elif end > size:
                    reason = "frame runs past the end of the file"
                elif zlib.crc32(durable.to_bytes(8, "little"), zlib.crc32(view[start:end])) != crc:
                    reason = "crc mismatch"
            if reason is not None:
                if is_last and not _valid_frame_after(data, position):
                    if data.count(0, position) != size - position:
                        self.torn_at = (path, position)
                    return
                raise LogDamage(seq, path, position, reason)
            yield RawRecord(seq, bytes(view[start:end]), path, position)
            seq += 1
            position = end


def _valid_frame_after(data: bytes, position: int) -> bool:
    """Whether a whole frame that checks starts after ``position``: then it is damage."""
    for prefix in (b"\x9a\x02", b"\x95\x01"):
        found = data.find(prefix, position + 1 + FRAME_HEADER.size)
        while found != -1:
            start = found - FRAME_HEADER.size
            length, crc, durable = FRAME_HEADER.unpack_from(data, start)
            end = found + length
            if length > 0 and end <= len(data):
                body_crc = zlib.crc32(memoryview(data)[found:end])
                if zlib.crc32(durable.to_bytes(8, "little"), body_crc) == crc:
                    return True
            found = data.find(prefix, found + 1)
    return False
