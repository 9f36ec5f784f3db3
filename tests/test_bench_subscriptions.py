"""`bench/subscriptions.py --smoke` runs and writes its figures as JSON (no speed asserted).

``--smoke`` runs every scenario of ``--quick`` on 500 rows for a twentieth of a second:
what this test checks (every figure is there, and positive where it must be) needs no
more."""

import pytest


@pytest.mark.slow
def test_quick_subscription_benchmark_writes_its_figures(run_quick_bench):
    figures, stdout = run_quick_bench("subscriptions.py", "--smoke")
    assert figures["suite"] == "subscriptions" and figures["mode"] == "smoke"
    assert {"machine", "settings", "queries", "duration_seconds"} <= figures.keys()
    results = figures["results"]
    assert results["baseline"]["us_per_tx"] > 0
    for key, count in [
        ("same_1", 1),
        ("same_100", 100),
        ("same_1000", 1000),
        ("param_100", 100),
        ("param_1000", 1000),
    ]:
        row = results[key]
        assert row["subscriptions"] == count
        assert row["distinct_queries"] == (1 if key.startswith("same") else count)
        assert row["total_us_per_tx"] > 0 and row["transactions"] > 0
        assert {"baseline_us_per_tx", "maintenance_us_per_tx", "updates_per_tx"} <= row.keys()
    join = results["join_delta_vs_full"]
    assert join["full_eval_us_best"] > 0 and join["result_rows"] > 0
    assert {"delta_us_per_tx", "full_over_delta", "full_eval_post_first_us_best"} <= join.keys()
    assert "full / delta" in stdout
    semi = results["semijoin_counted_vs_reevaluated"]
    assert semi["counted_us_per_tx"] > 0 and semi["reevaluated_us_per_tx"] > 0
    assert "re-evaluated / counted" in stdout
