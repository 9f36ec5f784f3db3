"""Run a plan over the datastore: each node becomes a generator of row tuples.

``execute`` must run over tables no writer changes meanwhile: a snapshot
(``Datastore.snapshot``, what ``Database.sql`` reads off the writer lock) or the live
datastore under the writer lock (subscriptions' deltas, DML). It materialises the result
before returning, so nothing lazy escapes. Expressions are compiled once per node
(``expressions.py``) before the first row flows. The row limit is checked as rows are
produced, so a huge result fails early instead of after filling memory.

Every row examined is charged to the run's ``Meter`` (``budget.py``): rows a scan or an
index lookup yields, row pairs a join compares. The meter stops a query past its time or
rows-examined budget from inside these loops, so even a cartesian product that returns
one row is stopped in time.

Bytes are charged to the same meter: each row returned at its estimated weight
(``sizes.py``) against the result limit, as it is produced; each row a sort, a DISTINCT
set or a group holds at its weight, and each row a join table holds at
``JOIN_ROW_BYTES``, against the held-bytes limit, as they fill. The values a join table
holds are the snapshot's own (no copy), so only the table's slot is charged.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import islice
from typing import Any

from cosmictron import limits
from cosmictron.datastore import Datastore, Index
from cosmictron.errors import QueryTooCostly
from cosmictron.query.budget import Meter, QueryBudget
from cosmictron.query.expressions import compile_expr
from cosmictron.query.plan import (
    Agg,
    Aggregate,
    Binary,
    Col,
    Distinct,
    Expr,
    Filter,
    HashJoin,
    IndexNestedLoopJoin,
    IndexScan,
    IsNull,
    Join,
    KeySet,
    Limit,
    NestedLoopJoin,
    Node,
    Project,
    Scan,
    SemiJoin,
    Sort,
    Unary,
    conjuncts,
    type_of,
)
from cosmictron.query.sizes import SCALAR_BYTES, VARYING, row_bytes, row_weigher, value_bytes

Rows = Iterator[tuple[Any, ...]]

UNMETERED = QueryBudget(
    time_s=float("inf"),
    rows_examined_max=sys.maxsize,
    result_bytes_max=sys.maxsize,
    held_bytes_max=sys.maxsize,
)
"""No budget: for work the database does for itself under the writer lock (a
subscription's delta, DML), which is bounded by the transaction, not by a caller. Only
the value limit (``limits.sql_value_bytes_max``) still applies to the values it builds."""

CHUNK_ROWS = 1024
"""Rows a scan takes (and charges) at a time."""

JOIN_ROW_BYTES = 64
"""What one row held by a join's table (or a nested loop's inner rows) is charged: its
slot in a list or dict, not its values, which are the snapshot's."""


def execute(
    plan: Node, datastore: Datastore, rows_max: int, meter: Meter | None = None
) -> list[tuple[Any, ...]]:
    """Every row ``plan`` produces (hidden sort columns removed).

    Raises:
        QueryTooCostly: the result would have more than ``rows_max`` rows, or the run
            examined more rows than ``meter`` allows.
        QueryCancelled: the run took longer than ``meter`` allows.
    """
    if meter is None:
        meter = UNMETERED.start()
    width = plan_width(plan)
    weigh = row_weigher(plan_types(plan, width))
    charge_result = meter.charge_result
    rows: list[tuple[Any, ...]] = []
    for row in _run(plan, datastore, meter):
        if len(rows) >= rows_max:
            meter.too_many_rows(rows_max)
        if width is not None and len(row) != width:
            row = row[:width]
        charge_result(weigh(row))
        rows.append(row)
    meter.check_time()
    return rows


def plan_tables(plan: Node) -> set[str]:
    """The names of the tables ``plan`` reads (what a snapshot for it must hold).

    Walks every dataclass in the plan, expressions included, so a table read from
    inside an expression (a subquery) is found too.
    """
    names: set[str] = set()
    stack: list[Any] = [plan]
    while stack:
        item = stack.pop()
        if isinstance(item, Scan | IndexScan):
            names.add(item.name)
        if isinstance(item, tuple | list | frozenset):
            stack.extend(item)
        else:
            fields = getattr(item, "__dataclass_fields__", None)
            if fields is not None:
                stack.extend(getattr(item, name) for name in fields)
    return names


