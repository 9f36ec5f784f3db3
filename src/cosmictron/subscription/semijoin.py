"""Semi-joins kept by counting: ``IN (SELECT …)`` and ``[NOT] EXISTS`` subscribed by delta.

A subscribed query of the incremental shape whose WHERE has, as top-level conjuncts,
``x IN (SELECT …)``, ``EXISTS (SELECT …)`` or ``NOT EXISTS (SELECT …)`` (uncorrelated,
or correlated by equalities only, ``inner.k = outer.k AND …``) is a ``SemiJoinQuery``:
the rest of the query (the *outer* part ``O``: FROM, joins and the other conjuncts) is
maintained by the delta terms like any ``LiveQuery``, and each subquery is a ``Side``
that counts, per key, the rows of its inner table that pass its WHERE. The key is the
inner side of each correlation equality, then (``IN``) the subquery's column: the
decorrelated plan of ``query/decorrelate.py``. An outer row passes a side when its own
key (the outer side of each equality, then the ``IN`` operand) has a count above zero
(``NOT EXISTS``: a count of zero). A key with a NULL is never counted, and an outer
key with one never matches: the conjunct is then not TRUE, as in ``db.sql``.

One transaction's change of the result is exact, both sides changing at once included
(``S`` a side's set of keys that pass, before and after the transaction):

    ΔQ = (ΔO kept by S_before)  +  Σ over keys k whose passing flipped: ±(O_after with key k)

the first from the delta terms' signed full rows, the second by running the outer part
restricted to ``key = k`` (a parameterised plan, which the optimizer turns into an index
lookup when the key is an indexed column) on the state after the commit. With several
sides, side ``j``'s flipped rows are kept by the sides before it as they are after the
transaction and by those after it as they were before (the telescoping sum again).

The inner part must be a plain filter of one table (any WHERE ``db.sql`` supports, the
reader's visibility filter included) whose rows the count can follow from the
transaction's changed rows: no aggregate, LIMIT, nested subquery, join or join filter.
``NOT IN`` (whose NULLs make a missing match unknown rather than false), a subquery
anywhere else than a top-level WHERE conjunct, a scalar subquery, and a semi-join in a
top-N are not: those queries are re-evaluated (``reevaluated.py``); ``side`` raises a
``SqlError`` saying why, which ``Subscription.explain`` shows.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cosmictron import limits
from cosmictron.datastore import Datastore
from cosmictron.errors import SqlError
from cosmictron.query import SelectStatement, execute, optimize
from cosmictron.query.budget import Meter
from cosmictron.query.decorrelate import decorrelate
from cosmictron.query.execute import UNMETERED
from cosmictron.query.explain import explain
from cosmictron.query.expressions import compile_expr
from cosmictron.query.params import bind
from cosmictron.query.plan import (
    Binary,
    Distinct,
    Evaluated,
    Expr,
    Filter,
    Func,
    Node,
    Param,
    Project,
    Scan,
    SemiJoin,
    Sort,
    Subquery,
    Unary,
    conjoin,
    conjuncts,
)
from cosmictron.query.subquery_run import row_width
from cosmictron.subscription.delta import TxView, run_term, split
from cosmictron.subscription.live import LiveQuery
from cosmictron.subscription.terms import Check, Row, Source

Key = tuple[Any, ...]


def has_subquery(value: Any) -> bool:
    """Whether an expression (or plan, or tuple of them) holds a ``Subquery``."""
    if isinstance(value, Subquery | Evaluated):
        return True
    if isinstance(value, tuple | list):
        return any(has_subquery(item) for item in value)
    if (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and type(value).__module__.startswith("cosmictron.query")
        and not isinstance(value, Node)
    ):
        return any(has_subquery(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def _reads_more(value: Any) -> bool:
    """Whether an inner expression holds what a changed row alone cannot decide: a
    subquery, a join filter, an outer value."""
    if isinstance(value, Subquery | Evaluated | SemiJoin | Param):
        return True
    if isinstance(value, tuple | list):
        return any(_reads_more(item) for item in value)
    if (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and type(value).__module__.startswith("cosmictron.query")
    ):
        return any(_reads_more(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


@dataclass
class Side:
    """One semi-join conjunct: its inner table's passing rows counted per key."""

    label: str
    present: bool  # True: the key must be counted (IN, EXISTS); False: NOT EXISTS
    table: str
    plan: Node  # the inner rows' keys, for the initial count (and EXPLAIN)
    inner_checks: tuple[Check, ...]
    inner_keys: tuple[Check, ...]
    outer_keys: tuple[Expr, ...]
    outer_key: Callable[[Any], Key] = field(repr=False)
    counts: Counter[Key] = field(default_factory=Counter)
    changed: dict[Key, int] = field(default_factory=dict)  # this transaction's count changes
    restricted: Node | None = None  # the outer part with ``key = :params`` (set by the query)

    def count(self, datastore: Datastore, meter: Meter | None) -> None:
        """Count the inner rows' keys now (a new subscription's start)."""
        counts: Counter[Key] = Counter()
        # Inner rows are not result rows: only the caller's budget (rows examined,
        # time) bounds them, as it bounds the subquery in db.sql.
        for row in execute(self.plan, datastore, sys.maxsize, meter):
            if None not in row:
                counts[row] += 1
        self.counts = counts
        self.changed = {}

    def apply(self, tx: TxView) -> dict[Key, int]:
        """Count this transaction's changed inner rows; the keys whose passing flipped
        (+1: outer rows with that key now pass, -1: they no longer do)."""
        if self.table not in tx.inserts and self.table not in tx.deletes:
            self.changed = {}
            return {}  # the usual case: the transaction changed only outer tables
        changes: Counter[Key] = Counter()
        for rows, sign in (
            (tx.inserts.get(self.table, ()), 1),
            (tx.deletes.get(self.table, ()), -1),
        ):
            for row in rows:
                if all(check(row) for check in self.inner_checks):
                    key = tuple(function(row) for function in self.inner_keys)
                    if None not in key:
                        changes[key] += sign
        flipped: dict[Key, int] = {}
        self.changed = {key: n for key, n in changes.items() if n}
        for key, n in self.changed.items():
            before = self.counts.get(key, 0)
            after = before + n
            if after:
                self.counts[key] = after
            else:
                del self.counts[key]
            if (before > 0) != (after > 0):
                flipped[key] = 1 if (after > 0) == self.present else -1
        return flipped

    def passes(self, full: Any, before: bool) -> bool:
        """Whether the outer row ``full`` passes this conjunct now (or, ``before``,
        before this transaction)."""
        key = self.outer_key(full)
        if None in key:
            return not self.present
        count = self.counts.get(key, 0)
        if before:
            count -= self.changed.get(key, 0)
        return (count > 0) == self.present


