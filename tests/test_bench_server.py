"""`bench/server.py --quick` runs end to end and writes its figures as JSON (no speed asserted).

It starts a real server and a load-generator process; PostgreSQL may be missing (then its
part says why it was skipped), so either shape is accepted.
"""

import pytest

SCENARIOS = ("closed_1", "closed_16", "pipelined_1", "pipelined_16")
TRANSPORTS = ("cosmictron", "cosmictron_msgpack", "cosmictron_http")


@pytest.mark.slow
def test_quick_server_benchmark_writes_its_figures(run_quick_bench):
    figures, stdout = run_quick_bench("server.py")
    assert figures["suite"] == "server" and figures["mode"] == "quick"
    assert {"machine", "settings", "workload", "duration_seconds", "goals"} <= figures.keys()
    assert "load_average_before" in figures["machine"]
    results = figures["results"]
    for transport in TRANSPORTS:
        for key in SCENARIOS:
            row = results[transport][key]
            assert row["calls"] > 0 and row["calls_per_s"] > 0 and row["errors"] == 0, row
            assert row["latency_ms"]["p50"] > 0 and row["latency_ms"]["p99"] > 0
            assert row["clients"] in (1, 16) and 1 <= row["in_flight_per_client"] <= 16
    assert results["cosmictron_durability"]["fsync_policy"] == "always"
    assert "fsync policy of every figure: cosmictron always" in stdout
    peer = results["postgresql"]
    if "skipped" in peer:
        assert peer["skipped"]
        assert all(results["ratios"][key] is None for key in SCENARIOS)
        assert all(
            ratios[key] is None
            for ratios in results["ratios_by_transport"].values()
            for key in SCENARIOS
        )
        assert "PostgreSQL skipped" in stdout
    else:
        for key in SCENARIOS:
            assert peer[key]["calls"] > 0 and peer[key]["errors"] == 0, peer[key]
            assert results["ratios"][key] > 0
            assert all(results["ratios_by_transport"][t][key] > 0 for t in TRANSPORTS)
        assert results["postgresql_settings"]["fsync"] == "on"
        assert results["postgresql_settings"]["synchronous_commit"] == "on"
    fanout = results["fanout"]
    assert fanout["transactions"] > 0
    assert fanout["receipts"] == fanout["expected_receipts"] > 0
    for figure in ("commit_to_receipt_ms", "send_to_receipt_ms", "writer_call_latency_ms"):
        assert {"p50", "p99", "max"} <= fanout[figure].keys()
    assert figures["goals"][0]["goal"].startswith(">= 15,000")
    assert "fan-out" in stdout and "ratio" in stdout
