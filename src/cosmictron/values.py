"""Value types a module can use as columns and reducer arguments.

These are immutable, hashable and ordered, because rows are stored as tuples of them and
indexed by them. The integer widths (``u8`` … ``i128``) and ``f32`` are ``typing.NewType``
markers: ``u8(5)`` is just ``5``, and the annotation tells the datastore which range to
enforce on insert.
"""

from __future__ import annotations

import datetime as _dt
import enum
import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar, NewType

from cosmictron.errors import InvalidRequest

u8 = NewType("u8", int)
u16 = NewType("u16", int)
u32 = NewType("u32", int)
u64 = NewType("u64", int)
u128 = NewType("u128", int)
i8 = NewType("i8", int)
i16 = NewType("i16", int)
i32 = NewType("i32", int)
i64 = NewType("i64", int)
i128 = NewType("i128", int)
f32 = NewType("f32", float)
f64 = NewType("f64", float)

_MICROS_PER_SECOND = 1_000_000


@dataclass(frozen=True, order=True, slots=True)
class Identity:
    """A 32-byte identity of a caller or a database; shown as 64 hex digits."""

    data: bytes

    size_bytes: ClassVar[int] = 32

    def __post_init__(self) -> None:
        if type(self.data) is not bytes or len(self.data) != 32:
            raise ValueError(f"an Identity is exactly 32 bytes, got {self.data!r}")

    @classmethod
    def from_hex(cls, text: str) -> Identity:
        """Parse 64 hex digits (an optional ``0x`` prefix is allowed)."""
        digits = text[2:] if text.startswith(("0x", "0X")) else text
        try:
            data = bytes.fromhex(digits)
        except ValueError:
            raise ValueError(f"an Identity is 64 hex digits, got {text!r}") from None
        return cls(data)

    @classmethod
    def random(cls) -> Identity:
        return cls(os.urandom(32))

    @classmethod
    def zero(cls) -> Identity:
        return cls(bytes(32))

    def hex(self) -> str:
        return self.data.hex()

    def __str__(self) -> str:
        return self.data.hex()

    def __repr__(self) -> str:
        return f"Identity({self.data.hex()[:16]}…)"


@dataclass(frozen=True, order=True, slots=True)
class ConnectionId:
    """A 128-bit id of one client connection; shown as 32 hex digits."""

    value: int

    def __post_init__(self) -> None:
        if type(self.value) is not int or not 0 <= self.value < 1 << 128:
            raise ValueError(f"a ConnectionId is an unsigned 128-bit integer, got {self.value!r}")

    @classmethod
    def random(cls) -> ConnectionId:
        return cls(int.from_bytes(os.urandom(16), "big"))

    @classmethod
    def from_hex(cls, text: str) -> ConnectionId:
        return cls(int(text, 16))

    def hex(self) -> str:
        return f"{self.value:032x}"

    def __str__(self) -> str:
        return self.hex()


@dataclass(frozen=True, order=True, slots=True)
class TimeDuration:
    """A signed span of time with microsecond precision."""

    micros: int

    @classmethod
    def from_seconds(cls, seconds: float) -> TimeDuration:
        return cls(round(seconds * _MICROS_PER_SECOND))

    def total_seconds(self) -> float:
        return self.micros / _MICROS_PER_SECOND

    def __str__(self) -> str:
        return f"{self.total_seconds()}s"


