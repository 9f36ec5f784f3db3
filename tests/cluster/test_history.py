"""A Jepsen-style history check of cluster mode: clients on every node, faults, then a verdict.

Three NATS servers and three Cosmictron nodes (``cosmictron-cli start --cluster``). Two
clients per node write unique values (``add(value)`` appends a row) and read them all
back (``SELECT value FROM item``), while a nemesis, seeded, does one fault at a time:
SIGKILL of a Cosmictron node (restarted on the same data directory), SIGSTOP of one
(SIGCONT later: a paused machine that still believes it leads), SIGKILL of a NATS server
(restarted on its store). A client sends to its own node and follows ``503 not_leader``
to the leader it names (``testing.cluster_nodes.LeaderClient``); once followers forward
and serve reads, it is answered where it asked. Every operation's invocation and result
goes into a :class:`~cosmictron.testing.history.History`.

Afterwards everything is healed, the nodes stopped, and the checker compares the history
with the database's stream (the committed log) and each node's local log: every
acknowledged write present exactly once, no read of a value never committed, every node's
log the same record at the same offset up to any unacknowledged tail it was deposed with.

The CI run is short with a fixed seed (``FAULTS_S``); ``scripts/soak`` runs the long one
(``COSMICTRON_HISTORY_SEED`` replays a soak failure's seed).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cosmictron.testing.cluster_nodes import ClusterNodes, LeaderClient, http_json
from cosmictron.testing.history import (
    History,
    check,
    read_local_log,
    records_from_payloads,
    reducer_values,
)
from cosmictron.testing.nats import NatsCluster

MODULE = """
from cosmictron import ReducerContext, field, reducer, table


@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True, auto_inc=True)
    value: int = 0


@reducer
def add(ctx: ReducerContext, value: int) -> int:
    ctx.db.item.insert(Item(value=value))
    return value
