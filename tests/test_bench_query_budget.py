"""``bench/query_budget.py --quick`` runs end to end and writes its figures (no speed asserted)."""

import pytest


@pytest.mark.slow
def test_quick_query_budget_benchmark_writes_its_figures(run_quick_bench):
    figures, stdout = run_quick_bench("query_budget.py")
    assert figures["suite"] == "query_budget" and figures["mode"] == "quick"
    keys = [row["key"] for row in figures["summary"]]
    assert keys == ["call_p99_loaded", "call_p99_idle", "call_p99_slowdown"]
    mine = figures["results"]["cosmictron"]
    assert mine["loaded"]["calls"] == mine["idle"]["calls"] > 0
    # The runaway query was sent and stopped by a budget, never answered with rows.
    assert mine["queries"]["count"] >= 1
    assert set(mine["queries"]["codes"]) <= {"query_cancelled", "resource_exhausted"}
    assert mine["queries"]["statuses"] == ["422"]
    assert "goal < 100 ms" in stdout
