"""`bench/rls.py --quick` runs and writes its figures as JSON (no speed asserted)."""

import pytest


@pytest.mark.slow
def test_quick_rls_benchmark_writes_its_figures(run_quick_bench):
    figures, stdout = run_quick_bench("rls.py")
    assert figures["suite"] == "rls" and figures["mode"] == "quick"
    assert {"machine", "settings", "filters", "duration_seconds"} <= figures.keys()
    results = figures["results"]
    for key in ("insert", "sql"):
        assert results[key]["join_over_peer"] > 0
        for side in ("join", "peer"):
            assert results[key][side]
    assert results["insert"]["join"]["updates_per_tx"] == pytest.approx(1.0)
    move = results["membership"]
    assert move["transactions"] > 0 and move["maintenance_us_per_tx"] > 0
    assert move["reevaluated_queries_per_tx"] == pytest.approx(1.0)  # the guard held
    assert "join / peer" in stdout