def side(predicate: Expr) -> Side:
    """The ``Side`` of a WHERE conjunct holding a subquery, or a ``SqlError`` saying why
    it is not maintained by counting (the query is then re-evaluated)."""
    expr, present = predicate, True
    if isinstance(expr, Unary) and expr.op == "NOT" and isinstance(expr.operand, Subquery):
        expr, present = expr.operand, False
    if not isinstance(expr, Subquery):
        raise SqlError(
            "a subquery inside an expression (only a WHERE conjunct IN/EXISTS is counted)"
        )
    label = f"{'NOT ' if not present else ''}{expr.kind.upper()} {expr.label}"
    if expr.kind == "scalar":
        raise SqlError("a scalar subquery")
    if expr.kind == "in" and (expr.negated or not present):
        raise SqlError("NOT IN (SELECT …) (its NULLs make a missing match unknown)")
    if expr.negated:
        present = not present
    logical = expr.plan if expr.logical is None else expr.logical
    if expr.names:
        found = decorrelate(expr.kind, logical, expr.names, row_width(expr))
        if found is None:
            raise SqlError(
                "a subquery correlated other than by equalities of its WHERE, or with "
                "GROUP BY, HAVING or LIMIT"
            )
        inner, key_names = found
        outer_keys = [expr.args[expr.names.index(name)] for name in key_names]
    else:
        inner, outer_keys = logical, []
    if expr.kind == "in":
        assert expr.operand is not None
        if row_width(expr) > 1:  # (a, b) IN (SELECT x, y ...): a semi-join on both
            assert isinstance(expr.operand, Func)
            outer_keys.extend(expr.operand.args)
        else:
            outer_keys.append(expr.operand)
    width = len(outer_keys)
    while isinstance(inner, Sort | Distinct):  # a set membership ignores both
        inner = inner.child
    shape = _inner_shape(inner)
    if shape is None:
        raise SqlError(
            "a subquery that is not a filter of one table (a join, an aggregate, LIMIT, "
            "a FROM subquery, a nested subquery or a visibility filter that joins tables)"
        )
    scan, predicate_of_inner, exprs = shape
    keys = exprs[:width]
    outer_functions = tuple(compile_expr(key) for key in outer_keys)
    plan = (
        optimize(Project(inner.child, tuple(keys), width)) if isinstance(inner, Project) else inner
    )

    def outer_key(full: Any) -> Key:
        return tuple(function(full) for function in outer_functions)

    pad = (None,) * scan.base
    inner_checks = tuple(
        _padded(compile_expr(conjunct), pad) for conjunct in conjuncts(predicate_of_inner)
    )
    inner_keys = tuple(_padded(compile_expr(key), pad) for key in keys)
    return Side(
        label, present, scan.name, plan, inner_checks, inner_keys, tuple(outer_keys), outer_key
    )


