"""Cosmictron column types as PostgreSQL types: the OID, the text form, the binary form.

The mapping (docs/guide/postgres-clients.md shows it as a table):

=====================================  ==================  =====
Cosmictron                             PostgreSQL          OID
=====================================  ==================  =====
``bool``                               boolean             16
``i8``, ``u8``, ``i16``                smallint            21
``u16``, ``i32``                       integer             23
``u32``, ``i64`` (``int``)             bigint              20
``u64``, ``i128``, ``u128``            numeric             1700
``f32``                                real                700
``f64`` (``float``)                    double precision    701
``str``                                text                25
``bytes``                              bytea               17
``Identity``, ``ConnectionId``         text (hex)          25
``Timestamp``                          timestamptz         1184
``TimeDuration``                       interval            1186
``Optional[T]``                        T's (NULL allowed)
``list[T]``, nested types, ``ScheduleAt``, ``Vector[N]``   json   114
``enum.Enum``                          text (member name)  25
an expression of unknown type          text                25
=====================================  ==================  =====

Binary forms are written for the common types (bool, the integers, the floats, text,
bytea, timestamptz); a column asked for in binary whose type has no binary form here
is sent as text, which libpq-based clients never ask for and asyncpg handles (it asks
per type, from the OIDs we send).
"""

from __future__ import annotations

import datetime as _dt
import json
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from cosmictron.datastore import ColumnType
from cosmictron.datastore.types import (
    BytesType,
    ConnectionIdType,
    EnumType,
    FloatType,
    IdentityType,
    IntType,
    MicrosType,
    OptionalType,
)
from cosmictron.values import ConnectionId, Identity, TimeDuration, Timestamp, json_form

BOOL = 16
BYTEA = 17
CHAR = 18
NAME = 19
INT8 = 20
INT2 = 21
INT2VECTOR = 22
INT4 = 23
REGPROC = 24
TEXT = 25
OID = 26
OIDVECTOR = 30
JSON = 114
FLOAT4 = 700
FLOAT8 = 701
UNKNOWN = 705
BOOL_ARRAY = 1000
NAME_ARRAY = 1003
INT2_ARRAY = 1005
TEXT_ARRAY = 1009
INT8_ARRAY = 1016
OID_ARRAY = 1028
VARCHAR = 1043
TIMESTAMP = 1114
TIMESTAMPTZ = 1184
INTERVAL = 1186
NUMERIC = 1700
REGCLASS = 2205
REGTYPE = 2206
JSONB = 3802

TYPE_NAMES = {
    BOOL: "bool",
    BYTEA: "bytea",
    CHAR: "char",
    NAME: "name",
    INT8: "int8",
    INT2: "int2",
    INT2VECTOR: "int2vector",
    INT4: "int4",
    REGPROC: "regproc",
    TEXT: "text",
    OID: "oid",
    OIDVECTOR: "oidvector",
    JSON: "json",
    FLOAT4: "float4",
    FLOAT8: "float8",
    UNKNOWN: "unknown",
    TEXT_ARRAY: "_text",
    BOOL_ARRAY: "_bool",
    NAME_ARRAY: "_name",
    INT2_ARRAY: "_int2",
    INT8_ARRAY: "_int8",
    OID_ARRAY: "_oid",
    VARCHAR: "varchar",
    TIMESTAMP: "timestamp",
    TIMESTAMPTZ: "timestamptz",
    INTERVAL: "interval",
    NUMERIC: "numeric",
    REGCLASS: "regclass",
    REGTYPE: "regtype",
    JSONB: "jsonb",
}
"""Every type this port describes in ``pg_type``, by OID."""

FORMATTED = {
    BOOL: "boolean",
    INT2: "smallint",
    INT4: "integer",
    INT8: "bigint",
    FLOAT4: "real",
    FLOAT8: "double precision",
    TIMESTAMPTZ: "timestamp with time zone",
    TIMESTAMP: "timestamp without time zone",
    VARCHAR: "character varying",
    TEXT_ARRAY: "text[]",
    CHAR: '"char"',
}
"""``format_type``'s spelling where it differs from the type's name."""

ARRAY_ELEMENTS = {
    BOOL_ARRAY: BOOL,
    NAME_ARRAY: NAME,
    INT2_ARRAY: INT2,
    TEXT_ARRAY: TEXT,
    INT8_ARRAY: INT8,
    OID_ARRAY: OID,
    INT2VECTOR: INT2,
    OIDVECTOR: OID,
}
"""Each array type's element type (for ``pg_type.typelem``)."""

