"""Feed ``GROUP_CONCAT`` a table's rows in primary-key order, as SQLite feeds it rowid order.

``GROUP_CONCAT`` is the one aggregate whose answer depends on the order rows reach it.
SQLite's full scan of a table with an ``INTEGER PRIMARY KEY`` walks its rowid b-tree:
key order. A Cosmictron table scan walks rows in the order they were stored, so
``SELECT GROUP_CONCAT(b) FROM t`` joined the same values in another order than SQLite
whenever rows were not inserted in key order. This rule turns the full scan under such
an aggregate (through its filters) into a scan of the primary key's ordered view when the
key is one integer column: the same rows, in SQLite's order. A scan the index rule made
an index lookup is left as it is (its order is the index's, as SQLite's would be), and
so is a join (SQLite's join order decides there; write a sorted FROM subquery to fix
it). The cost is the ordered view, built on first use and kept up to date after.
"""

from __future__ import annotations

from dataclasses import replace

from cosmictron.datastore.types import IntType
from cosmictron.query.coerce import base
from cosmictron.query.plan import Aggregate, Filter, IndexScan, Node, Scan


def order_concat_scans(plan: Node) -> Node:
    """``plan`` with the table scan under each ``GROUP_CONCAT`` aggregate in key order.

    >>> from cosmictron.datastore import ColumnSchema, TableSchema
    >>> from cosmictron.datastore.types import I64, STR
    >>> from cosmictron.query.explain import explain
    >>> from cosmictron.query.plan import Agg, Col
    >>> t = TableSchema("t", (ColumnSchema("id", I64), ColumnSchema("b", STR)), ("id",))
    >>> plan = Aggregate(Scan(t, "t"), (), (Agg("GROUP_CONCAT", Col(1, "b"), False, STR),))
    >>> explain(order_concat_scans(plan))
    ['IndexScan t USING primary_key (every row, in id order)', 'Aggregate GROUP_CONCAT(b)']
    """
    if isinstance(plan, Aggregate) and any(a.func == "GROUP_CONCAT" for a in plan.aggregates):
        return replace(plan, child=_key_ordered(plan.child))
    child = getattr(plan, "child", None)
    if not isinstance(child, Node):
        return plan
    return replace(plan, child=order_concat_scans(child))  # type: ignore[call-arg]


def _key_ordered(node: Node) -> Node:
    if isinstance(node, Filter):
        return replace(node, child=_key_ordered(node.child))
    if not isinstance(node, Scan) or len(node.table.primary_key) != 1:
        return node
    (key,) = node.table.primary_key
    column = next(c for c in node.table.columns if c.name == key)
    if not isinstance(base(column.type), IntType):
        return node
    return IndexScan(
        node.table, node.alias, None, (key,), "range", (None, None, False), node.base, node.name
    )
