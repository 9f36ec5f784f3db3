"""`bench/count_instructions.py` (docs/design/hot-path.md): the program it measures makes
its calls, and under valgrind it prints a count (no figure asserted: it is a measurement)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.doc_blocks import ROOT

SCRIPT = str(ROOT / "bench" / "count_instructions.py")
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


@pytest.mark.parametrize(
    ("path", "profile"),
    [
        ("insert", "development"),
        ("update", "development"),
        ("empty", "development"),
        ("empty", "production"),
    ],
)
def test_the_measured_program_makes_its_calls(path: str, profile: str) -> None:
    done = subprocess.run(
        [sys.executable, SCRIPT, path, "--make-calls", "50", "--profile", profile],
        capture_output=True, text=True, timeout=120, env=ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_it_prints_instructions_per_call_under_valgrind() -> None:
    done = subprocess.run(
        [sys.executable, SCRIPT, "update", "--calls", "100", "--base", "20"],
        capture_output=True, text=True, timeout=600, env=ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    count = re.fullmatch(r"update \(development\): ([\d,]+) instructions per call\n", done.stdout)
    assert count and int(count[1].replace(",", "")) > 0, done.stdout
