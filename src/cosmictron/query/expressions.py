"""Compile bound expressions into Python closures, once per query.

Interpreting the expression tree for every row would walk the tree and dispatch on node
types millions of times; a closure per node, built once, leaves only the calls. The
semantics follow SQLite, which the oracle tests compare against:

* NULL is ``None``. A comparison or arithmetic with NULL is NULL; ``NOT NULL`` is NULL;
  ``AND`` is FALSE if either side is FALSE, else NULL if either is NULL; ``OR`` dually.
  ``WHERE`` keeps a row only when its predicate is TRUE (``None`` is falsy: ``if p(row)``).
* Integer ``/`` truncates toward zero (``-7 / 2`` is -3); ``%`` takes the dividend's
  sign and works on the integer parts; division or modulo by zero is NULL.
* ``||`` turns non-text operands into text and joins them. The length of the result is
  known from its operands before it is built: past the query's ``value_bytes_max``
  (``limits.sql_value_bytes_max``) it is refused with ``QueryTooCostly`` instead of
  allocated, so a short query cannot build a gigabyte from one parameter.
* ``LIKE`` is case-sensitive, as in standard SQL (SQLite with ``PRAGMA
  case_sensitive_like = ON``); ``%`` is any run of characters and ``_`` one character.
* ``a IS b`` is ``=`` for which NULL equals NULL (never NULL itself); ``IS NOT`` its
  negation. ``x IN ()`` is FALSE and ``x NOT IN ()`` TRUE, even for a NULL ``x``.
* A function call (``Func``) runs the registry's function (``functions.py``) under its
  declared NULL rule and value limit; ``CASE`` evaluates only the branch it takes;
  ``CAST`` converts as SQLite does (``conversions.py``, ``coerce.caster``).

``compile_expr`` is also the entry point for evaluating any bound expression outside a
plan (``scalar.py``); an expression node defined elsewhere registers its compiler in
``COMPILERS``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from functools import lru_cache
from operator import itemgetter
from typing import Any

from cosmictron import limits
from cosmictron.datastore.types import IntType
from cosmictron.errors import QueryTooCostly
from cosmictron.query.budget import DEFAULT_BUDGET, Meter
from cosmictron.query.coerce import base, caster
from cosmictron.query.conversions import to_text, truth
from cosmictron.query.functions import runnable
from cosmictron.query.plan import (
    Agg,
    Between,
    Binary,
    Case,
    Cast,
    Col,
    Const,
    Evaluated,
    Expr,
    Func,
    InList,
    IsNull,
    KeySet,
    Like,
    SemiJoin,
    Unary,
)
from cosmictron.query.sizes import value_bytes

Compiled = Callable[[tuple[Any, ...]], Any]

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def divide(a: Any, b: Any) -> Any:
    """SQLite division: integers truncate toward zero, dividing by zero is NULL.

    >>> divide(7, 2), divide(-7, 2), divide(7, 0), divide(1, 2.0)
    (3, -3, None, 0.5)
    """
    if not b:
        return None
    if isinstance(a, int) and isinstance(b, int):  # bools too: SQLite stores 1 and 0
        quotient = abs(a) // abs(b)
        return quotient if (a < 0) == (b < 0) else -quotient
    return a / b


def modulo(a: Any, b: Any) -> Any:
    """SQLite ``%``: on the integer parts, with the dividend's sign; float if either is.

    >>> modulo(-7, 3), modulo(7, -3), modulo(7.5, 2), modulo(5, 0)
    (-1, 1, 1.0, None)
    """
    whole_a, whole_b = int(a), int(b)
    if whole_b == 0:
        return None
    remainder = abs(whole_a) % abs(whole_b)
    if whole_a < 0:
        remainder = -remainder
    return float(remainder) if isinstance(a, float) or isinstance(b, float) else remainder


def concatenator(meter: Meter | None) -> Callable[[Any, Any], str]:
    """SQL ``||`` under ``meter``'s value limit (None: ``limits.sql_value_bytes_max``).

    Each operand becomes text (as ``str`` does), and the result's length is checked
    against the limit before the result is allocated.
    """
    cap = limits.sql_value_bytes_max if meter is None else meter.value_bytes_max
    budget = DEFAULT_BUDGET if meter is None else meter.budget

    def refuse(size: int) -> QueryTooCostly:
        return QueryTooCostly(
            f"the query builds a value of {size:,} bytes or more with ||, larger than "
            f"{cap:,} bytes (the largest value a query may build); build it in a reducer, "
            f"or raise the limit: {budget.hint('sql_value_bytes_max', 'value_bytes_max')}"
        )

    def text(value: Any) -> str:
        if type(value) is str:
            return value
        size = value_bytes(value)
        if size > cap:
            raise refuse(size)
        try:
            return str(to_text(value))
        except ValueError:  # an integer with more digits than Python will print
            raise refuse(cap + 1) from None

    def concat(a: Any, b: Any) -> str:
        left, right = text(a), text(b)
        size = len(left) + len(right)
        if size > cap:
            raise refuse(size)
        return left + right

    return concat


_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _overflowing(exact: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``exact`` on integers as SQLite computes it in 64 bits: a result outside them is
    computed again in floating point (``(1 << 63) - 2`` is -9.223372036854776e18, as
    in SQLite), never a Python integer SQLite could not hold.

    >>> _overflowing(operator.sub)(-(1 << 63), 2), _overflowing(operator.add)(1, 2)
    (-9.223372036854776e+18, 3)
    """

    def checked(a: Any, b: Any) -> Any:
        result = exact(a, b)
        if type(result) is int and not _I64_MIN <= result <= _I64_MAX:
            return exact(float(a), float(b))
        return result

    return checked


