"""Placement: which node should lead each database, kept in JetStream KV and applied by hand-over.

The rule is the one ``bench/cluster_placement.py`` simulates (docs/design/cluster.md):
*rendezvous hashing with bounded loads*. Each database ranks the live nodes by
``hash(database, node)``; its copies are the first ``copies`` nodes under the load cap
(``(1 + epsilon)`` times the mean, and never below the mean rounded up, so that a handful
of databases still spreads one per node), and it is led by the first of them with room to
lead. One change for a running cluster: a database whose current leader is live and has
room keeps it (*sticky*), placed before the rest, so that a membership change moves only
what the cap forces off a node, the share a joining node takes and a leaving node's
databases, and a failover is not undone when the failed node returns.

:func:`place` is a pure function of (databases, live nodes, current leaders): every node
computes the same answer. The **coordinator** (the live node with the smallest id) writes
it to the KV bucket ``COSMICTRON_PLACEMENT`` (key ``current``) when it changes; every node
reads it each lease round (:class:`Placer`, called from ``ClusterNode._tick``):

- a node leading a database placed on another live node **hands it over**: it closes the
  database (its calls finish, every acknowledged record is in the stream), then releases
  the lease naming the successor (``Lease.release``). The successor takes the free lease
  at once and becomes leader exactly as after a failure (``leadership.take_lead``: it
  catches up to the stream's end and fences with an epoch-start record), so a planned
  hand-over loses nothing by the same argument as a failover, and costs no TTL;
- when a leader fails instead, the database's lease is taken after its TTL by the node
  placed first among the rest (its replicas in order); nodes placed later wait longer
  (:meth:`Placer.takeover_grace_s`), so the takeover lands where placement wants it;
- a node that stops (SIGTERM) **leaves**: its heartbeat says so, and it hands each
  database it leads to the node placement picks without it (:meth:`Placer.leave`).

Membership is the nodes bucket's heartbeats (``node.py``): a node is live while its
heartbeat is fresh and it is not leaving; the coordinator places only once it has been in
touch with a quorum for as long as a heartbeat may age (after an outage every heartbeat is
old, the live leaders' too: :meth:`Placer.membership_known`). Clocks only decide *when* a
database moves; *whether* a write counts is decided by the log's fencing, as for failover.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cosmictron.cluster.connection import NatsConnection, kv_bucket
from cosmictron.cluster.lease import Lease
from cosmictron.cluster.metrics import CLUSTER_METRICS

logger = logging.getLogger(__name__)

PLACEMENT_BUCKET = "COSMICTRON_PLACEMENT"
PLACEMENT_KEY = "current"
COPIES = 3
EPSILON = 0.25
"""A node may carry up to (1 + EPSILON) x the mean load (bench/cluster_placement.py)."""

NODE_DOWN_AFTER_S = 12.0
"""A node whose heartbeat is older than this is reported ``down`` and placed nowhere.
Longer than a lease round that waits out two JetStream requests (5 s each) on top of
its one-second pace: a busy node whose round stalled on a timeout was placed nowhere,
and handed its databases away (CI, a loaded machine). Failover does not wait for it:
that is the lease's TTL."""

GRACE_STEP_S = 1.5
"""How much longer than the lease TTL each later-placed node waits to take over."""


