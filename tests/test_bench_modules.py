"""`bench/modules.py --smoke` runs and writes its figures as JSON (no speed asserted).

``--smoke`` takes every path of ``--quick`` on a tenth of the calls, once: what this
test checks (every figure and part is there and positive) needs no more."""

import pytest


@pytest.mark.slow
def test_quick_modules_benchmark_writes_its_figures(run_quick_bench):
    figures, stdout = run_quick_bench("modules.py", "--smoke")
    assert figures["suite"] == "modules" and figures["mode"] == "smoke"
    results = figures["results"]
    for language in ("python", "wasm", "js_quickjs", "js_v8"):
        assert results[language]["insert_tx_per_s"] > 0 and results[language]["noop_tx_per_s"] > 0
    assert results["python"]["insert_over_python"] == pytest.approx(1.0)
    parts = results["wasm_breakdown_us"]
    for key in ("host_transaction", "engine_call", "reducer_export_call", "set_fuel", "frame_io"):
        assert parts[key] > 0
    for engine in ("quickjs", "v8"):
        js_parts = results["js_breakdown_us"][engine]
        for key in ("engine_call", "run", "bare_call", "msgpack"):
            assert js_parts[key] > 0, (engine, key)
    assert "insert vs python" in stdout and "JS call on quickjs" in stdout