def plan_types(plan: Node, width: int | None) -> tuple[Any, ...] | None:
    """The types of the plan's visible output columns, if a Project says (else None)."""
    node: Node | None = plan
    while node is not None:
        if isinstance(node, Project):
            return tuple(type_of(expr) for expr in node.exprs[:width])
        node = getattr(node, "child", None)
    return None


def plan_width(plan: Node) -> int | None:
    """The visible width of the plan's rows, if a Project says so."""
    node: Node | None = plan
    while node is not None:
        if isinstance(node, Project):
            return node.width
        node = getattr(node, "child", None)
    return None


def _run(node: Node, datastore: Datastore, meter: Meter) -> Rows:
    runner = _RUNNERS.get(type(node))
    assert runner is not None, f"no runner for {type(node).__name__}"
    return runner(node, datastore, meter)


def _scan(node: Scan, datastore: Datastore, meter: Meter) -> Rows:
    rows = datastore.tables[node.name].rows
    if len(rows) <= CHUNK_ROWS:
        meter.charge(len(rows))
        return iter(rows.values())
    return _metered(iter(rows.values()), meter)


def _metered(rows: Rows, meter: Meter) -> Rows:
    """``rows``, charged to ``meter`` a chunk at a time (a LIMIT may stop early)."""
    while chunk := list(islice(rows, CHUNK_ROWS)):
        meter.charge(len(chunk))
        yield from chunk


def _index_scan(node: IndexScan, datastore: Datastore, meter: Meter) -> Rows:
    table = datastore.tables[node.name]
    rows = table.rows
    index: Index | None = None
    if node.index is not None:
        index = table.index_named(node.index)
        assert index is not None
    if node.mode in ("eq", "in"):
        keys: list[Any] = []
        for value in node.values:
            if index is None:
                if value in rows:
                    keys.append(value)
            else:
                keys.extend(index.row_keys(value))
        if node.mode == "in":
            keys = list(dict.fromkeys(keys))
    else:
        ordered = index if index is not None else table.ordered_primary()
        if node.mode == "prefix":
            keys = list(ordered.prefix_row_keys(node.values[0]))
        else:
            low, high, inclusive = node.values
            keys = list(ordered.range_row_keys(low, high, inclusive=inclusive))
    meter.charge(len(keys))
    return iter([rows[key] for key in keys])


def resolve_semijoins(expr: Expr, datastore: Datastore, meter: Meter | None = None) -> Expr:
    """``expr`` with each ``SemiJoin`` evaluated into a ``KeySet`` over ``datastore``.

    A semi-join's subplan (a visibility filter's other tables, themselves filtered) runs
    once per execution of the plan that holds it, not once per row; an expression
    without one is returned as it is. Its rows examined are charged to ``meter`` (the
    reader's query pays for its filters; None: unmetered, the database's own work) and
    its rows count against ``limits.query_rows_max``.
    """
    if isinstance(expr, SemiJoin):
        if meter is None:
            meter = UNMETERED.start()
        rows_max = limits.query_rows_max
        width = plan_width(expr.plan)
        values: set[tuple[Any, ...]] = set()
        for count, row in enumerate(_run(expr.plan, datastore, meter), start=1):
            if count > rows_max:
                raise QueryTooCostly(
                    f"the visibility filter {expr.label!r} reads more than {rows_max} rows "
                    f"for this reader (limits.query_rows_max)"
                )
            key = row if width is None or len(row) == width else row[:width]
            if None not in key:
                values.add(key)
        keys = tuple(resolve_semijoins(key, datastore, meter) for key in expr.keys)
        return KeySet(keys, frozenset(values), expr.label)
    if isinstance(expr, Binary):
        left = resolve_semijoins(expr.left, datastore, meter)
        right = resolve_semijoins(expr.right, datastore, meter)
        if left is expr.left and right is expr.right:
            return expr
        return replace(expr, left=left, right=right)
    if isinstance(expr, Unary | IsNull):
        operand = resolve_semijoins(expr.operand, datastore, meter)
        return expr if operand is expr.operand else replace(expr, operand=operand)
    return expr  # visibility filters put semi-joins only under AND, OR and NOT


