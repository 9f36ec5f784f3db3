"""The commit-log record: one transaction as written, framed and hash-chained.

Byte layout of one frame (all integers little-endian)::

    0      4        8                16
    +------+--------+----------------+-----------------------------+
    | len  | crc32  | durable        | payload (len bytes)          |
    +------+--------+----------------+-----------------------------+
    len      u32  payload length in bytes, 1 .. record_bytes_max
    crc32    u32  zlib.crc32 of payload followed by the 8 bytes of ``durable``
    durable  u64  the highest offset the writer knew to be synced when it wrote this
                  frame (the durability watermark). It is not part of the record (not
                  hashed): it lets recovery tell damage to synced records, which a later
                  frame vouches for, from a torn unsynced tail (``segment.py``).
    payload       msgpack.packb([version, kind, offset, prev_hash, body, origin, time_us,
                                 hash_alg, key_fp, signature], use_bin_type=True)
                 version    int, FORMAT_VERSION (2); version 1 (0.8) records, the first
                            five fields only, are read as legacy records (see below)
                 kind       int, TX_RECORD_KIND (0) for a transaction, MODULE_RECORD_KIND
                            (1) for a module update, or one of the ledger's kinds
                            (``cosmictron.ledger.record_format.LEDGER_KINDS``: keys,
                            checkpoints, anchors, the migration marker), which the host
                            does not apply (``RECORD_KINDS``); the host gives its bodies
                            their meaning (``host/records.py``). Any other kind is a
                            record this version cannot apply: refused, never skipped
                 offset     int, the record's offset (sequence number); the first is 1
                 prev_hash  32 bytes, the hash of the record at offset - 1, or
                            GENESIS_HASH (32 zero bytes) for offset 1
                 body       any msgpack value; the host's transaction
                 origin ..  the ledger's fields: the log's identity, the commit time, the
                 signature  hash algorithm, the signing key and the signature
                            (``cosmictron.ledger.record_format`` defines them)

Legacy (version 1) records are accepted so that a 0.8 log opens: the ledger then writes
a migration marker record, and the records before it verify as a hash chain only.

The hash of a record is ``sha256(payload)`` (:func:`cosmictron.ledger.record_hash`).

A frame is *valid* when: the 16-byte header is complete; ``0 < len <= record_bytes_max``; the
payload is complete (and so starts with ``PAYLOAD_PREFIX``, b"\\x9a\\x02", or a legacy
record's b"\\x95\\x01"); its crc32 matches; it decodes to a 10-element array with version
2 (or a 5-element one with version 1) and a kind in ``RECORD_KINDS``;
its offset is one more than the previous record's; and its prev_hash equals the previous
record's hash. The segment module (``segment.py``) says what recovery does with a frame
that is not valid.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, NamedTuple

import msgpack

from cosmictron.ledger import HASH_BYTES, record_hash
from cosmictron.ledger.record_format import (
    FIELD_COUNT,
    FORMAT_VERSION,
    HASH_ALGORITHM,
    LEDGER_KINDS,
    LEGACY_FIELD_COUNT,
    LEGACY_FORMAT_VERSION,
    MODULE_KIND,
    TX_KIND,
)

TX_RECORD_KIND = TX_KIND
"""The kind of an ordinary transaction record."""
MODULE_RECORD_KIND = MODULE_KIND
"""The kind of a module update (hot-swap): the records after it use the new schema."""
RECORD_KINDS = frozenset({TX_RECORD_KIND, MODULE_RECORD_KIND}) | LEDGER_KINDS
"""Every kind this version writes and replays. A record of another kind (from a newer
version, or damage that kept its crc) is ``CorruptLog`` with its offset: skipping it would
open a database that silently lacks a transaction."""

FRAME_HEADER = struct.Struct("<IIQ")
FRAME_HEADER_BYTES = FRAME_HEADER.size
_DURABLE = struct.Struct("<Q")

PAYLOAD_PREFIX = b"\x9a\x02"
"""The first two bytes of every payload: msgpack's 10-element array, then version 2."""
LEGACY_PAYLOAD_PREFIX = b"\x95\x01"
"""The same for a version-1 (0.8) record: a 5-element array, then version 1."""

_crc32 = zlib.crc32
_packb = msgpack.packb
_unpackb = msgpack.unpackb
_Unpacker = msgpack.Unpacker


class Record(NamedTuple):
    """One decoded, verified record, as recovery yields it."""

    offset: int
    kind: int
    prev_hash: bytes
    body: Any
    hash: bytes


class RecordError(ValueError):
    """A payload is not a record; ``segment.py`` turns this into ``CorruptLog``."""


