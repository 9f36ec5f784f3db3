"""Binding subqueries: scalar ``(SELECT …)``, ``EXISTS``, ``IN (SELECT …)``, and the
outer columns a correlated subquery reads.

``QueryBinder`` is the statement-level binder: the expression binder of ``resolve.py``
plus what needs a whole query inside an expression. A subquery is planned by the
statement builder (``build``, passed in by ``compound.build_query``, so this module
does not import the builders that import it) with a binder whose ``outer`` is this one.
A column the subquery's own FROM does not have is looked up outward: it becomes a
``Param`` named ``<column>#<n>`` inside the subquery's plan, and the outer expression
it stands for becomes one of the ``Subquery``'s ``args``, evaluated on the outer row
(``subquery_run.py`` fills the slots once per distinct outer value). A name found
nowhere is an error against the innermost scope, as SQLite reports it.

Each subquery's plan is also decorrelated here when its shape allows
(``decorrelate.py``): the plan to run once and hash on the correlation key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlglot import exp

from cosmictron.datastore.types import BOOL
from cosmictron.query.affinity import never_a_number
from cosmictron.query.coerce import base, family
from cosmictron.query.decorrelate import decorrelate
from cosmictron.query.functions import ROW
from cosmictron.query.params import OUTER_MARK
from cosmictron.query.plan import Const, Expr, Func, Node, Param, Subquery, type_of
from cosmictron.query.plan_shape import plan_types
from cosmictron.query.position import Source
from cosmictron.query.render import render
from cosmictron.query.resolve import Binder, InnerTable, Scope
from cosmictron.query.resolve_functions import row_items
from cosmictron.query.rules import optimize
from cosmictron.values import Identity


@dataclass(frozen=True)
class Nested:
    """A subquery as built: its logical plan, output, the tables it reads (at any depth)
    and the outer values it reads (``(outer expression, param name)`` pairs)."""

    plan: Node
    columns: tuple[str, ...]
    types: tuple[Any, ...]
    tables: frozenset[str]
    correlated: tuple[tuple[Expr, str], ...]
    inner: tuple[InnerTable, ...] = ()
    """For ``SELECT *`` over a parenthesised join given an alias: the tables of its
    FROM and where their columns start among its output (``select._joined``)."""


class Outer(Protocol):
    """What a nested binder asks of its enclosing query."""

    def can_see(self, name: str, qualifier: str | None) -> bool: ...

    def bind_outer(self, node: exp.Expression) -> Expr: ...


Build = Callable[[exp.Expression, "Outer | None"], Nested]


class QueryBinder(Binder):
    """A ``Binder`` that also binds subqueries and resolves outer (correlated) columns.

    ``reads`` collects the tables every subquery bound here reads (their permission is
    checked like FROM's), ``subqueries`` counts them (a plan holding one is wrapped in
    ``Subqueries``), ``correlated`` lists this query's outer values.
    """

    def __init__(
        self,
        source: Source,
        scope: Scope,
        params: Mapping[str, Any],
        sender: Identity,
        *,
        build: Build,
        counter: list[int],
        outer: Outer | None = None,
        transparent: bool = False,
    ) -> None:
        super().__init__(source, scope, params, sender)
        self.build = build
        self.counter = counter
        self.outer = outer
        self.transparent = transparent
        self.reads: set[str] = set()
        self.subqueries = 0
        self.correlated: list[tuple[Expr, str]] = []

    # -- outer columns ---------------------------------------------------------------

    def _sees_here(self, name: str, qualifier: str | None) -> bool:
        if qualifier is not None:
            return any(ref.answers_to(qualifier) for ref in self.scope.tables)
        return bool(self.scope.find(name, None))

    def can_see(self, name: str, qualifier: str | None) -> bool:
        if self._sees_here(name, qualifier):
            return True
        return self.outer is not None and self.outer.can_see(name, qualifier)

    def bind_outer(self, node: exp.Expression) -> Expr:
        """``node`` bound in this query, for a subquery of it that reads it."""
        return self.bind(node)

    def _bind_column(self, node: exp.Column) -> Expr:
        if isinstance(node.this, exp.Star) or self.outer is None:
            return super()._bind_column(node)
        name, qualifier = node.name, node.table or None
        if self._sees_here(name, qualifier) or not self.outer.can_see(name, qualifier):
            return super()._bind_column(node)
        return self.outward(node)

    def _aggregate(self, func: str, node: exp.Expression) -> Expr:
        """An aggregate whose argument reads only enclosing queries' columns belongs to
        the innermost of them, as in SQLite: ``SELECT (SELECT MAX(t.a) FROM u) FROM t``
        is one row, ``MAX`` over ``t``. It is bound there (making that query an
        aggregate one) and read here as an outer value."""
        if self.outer is not None and not self.transparent and self._reads_only_outer(node):
            return self.outward(node)
        return super()._aggregate(func, node)

    def _reads_only_outer(self, node: exp.Expression) -> bool:
        assert self.outer is not None
        columns = [c for c in node.find_all(exp.Column) if not isinstance(c.this, exp.Star)]
        return bool(columns) and all(
            not self._sees_here(c.name, c.table or None)
            and self.outer.can_see(c.name, c.table or None)
            for c in columns
        )

    def outward(self, node: exp.Expression) -> Expr:
        """``node`` (a column, or an aggregate of enclosing columns) bound in an
        enclosing query: this query's ``Param`` for that value."""
        assert self.outer is not None
        value = self.outer.bind_outer(node)
        if self.transparent:  # a FROM subquery: the enclosing query's slot, as it is
            return value
        for known, name_ in self.correlated:
            if known == value:
                return Param(name_, None, type_of(value))
        self.counter[0] += 1
        param = f"{render(value)}{OUTER_MARK}{self.counter[0]}"
        self.correlated.append((value, param))
        return Param(param, None, type_of(value))

    # -- subqueries --------------------------------------------------------------------

    def nested(self, node: exp.Expression) -> Nested:
        """Build ``node`` (a SELECT or compound) as a subquery of this query."""
        if isinstance(node, exp.Subquery):
            node = node.this
        built = self.build(node, self)
        self.reads |= built.tables
        self.subqueries += 1
        return built

    def _subquery(
        self,
        kind: str,
        node: exp.Expression,
        operand: Expr | None = None,
        negated: bool = False,
        width: int = 1,
    ) -> Subquery:
        built = self.nested(node)
        if kind != "exists" and len(built.columns) != width:
            self.source.fail(
                f"sub-select returns {len(built.columns)} columns - expected {width}", node
            )
        args = tuple(value for value, _ in built.correlated)
        names = tuple(name for _, name in built.correlated)
        label = _label(node)
        hashed = (
            decorrelate(kind, built.plan, names, width) if kind != "scalar" or width == 1 else None
        )
        result_type = BOOL if kind != "scalar" else built.types[0]
        return Subquery(
            kind,
            optimize(built.plan),
            args,
            names,
            operand,
            negated,
            label,
            type=result_type,
            hashed=None if hashed is None else (optimize(hashed[0]), hashed[1]),
            logical=built.plan,
        )

    def row_subquery(self, node: exp.Expression, width: int) -> list[Expr]:
        """``(SELECT x, y …)`` compared with a row value of ``width``: one scalar
        subquery per column, each reading its column of the same first row (SQLite's
        row-value subquery; NULLs when there is no row). Not decorrelated: the plan
        runs once per distinct outer value, and once per column."""
        first = self._subquery("scalar", unparen_query(node), width=width)
        built_types = plan_types(first.plan, width) or ()
        return [
            replace(
                first,
                column=position,
                hashed=None,
                type=built_types[position] if position < len(built_types) else None,
            )
            for position in range(width)
        ]

    def _bind_subquery(self, node: exp.Subquery) -> Expr:
        return self._subquery("scalar", node)

    def _bind_exists(self, node: exp.Exists) -> Expr:
        return self._subquery("exists", node.this)

    def _bind_in(self, node: exp.In) -> Expr:
        query = node.args.get("query")
        named = node.args.get("field")
        if query is None and isinstance(named, exp.Column | exp.Table) and not node.expressions:
            query = _whole_table(named)  # SQLite's ``x IN t``: IN (SELECT * FROM t)
        if query is None:
            return super()._bind_in(node)
        items = row_items(node.this)
        operands = [self.bind(item) for item in items] if items is not None else None
        operand = self.bind(node.this) if operands is None else Func(ROW, tuple(operands))
        width = 1 if operands is None else len(operands)
        found = self._subquery("in", query, operand, bool(node.args.get("negate")), width)
        types = plan_types(found.plan, width) or ()
        left_nodes = [node.this] if items is None else items
        for position, outer in enumerate([operand] if operands is None else operands):
            inner = types[position] if position < len(types) else None
            if width == 1 and never_a_number(outer, Const(0, inner)):
                # ``'hello' IN (SELECT intcol …)``: equals no row's value, as SQLite's
                # affinity leaves it text (affinity.py); FALSE, or NULL over a NULL.
                continue
            left, right = family(type_of(outer)), family(inner)
            if left and right and left != right:
                self.source.fail(
                    f"type mismatch: cannot compare {base(type_of(outer))} with "
                    f"{base(inner)} (the subquery's column {position + 1})",
                    left_nodes[position],
                )
        return found


def unparen_query(node: exp.Expression) -> exp.Expression:
    """The SELECT (or compound) inside the parentheses of ``(SELECT …)``."""
    while isinstance(node, exp.Paren | exp.Subquery):
        node = node.this
    return node


def _whole_table(named: exp.Expression) -> exp.Select:
    """``SELECT * FROM t`` for the ``t`` of ``x IN t`` (SQLGlot reads ``t`` as a column)."""
    if isinstance(named, exp.Column) and named.table:
        return exp.select("*").from_(
            exp.Table(this=exp.to_identifier(named.name), db=exp.to_identifier(named.table))
        )
    return exp.select("*").from_(exp.Table(this=exp.to_identifier(named.name)))


def _label(node: exp.Expression) -> str:
    text: str = node.sql(dialect="sqlite")
    return text if len(text) <= 120 else text[:117] + "..."
