"""`bench/memory.py --quick` runs and writes its figures as JSON (no speed asserted)."""

import pytest


@pytest.mark.slow
def test_quick_memory_benchmark_writes_its_figures(run_quick_bench):
    figures, stdout = run_quick_bench("memory.py")
    assert figures["suite"] == "memory" and figures["mode"] == "quick"
    assert figures["settings"]["sizes"] == [2_000, 10_000]
    for size in ("2000", "10000"):
        sized = figures["results"][size]
        assert sized["peer_numpy"]["recall_at_10"] == 1.0
        assert sized["recall_exact"]["recall_at_10"] == 1.0  # exact search is exact
        assert sized["recall_approximate"]["recall_at_10"] >= 0.9
        for name in ("peer_numpy", "recall_exact", "recall_approximate", "hnswlib_raw"):
            assert 0 < sized[name]["p50_ms"] <= sized[name]["p99_ms"]
            assert sized[name]["p50_over_peer"] > 0
    assert figures["goals"]["p99_ms_max"] == 5.0
    assert "recall_approximate" in stdout
