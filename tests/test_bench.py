"""The benchmark command runs end to end and writes its figures as JSON.

Speed is never asserted here (see bench/README.md); this keeps ``bench/run.py`` working,
so the figures in docs/benchmarks.md can always be reproduced.
"""

import pytest


@pytest.mark.slow
def test_quick_benchmark_writes_every_figure(run_quick_bench):
    figures, stdout = run_quick_bench("run.py")
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
    assert "ratio" in stdout
