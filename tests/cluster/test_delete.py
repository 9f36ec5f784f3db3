"""Deleting a database in cluster mode (issue 19): gone from JetStream and from every node.

Three NATS servers and two ``cosmictron-cli start --cluster`` nodes. The database is led
by ``b`` after ``a`` stopped (so ``a`` keeps a copy of its log on disk), ``a`` is back as a
standby; a snapshot was shipped. Only the owner may delete; the delete removes the
catalogue entry, the log and inbox streams, the shipped snapshots and the lease; ``a``
drops its copy at its next lease round; the name is free for a new database after.
"""

from __future__ import annotations

import time
from pathlib import Path

from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.jetstream_log import stream_name
from cosmictron.cluster.lease import Lease
from cosmictron.cluster.node import ClusterNode
from cosmictron.cluster.snapshots import shipped_offsets
from cosmictron.host.remote_nats import inbox_stream
from cosmictron.testing.nats import NatsCluster
from tests.cluster.test_nodes import MODULE, ids
from tests.server.conftest import Server, start_server, stop_server


def node(tmp_path: Path, nats: NatsCluster, name: str) -> Server:
    return start_server(
        tmp_path / name, "--profile", "development", "--cluster", nats.url, "--node-id", name,
        env={"COSMICTRON_CLUSTER_SNAPSHOT_RECORDS": "5"},
    )  # fmt: skip


def stream_exists(connection: NatsConnection, name: str) -> bool:
    async def info() -> bool:
        from nats.js.errors import NotFoundError

        try:
            await connection.js.stream_info(name)
        except NotFoundError:
            return False
        return True

    return connection.run(info(), 10.0)


def test_deleting_a_database_removes_it_from_the_cluster_and_every_node(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a = node(tmp_path, nats_cluster, "a")
    b = node(tmp_path, nats_cluster, "b")
    watcher = NatsConnection(nats_cluster.urls, "test").connect()
    try:
        _, operator = a.operator()
        assert a.deploy("app", MODULE, operator).status in (200, 201)
        for n in range(10):
            assert a.request("POST", "/v1/database/app/call/add", [n], operator).status == 200
        stop_server(a)  # a clean stop: b takes over, a keeps its copy on disk
        started = time.monotonic()
        while b.request("POST", "/v1/database/app/call/add", [10], operator).status != 200:
            assert time.monotonic() - started < 30, "b never took over"
            time.sleep(0.2)
        a = node(tmp_path, nats_cluster, "a")
        while not shipped_offsets(watcher, "app"):  # b ships one (5 records past none)
            assert time.monotonic() - started < 60, "no snapshot was shipped"
            time.sleep(0.2)
        while not (tmp_path / "a" / "databases" / "app" / "log").exists():  # a's copy: it
            assert time.monotonic() - started < 60, "a holds no copy"  # follows b again
            time.sleep(0.2)
        assert stream_exists(watcher, inbox_stream("app"))

        _, stranger = b.identity()
        refused = b.request("DELETE", "/v1/database/app", token=stranger)
        assert refused.status == 403, refused
        deleted = b.request("DELETE", "/v1/database/app", token=operator)
        assert deleted.status == 200 and deleted.body["deleted"] is True, deleted

        assert not (tmp_path / "b" / "databases" / "app").exists()
        assert not stream_exists(watcher, stream_name("app"))
        assert not stream_exists(watcher, inbox_stream("app"))
        assert shipped_offsets(watcher, "app") == []
        assert Lease(watcher, "app", "test").read().revision == 0
        cluster = ClusterNode(nats_cluster.url, "reader").connect()
        try:
            assert "app" not in cluster.catalogue()
        finally:
            cluster.close()
        reply = b.request("POST", "/v1/database/app/sql", "SELECT id FROM item")
        assert reply.status == 404 and reply.body["error"]["code"] == "not_found", reply
        dropped = time.monotonic()
        while (tmp_path / "a" / "databases" / "app").exists():  # a's next lease round
            assert time.monotonic() - dropped < 15, "a kept its copy of the deleted database"
            time.sleep(0.2)
        # a served its replica until that round; now it answers as b does
        reply = a.request("POST", "/v1/database/app/sql", "SELECT id FROM item")
        assert reply.status == 404 and reply.body["error"]["code"] == "not_found", reply

        # The name is free: a new database of that name starts from nothing.
        assert a.deploy("app", MODULE, operator).status == 201
        assert a.request("POST", "/v1/database/app/call/add", [7], operator).status == 200
        assert ids(a) == [7]
    finally:
        watcher.close()
        for server in (a, b):
            if server.process.poll() is None:
                stop_server(server)
