"""SQL text to a planned statement: SQLGlot parses, we bind and plan, the rules optimise.

``parse`` is the layer's entry point: ``prepare`` (the statement planned with a
``Param`` slot per ``:name``, reusable for any values of the same types; the statement
cache in ``cache.py`` keeps these) then ``params.bind`` (the slots filled).
SQLGlot (SQLite dialect) gives the syntax tree and the positions of its tokens;
everything after that is ours: ``select.py`` builds a SELECT's logical plan, this
module INSERT, UPDATE and DELETE, and ``rules.optimize`` applies each pass in turn.
``EXPLAIN`` is stripped here (SQLGlot's SQLite dialect does not parse it) by blanking
the word, so positions in the rest stay exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from cosmictron import limits
from cosmictron.datastore import ModuleSchema, TableSchema, TypeMismatch
from cosmictron.errors import SqlError
from cosmictron.query.coerce import base, coerce, family
from cosmictron.query.compound import build_statement, dml_binder, with_subqueries
from cosmictron.query.expressions import compile_expr
from cosmictron.query.params import bind, has_params
from cosmictron.query.plan import Col, Computed, Const, Expr, Filter, Node, Param, Scan, type_of
from cosmictron.query.position import Source
from cosmictron.query.resolve import Binder, Scope, TableRef
from cosmictron.query.rules import optimize
from cosmictron.query.statements import (
    DeleteStatement,
    Explain,
    InsertStatement,
    Returning,
    SelectStatement,
    Statement,
    UpdateStatement,
)
from cosmictron.query.syntax import syntax_tree
from cosmictron.query.views import View
from cosmictron.query.visibility import visibility_rules
from cosmictron.values import Identity

_EXPLAIN = re.compile(r"\s*EXPLAIN\b", re.IGNORECASE)
_SQLITE = Dialect.get_or_raise("sqlite")


def parse(
    text: str,
    schema: ModuleSchema,
    params: Mapping[str, Any] | None = None,
    sender: Identity | None = None,
) -> Statement | Explain:
    """Parse, bind and plan one SQL statement, its parameters filled with ``params``.

    Raises:
        SqlError: as ``prepare``, or a parameter value that does not fit its column.
    """
    return bind(prepare(text, schema, params, sender), param_values(params, sender))


def param_values(params: Mapping[str, Any] | None, sender: Identity | None) -> dict[str, Any]:
    """The values ``bind`` fills slots with: ``params``, and ``:sender`` by default."""
    values = dict(params or {})
    if "sender" in values:
        _refuse_sender(values)
    values["sender"] = sender if sender is not None else Identity.zero()
    return values


def _refuse_sender(params: Mapping[str, Any]) -> None:
    if "sender" in params:
        raise SqlError(
            ":sender is the caller's identity and cannot be passed as a parameter "
            "(embedded callers pass sender=...)"
        )


def prepare(
    text: str,
    schema: ModuleSchema,
    params: Mapping[str, Any] | None = None,
    sender: Identity | None = None,
    *,
    optimized: bool = True,
    restricted: bool = False,
    views: Mapping[str, View] | None = None,
) -> Statement | Explain:
    """Parse and plan one SQL statement, each parameter a ``Param`` slot.

    Only the parameters' types matter here (and which are NULL, planned as the constant
    NULL): the result is valid for any values of the same Python types, filled in by
    ``params.bind``. Type errors that depend on a value appear when it is bound.

    Args:
        text: one statement (a trailing ``;`` is fine).
        schema: the tables it may name.
        params: values for ``:name`` placeholders; ``:sender`` defaults to ``sender``.
        sender: the caller, for ``:sender``.
        optimized: False leaves a SELECT's plan as ``select.py`` built it (the rules
            not applied): the logical form the subscription layer decomposes.
        restricted: apply the schema's visibility filters (the reader is not the
            owner); see ``visibility.py``.
        views: the views the statement may name (``views.py``).

    Raises:
        SqlError: bad syntax, unknown names, type mismatches, unsupported constructs,
            text over ``limits.sql_text_bytes_max``; with line, column and text.
    """
    size = len(text.encode())
    if size > limits.sql_text_bytes_max:
        raise SqlError(
            f"the SQL text is {size} bytes; the limit is {limits.sql_text_bytes_max} "
            f"(limits.sql_text_bytes_max)"
        )
    explain = _EXPLAIN.match(text)
    if explain:
        text = " " * explain.end() + text[explain.end() :]
    source = Source(text)
    tree = syntax_tree(source)
    params = params or {}
    _refuse_sender(params)
    sender = sender if sender is not None else Identity.zero()
    statement: Statement
    logical: SelectStatement | None = None
    if isinstance(tree, exp.Select | exp.SetOperation):
        rules = visibility_rules(schema) if restricted else {}
        statement = logical = build_statement(tree, schema, source, params, sender, rules, views)
        if optimized:
            statement = type(statement)(
                optimize(statement.plan), statement.columns, statement.types, statement.tables
            )
    elif isinstance(tree, exp.Insert):
        statement = _insert(tree, schema, source, params, sender, views)
    elif isinstance(tree, exp.Update):
        statement = _update(tree, schema, source, params, sender)
    elif isinstance(tree, exp.Delete):
        table = _table(tree.this, schema, source)
        binder = dml_binder(table, schema, source, params, sender)
        plan = _source_plan(tree, table, binder)
        statement = DeleteStatement(table, plan, _returning(tree, table, binder, source))
    else:
        source.fail(f"unsupported statement: {tree.key.upper()}", tree)
    return Explain(statement, logical) if explain else statement


def _table(node: exp.Expression, schema: ModuleSchema, source: Source) -> TableSchema:
    if isinstance(node, exp.Schema):
        node = node.this
    if not isinstance(node, exp.Table) or not node.name:
        source.fail("expected a table name", node)
    table = schema.table(node.name)
    if table is None:
        known = ", ".join(sorted(t.name for t in schema.tables)) or "none"
        source.fail(f"unknown table {node.name!r} (tables: {known})", node)
    return table


def _insert(
    tree: exp.Insert,
    schema: ModuleSchema,
    source: Source,
    params: Mapping[str, Any],
    sender: Identity,
    views: Mapping[str, View] | None = None,
) -> InsertStatement:
    table = _table(tree.this, schema, source)
    names: list[str] | None = None
    if isinstance(tree.this, exp.Schema):
        names = []
        for identifier in tree.this.expressions:
            if identifier.name not in table.column_names:
                known = ", ".join(table.column_names)
                source.fail(f"unknown column {identifier.name!r} (columns: {known})", identifier)
            names.append(identifier.name)
    values = tree.expression
    for option in ("conflict", "where"):
        if tree.args.get(option):
            source.fail(f"unsupported construct: INSERT ... {option.upper()}", tree)
    on_conflict = _on_conflict(tree, source)
    own = Binder(source, Scope([TableRef(table.name, table, 0)]), params, sender)
    returning = _returning(tree, table, own, source)
    columns = names if names is not None else list(table.column_names)
    if isinstance(values, exp.Select | exp.SetOperation | exp.Subquery):
        query = build_statement(values, schema, source, params, sender, None, views)
        if len(query.columns) != len(columns):
            source.fail(
                f"the SELECT gives {len(query.columns)} columns for {len(columns)} columns",
                values,
            )
        for name, value_type in zip(columns, query.types, strict=True):
            column = table.columns[table.column_names.index(name)]
            if family(value_type) not in (None, family(column.type)):
                source.fail(
                    f"type mismatch: column {table.name}.{name} is {base(column.type)}, "
                    f"the SELECT gives {base(value_type)}",
                    values,
                )
        return InsertStatement(
            table,
            (),
            returning,
            optimize(query.plan),
            None if names is None else tuple(names),
            query.tables,
            on_conflict,
        )
    if not isinstance(values, exp.Values):
        source.fail("unsupported construct: INSERT needs VALUES or a SELECT", values)
    binder = Binder(source, Scope([]), params, sender)
    rows: list[Any] = []
    for row_node in values.expressions:
        items = row_node.expressions if isinstance(row_node, exp.Tuple) else [row_node]
        if len(items) != len(columns):
            source.fail(f"{len(items)} values for {len(columns)} columns", row_node)
        row = []
        for name, item in zip(columns, items, strict=True):
            position = table.column_names.index(name)
            row.append(_value(binder.bind(item), table, position, source, item))
        rows.append(dict(zip(columns, row, strict=True)) if names is not None else row)
    return InsertStatement(table, tuple(rows), returning, on_conflict=on_conflict)


def _on_conflict(tree: exp.Insert, source: Source) -> str | None:
    """``INSERT OR REPLACE`` (and ``REPLACE INTO``) or ``INSERT OR IGNORE``; ``OR ABORT``
    is what every INSERT does (a conflict undoes the statement). ``OR FAIL`` and ``OR
    ROLLBACK`` keep rows written before the conflict or end an enclosing transaction in
    SQLite, which one statement as one transaction cannot mean: refused."""
    alternative = str(tree.args.get("alternative") or "").upper()
    if alternative in ("", "ABORT"):
        return None
    if alternative in ("REPLACE", "IGNORE"):
        return alternative
    source.fail(f"unsupported construct: INSERT OR {alternative}", tree)


def _value(expr: Expr, table: TableSchema, position: int, source: Source, node: Any) -> Any:
    """A constant INSERT value, in the column's canonical form where that is known."""
    column = table.columns[position]
    if has_params(expr):
        context = f"column {table.name}.{column.name}"
        if isinstance(expr, Param):
            context = f"parameter :{expr.name}: {context}"
        return Computed(expr, column.type, context, source.locate(node) or ())
    value = compile_expr(expr)(())
    if value is None:
        return None
    try:
        return coerce(value, column.type)
    except TypeMismatch as exc:
        source.fail(f"type mismatch: column {table.name}.{column.name}: {exc}", node)


