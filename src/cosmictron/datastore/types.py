"""Column types: how a value is checked, stored, written to the log and handed back.

Every column and reducer argument has a ``ColumnType``. It converts between three forms:

* the *Python* form a module sees (``Color.RED``, ``[1.0, 2.0]``, a ``Point`` instance);
* the *canonical* form stored in row tuples: immutable, hashable and ordered, so rows can
  be keys of indexes (an enum is its member name, a list a tuple, a nested type a tuple);
* the *wire* form written to the commit log with msgpack (an ``Identity`` is its 32 bytes,
  a ``u128`` 16 big-endian bytes).

Most types (the 64-bit integers, floats, bools, text, bytes) are the same in all three
forms; ``plain`` marks them so tables made only of such columns skip conversion entirely.
Later layers (SQL literals, JSON over HTTP, WASM/JS modules) add their conversions here,
beside these, rather than in parallel type systems.

Why one module past 400 lines: it is one job, the type system, as data. Every class is
the same five-method contract (``check``, ``to_python``, ``encode``, ``decode``,
``describe``) for one kind of value, the composite types wrap the scalar ones, and the
rest of the code reads them through ``SCALARS`` and the constants at the bottom. Split
by kind, each half would be incomplete on its own, and a reader checking that every
type agrees on the three forms would need both. Split it when a new family of types
(the WASM/JS ABI's) brings conversions of its own.
"""

from __future__ import annotations

import array
import enum
import math
import struct
import sys
from collections.abc import Sequence
from typing import Any

from cosmictron.values import ConnectionId, Identity, ScheduleAt, TimeDuration, Timestamp

_F32 = struct.Struct("f")
_BIG_ENDIAN = sys.byteorder == "big"

REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "<required>"})()
"""Default of a column that has none: inserting a row that still holds it is an error."""


