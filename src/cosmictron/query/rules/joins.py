"""Choose how each join runs: index nested loop, hash join, or plain nested loop.

Joins are left-deep, so the right side of every join is one table (with its pushed-down
filter). When the ON condition has a conjunct ``<left expression> = right.col`` and the
right table has an index (or primary key) on exactly ``col``, each left row looks its
matches up in that index: no pass over the right table at all (IndexNestedLoopJoin).
Otherwise, with at least one such equality, the right side is scanned once into a hash
table on the equality keys (HashJoin). With no equality, every pair is tested
(NestedLoopJoin): cross joins and inequality joins.
"""

from __future__ import annotations

from dataclasses import replace

from cosmictron.datastore import TableSchema
from cosmictron.query.plan import (
    Binary,
    Col,
    Expr,
    Filter,
    HashJoin,
    IndexNestedLoopJoin,
    Join,
    NestedLoopJoin,
    Node,
    Scan,
    conjoin,
    conjuncts,
    shift,
    slots,
)


def choose_joins(plan: Node) -> Node:
    """Replace each logical ``Join`` with a physical join.

    >>> from cosmictron.datastore import ColumnSchema, TableSchema
    >>> from cosmictron.datastore.types import I64
    >>> from cosmictron.query.explain import explain
    >>> a = TableSchema("a", (ColumnSchema("id", I64),))
    >>> b = TableSchema("b", (ColumnSchema("id", I64),), ("id",))
    >>> on = Binary("=", Col(0, "a.id"), Col(1, "b.id"))
    >>> explain(choose_joins(Join("INNER", Scan(a, "a"), Scan(b, "b", 1), on)))[-1]
    'IndexNestedLoopJoin INNER b USING primary_key ON b.id = a.id'
    >>> on = Binary("=", Col(0, "b.id"), Col(1, "a.id"))
    >>> explain(choose_joins(Join("INNER", Scan(b, "b"), Scan(a, "a", 1), on)))[-1]
    'HashJoin INNER ON b.id = a.id'
    """
    if isinstance(plan, Join):
        return _physical(replace(plan, left=choose_joins(plan.left)))
    child = getattr(plan, "child", None)
    if child is None:
        return plan
    return replace(plan, child=choose_joins(child))  # type: ignore[call-arg]


def _right_scan(node: Node) -> tuple[Scan, Expr | None] | None:
    if isinstance(node, Scan):
        return node, None
    if isinstance(node, Filter) and isinstance(node.child, Scan):
        return node.child, node.predicate
    return None


def _physical(join: Join) -> Node:
    right = _right_scan(join.right)
    if right is None:
        return NestedLoopJoin(join.kind, join.left, join.right, join.condition)
    scan, inner_filter = right
    low, high = scan.base, scan.base + len(scan.table.columns)
    equalities: list[tuple[Expr, Expr]] = []  # (left side, right side), absolute slots
    others: list[Expr] = []
    for expr in conjuncts(join.condition):
        pair = _equality(expr, low, high)
        if pair is None:
            others.append(expr)
        else:
            equalities.append(pair)
    for number, (left_expr, right_expr) in enumerate(equalities):
        if isinstance(right_expr, Col):
            column = scan.table.columns[right_expr.slot - low].name
            index = _index_on(scan.table, column)
            if index is None or isinstance(index, str):
                rest = [
                    Binary("=", a, b) for a, b in equalities[:number] + equalities[number + 1 :]
                ]
                return IndexNestedLoopJoin(
                    join.kind,
                    join.left,
                    scan,
                    index,
                    column,
                    left_expr,
                    inner_filter,
                    conjoin(rest + others),
                )
    if equalities:
        return HashJoin(
            join.kind,
            join.left,
            join.right,
            tuple(left for left, _ in equalities),
            tuple(shift(right, -low) for _, right in equalities),
            conjoin(others),
        )
    return NestedLoopJoin(join.kind, join.left, join.right, join.condition)


def _equality(expr: Expr, low: int, high: int) -> tuple[Expr, Expr] | None:
    """``(left side, right side)`` if ``expr`` equates a left expression with a right one."""
    if not isinstance(expr, Binary) or expr.op != "=":
        return None
    for left, right in ((expr.left, expr.right), (expr.right, expr.left)):
        left_slots, right_slots = slots(left), slots(right)
        if (
            left_slots
            and right_slots
            and all(s < low for s in left_slots)
            and all(low <= s < high for s in right_slots)
        ):
            return left, right
    return None


def _index_on(table: TableSchema, column: str) -> str | bool | None:
    """The index on exactly ``column``: None for the primary key, False for none."""
    if table.primary_key == (column,):
        return None
    candidates = [index for index in table.indexes if index.columns == (column,)]
    candidates.sort(key=lambda index: not index.unique)
    return candidates[0].name if candidates else False
