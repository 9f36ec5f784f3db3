"""Gather the inner joins at the bottom of a join chain into one ``JoinGroup``.

``select.py`` builds joins in FROM order, and until now they ran in that order, so the
same join written in an unlucky order could take a hundred times longer. Inner joins
commute, so the tables of a run of inner joins may be joined in any order; which is
best depends on the tables' sizes, known only when the plan runs against data, so this
rule only marks the group (``plan.JoinGroup``) and ``join_order.py`` orders it by cost
when it runs (and for ``EXPLAIN``).

Only the leading run of inner joins is gathered: a LEFT join keeps its place, and so
does every join after it (an inner join after a LEFT join may read the NULL-padded
columns, so moving it across would change results). Conditions are taken as
``push_filters`` left them: a table's own conditions on its scan, each condition
relating tables on the join where its last table arrives. A condition holding a
subquery other than a visibility filter's (which reads no column of the row but its
keys) keeps the FROM order, since its inner columns could not be moved with the row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

from cosmictron.query.params import has_params
from cosmictron.query.plan import (
    Expr,
    Filter,
    Join,
    JoinGroup,
    KeySet,
    Node,
    OrderMemo,
    Scan,
    SemiJoin,
    conjoin,
    conjuncts,
)


def group_joins(plan: Node) -> Node:
    """Replace the leading inner joins of each join chain with a ``JoinGroup``.

    >>> from cosmictron.datastore import ColumnSchema, TableSchema
    >>> from cosmictron.datastore.types import I64
    >>> from cosmictron.query.plan import Binary, Col
    >>> a = TableSchema("a", (ColumnSchema("id", I64),))
    >>> b = TableSchema("b", (ColumnSchema("id", I64),))
    >>> on = Binary("=", Col(0, "a.id"), Col(1, "b.id"))
    >>> group = group_joins(Join("INNER", Scan(a, "a"), Scan(b, "b", 1), on))
    >>> [scan.alias for scan in group.relations], group.conditions == (on,)
    (['a', 'b'], True)
    """
    if isinstance(plan, Join):
        items = _flatten(plan)
        if items is None:
            return replace(plan, left=group_joins(plan.left))
        inner = 1
        while inner < len(items) and items[inner][1] == "INNER":
            inner += 1
        if inner < 2 or not all(_movable(e) for _, _, on in items[:inner] for e in on):
            return plan
        relations = tuple(node for node, _, _ in items[:inner])
        conditions = tuple(e for _, _, on in items[1:inner] for e in on)
        reusable = not has_params(relations) and not has_params(conditions)
        node: Node = JoinGroup(relations, conditions, OrderMemo(reusable))
        for right, kind, on in items[inner:]:
            node = Join(kind, node, right, conjoin(on))
        return node
    child = getattr(plan, "child", None)
    if child is None or not isinstance(child, Node):
        return plan
    return replace(plan, child=group_joins(child))  # type: ignore[call-arg]


def _flatten(node: Node) -> list[tuple[Node, str, list[Expr]]] | None:
    """The chain's tables with their join kind and ON conjuncts (None: not a chain)."""
    if isinstance(node, Scan) or (isinstance(node, Filter) and isinstance(node.child, Scan)):
        return [(node, "", [])]
    if not isinstance(node, Join):
        return None
    right = node.right
    if not (
        isinstance(right, Scan) or (isinstance(right, Filter) and isinstance(right.child, Scan))
    ):
        return None
    left = _flatten(node.left)
    if left is None:
        return None
    return [*left, (right, node.kind, conjuncts(node.condition))]


def _movable(expr: Expr) -> bool:
    """Whether every column ``expr`` reads is a slot of the row (no correlated subplan)."""
    if isinstance(expr, SemiJoin | KeySet):
        return all(_movable(key) for key in expr.keys)
    for item in dataclasses.fields(expr):
        value = getattr(expr, item.name)
        values = value if isinstance(value, tuple) else (value,)
        for part in values:
            if isinstance(part, Node):
                return False
            if isinstance(part, Expr) and not _movable(part):
                return False
    return True
