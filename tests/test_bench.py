"""The benchmark command runs end to end and writes its figures as JSON.

Speed is never asserted here (see bench/README.md); this keeps ``bench/run.py`` working,
so the figures in docs/benchmarks.md can always be reproduced.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_quick_benchmark_writes_every_figure(tmp_path):
    out = tmp_path / "core.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
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
    metrics = [row["metric"] for row in figures["summary"]]
    for expected in (
        "insert tx/s, never",
        "update-by-pk",
        "16 callers",
        "bulk load",
        "replay",
        "memory per row",
    ):
        assert any(expected in metric for metric in metrics), expected
    for row in figures["summary"]:
        assert row["cosmictron"] > 0, row
    assert "ratio" in result.stdout
