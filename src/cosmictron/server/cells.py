"""CSV cell forms of column values, both ways: what bulk loads read and exports write.

A CSV cell is text, so each column type has one text form (docs/guide/import-export.md
lists them); NDJSON rows use the JSON forms of ``wire.py`` instead.

=================  ==========================================================
type               CSV cell
=================  ==========================================================
integers, floats   decimal text (``12``, ``-3``, ``1.5``, ``1e-9``)
bool               ``true`` / ``false`` (also ``1`` / ``0``, any letter case)
str                the text itself; an empty cell is the empty string
bytes              hex, with or without ``0x`` (exports write ``0x…``)
Identity           64 hex digits, with or without ``0x`` (exports write ``0x…``)
ConnectionId       32 hex digits, with or without ``0x``
Timestamp          RFC 3339 (``2026-01-02T03:04:05.000006Z``) or integer microseconds
TimeDuration       integer microseconds
enum               the member's name
Optional[T]        an empty cell is NULL, else T's form. Because a CSV reader cannot
                   tell ``""`` from an empty cell, an empty string in an
                   ``Optional[str]`` (or ``Optional[bytes]``) column cannot be written
                   in CSV: exports refuse it and name the row; use NDJSON for such data
lists, products,   the value's JSON form (``wire.py``) inside the cell, e.g.
Vector, ScheduleAt ``"[1, 2]"`` or ``"{""x"": 1}"``
=================  ==========================================================

Readers are looked up once per column (``cell_reader``) and mapped over a whole column
at a time (``read_column``), so a million cells cost one C-level ``map``, not a
Python-level dispatch per cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cosmictron import bounded_json
from cosmictron.datastore import ColumnType
from cosmictron.datastore.types import (
    BOOL,
    BYTES,
    CONNECTION_ID,
    IDENTITY,
    STR,
    TIME_DURATION,
    TIMESTAMP,
    EnumType,
    FloatType,
    IntType,
    OptionalType,
)
from cosmictron.errors import InvalidRequest
from cosmictron.server.wire import json_to_python
from cosmictron.values import ConnectionId, Identity, TimeDuration, Timestamp, json_form

CellReader = Callable[[str], Any]
CellWriter = Callable[[Any], str]

_BOOLS = {"true": True, "false": False, "1": True, "0": False}


class CellError(ValueError):
    """A cell of a column could not be read; ``row_index`` is its position in the column."""

    def __init__(self, row_index: int, text: str, expected: str) -> None:
        shown = text if len(text) <= 60 else text[:57] + "..."
        super().__init__(f"expected {expected}, got {shown!r}")
        self.row_index = row_index


def _bool(text: str) -> bool:
    return _BOOLS[text.lower()]


def _hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith(("0x", "0X")) else text)


def _timestamp(text: str) -> Timestamp:
    if text.lstrip("-").isdigit():
        return Timestamp(int(text))
    return Timestamp.parse(text)


def _duration(text: str) -> TimeDuration:
    return TimeDuration(int(text))


def _json_reader(column_type: ColumnType) -> CellReader:
    def read(text: str) -> Any:
        return json_to_python(bounded_json.loads(text, "the cell"), column_type)

    return read


def cell_reader(column_type: ColumnType) -> CellReader | None:
    """The function turning a cell into a value the column's check accepts; None: as is."""
    if column_type is STR or isinstance(column_type, EnumType):
        return None  # the checker takes the text (enum members by name)
    if isinstance(column_type, IntType):
        return int
    if isinstance(column_type, FloatType):
        return float
    if isinstance(column_type, OptionalType):
        inner = cell_reader(column_type.inner)
        if inner is None:
            return lambda text: text or None
        return lambda text: inner(text) if text else None
    simple: dict[ColumnType, CellReader] = {
        BOOL: _bool,
        BYTES: _hex_bytes,
        IDENTITY: Identity.from_hex,
        CONNECTION_ID: ConnectionId.from_hex,
        TIMESTAMP: _timestamp,
        TIME_DURATION: _duration,
    }
    for known, reader in simple.items():
        if column_type is known:
            return reader
    return _json_reader(column_type)


def read_column(cells: Sequence[str], reader: CellReader | None, expected: str) -> Sequence[Any]:
    """Every cell of one column read at once.

    Raises:
        CellError: the first cell that does not read, with its position.
    """
    if reader is None:
        return cells
    try:
        return list(map(reader, cells))
    except (ValueError, TypeError, KeyError, InvalidRequest, OverflowError):
        pass
    for row_index, text in enumerate(cells):  # find the first bad cell; rare, so slow is fine
        try:
            reader(text)
        except (ValueError, TypeError, KeyError, InvalidRequest, OverflowError):
            raise CellError(row_index, text, expected) from None
    raise AssertionError("a column failed to read but no cell of it fails")


def _hex(value: Any) -> str:
    return "0x" + value.hex()


def cell_writer(column_type: ColumnType, column: str) -> CellWriter:
    """The function turning a stored (canonical) value into its cell text.

    Raises (from the writer):
        InvalidRequest: an empty string in an ``Optional[str]``/``Optional[bytes]``
            column, which CSV cannot tell from NULL.
    """
    if column_type is STR or isinstance(column_type, EnumType | IntType | FloatType):
        return str
    if column_type is BOOL:
        return lambda value: "true" if value else "false"
    if column_type in (BYTES, IDENTITY, CONNECTION_ID):
        return _hex
    if column_type is TIMESTAMP:
        return lambda value: value.isoformat()
    if column_type is TIME_DURATION:
        return lambda value: str(value.micros)
    if isinstance(column_type, OptionalType):
        inner = cell_writer(column_type.inner, column)

        def optional(value: Any) -> str:
            if value is None:
                return ""
            text = inner(value)
            if not text:
                raise InvalidRequest(
                    f"column {column!r} ({column_type.name}) holds an empty value, which "
                    f"CSV cannot tell from NULL; export as NDJSON instead"
                )
            return text

        return optional
    return lambda value: bounded_json.dumps(
        json_form(column_type.to_python(value)), separators=(",", ":")
    )
