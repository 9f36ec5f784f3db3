"""The join half of ``bench/sql.py``: one 3-way join in every FROM order, and an 8-table join.

Until the join order was chosen by cost, a join ran in the order FROM names its tables,
so the same 3-way join took ~2.5 ms or ~480 ms depending only on how it was written.
This measures that join written in each of its six FROM orders, and a chain of eight
tables written in a shuffled order, on Cosmictron (``db.sql``) and on SQLite holding the
same rows, each query timed as the median of repeated runs taken round-robin over
all the queries (the two engines alternating), so load from elsewhere on the machine
falls on every FROM order alike. The figure that matters is the spread: the slowest FROM
order against the fastest, which should stay within 2x.

Data (seeded): ``customer`` (``region`` 0-9), ``orders`` (a btree index on
``customer_id``, ``product_id`` unindexed), ``product`` (``price``); the chain tables
``c0`` ... ``c7`` each have ``id`` (the key) and ``next`` (a row of the next table).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

MODULE = """
from cosmictron import field, table

@table(name="customer", public=True)
class Customer:
    id: int = field(primary_key=True)
    region: int = 0

@table(name="orders", public=True)
class Orders:
    id: int = field(primary_key=True)
    customer_id: int = field(default=0, index="btree")
    product_id: int = 0

@table(name="product", public=True)
class Product:
    id: int = field(primary_key=True)
    price: int = 0
""" + "".join(
    f"""
@table(name="c{i}", public=True)
class C{i}:
    id: int = field(primary_key=True)
    next: int = 0
