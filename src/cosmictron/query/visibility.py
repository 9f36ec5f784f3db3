"""Row-level security: a module's visibility filters, applied to every read by a non-owner.

A filter is ``SELECT <t>.* FROM <t> [JOIN <u> ON ...]... [WHERE <condition>]``: it
admits the rows of ``t`` the query would return, for the reading client ``:sender``.
How they combine (docs/guide/row-level-security.md):

* A row of a table is visible to a non-owner if **any** of the table's filters admits
  it (the filters are OR-ed); a table without filters shows every row.
* Filters restrict rows; they never grant access: a private table stays owner-only.
* The restriction is part of the plan. ``build_select`` gives each table occurrence in
  FROM/JOIN its own copy (self-joins included): an inner-joined occurrence's
  restriction is AND-ed into WHERE, a LEFT JOIN's right side's into its ON condition,
  so a hidden row behaves exactly as if it were not in the table, through any join,
  aggregate or subscription delta.
* A filter that joins other tables becomes a **semi-join** (``plan.SemiJoin``): the
  conditions that read only ``t`` stay on ``t``'s row, each equality between ``t`` and
  the other tables becomes a key, and everything else is a subplan over the other
  tables returning the keys that admit a row. A semi-join never repeats a row (ten
  memberships of one room still show each message once).
* **The other tables are read through their own filters**, recursively, as SpacetimeDB
  applies RLS: a hidden row behaves as if absent for that reader everywhere, inside
  another table's filter too, so no filter can reveal what another hides. The one
  exception is the filtered table itself inside its own filter (a self-join: "members
  of rooms I am a member of"), read as stored, since applying a filter to itself has no
  end. Chains of filters may be any depth; a **cycle** through other tables (the filter
  of ``a`` reads ``b``, whose filter reads ``a``) is refused when the module loads, with
  the cycle named, because its meaning would have no end either.
* The owner, reducers and SQL writes (owner-only) are not restricted.

Rules are parsed once per schema and kept in a small cache keyed by the schema object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlglot import exp

from cosmictron import limits
from cosmictron.datastore import ModuleSchema, TableSchema
from cosmictron.errors import SchemaError, SqlError
from cosmictron.query.plan import (
    Binary,
    Col,
    Const,
    Expr,
    Filter,
    Join,
    Limit,
    Node,
    Param,
    Project,
    Scan,
    SemiJoin,
    children,
    conjoin,
    conjuncts,
    shift,
    slots,
)
from cosmictron.query.position import Source
from cosmictron.query.resolve import Binder, Scope, TableRef
from cosmictron.query.syntax import syntax_tree
from cosmictron.values import Identity

_UNSUPPORTED = ("group", "having", "order", "limit", "offset", "distinct", "with")

Rules = Mapping[str, tuple["VisibilityRule", ...]]


@dataclass(frozen=True)
class VisibilityRule:
    """One parsed filter.

    ``table`` is the table it restricts, read under ``alias``; ``others`` are the other
    FROM/JOIN occurrences (alias, table) in order; ``conditions`` the ON conditions and
    the WHERE condition; ``condition`` is the WHERE alone (None: no WHERE). ``reads`` are
    the other tables whose own filters apply inside this one.
    """

    table: str
    text: str
    source: Source
    condition: exp.Expression | None
    alias: str = ""
    others: tuple[tuple[str, TableSchema], ...] = ()
    conditions: tuple[exp.Expression, ...] = ()

    @property
    def reads(self) -> frozenset[str]:
        return frozenset(schema.name for _, schema in self.others if schema.name != self.table)


_RULES: dict[int, tuple[ModuleSchema, dict[str, tuple[VisibilityRule, ...]]]] = {}
_RULES_LOCK = threading.Lock()


def visibility_rules(schema: ModuleSchema) -> Rules:
    """The schema's filters by table name, parsed and checked once per schema.

    Raises:
        SchemaError: a filter is not of the filter shape over known tables and columns,
            uses a parameter other than ``:sender``, relates its table to the others by
            anything but top-level equalities, or the filters form a cycle.
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
    _refuse_cycles(frozen)
    _refuse_expansion(frozen)
    for found in frozen.values():
        for rule in found:
            try:
                restriction(
                    (rule,),
                    TableRef(rule.table, _table(schema, rule.table), 0),
                    Identity.zero(),
                    frozen,
                )
            except SqlError as exc:
                raise SchemaError(f"visibility filter {rule.text!r}: {exc}") from None
    with _RULES_LOCK:
        if len(_RULES) > 256:
            _RULES.clear()
        _RULES[id(schema)] = (schema, frozen)
    return frozen