_CHECKED: dict[str, Callable[[Any, Any], Any]] = {
    op: _overflowing(function)
    for op, function in (
        ("+", operator.add),
        ("-", operator.sub),
        ("*", operator.mul),
        ("/", divide),
    )
}
"""Integer arithmetic that overflows 64 bits becomes a real, as in SQLite."""

_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": divide,
    "%": modulo,
}


@lru_cache(maxsize=256)
def like_matcher(pattern: str) -> Callable[[str], Any]:
    """A function telling whether a string matches a LIKE pattern.

    >>> match = like_matcher("a%_z")
    >>> bool(match("abcz")), bool(match("az")), bool(match("Abcz"))
    (True, False, False)
    """
    parts = []
    for char in pattern:
        if char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL).fullmatch


def compile_expr(expr: Expr, meter: Meter | None = None) -> Compiled:
    """Turn ``expr`` into ``f(row) -> value`` (``None`` for NULL).

    ``meter`` is the run whose value limit the values built obey (None: the default
    limits, for the database's own work: DML, subscription deltas, constants).
    """
    if isinstance(expr, Col):
        return itemgetter(expr.slot)
    if isinstance(expr, Const):
        value = expr.value
        return lambda row: value
    if isinstance(expr, Binary):
        return _binary(expr, meter)
    if isinstance(expr, Unary):
        return _unary(expr, meter)
    if isinstance(expr, IsNull):
        return _is_null(expr, meter)
    if isinstance(expr, InList):
        return _in_list(expr, meter)
    if isinstance(expr, Between):
        low = Binary(">=", expr.operand, expr.low)
        high = Binary("<=", expr.operand, expr.high)
        both = compile_expr(Binary("AND", low, high), meter)
        return _negate(both) if expr.negated else both
    if isinstance(expr, Like):
        return _like(expr, meter)
    if isinstance(expr, KeySet):
        return _key_set(expr, meter)
    if isinstance(expr, Evaluated):  # a subquery, made runnable by subquery_run.py
        function: Compiled = expr.function
        return function
    if isinstance(expr, Agg):
        raise AssertionError("aggregates are evaluated by the Aggregate node")
    if isinstance(expr, Func):
        return _func(expr, meter)
    if isinstance(expr, Case):
        return _case(expr, meter)
    if isinstance(expr, Cast):
        return _cast(expr, meter)
    if isinstance(expr, SemiJoin):
        raise AssertionError("a SemiJoin is evaluated first (execute.resolve_semijoins)")
    compiler = COMPILERS.get(type(expr))
    if compiler is not None:
        return compiler(expr, meter)
    raise AssertionError(f"unknown expression {expr!r}")


COMPILERS: dict[type, Callable[[Any, Meter | None], Compiled]] = {}
"""Compilers of expression nodes defined outside ``plan.py``'s core set (by node type):
a module adding a node (a subquery, say) registers ``compile(expr, meter)`` here."""


