"""Instruction counts by valgrind's callgrind, for the benchmarks that count instead of time.

A loaded, shared machine moves wall-clock rates by 2x between runs; instruction counts do
not. A counting benchmark (``count_instructions.py``, ``pgwire_instructions.py``) runs its
own measured program under ``valgrind --tool=callgrind`` twice, with ``base`` and with
``base + calls`` operations, and divides the difference by ``calls``: start-up, imports
and set-up cancel out. This is that procedure, once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence


def require_valgrind() -> None:
    """End the benchmark with the install hint when valgrind is not on PATH."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not on PATH (apt-get install valgrind)")


def program_instructions(script: str, arguments: Sequence[str]) -> int:
    """Instructions valgrind counts for ``python script arguments`` from start to exit.

    One hash seed for every run (dict and set layouts, so the counts, repeat). A run that
    fails or prints no count ends the benchmark with valgrind's output.
    """
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            script,
            *arguments,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if done.returncode != 0:
        raise SystemExit(f"valgrind failed:\n{done.stderr[-2000:]}")
    collected = re.search(r"Collected : (\d+)", done.stderr)
    if collected is None:
        raise SystemExit(f"valgrind printed no count:\n{done.stderr[-2000:]}")
    return int(collected[1])


def per_operation(instructions: Callable[[int], int], base: int, calls: int) -> float:
    """Instructions per operation: ``instructions(n)`` counts a run of ``n`` operations;
    the run of ``base`` is subtracted from the run of ``base + calls``."""
    return (instructions(base + calls) - instructions(base)) / calls
