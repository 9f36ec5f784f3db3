"""`bench/ledger.py --quick` runs and writes its figures as JSON (no speed asserted)."""

import pytest


@pytest.mark.slow
def test_quick_ledger_benchmark_writes_its_figures(run_quick_bench):
    figures, stdout = run_quick_bench("ledger.py")
    assert figures["suite"] == "ledger" and figures["mode"] == "quick"
    assert {"machine", "settings", "duration_seconds"} <= figures.keys()
    assert figures["settings"]["records"] == 20_000
    results = figures["results"]
    for key in ("peer_chain", "append", "extend", "append_file", "verify_tree",
                "verify_inclusion", "verify_consistency", "prove_inclusion"):  # fmt: skip
        assert results[key]["rate"] > 0 and results[key]["over_peer_chain"] > 0
    assert results["peer_chain"]["over_peer_chain"] == pytest.approx(1.0)
    assert results["verify_tree"]["goal"] == 200_000
    assert 14 <= results["inclusion_proof_hashes_mean"] <= 15  # log2(20,000) ~ 14.3
    assert "verify tree vs checkpoints" in stdout
