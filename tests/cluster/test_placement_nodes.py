"""Placement with real nodes: a joining node takes its share, a leaving one gives its away.

Three NATS servers; Cosmictron nodes ``a`` and ``b`` start, six databases are deployed on
``a``, and placement (``cluster/placement.py``) spreads their leadership 3 / 3 by planned
hand-overs. Node ``c`` joins: it takes two, one from each (2 / 2 / 2). Then ``c`` stops
(SIGTERM): it hands its two back before it exits, without waiting for a lease to expire.
Every move is a hand-over, never a takeover after a lease expired (the nodes' ``/metrics``).
A client writes to every database all along (following ``not_leader`` to the leader), and
the history checker then proves each hand-over lost nothing and doubled nothing: every
acknowledged write is in its database's stream exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cosmictron.testing.cluster_nodes import ClusterNodes, LeaderClient, cli_binary, http_json
from cosmictron.testing.history import History, check, records_from_payloads, reducer_values
from cosmictron.testing.nats import NatsCluster
from tests.cluster.test_cluster_metrics import scrape
from tests.cluster.test_history import MODULE

DATABASES = [f"db{i}" for i in range(6)]
VALUES = reducer_values("add")


def cluster_status(nodes: ClusterNodes, node_id: str) -> dict[str, Any]:
    status, body = http_json(nodes.url(node_id), "GET", "/v1/cluster", timeout=30)
    assert status == 200, body
    return dict(body)


def leaders(nodes: ClusterNodes, node_id: str) -> Counter[str | None]:
    return Counter(d["leader"] for d in cluster_status(nodes, node_id)["databases"])


def wait_for_leaders(
    nodes: ClusterNodes, node_id: str, want: dict[str, int], within: float
) -> float:
    """Seconds until ``GET /v1/cluster`` on ``node_id`` shows ``want`` leaders per node."""
    started = time.monotonic()
    while True:
        seen = leaders(nodes, node_id)
        if seen == want:
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"leaders {dict(seen)}, want {want}"
        time.sleep(0.5)


def stream(nats: NatsCluster, database: str) -> list[Any]:
    import nats as nats_py

    from cosmictron.cluster.jetstream_log import stream_name

    async def fetch() -> list[tuple[int, bytes]]:
        nc = await nats_py.connect(servers=nats.urls, connect_timeout=5)
        try:
            js = nc.jetstream(timeout=10)
            last = int((await js.stream_info(stream_name(database))).state.last_seq)
            out = []
            for seq in range(1, last + 1):
                msg = await js.get_msg(stream_name(database), seq, direct=True)
                out.append((seq, bytes(msg.data or b"")))
            return out
        finally:
            await nc.close()

    return records_from_payloads(asyncio.run(fetch()), VALUES)


def test_joining_and_leaving_nodes_move_leadership_by_planned_hand_over(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    nodes = ClusterNodes(tmp_path / "nodes", nats_cluster.url, ["a", "b", "c"])
    histories = {name: History() for name in DATABASES}
    stop = threading.Event()
    targets = {"now": ["a", "b"]}  # where the writer starts its calls (swapped whole)
    try:
        nodes.start("a")
        nodes.start("b")
        operator = nodes.operator_token("a")
        for name in DATABASES:
            status, body = http_json(
                nodes.url("a"), "PUT", f"/v1/database/{name}", None, operator, timeout=120,
                raw=MODULE.encode(),
            )  # fmt: skip
            assert status in (200, 201), body
        tokens = {}

        def identity(node_id: str) -> None:
            status, body = http_json(nodes.url(node_id), "POST", "/v1/identity", timeout=30)
            assert status == 200, body
            tokens[node_id] = body["token"]

        identity("a")
        identity("b")
        client = LeaderClient(nodes, tokens, rng=random.Random(19))

        def writer() -> None:
            for n in range(1, 10**9):
                if stop.is_set():
                    return
                name = DATABASES[n % len(DATABASES)]
                start_at = random.Random(n).choice(targets["now"])
                op = histories[name].invoke(0, "write", start_at, n)
                answer = client.request(start_at, "POST", f"/v1/database/{name}/call/add", [n])
                offset = answer.body.get("tx_offset") if answer.outcome == "ok" else None
                histories[name].complete(
                    op, answer.outcome, offset=offset, served_by=answer.node, error=answer.error
                )

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        spread = wait_for_leaders(nodes, "b", {"a": 3, "b": 3}, 60)
        print(f"two nodes: 3 / 3 after {spread:.1f}s")

        nodes.start("c")
        identity("c")
        targets["now"] = ["a", "b", "c"]
        joined = wait_for_leaders(nodes, "a", {"a": 2, "b": 2, "c": 2}, 60)
        print(f"c joined: 2 / 2 / 2 after {joined:.1f}s")
        doc = cluster_status(nodes, "c")
        assert doc["placement"]["nodes"] == ["a", "b", "c"], doc["placement"]
        for database in doc["databases"]:  # where each is led is where it is placed
            assert database["placement"][0] == database["leader"], database

        shown = subprocess.run(
            [cli_binary(), "cluster", "status", "--server", nodes.url("b")],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "COSMICTRON_CONFIG_DIR": str(tmp_path / "config")},
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert "placed" in shown.stdout, shown.stdout
        assert "c,a,b" in shown.stdout or "c,b,a" in shown.stdout, shown.stdout
        as_json = subprocess.run(
            [cli_binary(), "cluster", "status", "--server", nodes.url("b"), "--json"],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "COSMICTRON_CONFIG_DIR": str(tmp_path / "config")},
        )  # fmt: skip
        assert as_json.returncode == 0, as_json.stderr
        assert json.loads(as_json.stdout)["placement"]["nodes"] == ["a", "b", "c"]
        led_by_c = [d["name"] for d in doc["databases"] if d["leader"] == "c"]
        targets["now"] = ["a", "b"]
        left_at = time.monotonic()
        assert nodes.stop("c") == 0, nodes.output("c")
        handed = wait_for_leaders(nodes, "a", {"a": 3, "b": 3}, 30)
        gone = time.monotonic() - left_at
        print(f"c left: {led_by_c} led by a and b {gone:.1f}s after SIGTERM")
        print(f"(moved {handed:.1f}s after c exited)")
        # Handed over, never taken after an expired lease: no takeover waited for a TTL.
        after = {node_id: scrape(nodes, node_id) for node_id in ("a", "b")}
        for name in DATABASES:
            expired = f'cosmictron_cluster_takeovers_total{{database="{name}",kind="expired"}}'
            assert after["a"][expired] == after["b"][expired] == 0, name
        for name in led_by_c:
            handover = f'cosmictron_cluster_takeovers_total{{database="{name}",kind="handover"}}'
            assert after["a"][handover] + after["b"][handover] >= 1, name
        time.sleep(1.0)
        stop.set()
        thread.join(60)
    finally:
        stop.set()
        exits = nodes.stop_all()
    for name in DATABASES:
        report = check(histories[name], stream(nats_cluster, name))
        assert report.valid, f"{name}\n{report.summary()}"
        assert histories[name].counts().get("write ok", 0) >= 5, histories[name].counts()
    assert exits["a"] == 0 and exits["b"] == 0, exits
