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

The operators live by kind: the one-table ones (scans, filter, aggregate, project,
distinct, sort, limit) here beside the dispatch table, the joins in
``join_operators.py``, the evaluation of a join visibility filter's semi-join in
``keysets.py``, and what a plan's output looks like in ``plan_shape.py``. The modules
below take ``_run`` as an argument for their children, so none imports this one.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from itertools import chain, islice
from operator import itemgetter
from typing import Any

from cosmictron.datastore import Datastore, Index
from cosmictron.errors import QueryTooCostly
from cosmictron.query.budget import Meter, QueryBudget
from cosmictron.query.conversions import to_text
from cosmictron.query.expressions import compile_expr
from cosmictron.query.join_operators import hash_join, index_join, join_group, nested_loop
from cosmictron.query.keysets import Rows, evaluate_semijoins, rows_by_key_set
from cosmictron.query.plan import (
    Agg,
    Aggregate,
    Col,
    Compound,
    Derived,
    Distinct,
    Expr,
    Filter,
    Func,
    HashJoin,
    IndexNestedLoopJoin,
    IndexScan,
    Join,
    JoinGroup,
    Limit,
    NestedLoopJoin,
    Node,
    Project,
    Recursive,
    Scan,
    Sort,
    Subqueries,
    Values,
    Working,
)
from cosmictron.query.plan_shape import plan_tables, plan_types, plan_width
from cosmictron.query.recursive import run_recursive, run_working
from cosmictron.query.sizes import (
    SCALAR_BYTES,
    VARYING,
    row_bytes,
    row_weigher,
    rows_weigher,
    value_bytes,
)
from cosmictron.query.subquery_run import run_compound, run_derived, run_subqueries, run_values

__all__ = [
    "CHUNK_ROWS",
    "UNMETERED",
    "execute",
    "execute_batches",
    "plan_tables",
    "plan_types",
    "plan_width",
    "resolve_semijoins",
]

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


def execute(
    plan: Node, datastore: Datastore, rows_max: int, meter: Meter | None = None
) -> list[tuple[Any, ...]]:
    """Every row ``plan`` produces (hidden sort columns removed).

    Raises:
        QueryTooCostly: the result would have more than ``rows_max`` rows, or the run
            examined more rows than ``meter`` allows.
        QueryCancelled: the run took longer than ``meter`` allows.
    """
    for rows in execute_batches(plan, datastore, rows_max, meter, sys.maxsize):
        return rows
    return []


def execute_batches(
    plan: Node, datastore: Datastore, rows_max: int, meter: Meter | None, batch_rows: int
) -> Iterator[list[tuple[Any, ...]]]:
    """``execute``'s rows in lists of ``batch_rows`` (the last may be shorter; an empty
    result is one empty list), each yielded as soon as the plan has produced it and the
    next row (or the end): the PostgreSQL port sends a scan's first rows while the plan
    still runs. Every budget is charged as in ``execute``; an error is raised at the
    batch where the limit is crossed.

    The plan's rows are taken a batch at a time (``list.extend``, no Python per row)
    and weighed a column at a time (``rows_weigher``); only a batch in which a limit is
    crossed is gone through row by row, so every error is the one, at the row, that a
    row-at-a-time loop raises: the row limit when the row past it arrives, the result
    bytes at the row that crosses them, an error of the plan (rows examined, time)
    after the rows it produced before it were checked, and no batch is yielded before
    the next row has arrived.

    Raises:
        QueryTooCostly, QueryCancelled: as ``execute``.
    """
    if meter is None:
        meter = UNMETERED.start()
    width = plan_width(plan)
    types = plan_types(plan, width)
    weigh = row_weigher(types)
    weigh_rows = rows_weigher(types)
    source = _run(plan, datastore, meter)
    # The result's bytes are counted here and charged to the meter when they would pass
    # its limit (which then stops the query, at the same row as charging each row
    # would) and at the end: one method call per result, not per row.
    room = meter.result_bytes_max - meter.result_bytes
    used = 0
    taken = 0  # rows in the batches before this one (yielded, or held)
    held: list[tuple[Any, ...]] | None = None  # a full batch, yielded once a row follows

    def check(rows: list[tuple[Any, ...]]) -> None:
        """The row-at-a-time checks of ``rows`` (the batch's rows in order)."""
        nonlocal used, room
        allowed = rows_max - taken
        for row in rows[:allowed]:
            used += weigh(row)
            if used > room:
                meter.charge_result(used)  # raises unless another run freed room meanwhile
                room = meter.result_bytes_max - meter.result_bytes
                used = 0
        if len(rows) > allowed:
            meter.too_many_rows(rows_max)

    while True:
        rows: list[tuple[Any, ...]] = []
        # At most one row past the row limit: the one whose arrival stops the query.
        wanted = max(1, min(batch_rows, rows_max - taken + 1))
        try:
            rows.extend(islice(source, wanted))
        except Exception:
            # The plan stopped (rows examined, time): what came before it first.
            if rows and held is not None:
                yield held
                held = None
            if width is not None:
                rows = [row if len(row) == width else row[:width] for row in rows]
            check(rows)
            raise
        if not rows:
            break
        if held is not None:
            yield held
            held = None
        if width is not None:
            rows = [row if len(row) == width else row[:width] for row in rows]
        weight = weigh_rows(rows)
        if len(rows) > rows_max - taken or used + weight > room:
            check(rows)  # raises, or charges at the rows where the bytes cross
        else:
            used += weight
        held = rows
        taken += len(rows)
        if len(rows) < wanted:
            break
    meter.charge_result(used)
    meter.check_time()
    yield [] if held is None else held  # an empty result is one empty list