def _table(schema: ModuleSchema, name: str) -> TableSchema:
    table = schema.table(name)
    assert table is not None
    return table


def restriction(
    rules: tuple[VisibilityRule, ...],
    ref: TableRef,
    sender: Identity,
    every: Rules | None = None,
) -> Expr:
    """The OR of ``rules`` over the table occurrence ``ref`` (its columns at ``ref.base``).

    ``every`` is the schema's whole rule set: the tables a join filter reads are
    restricted by their own rules from it (None: no other table is restricted).
    """
    combined: Expr | None = None
    for rule in rules:
        if rule.condition is None and not rule.others:
            return Const(True)  # one filter admits every row: the OR is true
        predicate = _rule_predicate(rule, ref, sender, every or {})
        combined = predicate if combined is None else Binary("OR", combined, predicate)
    assert combined is not None
    return combined


def _rule_predicate(rule: VisibilityRule, ref: TableRef, sender: Identity, every: Rules) -> Expr:
    if not rule.others:
        assert rule.condition is not None
        scope = Scope([TableRef(rule.alias, ref.schema, ref.base)])
        return Binder(rule.source, scope, {}, sender).bind(rule.condition)
    # The other tables first, from slot 0, then the filtered table: what reads only the
    # others is the subplan as it stands, and the filtered table's side of a condition
    # moves onto the outer row by one shift.
    inner: list[TableRef] = []
    width = 0
    for alias, table in rule.others:
        inner.append(TableRef(alias, table, width))
        width += len(table.columns)
    target = TableRef(rule.alias, ref.schema, width)
    binder = Binder(rule.source, Scope([*inner, target]), {}, sender)
    bound: list[Expr] = []
    for condition in rule.conditions:
        bound.extend(conjuncts(binder.bind(condition)))
    own = list(bound)
    for other in inner:
        if other.schema.name != rule.table and other.schema.name in every:
            bound.append(restriction(every[other.schema.name], other, sender, every))

    def outer(expr: Expr) -> bool:
        return all(slot >= width for slot in slots(expr))

    def inside(expr: Expr) -> bool:
        return all(slot < width for slot in slots(expr))

    local: list[Expr] = []
    outer_keys: list[Expr] = []
    inner_keys: list[Expr] = []
    rest: list[Expr] = []
    for expr in bound:
        if slots(expr) and outer(expr):
            local.append(shift(expr, ref.base - width))
        elif inside(expr):
            rest.append(expr)
        elif (
            isinstance(expr, Binary)
            and expr.op == "="
            and (pair := _key_pair(expr.left, expr.right, outer, inside)) is not None
        ):
            outer_keys.append(shift(pair[0], ref.base - width))
            inner_keys.append(pair[1])
        else:
            raise SqlError(
                f"a condition relating {rule.table} to the other tables must be an "
                f"equality ({rule.alias}.column = other.column) AND-ed at the top level of "
                f"ON or WHERE; write an OR between them as two filters"
            )
    plan: Node = Scan(inner[0].schema, inner[0].alias, 0)
    for other in inner[1:]:
        plan = Join("INNER", plan, Scan(other.schema, other.alias, other.base), None)
    predicate = conjoin(rest)
    if predicate is not None:
        plan = Filter(plan, predicate)
    plan = Project(plan, tuple(inner_keys), len(inner_keys))
    if not inner_keys:
        plan = Limit(plan, 1, 0)  # the row is admitted if any row exists: one is enough
    from cosmictron.query.rules import optimize  # rules import plan only; no cycle at run

    label = " ".join(rule.text.split())
    semijoin = SemiJoin(tuple(outer_keys), optimize(plan), label, _occurrences(inner, own, rest))
    return conjoin([*local, semijoin]) or semijoin