def _predicate(
    expr: Expr | None, datastore: Datastore, meter: Meter
) -> Callable[[Any], Any] | None:
    return None if expr is None else compile_expr(resolve_semijoins(expr, datastore, meter), meter)


def _filter(node: Filter, datastore: Datastore, meter: Meter) -> Rows:
    resolved = resolve_semijoins(node.predicate, datastore, meter)
    predicate = compile_expr(resolved, meter)
    if isinstance(node.child, Scan):
        keyed = _rows_by_key_set(node.child, resolved, datastore)
        if keyed is not None:
            found = list(keyed)
            meter.charge(len(found))
            return filter(predicate, found)
    return filter(predicate, _run(node.child, datastore, meter))


def _rows_by_key_set(scan: Scan, predicate: Expr, datastore: Datastore) -> Rows | None:
    """The rows a join visibility filter can admit, found through an index.

    Its set is known only now (``resolve_semijoins``), so the planner could not choose
    the index: when a conjunct is ``column IN <set>`` on a column with its own index
    (or the primary key) and the set is small next to the table, look each value up
    instead of scanning (a reader's messages in their rooms, not every message). The
    whole predicate still runs on the rows found. None: scan.
    """
    table = datastore.tables[scan.name]
    for conjunct in conjuncts(predicate):
        if not isinstance(conjunct, KeySet) or len(conjunct.keys) != 1:
            continue
        key = conjunct.keys[0]
        if not isinstance(key, Col) or len(conjunct.values) * 4 > len(table.rows):
            continue
        column = scan.table.columns[key.slot].name
        rows = table.rows
        if tuple(scan.table.primary_key) == (column,):
            return iter([rows[v[0]] for v in conjunct.values if v[0] in rows])
        for index in table.indexes:
            if tuple(index.schema.columns) == (column,):
                return iter([rows[k] for v in conjunct.values for k in index.row_keys(v[0])])
    return None


def _nested_loop(node: NestedLoopJoin | Join, datastore: Datastore, meter: Meter) -> Rows:
    condition = _predicate(node.condition, datastore, meter)
    right_rows = list(_run(node.right, datastore, meter))
    padding = (None,) * _scan_width(node.right)
    left_join = node.kind == "LEFT"
    meter.hold(JOIN_ROW_BYTES * len(right_rows))
    pairs = len(right_rows)
    charge = meter.charge
    for left in _run(node.left, datastore, meter):
        charge(pairs)
        matched = False
        for right in right_rows:
            row = left + right
            if condition is None or condition(row):
                matched = True
                yield row
        if left_join and not matched:
            yield left + padding


def _hash_join(node: HashJoin, datastore: Datastore, meter: Meter) -> Rows:
    left_keys = _key_function(node.left_keys, meter)
    right_keys = _key_function(node.right_keys, meter)
    residual = _predicate(node.residual, datastore, meter)
    table: dict[Any, list[tuple[Any, ...]]] = {}
    hold = meter.hold
    for right in _run(node.right, datastore, meter):
        key = right_keys(right)
        if key is not None:
            hold(JOIN_ROW_BYTES)
            table.setdefault(key, []).append(right)
    padding = (None,) * _scan_width(node.right)
    left_join = node.kind == "LEFT"
    charge = meter.charge
    for left in _run(node.left, datastore, meter):
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


def _index_join(node: IndexNestedLoopJoin, datastore: Datastore, meter: Meter) -> Rows:
    table = datastore.tables[node.inner.name]
    rows = table.rows
    index = None if node.index is None else table.index_named(node.index)
    left_key = compile_expr(node.left_key, meter)
    inner_filter = _predicate(node.inner_filter, datastore, meter)
    residual = _predicate(node.residual, datastore, meter)
    padding = (None,) * len(node.inner.table.columns)
    left_join = node.kind == "LEFT"
    charge = meter.charge
    for left in _run(node.left, datastore, meter):
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


