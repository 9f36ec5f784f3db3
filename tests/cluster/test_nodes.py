"""Cluster mode with real processes: three NATS servers and two Cosmictron nodes.

``cosmictron-cli start --cluster … --node-id …`` as a user runs it. A database deployed on
one node is led there (its log a JetStream stream); the other node follows it. SIGKILL of
the leader under load: a surviving node serves within 10 s, with every acknowledged call
present exactly once. NATS unreachable at start: one line naming the URL, non-zero exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from cosmictron.testing.nats import NatsCluster
from tests.server.conftest import CLI, Server, start_server, stop_server

MODULE = """
from cosmictron import ReducerContext, field, reducer, table


@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True)


@reducer
def add(ctx: ReducerContext, n: int) -> int:
    ctx.db.item.insert(Item(id=n))
    return n
"""


def start_node(tmp_path: Path, nats: NatsCluster, node_id: str, *extra: str) -> Server:
    return start_server(
        tmp_path / node_id,
        "--profile",
        "development",
        "--cluster",
        nats.url,
        "--node-id",
        node_id,
        *extra,
    )


def ids(node: Server) -> list[int]:
    reply = node.request("POST", "/v1/database/app/sql", "SELECT id FROM item")
    assert reply.status == 200, reply
    return sorted(row["id"] for row in reply.body["rows"])


def test_unreachable_nats_is_one_line_naming_the_url(tmp_path: Path) -> None:
    result = subprocess.run(
        [CLI, "start", "--data-dir", str(tmp_path / "d"), "--cluster", "nats://127.0.0.1:9",
         "--node-id", "a"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nats://127.0.0.1:9" in lines[0], result.stderr


def test_the_leader_killed_under_load_a_survivor_serves_with_nothing_lost_or_doubled(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a = start_node(tmp_path, nats_cluster, "a")
    b = start_node(tmp_path, nats_cluster, "b")
    try:
        _, operator = a.operator()
        reply = a.deploy("app", MODULE, operator)
        assert reply.status in (200, 201), reply
        _, token_a = a.identity()
        reply = a.request("POST", "/v1/database/app/call/add", [1], token_a)
        assert reply.status == 200, reply
        assert ids(a) == [1]
        # b follows: a call sent to it is forwarded to a (anonymous: a checks a token
        # with its own key), and b answers once its replica applied it.
        _, token_b = b.identity()
        opened = time.monotonic()
        while b.request("POST", "/v1/database/app/sql", "SELECT id FROM item").status != 200:
            assert time.monotonic() - opened < 30, "b did not open its replica of app"
            time.sleep(0.1)
        reply = b.request("POST", "/v1/database/app/call/add", [2])
        assert reply.status == 200, reply
        assert ids(b) == [1, 2]

        acknowledged: list[int] = [1, 2]
        attempted: list[int] = [1, 2]
        stop = threading.Event()

        def load(first: int) -> None:
            n = first
            while not stop.is_set():
                attempted.append(n)
                try:
                    r = a.request("POST", "/v1/database/app/call/add", [n], token_a)
                except OSError:
                    return  # the leader is gone: this call's outcome is unknown
                if r.status == 200:
                    acknowledged.append(n)
                else:
                    return
                n += 2

        threads = [threading.Thread(target=load, args=(first,)) for first in (10, 11)]
        for thread in threads:
            thread.start()
        while len(acknowledged) < 100:
            # a caller stops at its first non-200: then the load is over, say so
            assert any(t.is_alive() for t in threads), f"the load stopped at {acknowledged[-1]}"
            time.sleep(0.05)
        a.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        stop.set()
        for thread in threads:
            thread.join()
        # The survivor takes the lease after its TTL, catches up, fences, serves.
        served_after = None
        while time.monotonic() - killed_at < 30:
            r = b.request("POST", "/v1/database/app/call/add", [5], token_b)
            if r.status == 200:
                served_after = time.monotonic() - killed_at
                break
            assert r.status == 503, r
            time.sleep(0.1)
        assert served_after is not None and served_after < 10, served_after
        print(f"failover: b served {served_after:.2f}s after SIGKILL of the leader")
        rows = ids(b)
        assert len(rows) == len(set(rows))  # a primary key: a doubled call could not hide
        assert set(acknowledged) <= set(rows)
        assert set(rows) <= set(attempted) | {5}
        status = b.request("GET", "/v1/cluster")
        assert status.status == 200, status
        doc = status.body
        assert {n["node_id"] for n in doc["nodes"]} >= {"b"}
        assert set(doc["nodes"][0]) == {"node_id", "url", "status"}
        (database,) = doc["databases"]
        assert database["name"] == "app" and database["leader"] == "b"
        for replica in database["replicas"]:
            assert set(replica) == {"node_id", "applied_offset", "lag"}
        shown = subprocess.run(
            [CLI, "cluster", "status", "--server", b.url, "--json"],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "COSMICTRON_CONFIG_DIR": str(tmp_path / "config")},
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["databases"][0]["leader"] == "b"
    finally:
        if a.process.poll() is None:
            stop_server(a)
        else:
            a.process.communicate(timeout=30)
        out = stop_server(b)
    assert b.process.returncode == 0, out
