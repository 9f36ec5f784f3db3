"""SIGKILL a database in the middle of a module update: nothing acknowledged is lost, and
it reopens under the old or the new module, consistently.

``swap_crash_writer.py`` runs in a child process under ``always``: writer threads call
``append(n)`` and print ``n`` once the call returned, while the main thread updates the
module (adding a column and changing a reducer) after a random number of writes and
prints ``swapped`` when ``update_module`` returned. The parent kills the child after a
random number of lines (a seeded ``random.Random``; the seed is in every failure
message), reopens the directory with no module, and checks that

- every acknowledged ``n`` is there and the counter equals the number of items;
- the module is the old or the new one, and the tables agree with it (the new column
  exists exactly under the new module); after ``swapped`` was printed, the new one;
- ``tx_offset`` counts the transactions, plus one for the module record under the new
  module, and ``check_invariants()`` holds; the reopened database takes a write.

Each round uses a fresh directory. Set ``COSMICTRON_CRASH_SEED`` to replay a failing run.
"""

from __future__ import annotations

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

WRITER = Path(__file__).with_name("swap_crash_writer.py")

V1 = (
    COUNTED_MODULE
    + """

@reducer
def version(ctx: ReducerContext) -> int:
    return 1
"""
)

V2 = (
    V1.replace(
        "    id: int = field(primary_key=True)\n",
        "    id: int = field(primary_key=True)\n"
        "    note: str = field(default='old', index='btree')\n",
        1,
    )
    .replace("Item(id=n)", "Item(id=n, note='new')")
    .replace("return 1", "return 2")
)

THREADS = 3
LINES_MAX = 80
"""At most this many lines are read before the kill."""
WATCHDOG_SECONDS = 60.0
DURABILITY = DurabilityConfig.from_profile("development")


def run_kills(tmp_path: Path, seed: int, rounds: int) -> None:
    seed = int(os.environ.get("COSMICTRON_CRASH_SEED", seed))
    rng = random.Random(seed)
    v1_path, v2_path = tmp_path / "v1.py", tmp_path / "v2.py"
    v1_path.write_text(V1)
    v2_path.write_text(V2)
    for round_number in range(1, rounds + 1):
        where = f"seed={seed} round={round_number} (replay: COSMICTRON_CRASH_SEED={seed})"
        data_dir = tmp_path / f"data-{round_number}"
        swap_after = rng.randint(0, LINES_MAX // 2)
        target = rng.randint(0, LINES_MAX)
        lines = kill_writer(tmp_path, data_dir, v1_path, v2_path, swap_after, target, where)
        check_recovered(data_dir, v1_path, lines, where)


def kill_writer(
    tmp_path: Path,
    data_dir: Path,
    v1_path: Path,
    v2_path: Path,
    swap_after: int,
    target: int,
    where: str,
) -> list[bytes]:
    stderr_path = tmp_path / f"{data_dir.name}.err"
    command = [sys.executable, str(WRITER), str(data_dir), str(v1_path), str(v2_path)]
    with open(stderr_path, "wb") as stderr:
        child = subprocess.Popen(
            [*command, str(THREADS), str(swap_after)], stdout=subprocess.PIPE, stderr=stderr
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
        lines.extend(child.stdout.read().splitlines(keepends=True))
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    errors = stderr_path.read_text(errors="replace")
    assert child.returncode == -signal.SIGKILL, f"{where}: the writer exited: {errors}"
    assert "Traceback" not in errors, f"{where}: the writer failed:\n{errors}"
    return [line for line in lines if line.endswith(b"\n")]


def check_recovered(data_dir: Path, v1_path: Path, lines: list[bytes], where: str) -> None:
    swapped = b"swapped\n" in lines
    acknowledged = {int(line) for line in lines if line != b"swapped\n"}
    stored = (data_dir / "module" / "module.py").exists()
    # Killed before the module was stored, the log is empty: give the first module.
    module = None if stored else v1_path
    with cosmictron.Database.open(data_dir, module, durability=DURABILITY) as database:
        version = database.call("version")
        assert version in (1, 2), where
        assert not (swapped and version == 1), f"{where}: an acknowledged update was lost"
        columns = database.schema.table("item").column_names
        assert ("note" in columns) == (version == 2), f"{where}: v{version} with {columns}"
        items = {row.id for row in database.rows("item")}
        lost = sorted(acknowledged - items)
        assert not lost, f"{where}: acknowledged transactions lost: {lost[:20]}"
        counters = database.rows("counter")
        assert (counters[0].value if counters else 0) == len(items), where
        expected_offset = len(items) + (1 if version == 2 else 0) + 1  # + version()
        assert database.tx_offset == expected_offset, (
            f"{where}: tx_offset {database.tx_offset} != {expected_offset}"
        )
        database.check_invariants()
        database.call("append", 10**9)
    with cosmictron.Database.open(data_dir, durability=DURABILITY) as database:
        assert database.call("version") == version, f"{where}: the module changed on reopen"


def test_sigkill_during_a_module_update(tmp_path: Path) -> None:
    run_kills(tmp_path, seed=20260202, rounds=6)


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(10))
def test_sigkill_during_a_module_update_soak(tmp_path: Path, seed: int) -> None:
    """Ten seeds of thirty rounds: 300 kills. Run by ``scripts/soak``."""
    run_kills(tmp_path, seed=seed, rounds=30)
