"""Replicas that serve (issue 19 part 3): three NATS servers and three nodes, real processes.

A database deployed on node ``a`` is led there; ``b`` and ``c`` follow it (each applies the
stream into a read-only replica). Shown here: a call sent to a follower is forwarded,
commits, and is read back on every node (on the node that forwarded it at once: the
read-your-writes rule); SQL writes and deploys are forwarded too; a restarted follower
catches up from its own log; a follower's subscription sees the leader's updates at the
leader's offsets and resumes from an offset; a frozen (SIGSTOP) leader cannot get a write
acknowledged once it resumes, and converges to a follower holding the same log; with
NATS's quorum lost a follower keeps serving reads and says they are stale, and writes
answer ``503 cluster_unavailable``.

Calls are anonymous (the module allows it): a token is checked by the node that answers,
and each node has its own signing key until tokens are cluster-wide.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from cosmictron.testing.nats import NatsCluster
from tests.cluster.test_nodes import MODULE, start_node
from tests.server.conftest import Server, stop_server, strict_loads
from tests.server.test_websocket import PROTOCOL, Client

MODULE_V2 = (
    MODULE
    + """

@reducer
def add_two(ctx: ReducerContext, n: int) -> int:
    ctx.db.item.insert(Item(id=n))
    ctx.db.item.insert(Item(id=n + 1))
    return n
"""
)


def http(
    node: Server,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> tuple[int, Any, dict[str, str]]:
    """One request: status, decoded body and the reply's headers."""
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request = urllib.request.Request(node.url + path, data=data, method=method)
    request.add_header("Content-Type", content_type)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, strict_loads(reply.read() or b"null"), dict(reply.headers)
    except urllib.error.HTTPError as error:
        return error.code, strict_loads(error.read() or b"null"), dict(error.headers)


def call(node: Server, n: int) -> tuple[int, Any, dict[str, str]]:
    return http(node, "POST", "/v1/database/app/call/add", [n])


def select(node: Server, headers: dict[str, str] | None = None) -> tuple[list[int], dict[str, str]]:
    status, body, got = http(
        node, "POST", "/v1/database/app/sql", "SELECT id FROM item", headers, "text/plain"
    )
    assert status == 200, (status, body)
    return sorted(row["id"] for row in body["rows"]), got


def wait_for(what: str, check: Any, within_s: float = 30.0) -> Any:
    """Poll ``check()`` until it returns a true value (what the test waits for: a replica
    opened, a lease moved); fail naming ``what`` after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {within_s}s"
        time.sleep(0.1)


def serving(node: Server) -> bool:
    """Whether ``node`` answers reads of ``app`` itself (its replica is open)."""
    status, _, headers = http(
        node, "POST", "/v1/database/app/sql", "SELECT id FROM item", None, "text/plain"
    )
    return status == 200 and "Cosmictron-Applied-Offset" in headers


def three_nodes(
    tmp_path: Path, nats: NatsCluster, *extra: str, module: str = MODULE
) -> list[Server]:
    """Nodes ``a`` (which leads ``app``, deployed by the operator), ``b`` and ``c``, each
    serving ``app``; ``extra`` is given to every node's ``start`` (``--pg-listen``)."""
    a = start_node(tmp_path, nats, "a", *extra)
    nodes = [a]
    try:
        _, operator = a.operator()
        reply = a.deploy("app", module, operator)
        assert reply.status == 201, reply
        nodes += [start_node(tmp_path, nats, "b", *extra), start_node(tmp_path, nats, "c", *extra)]
        for node in nodes:
            wait_for(f"{node.url} serves app", lambda node=node: serving(node))
    except BaseException:
        for node in nodes:
            stop_server(node)
        raise
    return nodes


def stop_all(nodes: list[Server]) -> None:
    """Stop every node; print what each logged (pytest shows it when a test failed)."""
    for node in nodes:
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGCONT)
        print(f"--- {node.url}\n{stop_server(node)}")