def _padded(function: Check, pad: tuple[None, ...]) -> Check:
    if not pad:
        return function
    return lambda row: function(pad + tuple(row))


def _inner_shape(inner: Node) -> tuple[Scan, Expr | None, tuple[Expr, ...]] | None:
    """(scan, WHERE, select list) of ``Project(Filter?(Scan))`` over a stored table."""
    if not isinstance(inner, Project):
        return None
    below: Node = inner.child
    predicate: Expr | None = None
    if isinstance(below, Filter):
        predicate = below.predicate
        below = below.child
    if type(below) is not Scan or not isinstance(below, Scan):
        return None
    if _reads_more(predicate) or _reads_more(inner.exprs):
        return None
    return below, predicate, inner.exprs


class SemiJoinQuery(LiveQuery):
    """A ``LiveQuery`` with semi-join conjuncts kept by counting (module docstring)."""

    maintenance = "semi-join"

    def __init__(
        self,
        key: Any,
        text: str,
        statement: SelectStatement,
        logical: Node,
        sources: list[Source],
        output: int,
        predicates: list[Expr],
        exprs: tuple[Expr, ...],
        sides: list[Side],
    ) -> None:
        super().__init__(
            key, text, statement, logical, sources, output, predicates, exprs, (), None
        )
        self.sides = sides
        self.outer_tables = self.tables
        self.tables = self.tables | {s.table for s in sides}
        for found in sides:
            # A changed row of an inner table matters through its count, whatever its
            # values: no guard may skip it.
            self.guards.pop(found.table, None)
        for number, found in enumerate(sides):
            names = [f"semijoin#{number}#{i}" for i in range(len(found.outer_keys))]
            equalities: list[Expr] = [
                Binary("=", expr, Param(name))
                for expr, name in zip(found.outer_keys, names, strict=True)
            ]
            condition = conjoin(equalities)
            found.restricted = optimize(
                logical if condition is None else Filter(logical, condition)
            )
        self._param_names = [
            [f"semijoin#{number}#{i}" for i in range(len(found.outer_keys))]
            for number, found in enumerate(sides)
        ]

    def plan_lines(self) -> list[str]:
        lines = explain(self._from_where)
        for found in self.sides:
            lines.append(f"Semi-join {found.label}: inner rows of {found.table} counted per key")
            lines.extend(f"  {line}" for line in explain(found.plan))
        return lines

    def initial(
        self, datastore: Datastore, rows_max: int | None = None, meter: Meter | None = None
    ) -> list[Row]:
        if rows_max is None:
            rows_max = limits.query_rows_max
        for found in self.sides:
            found.count(datastore, meter)
        rows = execute(self._from_where, datastore, sys.maxsize, meter)  # before the sides
        result = [row[self._out_slice] for row in rows if self._passes(row, len(self.sides))]
        if len(result) > rows_max:
            (meter if meter is not None else UNMETERED.start()).too_many_rows(rows_max)
        return result

    def _passes(self, full: Any, skipped: int) -> bool:
        """Whether ``full`` passes every side but number ``skipped``: those before it as
        they are now, those after it as they were before this transaction (-1: every
        side as it was before; ``len(sides)``: every side as it is now)."""
        for number, found in enumerate(self.sides):
            if number != skipped and not found.passes(full, number > skipped):
                return False
        return True

    def delta(self, tx: TxView) -> tuple[list[Row], list[Row]]:
        self.evaluations += 1
        self.reevaluated = False
        flips = [found.apply(tx) for found in self.sides]
        signed: Counter[Any] = Counter()
        tables = tx.tables
        if not tables.isdisjoint(self.outer_tables):
            changed: Counter[Any] = Counter()
            for name in tables:
                for position in self._positions_of.get(name, ()):
                    run_term(self._terms[position], self.sources, tx, changed, tuple)
            for full, count in changed.items():
                if count and self._passes(full, -1):
                    signed[full[self._out_slice]] += count
        for number, flipped in enumerate(flips):
            found = self.sides[number]
            assert found.restricted is not None
            for key, sign in flipped.items():
                plan = bind(
                    found.restricted, dict(zip(self._param_names[number], key, strict=True))
                )
                for full in execute(plan, tx.datastore, limits.query_rows_max):
                    if found.outer_key(full) == key and self._passes(full, number):
                        signed[full[self._out_slice]] += sign
        for found in self.sides:
            found.changed = {}
        return split(signed)