def resolve_semijoins(expr: Expr, datastore: Datastore, meter: Meter | None = None) -> Expr:
    """``expr`` with each ``SemiJoin`` evaluated into a ``KeySet`` over ``datastore``.

    See ``keysets.evaluate_semijoins``; ``meter`` None: unmetered, the database's own
    work (a subscription's delta).
    """
    return evaluate_semijoins(expr, datastore, UNMETERED.start() if meter is None else meter, _run)


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
    """``rows``, charged to ``meter`` a chunk at a time (a LIMIT may stop early): each
    chunk when its first row is asked for. The rows pass through ``chain`` (C), not a
    generator resumed per row."""
    return chain.from_iterable(_charged_chunks(rows, meter))


def _charged_chunks(rows: Rows, meter: Meter) -> Iterator[list[tuple[Any, ...]]]:
    while chunk := list(islice(rows, CHUNK_ROWS)):
        meter.charge(len(chunk))
        yield chunk


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
        elif node.mode == "prefix_range":
            keys = _prefix_range_keys(ordered, node.values)
        else:
            low, high, inclusive = node.values
            keys = list(ordered.range_row_keys(low, high, inclusive=inclusive))
    meter.charge(len(keys))
    return iter([rows[key] for key in keys])


def _prefix_range_keys(ordered: Index, values: tuple[Any, ...]) -> list[Any]:
    """Row keys whose key starts with ``prefix`` and whose next column is in the range
    (low inclusive; the filter above trims an exclusive low)."""
    prefix, low, high, inclusive = values
    start = prefix if low is None else (*prefix, low)
    if high is None:
        return list(ordered.range_row_keys(start, prefix, inclusive=True))
    return list(ordered.range_row_keys(start, (*prefix, high), inclusive=inclusive))


def _filter(node: Filter, datastore: Datastore, meter: Meter) -> Rows:
    resolved = evaluate_semijoins(node.predicate, datastore, meter, _run)
    predicate = compile_expr(resolved, meter)
    if type(node.child) is Scan:
        keyed = rows_by_key_set(node.child, resolved, datastore)
        if keyed is not None:
            found = list(keyed)
            meter.charge(len(found))
            return filter(predicate, found)
    return filter(predicate, _run(node.child, datastore, meter))


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
            _fold(aggregate, values, meter)
            for aggregate, values in zip(node.aggregates, bucket, strict=True)
        )


def _fold(aggregate: Agg, values: list[Any], meter: Meter | None = None) -> Any:
    """One aggregate over its group's values, with SQLite's rules for NULL and no rows."""
    func = aggregate.func
    if func == "BARE":  # a bare column in HAVING: its value in the group's first row,
        return values[0] if values else None  # as SQLite 3.40 takes it for these plans
    if func == "GROUP_CONCAT":
        return _group_concat(aggregate, values, meter)
    present = [value for value in values if value is not None]
    if aggregate.distinct:
        present = list(dict.fromkeys(present))
    if func == "COUNT":
        return len(present)
    if func == "TOTAL":  # a float, 0.0 over no rows; summed in order as SQLite does
        total = 0.0
        for value in present:
            total += float(value)
        return total
    if not present:
        return None
    if func == "SUM":
        return sum(present)
    if func == "AVG":
        return sum(present) / len(present)
    return min(present) if func == "MIN" else max(present)


