"""Snapshots in the JetStream object store, joining from one, and trimming the stream.

Against a real three-server JetStream cluster: a leader ships a snapshot and trims its
stream below it; a node with an empty directory starts from the snapshot and copies only
the records after it, ending with the leader's state; with the ledger on the stream is not
trimmed only below what the leader archived: a new node joins from the snapshot, checks and
proves from the ledger state it carries, leads, and its log verifies. With real processes: a new
node joins after the leader is gone and the stream was trimmed, and serves the database.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import time
from pathlib import Path

import pytest

import cosmictron
from cosmictron.cluster.catchup import catch_up, diverged, set_aside
from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.leadership import take_lead
from cosmictron.cluster.lease import Lease
from cosmictron.cluster.snapshots import (
    SnapshotShipper,
    ledger_trim_point,
    shipped_offsets,
    stream_bounds,
)
from cosmictron.durability import DurabilityConfig
from cosmictron.durability.ledger_writer import open_tree
from cosmictron.durability.segment import list_segments
from cosmictron.durability.storage import FILE_STORAGE
from cosmictron.errors import DurabilityError
from cosmictron.ledger import verify
from cosmictron.ledger.archived import ArchivedRange, read_archived, write_archived
from cosmictron.ledger.bundle import export_bundle, verify_bundle
from cosmictron.ledger.checkpoint import Checkpoint
from cosmictron.ledger.errors import ProofUnavailable
from cosmictron.ledger.logread import LogReader
from cosmictron.ledger.merkle import leaf_hash, verify_inclusion
from cosmictron.ledger.verifier import read_side_checkpoints
from cosmictron.testing.nats import NatsCluster
from tests.cluster.test_nodes import MODULE, ids
from tests.host.counted_module import COUNTED_MODULE
from tests.server.conftest import Server, start_server, stop_server

BALANCED = DurabilityConfig.from_profile("balanced")
SIGNED = dataclasses.replace(BALANCED, signing="checkpoint")
ARCHIVING = dataclasses.replace(
    SIGNED, checkpoint_interval_records=7, log_retention="archive", segment_bytes_max=2048
)


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


def lead_and_ship(
    connection: NatsConnection, tmp_path: Path, durability: DurabilityConfig
) -> tuple[cosmictron.Database, SnapshotShipper]:
    """Lead ``app`` as node a, with a shipper that snapshots it on demand only."""
    db = lead(connection, tmp_path, durability)
    shipper = SnapshotShipper(connection, every_records=0)
    shipper.take = lambda _name: db.snapshot()
    return db, shipper


def test_a_new_node_starts_from_the_shipped_snapshot_of_a_trimmed_stream(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a = NatsConnection(nats_cluster.urls, "a").connect()
    b = NatsConnection(nats_cluster.urls, "b").connect()
    try:
        db, shipper = lead_and_ship(a, tmp_path, BALANCED)
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


def test_with_the_ledger_on_the_stream_keeps_every_record_no_node_archived(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a = NatsConnection(nats_cluster.urls, "a").connect()
    b = NatsConnection(nats_cluster.urls, "b").connect()
    try:
        db, shipper = lead_and_ship(a, tmp_path, SIGNED)
        for n in range(30):
            db.call("append", n)
        shipped = shipper.ship_now("app", tmp_path / "a", ledger_on=True)
        assert shipped is not None and shipped_offsets(a, "app") == [shipped]
        first, last = stream_bounds(a, "app")
        assert first == 1 and last >= shipped  # nothing archived: the stream is the copy
        db.close()
        copied, _ = catch_up(b, tmp_path / "b", "app", SIGNED)
        # an untrimmed stream is copied whole: the new node proves every record
        assert first_segment(tmp_path / "b") == 1 and copied == stream_bounds(a, "app")[1]
    finally:
        a.close()
        b.close()
    result = verify(tmp_path / "b")
    assert result.ok and result.checkpoints >= 1, (result.code, result.detail)
    assert result.joined_at == 0


def test_with_the_ledger_on_a_node_joins_from_the_snapshot_of_a_trimmed_stream_and_leads(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a = NatsConnection(nats_cluster.urls, "a").connect()
    b = NatsConnection(nats_cluster.urls, "b").connect()
    new = None
    try:
        db, shipper = lead_and_ship(a, tmp_path, ARCHIVING)
        for n in range(60):
            db.call("append", n)
        db.snapshot()  # archives the segments below it and the side file's last checkpoint
        for n in range(60, 70):
            db.call("append", n)
        shipped = shipper.ship_now("app", tmp_path / "a", ledger_on=True)
        assert shipped is not None
        archived = read_archived(str(tmp_path / "a"))
        assert archived is not None and 1 < archived.through < shipped
        first, _ = stream_bounds(a, "app")
        # trimmed, but only below what the leader archived (still provable there)
        assert first == archived.through + 1, (first, archived.through, shipped)
        leader_tree = open_tree(str(tmp_path / "a" / "ledger"), archived)
        try:
            assert leader_tree.inclusion_proof(0, leader_tree.size)  # archived: still proved
        finally:
            leader_tree.store.close()  # type: ignore[attr-defined]
        for n in range(70, 90):
            db.call("append", n)
        db.close()
        copied, end = catch_up(b, tmp_path / "b", "app", ARCHIVING)
        assert first_segment(tmp_path / "b") == shipped + 1 and copied == end - shipped
        # b leads now and goes on writing: its own key, records and checkpoints
        lease = Lease(b, "app", "b", ttl_s=0.5)
        assert not lease.try_acquire()  # seen held: taken over once a TTL passes unrenewed
        time.sleep(0.6)
        assert lease.try_acquire()
        new = take_lead(b, lease, tmp_path / "b", str(tmp_path / "module.py"), ARCHIVING)
        assert items(new) == set(range(90))
        for n in range(100, 130):
            new.call("append", n)
        new.close()
        new = None
        catch_up(a, tmp_path / "a", "app", ARCHIVING)  # the old leader follows b
    finally:
        if new is not None:
            new.close()
        a.close()
        b.close()
    result = verify(tmp_path / "b")
    assert result.ok, (result.code, result.detail)
    assert result.joined_at == shipped and result.checkpoints >= 3
    assert f"snapshot at {shipped}" in result.lines()[0]
    assert verify(tmp_path / "a").ok
    export_bundle(tmp_path / "b", tmp_path / "bundle", None)
    assert verify_bundle(tmp_path / "bundle").ok
    readme = (tmp_path / "bundle" / "README.md").read_text()
    assert f"joined the database from a snapshot at record {shipped}" in readme
    trees = {
        node: open_tree(str(tmp_path / node / "ledger"), read_archived(str(tmp_path / node)))
        for node in ("a", "b")
    }
    try:
        full, joined = trees["a"], trees["b"]
        common = min(full.size, joined.size)  # a leader's tree stops before its last record
        assert common > shipped + 30
        sizes = [int(e["size"]) for e in read_side_checkpoints(str(tmp_path / "b"))]
        assert sizes and min(sizes) > shipped
        for size in sizes:  # the joined node's own tree signs the leader's roots
            assert joined.root(size) == full.root(size)
        assert joined.consistency_proof(shipped, common) == full.consistency_proof(shipped, common)
        note = read_side_checkpoints(str(tmp_path / "b"))[-1]["note"]
        signed_head = Checkpoint.from_text(note.split("\n\n", 1)[0] + "\n")
        seq = shipped + 5
        (payload,) = [r.payload for r in LogReader(str(tmp_path / "b"), seq) if r.seq == seq]
        proof = joined.inclusion_proof(seq - 1, signed_head.size)
        verify_inclusion(
            leaf_hash(payload), seq - 1, signed_head.size, proof, signed_head.root_hash
        )
        with pytest.raises(ProofUnavailable) as below:
            joined.inclusion_proof(1, signed_head.size)
        assert below.value.base == shipped
    finally:
        for tree in trees.values():
            tree.store.close()  # type: ignore[attr-defined]
    # Served over HTTP by a server that opens the joined node's directory.
    served = tmp_path / "served"
    shutil.copytree(tmp_path / "b", served / "databases" / "app")
    server = start_server(served, env={"COSMICTRON_SIGNING": "checkpoint"})
    try:
        after = server.request("GET", f"/v1/database/app/audit/inclusion?seq={seq}")
        assert after.status == 200, after
        verify_inclusion(
            leaf_hash(payload),
            seq - 1,
            after.body["size"],
            [bytes.fromhex(h) for h in after.body["proof"]],
            bytes.fromhex(after.body["root"]),
        )
        below_base = server.request("GET", f"/v1/database/app/audit/inclusion?seq={shipped}")
        assert below_base.status == 404, below_base
        assert below_base.body["error"]["code"] == "proof_unavailable"
        assert f"records up to {shipped}" in below_base.body["error"]["message"]
        old = server.request("GET", f"/v1/database/app/audit/consistency?old={shipped - 1}")
        assert old.status == 404 and old.body["error"]["code"] == "proof_unavailable"
        assert (
            server.request("GET", f"/v1/database/app/audit/consistency?old={shipped}").status == 200
        )
    finally:
        stop_server(server)


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
        db, shipper = lead_and_ship(a, tmp_path, BALANCED)
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


def test_with_the_ledger_on_the_trim_point_never_passes_what_this_node_archived(
    tmp_path: Path,
) -> None:
    """``ledger_trim_point`` from the node's ``ledger/archived.json`` alone (no NATS):
    nothing archived, nothing trimmed; else ``min(S, A + 1)``; a node that joined from a
    snapshot at J trims nothing while the stream still holds records up to J (they are
    in no archive of its own)."""
    (tmp_path / "ledger").mkdir()

    def archived(through: int, joined_at: int = 0) -> None:
        write_archived(
            str(tmp_path),
            ArchivedRange(through, b"\0" * 32, 0, "cosmictron/x", [], [], joined_at),
        )

    assert ledger_trim_point(tmp_path, 100, 1) == 0
    archived(40)
    assert ledger_trim_point(tmp_path, 100, 1) == 41  # below the unarchived range only
    assert ledger_trim_point(tmp_path, 30, 1) == 30  # below the snapshot only
    assert ledger_trim_point(tmp_path, 100, 41) == 0  # already there
    archived(60, joined_at=60)  # joined at 60, archived nothing of its own
    assert ledger_trim_point(tmp_path, 100, 41) == 0
    assert ledger_trim_point(tmp_path, 100, 61) == 0
    archived(80, joined_at=60)  # then archived 61..80 itself
    assert ledger_trim_point(tmp_path, 100, 50) == 0  # 50..60: nowhere on this node
    assert ledger_trim_point(tmp_path, 100, 61) == 81
