"""The installed ``cosmictron-cli``, run as a user runs it: a real process, real files."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "quickstart" / "app.py"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    executable = shutil.which("cosmictron-cli", path=str(Path(sys.executable).parent))
    assert executable, "cosmictron-cli is installed beside the test interpreter"
    environment = {
        "PATH": str(Path(sys.executable).parent),
        "COSMICTRON_PERFORMANCE_PROFILE": "development",
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
    assert json.loads(first.stdout) == {"return_value": 1, "tx_offset": 2}
    task = cli("local-call", "data", "add_task", "Write docs", "3", cwd=tmp_path)
    reply = json.loads(task.stdout)
    assert reply["return_value"] == {"id": 2, "title": "Write docs", "done": False, "priority": 3}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "error: no reducer named 'nope'"),
        (["add_task", "x", "not-a-number"], "argument 'priority': expected i64"),
    ],
)
def test_errors_are_one_line_and_a_non_zero_exit(tmp_path, args, message):
    assert (
        cli(
            "local-call", "data", "run_agent", "x", "--module", str(EXAMPLE), cwd=tmp_path
        ).returncode
        == 0
    )
    result = cli("local-call", "data", *args, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message", "raising_line"),
    [
        (
            ["add_task", "   "],
            "error: reducer 'add_task' failed: ValueError: a task needs a title",
            'raise ValueError("a task needs a title")',
        ),
        (
            ["complete_task", "99"],
            "error: reducer 'complete_task' failed: LookupError: no task 99",
            'raise LookupError(f"no task {task_id}")',
        ),
    ],
)
def test_a_failed_reducer_shows_its_own_frames_to_the_local_owner(
    tmp_path, args, message, raising_line
):
    """Run locally, the caller owns the database: the error line, then the module's frames."""
    assert (
        cli(
            "local-call", "data", "run_agent", "x", "--module", str(EXAMPLE), cwd=tmp_path
        ).returncode
        == 0
    )
    result = cli("local-call", "data", *args, cwd=tmp_path)
    assert result.returncode == 1
    first, *frames = result.stderr.strip().splitlines()
    assert first == message
    assert any("app.py" in line and f"in {args[0]}" in line for line in frames), frames
    assert frames[-1].strip() == raising_line
    file_lines = [line for line in frames if line.lstrip().startswith("File ")]
    assert all("app.py" in line for line in file_lines), frames  # Cosmictron's frames trimmed
    assert result.stdout == ""


def test_missing_database_is_a_clear_error(tmp_path):
    result = cli("local-call", "empty", "run_agent", "x", cwd=tmp_path)
    assert result.returncode == 1
    assert "holds no database yet; give a module to create one" in result.stderr
