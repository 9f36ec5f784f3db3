"""SQL benchmark: point SELECT by primary key, and joins, through ``db.sql`` against SQLite.

    .venv/bin/python bench/sql.py [--quick] [--out bench/results/sql.json] [--tmpdir DIR]

Both engines hold the same rows (``bench_module.py``'s ``item`` table and its SQLite
twin from ``bench/engines.py``) and answer the same lookups, in the same shuffled order:

- Cosmictron: ``db.sql("SELECT * FROM item WHERE id = :id", {"id": n})``;
- SQLite: ``conn.execute("SELECT * FROM item WHERE id = ?", (n,)).fetchall()``.

Both run in this process, in alternating time slices (the order flipping each round, as
in ``bench/run.py``). Reads need no durability, so the durability settings do not
matter here; both databases are on temp directories under the same parent. Prints the
figures and the ratio against the goal (>= 1x SQLite), never asserts it, and writes JSON.

Then the joins (``sql_joins.py``): one 3-way join written in each of its six FROM
orders, and an 8-table chain join, each timed on both engines holding the same rows;
the spread between the slowest and the fastest FROM order should stay within 2x.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import machine_info, parse_args, run_took, temp_parent, write_results  # noqa: E402
from core_report import table_text  # noqa: E402
from engines import CosmictronEngine, SqliteEngine, alternate, row_values  # noqa: E402
from figures import ratio  # noqa: E402
from sql_joins import JoinSettings, measure_joins, summary_rows  # noqa: E402

SQL = "SELECT * FROM item WHERE id = :id"
SQLITE_SQL = "SELECT * FROM item WHERE id = ?"


@dataclasses.dataclass(frozen=True)
class Settings:
    """As ``core_metrics.Settings`` (what ``alternate`` reads), plus the table's row count."""

    seconds: float  # per engine
    rounds: int  # slices per engine (alternating)
    rows: int

    @property
    def slice_seconds(self) -> float:
        return self.seconds / self.rounds


FULL = Settings(seconds=2.4, rounds=3, rows=100_000)
QUICK = Settings(seconds=0.4, rounds=2, rows=10_000)
FULL_JOINS = JoinSettings(
    customers=10_000, orders=100_000, products=1000, chain_rows=2000, seconds_per_query=1.0
)
QUICK_JOINS = JoinSettings(
    customers=1000, orders=10_000, products=200, chain_rows=300, seconds_per_query=0.1
)


def cosmictron_select_loop(engine: CosmictronEngine, seconds: float, ids: list[int]) -> int:
    sql = engine.db.sql
    n = len(ids)
    k = 0
    clock = time.perf_counter
    deadline = clock() + seconds
    while clock() < deadline:
        sql(SQL, {"id": ids[k % n]})
        k += 1
    return k


def sqlite_select_loop(engine: SqliteEngine, seconds: float, ids: list[int]) -> int:
    execute = engine.conn.execute
    n = len(ids)
    k = 0
    clock = time.perf_counter
    deadline = clock() + seconds
    while clock() < deadline:
        execute(SQLITE_SQL, (ids[k % n],)).fetchall()
        k += 1
    return k


def check_same_answers(cosmic: CosmictronEngine, lite: SqliteEngine, ids: list[int]) -> None:
    """Both engines return the same row for a sample of ids (and nothing for a miss)."""
    for i in [*ids[:100], -1]:
        mine = list(cosmic.db.sql(SQL, {"id": i}))
        theirs = lite.conn.execute(SQLITE_SQL, (i,)).fetchall()
        if mine != theirs:
            raise AssertionError(f"id {i}: cosmictron {mine!r} != sqlite {theirs!r}")


def measure_point_select(settings: Settings, parent: str) -> dict[str, Any]:
    rows = [row_values(i) for i in range(settings.rows)]
    ids = list(range(settings.rows))
    random.Random(7).shuffle(ids)
    cosmic = CosmictronEngine(parent, "development")
    lite = SqliteEngine(parent, "OFF")
    try:
        cosmic.bulk(rows)
        lite.bulk(rows)
        check_same_answers(cosmic, lite, ids)

        def step(engine: Any, seconds: float) -> int:
            if isinstance(engine, CosmictronEngine):
                return cosmictron_select_loop(engine, seconds, ids)
            return sqlite_select_loop(engine, seconds, ids)

        rates = alternate(settings, [cosmic, lite], step)  # type: ignore[arg-type]
    finally:
        for engine in (cosmic, lite):
            engine.close()
            engine.remove()
    return {**rates, "rows": settings.rows}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, "sql.json", argv)
    settings = QUICK if args.quick else FULL
    started = time.perf_counter()
    with temp_parent(args.tmpdir, "cosmictron-bench-sql-") as parent:
        result = measure_point_select(settings, parent)
        joins = measure_joins(QUICK_JOINS if args.quick else FULL_JOINS, parent)
        machine = machine_info(parent)
    rel = ratio(result["cosmictron"], result["sqlite"])
    summary = [
        {
            "key": "point_select",
            "metric": f"point SELECT by pk via db.sql ({result['rows']:,} rows)",
            "unit": "queries/s",
            "cosmictron": result["cosmictron"],
            "peer": result["sqlite"],
            "ratio": rel,
            "target": ">= 1x SQLite",
            "met": rel is not None and rel >= 1.0,
        }
    ]
    summary += summary_rows(joins)
    print(table_text(summary))
    print(f"\n{run_took(started, args.mode)}")
    write_results(
        args.out,
        "sql",
        args.mode,
        settings,
        machine,
        started,
        {"point_select": result, "joins": joins},
        summary=summary,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
