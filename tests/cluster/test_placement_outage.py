"""Placement after an outage of NATS's quorum: the coordinator waits until heartbeats can
tell live nodes from dead ones (``Placer.membership_known``), against a real three-server
JetStream cluster.
"""

from __future__ import annotations

import time

from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.lease import Lease
from cosmictron.cluster.placement import NODE_DOWN_AFTER_S, Placer
from cosmictron.testing.nats import NatsCluster


class _Node:
    """The little of a node that placement reads (``placement.PlacedNode``): ``a`` leads
    ``app`` but its heartbeat is not among the live ones, as after an outage."""

    def __init__(self, connection: NatsConnection) -> None:
        self.node_id = "b"
        self.replicas = 3
        self.connection = connection
        self._led: set[str] = set()

    def lease(self, name: str) -> Lease:
        return Lease(self.connection, name, self.node_id)

    def leader_of(self, name: str) -> str | None:
        return "a"

    def _heartbeat(self, applied: dict[str, int]) -> None:
        pass


def test_placement_waits_for_heartbeats_after_an_outage(nats_cluster: NatsCluster) -> None:
    """Right after an outage every heartbeat is old, the live leader's too: the
    coordinator must not place from them (CI saw ``a`` hand its database to ``c`` as the
    quorum came back, closing every client of it), only once it has been in touch for as
    long as a heartbeat may age."""
    connection = NatsConnection(nats_cluster.urls, "b").connect()
    try:
        placer = Placer(_Node(connection))
        connection.out_of_touch_at = time.monotonic()  # a request just found no quorum
        placer.round(["b", "c"], ["app"], lambda name: None)
        assert placer.read().databases == {}
        connection.out_of_touch_at = time.monotonic() - NODE_DOWN_AFTER_S
        placer.round(["b", "c"], ["app"], lambda name: None)
        record = placer.read()
        assert sorted(record.databases["app"]) == ["b", "c"] and record.leaders == {"app": "a"}
    finally:
        connection.close()