def test_writes_through_a_follower_commit_once_and_read_back_on_every_node(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a, b, c = nodes = three_nodes(tmp_path, nats_cluster)
    try:
        status, body, headers = call(b, 1)
        assert status == 200, body
        assert headers["Cosmictron-Leader"] == "a"
        offset = body["tx_offset"]
        # Read-your-writes: the node that forwarded answered once it had applied it.
        assert int(headers["Cosmictron-Applied-Offset"]) >= offset
        assert headers["Cosmictron-Stale"] == "false"
        assert select(b)[0] == [1]
        # Any other node, asked to read at that offset, waits for it.
        rows, got = select(c, {"Cosmictron-Min-Offset": str(offset)})
        assert rows == [1] and int(got["Cosmictron-Applied-Offset"]) >= offset
        assert select(a)[0] == [1]
        # SQL: a write is forwarded (the leader runs it, for the owner), a read served here.
        _, operator = a.operator()
        owner = {"Authorization": f"Bearer {operator}"}
        status, body, headers = http(
            c, "POST", "/v1/database/app/sql", "INSERT INTO item (id) VALUES (7)", owner,
            "text/plain",
        )  # fmt: skip
        assert status == 200 and body["rows_affected"] == 1, body
        assert headers["Cosmictron-Leader"] == "a"
        assert select(c)[0] == [1, 7]
        # A deploy (a module update) is forwarded, with the caller's token, to the leader.
        status, body, headers = http(
            b, "PUT", "/v1/database/app", MODULE_V2, owner, "text/x-python"
        )  # fmt: skip
        assert status == 200 and body["created"] is False, body
        status, body, _ = http(b, "POST", "/v1/database/app/call/add_two", [20])
        assert status == 200, body
        # Every node holds the same rows at the same offset; nothing was applied twice.
        last = body["tx_offset"]
        for node in nodes:
            rows, got = select(node, {"Cosmictron-Min-Offset": str(last)})
            assert rows == [1, 7, 20, 21], node.url
            assert int(got["Cosmictron-Applied-Offset"]) == last, node.url

        # Each node reports its replica in its next heartbeat (one a lease round, written
        # before a replica opened in that round): wait for every node's.
        def reported() -> dict[str, Any]:
            (database,) = a.request("GET", "/v1/cluster").body["databases"]
            return database

        database = wait_for(
            "every node reports its replica",
            lambda: (
                {r["node_id"] for r in reported()["replicas"]} == {"a", "b", "c"} and reported()
            ),
            within_s=10.0,
        )
        assert database["leader"] == "a"
        # A follower restarted replays its own log, copies what it missed, tails again.
        stop_server(c)
        status, body, _ = call(b, 30)
        assert status == 200, body
        c = nodes[2] = start_node(tmp_path, nats_cluster, "c")
        wait_for("the restarted c serves app", lambda: serving(c))
        rows, got = select(c, {"Cosmictron-Min-Offset": str(body["tx_offset"])})
        assert rows == [1, 7, 20, 21, 30]
        assert int(got["Cosmictron-Applied-Offset"]) == body["tx_offset"]
    finally:
        stop_all(nodes)


async def _subscribe_on(node: Server, http_session: aiohttp.ClientSession, **extra: Any) -> Any:
    ws = await http_session.ws_connect(
        f"{node.url}/v1/database/app/subscribe", protocols=(PROTOCOL,)
    )
    client = Client(ws)
    await client.expect("IdentityToken")
    applied = await client.subscribe(1, "SELECT * FROM item", **extra)
    return client, applied


def test_a_followers_subscription_sees_the_leaders_updates_at_the_leaders_offsets(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a, b, c = nodes = three_nodes(tmp_path, nats_cluster)
    try:
        assert call(a, 1)[0] == 200
        before = call(a, 2)[1]["tx_offset"]
        for node in (b, c):
            select(node, {"Cosmictron-Min-Offset": str(before)})

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                subscribed = [await _subscribe_on(node, session) for node in nodes]
                for _, applied in subscribed:
                    assert applied["tx_offset"] == before
                    assert applied["tables"] == subscribed[0][1]["tables"]
                offsets = []
                for n in (10, 11, 12):
                    status, body, _ = await asyncio.to_thread(call, c, n)
                    assert status == 200, body
                    offsets.append(body["tx_offset"])
                for client, _ in subscribed:
                    seen = [await client.expect("TransactionUpdate") for _ in offsets]
                    assert [u["tx_offset"] for u in seen] == offsets
                    assert [u["tables"][0]["inserts"] for u in seen] == [
                        [{"id": n}] for n in (10, 11, 12)
                    ]
                # Resume from an offset on a follower: only what came after it.
                again, resumed = await _subscribe_on(b, session, since_tx_offset=offsets[0])
                assert resumed["resumed"] is True, resumed
                replayed = [await again.expect("TransactionUpdate") for _ in offsets[1:]]
                assert [u["tx_offset"] for u in replayed] == offsets[1:]
                # A call over a follower's WebSocket runs on the leader: its update
                # reaches the caller (before its result, as on the leader) and every node.
                on_b = subscribed[1][0]
                request_id = await on_b.send("CallReducer", reducer="add", args=[99])
                update = await on_b.expect("TransactionUpdate")
                result = await on_b.expect("ReducerResult")
                assert result["request_id"] == request_id and result["status"] == "committed"
                assert result["tx_offset"] == update["tx_offset"] > offsets[-1], result
                assert update["tables"][0]["inserts"] == [{"id": 99}]
                for client, _ in (subscribed[0], subscribed[2]):
                    seen = await client.expect("TransactionUpdate")
                    assert seen["tx_offset"] == result["tx_offset"]
                # The leader's refusal comes back with its code and message.
                request_id = await on_b.send("CallReducer", reducer="add", args=[99])
                result = await on_b.expect("ReducerResult")
                assert result["request_id"] == request_id and result["status"] == "failed"
                status, body, _ = await asyncio.to_thread(call, a, 99)  # on the leader
                assert status >= 400 and body["error"]["code"] != "not_leader", body
                assert result["error_code"] == body["error"]["code"], result
                assert result["error"] == body["error"]["message"], result

        asyncio.run(scenario())
    finally:
        stop_all(nodes)


def test_a_frozen_leader_gets_no_write_acknowledged_after_it_resumes_and_converges(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a, b, _c = nodes = three_nodes(tmp_path, nats_cluster)
    try:
        assert call(a, 1)[0] == 200
        a.process.send_signal(signal.SIGSTOP)  # a pause: a still believes it leads

        def new_leader() -> str | None:
            status, _, headers = call(b, 2)
            if status != 200:
                return None
            return headers.get("Cosmictron-Leader", "b")  # no header: b answered itself

        leader = wait_for("a failover to b or c", new_leader, within_s=60)
        assert leader in ("b", "c")
        a.process.send_signal(signal.SIGCONT)
        # Whatever a answers now, it acknowledges nothing itself: a 200 came from the new
        # leader (forwarded), anything else is a refusal.
        acknowledged = [1, 2]
        for n in range(3, 13):
            status, body, headers = call(a, n)
            if status == 200:
                assert headers.get("Cosmictron-Leader") == leader, (body, headers)
                acknowledged.append(n)
            else:
                assert status == 503, body
                assert body["error"]["code"] in ("not_leader", "cluster_unavailable"), body
            time.sleep(0.2)
        # a converges: it follows the new leader and its copy is the leader's, offset
        # for offset (its unacknowledged tail, if any, was set aside).
        status, body, _ = call(b, 100)
        assert status == 200
        last = body["tx_offset"]
        acknowledged.append(100)

        def converged() -> bool:
            _rows, got = select(a, {"Cosmictron-Min-Offset": str(last)})
            return (
                int(got["Cosmictron-Applied-Offset"]) == last and got["Cosmictron-Stale"] == "false"
            )

        wait_for("a follows with the same log", converged)
        for node in nodes:
            rows, got = select(node, {"Cosmictron-Min-Offset": str(last)})
            assert rows == sorted(acknowledged), node.url
            assert int(got["Cosmictron-Applied-Offset"]) == last
        doc = b.request("GET", "/v1/cluster").body
        assert doc["databases"][0]["leader"] == leader
    finally:
        stop_all(nodes)


def test_with_the_nats_quorum_lost_a_follower_serves_stale_reads_and_refuses_writes(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    _a, b, c = nodes = three_nodes(tmp_path, nats_cluster)
    try:
        status, body, _ = call(b, 1)
        assert status == 200, body
        offset = body["tx_offset"]
        rows, headers = select(c, {"Cosmictron-Min-Offset": str(offset)})
        assert rows == [1] and headers["Cosmictron-Stale"] == "false"
        nats_cluster.kill(1)
        nats_cluster.kill(2)  # one of three: no quorum for any stream or bucket
        killed_at = time.monotonic()

        def stale() -> dict[str, str] | None:
            rows, headers = select(c)
            assert rows == [1]  # the applied state, all along
            return headers if headers["Cosmictron-Stale"] == "true" else None

        headers = wait_for("c says its reads are stale", stale)
        print(f"quorum lost: c marked its reads stale after {time.monotonic() - killed_at:.1f}s")
        assert int(headers["Cosmictron-Applied-Offset"]) == offset
        for node in (b, c):
            status, body, got = call(node, 2)
            assert status == 503, body
            assert body["error"]["code"] in ("cluster_unavailable", "not_leader"), body
            assert float(got["Retry-After"]) > 0
        assert select(b)[0] == [1]
    finally:
        stop_all(nodes)
