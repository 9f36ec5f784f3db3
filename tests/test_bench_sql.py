"""``bench/sql.py --quick`` runs end to end and writes its figures as JSON (no speed asserted)."""

from itertools import permutations

import pytest


@pytest.mark.slow
def test_quick_sql_benchmark_writes_its_figures(run_quick_bench):
    figures, stdout = run_quick_bench("sql.py")
    assert figures["suite"] == "sql" and figures["mode"] == "quick"
    row, *joins = figures["summary"]
    assert "point SELECT" in row["metric"]
    assert row["cosmictron"] > 0 and row["peer"] > 0 and row["ratio"] > 0
    assert ">= 1x" in row["target"] and "ratio" in stdout
    keys = [join["key"] for join in joins]
    assert keys == [*(f"join3_{'-'.join(p)}" for p in permutations("cop")), "join8", "join3_spread"]
    results = figures["results"]["joins"]
    assert len({results[k]["join_order"] for k in results if k.startswith("join3 ")}) == 1
    assert all(join["cosmictron"] > 0 for join in joins)
