"""Reading a module's visibility filters: their shape, and the checks made at load.

A filter's text becomes a ``VisibilityRule`` (``parse_rule``): the table it restricts,
the other tables it joins, its conditions, refused with a ``SchemaError`` naming the
filter when it is not of the filter shape (``visibility.py`` says what that shape
means). Two checks then look at the rules together, before any is planned: no cycle
through other tables' filters (``refuse_cycles``), and no restriction that would read
more than ``limits.visibility_filter_reads_max`` tables (``refuse_expansion``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlglot import exp

from cosmictron import limits
from cosmictron.datastore import ModuleSchema, TableSchema
from cosmictron.errors import SchemaError, SqlError
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


def refuse_cycles(rules: Rules) -> None:
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


def refuse_expansion(rules: Rules) -> None:
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


def parse_rule(text: str, schema: ModuleSchema) -> VisibilityRule:
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
