"""Run a plan over the datastore: each node becomes a generator of row tuples.

``execute`` must run with no writer active (``Database.read`` holds the writer lock),
because it reads live tables; it materialises the result before returning, so nothing
lazy escapes the lock. Expressions are compiled once per node (``expressions.py``)
before the first row flows. The row limit is checked as rows are produced, so a huge
result fails early instead of after filling memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import islice
from typing import Any

from cosmictron import limits
from cosmictron.datastore import Datastore, Index
from cosmictron.errors import ResourceExhausted
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
)

Rows = Iterator[tuple[Any, ...]]


def execute(plan: Node, datastore: Datastore, rows_max: int) -> list[tuple[Any, ...]]:
    """Every row ``plan`` produces (hidden sort columns removed).

    Raises:
        ResourceExhausted: the result would have more than ``rows_max`` rows.
    """
    width = plan_width(plan)
    rows: list[tuple[Any, ...]] = []
    for row in _run(plan, datastore):
        if len(rows) >= rows_max:
            raise ResourceExhausted(
                f"the query returns more than {rows_max} rows (the row limit); add a LIMIT "
                f"or a WHERE, or pass rows_max="
            )
        rows.append(row if width is None or len(row) == width else row[:width])
    return rows


def plan_width(plan: Node) -> int | None:
    """The visible width of the plan's rows, if a Project says so."""
    node: Node | None = plan
    while node is not None:
        if isinstance(node, Project):
            return node.width
        node = getattr(node, "child", None)
    return None


def _run(node: Node, datastore: Datastore) -> Rows:
    runner = _RUNNERS.get(type(node))
    assert runner is not None, f"no runner for {type(node).__name__}"
    return runner(node, datastore)


def _scan(node: Scan, datastore: Datastore) -> Rows:
    return iter(datastore.tables[node.name].rows.values())


def _index_scan(node: IndexScan, datastore: Datastore) -> Rows:
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
    return iter([rows[key] for key in keys])


def resolve_semijoins(expr: Expr, datastore: Datastore) -> Expr:
    """``expr`` with each ``SemiJoin`` evaluated into a ``KeySet`` over ``datastore``.

    A semi-join's subplan (a visibility filter's other tables, themselves filtered) runs
    once per execution of the plan that holds it, not once per row; an expression
    without one is returned as it is. Its rows count against ``limits.query_rows_max``.
    """
    if isinstance(expr, SemiJoin):
        rows_max = limits.query_rows_max
        try:
            rows = execute(expr.plan, datastore, rows_max)
        except ResourceExhausted:
            raise ResourceExhausted(
                f"the visibility filter {expr.label!r} reads more than {rows_max} rows for "
                f"this reader (limits.query_rows_max)"
            ) from None
        values = frozenset(row for row in rows if None not in row)
        keys = tuple(resolve_semijoins(key, datastore) for key in expr.keys)
        return KeySet(keys, values, expr.label)
    if isinstance(expr, Binary):
        left, right = (
            resolve_semijoins(expr.left, datastore),
            resolve_semijoins(expr.right, datastore),
        )
        if left is expr.left and right is expr.right:
            return expr
        return replace(expr, left=left, right=right)
    if isinstance(expr, Unary | IsNull):
        operand = resolve_semijoins(expr.operand, datastore)
        return expr if operand is expr.operand else replace(expr, operand=operand)
    return expr  # visibility filters put semi-joins only under AND, OR and NOT


def _predicate(expr: Expr | None, datastore: Datastore) -> Callable[[Any], Any] | None:
    return None if expr is None else compile_expr(resolve_semijoins(expr, datastore))


def _filter(node: Filter, datastore: Datastore) -> Rows:
    resolved = resolve_semijoins(node.predicate, datastore)
    predicate = compile_expr(resolved)
    if isinstance(node.child, Scan):
        keyed = _rows_by_key_set(node.child, resolved, datastore)
        if keyed is not None:
            return filter(predicate, keyed)
    return filter(predicate, _run(node.child, datastore))


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


