"""The installed ``cosmictron-cli``, run as a user runs it: a real process, real files."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_server_commands import source_path

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "quickstart" / "app.py"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    executable = shutil.which("cosmictron-cli", path=str(Path(sys.executable).parent))
    assert executable, "cosmictron-cli is installed beside the test interpreter"
    environment = {
        "PATH": str(Path(sys.executable).parent),
        "COSMICTRON_PERFORMANCE_PROFILE": "development",
        **source_path(),  # the code under test, not whichever copy is installed
    }
    return subprocess.run(
        [executable, *args], capture_output=True, text=True, cwd=cwd, timeout=60, env=environment
    )


def test_version(tmp_path):
    result = cli("--version", cwd=tmp_path)
    assert result.returncode == 0 and "0.8.0" in result.stdout


def test_local_call_creates_calls_and_reopens(tmp_path):
    first = cli("local-call", "data", "run_agent", "hello", "--module", str(EXAMPLE), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "return_value: 1\ntx_offset: 2\n"  # as `call` prints it
    task = cli("local-call", "data", "add_task", "Write docs", "3", "--json", cwd=tmp_path)
    reply = json.loads(task.stdout)
    assert reply["return_value"] == {"id": 2, "title": "Write docs", "done": False, "priority": 3}
    assert reply["tx_offset"] == 3


@pytest.mark.parametrize(
    ("args", "message", "frames"),
    [
        (["nope"], "error: no reducer named 'nope'", 0),
        (["add_task", "x", "not-a-number"], "argument 'priority': expected i64", 0),
        (["add_task", "   "], "reducer 'add_task' failed: ValueError: a task needs a title", 1),
        (["complete_task", "99"], "LookupError: no task 99", 1),
    ],
)
def test_errors_are_one_line_and_a_non_zero_exit(tmp_path, args, message, frames):
    """One line; a reducer's exception is followed by its module's frames (the caller of
    a local database is its owner), never Cosmictron's."""
    assert (
        cli(
            "local-call", "data", "run_agent", "x", "--module", str(EXAMPLE), cwd=tmp_path
        ).returncode
        == 0
    )
    result = cli("local-call", "data", *args, cwd=tmp_path)
    assert result.returncode == 1
    first, *rest = result.stderr.strip().splitlines()
    assert first.startswith("error: ") and message in first, result.stderr
    assert len(rest) == 2 * frames, result.stderr  # each frame: its place, then its line
    assert all(line.startswith(f'  File "{EXAMPLE}", line ') for line in rest[::2]), rest
    assert "Traceback" not in result.stderr and "src/cosmictron" not in result.stderr
    assert result.stdout == ""


def test_missing_database_is_a_clear_error(tmp_path):
    result = cli("local-call", "empty", "run_agent", "x", cwd=tmp_path)
    assert result.returncode == 1
    assert "holds no database yet; give a module to create one" in result.stderr
