"""The core benchmark's settings and metrics (``bench/run.py``), one function per step.

Each ``measure_*`` takes the settings, the run's temp parent and the ``results`` dict, and
adds its figures under its own keys: single-row insert and update per policy (with the
replay of that many-transaction log), concurrent callers under ``always``, the bulk load
and its replay (log and snapshot), and memory per row. bench/README.md, "Metrics", says
what each measures.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import random
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from engines import POLICIES, CosmictronEngine, SqliteEngine, alternate, row_values, threaded_rate

import cosmictron
from cosmictron.durability import segment


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
                results["replay_small_tx"] = {
                    **time_reopen(cosmo.data),
                    "cosmictron_profile": profile,
                }
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
        results["replay_log"] = {**time_reopen(cosmo.data), "cosmictron_profile": "production"}
        # The same data from a snapshot: open, snapshot, close, time the next open.
        db = cosmictron.Database.open(cosmo.data)
        db.snapshot()
        db.close()
        results["replay_snapshot"] = {
            **time_reopen(cosmo.data),
            "cosmictron_profile": "production",
        }
    finally:
        for engine in (cosmo, lite):
            engine.close()
            engine.remove()


REOPEN = """
import gc, json, sys, time
import cosmictron
cosmictron.Database.open(sys.argv[1]).close()  # the imports an open pulls in, lazily
gc.collect()
start = time.perf_counter()
db = cosmictron.Database.open(sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rows": db.table("item").count(),
                  "transactions": db.tx_offset}))
db.close()
"""
"""A restart: ``Database.open`` timed in a fresh process, so the closed benchmark
engines' objects in this one (and the collections that walk them) are not in the figure.
The process opens the database once first, untimed, for the imports an open pulls in
(``cosmictron`` imports its layers on first use): they are a process's start, not the
replay."""


def time_reopen(data: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", REOPEN, data], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"reopening {data} failed: {done.stderr[-2000:]}")
    opened = json.loads(done.stdout)
    seconds, rows, transactions = opened["seconds"], opened["rows"], opened["transactions"]
    return {
        "seconds": seconds,
        "rows": rows,
        "transactions": transactions,
        "cosmictron": seconds / rows * 1_000_000 if rows else None,
        # Per million transactions replayed: for a log of one-row transactions (one row
        # written each), the figure the replay target is judged on (docs/benchmarks.md).
        "seconds_per_1m_transactions": seconds / transactions * 1_000_000 if transactions else None,
        "reopened_in": "a fresh process",
        "log_bytes": directory_bytes(os.path.join(data, "log")),
        # The compiled frame reader (docs/design/hot-path.md) or the pure-Python one.
        "log_reader": "compiled" if segment.COMPILED else "pure Python",
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
    out["cosmictron_profile"] = "development"
    results["memory_per_row"] = out
