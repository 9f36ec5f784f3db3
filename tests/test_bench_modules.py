"""`bench/modules.py --quick` runs and writes its figures as JSON (no speed asserted)."""

import pytest


@pytest.mark.slow
def test_quick_modules_benchmark_writes_its_figures(run_quick_bench):
    figures, stdout = run_quick_bench("modules.py")
    assert figures["suite"] == "modules" and figures["mode"] == "quick"
    results = figures["results"]
    for language in ("python", "wasm"):
        assert results[language]["insert_tx_per_s"] > 0 and results[language]["noop_tx_per_s"] > 0
    assert results["python"]["insert_over_python"] == pytest.approx(1.0)
    parts = results["wasm_breakdown_us"]
    for key in ("host_transaction", "engine_call", "reducer_export_call", "set_fuel", "frame_io"):
        assert parts[key] > 0
    assert "insert vs python" in stdout
