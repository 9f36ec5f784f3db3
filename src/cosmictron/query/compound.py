"""The statement-level builder: a SELECT or a compound of SELECTs, at any depth.

``build_statement`` is what ``parse.prepare`` calls for a query; ``build_query`` builds
one query (a SELECT, through ``select.build_select``, or ``UNION [ALL]``, ``INTERSECT``,
``EXCEPT`` of two) and is handed to every binder as the builder of nested queries, so
subqueries, FROM subqueries and CTEs may themselves be compounds.

A compound follows SQLite: both sides have the same number of columns; the result's
column names are the left side's; UNION, INTERSECT and EXCEPT return distinct rows (two
NULLs are the same value here, unlike in ``=``), UNION ALL every row; ORDER BY and LIMIT
apply to the whole, and an ORDER BY term names a result column by position or name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlglot import exp

from cosmictron.datastore import ModuleSchema, TableSchema
from cosmictron.query.plan import Compound, Node, Sort, Subqueries
from cosmictron.query.position import Source
from cosmictron.query.resolve import Binder, Scope, TableRef
from cosmictron.query.rules import optimize
from cosmictron.query.select import Context, build_select, limit, with_ctes
from cosmictron.query.statements import SelectStatement
from cosmictron.query.subquery_bind import Nested, Outer, QueryBinder
from cosmictron.query.visibility import VisibilityRule
from cosmictron.values import Identity

_OPERATORS = {exp.Union: "UNION", exp.Intersect: "INTERSECT", exp.Except: "EXCEPT"}


def build_statement(
    node: exp.Expression,
    schema: ModuleSchema,
    source: Source,
    params: Mapping[str, Any],
    sender: Identity,
    rules: Mapping[str, tuple[VisibilityRule, ...]] | None = None,
) -> SelectStatement:
    """The logical plan of a query statement (rules not yet applied to its top level)."""
    context = Context(schema, source, params, sender, rules or {}, build_query_in, [0])
    built = build_query(node, context, None)
    return SelectStatement(built.plan, built.columns, built.types, built.tables)


def dml_binder(
    table: TableSchema,
    schema: ModuleSchema,
    source: Source,
    params: Mapping[str, Any],
    sender: Identity,
) -> QueryBinder:
    """The binder of an UPDATE's or DELETE's own row: its WHERE may hold subqueries
    (``IN (SELECT …)``, ``EXISTS``, scalar; correlated with that row), built as any
    query's are. DML is the owner's, so no visibility filter applies inside them."""
    context = Context(schema, source, params, sender, {}, build_query_in, [0])
    return QueryBinder(
        source,
        Scope([TableRef(table.name, table, 0)]),
        params,
        sender,
        build=lambda query, enclosing: build_query(query, context, enclosing),
        counter=context.counter,
    )


def with_subqueries(plan: Node, binder: Binder) -> Node:
    """``plan`` marked to evaluate the subqueries ``binder`` bound into it first."""
    if isinstance(binder, QueryBinder) and binder.subqueries:
        return Subqueries(plan)
    return plan


def build_query_in(node: exp.Expression, outer: Outer | None, context: Context) -> Nested:
    return build_query(node, context, outer)


def build_query(node: exp.Expression, context: Context, outer: Outer | None) -> Nested:
    """One query, a subquery of ``outer``'s query when given."""
    if isinstance(node, exp.Subquery):  # a parenthesised query
        return build_query(node.this, context, outer)
    if isinstance(node, exp.Select):
        return build_select(node, context, outer)
    operator = next((name for kind, name in _OPERATORS.items() if isinstance(node, kind)), None)
    if operator is None:
        context.source.fail(f"unsupported construct: {node.key.upper()} as a query", node)
    context = with_ctes(node, context)
    left = build_query(node.this, context, outer)
    right = build_query(node.expression, context, outer)
    source = context.source
    if len(left.columns) != len(right.columns):
        source.fail(
            f"SELECTs to the left and right of {operator} do not have the same number of "
            f"result columns ({len(left.columns)} and {len(right.columns)})",
            node,
        )
    keep_all = operator == "UNION" and not node.args.get("distinct")
    width = len(left.columns)
    plan: Node = Compound(operator, keep_all, optimize(left.plan), optimize(right.plan), width)
    binder = QueryBinder(
        source,
        Scope([]),
        context.params,
        context.sender,
        build=lambda query, enclosing: build_query(query, context, enclosing),
        counter=context.counter,
    )
    order = node.args.get("order")
    if order is not None:
        keys = []
        labels = []
        for ordered in order.expressions:
            keys.append(
                (_result_column(ordered.this, left.columns, source), bool(ordered.args.get("desc")))
            )
            labels.append(ordered.this.sql(dialect="sqlite") + (" DESC" if keys[-1][1] else ""))
        plan = Sort(plan, tuple(keys), tuple(labels))
    plan = limit(node, plan, binder, source)
    types = tuple(a if a is not None else b for a, b in zip(left.types, right.types, strict=True))
    return Nested(
        plan,
        left.columns,
        types,
        left.tables | right.tables,
        left.correlated + right.correlated,
    )


def _result_column(term: exp.Expression, columns: tuple[str, ...], source: Source) -> int:
    """The slot an ORDER BY term of a compound names: a position or a column name."""
    if isinstance(term, exp.Literal) and not term.is_string:
        position = int(term.this)
        if not 1 <= position <= len(columns):
            source.fail(
                f"ORDER BY term out of range - should be between 1 and {len(columns)}", term
            )
        return position - 1
    if isinstance(term, exp.Column) and not term.table and term.name in columns:
        return columns.index(term.name)
    source.fail("ORDER BY term does not match any column in the result set", term)