def _update(
    tree: exp.Update,
    schema: ModuleSchema,
    source: Source,
    params: Mapping[str, Any],
    sender: Identity,
) -> UpdateStatement:
    table = _table(tree.this, schema, source)
    for option in ("from", "from_", "joins", "order", "limit"):
        if tree.args.get(option):
            source.fail(f"unsupported construct: UPDATE ... {option.strip('_').upper()}", tree)
    binder = dml_binder(table, schema, source, params, sender)
    assignments = []
    for item in tree.expressions:
        if not isinstance(item, exp.EQ) or not isinstance(item.this, exp.Column):
            source.fail("expected column = value in SET", item)
        name = item.this.name
        if name not in table.column_names:
            known = ", ".join(table.column_names)
            source.fail(f"unknown column {name!r} (columns: {known})", item.this)
        position = table.column_names.index(name)
        column = table.columns[position]
        value = binder.bind(item.expression)
        if isinstance(value, Param):
            context = f"parameter :{value.name}: column {table.name}.{name}"
            value = Param(value.name, column.type, column.type, context, value.where)
        elif isinstance(value, Const) and value.value is not None:
            try:
                value = Const(coerce(value.value, column.type), column.type)
            except TypeMismatch as exc:
                source.fail(f"type mismatch: column {table.name}.{name}: {exc}", item.expression)
        elif family(type_of(value)) not in (None, family(column.type)):
            source.fail(
                f"type mismatch: column {table.name}.{name} is {base(column.type)}, "
                f"the value is {base(type_of(value))}",
                item.expression,
            )
        assignments.append((position, value))
    if binder.subqueries:
        source.fail("unsupported construct: a subquery in SET (one in WHERE is fine)", tree)
    plan = _source_plan(tree, table, binder)
    return UpdateStatement(table, tuple(assignments), plan, _returning(tree, table, binder, source))


