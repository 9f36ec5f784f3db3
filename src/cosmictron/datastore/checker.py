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

import os
from collections.abc import Callable, Sequence
from typing import Any

from cosmictron.datastore.types import BOOL, F64, STR, ColumnType, IntType

_RowChecker: Any = None
"""The compiled checker (``_rows.RowChecker``: the generated function's steps in C), or
None: not built, or ``COSMICTRON_PURE`` is set; ``compile_checker`` then returns the
generated Python function. See docs/design/hot-path.md, "Seventh round"."""
if not os.environ.get("COSMICTRON_PURE"):
    try:
        from cosmictron.datastore._rows import RowChecker as _RowChecker
    except ImportError:  # built without a compiler
        pass

# What ``_rows.RowChecker`` tests in C for a column (``_kind``); the same cases ``_inline``
# writes out, and 0 for a value passed to the column type's ``check``.
_CALL, _INT, _FINITE_FLOAT, _STR, _BOOL = range(5)


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


def _kind(column_type: ColumnType) -> int:
    """The case of ``_inline`` a column falls in, as ``_rows.RowChecker`` numbers it."""
    if isinstance(column_type, IntType):
        return _INT
    if column_type is F64:
        return _FINITE_FLOAT
    if column_type is STR:
        return _STR
    if column_type is BOOL:
        return _BOOL
    return _CALL


def compile_checker(
    column_types: Sequence[ColumnType], compiled: bool = True
) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """Return ``f(values) -> canonical tuple`` for rows of exactly these column types.

    The compiled ``RowChecker`` when it is built (``compiled=False``: the generated
    Python function regardless, which tests compare it with); both return equal tuples
    and raise the same errors.
    """
    if not column_types:
        return _check_nothing
    if compiled and _RowChecker is not None and len(column_types) <= 64:
        kinds = [_kind(t) for t in column_types]
        return _RowChecker(
            kinds,
            [t.low if k == _INT else 0 for t, k in zip(column_types, kinds, strict=True)],  # type: ignore[attr-defined]
            [t.high if k == _INT else 0 for t, k in zip(column_types, kinds, strict=True)],  # type: ignore[attr-defined]
            [t.check for t in column_types],
        )
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