def _key_pair(
    left: Expr, right: Expr, outer: Callable[[Expr], bool], inside: Callable[[Expr], bool]
) -> tuple[Expr, Expr] | None:
    """(outer side, inner side) of ``left = right`` when each side reads one side only."""
    for near, far in ((left, right), (right, left)):
        if slots(near) and outer(near) and slots(far) and inside(far):
            return near, far
    return None


def _occurrences(
    inner: list[TableRef], own: list[Expr], rest: list[Expr]
) -> tuple[tuple[str, int, Expr | None], ...]:
    """Each table the subplan reads, with a ``column = constant`` every row of it must
    meet to matter (from the filter's own conditions), at any depth (see ``SemiJoin``)."""
    found: list[tuple[str, int, Expr | None]] = []
    for ref in inner:
        guard: tuple[str, int, Expr | None] = (ref.schema.name, -1, None)
        end = ref.base + len(ref.schema.columns)
        for expr in own:
            if not isinstance(expr, Binary) or expr.op != "=":
                continue
            for column, value in ((expr.left, expr.right), (expr.right, expr.left)):
                if (
                    isinstance(value, Const | Param)
                    and isinstance(column, Col)
                    and ref.base <= column.slot < end
                ):
                    guard = (ref.schema.name, column.slot - ref.base, value)
        found.append(guard)
    for expr in rest:
        for semijoin in _semijoins(expr):
            found.extend(semijoin.occurrences)
    return tuple(found)


def _semijoins(expr: Expr) -> list[SemiJoin]:
    if isinstance(expr, SemiJoin):
        return [expr]
    return [found for child in children(expr) for found in _semijoins(child)]


def semijoins(expr: Expr) -> list[SemiJoin]:
    """Every ``SemiJoin`` in ``expr`` (not inside their subplans)."""
    return _semijoins(expr)


def _refuse_cycles(rules: Rules) -> None:
    """Refuse filters whose joined tables lead back to a table already on the path."""
    reads = {
        table: frozenset().union(*(rule.reads for rule in found)) for table, found in rules.items()
    }
    done: set[str] = set()

    def visit(table: str, path: list[str]) -> None:
        if table in path:
            cycle = [*path[path.index(table) :], table]
            raise SchemaError(
                f"visibility filters form a cycle: {' -> '.join(cycle)} (each table's filter "
                f"reads the next one, whose own filter applies inside it, so the cycle "
                f"would never end); break it by reading one of these tables without a join"
            )
        if table in done:
            return
        for other in sorted(reads.get(table, ())):
            visit(other, [*path, table])
        done.add(table)

    for table in sorted(reads):
        visit(table, [])


