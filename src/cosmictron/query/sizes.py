"""How many bytes a value weighs, for the byte budgets of a query (``budget.py``).

One estimate, used everywhere so that limits are predictable: a ``str`` weighs its
length in characters (its UTF-8 size for ASCII text), ``bytes`` its length, ``None``, a
number, a bool or any other scalar (an ``Identity``, a ``Timestamp``) 8, and a list,
tuple or dict (``list[T]`` columns, nested types, parameters) 8 plus the weight of its
items. It is cheap (``len`` and a type test per value) and close enough to what the
reply will cost to make a budget mean something; it is not Python's memory size.

``row_weigher`` precomputes, from a plan's output types, which slots can hold values of
varying size, so a row of fixed-size columns costs one addition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from cosmictron.datastore import ColumnType
from cosmictron.datastore.types import BOOL, FloatType, IntType
from cosmictron.query.coerce import base

SCALAR_BYTES = 8
"""What a value of fixed size weighs (and the overhead of a list or row slot)."""

VARYING = frozenset({str, bytes, bytearray, list, tuple, dict})
"""The types whose values weigh more than ``SCALAR_BYTES`` (by their length)."""


def value_bytes(value: Any) -> int:
    """The estimated weight of one value (see the module docstring)."""
    kind = type(value)
    if kind is str or kind is bytes or kind is bytearray:
        return len(value)
    if kind is list or kind is tuple:
        return SCALAR_BYTES + sum(map(value_bytes, value))
    if kind is dict:
        return SCALAR_BYTES + sum(value_bytes(k) + value_bytes(v) for k, v in value.items())
    return SCALAR_BYTES


def row_bytes(row: Sequence[Any]) -> int:
    """The estimated weight of a row: its values' weights (no type information)."""
    return sum(map(value_bytes, row))


def fixed_size(column_type: ColumnType | None) -> bool:
    """Whether every value of ``column_type`` weighs ``SCALAR_BYTES`` (numbers, bools)."""
    inner = base(column_type)
    return inner is BOOL or isinstance(inner, IntType | FloatType)


def row_weigher(types: Sequence[ColumnType | None] | None) -> Callable[[tuple[Any, ...]], int]:
    """A function weighing a row whose slots have ``types`` (None: unknown, weigh all).

    Slots of fixed-size types count ``SCALAR_BYTES`` each without being looked at.
    """
    if types is None:
        return row_bytes
    varying = [slot for slot, t in enumerate(types) if not fixed_size(t)]
    fixed = SCALAR_BYTES * (len(types) - len(varying))
    if not varying:
        return lambda row: fixed
    if len(varying) == len(types):
        return row_bytes

    def weigh(row: tuple[Any, ...]) -> int:
        total = fixed
        for slot in varying:
            total += value_bytes(row[slot])
        return total

    return weigh


_LENGTH_WEIGHED = frozenset({str, bytes, bytearray})
"""The types ``value_bytes`` weighs by their length alone."""


def rows_weigher(
    types: Sequence[ColumnType | None] | None,
) -> Callable[[Sequence[tuple[Any, ...]]], int]:
    """A function weighing a list of rows: the sum of ``row_weigher(types)`` over them,
    worked out a column at a time with C-level loops (a scan's per-row Python was
    most of its engine time). A column whose values are all ``str`` or ``bytes``
    weighs the sum of their lengths; any other column goes through ``value_bytes``,
    so the total is exactly the per-row one.
    """
    if types is None:
        return lambda rows: sum(map(row_bytes, rows))
    varying = [slot for slot, t in enumerate(types) if not fixed_size(t)]
    fixed = SCALAR_BYTES * (len(types) - len(varying))
    getters = [itemgetter(slot) for slot in varying]

    def weigh_rows(rows: Sequence[tuple[Any, ...]]) -> int:
        total = fixed * len(rows)
        for get in getters:
            values = list(map(get, rows))
            if set(map(type, values)) <= _LENGTH_WEIGHED:
                total += sum(map(len, values))
            else:
                total += sum(map(value_bytes, values))
        return total

    return weigh_rows
