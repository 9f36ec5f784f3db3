"""``bench/mcp_route.py --quick`` runs end to end and writes its figures (no speed asserted)."""

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed (pip install '.[mcp]')")


@pytest.mark.slow
def test_quick_mcp_benchmark_writes_its_figures(run_quick_bench):
    figures, stdout = run_quick_bench("mcp_route.py")
    assert figures["suite"] == "mcp" and figures["mode"] == "quick"
    assert set(figures["results"]) == {"http", "mcp", "mcp sdk"}
    for way in figures["results"].values():
        assert 0 < way["p50"] <= way["p99"], way
    keys = [row["key"] for row in figures["summary"]]
    assert keys == ["mcp_p50_over_http", "mcp_sdk_p50_over_http"]
    assert all(row["ratio"] > 0 for row in figures["summary"])
    assert "p50 / http" in stdout
