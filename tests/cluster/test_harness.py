"""The NATS test harness itself: three real servers, an R3 stream, and a server killed under it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cosmictron.testing.nats import NatsCluster


async def _publish_when_stored(js: Any, payload: bytes, within_s: float = 60.0) -> int:
    """Publish until the stream stores it: right after the stream is created (its subject's
    interest has not reached every server yet) or while it elects a leader, JetStream
    answers "no responders" or nothing; a stored message is what the test waits for. The
    message id makes a retry after a lost ack a duplicate, not a second message."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            headers = {"Nats-Msg-Id": payload.decode()}
            return int((await js.publish("harness.x", payload, timeout=1.0, headers=headers)).seq)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _publish_through_a_kill(cluster: NatsCluster) -> list[int]:
    import nats

    nc = await nats.connect(
        servers=cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    try:
        js = nc.jetstream()
        # A stream create can go unanswered for its whole timeout while the meta leader
        # settles, and a retry is answered (the create is idempotent): wait for that.
        deadline = time.monotonic() + 60
        while True:
            try:
                await js.add_stream(
                    name="HARNESS", subjects=["harness.>"], num_replicas=3, storage="file"
                )
                break
            except nats.errors.TimeoutError:
                assert time.monotonic() < deadline, "JetStream did not answer a stream create"
        seqs = [await _publish_when_stored(js, b"one")]
        info = await js.stream_info("HARNESS")
        assert info.cluster is not None and info.cluster.leader is not None
        # Kill a server that is not the stream's leader, then one that is: R3 keeps a quorum
        # of two, so publishes go on (after a re-election in the second case).
        cluster.kill(info.cluster.leader)
        seqs.append(await _publish_when_stored(js, b"two"))
        seqs.append((await js.publish("harness.x", b"three")).seq)
        info = await js.stream_info("HARNESS")
        assert info.state.messages == 3
        return seqs
    finally:
        await nc.close()


def test_three_servers_keep_an_r3_stream_writable_after_one_is_killed(
    nats_cluster: NatsCluster,
) -> None:
    assert len(nats_cluster.urls) == 3
    assert all(s.meta_leader() is not None for s in nats_cluster.servers)
    assert asyncio.run(_publish_through_a_kill(nats_cluster)) == [1, 2, 3]
    assert sum(s.alive() for s in nats_cluster.servers) == 2


def test_a_killed_server_restarts_on_its_store(nats_cluster: NatsCluster) -> None:
    nats_cluster.kill(2)
    assert not nats_cluster.server(2).alive()
    nats_cluster.restart(2)
    assert nats_cluster.server(2).alive() and nats_cluster.server(2).meta_leader() is not None
