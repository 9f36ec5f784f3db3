"""Smoke test of bench/bulk_http.py: the quick run completes and writes its figures.

It never asserts a speed (bench/README.md); only that every figure is there.
"""


def test_quick_bulk_http_bench_writes_its_figures(run_quick_bench):
    figures, stdout = run_quick_bench("bulk_http.py")
    assert figures["suite"] == "bulk_http" and figures["mode"] == "quick"
    assert figures["cosmictron_endpoint"]["rows_per_s"] > 0
    assert figures["sqlite"]["rows_per_s"] > 0 and figures["ratio_vs_sqlite"] > 0
    assert "ratio vs sqlite executemany" in stdout
