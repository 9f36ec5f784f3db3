"""The executor's join operators: nested loop, hash join, index nested loop, join group.

Each takes its node and the executor's ``run`` for its children (so this module does
not import ``execute.py``, which dispatches to it). The inner side is held in memory
(a list, a hash table) or looked up in an index per outer row; every row pair compared
is charged to the meter as rows examined, and each row a join table holds is charged at
``JOIN_ROW_BYTES`` against the held-bytes limit: the values are the snapshot's own, so
only the slot is charged. A LEFT join pads an unmatched outer row with NULLs, as wide as
the inner side's table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cosmictron.datastore import Datastore
from cosmictron.query.budget import Meter
from cosmictron.query.expressions import compile_expr
from cosmictron.query.join_order import plan_group
from cosmictron.query.keysets import Rows, Run, compile_predicate
from cosmictron.query.plan import (
    HashJoin,
    IndexNestedLoopJoin,
    IndexScan,
    Join,
    JoinGroup,
    NestedLoopJoin,
    Node,
    Scan,
)
from cosmictron.query.statistics import datastore_statistics

JOIN_ROW_BYTES = 64
"""What one row held by a join's table (or a nested loop's inner rows) is charged: its
slot in a list or dict, not its values, which are the snapshot's."""


def nested_loop(node: NestedLoopJoin | Join, datastore: Datastore, meter: Meter, run: Run) -> Rows:
    condition = compile_predicate(node.condition, datastore, meter, run)
    right_rows = list(run(node.right, datastore, meter))
    padding = (None,) * _scan_width(node.right)
    left_join = node.kind == "LEFT"
    meter.hold(JOIN_ROW_BYTES * len(right_rows))
    pairs = len(right_rows)
    charge = meter.charge
    for left in run(node.left, datastore, meter):
        charge(pairs)
        matched = False
        for right in right_rows:
            row = left + right
            if condition is None or condition(row):
                matched = True
                yield row
        if left_join and not matched:
            yield left + padding


def hash_join(node: HashJoin, datastore: Datastore, meter: Meter, run: Run) -> Rows:
    left_keys = _key_function(node.left_keys, meter)
    right_keys = _key_function(node.right_keys, meter)
    residual = compile_predicate(node.residual, datastore, meter, run)
    table: dict[Any, list[tuple[Any, ...]]] = {}
    hold = meter.hold
    for right in run(node.right, datastore, meter):
        key = right_keys(right)
        if key is not None:
            hold(JOIN_ROW_BYTES)
            table.setdefault(key, []).append(right)
    padding = (None,) * _scan_width(node.right)
    left_join = node.kind == "LEFT"
    charge = meter.charge
    for left in run(node.left, datastore, meter):
        matched = False
        key = left_keys(left)
        if key is not None:
            candidates = table.get(key, ())
            charge(len(candidates))
            for right in candidates:
                row = left + right
                if residual is None or residual(row):
                    matched = True
                    yield row
        if left_join and not matched:
            yield left + padding


def _key_function(exprs: tuple[Any, ...], meter: Meter) -> Callable[[tuple[Any, ...]], Any]:
    """A row's join key, or None when any part is NULL (NULL never equals anything)."""
    functions = [compile_expr(expr, meter) for expr in exprs]

    def key(row: tuple[Any, ...]) -> Any:
        values = tuple(function(row) for function in functions)
        return None if None in values else values

    return key


def index_join(node: IndexNestedLoopJoin, datastore: Datastore, meter: Meter, run: Run) -> Rows:
    table = datastore.tables[node.inner.name]
    rows = table.rows
    index = None if node.index is None else table.index_named(node.index)
    left_key = compile_expr(node.left_key, meter)
    inner_filter = compile_predicate(node.inner_filter, datastore, meter, run)
    residual = compile_predicate(node.residual, datastore, meter, run)
    padding = (None,) * len(node.inner.table.columns)
    left_join = node.kind == "LEFT"
    charge = meter.charge
    for left in run(node.left, datastore, meter):
        matched = False
        key = left_key(left)
        if key is not None:
            candidates: list[tuple[Any, ...]]
            if index is None:
                found = rows.get(key)
                candidates = [] if found is None else [found]
            else:
                candidates = [rows[k] for k in index.row_keys(key)]
            charge(len(candidates))
            for right in candidates:
                if inner_filter is not None and not inner_filter(right):
                    continue
                row = left + right
                if residual is None or residual(row):
                    matched = True
                    yield row
        if left_join and not matched:
            yield left + padding


def join_group(node: JoinGroup, datastore: Datastore, meter: Meter, run: Run) -> Rows:
    """The group's tables joined in the order its cost model picks for these tables'
    sizes (``join_order.py``), each row laid out in FROM order."""
    planned = plan_group(node, datastore_statistics(datastore))
    rows = run(planned.plan, datastore, meter)
    layout = planned.layout
    return rows if layout is None else map(layout, rows)


def _scan_width(node: Node) -> int:
    if isinstance(node, JoinGroup):
        return sum(_scan_width(relation) for relation in node.relations)
    while not isinstance(node, Scan | IndexScan):
        node = getattr(node, "child")  # noqa: B009
    return len(node.table.columns)
