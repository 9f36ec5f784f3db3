"""Literal and parameter values turned into a column's canonical form.

SQL has no Identity or Timestamp literals, so a literal compared with (or assigned to) a
typed column takes that column's type: hex text (``'ab…'``, ``'0xab…'``) or a blob
(``x'ab…'``) for an Identity, RFC 3339 text for a Timestamp, the member name for an enum.
A literal is converted once when the query is planned, a parameter's value once each
time the statement runs (``params.py``), never per row, which also lets an index lookup
use the value directly. ``family`` groups types that compare with each other, so comparing an
integer column with text is caught before anything runs.
"""

from __future__ import annotations

import enum
from typing import Any

from cosmictron.datastore import ColumnType
from cosmictron.datastore.types import (
    BOOL,
    BYTES,
    CONNECTION_ID,
    F64,
    I64,
    IDENTITY,
    STR,
    TIME_DURATION,
    TIMESTAMP,
    EnumType,
    FloatType,
    IntType,
    OptionalType,
    TypeMismatch,
)
from cosmictron.values import ConnectionId, Identity, TimeDuration, Timestamp


def base(column_type: ColumnType | None) -> ColumnType | None:
    """The type without ``Optional``."""
    while isinstance(column_type, OptionalType):
        column_type = column_type.inner
    return column_type


def family(column_type: ColumnType | None) -> str | None:
    """Which values compare with each other (None: unknown or NULL, compares with all).

    >>> family(I64), family(F64), family(BOOL), family(STR), family(IDENTITY)
    ('number', 'number', 'number', 'text', 'Identity')
    """
    inner = base(column_type)
    if inner is None:
        return None
    if isinstance(inner, IntType | FloatType) or inner is BOOL:
        return "number"
    if inner is STR or isinstance(inner, EnumType):
        return "text"
    return inner.name


def is_numeric(column_type: ColumnType | None) -> bool:
    inner = base(column_type)
    return isinstance(inner, IntType | FloatType) or inner is BOOL


