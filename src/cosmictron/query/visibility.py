"""Row-level security: a module's visibility filters, applied to every read by a non-owner.

A filter is ``SELECT * FROM <table> [WHERE <condition>]``; the condition may read that
table's columns and ``:sender``. How they combine (docs/guide/row-level-security.md):

* A row of a table is visible to a non-owner if **any** of the table's filters admits
  it (the filters are OR-ed); a table without filters shows every row.
* Filters restrict rows; they never grant access: a private table stays owner-only.
* The restriction is part of the plan. ``build_select`` gives each table occurrence in
  FROM/JOIN its own copy (self-joins included): an inner-joined occurrence's
  restriction is AND-ed into WHERE, a LEFT JOIN's right side's into its ON condition,
  so a hidden row behaves exactly as if it were not in the table, through any join,
  aggregate or subscription delta.
* The owner, reducers and SQL writes (owner-only) are not restricted.

Rules are parsed once per schema and kept in a small cache keyed by the schema object.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from sqlglot import exp

from cosmictron.datastore import ModuleSchema
from cosmictron.errors import SchemaError, SqlError
from cosmictron.query.plan import Binary, Const, Expr
from cosmictron.query.position import Source
from cosmictron.query.resolve import Binder, Scope, TableRef
from cosmictron.query.syntax import syntax_tree
from cosmictron.values import Identity

_UNSUPPORTED = ("joins", "group", "having", "order", "limit", "offset", "distinct", "with")


@dataclass(frozen=True)
class VisibilityRule:
    """One parsed filter: the table it restricts and its condition (None: every row)."""

    table: str
    text: str
    source: Source
    condition: exp.Expression | None


_RULES: dict[int, tuple[ModuleSchema, dict[str, tuple[VisibilityRule, ...]]]] = {}
_RULES_LOCK = threading.Lock()


def visibility_rules(schema: ModuleSchema) -> Mapping[str, tuple[VisibilityRule, ...]]:
    """The schema's filters by table name, parsed and checked once per schema.

    Raises:
        SchemaError: a filter is not ``SELECT * FROM <table> WHERE <condition>`` over a
            known table and column names, or uses a parameter other than ``:sender``.
    """
    if not schema.visibility_filters:
        return {}
    cached = _RULES.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    rules: dict[str, list[VisibilityRule]] = {}
    for text in schema.visibility_filters:
        rule = _parse_rule(text, schema)
        rules.setdefault(rule.table, []).append(rule)
    frozen = {table: tuple(found) for table, found in rules.items()}
    with _RULES_LOCK:
        if len(_RULES) > 256:
            _RULES.clear()
        _RULES[id(schema)] = (schema, frozen)
    return frozen


def restriction(rules: tuple[VisibilityRule, ...], ref: TableRef, sender: Identity) -> Expr:
    """The OR of ``rules`` over the table occurrence ``ref`` (its columns at ``ref.base``)."""
    combined: Expr | None = None
    for rule in rules:
        if rule.condition is None:
            return Const(True)  # one filter admits every row: the OR is true
        scope = Scope([TableRef(rule.table, ref.schema, ref.base)])
        binder = Binder(rule.source, scope, {}, sender)
        predicate = binder.bind(rule.condition)
        combined = predicate if combined is None else Binary("OR", combined, predicate)
    assert combined is not None
    return combined


def _parse_rule(text: str, schema: ModuleSchema) -> VisibilityRule:
    def refuse(reason: str) -> SchemaError:
        return SchemaError(f"visibility filter {text!r}: {reason}")

    source = Source(text)
    try:
        tree = syntax_tree(source)
    except SqlError as exc:
        raise refuse(str(exc)) from None
    if not isinstance(tree, exp.Select):
        raise refuse("a filter is SELECT * FROM <table> WHERE <condition>")
    for clause in _UNSUPPORTED:
        if tree.args.get(clause):
            raise refuse(
                f"{clause.upper()} is not allowed: a filter reads one table and says which "
                f"of its rows a client may see"
            )
    from_clause = tree.args.get("from_") or tree.args.get("from")
    table_node = from_clause.this if from_clause is not None else None
    if not isinstance(table_node, exp.Table) or not table_node.name:
        raise refuse("a filter names one table: SELECT * FROM <table> WHERE <condition>")
    table = schema.table(table_node.name)
    if table is None:
        known = ", ".join(sorted(t.name for t in schema.tables)) or "none"
        raise refuse(f"unknown table {table_node.name!r} (tables: {known})")
    if table_node.alias:
        raise refuse("give the table no alias; name its columns plainly or as table.column")
    stars = [item for item in tree.expressions if _is_star(item, table.name)]
    if len(stars) != 1 or len(tree.expressions) != 1:
        raise refuse(f"a filter selects whole rows: SELECT * FROM {table.name} WHERE ...")
    where = tree.args.get("where")
    condition = where.this if where is not None else None
    if condition is not None:
        for placeholder in condition.find_all(exp.Placeholder):
            if placeholder.name != "sender":
                raise refuse(
                    f"parameter :{placeholder.name} is not known here; a filter may use "
                    f":sender (the reading client's identity) only"
                )
    rule = VisibilityRule(table.name, text, source, condition)
    try:
        restriction((rule,), TableRef(table.name, table, 0), Identity.zero())
    except SqlError as exc:
        raise refuse(str(exc)) from None
    return rule


def _is_star(item: exp.Expression, table: str) -> bool:
    if isinstance(item, exp.Star):
        return True
    return (
        isinstance(item, exp.Column)
        and isinstance(item.this, exp.Star)
        and item.table in ("", table)
    )


def check_visibility_filters(schema: ModuleSchema) -> None:
    """Parse every filter now, so a module with a bad one is refused when it loads."""
    visibility_rules(schema)


def restricts(schema: ModuleSchema, sender: Identity, owner: Identity) -> bool:
    """Whether ``sender``'s reads are planned with the filters: a non-owner of a module
    that declares any. SQL and subscriptions both ask this, so they cannot disagree."""
    return bool(schema.visibility_filters) and sender is not owner and sender != owner
