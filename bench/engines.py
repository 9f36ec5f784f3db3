"""The two in-process engines the core and SQL benchmarks compare, and how they take turns.

Both engines hold the same ``item`` table (``bench_module.py`` for Cosmictron, its twin
``SQLITE_SCHEMA`` for SQLite, the same secondary index on ``owner``), fill it from the
same precomputed ``row_values`` (so building arguments costs both the same), and offer
the same loops (``insert_loop``, ``update_loop``, ``insert_worker``, ``bulk``). Every SQLite
operation is its own ``BEGIN; stmt; COMMIT`` in WAL mode; ``POLICIES`` pairs each
Cosmictron fsync policy with the SQLite ``synchronous`` level of the same durability.
``alternate`` runs them in alternating slices, the order flipping each round, so that
drift in the machine hits both.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cosmictron
from cosmictron import DurabilityConfig

MODULE_PATH = Path(__file__).resolve().parent / "bench_module.py"

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


class Slices(Protocol):
    """What ``alternate`` reads from a suite's settings."""

    @property
    def rounds(self) -> int: ...

    @property
    def slice_seconds(self) -> float: ...


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
    settings: Slices, engines: list[Any], step: Callable[[Any, float], int]
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