def type_of_value(value: Any) -> ColumnType | None:
    """The static type of a literal or parameter value (None for NULL).

    >>> type_of_value(3), type_of_value(2.5), type_of_value("x"), type_of_value(None)
    (i64, f64, str, None)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return I64
    if isinstance(value, float):
        return F64
    if isinstance(value, str):
        return STR
    if isinstance(value, bytes):
        return BYTES
    if isinstance(value, Identity):
        return IDENTITY
    if isinstance(value, Timestamp):
        return TIMESTAMP
    if isinstance(value, TimeDuration):
        return TIME_DURATION
    if isinstance(value, ConnectionId):
        return CONNECTION_ID
    return None


def coerce(value: Any, column_type: ColumnType) -> Any:
    """``value`` in ``column_type``'s canonical form, or raise ``TypeMismatch``.

    Numbers stay numbers (``id = 2.5`` is a valid comparison that matches nothing).

    >>> coerce("0x" + "ab" * 32, IDENTITY) == Identity(bytes([0xAB]) * 32)
    True
    >>> coerce("1970-01-01T00:00:01Z", TIMESTAMP)
    Timestamp(micros_since_epoch=1000000)
    >>> coerce(2.5, I64)
    2.5
    """
    if value is None:
        return None
    inner = base(column_type)
    assert inner is not None
    if isinstance(value, enum.Enum):
        value = value.name if isinstance(inner, EnumType) else value.value
    if is_numeric(inner) and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    try:
        if inner is IDENTITY and isinstance(value, str):
            return Identity.from_hex(value.strip())
        if inner is IDENTITY and isinstance(value, bytes):
            return Identity(value)
        if inner is TIMESTAMP and isinstance(value, str):
            return Timestamp.parse(value.strip())
        if inner is CONNECTION_ID and isinstance(value, str):
            digits = value[2:] if value.startswith(("0x", "0X")) else value
            return ConnectionId.from_hex(digits)
    except ValueError as exc:
        raise TypeMismatch(inner.name, value, str(exc)) from None
    return inner.check(value)


# -- CAST ---------------------------------------------------------------------------------

CAST_TYPES: dict[str, ColumnType] = {
    "bool": BOOL,
    "str": STR,
    "bytes": BYTES,
    "f64": F64,
    "identity": IDENTITY,
    "connectionid": CONNECTION_ID,
    "timestamp": TIMESTAMP,
    "timeduration": TIME_DURATION,
}
"""Column types CAST may name besides the integer widths and f32 (by lower-case name)."""


def cast_type(name: str) -> ColumnType | None:
    """The column type a CAST target names (``u8``, ``Identity``, ...), or None.

    >>> cast_type("u8"), cast_type("Identity"), cast_type("varchar")
    (u8, Identity, None)
    """
    from cosmictron.datastore.types import F32, INTEGERS

    lowered = name.lower()
    if lowered in INTEGERS:
        return INTEGERS[lowered]
    if lowered == "f32":
        return F32
    return CAST_TYPES.get(lowered)


def caster(target: str) -> Any:
    """A function doing ``CAST(value AS target)``.

    ``target`` is an SQLite affinity (INTEGER, REAL, NUMERIC, TEXT, BLOB: SQLite's own
    conversions, ``conversions.py``) or a column type's name. To a column type a value
    goes through SQLite's conversion of the nearest affinity (integers for the integer
    widths, bool, Timestamp and TimeDuration; reals for f32/f64; text for str) and is
    then checked like a value stored in such a column: out of range, or text that is not
    an Identity, is a ``SqlError`` saying so. An integer becomes a Timestamp as
    microseconds since the epoch, text as RFC 3339; a bool is TRUE when non-zero.
    """
    from cosmictron.errors import SqlError
    from cosmictron.query.conversions import (
        AFFINITY_CONVERSIONS,
        to_blob,
        to_integer,
        to_numeric,
        to_real,
        to_text,
    )

    if target in AFFINITY_CONVERSIONS:
        return AFFINITY_CONVERSIONS[target]
    column_type = cast_type(target)
    assert column_type is not None, target

    def fail(value: Any, why: str) -> SqlError:
        return SqlError(f"cannot CAST {value!r} AS {column_type.name}: {why}")

    if isinstance(column_type, IntType):

        def to_int_type(value: Any) -> Any:
            number = to_integer(value) if not isinstance(value, int) else int(value)
            if number is None:
                return None
            try:
                return column_type.check(number)
            except TypeMismatch as exc:
                raise fail(value, str(exc)) from None

        return to_int_type
    if isinstance(column_type, FloatType):

        def to_float_type(value: Any) -> Any:
            number = to_real(value)
            if number is None:
                return None
            try:
                return column_type.check(number)
            except TypeMismatch as exc:
                raise fail(value, str(exc)) from None

        return to_float_type
    if column_type is BOOL:
        return lambda value: None if value is None else to_numeric(value) != 0
    if column_type is STR:
        return to_text
    if column_type is BYTES:
        return to_blob
    if column_type is TIMESTAMP or column_type is TIME_DURATION:
        make = Timestamp if column_type is TIMESTAMP else TimeDuration

        def to_micros(value: Any) -> Any:
            if value is None or isinstance(value, make):
                return value
            if isinstance(value, str) and column_type is TIMESTAMP:
                try:
                    return coerce(value, TIMESTAMP)
                except TypeMismatch as exc:
                    raise fail(value, str(exc)) from None
            if isinstance(value, Timestamp | TimeDuration):
                raise fail(value, "a Timestamp and a TimeDuration do not convert")
            return make(to_integer(value))

        return to_micros

    def to_id(value: Any) -> Any:
        if value is None or isinstance(value, Identity | ConnectionId):
            if value is None or base(type_of_value(value)) is column_type:
                return value
            raise fail(value, "an Identity and a ConnectionId do not convert")
        try:
            return coerce(value if isinstance(value, bytes) else to_text(value), column_type)
        except TypeMismatch as exc:
            raise fail(value, str(exc)) from None

    return to_id
