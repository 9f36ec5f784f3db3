"""``/metrics`` in cluster mode, scraped from real nodes: lag, append latency, takeovers, leases.

Two Cosmictron nodes on a three-server NATS cluster. The leader's scrape shows its appends
(one histogram observation per record, publish to ack), the stream's end and no lag; the
standby's shows the stream's end and that it does not lead. Then the leader is frozen
(SIGSTOP) past its lease: the standby takes the lease over (``takeovers_total{kind=
"expired"}``, a failover) and, once thawed, the old leader counts its refused renewal
(``lease_renewals_failed_total{reason="lost"}``) and no longer leads.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from cosmictron.testing.cluster_nodes import ClusterNodes, http_json
from cosmictron.testing.nats import NatsCluster
from tests.cluster.test_history import MODULE


def scrape(nodes: ClusterNodes, node_id: str) -> dict[str, float]:
    """Every sample of ``node_id``'s ``/metrics`` (scrape token), by its full series name."""
    token = (nodes.nodes[node_id].data_dir / "server" / "metrics.token").read_text().strip()
    request = urllib.request.Request(
        nodes.url(node_id) + "/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples


def wait_for(nodes: ClusterNodes, node_id: str, series: str, value: float, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        seen = scrape(nodes, node_id).get(series)
        if seen == value:
            return
        assert time.monotonic() < deadline, f"{node_id}: {series} = {seen}, want {value}"
        time.sleep(0.3)


def scrape_until(nodes: ClusterNodes, node_id: str, series: str, within: float) -> dict[str, float]:
    """A scrape of ``node_id`` that has ``series`` (tried again for up to ``within`` s)."""
    deadline = time.monotonic() + within
    while True:
        samples = scrape(nodes, node_id)
        if series in samples:
            return samples
        assert time.monotonic() < deadline, f"{node_id}: no {series} within {within}s"
        time.sleep(0.3)


def test_cluster_series_on_a_real_leader_and_standby(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    nodes = ClusterNodes(tmp_path / "nodes", nats_cluster.url, ["a", "b"])
    app = '{database="app"}'
    try:
        nodes.start_all()
        status, body = http_json(
            nodes.url("a"), "PUT", "/v1/database/app", None, nodes.operator_token("a"),
            timeout=120, raw=MODULE.encode(),
        )  # fmt: skip
        assert status in (200, 201), body
        _, identity = http_json(nodes.url("a"), "POST", "/v1/identity", timeout=30)
        for n in range(20):
            status, body = http_json(
                nodes.url("a"), "POST", "/v1/database/app/call/add", [n], identity["token"]
            )
            assert status == 200, body
        # The stream's offset is read at scrape time and left out when JetStream does not
        # answer within 2 s (a loaded machine): scrape until it is there.
        leader = scrape_until(nodes, "a", f"cosmictron_cluster_stream_offset{app}", 30)
        offset = leader[f"cosmictron_cluster_stream_offset{app}"]
        assert offset >= 21  # the epoch record and 20 calls
        assert leader[f"cosmictron_cluster_append_seconds_count{app}"] >= 21
        assert leader['cosmictron_cluster_append_seconds_bucket{database="app",le="+Inf"}'] >= 21
        assert leader[f"cosmictron_cluster_append_seconds_sum{app}"] > 0
        assert leader[f"cosmictron_cluster_replication_lag_records{app}"] == 0
        assert leader[f"cosmictron_cluster_leader{app}"] == 1
        wait_for(nodes, "b", f"cosmictron_cluster_stream_offset{app}", offset, 30)
        standby = scrape(nodes, "b")
        assert standby[f"cosmictron_cluster_leader{app}"] == 0
        assert standby['cosmictron_cluster_takeovers_total{database="app",kind="expired"}'] == 0

        nodes.freeze("a")  # past its lease: b takes over
        wait_for(nodes, "b", f"cosmictron_cluster_leader{app}", 1, 30)
        taken = scrape_until(nodes, "b", f"cosmictron_cluster_stream_offset{app}", 30)
        assert taken['cosmictron_cluster_takeovers_total{database="app",kind="expired"}'] == 1
        assert taken[f"cosmictron_cluster_stream_offset{app}"] > offset  # b's epoch record
        nodes.thaw("a")
        wait_for(nodes, "a", f"cosmictron_cluster_leader{app}", 0, 30)
        lost = scrape(nodes, "a")
        renewals = 'cosmictron_cluster_lease_renewals_failed_total{database="app",reason="lost"}'
        assert lost[renewals] == 1
    finally:
        exits = nodes.stop_all()
    assert exits == {"a": 0, "b": 0}, exits