def shown_value(value: Any) -> str:
    """A value as an error message shows it: as SQL and JSON write ``true``, ``false``
    and ``null`` (a user typed those, never Python's ``True``), anything else by ``repr``.

    >>> shown_value(True), shown_value(None), shown_value("x")
    ('true', 'null', "'x'")
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value)


class TypeMismatch(Exception):
    """Raised by ``check``; the caller adds the table/column or argument it was for."""

    def __init__(self, expected: str, value: Any, detail: str = "") -> None:
        self.expected = expected
        self.value = value
        self.detail = detail
        shown = shown_value(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        message = f"expected {expected}, got {shown} ({type(value).__name__})"
        super().__init__(f"{message}: {detail}" if detail else message)


class ColumnType:
    """Base class. Subclasses override ``check`` and, when not plain, the conversions."""

    name: str = "?"
    plain: bool = True
    orderable: bool = True

    def check(self, value: Any) -> Any:
        """Return the canonical form of ``value`` or raise ``TypeMismatch``."""
        raise NotImplementedError

    def to_python(self, canonical: Any) -> Any:
        return canonical

    def encode(self, canonical: Any) -> Any:
        return canonical

    def decode(self, wire: Any) -> Any:
        return wire

    def describe(self) -> dict[str, Any]:
        """A JSON-able description; ``schema`` routes and stored schemas use it."""
        return {"type": self.name}

    def __repr__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColumnType) and self.describe() == other.describe()

    def __hash__(self) -> int:
        return hash(self.name)


class IntType(ColumnType):
    def __init__(self, bits: int, signed: bool) -> None:
        self.bits = bits
        self.signed = signed
        self.name = f"{'i' if signed else 'u'}{bits}"
        self.low = -(1 << (bits - 1)) if signed else 0
        self.high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        # msgpack carries integers up to 64 bits; wider ones travel as 16 bytes.
        self.plain = bits <= 64

    def check(self, value: Any) -> Any:
        if type(value) is not int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeMismatch(self.name, value)
            value = int(value)
        if self.low <= value <= self.high:
            return value
        raise TypeMismatch(self.name, value, f"out of range [{self.low}, {self.high}]")

    def encode(self, canonical: int) -> Any:
        return canonical if self.plain else canonical.to_bytes(16, "big", signed=self.signed)

    def decode(self, wire: Any) -> int:
        return wire if self.plain else int.from_bytes(wire, "big", signed=self.signed)


NOT_FINITE = (
    "not finite: NaN and the infinities are not stored (JSON has no form for them, and a "
    "number past the float range overflows to infinity); use Optional and None"
)


class FloatType(ColumnType):
    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.name = f"f{bits}"

    def check(self, value: Any) -> Any:
        if type(value) is float:
            result = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            try:
                result = float(value)
            except OverflowError:  # an integer past the float range
                raise TypeMismatch(self.name, value, NOT_FINITE) from None
        else:
            raise TypeMismatch(self.name, value)
        if result - result != 0.0:  # NaN or an infinity (the fast test: both give NaN)
            # NaN is not equal to itself, so it would break keys, uniqueness and find();
            # neither has a JSON form, so no strict client could read the row.
            raise TypeMismatch(self.name, value, NOT_FINITE)
        if self.bits == 32:
            result = _F32.unpack(_F32.pack(result))[0]
            if math.isinf(result):
                raise TypeMismatch(self.name, value, "out of float32 range")
        return result


class ExactType(ColumnType):
    """A type whose values must be exactly one Python class (bool, str)."""

    def __init__(self, name: str, python_type: type) -> None:
        self.name = name
        self.python_type = python_type

    def check(self, value: Any) -> Any:
        if type(value) is self.python_type:
            return value
        raise TypeMismatch(self.name, value)


class BytesType(ColumnType):
    name = "bytes"

    def check(self, value: Any) -> Any:
        if type(value) is bytes:
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise TypeMismatch(self.name, value)


class IdentityType(ColumnType):
    name = "Identity"
    plain = False

    def check(self, value: Any) -> Any:
        if type(value) is Identity:
            return value
        raise TypeMismatch(self.name, value)

    def encode(self, canonical: Identity) -> bytes:
        return canonical.data

    def decode(self, wire: bytes) -> Identity:
        return Identity(wire)


class ConnectionIdType(ColumnType):
    name = "ConnectionId"
    plain = False

    def check(self, value: Any) -> Any:
        if type(value) is ConnectionId:
            return value
        raise TypeMismatch(self.name, value)

    def encode(self, canonical: ConnectionId) -> bytes:
        return canonical.value.to_bytes(16, "big")

    def decode(self, wire: bytes) -> ConnectionId:
        return ConnectionId(int.from_bytes(wire, "big"))


class MicrosType(ColumnType):
    """Timestamp and TimeDuration: a wrapper around one integer of microseconds."""

    plain = False

    def __init__(self, python_type: type[Timestamp] | type[TimeDuration]) -> None:
        self.python_type = python_type
        self.name = python_type.__name__

    def check(self, value: Any) -> Any:
        if type(value) is self.python_type:
            return value
        raise TypeMismatch(self.name, value)

    def encode(self, canonical: Any) -> int:
        return canonical.micros_since_epoch if self.python_type is Timestamp else canonical.micros

    def decode(self, wire: int) -> Any:
        return self.python_type(wire)


class ScheduleAtType(ColumnType):
    name = "ScheduleAt"
    plain = False

    def check(self, value: Any) -> Any:
        if type(value) is ScheduleAt:
            return value
        raise TypeMismatch(self.name, value, "use ScheduleAt.interval(seconds) or .at(time)")

    def encode(self, canonical: ScheduleAt) -> list[Any]:
        return [canonical.kind, canonical.micros]

    def decode(self, wire: list[Any]) -> ScheduleAt:
        return ScheduleAt(wire[0], wire[1])


class OptionalType(ColumnType):
    orderable = False  # None does not order against values; btree keys wrap it

    def __init__(self, inner: ColumnType) -> None:
        self.inner = inner
        self.name = f"Optional[{inner.name}]"
        self.plain = inner.plain

    def check(self, value: Any) -> Any:
        return None if value is None else self.inner.check(value)

    def to_python(self, canonical: Any) -> Any:
        return None if canonical is None else self.inner.to_python(canonical)

    def encode(self, canonical: Any) -> Any:
        return None if canonical is None else self.inner.encode(canonical)

    def decode(self, wire: Any) -> Any:
        return None if wire is None else self.inner.decode(wire)

    def describe(self) -> dict[str, Any]:
        return {"type": "Optional", "of": self.inner.describe()}


class ListType(ColumnType):
    plain = False

    def __init__(self, inner: ColumnType) -> None:
        self.inner = inner
        self.name = f"list[{inner.name}]"
        self.orderable = inner.orderable

    def check(self, value: Any) -> Any:
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise TypeMismatch(self.name, value)
        check = self.inner.check
        return tuple(check(item) for item in value)

    def to_python(self, canonical: tuple[Any, ...]) -> list[Any]:
        return [self.inner.to_python(item) for item in canonical]

    def encode(self, canonical: tuple[Any, ...]) -> list[Any]:
        return [self.inner.encode(item) for item in canonical]

    def decode(self, wire: list[Any]) -> tuple[Any, ...]:
        return tuple(self.inner.decode(item) for item in wire)

    def describe(self) -> dict[str, Any]:
        return {"type": "list", "of": self.inner.describe()}


class EnumType(ColumnType):
    """A Python ``enum.Enum``; stored as the member's name so it orders and indexes."""

    def __init__(self, enum_class: type[enum.Enum]) -> None:
        self.enum_class = enum_class
        self.name = enum_class.__name__
        self.members = tuple(enum_class.__members__)

    def check(self, value: Any) -> Any:
        if isinstance(value, self.enum_class):
            return value.name
        if type(value) is str and value in self.enum_class.__members__:
            return value
        raise TypeMismatch(f"{self.name} (one of {', '.join(self.members)})", value)

    def to_python(self, canonical: str) -> enum.Enum:
        return self.enum_class[canonical]

    def describe(self) -> dict[str, Any]:
        return {"type": "enum", "enum": self.name, "members": list(self.members)}


