"""A deposed leader with several records in flight gets none of them acknowledged.

Found while building the history check (issue 19): ``Nats-Expected-Last-Sequence`` alone
fences a deposed leader's *first* append after the new leader's epoch-start record, but
not its second. With records 2 and 3 pipelined and the epoch record stored at 2, the old 2
(expecting 1) is refused, and the old 3 (expecting 2) fitted: the stream's last sequence
*is* 2. Its ack would have acknowledged a transaction the stream does not hold, and record
3 would not chain onto the epoch record. Each term now publishes on a subject of its own
and expects its predecessor there (``Nats-Expected-Last-Subject-Sequence``), so the old 3
is refused too, and the new leader goes on as if the old one had never spoken.
"""

from __future__ import annotations

import asyncio

import pytest

from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.jetstream_log import JetStreamLog, stream_name
from cosmictron.errors import NotLeader
from cosmictron.testing.nats import NatsCluster


def stream_payloads(cluster: NatsCluster, name: str) -> list[bytes]:
    async def read() -> list[bytes]:
        import nats

        nc = await nats.connect(servers=cluster.urls)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream_name(name))
            return [
                (await js.get_msg(stream_name(name), seq)).data or b""
                for seq in range(1, info.state.last_seq + 1)
            ]
        finally:
            await nc.close()

    return asyncio.run(read())


def test_a_deposed_leaders_pipelined_records_are_all_refused(nats_cluster: NatsCluster) -> None:
    old_node = NatsConnection(nats_cluster.urls, "old").connect()
    new_node = NatsConnection(nats_cluster.urls, "new").connect()
    old = JetStreamLog(old_node, "x", epoch=1, unavailable_after_s=20.0)
    new = JetStreamLog(new_node, "x", epoch=2, unavailable_after_s=20.0)
    try:
        old.start(0, b"")
        old.publish(1, b"record 1")
        old.wait_acked(1)

        new.start(1, b"")
        new.publish(2, b"epoch 2")  # the new leader's epoch-start record fences at 2
        new.wait_acked(2)

        old.publish(2, b"old 2")  # the old leader, unaware, pipelines three more
        old.publish(3, b"old 3")
        old.publish(4, b"old 4")
        for offset in (2, 3, 4):
            with pytest.raises(NotLeader):
                old.wait_acked(offset)
        assert old.acked_offset == 1

        new.publish(3, b"new 3")  # the new leader's term goes on undisturbed
        new.publish(4, b"new 4")
        new.wait_acked(4)
        assert stream_payloads(nats_cluster, "x") == [
            b"record 1",
            b"epoch 2",
            b"new 3",
            b"new 4",
        ]
    finally:
        old.close()
        new.close()
        old_node.close()
        new_node.close()