TYPE_SIZES = {BOOL: 1, INT2: 2, INT4: 4, INT8: 8, FLOAT4: 4, FLOAT8: 8, OID: 4, TIMESTAMPTZ: 8}

EPOCH_2000_US = 946_684_800_000_000
"""PostgreSQL's binary timestamps count microseconds from 2000-01-01 UTC."""


def oid_of(column_type: ColumnType | None) -> int:
    """The OID a column of ``column_type`` is described with."""
    if column_type is None:
        return TEXT
    if isinstance(column_type, OptionalType):
        return oid_of(column_type.inner)
    if isinstance(column_type, IntType):
        if column_type.bits <= 8 or (column_type.bits == 16 and column_type.signed):
            return INT2
        if column_type.bits == 16 or (column_type.bits == 32 and column_type.signed):
            return INT4
        if column_type.bits == 32 or (column_type.bits == 64 and column_type.signed):
            return INT8
        return NUMERIC
    if isinstance(column_type, FloatType):
        return FLOAT4 if column_type.bits == 32 else FLOAT8
    if isinstance(column_type, BytesType):
        return BYTEA
    if isinstance(column_type, IdentityType | ConnectionIdType | EnumType):
        return TEXT
    if isinstance(column_type, MicrosType):
        return TIMESTAMPTZ if column_type.name == "Timestamp" else INTERVAL
    name = column_type.name
    if name == "bool":
        return BOOL
    if name == "str":
        return TEXT
    return JSON


def oid_of_value(value: Any) -> int:
    """The OID of a value whose column type is unknown (an expression's result)."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT8
    if isinstance(value, float):
        return FLOAT8
    if isinstance(value, bytes):
        return BYTEA
    if isinstance(value, Timestamp):
        return TIMESTAMPTZ
    if isinstance(value, TimeDuration):
        return INTERVAL
    if isinstance(value, list | dict):
        return JSON
    return TEXT


# --- text forms ---------------------------------------------------------------------


def text_of(value: Any) -> bytes:
    """PostgreSQL's text form of a value (``t``/``f``, ``\\x`` hex bytea, ISO times)."""
    kind = type(value)
    if kind is str:
        return value.encode()
    if kind is int:
        return str(value).encode()
    if kind is bool:
        return b"t" if value else b"f"
    if kind is float:
        return _float_text(value)
    if kind is bytes:
        return b"\\x" + value.hex().encode()
    if kind is Timestamp:
        return _timestamp_text(value.micros_since_epoch)
    if kind is TimeDuration:
        return _interval_text(value.micros)
    if kind is Identity or kind is ConnectionId:
        return value.hex().encode()
    if isinstance(value, list | dict | tuple):
        return json.dumps(json_form(value), separators=(",", ":")).encode()
    form = json_form(value)
    if isinstance(form, str):
        return form.encode()
    if hasattr(value, "name") and hasattr(value, "value") and not isinstance(form, dict):
        return str(value.name).encode()  # an enum member
    return json.dumps(form, separators=(",", ":")).encode()


def _float_text(value: float) -> bytes:
    if value != value:
        return b"NaN"
    if value in (float("inf"), float("-inf")):
        return b"Infinity" if value > 0 else b"-Infinity"
    return repr(value).encode()


def _timestamp_text(micros: int) -> bytes:
    moment = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(microseconds=micros)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return (text + "+00").encode()


