"""JSON forms of column values: what HTTP and WebSocket clients send and receive.

One mapping per column type, both ways, so a value round-trips through a client
unchanged (docs/reference/http.md lists them):

=================  ==========================================================
type               JSON
=================  ==========================================================
integers, floats   number; an integer past ±(2**53 - 1) as a decimal string
                   (docs/design/big-integers.md), read back from either form
bool, str          boolean, string
bytes              hex string
Identity           64 hex digits; ConnectionId: 32 hex digits
Timestamp          RFC 3339 string with microseconds (an integer of
                   microseconds since the epoch is accepted too)
TimeDuration       integer microseconds
ScheduleAt         ``{"interval_micros": n}`` or ``{"at": "<RFC 3339>"}``
Optional[T]        null or T's form
list[T], Vector    array
enum               the member's name
@cosmictron.type   object keyed by field name
=================  ==========================================================

The msgpack WebSocket protocol uses the same forms but for bytes (``bin``) and integers
past 64 bits (``bounded_msgpack``); decoding here accepts both forms of bytes.

Rows are objects keyed by column name (DESIGN.md §5). Encoding depends on the value
alone and is ``values.json_form``, shared with the client SDK and the log. Decoding
needs the column type and lives here: it gives the Python value a reducer argument's
check accepts; a value of the wrong shape is an ``InvalidRequest`` naming the expected
type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cosmictron.datastore import ColumnType
from cosmictron.datastore.types import (
    BytesType,
    ConnectionIdType,
    IdentityType,
    IntType,
    ListType,
    MicrosType,
    OptionalType,
    ProductType,
    ScheduleAtType,
)
from cosmictron.errors import InvalidRequest
from cosmictron.values import (
    ConnectionId,
    Identity,
    ScheduleAt,
    TimeDuration,
    Timestamp,
    json_form,
)


def row_to_json(
    row: Sequence[Any], columns: Sequence[str], form: Callable[[Any], Any] = json_form
) -> dict[str, Any]:
    """A row of Python values as an object keyed by column name; ``form`` gives each value's
    form on the wire (JSON's by default; ``bounded_msgpack.form`` for msgpack)."""
    return {name: form(value) for name, value in zip(columns, row, strict=True)}


_CONVERTED = (
    IdentityType,
    ConnectionIdType,
    MicrosType,
    ScheduleAtType,
    BytesType,
    ListType,
    ProductType,
)


def integer_text(text: str) -> int:
    """The integer a decimal string stands for (how JSON carries one past ±2**53 - 1).

    Raises:
        ValueError: not an optional ``-`` and ASCII digits (no spaces, ``+``, ``_``).
    """
    digits = text[1:] if text.startswith("-") else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 40:
        raise ValueError("an integer as a string must be decimal digits with an optional '-'")
    return int(text)


def wide_int_positions(types: Sequence[ColumnType]) -> tuple[int, ...]:
    """Positions of the integer types whose values may arrive as decimal strings: a caller
    that skips ``json_to_python`` (``arrives_as_is``) checks only these for a string."""
    found = []
    for position, column_type in enumerate(types):
        while isinstance(column_type, OptionalType):
            column_type = column_type.inner
        if isinstance(column_type, IntType):
            found.append(position)
    return tuple(found)


def arrives_as_is(column_type: ColumnType) -> bool:
    """Whether ``json_to_python`` returns every value of this type unchanged (numbers,
    bool, str, enum names, and optionals of them): a caller may skip it for such values."""
    while isinstance(column_type, OptionalType):
        column_type = column_type.inner
    return not isinstance(column_type, _CONVERTED)


def from_json(value: Any, column_type: ColumnType, where: str) -> Any:
    """The Python value for ``column_type`` a JSON value stands for.

    Raises:
        InvalidRequest: the JSON value has the wrong shape (``where`` names it).
    """
    try:
        return json_to_python(value, column_type)
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidRequest(
            f"{where}: expected {column_type.name} in its JSON form, got {value!r} ({exc})"
        ) from None


def json_to_python(value: Any, column_type: ColumnType) -> Any:
    """``from_json`` without the error wrapping: bulk loads and CSV cells call it in
    their fast paths and name the line and column themselves when it raises."""
    if value is None:
        return None
    if isinstance(column_type, OptionalType):
        return json_to_python(value, column_type.inner)
    if isinstance(column_type, IntType) and isinstance(value, str):
        return integer_text(value)
    if isinstance(column_type, IdentityType) and isinstance(value, str):
        return Identity.from_hex(value)
    if isinstance(column_type, ConnectionIdType) and isinstance(value, str):
        return ConnectionId.from_hex(value)
    if isinstance(column_type, MicrosType):
        if column_type.python_type is Timestamp:
            if isinstance(value, str):
                return Timestamp.parse(value)
            if isinstance(value, int) and not isinstance(value, bool):
                return Timestamp(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            return TimeDuration(value)
        return value
    if isinstance(column_type, ScheduleAtType) and isinstance(value, dict):
        if "interval_micros" in value:
            return ScheduleAt("interval", int(value["interval_micros"]))
        return ScheduleAt("at", Timestamp.parse(value["at"]).micros_since_epoch)
    if isinstance(column_type, BytesType) and isinstance(value, str):
        return bytes.fromhex(value)
    if isinstance(column_type, BytesType) and isinstance(value, bytes):
        return value  # msgpack's bin
    if isinstance(column_type, ListType) and isinstance(value, list):
        return [json_to_python(item, column_type.inner) for item in value]
    if isinstance(column_type, ProductType) and isinstance(value, dict):
        unknown = set(value) - {name for name, _ in column_type.fields}
        if unknown:
            raise KeyError(f"unknown field {sorted(unknown)[0]!r}")
        return column_type.python_class(
            **{
                name: json_to_python(value[name], field_type)
                for name, field_type in column_type.fields
                if name in value
            }
        )
    return value
