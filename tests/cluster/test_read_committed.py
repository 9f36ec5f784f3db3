"""A leader's SQL read never returns a transaction JetStream has not acknowledged.

Found by the history check's soak run (seed 7: a read on the leader returned a value that
was never committed). The leader applies a transaction to its tables before JetStream
acknowledges its record; a reader's snapshot then holds it, and if the leader is deposed
before the ack, that value never commits. Here JetStream is frozen (every server
SIGSTOPped) while a call waits for its ack: a read of the same table (a scan, a primary-
key lookup, the PostgreSQL port's streamed scan) must not show the call's row; it fails
with ``cluster_unavailable`` instead. Once JetStream is back, both complete and the row is
committed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import cosmictron
from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.jetstream_log import JetStreamLog
from cosmictron.durability import DurabilityConfig
from cosmictron.errors import ClusterUnavailable
from cosmictron.host.sql import select_batches
from cosmictron.query.budget import QueryBudget
from cosmictron.testing.nats import NatsCluster
from tests.cluster.test_history import MODULE

SCAN = "SELECT value FROM item"


def test_a_read_waits_for_what_it_saw_to_be_acknowledged(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    module = tmp_path / "app.py"
    module.write_text(MODULE)
    connection = NatsConnection(nats_cluster.urls, "leader").connect()
    log = JetStreamLog(connection, "app", unavailable_after_s=2.0, ack_timeout_s=1.0)
    db = cosmictron.Database.open(
        tmp_path / "db", str(module), durability=DurabilityConfig.from_profile("balanced"),
        replicator=log,
    )  # fmt: skip
    frozen = False
    try:
        db.call("add", 1)
        assert db.sql(SCAN).rows == [(1,)]  # in the statement cache: the scan can stream
        before = db.core.offset
        for index in range(len(nats_cluster.servers)):
            nats_cluster.stop(index)
        frozen = True
        outcome: list[object] = []
        call = threading.Thread(target=lambda: outcome.append(_call(db, 2)))
        call.start()
        deadline = time.monotonic() + 10
        while db.core.offset == before and time.monotonic() < deadline:  # applied, not acked
            time.sleep(0.01)
        assert db.core.offset == before + 1
        with pytest.raises(ClusterUnavailable):
            rows = db.sql("SELECT value FROM item")
            pytest.fail(f"the read returned {rows.rows} before the ack of value 2")
        with pytest.raises(ClusterUnavailable):  # a primary-key lookup's own fast path
            rows = db.sql("SELECT value FROM item WHERE id = 2")
            pytest.fail(f"the lookup returned {rows.rows} before the ack of value 2")
        with pytest.raises(ClusterUnavailable):  # the PostgreSQL port's streamed scan
            streamed = select_batches(db.core, SCAN, None, db.owner, QueryBudget(), 100)
            pytest.fail(f"the scan returned {streamed} before the ack of value 2")
        for index in range(len(nats_cluster.servers)):
            nats_cluster.cont(index)
        frozen = False
        call.join(60)
        deadline = time.monotonic() + 30
        while True:  # the record stays queued and is stored once JetStream is back
            try:
                values = sorted(row[0] for row in db.sql("SELECT value FROM item").rows)
                break
            except ClusterUnavailable:
                assert time.monotonic() < deadline
        assert values == [1, 2], (values, outcome)
    finally:
        if frozen:
            for index in range(len(nats_cluster.servers)):
                nats_cluster.cont(index)
        db.close()
        connection.close()


def _call(db: cosmictron.Database, value: int) -> object:
    try:
        return db.call("add", value)
    except ClusterUnavailable as exc:  # the caller's wait ended; the record stays queued
        return exc
