"""`bench/count_instructions.py` (docs/design/hot-path.md): the program it measures makes
its calls, and under valgrind it prints a count (no figure asserted: it is a measurement).

Under callgrind every instruction of the interpreter's start-up and of importing Cosmictron
is simulated, twice: the whole script under valgrind costs 33 s of CPU (312 s of wall time
on the loaded shared machine), the small program below 2.7 s. CI runs the counting
procedure (``bench/callgrind.py``, which the script and ``pgwire_instructions.py`` use) on
the small program, and the measured program on its own; the whole script under valgrind
is the soak variant (``scripts/soak``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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
def test_the_callgrind_procedure_counts_what_each_operation_adds(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import callgrind
    finally:
        sys.path.remove(str(ROOT / "bench"))
    program = tmp_path / "loop.py"
    program.write_text("import sys\nfor _ in range(int(sys.argv[1]) * 1000):\n    pass\n")

    def instructions(n: int) -> int:
        return callgrind.program_instructions(str(program), [str(n)])

    # an operation is a thousand loop iterations: at least one instruction each
    assert callgrind.per_operation(instructions, 2, 5) > 1000


@pytest.mark.soak
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_it_prints_instructions_per_call_under_valgrind() -> None:
    done = subprocess.run(
        [sys.executable, SCRIPT, "update", "--calls", "100", "--base", "20"],
        capture_output=True, text=True, timeout=600, env=ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    count = re.fullmatch(r"update \(development\): ([\d,]+) instructions per call\n", done.stdout)
    assert count and int(count[1].replace(",", "")) > 0, done.stdout
