"""``bench/sql.py --quick`` runs end to end and writes its figures as JSON (no speed asserted)."""

import pytest


@pytest.mark.slow
def test_quick_sql_benchmark_writes_its_figures(run_quick_bench):
    figures, stdout = run_quick_bench("sql.py")
    assert figures["suite"] == "sql" and figures["mode"] == "quick"
    (row,) = figures["summary"]
    assert "point SELECT" in row["metric"]
    assert row["cosmictron"] > 0 and row["peer"] > 0 and row["ratio"] > 0
    assert ">= 1x" in row["target"] and "ratio" in stdout
