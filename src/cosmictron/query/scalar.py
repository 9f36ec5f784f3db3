"""One entry point for an expression outside a plan: bind it, then evaluate it per row.

Scalar subqueries, ``SELECT`` without ``FROM`` and anything else that needs the value
of an SQL expression use this instead of reaching into the binder and the compiler
separately: ``bind_scalar`` turns a SQLGlot expression into a bound ``Expr`` (names
resolved against a ``Scope``, literals typed, functions looked up in the registry) and
``Scalar.evaluate`` is its compiled form, ``f(row) -> value`` with NULL as ``None``,
under the same SQLite semantics as a ``WHERE`` clause. With an empty scope the row is
``()``: ``constant_value`` evaluates an expression that reads no table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from cosmictron.datastore import ColumnType
from cosmictron.query.budget import Meter
from cosmictron.query.expressions import Compiled, compile_expr
from cosmictron.query.plan import Expr, type_of
from cosmictron.query.position import Source
from cosmictron.query.resolve import Binder, Scope
from cosmictron.values import Identity


@dataclass(frozen=True)
class Scalar:
    """A bound expression, its static type (None: NULL or unknown) and its evaluator."""

    expr: Expr
    type: ColumnType | None
    evaluate: Compiled


def compile_scalar(expr: Expr, meter: Meter | None = None) -> Scalar:
    """A bound expression compiled (``meter``: whose value limit it obeys; None the
    default limits)."""
    return Scalar(expr, type_of(expr), compile_expr(expr, meter))


def bind_scalar(node: exp.Expression, binder: Binder, meter: Meter | None = None) -> Scalar:
    """Bind ``node`` with ``binder`` (its scope: the tables the expression may read)
    and compile it.

    Raises:
        SqlError: an unknown name, a type mismatch, an unsupported construct.
    """
    return compile_scalar(binder.bind(node), meter)


def constant_value(
    node: exp.Expression,
    source: Source,
    params: Mapping[str, Any] | None = None,
    sender: Identity | None = None,
    meter: Meter | None = None,
) -> Any:
    """The value of an expression that reads no table (``SELECT 1 IN (2, 3)``).

    >>> import sqlglot
    >>> text = "SELECT COALESCE(NULL, ABS(-3)) + 1"
    >>> tree = sqlglot.parse_one(text, read="sqlite").expressions[0]
    >>> constant_value(tree, Source(text))
    4
    """
    binder = Binder(source, Scope([]), params or {}, sender or Identity.zero())
    return bind_scalar(node, binder, meter).evaluate(())
