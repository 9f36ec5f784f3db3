"""``bench/pgwire.py --quick`` runs end to end and writes its figures (no speed asserted)."""

import pytest


@pytest.mark.slow
def test_quick_pgwire_benchmark_writes_its_figures(run_quick_bench):
    figures, stdout = run_quick_bench("pgwire.py")
    assert figures["suite"] == "pgwire" and figures["mode"] == "quick"
    results = figures["results"]
    for key in ("scan_psycopg_text", "scan_psycopg_binary", "scan_asyncpg"):
        assert results[key]["rows_per_s"]["cosmictron"] > 0
    for key in ("point_psycopg", "point_asyncpg"):
        assert results[key]["queries_per_s"]["cosmictron"] > 0
    assert "point query, asyncpg" in stdout