def _returning(
    tree: exp.Expression, table: TableSchema, binder: Binder, source: Source
) -> Returning | None:
    """``RETURNING`` bound over the table's own row (``*`` for all its columns)."""
    node = tree.args.get("returning")
    if node is None:
        return None
    subqueries_before = getattr(binder, "subqueries", 0)
    exprs: list[Expr] = []
    names: list[str] = []
    for item in node.expressions:
        if isinstance(item, exp.Star):
            for position, column in enumerate(table.columns):
                exprs.append(Col(position, column.name, column.type))
                names.append(column.name)
            continue
        binder.clause = "RETURNING"
        binder.aggregates_allowed = False
        target = item.this if isinstance(item, exp.Alias) else item
        exprs.append(binder.bind(target))
        if isinstance(item, exp.Alias):
            names.append(item.alias)
        elif isinstance(item, exp.Column):
            names.append(item.name)
        else:
            names.append(item.sql(dialect="sqlite"))
    if getattr(binder, "subqueries", 0) != subqueries_before:
        source.fail("unsupported construct: a subquery in RETURNING", node)
    return Returning(tuple(exprs), tuple(names), tuple(type_of(e) for e in exprs))


def _source_plan(tree: exp.Expression, table: TableSchema, binder: Binder) -> Node:
    plan: Node = Scan(table, table.name)
    where = tree.args.get("where")
    if where is not None:
        plan = Filter(plan, binder.bind(where.this))
    return optimize(with_subqueries(plan, binder))