"""

NODES = ["a", "b", "c"]
CLIENTS_PER_NODE = 2
FAULTS_S = 25.0
"""The CI run's time under faults (fixed seed); the soak run's is ``SOAK_FAULTS_S``."""
SOAK_FAULTS_S = 240.0
VALUES = reducer_values("add")


class Run:
    """One run: the processes, the clients, the nemesis, the history."""

    def __init__(self, tmp_path: Path, nats: NatsCluster, seed: int) -> None:
        self.nats = nats
        self.nodes = ClusterNodes(tmp_path / "nodes", nats.url, NODES)
        self.rng = random.Random(seed)
        self.history = History()
        self.stop = threading.Event()
        self.faults: list[str] = []
        self.leader = "a"
        self.client: LeaderClient | None = None

    def setup(self) -> None:
        self.nodes.start_all()
        tokens = {}
        for node_id in NODES:
            status, body = http_json(self.nodes.url(node_id), "POST", "/v1/identity", timeout=30)
            assert status == 200, body
            tokens[node_id] = body["token"]
        status, body = http_json(
            self.nodes.url("a"), "PUT", "/v1/database/app", None,
            self.nodes.operator_token("a"), timeout=60, raw=MODULE.encode(),
        )  # fmt: skip
        assert status in (200, 201), body
        self.client = LeaderClient(self.nodes, tokens, rng=random.Random(self.rng.random()))

    # -- clients ------------------------------------------------------------------------

    def write(self, process: int, node: str, value: int) -> str:
        assert self.client is not None
        op = self.history.invoke(process, "write", node, value)
        answer = self.client.request(node, "POST", "/v1/database/app/call/add", [value])
        offset = answer.body.get("tx_offset") if answer.outcome == "ok" else None
        self.history.complete(
            op, answer.outcome, offset=offset, served_by=answer.node, error=answer.error
        )
        if answer.outcome == "ok":
            self.leader = answer.node
        return answer.outcome

    def read(self, process: int, node: str) -> None:
        assert self.client is not None
        op = self.history.invoke(process, "read", node)
        answer = self.client.request(
            node, "POST", "/v1/database/app/sql", {"query": "SELECT value FROM item"}
        )
        if answer.outcome != "ok":  # a read has no effect: unknown is failed
            self.history.complete(op, "fail", served_by=answer.node, error=answer.error)
            return
        self.history.complete(
            op,
            "ok",
            read=[row["value"] for row in answer.body["rows"]],
            offset=answer.body.get("tx_offset"),
            served_by=answer.node,
        )

    def client_loop(self, process: int, node: str, seed: float) -> None:
        rng = random.Random(seed)
        for n in itertools.count():
            if self.stop.is_set():
                return
            if rng.random() < 0.75:
                self.write(process, node, process * 1_000_000 + n)
            else:
                self.read(process, node)

    # -- the nemesis ----------------------------------------------------------------------

    def nemesis(self, duration: float) -> None:
        until = time.monotonic() + duration
        while time.monotonic() < until:
            time.sleep(self.rng.uniform(1.0, 3.0))
            fault = self.rng.choice(["kill-node", "freeze-node", "kill-nats"])
            # Half the node faults hit the leader: that is where failover is tested.
            victim = self.leader if self.rng.random() < 0.5 else self.rng.choice(NODES)
            hold = self.rng.uniform(1.0, 5.0)
            if fault == "kill-nats":
                server = self.rng.randrange(len(self.nats.servers))
                self.faults.append(f"kill nats n{server} for {hold:.1f}s")
                self.nats.kill(server)
                time.sleep(hold)
                self.nats.restart(server)
            elif fault == "kill-node":
                self.faults.append(f"kill {victim} for {hold:.1f}s")
                self.nodes.kill(victim)
                time.sleep(hold)
                self.nodes.start(victim)
            else:
                self.faults.append(f"freeze {victim} for {hold:.1f}s")
                self.nodes.freeze(victim)
                time.sleep(hold)
                self.nodes.thaw(victim)

    def heal(self) -> None:
        for node_id in NODES:
            self.nodes.thaw(node_id)
            if not self.nodes.nodes[node_id].alive():
                self.nodes.start(node_id)
        for index, server in enumerate(self.nats.servers):
            if not server.alive():
                self.nats.restart(index)

    # -- the end --------------------------------------------------------------------------

    def committed_log(self) -> list[Any]:
        import nats

        from cosmictron.cluster.jetstream_log import stream_name

        async def fetch() -> list[tuple[int, bytes]]:
            nc = await nats.connect(servers=self.nats.urls, connect_timeout=5)
            try:
                js = nc.jetstream(timeout=10)
                info = await js.stream_info(stream_name("app"))
                out = []
                for seq in range(1, int(info.state.last_seq) + 1):
                    msg = await js.get_msg(stream_name("app"), seq, direct=True)
                    out.append((seq, bytes(msg.data or b"")))
                return out
            finally:
                await nc.close()

        return records_from_payloads(asyncio.run(fetch()), VALUES)


def run_history(tmp_path: Path, nats: NatsCluster, seed: int, faults_s: float) -> None:
    run = Run(tmp_path, nats, seed)
    threads: list[threading.Thread] = []
    try:
        run.setup()
        for i, node in enumerate(n for n in NODES for _ in range(CLIENTS_PER_NODE)):
            thread = threading.Thread(
                target=run.client_loop, args=(i + 1, node, run.rng.random()), daemon=True
            )
            threads.append(thread)
            thread.start()
        time.sleep(2.0)  # some history before the first fault
        run.nemesis(faults_s)
        run.heal()
        # Healed: the cluster must serve writes again (failover, catch-up) within a minute.
        healed_at = time.monotonic()
        while run.write(0, run.leader, 999_000_000 + len(run.history.ops)) != "ok":
            assert time.monotonic() - healed_at < 60, "no write succeeded within 60 s of healing"
            time.sleep(0.5)
        time.sleep(1.0)
        run.stop.set()
        for thread in threads:
            thread.join(60)
        run.read(0, run.leader)  # the final state, read where it is led
        log = run.committed_log()
    finally:
        run.stop.set()
        exits = run.nodes.stop_all()
    node_logs = {}
    for node_id in NODES:
        directory = run.nodes.nodes[node_id].data_dir / "databases" / "app"
        if (directory / "log").exists():
            node_logs[node_id] = read_local_log(str(directory), VALUES)
    report = check(run.history, log, node_logs)
    outputs = "\n".join(f"--- {n}\n{run.nodes.output(n)}" for n in NODES)
    print(f"seed {seed}; faults: {'; '.join(run.faults)}")
    print(report.summary())
    assert report.valid, f"seed {seed}\n{report.summary()}\n{outputs}"
    counts = run.history.counts()
    # A run that did nothing proves nothing: faults happened and writes got through them.
    assert len(run.faults) >= 3, run.faults
    assert counts.get("write ok", 0) >= 50, counts
    assert counts.get("read ok", 0) >= 10, counts
    assert run.history.ops[-1].status == "ok", run.history.ops[-1]  # the final read
    assert all(code == 0 for code in exits.values()), f"{exits}\n{outputs}"


@pytest.mark.slow
def test_history_under_faults_fixed_seed(tmp_path: Path, nats_cluster: NatsCluster) -> None:
    run_history(tmp_path, nats_cluster, seed=19, faults_s=FAULTS_S)


@pytest.mark.soak
def test_history_under_faults_soak(tmp_path: Path, nats_cluster: NatsCluster) -> None:
    seed = int(os.environ.get("COSMICTRON_HISTORY_SEED") or random.randrange(1 << 30))
    run_history(tmp_path, nats_cluster, seed=seed, faults_s=SOAK_FAULTS_S)


def test_the_client_knows_when_a_forwarding_refusal_ran_nothing() -> None:
    """The history client counts such a refusal as failed (no effect), not unknown."""
    from cosmictron.server import forwarding
    from cosmictron.testing import cluster_nodes

    assert cluster_nodes.NOTHING_RAN == forwarding.NOTHING_RAN
