"""Fill a planned statement's parameter slots with one execution's values.

``prepare`` plans a statement with a ``Param`` wherever the text has ``:name``; ``bind``
returns the same statement with each slot replaced by its value, coerced to the type
the planner chose for it (``Param.target``): a ``Const`` inside expressions, the bare
value in lookup values, LIMIT/OFFSET and INSERT rows. A value that does not fit its
column is a ``SqlError`` naming the parameter, at the placeholder's position, exactly
as when the statement was first planned. A statement without parameters is returned
unchanged, so a cached statement costs nothing to bind.

``check_sizes`` bounds what one request may carry: at most ``params_count_max``
parameters weighing at most ``params_bytes_max`` bytes in all (``sizes.py``; names
included), checked before anything is parsed or cached. Parameters the statement does
not reference count against these bounds but are otherwise ignored, as SQLite and
psycopg ignore them: never bound, never part of a cache key, never kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cosmictron.datastore import TypeMismatch
from cosmictron.datastore.types import FloatType, IntType
from cosmictron.errors import InvalidRequest, TooLarge
from cosmictron.query.budget import QueryBudget
from cosmictron.query.coerce import base, coerce
from cosmictron.query.expressions import compile_expr
from cosmictron.query.plan import Computed, Const, Param, plan_fields
from cosmictron.query.position import located_error
from cosmictron.query.sizes import SCALAR_BYTES, value_bytes

T = TypeVar("T")

_SCALARS = frozenset({int, float, bool, type(None)})
"""Types ``value_bytes`` weighs ``SCALAR_BYTES``, known without calling it."""


def check_sizes(params: Mapping[str, Any] | None, budget: QueryBudget) -> None:
    """Refuse a request whose parameters are too many or too large (before any work).

    Raises:
        InvalidRequest: more than ``budget.effective_params_count_max`` parameters.
        TooLarge: the parameters weigh more than ``budget.effective_params_bytes_max``.
    """
    if not params:
        return
    count_max = budget.effective_params_count_max
    if len(params) > count_max:
        raise InvalidRequest(
            f"the statement was sent {len(params)} parameters, more than {count_max} (the "
            f"most one SQL request may carry); "
            f"{budget.hint('sql_params_count_max', 'params_count_max', False)}"
        )
    bytes_max = budget.effective_params_bytes_max
    total = 0
    for name, value in params.items():
        # ``value_bytes`` of each, with a str name and a scalar value weighed here:
        # a point query's one key is weighed on every call.
        kind = type(value)
        total += (len(name) if type(name) is str else value_bytes(name)) + (
            SCALAR_BYTES if kind in _SCALARS else value_bytes(value)
        )
        if total > bytes_max:
            raise TooLarge(
                f"the statement's parameters weigh more than {bytes_max:,} bytes (the most "
                f"one SQL request may carry; send bulk data through a reducer or "
                f"bulk_insert); {budget.hint('sql_params_bytes_max', 'params_bytes_max', False)}"
            )


def fixed_weight(types: tuple[type, ...]) -> bool:
    """Whether parameter values of ``types`` weigh the same on every call (scalars:
    ``SCALAR_BYTES`` each), so that parameters of the same names passing
    ``check_sizes`` once pass it every time: a prepared statement's caller may weigh
    them once instead of per call."""
    return all(kind in _SCALARS for kind in types)


def has_params(value: Any) -> bool:
    """Whether a plan, statement or value holds a ``Param`` anywhere."""
    if isinstance(value, Param | Computed):
        return True
    if isinstance(value, tuple | list):
        return any(has_params(item) for item in value)
    if isinstance(value, dict):
        return any(has_params(item) for item in value.values())
    return any(has_params(getattr(value, name)) for name in plan_fields(type(value)))


def bind(statement: T, values: Mapping[str, Any]) -> T:
    """``statement`` with every ``Param`` filled from ``values`` (name to raw value).

    Raises:
        SqlError: a value does not fit the column it is compared with or assigned to.
    """
    result: T = _fill(statement, values, True)
    return result


def param_value(param: Param, values: Mapping[str, Any]) -> Any:
    """The parameter's value in its target type, or a ``SqlError`` naming it."""
    return coercer(param)(values[param.name])


def coercer(param: Param) -> Callable[[Any], Any]:
    """A function coercing a value for ``param`` (fast for the common exact types)."""
    target = param.target
    if target is None:
        return _identity
    inner = base(target)
    exact: tuple[type, ...] = ()
    if isinstance(inner, IntType | FloatType):
        exact = (int, float)  # coerce keeps numbers as they are (2.5 = id matches none)

    def run(value: Any) -> Any:
        if type(value) in exact:
            return value
        try:
            return coerce(value, target)
        except TypeMismatch as exc:
            raise located_error(f"type mismatch: {param.context}: {exc}", param.where) from None

    return run


def _identity(value: Any) -> Any:
    return value


def _fill(value: Any, values: Mapping[str, Any], in_expr: bool) -> Any:
    if isinstance(value, Param) and OUTER_MARK in value.name and value.name not in values:
        return value  # a correlated subquery's outer value, filled per outer row
    if isinstance(value, Param):
        filled = param_value(value, values)
        return Const(filled, value.target or value.type) if in_expr else filled
    if isinstance(value, Computed):
        result = compile_expr(_fill(value.expr, values, True))(())
        if result is None:
            return None
        try:
            return coerce(result, value.target)
        except TypeMismatch as exc:
            raise located_error(f"type mismatch: {value.context}: {exc}", value.where) from None
    if isinstance(value, tuple):
        return tuple(_fill(item, values, in_expr) for item in value)
    if isinstance(value, list):
        return [_fill(item, values, in_expr) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, values, in_expr) for key, item in value.items()}
    names = plan_fields(type(value))
    if names and has_params(value):
        kind = type(value).__name__
        changes = {
            name: _fill(getattr(value, name), values, (kind, name) not in _RAW_FIELDS)
            for name in names
        }
        return dataclasses.replace(value, **changes)
    return value


OUTER_MARK = "#"
"""In a ``Param``'s name: a correlated subquery's outer value (``subquery_bind.py``), which
no ``:name`` can spell, filled when the subquery runs rather than with the statement's."""

_RAW_FIELDS = {
    ("IndexScan", "values"),
    ("Limit", "limit"),
    ("Limit", "offset"),
    ("InsertStatement", "rows"),
}
"""Fields holding plain values, not expressions: a ``Param`` there becomes its value."""