def score(database: str, node: str) -> int:
    """The rendezvous score of ``node`` for ``database`` (the bench's, byte for byte)."""
    digest = hashlib.blake2b(f"{database}\0{node}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def place(
    databases: Iterable[str],
    nodes: Iterable[str],
    leaders: Mapping[str, str | None] | None = None,
    weights: Mapping[str, float] | None = None,
    copies: int = COPIES,
    epsilon: float = EPSILON,
) -> dict[str, list[str]]:
    """Each database's nodes, leader first (see the module doc). Empty without nodes.

    Args:
        databases: every database of the cluster.
        nodes: the live nodes.
        leaders: each database's current leader (None or absent: none); a live one keeps
            its database while it has room to lead.
        weights: each database's load (default 1.0 each).
    """
    names = sorted(set(databases))
    live = sorted(set(nodes))
    if not live or not names:
        return {}
    weight = {d: float((weights or {}).get(d, 1.0)) for d in names}
    k = min(copies, len(live))
    total = sum(weight.values())
    mean_copies = total * k / len(live)
    mean_leaders = total / len(live)
    copy_cap = max(math.ceil(mean_copies), (1 + epsilon) * mean_copies)
    lead_cap = max(math.ceil(mean_leaders), (1 + epsilon) * mean_leaders)
    load = dict.fromkeys(live, 0.0)
    leading = dict.fromkeys(live, 0.0)
    current = {d: (leaders or {}).get(d) for d in names}

    def sticky(d: str) -> bool:
        return current[d] in load

    # Sticky databases first (they keep their leader while it has room), then the rest
    # heaviest first, as the simulation places them.
    order = sorted(names, key=lambda d: (not sticky(d), -weight[d], d))
    placed: dict[str, list[str]] = {}
    for database in order:
        w = weight[database]
        ranked = sorted(live, key=lambda n: score(database, n), reverse=True)
        chosen: list[str] = []
        keep = current[database]
        kept = keep is not None and keep in load and leading[keep] + w <= lead_cap
        if kept:
            chosen.append(str(keep))
        for node in ranked:
            if len(chosen) == k:
                break
            if node not in chosen and load[node] + w <= copy_cap:
                chosen.append(node)
        for node in ranked:  # every node is full: fall back to the plain order
            if len(chosen) == k:
                break
            if node not in chosen:
                chosen.append(node)
        if not kept:
            for i, node in enumerate(chosen):  # lead on the first copy with room to lead
                if leading[node] + w <= lead_cap:
                    chosen.insert(0, chosen.pop(i))
                    break
        for node in chosen:
            load[node] += w
        leading[chosen[0]] += w
        placed[database] = chosen
    return dict(sorted(placed.items()))


class PlacedNode(Protocol):
    """What placement needs of its node (``node.ClusterNode``), named here so that the
    node imports placement and not the other way round."""

    node_id: str
    replicas: int
    connection: NatsConnection
    _led: set[str]

    def lease(self, name: str) -> Lease: ...

    def leader_of(self, name: str) -> str | None: ...

    def _heartbeat(self, applied: dict[str, int]) -> None: ...


@dataclass
class PlacementRecord:
    """The record in KV: the nodes it was computed for, each database's nodes, and the
    leaders its coordinator saw (a leader hands over only on a record that knew it led:
    a record from before a failover must not send the database back to a dead node)."""

    nodes: list[str] = field(default_factory=list)
    databases: dict[str, list[str]] = field(default_factory=dict)
    computed_by: str = ""
    computed_at: float = 0.0
    leaders: dict[str, str | None] = field(default_factory=dict)

    def leader(self, database: str) -> str | None:
        chosen = self.databases.get(database)
        return chosen[0] if chosen else None

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "databases": self.databases,
            "computed_by": self.computed_by,
            "computed_at": self.computed_at,
            "leaders": self.leaders,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PlacementRecord:
        return cls(
            [str(n) for n in doc.get("nodes", [])],
            {str(d): [str(n) for n in ns] for d, ns in dict(doc.get("databases", {})).items()},
            str(doc.get("computed_by", "")),
            float(doc.get("computed_at", 0.0)),
            {
                str(d): (None if n is None else str(n))
                for d, n in dict(doc.get("leaders", {})).items()
            },
        )


