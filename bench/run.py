"""Core benchmark: Cosmictron against SQLite at matching durability, in one run.

    .venv/bin/python bench/run.py [--quick] [--out bench/results/core.json] [--tmpdir DIR]

Prints one table (metric, Cosmictron figure, SQLite figure, ratio, target, met/missed)
and writes every figure plus machine information as JSON. Targets are printed, never
asserted: the exit status is 0 whenever the run completes. See bench/README.md.

Fairness rules:
- both engines run in this process, on temp directories under the same parent (same
  filesystem), removed afterwards;
- the SQLite table has the same five columns and the same secondary index on ``owner``,
  and every SQLite operation is its own ``BEGIN; stmt; COMMIT`` in WAL mode;
- durability is matched: never <-> synchronous=OFF, periodic <-> NORMAL,
  always <-> FULL;
- time-bounded measurements are split into slices and the two engines alternate slices,
  the order flipping each round, so drift in the machine (page cache, CPU frequency,
  other tenants) hits both equally.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODULE_PATH = HERE / "bench_module.py"

from common import (  # noqa: E402
    fmt,
    machine_info,
    parse_args,
    run_took,
    temp_parent,
    text_table,
    write_results,
)

import cosmictron  # noqa: E402
from cosmictron import DurabilityConfig  # noqa: E402

# Cosmictron profile <-> SQLite synchronous level, per fsync policy.
POLICIES = {
    "never": ("development", "OFF"),
    "periodic": ("balanced", "NORMAL"),
    "always": ("production", "FULL"),
}

SQLITE_SCHEMA = (
    "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL, "
    "price REAL NOT NULL, owner TEXT NOT NULL)",
    "CREATE INDEX item_owner ON item (owner)",
)

# Precomputed column values so that building arguments costs the same for both engines.
NAMES = [f"item-{i:06d}" for i in range(1024)]
OWNERS = [f"owner-{i:03d}" for i in range(100)]


def row_values(i: int) -> tuple[int, str, int, float, str]:
    return (i, NAMES[i & 1023], i % 1000, (i % 10_000) / 100.0, OWNERS[i % 100])


# -- settings -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    seconds: float  # per engine, per time-bounded metric
    rounds: int  # slices per engine (alternating)
    bulk_rows: int
    memory_rows: int
    threads: int

    @property
    def slice_seconds(self) -> float:
        return self.seconds / self.rounds


FULL = Settings(seconds=2.4, rounds=3, bulk_rows=1_000_000, memory_rows=200_000, threads=16)
QUICK = Settings(seconds=0.4, rounds=2, bulk_rows=50_000, memory_rows=20_000, threads=16)


# -- engines --------------------------------------------------------------------------


class CosmictronEngine:
    name = "cosmictron"

    def __init__(self, parent: str, profile: str, **overrides: Any) -> None:
        self.dir = tempfile.mkdtemp(prefix="cosmictron-", dir=parent)
        self.data = os.path.join(self.dir, "db")
        durability = DurabilityConfig.from_profile(profile)
        if overrides:
            durability = dataclasses.replace(durability, **overrides)
        self.durability = durability
        self.db = cosmictron.Database.open(
            self.data, module=str(MODULE_PATH), durability=durability
        )
        self.next_id = 0

    def insert_loop(self, seconds: float) -> int:
        call = self.db.call
        i = self.next_id
        clock = time.perf_counter
        deadline = clock() + seconds
        while clock() < deadline:
            call("insert_item", *row_values(i))
            i += 1
        done = i - self.next_id
        self.next_id = i
        return done

    def update_loop(self, seconds: float, ids: list[int], start: int) -> int:
        call = self.db.call
        n = len(ids)
        k = start
        clock = time.perf_counter
        deadline = clock() + seconds
        while clock() < deadline:
            call("set_qty", ids[k % n], k)
            k += 1
        return k - start

    def insert_worker(self, counter: itertools.count, deadline: float, out: list[int]) -> None:
        call = self.db.call
        done = 0
        clock = time.perf_counter
        while clock() < deadline:
            call("insert_item", *row_values(next(counter)))
            done += 1
        out.append(done)

    def bulk(self, rows: list[tuple]) -> None:
        self.db.bulk_insert("item", rows)

    def close(self) -> None:
        self.db.close()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class SqliteEngine:
    name = "sqlite"

    def __init__(self, parent: str, synchronous: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="sqlite-", dir=parent)
        self.path = os.path.join(self.dir, "db.sqlite")
        self.synchronous = synchronous
        self.conn = self.connect()
        for statement in SQLITE_SCHEMA:
            self.conn.execute(statement)
        self.next_id = 0

    def connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; we issue BEGIN/COMMIT ourselves.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def insert_loop(self, seconds: float) -> int:
        execute = self.conn.execute
        sql = "INSERT INTO item VALUES (?, ?, ?, ?, ?)"
        i = self.next_id
        clock = time.perf_counter
        deadline = clock() + seconds
        while clock() < deadline:
            execute("BEGIN")
            execute(sql, row_values(i))
            execute("COMMIT")
            i += 1
        done = i - self.next_id
        self.next_id = i
        return done

    def update_loop(self, seconds: float, ids: list[int], start: int) -> int:
        execute = self.conn.execute
        sql = "UPDATE item SET qty = ? WHERE id = ?"
        n = len(ids)
        k = start
        clock = time.perf_counter
        deadline = clock() + seconds
        while clock() < deadline:
            execute("BEGIN")
            execute(sql, (k, ids[k % n]))
            execute("COMMIT")
            k += 1
        return k - start

    def insert_worker(self, counter: itertools.count, deadline: float, out: list[int]) -> None:
        conn = self.connect()  # one connection per thread
        execute = conn.execute
        sql = "INSERT INTO item VALUES (?, ?, ?, ?, ?)"
        done = 0
        busy = 0
        clock = time.perf_counter
        try:
            while clock() < deadline:
                try:
                    execute("BEGIN")
                    execute(sql, row_values(next(counter)))
                    execute("COMMIT")
                    done += 1
                except sqlite3.OperationalError:  # busy past busy_timeout: not committed
                    busy += 1
                    if conn.in_transaction:
                        execute("ROLLBACK")
        finally:
            conn.close()
        out.append(done)

    def bulk(self, rows: list[tuple]) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO item VALUES (?, ?, ?, ?, ?)", rows)
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# -- measurement helpers ----------------------------------------------------------------


def alternate(
    settings: Settings, engines: list[Any], step: Callable[[Any, float], int]
) -> dict[str, float]:
    """Run ``step(engine, slice_seconds)`` in alternating slices; return ops/s per engine."""
    ops = {e.name: 0 for e in engines}
    spent = {e.name: 0.0 for e in engines}
    for r in range(settings.rounds):
        order = engines if r % 2 == 0 else list(reversed(engines))
        for engine in order:
            gc.collect()
            start = time.perf_counter()
            ops[engine.name] += step(engine, settings.slice_seconds)
            spent[engine.name] += time.perf_counter() - start
    return {name: ops[name] / spent[name] for name in ops}


def threaded_rate(engine: Any, threads: int, seconds: float, start_id: int) -> float:
    """Committed transactions per second with ``threads`` concurrent callers."""
    counter = itertools.count(start_id)
    out: list[int] = []
    barrier = threading.Barrier(threads + 1)
    deadline_box: list[float] = []

    def run() -> None:
        barrier.wait()
        engine.insert_worker(counter, deadline_box[0], out)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start = time.perf_counter()
    deadline_box.append(start + seconds)
    barrier.wait()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    return sum(out) / elapsed


# -- the metrics ------------------------------------------------------------------------


def measure_single_row(settings: Settings, parent: str, results: dict[str, Any]) -> None:
    """Metrics 1 and 2: insert and update-by-primary-key tx/s per policy."""
    for policy, (profile, synchronous) in POLICIES.items():
        cosmo = CosmictronEngine(parent, profile)
        lite = SqliteEngine(parent, synchronous)
        engines = [cosmo, lite]
        try:
            inserts = alternate(settings, engines, lambda e, s: e.insert_loop(s))
            # Update rows both engines hold (ids 0..min-1), in the same random order.
            held = min(cosmo.next_id, lite.next_id)
            ids = list(range(held))
            random.Random(42).shuffle(ids)
            position = {e.name: 0 for e in engines}

            def update(
                engine: Any, seconds: float, ids: list[int] = ids, position: dict = position
            ) -> int:
                done = engine.update_loop(seconds, ids, position[engine.name])
                position[engine.name] += done
                return done

            updates = alternate(settings, engines, update)
            results[f"insert_{policy}"] = {
                "cosmictron": inserts["cosmictron"],
                "sqlite": inserts["sqlite"],
                "sqlite_synchronous": synchronous,
                "cosmictron_profile": profile,
                "rows_inserted": {e.name: e.next_id for e in engines},
            }
            results[f"update_{policy}"] = {
                "cosmictron": updates["cosmictron"],
                "sqlite": updates["sqlite"],
                "sqlite_synchronous": synchronous,
                "cosmictron_profile": profile,
                "table_rows": held,
            }
            if policy == "never":
                # Replay of a log of many small transactions (plus any periodic snapshots).
                cosmo.close()
                results["replay_small_tx"] = time_reopen(cosmo.data)
        finally:
            for engine in engines:
                engine.close()
                engine.remove()


def measure_concurrency(settings: Settings, parent: str, results: dict[str, Any]) -> None:
    """Metric 3: ``always`` / synchronous=FULL with 1 and N concurrent callers."""
    for threads in (1, settings.threads):
        cosmo = CosmictronEngine(parent, "production")
        lite = SqliteEngine(parent, "FULL")
        engines = [cosmo, lite]
        rates = {e.name: 0.0 for e in engines}
        try:
            next_id = {e.name: 0 for e in engines}
            for r in range(settings.rounds):
                order = engines if r % 2 == 0 else list(reversed(engines))
                for engine in order:
                    gc.collect()
                    rate = threaded_rate(
                        engine, threads, settings.slice_seconds, next_id[engine.name]
                    )
                    next_id[engine.name] += int(rate * settings.slice_seconds * 2) + 1_000_000
                    rates[engine.name] += rate / settings.rounds
            results[f"always_{threads}_callers"] = {
                "cosmictron": rates["cosmictron"],
                "sqlite": rates["sqlite"],
                "threads": threads,
                "sqlite_synchronous": "FULL",
                "cosmictron_profile": "production",
            }
        finally:
            for engine in engines:
                engine.close()
                engine.remove()


def measure_bulk_and_replay(settings: Settings, parent: str, results: dict[str, Any]) -> None:
    """Metrics 4 and 5: one-transaction bulk load, then replay of that log."""
    n = settings.bulk_rows
    rows = [row_values(i) for i in range(n)]
    timings: dict[str, float] = {}
    cosmo = CosmictronEngine(parent, "production")
    lite = SqliteEngine(parent, "FULL")
    try:
        for engine in (cosmo, lite):
            gc.collect()
            start = time.perf_counter()
            engine.bulk(rows)
            timings[engine.name] = time.perf_counter() - start
        results["bulk_load"] = {
            "cosmictron": n / timings["cosmictron"],
            "sqlite": n / timings["sqlite"],
            "rows": n,
            "seconds": timings,
            "cosmictron_profile": "production",
            "sqlite_synchronous": "FULL",
        }
        del rows
        cosmo.close()
        results["replay_log"] = time_reopen(cosmo.data)
        # The same data from a snapshot: open, snapshot, close, time the next open.
        db = cosmictron.Database.open(cosmo.data)
        db.snapshot()
        db.close()
        results["replay_snapshot"] = time_reopen(cosmo.data)
    finally:
        for engine in (cosmo, lite):
            engine.close()
            engine.remove()


def time_reopen(data: str) -> dict[str, Any]:
    gc.collect()
    start = time.perf_counter()
    db = cosmictron.Database.open(data)
    seconds = time.perf_counter() - start
    try:
        rows = db.table("item").count()
        transactions = db.tx_offset
    finally:
        db.close()
    return {
        "seconds": seconds,
        "rows": rows,
        "transactions": transactions,
        "cosmictron": seconds / rows * 1_000_000 if rows else None,
        "log_bytes": directory_bytes(os.path.join(data, "log")),
        "snapshot_bytes": directory_bytes(os.path.join(data, "snapshots")),
    }


def directory_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_memory(settings: Settings, parent: str, results: dict[str, Any]) -> None:
    """Metric 6: bytes per row retained by the table, by tracemalloc (and RSS delta).

    The rows are built inside the measured window and the input list is dropped before
    reading, so whatever the table keeps (row objects, index entries) is counted whether
    or not it shares the caller's objects. Run under ``development`` so no sync dominates.
    """
    n = settings.memory_rows
    out: dict[str, Any] = {"rows": n}

    cosmo = CosmictronEngine(parent, "development")
    try:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        rows = [row_values(i) for i in range(n)]
        cosmo.bulk(rows)
        del rows
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        out["cosmictron"] = (after - before) / n
        out["tracemalloc_bytes"] = after - before
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        cosmo.close()
        cosmo.remove()

    cosmo = CosmictronEngine(parent, "development")
    try:
        gc.collect()
        before = rss_bytes()
        rows = [row_values(i) for i in range(n)]
        cosmo.bulk(rows)
        del rows
        gc.collect()
        out["rss_bytes_per_row"] = (rss_bytes() - before) / n
    finally:
        cosmo.close()
        cosmo.remove()

    # For reference only: SQLite's on-disk size per row (it keeps rows on disk, not in RAM).
    lite = SqliteEngine(parent, "OFF")
    try:
        lite.bulk([row_values(i) for i in range(n)])
        lite.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        out["sqlite_file_bytes_per_row"] = os.path.getsize(lite.path) / n
    finally:
        lite.close()
        lite.remove()
    results["memory_per_row"] = out


# -- report -----------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return a / b


def evaluate(results: dict[str, Any], threads: int) -> list[dict[str, Any]]:
    """One row per printed metric, with its target and whether it was met."""
    rows: list[dict[str, Any]] = []

    def add(key: str, label: str, unit: str, target: str, met: bool | None) -> None:
        r = results[key]
        rows.append(
            {
                "key": key,
                "metric": label,
                "unit": unit,
                "cosmictron": r.get("cosmictron"),
                "peer": r.get("sqlite"),
                "ratio": ratio(r.get("cosmictron"), r.get("sqlite")),
                "target": target,
                "met": met,
            }
        )

    def rel(key: str) -> float:
        return ratio(results[key]["cosmictron"], results[key]["sqlite"]) or 0.0

    for operation, label in (("insert", "insert tx/s"), ("update", "update-by-pk tx/s")):
        for policy, (_, sync) in POLICIES.items():
            key = f"{operation}_{policy}"
            if policy == "never":
                target = f">= 2x SQLite {sync} and >= 100k tx/s"
                met = rel(key) >= 2 and results[key]["cosmictron"] >= 100_000
            elif policy == "periodic":
                target, met = f">= 3x SQLite {sync}", rel(key) >= 3
            else:
                target, met = "-", None
            add(key, f"{label}, {policy} vs {sync}", "tx/s", target, met)
    add("always_1_callers", "insert tx/s, always vs FULL, 1 caller", "tx/s", "-", None)
    key = f"always_{threads}_callers"
    add(
        key,
        f"insert tx/s, always vs FULL, {threads} callers",
        "tx/s",
        ">= 5x SQLite FULL",
        rel(key) >= 5,
    )
    add(
        "bulk_load",
        f"bulk load {results['bulk_load']['rows']:,} rows (always vs FULL)",
        "rows/s",
        ">= 300k rows/s",
        results["bulk_load"]["cosmictron"] >= 300_000,
    )
    for key, label in (
        ("replay_log", "replay, 1-tx bulk log"),
        ("replay_snapshot", "replay, from snapshot"),
        ("replay_small_tx", "replay, log of 1-row txs"),
    ):
        r = results[key]
        add(
            key,
            f"{label} ({r['rows']:,} rows, {r['transactions']:,} tx)",
            "s per 1M rows",
            "<= 3 s per 1M rows",
            r["cosmictron"] is not None and r["cosmictron"] <= 3.0,
        )
    add(
        "memory_per_row",
        f"memory per row ({results['memory_per_row']['rows']:,} rows)",
        "bytes/row",
        "<= 400 bytes/row",
        results["memory_per_row"]["cosmictron"] <= 400,
    )
    return rows


def table_text(rows: list[dict[str, Any]]) -> str:
    """The core table: one line per metric; labels, units and targets left-aligned."""
    header = ("metric", "unit", "cosmictron", "sqlite", "ratio", "target", "result")
    lines = [
        (
            r["metric"],
            r["unit"],
            fmt(r["cosmictron"], r["unit"]),
            fmt(r["peer"], r["unit"]),
            "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            r["target"],
            {True: "met", False: "MISSED", None: "-"}[r["met"]],
        )
        for r in rows
    ]
    return text_table(header, lines, left=(0, 1, 5))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, "core.json", argv, quick_help="small N, whole run < 60 s")
    settings = QUICK if args.quick else FULL
    results: dict[str, Any] = {}
    started = time.perf_counter()
    steps = (
        ("single-row insert/update", measure_single_row),
        ("concurrent callers", measure_concurrency),
        ("bulk load and replay", measure_bulk_and_replay),
        ("memory per row", measure_memory),
    )
    with temp_parent(args.tmpdir, "cosmictron-bench-") as parent:
        for label, step in steps:
            t = time.perf_counter()
            print(f"[bench] {label} ...", file=sys.stderr, flush=True)
            step(settings, parent, results)
            print(
                f"[bench] {label} done in {time.perf_counter() - t:.1f}s",
                file=sys.stderr,
                flush=True,
            )
        machine = machine_info(parent)
    rows = evaluate(results, settings.threads)
    print(table_text(rows))
    print(
        f"\n{sum(r['met'] is True for r in rows)} met, "
        f"{sum(r['met'] is False for r in rows)} missed; {run_took(started, args.mode)}"
    )
    write_results(args.out, "core", args.mode, settings, machine, started, results, summary=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
