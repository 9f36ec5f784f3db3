"""``bench/sql.py --quick`` runs end to end and writes its figures as JSON (no speed asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_quick_sql_benchmark_writes_its_figures(tmp_path):
    out = tmp_path / "sql.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "sql.py"),
            "--quick",
            "--out",
            str(out),
            "--tmpdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["suite"] == "sql" and figures["mode"] == "quick"
    (row,) = figures["summary"]
    assert "point SELECT" in row["metric"]
    assert row["cosmictron"] > 0 and row["peer"] > 0 and row["ratio"] > 0
    assert ">= 1x" in row["target"] and "ratio" in result.stdout
