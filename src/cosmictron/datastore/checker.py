"""Compiled row checkers: one generated function per table checks a whole row.

Checking is on every insert's path, so instead of calling each column type's ``check``
in a loop, ``compile_checker`` writes a function with the common cases inline (an ``int``
in range, a ``str``, a ``float``) and calls ``check`` only for the rest, the way
``dataclasses`` and ``namedtuple`` generate their methods. The result is exactly what
calling ``check`` per column would return, and raises the same ``TypeMismatch``.

>>> from cosmictron.datastore import types
>>> check = compile_checker([types.I64, types.STR])
>>> check((1, "a"))
(1, 'a')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cosmictron.datastore.types import BOOL, F64, STR, ColumnType, IntType


def _inline(column_type: ColumnType, name: str, fallback: str) -> str:
    """A Python expression giving the canonical value of variable ``name``."""
    if isinstance(column_type, IntType):
        low, high = column_type.low, column_type.high
        return f"({name} if type({name}) is int and {low} <= {name} <= {high} else {fallback})"
    if column_type is F64:  # x - x is NaN for NaN and the infinities: the fallback refuses
        return f"({name} if type({name}) is float and {name} - {name} == 0.0 else {fallback})"
    for exact, python_name in ((STR, "str"), (BOOL, "bool")):
        if column_type is exact:
            return f"({name} if type({name}) is {python_name} else {fallback})"
    return fallback


def check_expression(column_type: ColumnType, name: str, fallback: str) -> str:
    """The expression ``compile_checker`` inlines for one column, for other generated code.

    It gives the canonical value of the variable ``name``, calling the source text
    ``fallback`` (which should call the column type's ``check``) for anything but the
    inlined common cases. The server's bulk converters use it to check each cell in the
    same generated function that reads it (``server/bulk_rows.py``).
    """
    return _inline(column_type, name, fallback)


def compile_checker(
    column_types: Sequence[ColumnType],
) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """Return ``f(values) -> canonical tuple`` for rows of exactly these column types."""
    if not column_types:
        return _check_nothing
    names = [f"v{i}" for i in range(len(column_types))]
    namespace: dict[str, Any] = {f"c{i}": t.check for i, t in enumerate(column_types)}
    parts = [
        _inline(t, n, f"c{i}({n})")
        for i, (t, n) in enumerate(zip(column_types, names, strict=True))
    ]
    unpack = ", ".join(names) + ("," if len(names) == 1 else "")
    source = (
        f"def check_values(values):\n"
        f"    {unpack} = values\n"
        f"    return ({', '.join(parts)}{',' if len(parts) == 1 else ''})\n"
    )
    exec(source, namespace)
    return namespace["check_values"]


def _check_nothing(values: Sequence[Any]) -> tuple[Any, ...]:
    if len(values):
        raise ValueError("expected no values")
    return ()
