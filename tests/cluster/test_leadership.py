"""Part 2 of issue 19 in one process: leases by compare-and-set, catch-up, fencing.

Two "nodes" (each its own NATS connection and data directory) against a real three-server
JetStream cluster: the lease admits one holder; a new leader catches up from the stream,
appends its epoch-start record and serves with every acknowledged transaction of the old
one; the old leader's next append is refused (NotLeader), it sets its diverged log aside,
catches up and holds exactly the new leader's history.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import cosmictron
from cosmictron.cluster.catchup import catch_up, set_aside
from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.jetstream_log import JetStreamLog, stream_name
from cosmictron.cluster.leadership import take_lead
from cosmictron.cluster.lease import Lease
from cosmictron.durability import DurabilityConfig, PersistenceConfig, PersistenceLayer
from cosmictron.errors import ClusterUnavailable, NotLeader
from cosmictron.ledger import verify
from cosmictron.testing.nats import NatsCluster
from tests.host.counted_module import COUNTED_MODULE

DURABILITY = DurabilityConfig.from_profile("balanced")


def items(db: cosmictron.Database) -> set[int]:
    return {row[0] for row in db.sql("SELECT id FROM item")}


def test_the_lease_admits_one_holder_and_moves_only_after_its_ttl(
    nats_cluster: NatsCluster,
) -> None:
    a = NatsConnection(nats_cluster.urls, "a").connect()
    b = NatsConnection(nats_cluster.urls, "b").connect()
    try:
        lease_a = Lease(a, "app", "a", ttl_s=1.0)
        lease_b = Lease(b, "app", "b", ttl_s=1.0)
        assert lease_a.try_acquire() and lease_a.epoch > 0
        assert not lease_b.try_acquire()  # held, and b has not watched it go silent
        assert lease_a.renew()
        assert not lease_b.try_acquire()  # the revision moved: b's watch starts again
        time.sleep(1.2)  # a stops renewing; b watches the same revision for a TTL
        assert lease_b.try_acquire() and lease_b.epoch > lease_a.epoch
        assert lease_b.read().holder == "b"
        assert not lease_a.renew() and lease_a.epoch == 0  # compare-and-set refused
    finally:
        a.close()
        b.close()


def test_an_outage_does_not_count_towards_a_takeover(nats_cluster: NatsCluster) -> None:
    """A contender's watch counts only time in touch with a quorum: after an outage longer
    than the TTL the holder, whose renewals failed too, keeps the lease if it renews
    within a TTL of the quorum's return (CI saw the lease move at random as the quorum
    came back, reopening every copy of the database)."""
    a = NatsConnection(nats_cluster.urls, "a").connect()
    b = NatsConnection(nats_cluster.urls, "b").connect()
    try:
        lease_a = Lease(a, "app", "a", ttl_s=1.0)
        lease_b = Lease(b, "app", "b", ttl_s=1.0)
        assert lease_a.try_acquire() and not lease_b.try_acquire()
        nats_cluster.kill(1)
        nats_cluster.kill(2)  # one of three: no quorum
        deadline = time.monotonic() + 30.0
        while True:  # the bucket's stream answers until its leader steps down
            try:
                lease_b.read()
            except Exception:  # no responders, 503 or a timeout
                break
            assert time.monotonic() < deadline, "the lease bucket kept answering"
            time.sleep(0.2)
        assert b.out_of_touch_at > 0
        time.sleep(1.2)  # longer than the TTL since b began to watch this revision
        nats_cluster.restart(1)
        deadline = time.monotonic() + 30.0
        while True:  # the bucket's stream elects a leader again
            try:
                held = lease_b.read()
                break
            except Exception:
                assert time.monotonic() < deadline, "the lease bucket did not answer again"
                time.sleep(0.2)
        assert held.holder == "a"
        assert not lease_b.try_acquire()  # b was out of touch: its watch starts again
        deadline = time.monotonic() + 30.0
        while True:  # reads are served by any replica; a write waits for the leader
            try:
                assert lease_a.renew()
                break
            except AssertionError:
                raise
            except Exception:
                assert time.monotonic() < deadline, "the lease bucket took no write again"
                time.sleep(0.2)
        assert lease_b.read().holder == "a"
        # In touch, the watch counts again: a holder that stays silent loses the lease.
        assert not lease_b.try_acquire()
        time.sleep(1.2)
        assert lease_b.try_acquire() and lease_b.read().holder == "b"
    finally:
        a.close()
        b.close()


def test_a_renewal_whose_reply_was_lost_keeps_the_lease(nats_cluster: NatsCluster) -> None:
    """A renewal can land while its caller stopped waiting (a timeout as the quorum comes
    back); the next compare-and-set then finds the key moved, but to the holder's own
    value: the holder keeps the lease instead of dropping its database and taking it
    again (which closed every client of it)."""
    a = NatsConnection(nats_cluster.urls, "a").connect()
    b = NatsConnection(nats_cluster.urls, "b").connect()
    try:
        lease = Lease(a, "app", "a", ttl_s=1.0)
        assert lease.try_acquire()
        epoch, revision = lease.epoch, lease.revision
        landed = Lease(a, "app", "a", ttl_s=1.0)  # the same node's write, reply unseen
        assert landed.try_acquire() and landed.revision > revision
        assert lease.renew() and lease.epoch == epoch and lease.revision > landed.revision
        # Moved by another node, the key is lost as before.
        contender = Lease(b, "app", "b", ttl_s=1.0)
        assert not contender.try_acquire()
        time.sleep(1.2)
        assert contender.try_acquire()
        assert not lease.renew() and lease.epoch == 0
    finally:
        a.close()
        b.close()


def test_a_new_leader_catches_up_fences_the_old_one_and_serves(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    module = tmp_path / "module.py"
    module.write_text(COUNTED_MODULE)
    a = NatsConnection(nats_cluster.urls, "a").connect()
    b = NatsConnection(nats_cluster.urls, "b").connect()
    old = new = None
    try:
        lease_a = Lease(a, "app", "a", ttl_s=0.5)
        assert lease_a.try_acquire()
        old = take_lead(a, lease_a, tmp_path / "a", str(module), DURABILITY)
        for n in range(30):
            old.call("append", n)
        # a goes silent (a pause, a partition): b takes the lease after its TTL, catches up
        # from the stream into its own empty directory, and fences a with its epoch record.
        lease_b = Lease(b, "app", "b", ttl_s=0.5)
        assert not lease_b.try_acquire()
        time.sleep(0.6)
        assert lease_b.try_acquire()
        new = take_lead(b, lease_b, tmp_path / "b", str(module), DURABILITY)
        assert items(new) == set(range(30))
        new.call("append", 100)
        # a wakes up believing it leads: its append is refused, never acknowledged.
        with pytest.raises(NotLeader):
            old.call("append", 31)
        with pytest.raises(NotLeader):
            old.call("append", 32)
        old.close()
        old = None
        # a rejoins: its log has a record the stream never stored (31), so it diverged;
        # it sets its log aside and rebuilds from the stream.
        with pytest.raises(cosmictron.errors.DurabilityError):
            catch_up(a, tmp_path / "a", "app", DURABILITY)
        aside = set_aside(tmp_path / "a")
        assert (aside / "log").exists()
        copied, last = catch_up(a, tmp_path / "a", "app", DURABILITY)
        assert last == new.tx_offset and copied == last
        follower = cosmictron.Database.open(tmp_path / "a", durability=DURABILITY)
        try:
            assert items(follower) == set(range(30)) | {100}
        finally:
            follower.close()
    finally:
        for db in (old, new):
            if db is not None:
                db.close()
        a.close()
        b.close()
    assert verify(tmp_path / "a").ok and verify(tmp_path / "b").ok


def test_a_log_that_does_not_continue_the_stream_is_refused_at_open(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    module = tmp_path / "module.py"
    module.write_text(COUNTED_MODULE)
    a = NatsConnection(nats_cluster.urls, "a").connect()
    try:
        local = cosmictron.Database.open(tmp_path / "x", str(module), durability=DURABILITY)
        local.call("append", 1)
        local.close()
        with pytest.raises(cosmictron.errors.DurabilityError, match="ends at 0 but the local"):
            cosmictron.Database.open(
                tmp_path / "x", durability=DURABILITY, replicator=JetStreamLog(a, "x")
            )
    finally:
        a.close()


def test_a_catch_up_refuses_a_stream_with_a_hole_and_copies_none_of_it(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    module = tmp_path / "module.py"
    module.write_text(COUNTED_MODULE)
    a = NatsConnection(nats_cluster.urls, "a").connect()
    b = NatsConnection(nats_cluster.urls, "b").connect()
    leader = None
    try:
        lease = Lease(a, "app", "a", ttl_s=5.0)
        assert lease.try_acquire()
        leader = take_lead(a, lease, tmp_path / "a", str(module), DURABILITY)
        for n in range(20):
            leader.call("append", n)
        last = leader.tx_offset
        # A record missing mid-stream (deleted by hand: nothing of ours deletes one) must
        # not be skipped by the batched read, whose records carry their own sequences.
        a.run(a.js.delete_msg(stream_name("app"), 7), 10.0)
        with pytest.raises(ClusterUnavailable, match="skipped from 6 to 8"):
            catch_up(b, tmp_path / "b", "app", DURABILITY)
        persistence = PersistenceLayer(
            PersistenceConfig(data_dir=str(tmp_path / "b")), DURABILITY, replica=True
        )
        try:
            for _ in persistence.recover().records:
                pass
            assert persistence.next_offset == 1  # nothing appended from a partial read
        finally:
            persistence.close()
        assert last > 8
    finally:
        if leader is not None:
            leader.close()
        a.close()
        b.close()
