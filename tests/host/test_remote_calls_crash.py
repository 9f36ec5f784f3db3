"""Exactly one effect per ``ctx.call_remote`` across SIGKILLs of the process.

``remote_crash_writer.py`` runs orders calling billing through a relay, under fsync
``always``, and dies: at the points that matter (the caller committed and nothing was
relayed; the target applied it and the caller had not settled it) and at random moments
of a loop of calls. After each death the databases are reopened with a relay; at the end
every order must have exactly one charge, no charge may lack its order, and every call
the writer saw acknowledged must be there.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from cosmictron import Database, DurabilityConfig
from cosmictron.host import RemoteRelay
from tests.crash_harness import BILLING, ORDERS, spawn_python

WRITER = Path(__file__).with_name("remote_crash_writer.py")


def setup(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "orders.py").write_text(ORDERS)
    (root / "billing.py").write_text(BILLING)


def writer(root: Path, mode: str, base: int, kill_at: int = 0) -> subprocess.Popen[str]:
    return spawn_python(WRITER, str(root), mode, str(base), str(kill_at))


def acknowledged(process: subprocess.Popen[str]) -> set[int]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL, err
    return {int(line) for line in out.splitlines() if line.strip()}


def check(root: Path, acked: set[int]) -> tuple[int, int]:
    """Reopen, let a relay drain, and check exactly-once; (orders, pending before)."""
    fast = DurabilityConfig.from_profile("development")
    orders = Database.open(root / "orders", durability=fast)
    billing = Database.open(root / "billing", durability=fast)
    pending = len(orders.remote_calls())
    relay = RemoteRelay()
    try:
        relay.add("orders", orders)
        relay.add("billing", billing)
        assert relay.drain(60)
        placed = {row.item for row in orders.table("order").iter()}
        charged = Counter(row.item for row in billing.table("charge").iter())
        assert acked <= placed, sorted(acked - placed)[:10]
        doubled = {item: n for item, n in charged.items() if n != 1}
        assert not doubled, doubled
        assert set(charged) == placed, (
            sorted(placed - set(charged))[:10],
            sorted(set(charged) - placed)[:10],
        )
        assert orders.remote_calls() == []
        return len(placed), pending
    finally:
        relay.close()
        orders.close()
        billing.close()


@pytest.mark.parametrize("mode", ["before-deliver", "after-apply"])
def test_a_kill_at_each_step_of_a_delivery(tmp_path: Path, mode: str) -> None:
    setup(tmp_path)
    acked = acknowledged(writer(tmp_path, mode, 1, kill_at=5))
    placed, pending = check(tmp_path, acked)
    assert placed >= 5
    assert pending >= 1  # the crash left an entry for the reopened relay to finish


def run_rounds(root: Path, seed: int, rounds: int) -> None:
    rng = random.Random(seed)
    setup(root)
    acked: set[int] = set()
    base = 1
    for _ in range(rounds):
        mode = rng.choice(["run", "run", "before-deliver", "after-apply"])
        process = writer(root, mode, base, kill_at=rng.randint(1, 40))
        first: set[int] = set()
        if mode == "run":
            assert process.stdout is not None
            first = {int(process.stdout.readline())}  # the databases exist and run
            time.sleep(rng.uniform(0.1, 1.0))
            process.send_signal(signal.SIGKILL)
        got = first | acknowledged(process)
        acked |= got
        base = max([base - 1, *got]) + 1000  # past anything the dead writer may have placed
        check(root, acked)


def test_random_kills_in_a_loop_of_calls(tmp_path: Path) -> None:
    seed = int(os.environ.get("COSMICTRON_CRASH_SEED", "19"))
    run_rounds(tmp_path, seed, 4)


@pytest.mark.soak
def test_random_kills_in_a_loop_of_calls_soak(tmp_path: Path) -> None:
    seed = int(os.environ.get("COSMICTRON_CRASH_SEED", str(random.randrange(1 << 30))))
    print(f"COSMICTRON_CRASH_SEED={seed}")
    run_rounds(tmp_path, seed, 40)