def _func(expr: Func, meter: Meter | None) -> Compiled:
    """A registry function under its NULL rule (and value limit, if it grows values)."""
    function = runnable(expr.name)
    run = function.run
    args = [compile_expr(arg, meter) for arg in expr.args]
    strict = function.nulls == "strict"
    if function.nulls == "first":

        def run_first(row: tuple[Any, ...]) -> Any:
            for arg in args:  # left to right, no further than needed
                value = arg(row)
                if value is not None:
                    return value
            return None

        return run_first
    if function.growth is not None:
        grows, cap = function.growth, _cap(meter)
        budget = DEFAULT_BUDGET if meter is None else meter.budget
        inner = run

        def run(*values: Any) -> Any:
            size = grows(*values)
            if size > cap:
                raise QueryTooCostly(
                    f"the query builds a value of {size:,} bytes or more with "
                    f"{function.name}(), larger than {cap:,} bytes (the largest value a "
                    f"query may build); raise the limit: "
                    f"{budget.hint('sql_value_bytes_max', 'value_bytes_max')}"
                )
            return inner(*values)

    if len(args) == 1:
        (only,) = args
        if strict:

            def run_one(row: tuple[Any, ...]) -> Any:
                value = only(row)
                return None if value is None else run(value)

            return run_one
        return lambda row: run(only(row))
    if strict:

        def run_strict(row: tuple[Any, ...]) -> Any:
            values = [arg(row) for arg in args]
            return None if None in values else run(*values)

        return run_strict

    def run_own(row: tuple[Any, ...]) -> Any:
        return run(*[arg(row) for arg in args])

    return run_own


def _cap(meter: Meter | None) -> int:
    return limits.sql_value_bytes_max if meter is None else meter.value_bytes_max


def _case(expr: Case, meter: Meter | None) -> Compiled:
    """Only the branch taken is evaluated (a later branch may divide by zero or CAST
    out of range, as in SQLite)."""
    whens = [(compile_expr(w, meter), compile_expr(t, meter)) for w, t in expr.whens]
    default = (lambda row: None) if expr.default is None else compile_expr(expr.default, meter)
    if expr.operand is None:

        def run_searched(row: tuple[Any, ...]) -> Any:
            for when, then in whens:
                if truth(when(row)):
                    return then(row)
            return default(row)

        return run_searched
    operand = compile_expr(expr.operand, meter)

    def run_simple(row: tuple[Any, ...]) -> Any:
        value = operand(row)
        if value is not None:
            for when, then in whens:
                candidate = when(row)
                if candidate is not None and candidate == value:
                    return then(row)
        return default(row)

    return run_simple


def _cast(expr: Cast, meter: Meter | None) -> Compiled:
    """No CAST grows a value past the value limit: text of a number is short, and text
    of a blob (or a blob of text) is the same size."""
    operand = compile_expr(expr.operand, meter)
    convert = caster(expr.target)
    return lambda row: convert(operand(row))


def _key_set(expr: KeySet, meter: Meter | None) -> Compiled:
    """``(keys) IN values``: NULL when a key is NULL (nothing equals NULL)."""
    values = expr.values
    keys = [compile_expr(key, meter) for key in expr.keys]
    if not keys:
        present = bool(values)
        return lambda row: present
    if len(keys) == 1:
        only = keys[0]

        def run_one(row: tuple[Any, ...]) -> Any:
            value = only(row)
            return None if value is None else (value,) in values

        return run_one

    def run(row: tuple[Any, ...]) -> Any:
        found = tuple(key(row) for key in keys)
        return None if None in found else found in values

    return run


def compile_predicate(expr: Expr | None) -> Compiled | None:
    return None if expr is None else compile_expr(expr)


def _negate(inner: Compiled) -> Compiled:
    def run(row: tuple[Any, ...]) -> Any:
        value = inner(row)
        return None if value is None else not value

    return run