class Placer:
    """One node's part in placement: compute (as coordinator), read, hand over, leave.

    Args:
        node: the node it works for (its connection, leases, led set, heartbeats).
    """

    def __init__(self, node: PlacedNode) -> None:
        self.node = node
        self.record = PlacementRecord()
        self.leaving = False
        self._drop: Callable[[str], None] | None = None

    async def _bucket(self) -> Any:
        return await kv_bucket(self.node.connection.js, PLACEMENT_BUCKET, self.node.replicas)

    def read(self) -> PlacementRecord:
        """The record in KV (an empty one before the first is written)."""

        async def get() -> PlacementRecord:
            from nats.js.errors import KeyDeletedError, KeyNotFoundError

            kv = await self._bucket()
            try:
                entry = await kv.get(PLACEMENT_KEY)
            except (KeyNotFoundError, KeyDeletedError):
                return PlacementRecord()
            return PlacementRecord.from_json(json.loads(entry.value or b"{}"))

        self.record = self.node.connection.run(get(), 10.0)
        return self.record

    def _write(self, record: PlacementRecord) -> None:
        async def put() -> None:
            kv = await self._bucket()
            await kv.put(PLACEMENT_KEY, json.dumps(record.to_json()).encode())

        self.node.connection.run(put(), 10.0)
        self.record = record

    def compute(self, live: Sequence[str], databases: Iterable[str]) -> PlacementRecord:
        """The placement for ``live`` nodes, keeping each database's live leader if it can."""
        names = sorted(databases)
        leaders = {name: self.node.leader_of(name) for name in names}
        return PlacementRecord(
            sorted(live), place(names, live, leaders), self.node.node_id, time.time(), leaders
        )

    def round(
        self, live: Sequence[str], databases: Iterable[str], drop: Callable[[str], None]
    ) -> None:
        """One lease round's placement work: write the record if this node coordinates
        and it changed; hand over what this node leads but should not."""
        self._drop = drop
        if self.leaving:
            return
        names = sorted(databases)
        record = self.read()
        coordinator = bool(live) and live[0] == self.node.node_id  # the smallest live id
        if coordinator and self.membership_known():
            fresh = self.compute(live, names)
            if (fresh.nodes, fresh.databases, fresh.leaders) != (
                record.nodes,
                record.databases,
                record.leaders,
            ):
                self._write(fresh)
                record = fresh
                logger.warning("cluster: placement for %s: %s", fresh.nodes, fresh.databases)
        for name in sorted(self.node._led):
            successor = record.leader(name)
            knew = record.leaders.get(name) == self.node.node_id
            if knew and successor and successor != self.node.node_id and successor in live:
                self.hand_over(name, successor)

    def membership_known(self) -> bool:
        """Whether heartbeats tell live nodes from dead ones: only once this node has been
        in touch with a quorum for as long as a heartbeat may age. After an outage every
        heartbeat is old (no node could write one), and a placement made from them moved
        databases off live leaders as the quorum came back (closing their clients)."""
        lost = self.node.connection.out_of_touch_at
        return lost == 0.0 or time.monotonic() - lost >= NODE_DOWN_AFTER_S

    def hand_over(self, name: str, successor: str) -> None:
        """Planned stepdown: close ``name`` here (its calls finish), release its lease to
        ``successor``, who takes it at once (see the module doc)."""
        logger.warning("cluster: %s hands %r over to %s", self.node.node_id, name, successor)
        self.node._led.discard(name)
        if self._drop is not None:
            self._drop(name)
        self.node.lease(name).release(successor)
        CLUSTER_METRICS.handed_over(name)

    def leave(self, live: Sequence[str], databases: Iterable[str]) -> None:
        """This node stops: hand each database it leads to its placement without it."""
        if self.leaving:
            return
        self.leaving = True
        self.node._heartbeat({})  # the coordinator places nothing more here
        others = [n for n in live if n != self.node.node_id]
        if not others:
            return
        record = self.compute(others, databases)
        for name in sorted(self.node._led):
            successor = record.leader(name)
            if successor:
                try:
                    self.hand_over(name, successor)
                except Exception:  # JetStream gone: the lease lapses after its TTL
                    logger.exception("cluster: could not hand %r over", name)

    def takeover_grace_s(self, database: str) -> float:
        """How much longer than the TTL this node waits before taking ``database``'s
        silent lease: 0 for its placed leader and first replica, more for later ones."""
        chosen = self.record.databases.get(database, [])
        if self.node.node_id in chosen[:2]:
            return 0.0
        if self.node.node_id in chosen:
            return GRACE_STEP_S
        return 2 * GRACE_STEP_S