def _nested_loop(node: NestedLoopJoin | Join, datastore: Datastore) -> Rows:
    condition = _predicate(node.condition, datastore)
    right_rows = list(_run(node.right, datastore))
    padding = (None,) * _scan_width(node.right)
    left_join = node.kind == "LEFT"
    for left in _run(node.left, datastore):
        matched = False
        for right in right_rows:
            row = left + right
            if condition is None or condition(row):
                matched = True
                yield row
        if left_join and not matched:
            yield left + padding


def _hash_join(node: HashJoin, datastore: Datastore) -> Rows:
    left_keys = _key_function(node.left_keys)
    right_keys = _key_function(node.right_keys)
    residual = _predicate(node.residual, datastore)
    table: dict[Any, list[tuple[Any, ...]]] = {}
    for right in _run(node.right, datastore):
        key = right_keys(right)
        if key is not None:
            table.setdefault(key, []).append(right)
    padding = (None,) * _scan_width(node.right)
    left_join = node.kind == "LEFT"
    for left in _run(node.left, datastore):
        matched = False
        key = left_keys(left)
        if key is not None:
            for right in table.get(key, ()):
                row = left + right
                if residual is None or residual(row):
                    matched = True
                    yield row
        if left_join and not matched:
            yield left + padding


def _key_function(exprs: tuple[Any, ...]) -> Callable[[tuple[Any, ...]], Any]:
    """A row's join key, or None when any part is NULL (NULL never equals anything)."""
    functions = [compile_expr(expr) for expr in exprs]

    def key(row: tuple[Any, ...]) -> Any:
        values = tuple(function(row) for function in functions)
        return None if None in values else values

    return key


def _index_join(node: IndexNestedLoopJoin, datastore: Datastore) -> Rows:
    table = datastore.tables[node.inner.name]
    rows = table.rows
    index = None if node.index is None else table.index_named(node.index)
    left_key = compile_expr(node.left_key)
    inner_filter = _predicate(node.inner_filter, datastore)
    residual = _predicate(node.residual, datastore)
    padding = (None,) * len(node.inner.table.columns)
    left_join = node.kind == "LEFT"
    for left in _run(node.left, datastore):
        matched = False
        key = left_key(left)
        if key is not None:
            candidates: list[tuple[Any, ...]]
            if index is None:
                found = rows.get(key)
                candidates = [] if found is None else [found]
            else:
                candidates = [rows[k] for k in index.row_keys(key)]
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


def _aggregate(node: Aggregate, datastore: Datastore) -> Rows:
    groups = [compile_expr(expr) for expr in node.groups]
    arguments = [None if a.arg is None else compile_expr(a.arg) for a in node.aggregates]
    buckets: dict[tuple[Any, ...], list[list[Any]]] = {}
    for row in _run(node.child, datastore):
        key = tuple(group(row) for group in groups)
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = [[] for _ in node.aggregates]
        for values, argument in zip(bucket, arguments, strict=True):
            values.append(1 if argument is None else argument(row))
    if not buckets and not groups:
        buckets[()] = [[] for _ in node.aggregates]
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


def _project(node: Project, datastore: Datastore) -> Rows:
    functions = [compile_expr(expr) for expr in node.exprs]
    for row in _run(node.child, datastore):
        yield tuple(function(row) for function in functions)


def _distinct(node: Distinct, datastore: Datastore) -> Rows:
    seen: set[tuple[Any, ...]] = set()
    width = node.width
    for row in _run(node.child, datastore):
        key = row[:width]
        if key not in seen:
            seen.add(key)
            yield row


def _sort(node: Sort, datastore: Datastore) -> Rows:
    rows = list(_run(node.child, datastore))
    # Stable sorts from the last key to the first give the multi-key order; a None key
    # sorts before every value, so NULLs come first ascending and last descending.
    for slot, descending in reversed(node.keys):
        rows.sort(key=lambda row, s=slot: (row[s] is not None, row[s]), reverse=descending)  # type: ignore[misc]
    return iter(rows)


def _limit(node: Limit, datastore: Datastore) -> Rows:
    stop = None if node.limit is None else node.offset + node.limit
    return islice(_run(node.child, datastore), node.offset, stop)


_RUNNERS: dict[type, Callable[[Any, Datastore], Rows]] = {
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
