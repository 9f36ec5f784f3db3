"""SIGKILL a busy database on a real disk: no acknowledged transaction is lost, none is halved.

``crash_writer.py`` runs in a child process under the ``production`` profile (``always``):
four threads call ``append(n)``, which inserts item ``n`` and bumps one counter row in the
same transaction, and print ``n`` once the call has returned. The parent kills the child
with SIGKILL after a random number of acknowledgements (a seeded ``random.Random``; the
seed is in every failure message), reopens the database and checks that

- every acknowledged ``n`` is there, from this round and every earlier one;
- the counter equals the number of items: no transaction was replayed in half;
- ``check_invariants()`` holds and ``tx_offset`` equals the number of transactions
  (each ``append`` is one transaction, and the module has no ``init``), so offsets are
  contiguous.

The rounds share one data directory, so each writer also recovers from the previous kill
(including a torn tail, a half-written snapshot or a fresh segment) before writing again.

Set ``COSMICTRON_CRASH_SEED`` to replay a failing run.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import cosmictron
from cosmictron import DurabilityConfig
from tests.host.counted_module import COUNTED_MODULE

WRITER = Path(__file__).with_name("crash_writer.py")

MODULE = COUNTED_MODULE

THREADS = 4
SEGMENT_BYTES = 8 * 1024
"""Small segments, so some kills land around a segment rollover."""
SNAPSHOT_TX = 97
"""Frequent snapshots, so some kills land while one is being written."""
ACKS_MAX = 150
"""At most this many acknowledgements are read before the kill (about 0.1 s of writing)."""
ROUND_BASE = 1_000_000
"""Round ``r`` appends ``n`` from ``r * ROUND_BASE`` on, so no two rounds collide."""
WATCHDOG_SECONDS = 60.0
"""A hung writer is killed after this long, so a deadlock fails the test instead of hanging."""

DURABILITY = dataclasses.replace(
    DurabilityConfig.from_profile("production"),
    segment_bytes_max=SEGMENT_BYTES,
    snapshot_interval_tx=SNAPSHOT_TX,
)


def run_kills(tmp_path: Path, seed: int, kills: int, threads: int = THREADS) -> None:
    """Kill a writer ``kills`` times on one data directory, checking after each kill."""
    seed = int(os.environ.get("COSMICTRON_CRASH_SEED", seed))
    rng = random.Random(seed)
    module_path = tmp_path / "crash_module.py"
    module_path.write_text(MODULE)
    data_dir = tmp_path / "data"
    acknowledged: set[int] = set()
    for round_number in range(1, kills + 1):
        where = f"seed={seed} round={round_number} (replay: COSMICTRON_CRASH_SEED={seed})"
        # One round in ten kills the writer before it acknowledges anything: during
        # start-up, recovery or its first appends.
        target = 0 if rng.random() < 0.1 else rng.randint(1, ACKS_MAX)
        acknowledged |= kill_writer(
            tmp_path, module_path, data_dir, round_number, target, where, threads
        )
        check_recovered(data_dir, module_path, acknowledged, where)
    with cosmictron.Database.open(data_dir, durability=DURABILITY) as database:
        offset = database.tx_offset
        database.call("append", (kills + 1) * ROUND_BASE)
        assert database.tx_offset == offset + 1, f"seed={seed}: the reopened log took no write"


def kill_writer(
    tmp_path: Path,
    module_path: Path,
    data_dir: Path,
    round_number: int,
    target: int,
    where: str,
    threads: int = THREADS,
) -> set[int]:
    """Start a writer, SIGKILL it after ``target`` acknowledgements; return all it acked."""
    stderr_path = tmp_path / f"writer-{round_number}.err"
    with open(stderr_path, "wb") as stderr:
        child = subprocess.Popen(
            [
                sys.executable,
                str(WRITER),
                str(data_dir),
                str(module_path),
                str(round_number * ROUND_BASE),
                str(threads),
                str(SEGMENT_BYTES),
                str(SNAPSHOT_TX),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    assert child.stdout is not None
    watchdog = threading.Timer(WATCHDOG_SECONDS, child.kill)
    watchdog.start()
    try:
        lines = []
        while len(lines) < target:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line)
        child.send_signal(signal.SIGKILL)
        child.wait()
        # Whatever the writer printed before it died was acknowledged too.
        lines.extend(child.stdout.read().splitlines(keepends=True))
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    errors = stderr_path.read_text(errors="replace")
    assert child.returncode == -signal.SIGKILL, (
        f"{where}: the writer exited by itself ({child.returncode}) instead of being killed "
        f"after {target} acknowledgements; its stderr:\n{errors}"
    )
    assert len(lines) >= target, f"{where}: the writer stopped acknowledging; stderr:\n{errors}"
    assert "Traceback" not in errors, f"{where}: a writer thread failed:\n{errors}"
    # A line cut off by the kill was never a whole acknowledgement.
    return {int(line) for line in lines if line.endswith(b"\n")}


def check_recovered(data_dir: Path, module_path: Path, acknowledged: set[int], where: str) -> None:
    # The module is passed because a writer killed during start-up may not have stored it.
    with cosmictron.Database.open(data_dir, module_path, durability=DURABILITY) as database:
        items = {row.id for row in database.rows("item")}
        counters = database.rows("counter")
        lost = sorted(acknowledged - items)
        assert not lost, f"{where}: acknowledged transactions lost after SIGKILL: {lost[:20]}"
        counted = counters[0].value if counters else 0
        assert len(counters) <= 1, f"{where}: {counters}"
        assert counted == len(items), (
            f"{where}: half a transaction survived: the counter says {counted} appends, "
            f"the item table holds {len(items)} rows"
        )
        assert database.tx_offset == len(items), (
            f"{where}: tx_offset {database.tx_offset} != {len(items)} committed transactions"
        )
        database.check_invariants()


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_transaction(tmp_path: Path) -> None:
    """Ten kills (the first before any acknowledgement) in CI; ``test_sigkill_soak``
    makes 200 (twenty was half a minute of CI for samples the soak has anyway)."""
    run_kills(tmp_path, seed=20260101, kills=10)


@pytest.mark.slow
def test_sigkill_under_contention_loses_no_acknowledged_transaction(tmp_path: Path) -> None:
    """Sixteen callers share each sync (group commit hands the sync token from waiter to
    waiter): every one acknowledged before the kill must still be there."""
    run_kills(tmp_path, seed=20261206, kills=10, threads=16)


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(10))
def test_sigkill_soak(tmp_path: Path, seed: int) -> None:
    """Ten seeds of twenty kills each: 200 kills. Run by ``scripts/soak``."""
    run_kills(tmp_path, seed=seed, kills=20)
