"""The bytes of the protocol: reading frontend messages, building backend ones.

Every frontend message after startup is a type byte and a 4-byte length (counting
itself); the startup packet has no type byte. Lengths are checked before anything is
read into memory: a message longer than its cap is a protocol error that closes the
connection (``FrameTooLarge``), never an allocation of what the peer claims.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from typing import Any, Protocol

_LENGTH = struct.Struct("!i")
_HEADER = struct.Struct("!ci")
_INT16 = struct.Struct("!h")
_INT32 = struct.Struct("!i")

PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


class FrameTooLarge(Exception):
    """A message declared a length over its cap (or under its minimum)."""


class Malformed(Exception):
    """A message's body does not parse as its type."""


class ReadsExactly(Protocol):
    """What the startup phase reads from (``inbound.Inbound``, or a StreamReader)."""

    async def readexactly(self, count: int, /) -> bytes: ...


async def read_startup(reader: ReadsExactly, bytes_max: int) -> bytes:
    """The body of a startup-phase packet (after its length), at most ``bytes_max``."""
    header = await reader.readexactly(4)
    (length,) = _LENGTH.unpack(header)
    if length < 8 or length > bytes_max:
        raise FrameTooLarge(f"a startup packet of {length} bytes (at most {bytes_max})")
    return await reader.readexactly(length - 4)


async def read_message(reader: ReadsExactly, bytes_max: int) -> tuple[bytes, bytes]:
    """The next (type byte, body) of a frontend message, at most ``bytes_max`` long."""
    header = await reader.readexactly(5)
    kind, length = _HEADER.unpack(header)
    if length < 4 or length > bytes_max:
        raise FrameTooLarge(
            f"a message of {length} bytes (at most {bytes_max}, limits.pg_message_bytes_max)"
        )
    return kind, await reader.readexactly(length - 4) if length > 4 else b""


def parse_bind(
    data: bytes,
) -> tuple[str, str, tuple[int, ...], list[bytes | None], tuple[int, ...]]:
    """A Bind message's body: portal, statement, parameter formats, parameter values
    (None for NULL) and result formats. Written for the point query, whose every round
    trip parses one: empty names are not decoded, format codes are read by a kept
    ``struct`` into the tuples a portal keeps.

    Raises:
        Malformed: the body is shorter than what it declares, or a name is not UTF-8.
    """
    try:
        end = data.index(0)
        portal = data[:end].decode() if end else ""
        start = end + 1
        end = data.index(0, start)
        statement = data[start:end].decode() if end > start else ""
        at = end + 1
        (count,) = _INT16_AT(data, at)
        at += 2
        if count > 0:
            formats = _int16s(count).unpack_from(data, at)
            at += 2 * count
        else:
            formats = ()
        (count,) = _INT16_AT(data, at)
        at += 2
        values: list[bytes | None] = []
        size = len(data)
        for _ in range(count):
            (length,) = _INT32_AT(data, at)
            at += 4
            if length == -1:
                values.append(None)
                continue
            if length < 0 or at + length > size:
                raise Malformed("the message ends inside a value")
            values.append(data[at : at + length])
            at += length
        (count,) = _INT16_AT(data, at)
        results = _int16s(count).unpack_from(data, at + 2) if count > 0 else ()
    except (ValueError, struct.error) as exc:  # UnicodeDecodeError is a ValueError
        raise Malformed(f"a Bind message that does not parse ({exc})") from None
    return portal, statement, formats, values, results


_INT16_AT = _INT16.unpack_from
_INT32_AT = _INT32.unpack_from
_INT16S = {count: struct.Struct(f"!{count}h") for count in range(1, 65)}


def _int16s(count: int) -> struct.Struct:
    """A ``struct`` reading ``count`` int16s: kept for up to 64 (format codes of a
    Bind), made anew for more."""
    found = _INT16S.get(count)
    return found if found is not None else struct.Struct(f"!{count}h")


def parse_execute(data: bytes) -> tuple[str, int]:
    """An Execute message's body: the portal and the row limit (0: no limit).

    Raises:
        Malformed: the body is shorter than that, or the name is not UTF-8.
    """
    try:
        end = data.index(b"\x00")
        (limit,) = _INT32.unpack_from(data, end + 1)
        return data[:end].decode(), int(limit)
    except (ValueError, struct.error) as exc:
        raise Malformed(f"an Execute message that does not parse ({exc})") from None


Run = list[tuple[Any, ...]]
"""Parsed messages, each ``(kind, end, *fields)`` (``frontend_run``)."""


def _frontend_run(data: bytes, at: int, bytes_max: int) -> Run:
    """``frontend_run`` in Python: what runs where ``_rows.pyx`` is not built."""
    run: Run = []
    if at < 0:
        raise ValueError("a negative offset")
    size = len(data)
    while size - at >= 5:
        kind = data[at : at + 1]
        (length,) = _INT32_AT(data, at + 1)
        if length < 4 or length > bytes_max or size - at < 1 + length:
            break
        end = at + 1 + length
        body = data[at + 5 : end]
        try:
            if kind == b"B":
                run.append((kind, end, *parse_bind(body)))
            elif kind == b"E":
                run.append((kind, end, *parse_execute(body)))
            elif kind == b"D":
                if len(body) < 2 or body.find(0, 1) != len(body) - 1:
                    break
                run.append((kind, end, body[:1], body[1:-1].decode()))
            elif kind == b"S" or kind == b"H":
                run.append((kind, end))
            else:
                break
        except (Malformed, UnicodeDecodeError):
            break
        at = end
    return run