def _refuse_expansion(rules: Rules) -> None:
    """Refuse filters whose restriction of one table would read more tables (counting
    every hop) than ``limits.visibility_filter_reads_max``; counted without building it,
    since building it is what the bound protects."""
    reads: dict[str, int] = {}

    def count(table: str) -> int:  # the filters are acyclic here: this ends
        if table not in reads:
            reads[table] = sum(
                1 + (count(other.name) if other.name != table else 0)
                for rule in rules.get(table, ())
                for _, other in rule.others
            )
        return reads[table]

    bound = limits.visibility_filter_reads_max
    for table in sorted(rules):
        if count(table) > bound:
            raise SchemaError(
                f"the visibility filters of {table!r} read {count(table)} tables counting "
                f"every hop of their joins; the limit is {bound} "
                f"(limits.visibility_filter_reads_max): join fewer tables or fewer filters"
            )


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
                f"{clause.upper()} is not allowed: a filter says which rows of one table "
                f"a client may see"
            )
    from_clause = tree.args.get("from_") or tree.args.get("from")
    nodes = [from_clause.this if from_clause is not None else None]
    conditions: list[exp.Expression] = []
    for join in tree.args.get("joins") or []:
        side, kind = (join.side or "").upper(), (join.kind or "").upper()
        if side or kind not in ("", "INNER", "CROSS"):
            raise refuse(f"{side or kind} JOIN is not allowed in a filter (only inner joins)")
        if join.args.get("using"):
            raise refuse("JOIN ... USING is not allowed; write ON a.x = b.x")
        nodes.append(join.this)
        if join.args.get("on") is not None:
            conditions.append(join.args["on"])
    occurrences: list[tuple[str, TableSchema]] = []
    for node in nodes:
        if not isinstance(node, exp.Table) or not node.name or node.args.get("db"):
            raise refuse("a filter reads tables by name: SELECT * FROM <table> WHERE ...")
        table = schema.table(node.name)
        if table is None:
            known = ", ".join(sorted(t.name for t in schema.tables)) or "none"
            raise refuse(f"unknown table {node.name!r} (tables: {known})")
        alias = node.alias or table.name
        if any(alias == seen for seen, _ in occurrences):
            raise refuse(f"table or alias {alias!r} appears twice; give one an alias")
        occurrences.append((alias, table))
    if len(tree.expressions) != 1:
        raise refuse("a filter selects whole rows of one table: SELECT <table>.* FROM ...")
    star = _star(tree.expressions[0])
    if star is None:
        raise refuse("a filter selects whole rows of one table: SELECT <table>.* FROM ...")
    if star == "*":
        if len(occurrences) > 1:
            raise refuse(
                "with a join, name the table the filter restricts: SELECT m.* FROM message m "
                "JOIN ..."
            )
        chosen = 0
    else:
        matches = [n for n, (alias, _) in enumerate(occurrences) if alias == star]
        if not matches:
            known = ", ".join(alias for alias, _ in occurrences)
            raise refuse(f"unknown table or alias {star!r} in SELECT (tables: {known})")
        chosen = matches[0]
    alias, table = occurrences[chosen]
    where = tree.args.get("where")
    condition = where.this if where is not None else None
    if condition is not None:
        conditions.append(condition)
    for part in conditions:
        for placeholder in part.find_all(exp.Placeholder):
            if placeholder.name != "sender":
                raise refuse(
                    f"parameter :{placeholder.name} is not known here; a filter may use "
                    f":sender (the reading client's identity) only"
                )
    others = tuple(occurrence for n, occurrence in enumerate(occurrences) if n != chosen)
    if not others:
        try:
            scope = Scope([TableRef(alias, table, 0)])
            if condition is not None:
                Binder(source, scope, {}, Identity.zero()).bind(condition)
        except SqlError as exc:
            raise refuse(str(exc)) from None
    return VisibilityRule(table.name, text, source, condition, alias, others, tuple(conditions))


def _star(item: exp.Expression) -> str | None:
    """``*`` for a bare star, the qualifier of ``t.*``, None for anything else."""
    if isinstance(item, exp.Star):
        return "*"
    if isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
        return item.table or "*"
    return None


def check_visibility_filters(schema: ModuleSchema) -> None:
    """Parse every filter now, so a module with a bad one is refused when it loads."""
    visibility_rules(schema)


def restricts(schema: ModuleSchema, sender: Identity, owner: Identity) -> bool:
    """Whether ``sender``'s reads are planned with the filters: a non-owner of a module
    that declares any. SQL and subscriptions both ask this, so they cannot disagree."""
    return bool(schema.visibility_filters) and sender is not owner and sender != owner
