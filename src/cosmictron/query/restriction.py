"""Planning a reader's visibility filters: the predicate they put on one table.

``restriction`` ORs a table's filters into one predicate over a table occurrence in a
query (``select.py`` ANDs it into WHERE, or into a LEFT JOIN's ON). A one-table filter
is its WHERE, bound at the occurrence's columns. A filter that joins other tables
becomes a ``SemiJoin`` (``plan.py``): its conditions on the filtered table alone stay on
the row, each equality with another table becomes a key, and the rest is a subplan over
the other tables, themselves restricted by their own filters, recursively, returning
the keys that admit a row. The executor evaluates the subplan once per run
(``keysets.py``). ``visibility.py`` states the rules these follow.
"""

from __future__ import annotations

from collections.abc import Callable

from cosmictron.errors import SqlError
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
from cosmictron.query.resolve import Binder, Scope, TableRef
from cosmictron.query.visibility_parse import Rules, VisibilityRule
from cosmictron.values import Identity


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