def _group_concat(aggregate: Agg, values: list[Any], meter: Meter | None) -> Any:
    """SQLite's GROUP_CONCAT: the values that are not NULL as text, in the order the
    rows came, each after the first preceded by its own row's separator (',' by default,
    '' when NULL); NULL when every value is NULL. ``values`` are ``(value, separator)``
    pairs when a separator was given."""
    paired = isinstance(aggregate.arg, Func) and aggregate.arg.name == "ROW"
    pairs = values if paired else [(value, ",") for value in values]
    pairs = [(value, separator) for value, separator in pairs if value is not None]
    if aggregate.distinct:  # (no separator then: SQLite takes one argument with DISTINCT)
        pairs = [(value, ",") for value in dict.fromkeys(value for value, _ in pairs)]
    if not pairs:
        return None
    parts = [to_text(pairs[0][0])]
    size = len(parts[0])
    for value, separator in pairs[1:]:
        parts.append("" if separator is None else to_text(separator))
        parts.append(to_text(value))
        size += len(parts[-2]) + len(parts[-1])
        if meter is not None and size > meter.value_bytes_max:
            raise QueryTooCostly(
                f"the query builds a value of {size:,} bytes or more with GROUP_CONCAT(), "
                f"larger than {meter.value_bytes_max:,} bytes (the largest value a query "
                f"may build); raise the limit: "
                f"{meter.budget.hint('sql_value_bytes_max', 'value_bytes_max')}"
            )
    return "".join(parts)


def _project(node: Project, datastore: Datastore, meter: Meter) -> Rows:
    exprs = node.exprs
    if exprs and all(type(expr) is Col for expr in exprs):
        # Columns only (``SELECT *``, ``SELECT a, b``): picked in C by one itemgetter,
        # or, when they are all of a scanned table's columns in order, the stored rows
        # themselves (tuples, never changed in place).
        slots = [expr.slot for expr in exprs]  # type: ignore[attr-defined]
        child = node.child
        if (
            type(child) is Scan
            and child.base == 0
            and slots == list(range(len(child.table.columns)))
        ):
            yield from _run(child, datastore, meter)
            return
        if len(slots) > 1:
            yield from map(itemgetter(*slots), _run(child, datastore, meter))
            return
    functions = [compile_expr(expr, meter) for expr in exprs]
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
    # NULLS FIRST/LAST (``nulls_first``) flips where a None key sorts.
    nulls_first = node.nulls_first or tuple(not d for _, d in node.keys)
    for (slot, descending), first in reversed(list(zip(node.keys, nulls_first, strict=True))):
        if first != descending:
            rows.sort(key=lambda row, s=slot: (row[s] is not None, row[s]), reverse=descending)  # type: ignore[misc]
        else:
            rows.sort(key=lambda row, s=slot: (row[s] is None, row[s]), reverse=descending)  # type: ignore[misc]
    meter.check_time()
    return iter(rows)


def _limit(node: Limit, datastore: Datastore, meter: Meter) -> Rows:
    stop = None if node.limit is None else node.offset + node.limit
    return islice(_run(node.child, datastore, meter), node.offset, stop)


_RUNNERS: dict[type, Callable[[Any, Datastore, Meter], Rows]] = {
    Scan: _scan,
    IndexScan: _index_scan,
    Filter: _filter,
    Join: functools.partial(nested_loop, run=_run),
    NestedLoopJoin: functools.partial(nested_loop, run=_run),
    HashJoin: functools.partial(hash_join, run=_run),
    IndexNestedLoopJoin: functools.partial(index_join, run=_run),
    JoinGroup: functools.partial(join_group, run=_run),
    Aggregate: _aggregate,
    Project: _project,
    Distinct: _distinct,
    Sort: _sort,
    Limit: _limit,
    # subqueries, FROM subqueries, compounds, SELECT without FROM: subquery_run.py
    Subqueries: functools.partial(run_subqueries, run=_run),
    Derived: functools.partial(run_derived, run=_run),
    Compound: functools.partial(run_compound, run=_run),
    Values: run_values,
    # WITH RECURSIVE: recursive.py
    Recursive: functools.partial(run_recursive, run=_run),
    Working: run_working,
}