frontend_run: Callable[[bytes, int, int], Run] = _frontend_run
"""The messages buffered in ``data`` from ``at`` that a prepared statement's round
trip is made of, parsed at once: a list of ``(kind, end, *fields)``, ``end`` being
where the message ends in ``data``. Bind: ``parse_bind``'s five fields; Execute:
``parse_execute``'s two; Describe: ``P`` or ``S`` and the name; Sync and Flush:
nothing more. It stops before the first message that is not whole, is over
``bytes_max``, is of another type or does not parse (the session's task reads that one
as it reads every message, and says what is wrong with it). Compiled in ``_rows.pyx``
where built: one call instead of a Python frame per message (``COSMICTRON_PURE``
keeps this one)."""
if not os.environ.get("COSMICTRON_PURE"):
    try:
        from cosmictron.server.pgwire._rows import frontend_run
    except ImportError:  # built without a compiler: the Python reader serves
        pass
FRONTEND_COMPILED = frontend_run is not _frontend_run


class Body:
    """A cursor over a message body; every read checks the bytes are there."""

    __slots__ = ("at", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.at)
        if end < 0:
            raise Malformed("a string without its terminating zero byte")
        text = self.data[self.at : end].decode("utf-8", "strict")
        self.at = end + 1
        return text

    def int16(self) -> int:
        if self.at + 2 > len(self.data):
            raise Malformed("the message ends inside a 16-bit integer")
        (value,) = _INT16.unpack_from(self.data, self.at)
        self.at += 2
        return int(value)

    def int32(self) -> int:
        if self.at + 4 > len(self.data):
            raise Malformed("the message ends inside a 32-bit integer")
        (value,) = _INT32.unpack_from(self.data, self.at)
        self.at += 4
        return int(value)

    def take(self, count: int) -> bytes:
        if count < 0 or self.at + count > len(self.data):
            raise Malformed("the message ends inside a value")
        value = self.data[self.at : self.at + count]
        self.at += count
        return value

    def byte(self) -> bytes:
        return self.take(1)


def startup_parameters(body: bytes) -> dict[str, str]:
    """The name/value pairs of a protocol 3.0 startup packet (after the version)."""
    cursor = Body(body)
    cursor.int32()
    params: dict[str, str] = {}
    while cursor.at < len(body):
        name = cursor.cstring()
        if not name:
            break
        params[name] = cursor.cstring()
    return params


# --- backend messages ---------------------------------------------------------------


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + _LENGTH.pack(len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


AUTH_OK = message(b"R", _INT32.pack(0))
AUTH_CLEARTEXT = message(b"R", _INT32.pack(3))
PARSE_COMPLETE = message(b"1")
BIND_COMPLETE = message(b"2")
CLOSE_COMPLETE = message(b"3")
NO_DATA = message(b"n")
EMPTY_QUERY = message(b"I")
PORTAL_SUSPENDED = message(b"s")
COPY_DONE = message(b"c")
READY = {status: message(b"Z", status) for status in (b"I", b"T", b"E")}


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key(pid: int, secret: int) -> bytes:
    return message(b"K", _INT32.pack(pid) + _INT32.pack(secret))


_TAGS: dict[str, bytes] = {}
_TAGS_MAX = 1024


def command_complete(tag: str) -> bytes:
    """The CommandComplete message (kept: ``SELECT 1`` ends every point query)."""
    found = _TAGS.get(tag)
    if found is None:
        found = message(b"C", cstr(tag))
        if len(_TAGS) >= _TAGS_MAX:
            _TAGS.clear()
        _TAGS[tag] = found
    return found


def error_response(
    severity: str,
    code: str,
    text: str,
    position: int | None = None,
    detail: str | None = None,
    notice: bool = False,
) -> bytes:
    fields = [b"S", cstr(severity), b"V", cstr(severity), b"C", cstr(code), b"M", cstr(text)]
    if detail:
        fields += [b"D", cstr(detail)]
    if position is not None:
        fields += [b"P", cstr(str(position))]
    return message(b"N" if notice else b"E", b"".join(fields) + b"\x00")


_DESCRIPTIONS: dict[tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]], bytes] = {}
_DESCRIPTIONS_MAX = 512


def row_description(columns: Sequence[str], oids: Sequence[int], formats: Sequence[int]) -> bytes:
    """The RowDescription message, kept for the next statement of the same shape (a
    prepared statement describes the same columns on every Execute)."""
    key = (tuple(columns), tuple(oids), tuple(formats))
    found = _DESCRIPTIONS.get(key)
    if found is None:
        found = _row_description(columns, oids, formats)
        if len(_DESCRIPTIONS) >= _DESCRIPTIONS_MAX:
            _DESCRIPTIONS.clear()
        _DESCRIPTIONS[key] = found
    return found


def _row_description(columns: Sequence[str], oids: Sequence[int], formats: Sequence[int]) -> bytes:
    from cosmictron.server.pgwire.pgtypes import TYPE_SIZES

    parts = [_INT16.pack(len(columns))]
    for name, oid, fmt in zip(columns, oids, formats, strict=True):
        parts.append(cstr(name))
        parts.append(struct.pack("!ihihih", 0, 0, oid, TYPE_SIZES.get(oid, -1), -1, fmt))
    return message(b"T", b"".join(parts))


def parameter_description(oids: Sequence[int]) -> bytes:
    return message(b"t", _INT16.pack(len(oids)) + b"".join(_INT32.pack(o) for o in oids))


def copy_out_response(columns: int) -> bytes:
    return message(b"H", b"\x00" + _INT16.pack(columns) + _INT16.pack(0) * columns)


def copy_data(data: bytes) -> bytes:
    return message(b"d", data)