class ProductType(ColumnType):
    """A nested ``@cosmictron.type`` class; stored as a tuple of its fields."""

    plain = False

    def __init__(self, python_class: type, fields: list[tuple[str, ColumnType]]) -> None:
        self.python_class = python_class
        self.name = python_class.__name__
        self.fields = fields
        self.orderable = all(column_type.orderable for _, column_type in fields)

    def check(self, value: Any) -> Any:
        if not isinstance(value, self.python_class):
            raise TypeMismatch(self.name, value)
        try:
            return tuple(ft.check(getattr(value, fn)) for fn, ft in self.fields)
        except TypeMismatch as exc:
            raise TypeMismatch(self.name, value, f"field: {exc}") from None

    def to_python(self, canonical: tuple[Any, ...]) -> Any:
        values = (ft.to_python(v) for (_, ft), v in zip(self.fields, canonical, strict=True))
        return self.python_class(*values)

    def encode(self, canonical: tuple[Any, ...]) -> list[Any]:
        return [ft.encode(v) for (_, ft), v in zip(self.fields, canonical, strict=True)]

    def decode(self, wire: list[Any]) -> tuple[Any, ...]:
        return tuple(ft.decode(v) for (_, ft), v in zip(self.fields, wire, strict=True))

    def describe(self) -> dict[str, Any]:
        fields = [{"name": n, **t.describe()} for n, t in self.fields]
        return {"type": "product", "product": self.name, "fields": fields}


class VectorType(ColumnType):
    """``Vector[N]``: N float32 values, stored as a tuple and logged as packed bytes."""

    plain = False

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.name = f"Vector[{dimension}]"

    def check(self, value: Any) -> Any:
        if isinstance(value, str | bytes) or not isinstance(value, Sequence | array.array):
            raise TypeMismatch(self.name, value)
        if len(value) != self.dimension:
            raise TypeMismatch(self.name, value, f"has {len(value)} components")
        try:
            values = tuple(array.array("f", value))
        except (TypeError, OverflowError) as exc:
            raise TypeMismatch(self.name, value, str(exc)) from None
        if not all(map(math.isfinite, values)):
            raise TypeMismatch(self.name, value, NOT_FINITE)
        return values

    def to_python(self, canonical: tuple[float, ...]) -> list[float]:
        return list(canonical)

    def encode(self, canonical: tuple[float, ...]) -> bytes:
        """Little-endian float32s, whatever the machine, so logs move between machines."""
        values = array.array("f", canonical)
        if _BIG_ENDIAN:
            values.byteswap()
        return values.tobytes()

    def decode(self, wire: bytes) -> tuple[float, ...]:
        values = array.array("f")
        values.frombytes(wire)
        if _BIG_ENDIAN:
            values.byteswap()
        return tuple(values)

    def describe(self) -> dict[str, Any]:
        return {"type": "Vector", "dimension": self.dimension}


BOOL = ExactType("bool", bool)
STR = ExactType("str", str)
BYTES = BytesType()
F32 = FloatType(32)
F64 = FloatType(64)
INTEGERS = {
    f"{'i' if signed else 'u'}{bits}": IntType(bits, signed)
    for bits in (8, 16, 32, 64, 128)
    for signed in (True, False)
}
I64 = INTEGERS["i64"]
IDENTITY = IdentityType()
CONNECTION_ID = ConnectionIdType()
TIMESTAMP = MicrosType(Timestamp)
TIME_DURATION = MicrosType(TimeDuration)
SCHEDULE_AT = ScheduleAtType()

SCALARS: dict[str, ColumnType] = {
    "bool": BOOL,
    "str": STR,
    "bytes": BYTES,
    "f32": F32,
    "f64": F64,
    **INTEGERS,
    "Identity": IDENTITY,
    "ConnectionId": CONNECTION_ID,
    "Timestamp": TIMESTAMP,
    "TimeDuration": TIME_DURATION,
    "ScheduleAt": SCHEDULE_AT,
}