def encode_payload(
    kind: int,
    offset: int,
    prev_hash: bytes,
    body: Any,
    origin: str = "",
    time_us: int = 0,
    key_fp: bytes | None = None,
    signature: Any = None,
) -> bytes:
    """Return the payload bytes of a record (see the layout above).

    >>> payload = encode_payload(TX_RECORD_KIND, 1, bytes(32), {"x": 1})
    >>> decode_payload(payload)[:2], decode_payload(payload)[3]
    ((0, 1), {'x': 1})
    """
    fields = [FORMAT_VERSION, kind, offset, prev_hash, body, origin, time_us, HASH_ALGORITHM]
    return _packb([*fields, key_fp, signature], use_bin_type=True)


def payload_crc(payload: bytes | memoryview) -> int:
    """The crc32 of the payload alone; ``frame_crc`` extends it when the frame is written."""
    return _crc32(payload)


def frame_crc(payload_crc_value: int, durable: int) -> int:
    """The frame's crc32: the payload's, extended over the ``durable`` watermark."""
    return _crc32(_DURABLE.pack(durable), payload_crc_value)


def encode_frame(payload: bytes, durable: int = 0) -> bytes:
    """Return the whole frame (header + payload); the writer sends the two parts separately."""
    crc = frame_crc(_crc32(payload), durable)
    return FRAME_HEADER.pack(len(payload), crc, durable) + payload


def decode_payload(payload: bytes | memoryview) -> tuple[int, int, bytes, Any]:
    """Decode a payload whose crc already matched.

    Returns:
        ``(kind, offset, prev_hash, body)``.

    Raises:
        RecordError: the payload is not a version-1 record.
    """
    try:
        fields = _unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input.
        raise RecordError(f"payload does not decode: {exc}") from None
    if type(fields) is not list or len(fields) not in (FIELD_COUNT, LEGACY_FIELD_COUNT):
        raise RecordError(f"payload is not a {FIELD_COUNT}-element array")
    version, kind, offset, prev_hash, body = fields[:5]
    _check_header_fields(version, kind, offset, prev_hash, len(fields))
    return kind, offset, prev_hash, body


def decode_header(payload: bytes | memoryview) -> tuple[int, int, bytes]:
    """Decode a payload's ``(kind, offset, prev_hash)`` without decoding its body.

    Recovery uses this for records a snapshot already covers: their chain is checked, but
    building their rows would be wasted work.

    Raises:
        RecordError: the payload is not a version-1 record.
    """
    unpacker = _Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(payload)
    try:
        count = unpacker.read_array_header()
        if count not in (FIELD_COUNT, LEGACY_FIELD_COUNT):
            raise RecordError(f"payload is not a {FIELD_COUNT}-element array")
        version, kind, offset, prev_hash = (unpacker.unpack() for _ in range(4))
    except RecordError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types for bad input.
        raise RecordError(f"payload does not decode: {exc}") from None
    _check_header_fields(version, kind, offset, prev_hash, count)
    return kind, offset, prev_hash


def _check_header_fields(version: Any, kind: Any, offset: Any, prev_hash: Any, count: int) -> None:
    expected = {FORMAT_VERSION: FIELD_COUNT, LEGACY_FORMAT_VERSION: LEGACY_FIELD_COUNT}
    if type(version) is not int or expected.get(version) != count:
        raise RecordError(f"unknown record format version {version!r} ({count} fields)")
    if type(kind) is not int or type(offset) is not int:
        raise RecordError("kind or offset is not an integer")
    if kind not in RECORD_KINDS:
        raise RecordError(
            f"unknown record kind {kind} (this version knows {sorted(RECORD_KINDS)}); "
            f"the log was written by a newer Cosmictron or is damaged"
        )
    if type(prev_hash) is not bytes or len(prev_hash) != HASH_BYTES:
        raise RecordError("prev_hash is not 32 bytes")


def plausible_frame_durable(data: bytes, position: int, record_bytes_max: int) -> int | None:
    """The ``durable`` watermark of a frame whose crc verifies at ``position``, else None.

    Recovery's resync scan calls this at every byte after a bad frame in the last segment.
    A verifying frame whose watermark reaches the damaged record's offset proves that
    record was synced before the damage: that is corruption, not a torn tail.
    """
    if position + FRAME_HEADER_BYTES > len(data):
        return None
    length, crc, durable = FRAME_HEADER.unpack_from(data, position)
    start = position + FRAME_HEADER_BYTES
    if length == 0 or length > record_bytes_max or start + length > len(data):
        return None
    if frame_crc(_crc32(memoryview(data)[start : start + length]), durable) != crc:
        return None
    return durable


__all__ = [
    "FORMAT_VERSION",
    "FRAME_HEADER",
    "FRAME_HEADER_BYTES",
    "LEGACY_PAYLOAD_PREFIX",
    "MODULE_RECORD_KIND",
    "PAYLOAD_PREFIX",
    "RECORD_KINDS",
    "TX_RECORD_KIND",
    "Record",
    "RecordError",
    "decode_payload",
    "encode_frame",
    "encode_payload",
    "frame_crc",
    "payload_crc",
    "plausible_frame_durable",
    "record_hash",
]
