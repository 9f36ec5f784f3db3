"""A deposed leader with several records in flight must not get any of them acknowledged.

Found while building the history check (issue 19): ``Nats-Expected-Last-Sequence: offset
- 1`` fences a deposed leader's *first* append after the new leader's epoch-start record,
but not its second. With records 2 and 3 pipelined, 2 (expecting 1) is refused because
the epoch record took offset 2, and 3 (expecting 2) is then stored: the stream's last
sequence *is* 2. The old leader's ack for 3 acknowledges 2 as well (acks are cumulative),
so a transaction the stream does not hold is reported committed, and record 3 does not
chain onto the epoch record, which breaks every node's catch-up after it.

The fix needs a check on the predecessor's identity, not only its position (for example a
subject per leader epoch with ``Nats-Expected-Last-Subject-Sequence``); until then this
test is an expected failure, and it fails loudly (strict) once the fence holds.
"""

from __future__ import annotations

import pytest

from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.jetstream_log import JetStreamLog, log_subject, message_id
from cosmictron.errors import DurabilityError
from cosmictron.testing.nats import NatsCluster


@pytest.mark.xfail(
    strict=True,
    reason="position-only fencing: a deposed leader's second in-flight record is stored "
    "(tests/cluster/test_fencing_pipelined.py docstring)",
)
def test_a_deposed_leaders_pipelined_records_are_all_refused(nats_cluster: NatsCluster) -> None:
    old_node = NatsConnection(nats_cluster.urls, "old").connect()
    new_node = NatsConnection(nats_cluster.urls, "new").connect()
    old = JetStreamLog(old_node, "x", unavailable_after_s=5.0)
    try:
        old.start(0, b"")
        old.publish(1, b"record 1")
        old.wait_acked(1)

        async def epoch_record() -> int:
            headers = {
                "Nats-Msg-Id": message_id(2, b"epoch 2"),
                "Nats-Expected-Last-Sequence": "1",
            }
            ack = await new_node.js.publish(log_subject("x"), b"epoch 2", headers=headers)
            return int(ack.seq)

        assert new_node.run(epoch_record(), 10.0) == 2  # the new leader fenced at 2
        old.publish(2, b"old 2")  # the old leader, unaware, pipelines two more
        old.publish(3, b"old 3")
        outcomes = []
        for offset in (2, 3):
            try:
                old.wait_acked(offset)
                outcomes.append("acknowledged")
            except DurabilityError:
                outcomes.append("refused")
        assert outcomes == ["refused", "refused"]
    finally:
        old.close()
        old_node.close()
        new_node.close()
