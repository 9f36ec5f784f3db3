"""Shared fixtures: modules written to temporary files, databases opened on real disks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cosmictron import Database, DurabilityConfig

FAST = DurabilityConfig.from_profile("development")


def pytest_configure(config: pytest.Config) -> None:
    """Give the processes the tests start the default Ctrl-C.

    A suite started in the background by a non-interactive shell (``cmd &`` in a
    script, ``nohup``) inherits SIGINT ignored, and so would every process it starts:
    a test that stops a command with SIGINT, as a user's Ctrl-C does, would then wait
    forever for a command that never saw it. A process that *handles* SIGINT passes the
    default action on to what it starts, so the suite handles it as Python does.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def write_module(tmp_path: Path) -> Callable[[str], Path]:
    """Write module source (dedented, with the usual imports) to a file; return its path."""
    counter = iter(range(1_000_000))

    def write(source: str) -> Path:
        path = tmp_path / f"module_{next(counter)}.py"
        header = (
            "from __future__ import annotations\n"
            "import enum, logging\n"
            "from typing import Optional\n"
            "from cosmictron import *\n"
            "from cosmictron import Index\n"
        )
        path.write_text(header + textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def open_db(
    tmp_path: Path, write_module: Callable[[str], Path]
) -> Iterator[Callable[..., Database]]:
    """Open a database on ``tmp_path/data`` from module source; closed at teardown."""
    opened: list[Database] = []

    def make(source: str | None = None, *, path: Path | None = None, **options: Any) -> Database:
        options.setdefault("durability", FAST)
        module = write_module(source) if source is not None else None
        database = Database.open(path or tmp_path / "data", module, **options)
        opened.append(database)
        return database

    yield make
    for database in opened:
        database.close()


@pytest.fixture
def run_quick_bench(tmp_path: Path) -> Callable[[str], tuple[dict[str, Any], str]]:
    """Run ``bench/<script> --quick`` (or ``--smoke``, smaller where the command has a
    smaller size) in a subprocess; return its JSON and its stdout.

    The smoke tests of the benchmark commands use this; none of them asserts a speed.
    """

    def run(script: str, mode: str = "--quick") -> tuple[dict[str, Any], str]:
        out = tmp_path / "figures.json"
        bench = Path(__file__).parent.parent / "bench" / script
        command = [sys.executable, str(bench), mode, "--out", str(out)]
        command += ["--tmpdir", str(tmp_path)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(out.read_text()), result.stdout

    return run


@pytest.fixture(autouse=True)
def no_server_left_running() -> Iterator[None]:
    """Kill any server process a test started and did not stop (say, after an assertion
    failed between starting it and stopping it), so none outlives its test."""
    yield
    from tests.server.conftest import STARTED

    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)  # reaps it and closes its pipe
