"""The ledger on in cluster mode (issue 19, part 3 and issue 13): every node's log verifies.

Two "nodes" (each its own NATS connection and data directory) against a real three-server
JetStream cluster, with signed checkpoints (and, in one test, every record signed). A
leader writes; a second node takes over: it copies the stream, checking each record as
``verify`` would (``LedgerWriter.copied``), adds its own key to the chain and leads; the
old leader is fenced, sets its diverged log aside and copies the new leader's history.
``verify`` passes on both nodes' logs, which name both leaders' keys. A forged record in
the stream is refused by the copy before it is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import msgpack
import pytest

import cosmictron
from cosmictron.cluster.catchup import catch_up, set_aside
from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.jetstream_log import stream_name
from cosmictron.cluster.leadership import take_lead
from cosmictron.cluster.lease import Lease
from cosmictron.durability import DurabilityConfig
from cosmictron.errors import DurabilityError, NotLeader
from cosmictron.ledger import verify
from cosmictron.ledger.record_format import PREV_HASH, SEQ
from cosmictron.testing.nats import NatsCluster
from tests.host.counted_module import COUNTED_MODULE


def signed(mode: str) -> DurabilityConfig:
    return dataclasses.replace(
        DurabilityConfig.from_profile("balanced"), signing=mode, checkpoint_interval_records=7
    )


def items(db: cosmictron.Database) -> set[int]:
    return {row[0] for row in db.sql("SELECT id FROM item")}


@pytest.mark.parametrize("mode", ["checkpoint", "event"])
def test_verify_passes_on_every_nodes_log_after_a_failover(
    tmp_path: Path, nats_cluster: NatsCluster, mode: str
) -> None:
    durability = signed(mode)
    module = tmp_path / "module.py"
    module.write_text(COUNTED_MODULE)
    a = NatsConnection(nats_cluster.urls, "a").connect()
    b = NatsConnection(nats_cluster.urls, "b").connect()
    old = new = None
    try:
        lease_a = Lease(a, "app", "a", ttl_s=0.5)
        assert lease_a.try_acquire()
        old = take_lead(a, lease_a, tmp_path / "a", str(module), durability)
        for n in range(30):
            old.call("append", n)
        lease_b = Lease(b, "app", "b", ttl_s=0.5)
        assert not lease_b.try_acquire()
        time.sleep(0.6)
        assert lease_b.try_acquire()
        new = take_lead(b, lease_b, tmp_path / "b", str(module), durability)
        assert items(new) == set(range(30))
        for n in range(100, 110):
            new.call("append", n)
        with pytest.raises(NotLeader):
            old.call("append", 31)
        old.close()
        old = None
        new.close()
        new = None
        with pytest.raises(DurabilityError):
            catch_up(a, tmp_path / "a", "app", durability)
        set_aside(tmp_path / "a")
        catch_up(a, tmp_path / "a", "app", durability)
    finally:
        for db in (old, new):
            if db is not None:
                db.close()
        a.close()
        b.close()
    results = {node: verify(tmp_path / node) for node in ("a", "b")}
    for node, result in results.items():
        assert result.ok, (node, result.code, result.detail)
        assert result.checkpoints >= 5, (node, result.checkpoints)
        assert len(result.keys) == 2, (node, result.keys)  # each leader's own key
    assert results["a"].records == results["b"].records
    assert results["a"].origin == results["b"].origin
    # The same bytes: a's copy of the log is b's log.
    assert _log_digest(tmp_path / "a") == _log_digest(tmp_path / "b")


def test_a_forged_record_in_the_stream_is_refused_by_the_copy(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    durability = signed("event")
    module = tmp_path / "module.py"
    module.write_text(COUNTED_MODULE)
    a = NatsConnection(nats_cluster.urls, "a").connect()
    b = NatsConnection(nats_cluster.urls, "b").connect()
    try:
        lease_a = Lease(a, "app", "a", ttl_s=0.5)
        assert lease_a.try_acquire()
        db = take_lead(a, lease_a, tmp_path / "a", str(module), durability)
        db.call("append", 1)
        db.close()  # its closing checkpoint is acknowledged before close returns
        # Someone who can publish to the stream (but holds no node's key) replays a record
        # (its body and signature) at the next offset, continuing the hash chain.
        records = _records(tmp_path / "a")
        last = len(records)
        fields = msgpack.unpackb(records[-2], raw=False, strict_map_key=False)
        fields[SEQ] = last + 1
        fields[PREV_HASH] = hashlib.sha256(records[-1]).digest()
        forged = msgpack.packb(fields, use_bin_type=True)

        async def publish() -> None:
            # on the subject the stream takes now: its current term's
            (subject,) = (await a.js.stream_info(stream_name("app"))).config.subjects
            await a.js.publish(subject, forged, headers={"Nats-Expected-Last-Sequence": str(last)})

        a.run(publish(), 10.0)
        with pytest.raises(DurabilityError, match="fails the ledger's check"):
            catch_up(b, tmp_path / "b", "app", durability)
    finally:
        a.close()
        b.close()


def _records(data_dir: Path) -> list[bytes]:
    from cosmictron.ledger.logread import LogReader

    return [record.payload for record in LogReader(str(data_dir), 1)]


def _log_digest(data_dir: Path) -> str:
    digest = hashlib.sha256()
    for payload in _records(data_dir):
        digest.update(payload)
    return digest.hexdigest()


NODE_MODULE = """
from cosmictron import ReducerContext, field, reducer, table


@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True)


@reducer
def add(ctx: ReducerContext, n: int) -> int:
    ctx.db.item.insert(Item(id=n))
    return n
"""


def test_cosmictron_cli_verify_passes_on_every_nodes_log_after_a_failover(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    import signal
    import subprocess

    from tests.server.conftest import CLI, start_server, stop_server

    # The profile in the environment too: a --profile flag would outrank COSMICTRON_SIGNING.
    env = {"COSMICTRON_PERFORMANCE_PROFILE": "development", "COSMICTRON_SIGNING": "checkpoint"}
    a, b = (
        start_server(tmp_path / node, "--cluster", nats_cluster.url, "--node-id", node, env=env)
        for node in ("a", "b")
    )
    try:
        _, operator = a.operator()
        assert a.deploy("app", NODE_MODULE, operator).status in (200, 201)
        for n in range(20):
            assert a.request("POST", "/v1/database/app/call/add", [n], operator).status == 200
            if n == 9:  # a checkpoint is due a second after the last: a writes one, b copies it
                time.sleep(1.2)
        a.process.send_signal(signal.SIGKILL)
        a.process.communicate(timeout=30)
        killed_at = time.monotonic()
        while b.request("POST", "/v1/database/app/call/add", [100], operator).status != 200:
            assert time.monotonic() - killed_at < 30, "b never took over"
            time.sleep(0.2)
        for n in range(101, 120):
            assert b.request("POST", "/v1/database/app/call/add", [n], operator).status == 200
    finally:
        if a.process.poll() is None:
            stop_server(a)
        stop_server(b)
    for node in ("a", "b"):
        result = subprocess.run(
            [CLI, "verify", "--json", str(tmp_path / node / "databases" / "app")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, (node, result.stdout, result.stderr)
        doc = json.loads(result.stdout)
        assert doc["ok"] and doc["checkpoints"] >= 1, (node, doc)
        assert doc["records"] >= (40 if node == "b" else 20), (node, doc)
    assert len(doc["keys"]) == 2, doc  # b's log: a's key, then b's own