"""
    for i in range(8)
)

SQLITE_SCHEMA = [
    "CREATE TABLE customer(id INTEGER PRIMARY KEY, region INTEGER)",
    "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER, product_id INTEGER)",
    "CREATE INDEX orders_customer ON orders(customer_id)",
    "CREATE TABLE product(id INTEGER PRIMARY KEY, price INTEGER)",
    *(f"CREATE TABLE c{i}(id INTEGER PRIMARY KEY, next INTEGER)" for i in range(8)),
]

TABLES = {"c": "customer c", "o": "orders o", "p": "product p"}
JOIN3_WHERE = (
    "WHERE o.customer_id = c.id AND o.product_id = p.id AND c.region = 3 AND p.price < 100"
)
CHAIN = " AND ".join(f"c{i}.next = c{i + 1}.id" for i in range(7))
JOIN8 = "SELECT count(*), max(c7.id) FROM {tables} WHERE " + CHAIN + " AND c0.id < 50"


@dataclasses.dataclass(frozen=True)
class JoinSettings:
    customers: int
    orders: int
    products: int
    chain_rows: int
    seconds_per_query: float  # both engines, in rounds over every query


def join3_queries() -> dict[str, str]:
    """The 3-way join in each FROM order, keyed by the order (``c-o-p``)."""
    return {
        "-".join(perm): f"SELECT count(*) FROM {', '.join(TABLES[t] for t in perm)} {JOIN3_WHERE}"
        for perm in itertools.permutations("cop")
    }


def join8_query() -> str:
    tables = [f"c{i}" for i in range(8)]
    random.Random(11).shuffle(tables)
    return JOIN8.format(tables=", ".join(tables))


def _data(settings: JoinSettings) -> dict[str, list[tuple[int, ...]]]:
    rng = random.Random(3)
    n = settings.chain_rows
    return {
        "customer": [(i, rng.randrange(10)) for i in range(settings.customers)],
        "orders": [
            (i, rng.randrange(settings.customers), rng.randrange(settings.products))
            for i in range(settings.orders)
        ],
        "product": [(i, rng.randrange(1000)) for i in range(settings.products)],
        **{f"c{i}": [(k, rng.randrange(n)) for k in range(n)] for i in range(8)},
    }


def _timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _round_robin(
    runs: dict[str, tuple[Callable[[], Any], Callable[[], Any]]], seconds: float
) -> dict[str, tuple[float, float]]:
    """Median seconds of each (cosmictron, sqlite) pair of runs, taken in rounds that
    visit every query once (the engine order flipping each round), so a burst of load
    from elsewhere on the machine falls on every query alike, not on one FROM order."""
    times: dict[str, tuple[list[float], list[float]]] = {key: ([], []) for key in runs}
    deadline = time.perf_counter() + seconds
    rounds = 0
    while rounds < 5 or (time.perf_counter() < deadline and rounds < 500):
        for key, (mine, theirs) in runs.items():
            first, second = (mine, theirs) if rounds % 2 == 0 else (theirs, mine)
            a, b = _timed(first), _timed(second)
            ours, peers = (a, b) if rounds % 2 == 0 else (b, a)
            times[key][0].append(ours)
            times[key][1].append(peers)
        rounds += 1
    return {key: (statistics.median(m), statistics.median(t)) for key, (m, t) in times.items()}


def measure_joins(settings: JoinSettings, parent: str) -> dict[str, Any]:
    """Median seconds per query on each engine, for every join query; checks answers."""
    import cosmictron

    work = tempfile.mkdtemp(prefix="joins-", dir=parent)
    module = os.path.join(work, "joins_module.py")
    with open(module, "w") as out:
        out.write(MODULE)
    db = cosmictron.Database.open(
        os.path.join(work, "db"),
        module=module,
        durability=cosmictron.DurabilityConfig.from_profile("development"),
    )
    lite = sqlite3.connect(os.path.join(work, "db.sqlite"))
    try:
        for statement in SQLITE_SCHEMA:
            lite.execute(statement)
        for name, rows in _data(settings).items():
            lite.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(rows[0]))})", rows)
            for start in range(0, len(rows), 1000):
                values = ", ".join(map(repr, rows[start : start + 1000]))
                db.sql(f"INSERT INTO {name} VALUES {values}")
        lite.commit()
        lite.execute("ANALYZE")
        queries = {**{f"join3 {k}": q for k, q in join3_queries().items()}, "join8": join8_query()}
        runs: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
        results: dict[str, Any] = {}
        for key, query in queries.items():
            rows = db.sql(query).rows  # also warms the statement cache
            expected = lite.execute(query).fetchall()
            if [tuple(r) for r in rows] != expected:
                raise AssertionError(f"{key}: cosmictron {rows!r} != sqlite {expected!r}")
            runs[key] = (
                lambda q=query: db.sql(q).rows,
                lambda q=query: lite.execute(q).fetchall(),
            )
        medians = _round_robin(runs, settings.seconds_per_query * len(runs))
        for key, query in queries.items():
            plan = [line for (line,) in db.sql("EXPLAIN " + query).rows]
            mine, theirs = medians[key]
            results[key] = {
                "sql": query,
                "cosmictron_ms": mine * 1000,
                "sqlite_ms": theirs * 1000,
                "join_order": next(line for line in plan if line.startswith("JoinOrder")),
            }
        join3 = [v["cosmictron_ms"] for k, v in results.items() if k.startswith("join3")]
        results["join3_spread"] = max(join3) / min(join3)
        return results
    finally:
        db.close()
        lite.close()


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for ``core_report.table_text``: queries/s (higher is better), ratio vs SQLite."""
    rows = []
    for key, value in results.items():
        if not isinstance(value, dict):
            continue
        mine, theirs = 1000 / value["cosmictron_ms"], 1000 / value["sqlite_ms"]
        rows.append(
            {
                "key": key.replace(" ", "_"),
                "metric": key if key != "join8" else "join8 (8-table chain, shuffled FROM)",
                "unit": "queries/s",
                "cosmictron": mine,
                "peer": theirs,
                "ratio": mine / theirs,
                "target": "-",
                "met": None,
            }
        )
    spread = results["join3_spread"]
    rows.append(
        {
            "key": "join3_spread",
            "metric": "join3 slowest / fastest FROM order",
            "unit": "x",
            "cosmictron": spread,
            "peer": None,
            "ratio": None,
            "target": "<= 2x",
            "met": spread <= 2.0,
        }
    )
    return rows