@dataclass(frozen=True, order=True, slots=True)
class Timestamp:
    """A point in time: microseconds since the Unix epoch, UTC."""

    micros_since_epoch: int

    @classmethod
    def now(cls) -> Timestamp:
        return cls(time.time_ns() // 1000)

    @classmethod
    def from_datetime(cls, value: _dt.datetime) -> Timestamp:
        if value.tzinfo is None:
            raise ValueError("a Timestamp needs a timezone-aware datetime (use UTC)")
        delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
        return cls(delta // _dt.timedelta(microseconds=1))

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        """Parse RFC 3339 text such as ``2026-11-26T10:00:00Z``."""
        value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return cls.from_datetime(value)

    def to_datetime(self) -> _dt.datetime:
        epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
        return epoch + _dt.timedelta(microseconds=self.micros_since_epoch)

    def isoformat(self) -> str:
        return self.to_datetime().isoformat().replace("+00:00", "Z")

    def __add__(self, other: TimeDuration) -> Timestamp:
        if not isinstance(other, TimeDuration):
            return NotImplemented
        return Timestamp(self.micros_since_epoch + other.micros)

    def __sub__(self, other: Timestamp | TimeDuration) -> Timestamp | TimeDuration:
        if isinstance(other, TimeDuration):
            return Timestamp(self.micros_since_epoch - other.micros)
        if isinstance(other, Timestamp):
            return TimeDuration(self.micros_since_epoch - other.micros_since_epoch)
        return NotImplemented

    def __str__(self) -> str:
        return self.isoformat()


@dataclass(frozen=True, order=True, slots=True)
class ScheduleAt:
    """When a scheduled reducer runs: every ``interval`` or once ``at`` a time.

    ``kind`` is ``"interval"`` or ``"at"``; ``micros`` is the interval length or the
    timestamp in microseconds since the epoch.
    """

    kind: str
    micros: int

    def __post_init__(self) -> None:
        if self.kind not in ("interval", "at"):
            raise ValueError(f"ScheduleAt kind is 'interval' or 'at', got {self.kind!r}")
        if self.kind == "interval" and self.micros <= 0:
            raise ValueError(f"a schedule interval must be positive, got {self.micros} µs")

    @classmethod
    def interval(cls, seconds: float | TimeDuration) -> ScheduleAt:
        micros = seconds.micros if isinstance(seconds, TimeDuration) else round(seconds * 1e6)
        return cls("interval", micros)

    @classmethod
    def at(cls, when: Timestamp | _dt.datetime) -> ScheduleAt:
        if isinstance(when, _dt.datetime):
            when = Timestamp.from_datetime(when)
        return cls("at", when.micros_since_epoch)


class Vector:
    """``Vector[N]``: a fixed-length vector of float32, for semantic memory.

    ``Vector[384]`` is a distinct class per length, so it is a valid annotation; values
    are any sequence of N numbers and read back as a list of floats.
    """

    dimension: ClassVar[int] = 0
    _by_dimension: ClassVar[dict[int, type[Vector]]] = {}

    def __class_getitem__(cls, dimension: int) -> type[Vector]:
        if type(dimension) is not int or dimension <= 0:
            raise TypeError(f"Vector[N] needs a positive integer length, got {dimension!r}")
        found = cls._by_dimension.get(dimension)
        if found is None:
            found = type(f"Vector[{dimension}]", (Vector,), {"dimension": dimension})
            cls._by_dimension[dimension] = found
        return found


MAX_SAFE_INTEGER = 2**53 - 1
"""Largest integer every JSON parser reads exactly (JavaScript's ``Number.MAX_SAFE_INTEGER``):
``json_form`` writes an integer past ±this as a decimal string (docs/design/big-integers.md)."""


def json_form(value: Any, *, exact_ints: bool = False) -> Any:
    """The JSON form of a value: how HTTP and WebSocket clients send and receive it.

    An integer outside ±``MAX_SAFE_INTEGER`` becomes a decimal string, so a browser's
    ``JSON.parse`` cannot round it (the column's type says it is an integer);
    ``exact_ints=True`` keeps every integer a number, for readers that parse JSON numbers
    exactly (the log's SQL parameters, replayed by the server).

    The form follows from the value's class alone (docs/reference/http.md, "Values in
    JSON"), so the server (rows, return values), the client SDK (arguments, keys) and
    the log (SQL parameters) share this one function. Raises ``InvalidRequest`` for a
    value with no JSON form.

    >>> json_form(Identity.zero())[:8]
    '00000000'
    >>> json_form({"at": [b"\\x01", TimeDuration(5)]})
    {'at': ['01', 5]}
    >>> json_form([2**53 - 1, -(2**63)])
    [9007199254740991, '-9223372036854775808']
    """
    kind = type(value)  # exact types first: the common cells, cheapest to tell
    if kind is int:  # outside JavaScript's exact range: a decimal string
        if exact_ints or -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        return str(value)
    if kind is str or kind is float or kind is bool or value is None:
        return value
    if isinstance(value, enum.Enum):  # before int: an IntEnum is an int too
        return value.name
    if isinstance(value, bool | float | str):
        return value
    if isinstance(value, int):
        return json_form(int(value), exact_ints=exact_ints)
    if isinstance(value, Identity | ConnectionId):
        return value.hex()
    if isinstance(value, Timestamp):
        return value.isoformat()
    if isinstance(value, TimeDuration):
        return json_form(value.micros, exact_ints=exact_ints)
    if isinstance(value, ScheduleAt):
        if value.kind == "interval":
            return {"interval_micros": value.micros}
        return {"at": Timestamp(value.micros).isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(key): json_form(item, exact_ints=exact_ints) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_form(item, exact_ints=exact_ints) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {
            name: json_form(getattr(value, name), exact_ints=exact_ints)
            for name in value.__dataclass_fields__
        }
    raise InvalidRequest(f"{type(value).__name__} has no JSON form: {value!r}")