def _binary(expr: Binary, meter: Meter | None) -> Compiled:
    left, right = compile_expr(expr.left, meter), compile_expr(expr.right, meter)
    if expr.op == "AND":

        def run_and(row: tuple[Any, ...]) -> Any:
            a = left(row)
            if a is not None and not a:
                return False
            b = right(row)
            if b is not None and not b:
                return False
            return None if a is None or b is None else True

        return run_and
    if expr.op == "OR":

        def run_or(row: tuple[Any, ...]) -> Any:
            a = left(row)
            if a:
                return True
            b = right(row)
            if b:
                return True
            return None if a is None or b is None else False

        return run_or
    if expr.op in ("IS", "IS NOT"):
        same = expr.op == "IS"

        def run_is(row: tuple[Any, ...]) -> bool:
            a, b = left(row), right(row)
            if a is None or b is None:
                return (a is None and b is None) is same
            return (a == b) is same

        return run_is
    if expr.op == "||":
        function = concatenator(meter)
    elif expr.op in _CHECKED and isinstance(base(expr.type), IntType):
        function = _CHECKED[expr.op]
    else:
        function = _COMPARE.get(expr.op) or _ARITHMETIC[expr.op]
    if expr.op in _MAY_MAKE_NAN and not isinstance(base(expr.type), IntType):
        return _nan_checked(expr, left, right, function)
    if isinstance(expr.right, Const):
        constant = expr.right.value
        if constant is None:
            return lambda row: None

        def run_const(row: tuple[Any, ...]) -> Any:
            a = left(row)
            return None if a is None else function(a, constant)

        return run_const

    def run(row: tuple[Any, ...]) -> Any:
        a = left(row)
        if a is None:
            return None
        b = right(row)
        return None if b is None else function(a, b)

    return run


_MAY_MAKE_NAN = frozenset({"+", "-", "*", "/"})
"""Operators whose float result may be a NaN (``inf * 0``), which SQLite makes NULL;
operands typed as integers never make one, so they skip the check."""


def _nan_checked(
    expr: Binary, left: Compiled, right: Compiled, function: Callable[[Any, Any], Any]
) -> Compiled:
    if isinstance(expr.right, Const):
        constant = expr.right.value
        if constant is None:
            return lambda row: None

        def run_const(row: tuple[Any, ...]) -> Any:
            a = left(row)
            if a is None:
                return None
            result = function(a, constant)
            return None if result != result else result

        return run_const

    def run(row: tuple[Any, ...]) -> Any:
        a = left(row)
        if a is None:
            return None
        b = right(row)
        if b is None:
            return None
        result = function(a, b)
        return None if result != result else result

    return run


def _unary(expr: Unary, meter: Meter | None) -> Compiled:
    inner = compile_expr(expr.operand, meter)
    if expr.op == "NOT":
        return _negate(inner)

    def negative(row: tuple[Any, ...]) -> Any:
        value = inner(row)
        if value is None:
            return None
        return -float(value) if value == _I64_MIN and type(value) is int else -value

    return negative


def _is_null(expr: IsNull, meter: Meter | None) -> Compiled:
    inner = compile_expr(expr.operand, meter)
    if expr.negated:
        return lambda row: inner(row) is not None
    return lambda row: inner(row) is None


def _in_list(expr: InList, meter: Meter | None) -> Compiled:
    negated = expr.negated
    if not expr.items:  # nothing is in the empty list, not even NULL
        return lambda row: negated
    operand = compile_expr(expr.operand, meter)
    if all(isinstance(item, Const) for item in expr.items):
        values = [item.value for item in expr.items if isinstance(item, Const)]
        members = frozenset(value for value in values if value is not None)
        has_null = any(v is None for v in values)  # not a repeated item: (4, 4) has none

        def run_set(row: tuple[Any, ...]) -> Any:
            value = operand(row)
            if value is None:
                return None
            if value in members:
                return not negated
            return None if has_null else negated

        return run_set
    items = [compile_expr(item, meter) for item in expr.items]

    def run(row: tuple[Any, ...]) -> Any:
        value = operand(row)
        if value is None:
            return None
        unknown = False
        for item in items:
            candidate = item(row)
            if candidate is None:
                unknown = True
            elif candidate == value:
                return not negated
        return None if unknown else negated

    return run


def _like(expr: Like, meter: Meter | None) -> Compiled:
    operand = compile_expr(expr.operand, meter)
    negated = expr.negated
    if isinstance(expr.pattern, Const):
        if expr.pattern.value is None:
            return lambda row: None
        match = like_matcher(str(expr.pattern.value))

        def run_const(row: tuple[Any, ...]) -> Any:
            value = operand(row)
            if value is None:
                return None
            return (match(str(value)) is None) is negated

        return run_const
    pattern = compile_expr(expr.pattern, meter)

    def run(row: tuple[Any, ...]) -> Any:
        value, text = operand(row), pattern(row)
        if value is None or text is None:
            return None
        return (like_matcher(str(text))(str(value)) is None) is negated

    return run
