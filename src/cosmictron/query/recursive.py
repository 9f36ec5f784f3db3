"""Running ``WITH RECURSIVE`` CTEs: the initial rows, then the recursive step over the
rows the last round added, until a round adds none.

SQLite runs the recursive select once per queued row; here each round runs it once over
every row the previous round added (the ``Working`` node's rows), which gives the same
rows because the step reads the CTE exactly once, in its FROM, without aggregates,
DISTINCT, ORDER BY or LIMIT (``select.py`` refuses the rest, as SQLite refuses most of
it): a join with a union of rows is the union of the joins. ``UNION`` adds a row only
if it was never added before (so a recursion over a cycle ends); ``UNION ALL`` adds
every row. Rows are produced round by round, lazily, so an outer ``LIMIT`` stops the
recursion (``WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x
FROM c LIMIT 10`` ends); the CTE's own ``LIMIT``/``OFFSET`` count the rows it adds, as
SQLite's do. Every CTE is bounded by ``limits.sql_recursive_rows_max`` rows, besides
the query's row, time and byte budgets.

Where one round would give other rows than SQLite's one row at a time, the CTE runs as
SQLite runs it (``Recursive.queue``): a queue of rows, the initial ones first; take one
row, return it (the CTE's ``OFFSET`` skips it, its ``LIMIT`` stops before its step),
then run the step over that row alone and queue what it adds. The queue is first in,
first out, or with the CTE's ``ORDER BY`` a priority queue (the smallest by the ORDER BY
first, ties first in, first out, as in SQLite): with a ``LIMIT`` that order decides
which rows are made (a depth-first walk, ``ORDER BY depth DESC``). A ``DISTINCT`` step
runs this way too, being distinct per row taken.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from cosmictron import limits
from cosmictron.datastore import Datastore, TableSchema
from cosmictron.errors import QueryTooCostly
from cosmictron.query.budget import Meter
from cosmictron.query.plan import JoinGroup, Node, OrderMemo, Recursive, Working
from cosmictron.query.sizes import row_bytes

Rows = Iterator[tuple[Any, ...]]
Run = Callable[[Node, Datastore, Meter], Rows]


def run_recursive(node: Recursive, datastore: Datastore, meter: Meter, run: Run) -> Rows:
    """The CTE's rows, round by round, or row by row for a ``queue`` CTE (see the module
    docstring)."""
    if node.queue:
        return _run_queue(node, datastore, meter, run)
    return _run_rounds(node, datastore, meter, run)


class _Admission:
    """Which of a CTE's produced rows are new (``UNION`` drops repeats, ``UNION ALL`` keeps
    them), each held against the meter and counted against ``sql_recursive_rows_max``."""

    def __init__(self, node: Recursive, meter: Meter) -> None:
        self.node = node
        self.meter = meter
        self.seen: set[tuple[Any, ...]] = set()
        self.cap = limits.sql_recursive_rows_max
        self.produced = 0

    def admit(self, rows: Rows) -> Iterator[tuple[Any, ...]]:
        width = self.node.width
        for row in rows:
            if len(row) != width:
                row = row[:width]
            if not self.node.all:
                if row in self.seen:
                    continue
                self.meter.hold(row_bytes(row))
                self.seen.add(row)
            self.produced += 1
            if self.produced > self.cap:
                raise QueryTooCostly(
                    f"the recursive CTE {self.node.name} produced more than {self.cap:,} rows "
                    f"(limits.sql_recursive_rows_max); bound its recursion with a WHERE "
                    f"or a LIMIT, or raise the limit (cosmictron.limits.sql_recursive_rows_max)"
                )
            yield row


def _run_rounds(node: Recursive, datastore: Datastore, meter: Meter, run: Run) -> Rows:
    admission = _Admission(node, meter)
    returned = 0
    skip = node.offset
    limit = node.limit

    def added(rows: Rows) -> list[tuple[Any, ...]]:
        return list(admission.admit(rows))

    frontier = added(run(node.base, datastore, meter))
    while frontier:
        for row in frontier:
            if skip:
                skip -= 1
                continue
            if limit is not None and returned >= limit:
                return
            returned += 1
            yield row
        meter.check_time()
        step = fill(node.step, node.key, tuple(frontier))
        frontier = added(run(step, datastore, meter))


class _Descending:
    """A value that sorts in reverse, for a DESC term of a priority queue's key."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and bool(self.value == other.value)

    __hash__ = None  # type: ignore[assignment]


def _order_key(
    order: tuple[tuple[int, bool, bool], ...],
) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A row's sort key for the ORDER BY terms: NULLs first or last, values ascending
    or (``_Descending``) descending, term after term."""

    def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
        parts: list[Any] = []
        for position, descending, nulls_first in order:
            value = row[position]
            if value is None:
                parts.append((0 if nulls_first else 2, None))
            else:
                parts.append((1, _Descending(value) if descending else value))
        return tuple(parts)

    return key


def _run_queue(node: Recursive, datastore: Datastore, meter: Meter, run: Run) -> Rows:
    """SQLite's way: one row taken from the queue at a time, the step run over it."""
    admission = _Admission(node, meter)
    skip = node.offset
    left = node.limit
    fifo: deque[tuple[Any, ...]] = deque()
    ranked: list[tuple[tuple[Any, ...], int, tuple[Any, ...]]] = []
    key = _order_key(node.order) if node.order else None
    sequence = itertools.count()

    def push(rows: Rows) -> None:
        for row in admission.admit(rows):
            if key is None:
                fifo.append(row)
            else:
                heapq.heappush(ranked, (key(row), next(sequence), row))

    if left == 0:
        return
    push(run(node.base, datastore, meter))
    taken = 0
    while fifo or ranked:
        row = fifo.popleft() if key is None else heapq.heappop(ranked)[2]
        if skip:
            skip -= 1
        else:
            yield row
            if left is not None:
                left -= 1
                if left == 0:
                    return
        taken += 1
        if not taken % 64:
            meter.check_time()
        push(run(fill(node.step, node.key, (row,)), datastore, meter))


def run_working(node: Working, datastore: Datastore, meter: Meter) -> Rows:
    """The rows the last round added (filled in by ``fill``)."""
    meter.charge(len(node.rows))
    return iter(node.rows)


def fill(value: Any, key: str, rows: tuple[tuple[Any, ...], ...]) -> Any:
    """``value`` (a plan, at any depth) with the ``Working`` node named ``key`` holding
    ``rows``; the parts that do not hold it are returned as they are (not copied)."""
    if isinstance(value, Working):
        return dataclasses.replace(value, rows=rows) if value.key == key else value
    if isinstance(value, tuple):
        items = tuple(fill(item, key, rows) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type | TableSchema)
        and type(value).__module__.startswith("cosmictron.query")
    ):
        changes = {}
        for item in dataclasses.fields(value):
            old = getattr(value, item.name)
            new = fill(old, key, rows)
            if new is not old:
                changes[item.name] = new
        if changes and isinstance(value, JoinGroup):
            # Its memo may hold the physical plan built over the last round's rows.
            changes["memo"] = OrderMemo()
        return dataclasses.replace(value, **changes) if changes else value
    return value


__all__ = ["fill", "run_recursive", "run_working"]
