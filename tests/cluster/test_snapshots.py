"""Snapshots in the JetStream object store, joining from one, and trimming the stream.

Against a real three-server JetStream cluster: a leader ships a snapshot and trims its
stream below it; a node with an empty directory starts from the snapshot and copies only
the records after it, ending with the leader's state; with the ledger on the stream is not
trimmed and a new node copies (and verifies) the whole history. With real processes: a new
node joins after the leader is gone and the stream was trimmed, and serves the database.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from pathlib import Path

import pytest

import cosmictron
from cosmictron.cluster.catchup import catch_up, diverged, set_aside
from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.leadership import take_lead
from cosmictron.cluster.lease import Lease
from cosmictron.cluster.snapshots import SnapshotShipper, shipped_offsets, stream_bounds
from cosmictron.durability import DurabilityConfig
from cosmictron.durability.segment import list_segments
from cosmictron.durability.storage import FILE_STORAGE
from cosmictron.errors import DurabilityError
from cosmictron.ledger import verify
from cosmictron.testing.nats import NatsCluster
from tests.cluster.test_nodes import MODULE, ids
from tests.host.counted_module import COUNTED_MODULE
from tests.server.conftest import Server, start_server, stop_server

BALANCED = DurabilityConfig.from_profile("balanced")
SIGNED = dataclasses.replace(BALANCED, signing="checkpoint")


def items(db: cosmictron.Database) -> set[int]:
    return {row[0] for row in db.sql("SELECT id FROM item")}


def first_segment(data_dir: Path) -> int:
    return list_segments(FILE_STORAGE, str(data_dir / "log"))[0][0]


def lead(
    connection: NatsConnection, tmp_path: Path, durability: DurabilityConfig
) -> cosmictron.Database:
    module = tmp_path / "module.py"
    module.write_text(COUNTED_MODULE)
    lease = Lease(connection, "app", "a", ttl_s=0.5)
    assert lease.try_acquire()
    return take_lead(connection, lease, tmp_path / "a", str(module), durability)


def test_a_new_node_starts_from_the_shipped_snapshot_of_a_trimmed_stream(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a = NatsConnection(nats_cluster.urls, "a").connect()
    b = NatsConnection(nats_cluster.urls, "b").connect()
    try:
        db = lead(a, tmp_path, BALANCED)
        shipper = SnapshotShipper(a, every_records=0)
        shipper.take = lambda _name: db.snapshot()
        for n in range(40):
            db.call("append", n)
        shipped = shipper.ship_now("app", tmp_path / "a", ledger_on=False)
        assert shipped == db.tx_offset
        assert shipped_offsets(a, "app") == [shipped]
        assert stream_bounds(a, "app") == (shipped, shipped)  # trimmed below it
        for n in range(40, 50):
            db.call("append", n)
        last = db.tx_offset
        copied, end = catch_up(b, tmp_path / "b", "app", BALANCED)
        assert (copied, end) == (last - shipped, last)  # only the records after it
        assert first_segment(tmp_path / "b") == shipped + 1
        db.close()
        # As a new leader opens it: with the catalogue's module (the snapshot holds the
        # module's source, but the directory has no module file before its first open).
        copy = cosmictron.Database.open(
            tmp_path / "b", str(tmp_path / "module.py"), durability=BALANCED
        )
        try:
            assert items(copy) == set(range(50))
            assert copy.tx_offset == last
        finally:
            copy.close()
    finally:
        a.close()
        b.close()


def test_with_the_ledger_on_the_stream_keeps_every_record_and_copies_verify(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a = NatsConnection(nats_cluster.urls, "a").connect()
    b = NatsConnection(nats_cluster.urls, "b").connect()
    try:
        db = lead(a, tmp_path, SIGNED)
        shipper = SnapshotShipper(a, every_records=0)
        shipper.take = lambda _name: db.snapshot()
        for n in range(30):
            db.call("append", n)
        shipped = shipper.ship_now("app", tmp_path / "a", ledger_on=True)
        assert shipped is not None and shipped_offsets(a, "app") == [shipped]
        first, last = stream_bounds(a, "app")
        assert first == 1 and last >= shipped  # not trimmed: the ledger proves from record 1
        db.close()
        copied, _ = catch_up(b, tmp_path / "b", "app", SIGNED)
        assert first_segment(tmp_path / "b") == 1 and copied == stream_bounds(a, "app")[1]
    finally:
        a.close()
        b.close()
    result = verify(tmp_path / "b")
    assert result.ok and result.checkpoints >= 1, (result.code, result.detail)


def test_a_fourth_node_joins_a_trimmed_cluster_and_serves_from_the_snapshot(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    env = {"COSMICTRON_CLUSTER_SNAPSHOT_RECORDS": "20"}

    def node(name: str) -> Server:
        return start_server(
            tmp_path / name, "--profile", "development", "--cluster", nats_cluster.url,
            "--node-id", name, env=env,
        )  # fmt: skip

    a, b, c = node("a"), node("b"), node("c")
    d = None
    watcher = NatsConnection(nats_cluster.urls, "test").connect()
    try:
        _, operator = a.operator()
        assert a.deploy("app", MODULE, operator).status in (200, 201)
        for n in range(60):
            assert a.request("POST", "/v1/database/app/call/add", [n], operator).status == 200
        started = time.monotonic()
        while stream_bounds(watcher, "app")[0] <= 20:  # the leader ships and trims each second
            assert time.monotonic() - started < 30, stream_bounds(watcher, "app")
            time.sleep(0.2)
        for other in (b, c):  # the standbys leave: only a new node can take over
            stop_server(other)
        a.process.send_signal(signal.SIGKILL)
        a.process.communicate(timeout=30)
        d = node("d")
        joined = time.monotonic()
        while d.request("POST", "/v1/database/app/call/add", [1000], operator).status != 200:
            assert time.monotonic() - joined < 30, "d never took the database over"
            time.sleep(0.2)
        assert ids(d) == [*range(60), 1000]
        first, _ = stream_bounds(watcher, "app")
        start = first_segment(tmp_path / "d" / "databases" / "app")
        # it never saw record 1: its log starts right after the snapshot, which the stream's
        # first record (kept: the trim keeps the snapshot's own record) may be
        assert start > 20 and start <= first + 1, (start, first)
    finally:
        watcher.close()
        for server in (a, b, c, d):
            if server is not None and server.process.poll() is None:
                stop_server(server)


def test_a_node_whose_log_ends_before_the_trimmed_stream_starts_over_from_the_snapshot(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a = NatsConnection(nats_cluster.urls, "a").connect()
    b = NatsConnection(nats_cluster.urls, "b").connect()
    try:
        db = lead(a, tmp_path, BALANCED)
        shipper = SnapshotShipper(a, every_records=0)
        shipper.take = lambda _name: db.snapshot()
        for n in range(10):
            db.call("append", n)
        _, behind = catch_up(b, tmp_path / "b", "app", BALANCED)  # b copies, then stops
        for n in range(10, 30):
            db.call("append", n)
        shipped = shipper.ship_now("app", tmp_path / "a", ledger_on=False)
        assert shipped is not None and shipped > behind + 1
        with pytest.raises(DurabilityError) as refused:
            catch_up(b, tmp_path / "b", "app", BALANCED)
        assert diverged(refused.value) and "trimmed" in str(refused.value)
        set_aside(tmp_path / "b")  # as take_lead does with a diverged log
        copied, end = catch_up(b, tmp_path / "b", "app", BALANCED)
        assert end == db.tx_offset and copied == end - shipped
        assert first_segment(tmp_path / "b") == shipped + 1
        db.close()
    finally:
        a.close()
        b.close()