def _scan_width(node: Node) -> int:
    while not isinstance(node, Scan | IndexScan):
        node = getattr(node, "child")  # noqa: B009
    return len(node.table.columns)


def _aggregate(node: Aggregate, datastore: Datastore, meter: Meter) -> Rows:
    groups = [compile_expr(expr, meter) for expr in node.groups]
    arguments = [None if a.arg is None else compile_expr(a.arg, meter) for a in node.aggregates]
    buckets: dict[tuple[Any, ...], list[list[Any]]] = {}
    hold = meter.hold
    for row in _run(node.child, datastore, meter):
        key = tuple(group(row) for group in groups)
        bucket = buckets.get(key)
        if bucket is None:
            hold(row_bytes(key) + SCALAR_BYTES * len(node.aggregates))
            bucket = buckets[key] = [[] for _ in node.aggregates]
        for values, argument in zip(bucket, arguments, strict=True):
            value = 1 if argument is None else argument(row)
            if type(value) in VARYING:  # numbers are bounded by rows examined
                hold(value_bytes(value))
            values.append(value)
    if not buckets and not groups:
        buckets[()] = [[] for _ in node.aggregates]
    meter.check_time()
    for key, bucket in buckets.items():
        yield key + tuple(
            _fold(aggregate, values)
            for aggregate, values in zip(node.aggregates, bucket, strict=True)
        )


def _fold(aggregate: Agg, values: list[Any]) -> Any:
    """One aggregate over its group's values, with SQLite's rules for NULL and no rows."""
    present = [value for value in values if value is not None]
    if aggregate.distinct:
        present = list(dict.fromkeys(present))
    func = aggregate.func
    if func == "COUNT":
        return len(present)
    if not present:
        return None
    if func == "SUM":
        return sum(present)
    if func == "AVG":
        return sum(present) / len(present)
    return min(present) if func == "MIN" else max(present)


def _project(node: Project, datastore: Datastore, meter: Meter) -> Rows:
    functions = [compile_expr(expr, meter) for expr in node.exprs]
    for row in _run(node.child, datastore, meter):
        yield tuple(function(row) for function in functions)


def _distinct(node: Distinct, datastore: Datastore, meter: Meter) -> Rows:
    seen: set[tuple[Any, ...]] = set()
    width = node.width
    hold = meter.hold
    for row in _run(node.child, datastore, meter):
        key = row[:width]
        if key not in seen:
            hold(row_bytes(key))
            seen.add(key)
            yield row


def _sort(node: Sort, datastore: Datastore, meter: Meter) -> Rows:
    weigh = row_weigher(plan_types(node.child, None))
    hold = meter.hold
    rows: list[tuple[Any, ...]] = []
    for row in _run(node.child, datastore, meter):
        hold(weigh(row))
        rows.append(row)
    meter.check_time()
    # Stable sorts from the last key to the first give the multi-key order; a None key
    # sorts before every value, so NULLs come first ascending and last descending.
    for slot, descending in reversed(node.keys):
        rows.sort(key=lambda row, s=slot: (row[s] is not None, row[s]), reverse=descending)  # type: ignore[misc]
    meter.check_time()
    return iter(rows)


def _limit(node: Limit, datastore: Datastore, meter: Meter) -> Rows:
    stop = None if node.limit is None else node.offset + node.limit
    return islice(_run(node.child, datastore, meter), node.offset, stop)


_RUNNERS: dict[type, Callable[[Any, Datastore, Meter], Rows]] = {
    Scan: _scan,
    IndexScan: _index_scan,
    Filter: _filter,
    Join: _nested_loop,
    NestedLoopJoin: _nested_loop,
    HashJoin: _hash_join,
    IndexNestedLoopJoin: _index_join,
    Aggregate: _aggregate,
    Project: _project,
    Distinct: _distinct,
    Sort: _sort,
    Limit: _limit,
}