def _interval_text(micros: int) -> bytes:
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    days, rest = divmod(micros, 86_400_000_000)
    hours, rest = divmod(rest, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    clock = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if fraction:
        clock += f".{fraction:06d}".rstrip("0")
    if days:
        return f"{sign}{days} days {sign}{clock}".encode()
    return f"{sign}{clock}".encode()


# --- binary forms -------------------------------------------------------------------

_INT2 = struct.Struct("!h").pack
_INT4 = struct.Struct("!i").pack
_INT8 = struct.Struct("!q").pack
_FLOAT4 = struct.Struct("!f").pack
_FLOAT8 = struct.Struct("!d").pack


def _binary_bool(value: Any) -> bytes:
    return b"\x01" if value else b"\x00"


def _binary_text(value: Any) -> bytes:
    return text_of(value)


def _binary_bytea(value: Any) -> bytes:
    return bytes(value)


def _binary_timestamptz(value: Any) -> bytes:
    return _INT8(value.micros_since_epoch - EPOCH_2000_US)


def _binary_interval(value: Any) -> bytes:
    return struct.pack("!qii", value.micros, 0, 0)


def _binary_numeric(value: Any) -> bytes:
    """An integer as PostgreSQL's binary numeric: base-10000 digits, most significant
    first, with the weight of the first (the wide integer columns are the only ones
    described as numeric)."""
    number = int(value)
    sign = 0x4000 if number < 0 else 0
    number = abs(number)
    digits = []
    while number:
        number, digit = divmod(number, 10000)
        digits.append(digit)
    digits.reverse()
    weight = len(digits) - 1
    while digits and digits[-1] == 0:  # trailing zero groups are implied by the weight
        digits.pop()
    return struct.pack(f"!hhhh{len(digits)}h", len(digits), max(weight, 0), sign, 0, *digits)


BINARY_ENCODERS: dict[int, Callable[[Any], bytes]] = {
    NUMERIC: _binary_numeric,
    BOOL: _binary_bool,
    INT2: _INT2,
    INT4: _INT4,
    INT8: _INT8,
    OID: _INT4,
    FLOAT4: _FLOAT4,
    FLOAT8: _FLOAT8,
    TEXT: _binary_text,
    VARCHAR: _binary_text,
    NAME: _binary_text,
    CHAR: _binary_text,
    JSON: _binary_text,
    BYTEA: _binary_bytea,
    TIMESTAMPTZ: _binary_timestamptz,
    INTERVAL: _binary_interval,
}
"""The binary form of each type that has one here; others go as text (``encoder``)."""


def array_items(value: Any) -> list[str | None]:
    """The elements of an array's text form (``{a,"b c",NULL}``) or of a vector's
    (``1 2``); a Python list or tuple as it is."""
    if isinstance(value, list | tuple):
        return [None if v is None else str(v) for v in value]
    text = str(value).strip()
    if not (text.startswith("{") and text.endswith("}")):
        return [item for item in text.split() if item]
    items: list[str | None] = []
    i, body = 0, text[1:-1]
    while i < len(body):
        if body[i] == '"':
            j, out = i + 1, []
            while j < len(body) and body[j] != '"':
                if body[j] == "\\":
                    j += 1
                out.append(body[j])
                j += 1
            items.append("".join(out))
            i = j + 2  # the closing quote and the comma
            continue
        end = body.find(",", i)
        end = len(body) if end < 0 else end
        item = body[i:end].strip()
        items.append(None if item == "NULL" else item)
        i = end + 1
    return items


def _binary_array(element: int) -> Callable[[Any], bytes]:
    """PostgreSQL's binary array (one dimension) of ``element``, from the text form."""
    encode = BINARY_ENCODERS.get(element, _binary_text)

    def run(value: Any) -> bytes:
        items = array_items(value)
        parts = [
            struct.pack("!iiiii", 1 if items else 0, int(None in items), element, len(items), 1)
        ]
        if not items:
            parts = [struct.pack("!iii", 0, 0, element)]
        for item in items:
            if item is None:
                parts.append(b"\xff\xff\xff\xff")
                continue
            typed: Any = item
            if element == BOOL:
                typed = item in ("t", "true", "1", "True")
            elif element in (INT2, INT4, INT8, OID):
                typed = int(item)
            data = encode(typed)
            parts.append(_INT4(len(data)) + data)
        return b"".join(parts)

    return run


for _array, _element in ARRAY_ELEMENTS.items():
    BINARY_ENCODERS[_array] = _binary_array(_element)


def has_binary(oid: int) -> bool:
    return oid in BINARY_ENCODERS


def encoder(oid: int, binary: bool) -> Callable[[Any], bytes]:
    """The function turning a non-NULL value of a column into its wire bytes."""
    if binary:
        found = BINARY_ENCODERS.get(oid)
        if found is not None:
            return found
    return text_of


# --- parameters ---------------------------------------------------------------------


class BadValue(ValueError):
    """A parameter's bytes do not read as its type (SQLSTATE 22P02)."""


class OutOfRange(ValueError):
    """A parameter's value does not fit its type (SQLSTATE 22003)."""


_INT_RANGES = {INT2: 16, INT4: 32, INT8: 64}
_INT_BOUNDS = {oid: (-(1 << (bits - 1)), 1 << (bits - 1)) for oid, bits in _INT_RANGES.items()}
"""The half-open range of each integer type, worked out once (checked per parameter)."""


def from_json_form(value: Any, oid: int) -> Any:
    """A cell the leader answered in its JSON form (``values.json_form``: a row returned
    to a DML statement forwarded from a follower) as the value this port sends as
    ``oid``: the forms JSON changes (wide integers as text, bytes as hex, timestamps as
    RFC 3339, durations as microseconds) turned back."""
    if value is None:
        return None
    if oid in (INT2, INT4, INT8, NUMERIC) and isinstance(value, str):
        return int(value)
    if oid == BYTEA and isinstance(value, str):
        return bytes.fromhex(value)
    if oid in (TIMESTAMPTZ, TIMESTAMP) and isinstance(value, str):
        return Timestamp.parse(value)
    if oid == INTERVAL and isinstance(value, int | str):
        return TimeDuration(int(value))
    return value


def decode_param(data: bytes, oid: int, binary: bool) -> Any:
    """A parameter value from its wire bytes, as the Python value the engine binds."""
    if binary and oid == INT8 and len(data) == 8:  # the usual key: always in range
        return int.from_bytes(data, "big", signed=True)
    bounds = _INT_BOUNDS.get(oid)
    try:
        if binary:
            value = _decode_binary(data, oid)
        elif bounds is not None:  # what ``_decode_text`` does for an integer (psycopg's key)
            value = int(data.decode())
        else:
            value = _decode_text(data.decode(), oid)
    except (ValueError, UnicodeDecodeError, struct.error, ArithmeticError) as exc:
        if isinstance(exc, BadValue):
            raise
        shown = TYPE_NAMES.get(oid, str(oid))
        raise BadValue(f"invalid input syntax for type {shown}: {data[:64]!r}") from None
    if bounds is not None and not bounds[0] <= value < bounds[1]:
        raise OutOfRange(f"value {value} is out of range for type {TYPE_NAMES[oid]}")
    return value


def _decode_binary(data: bytes, oid: int) -> Any:
    element = ARRAY_ELEMENTS.get(oid)
    if element is not None:  # an array: kept in its text form, as the catalogue holds them
        dimensions, _, inner = struct.unpack_from("!iii", data)
        if dimensions > 1:
            raise BadValue("arrays of more than one dimension are not supported")
        items: list[str] = []
        if dimensions == 1:
            count, _ = struct.unpack_from("!ii", data, 12)
            at = 20
            for _ in range(count):
                (length,) = struct.unpack_from("!i", data, at)
                at += 4
                if length < 0:
                    items.append("NULL")
                    continue
                value = _decode_binary(data[at : at + length], inner)
                items.append(str(value) if not isinstance(value, bool) else "tf"[not value])
                at += length
        return "{" + ",".join(items) + "}"
    if oid == BOOL:
        return data != b"\x00"
    if oid in (INT2, INT4, INT8, OID):
        if len(data) not in (2, 4, 8):
            raise BadValue(f"a binary integer has 2, 4 or 8 bytes, not {len(data)}")
        return int.from_bytes(data, "big", signed=True)
    if oid == FLOAT4:
        return struct.unpack("!f", data)[0]
    if oid == FLOAT8:
        return struct.unpack("!d", data)[0]
    if oid == BYTEA:
        return bytes(data)
    if oid in (TIMESTAMPTZ, TIMESTAMP):
        return Timestamp(struct.unpack("!q", data)[0] + EPOCH_2000_US)
    if oid == INTERVAL:
        micros, days, months = struct.unpack("!qii", data)
        return TimeDuration(micros + days * 86_400_000_000 + months * 30 * 86_400_000_000)
    if oid == NUMERIC:
        return _decode_numeric(data)
    return data.decode()


def _decode_numeric(data: bytes) -> Any:
    count, weight, sign, _scale = struct.unpack_from("!hhhh", data)
    digits = struct.unpack_from(f"!{count}h", data, 8)
    if sign == 0xC000:
        raise BadValue("NaN is not a number Cosmictron stores")
    number = Decimal(0)
    for index, digit in enumerate(digits):
        number += Decimal(digit) * Decimal(10000) ** (weight - index)
    if sign == 0x4000:
        number = -number
    return int(number) if number == number.to_integral_value() else float(number)


def _decode_text(text: str, oid: int) -> Any:
    if oid == BOOL:
        lowered = text.strip().lower()
        if lowered in ("t", "true", "yes", "on", "1", "y"):
            return True
        if lowered in ("f", "false", "no", "off", "0", "n"):
            return False
        raise BadValue(f'invalid input syntax for type boolean: "{text}"')
    if oid in (INT2, INT4, INT8, OID):
        return int(text)
    if oid == NUMERIC:
        number = Decimal(text)
        return int(number) if number == number.to_integral_value() else float(number)
    if oid in (FLOAT4, FLOAT8):
        return float(text)
    if oid == BYTEA:
        if text.startswith("\\x"):
            return bytes.fromhex(text[2:])
        return text.encode()
    if oid in (TIMESTAMPTZ, TIMESTAMP):
        moment = _dt.datetime.fromisoformat(text.replace(" ", "T", 1))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.UTC)
        delta = moment - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
        return Timestamp((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
    return text
