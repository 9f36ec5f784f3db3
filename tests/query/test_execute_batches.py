"""``execute_batches`` takes and weighs a plan's rows a batch at a time (issue 22's scan
speed); every limit must stop it exactly where the row-at-a-time loop it replaced did.

The oracle below is that loop (as it was before the change), run on the same plan and
snapshot with a fresh meter of the same budget: the batches yielded before the stop
and the error (class and message) must be the same for every combination of batch
size and row, byte and rows-examined limit around the edges, on a table large enough
that the scan is charged in chunks (``CHUNK_ROWS``).
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from cosmictron.errors import QueryCancelled, QueryTooCostly
from cosmictron.query.budget import Meter, QueryBudget
from cosmictron.query.execute import execute, execute_batches, plan_tables, plan_types, plan_width
from cosmictron.query.parse import prepare
from cosmictron.query.sizes import row_weigher

MODULE = """
from typing import Optional

@table(name="doc", public=True)
class Doc:
    id: int = field(primary_key=True)
    body: str = ""
    note: Optional[str] = None
    grp: int = 0

@reducer
def seed(ctx: ReducerContext, n: int) -> None:
    for i in range(n):
        note = None if i % 3 else "n" * (i % 5)
        Doc.insert(Doc(id=i, body="x" * (i % 37), note=note, grp=i % 10))
"""

execute_module = importlib.import_module("cosmictron.query.execute")  # the package's
# ``execute`` attribute is the function

ROWS = 2600
QUERIES = (
    "SELECT * FROM doc",
    "SELECT id, note FROM doc WHERE grp = 3",
    "SELECT body FROM doc ORDER BY grp, id",
)


def row_at_a_time(
    plan: Any, datastore: Any, rows_max: int, meter: Meter, batch_rows: int
) -> Iterator[list[tuple[Any, ...]]]:
    """``execute_batches`` before the change: one row at a time."""
    width = plan_width(plan)
    weigh = row_weigher(plan_types(plan, width))
    rows: list[tuple[Any, ...]] = []
    room = meter.result_bytes_max - meter.result_bytes
    used = 0
    sent = 0
    for row in execute_module._run(plan, datastore, meter):
        if len(rows) >= batch_rows:
            sent += len(rows)
            yield rows
            rows = []
        if sent + len(rows) >= rows_max:
            meter.too_many_rows(rows_max)
        if width is not None and len(row) != width:
            row = row[:width]
        used += weigh(row)
        if used > room:
            meter.charge_result(used)
            room = meter.result_bytes_max - meter.result_bytes
            used = 0
        rows.append(row)
    meter.charge_result(used)
    meter.check_time()
    if rows or not sent:
        yield rows


def outcome(batches: Iterator[list[tuple[Any, ...]]]) -> tuple[list[list[Any]], str | None]:
    got: list[list[Any]] = []
    try:
        for batch in batches:
            got.append(list(batch))
    except (QueryTooCostly, QueryCancelled) as exc:
        return got, f"{type(exc).__name__}: {exc}"
    return got, None


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from cosmictron import Database, DurabilityConfig

    root = tmp_path_factory.mktemp("batches")
    module = root / "module.py"
    module.write_text("from cosmictron import table, field, reducer, ReducerContext\n" + MODULE)
    db = Database.open(
        root / "data", str(module), durability=DurabilityConfig.from_profile("development")
    )
    db.call("seed", ROWS)
    yield db
    db.close()


@pytest.mark.parametrize("text", QUERIES)
def test_every_limit_stops_where_the_row_at_a_time_loop_stopped(planned: Any, text: str) -> None:
    db = planned
    statement = prepare(text, db.core.module.schema)
    plan = statement.plan
    full = execute(plan, db.core.read_snapshot(plan_tables(plan)), 10**9)
    total = len(full)
    assert total > 100
    weigh = row_weigher(plan_types(plan, plan_width(plan)))
    weight = sum(map(weigh, full))
    row_limits = (0, 1, total // 2, total - 1, total, total + 1, 10**9)
    byte_limits = (0, 9, weight // 3, weight - 1, weight, 10**12)
    examined_limits = (1, 1023, 1024, 1025, 2048, 10**9)
    checked = 0
    for batch_rows, rows_max, bytes_max, examined_max in itertools.product(
        (1, 7, 1000, 2000, 10**18), row_limits, byte_limits, examined_limits
    ):
        budget = QueryBudget(
            rows_max=rows_max, result_bytes_max=bytes_max, rows_examined_max=examined_max
        )
        results = []
        for run in (execute_batches, row_at_a_time):
            snapshot = db.core.read_snapshot(plan_tables(plan))
            results.append(outcome(run(plan, snapshot, rows_max, budget.start(), batch_rows)))
        assert results[0] == results[1], (batch_rows, rows_max, bytes_max, examined_max)
        checked += results[0][1] is not None
    assert checked > 100  # the limits were crossed, in many ways
