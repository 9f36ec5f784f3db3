"""``ctx.call_remote`` through a real three-server NATS JetStream cluster.

The relay's ``NatsTransport`` publishes each outbox entry to the target's inbox stream
(``Nats-Msg-Id`` = source:seq) and an ``InboxConsumer`` applies the stream to the target
database with the inbox high-water mark. Both databases are embedded in this process
(the node model that places them on different nodes is cluster-log's); the stream, the
dedupe and the consumer are the real ones.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgpack

from cosmictron import Database, DurabilityConfig
from cosmictron.host import RemoteRelay
from cosmictron.host.remote import source_key
from cosmictron.testing.nats import NatsCluster
from tests.crash_harness import BILLING as CRASH_BILLING
from tests.crash_harness import ORDERS as CRASH_ORDERS
from tests.crash_harness import sigkill, spawn_python
from tests.host.test_remote_calls import BILLING, ORDERS, charges

FAST = DurabilityConfig.from_profile("development")


def wait_until(check, timeout_s: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_calls_cross_the_inbox_stream_exactly_once(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    from cosmictron.host.remote_nats import (
        InboxConsumer,
        NatsTransport,
        inbox_subject,
    )

    (tmp_path / "orders.py").write_text(ORDERS)
    (tmp_path / "billing.py").write_text(BILLING)
    orders = Database.open(tmp_path / "orders", tmp_path / "orders.py", durability=FAST)
    billing = Database.open(tmp_path / "billing", tmp_path / "billing.py", durability=FAST)
    urls = [server.url for server in nats_cluster.servers]
    transport = NatsTransport(urls)
    relay = RemoteRelay(transport=transport)
    consumer = InboxConsumer(urls, "billing", billing.core)
    try:
        relay.add("orders", orders)
        for item in ("apple", "pear", "plum"):
            orders.call("place", item)
        assert relay.drain(30)
        assert orders.remote_calls() == []  # settled once the stream stored them
        assert wait_until(lambda: len(charges(billing)) == 3)
        owner = str(orders.owner)
        assert charges(billing) == [(1, "apple", owner), (2, "pear", owner), (3, "plum", owner)]
        source = source_key(orders.core)
        assert billing.core.remote.applied_up_to(source) == 3

        # A blind retry of entry 2 (the relay after a crash): JetStream drops it.
        async def republish(msg_id: str) -> object:
            payload = msgpack.packb([source, orders.owner.data, 2, "charge", [2, "pear"]])
            return await transport._js.publish(
                inbox_subject("billing"), payload, headers={"Nats-Msg-Id": msg_id}
            )

        ack = transport._loop.run(republish(f"{source}:2"), 10)
        assert ack.duplicate is True
        # Past the dedupe window (a new message id): the consumer's mark skips it.
        ack = transport._loop.run(republish(f"{source}:2:late"), 10)
        assert not ack.duplicate
        assert wait_until(lambda: consumer.skipped == 1)
        assert len(charges(billing)) == 3
        assert consumer.applied == 3
    finally:
        relay.close()
        consumer.close()
        transport.close()
        orders.close()
        billing.close()


CONSUMER = Path(__file__).with_name("inbox_crash_consumer.py")


def start_consumer(tmp_path: Path, urls: list[str], *die_at: int) -> subprocess.Popen[str]:
    process = spawn_python(
        CONSUMER,
        str(tmp_path / "billing"),
        str(tmp_path / "billing.py"),
        ",".join(urls),
        *map(str, die_at),
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready", process.stderr
    return process


def drain_then_kill(consumer: subprocess.Popen[str], transport: Any) -> None:
    """Wait until ``consumer`` has applied and acknowledged the whole billing inbox,
    then SIGKILL it."""
    from cosmictron.host.remote_nats import inbox_stream

    async def unfinished() -> int:
        info = await transport._js.consumer_info(
            inbox_stream("billing"), f"apply_{inbox_stream('billing')}"
        )
        return int(info.num_pending + info.num_ack_pending)

    assert wait_until(lambda: transport._loop.run(unfinished(), 10) == 0, 60)
    sigkill(consumer)


def test_the_inbox_consumer_applies_once_across_sigkills(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    from cosmictron.host.remote_nats import NatsTransport

    (tmp_path / "orders.py").write_text(CRASH_ORDERS)
    (tmp_path / "billing.py").write_text(CRASH_BILLING)
    urls = [server.url for server in nats_cluster.servers]
    orders = Database.open(tmp_path / "orders", tmp_path / "orders.py", durability=FAST)
    transport = NatsTransport(urls)
    relay = RemoteRelay(transport=transport)
    relay.add("orders", orders)
    rng = random.Random(int(os.environ.get("COSMICTRON_CRASH_SEED", "19")))
    item = 0
    try:
        for _ in range(3):
            consumer = start_consumer(tmp_path, urls)
            for _ in range(rng.randint(20, 60)):  # calls keep coming while it is killed
                item += 1
                orders.call("place", item)
                time.sleep(0.01)
            sigkill(consumer)
        assert relay.drain(30)
        drain_then_kill(start_consumer(tmp_path, urls), transport)
    finally:
        relay.close()
        transport.close()
        orders.close()
    billing = Database.open(tmp_path / "billing", durability=FAST)
    try:
        charged = Counter(row.item for row in billing.table("charge").iter())
        assert set(charged) == set(range(1, item + 1))
        assert all(n == 1 for n in charged.values()), {k: n for k, n in charged.items() if n > 1}
    finally:
        billing.close()


def test_a_message_taken_and_not_applied_is_applied_before_later_ones(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    """The consumer dies holding call 5 (taken, not applied): the next consumer must
    apply 5 before 6, or 6 would raise the mark past 5 and 5 would be skipped (lost)."""
    from cosmictron.host.remote_nats import NatsTransport

    (tmp_path / "orders.py").write_text(CRASH_ORDERS)
    (tmp_path / "billing.py").write_text(CRASH_BILLING)
    urls = [server.url for server in nats_cluster.servers]
    orders = Database.open(tmp_path / "orders", tmp_path / "orders.py", durability=FAST)
    transport = NatsTransport(urls)
    relay = RemoteRelay(transport=transport)
    relay.add("orders", orders)
    try:
        for item in range(1, 21):
            orders.call("place", item)
        assert relay.drain(30)
        dying = start_consumer(tmp_path, urls, 5)
        dying.communicate(timeout=60)
        assert dying.returncode == -signal.SIGKILL
        drain_then_kill(start_consumer(tmp_path, urls), transport)
    finally:
        relay.close()
        transport.close()
        orders.close()
    billing = Database.open(tmp_path / "billing", durability=FAST)
    try:
        applied = [row.item for row in billing.table("charge").iter()]
        assert applied == list(range(1, 21))  # each once, in order, 5 included
    finally:
        billing.close()


def test_a_consumer_whose_database_closed_leaves_the_call_to_the_next_one(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    """A node that stops hosting the target (it lost the lead; its database is closed)
    must not give the message up: giving up acks it, and the new leader would never see
    the call. It is redelivered to the next consumer and applied there, once."""
    from cosmictron.host.remote_nats import InboxConsumer, NatsTransport

    (tmp_path / "orders.py").write_text(CRASH_ORDERS)
    (tmp_path / "billing.py").write_text(CRASH_BILLING)
    urls = [server.url for server in nats_cluster.servers]
    orders = Database.open(tmp_path / "orders", tmp_path / "orders.py", durability=FAST)
    billing = Database.open(tmp_path / "billing", tmp_path / "billing.py", durability=FAST)
    transport = NatsTransport(urls)
    relay = RemoteRelay(transport=transport)
    old = InboxConsumer(urls, "billing", billing.core, attempts_max=2, retry_s=0.05)
    billing.close()  # the old leader's database is gone; its consumer still pulls
    new = None
    try:
        relay.add("orders", orders)
        orders.call("place", 7)
        assert relay.drain(30)  # on the stream now: settled at the source
        assert wait_until(lambda: old.left >= 1, 60)  # taken, not applied, handed back
        old.close()
        assert old.applied == 0
        billing = Database.open(tmp_path / "billing", durability=FAST)
        new = InboxConsumer(urls, "billing", billing.core)
        assert wait_until(lambda: new.applied == 1, 60)
        assert [row.item for row in billing.table("charge").iter()] == [7]
    finally:
        relay.close()
        if new is not None:
            new.close()
        old.close()
        transport.close()
        orders.close()
        billing.close()
