"""Push WHERE and ON conjuncts down to the join or table where they can first be checked.

Filtering early means joining fewer rows, and a filter sitting directly on its table is
what the index rule can answer with an index. For a conjunct whose highest table (in
FROM order) is *m*:

* table 0, or an INNER join *m* with only table *m* referenced: it becomes a filter on
  table *m*'s scan (rebased to that table's row);
* an INNER join *m* referencing earlier tables too: it joins the ON condition of join *m*;
  moving it from WHERE is safe because the later joins only append columns, and an inner
  join drops exactly the rows WHERE would have dropped;
* a LEFT join *m*: it stays in WHERE (above the joins), since it must also see the
  NULL-padded rows that join produces.

An ON condition of join *m* that reads only table *m* filters that table before the
join, for LEFT joins too (a right row failing ON never matches anyway).
"""

from __future__ import annotations

from dataclasses import replace

from cosmictron.query.plan import (
    Expr,
    Filter,
    Join,
    Node,
    Scan,
    conjoin,
    conjuncts,
    shift,
    slots,
)


def push_filters(plan: Node) -> Node:
    """Rewrite every FROM/WHERE part of ``plan`` with its conjuncts pushed down.

    >>> from cosmictron.datastore import ColumnSchema, TableSchema
    >>> from cosmictron.datastore.types import I64
    >>> from cosmictron.query.explain import explain
    >>> from cosmictron.query.plan import Binary, Col, Const
    >>> a = TableSchema("a", (ColumnSchema("id", I64),))
    >>> b = TableSchema("b", (ColumnSchema("a_id", I64),))
    >>> where = Binary("AND", Binary("=", Col(0, "a.id"), Col(1, "b.a_id")),
    ...                Binary(">", Col(1, "b.a_id"), Const(3)))
    >>> plan = Filter(Join("INNER", Scan(a, "a"), Scan(b, "b", 1), None), where)
    >>> explain(push_filters(plan))
    ['Scan a', 'Scan b', 'Filter (b.a_id > 3)', 'Join INNER ON (a.id = b.a_id)']
    """
    if isinstance(plan, Filter) and _is_chain(plan.child):
        return _rebuild(plan.child, conjuncts(plan.predicate))
    if isinstance(plan, Join):
        return _rebuild(plan, [])
    child = getattr(plan, "child", None)
    if child is None:
        return plan
    return replace(plan, child=push_filters(child))  # type: ignore[call-arg]


def _is_chain(node: Node) -> bool:
    if isinstance(node, Scan):
        return True
    return isinstance(node, Join) and isinstance(node.right, Scan) and _is_chain(node.left)


def _flatten(node: Node) -> list[tuple[Scan, str, list[Expr]]]:
    if isinstance(node, Scan):
        return [(node, "", [])]
    assert isinstance(node, Join) and isinstance(node.right, Scan)
    return [*_flatten(node.left), (node.right, node.kind, conjuncts(node.condition))]


def _rebuild(chain: Node, where: list[Expr]) -> Node:
    items = _flatten(chain)
    scans = [scan for scan, _, _ in items]
    kinds = [kind for _, kind, _ in items]
    table_filters: list[list[Expr]] = [[] for _ in items]
    join_conditions: list[list[Expr]] = [[] for _ in items]
    remaining: list[Expr] = []

    def tables_of(expr: Expr) -> set[int]:
        found = set()
        for slot in slots(expr):
            for number, scan in enumerate(scans):
                if scan.base <= slot < scan.base + len(scan.table.columns):
                    found.add(number)
        return found

    for expr in where:
        tables = tables_of(expr)
        last = max(tables, default=0)
        if not tables and len(items) > 1:
            remaining.append(expr)
        elif last == 0 or (kinds[last] == "INNER" and tables == {last}):
            table_filters[last].append(expr)
        elif kinds[last] == "INNER":
            join_conditions[last].append(expr)
        else:
            remaining.append(expr)
    for number, (_, _, on) in enumerate(items):
        for expr in on:
            if tables_of(expr) == {number}:
                table_filters[number].append(expr)
            else:
                join_conditions[number].append(expr)
    node: Node = _filtered(scans[0], table_filters[0])
    for number in range(1, len(items)):
        right = _filtered(scans[number], table_filters[number])
        node = Join(kinds[number], node, right, conjoin(join_conditions[number]))
    predicate = conjoin(remaining)
    return node if predicate is None else Filter(node, predicate)


def _filtered(scan: Scan, predicates: list[Expr]) -> Node:
    predicate = conjoin([shift(p, -scan.base) for p in predicates])
    return scan if predicate is None else Filter(scan, predicate)
