"""``ctx.call_remote`` between databases led by two different cluster nodes.

Real processes: three NATS servers and two ``cosmictron-cli start --cluster`` nodes. The
source database leads on one node, the target on the other: the source's relay publishes
each call to the target's inbox stream and the target's leader applies it, once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cosmictron.testing.nats import NatsCluster
from tests.cluster.test_nodes import start_node
from tests.crash_harness import BILLING as BILLING_INT
from tests.crash_harness import ORDERS as ORDERS_INT
from tests.server.conftest import Server, stop_server


def charged(node: Server, token: str) -> list[int]:
    reply = node.request("POST", "/v1/database/billing/sql", "SELECT item FROM charge", token)
    assert reply.status == 200, reply
    return sorted(row["item"] for row in reply.body["rows"])


def unfinished(cluster: NatsCluster) -> int:
    """Messages of billing's inbox not yet delivered, or delivered and not acknowledged
    (-1: not known yet; the caller asks again until its deadline)."""
    from cosmictron.host.remote_nats import inbox_stream

    async def read() -> int:
        import nats

        nc = await nats.connect(servers=cluster.urls)
        try:
            stream = inbox_stream("billing")
            try:
                info = await nc.jetstream().consumer_info(stream, f"apply_{stream}")
            except nats.js.errors.NotFoundError:
                return -1  # the target's leader has not started its consumer yet
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                return -1  # JetStream did not answer this probe in time: not known yet
            return int(info.num_pending + info.num_ack_pending)
        finally:
            await nc.close()

    return asyncio.run(read())


def test_a_call_crosses_from_the_sources_leader_to_the_targets_leader_once(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a = start_node(tmp_path, nats_cluster, "a")
    b = start_node(tmp_path, nats_cluster, "b")
    try:
        _, operator_a = a.operator()
        _, operator_b = b.operator()
        assert a.deploy("orders", ORDERS_INT, operator_a).status in (200, 201)
        assert b.deploy("billing", BILLING_INT, operator_b).status in (200, 201)
        _, token = a.identity()
        for item in range(1, 6):
            reply = a.request("POST", "/v1/database/orders/call/place", [item], token)
            assert reply.status == 200, reply
        # billing leads on b only: a cannot have applied these calls itself (it may hold
        # a read-only replica of billing, which applies b's log and runs nothing).
        leaders = {
            d["name"]: d["leader"] for d in a.request("GET", "/v1/cluster").body["databases"]
        }
        assert leaders == {"orders": "a", "billing": "b"}, leaders
        _, token_b = b.identity()
        # Done means: the inbox's consumer has nothing left to deliver or to have acked,
        # so every apply (and any doubled one) has happened.
        deadline = time.monotonic() + 60
        while unfinished(nats_cluster) != 0 or len(charged(b, token_b)) < 5:
            assert time.monotonic() < deadline, charged(b, token_b)
            time.sleep(0.1)
        assert charged(b, token_b) == [1, 2, 3, 4, 5]
    finally:
        stop_server(a)
        stop_server(b)
