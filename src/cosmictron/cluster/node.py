"""``ClusterNode``: one server's part in a cluster (``start --cluster … --node-id …``).

It keeps, in JetStream KV:

- ``COSMICTRON_DATABASES``: the catalogue, one key per database: its module source, file
  name and owner, so any node can open a database it has never hosted;
- ``COSMICTRON_NODES``: one key per node: its URL, a heartbeat time and, per database, the
  last offset it applied (what ``GET /v1/cluster`` reports);
- ``COSMICTRON_LEASES`` (``lease.py``): who leads each database.

A thread renews the leases of the databases this node leads every ``LEASE_RENEW_S`` (a
refused renewal: another node took over, so the database is dropped here) and, for every
database in the catalogue it does not lead, tries the lease; once the holder has been
silent for the lease's TTL it wins, catches up and fences (``leadership.take_lead``) and
serves. That is the failover: TTL + catch-up + one fenced publish.

Every database in the catalogue that this node does not lead it *follows*
(``follower.py``, issue 19 part 3): the round asks the server's registry
(:class:`NodeRegistry`) to ``follow`` it, opening a read-only replica that tails the
stream and serves SQL reads and subscriptions. Roles switch in the same round: a
follower that wins the lease is closed by ``unfollow`` right before ``take_lead`` opens
the same directory as leader; a leader whose renewal is refused is dropped and followed
again. Writes reaching a non-leader are forwarded over HTTP to the
leader's URL (``server/forwarding.py``; :meth:`ClusterNode.leader_url`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cosmictron.cluster.catchup import stream_last_offset
from cosmictron.cluster.connection import NatsConnection, bucket_values, kv_bucket, parse_urls
from cosmictron.cluster.follower import out_of_touch_since
from cosmictron.cluster.leadership import take_lead
from cosmictron.cluster.lease import LEASE_RENEW_S, LEASE_TTL_S, Lease
from cosmictron.cluster.placement import NODE_DOWN_AFTER_S, Placer
from cosmictron.cluster.removal import purge_lease, remove_replicated_state
from cosmictron.cluster.snapshots import SnapshotShipper
from cosmictron.durability import DurabilityConfig
from cosmictron.errors import ClusterUnavailable, NotLeader
from cosmictron.host import Database
from cosmictron.host.directory import load_new_module
from cosmictron.values import Identity

logger = logging.getLogger(__name__)

CATALOGUE_BUCKET = "COSMICTRON_DATABASES"
NODES_BUCKET = "COSMICTRON_NODES"


@dataclass(frozen=True)
class CatalogueEntry:
    """What a node needs to open a database it never hosted."""

    name: str
    source: bytes
    filename: str
    owner: Identity


class NodeRegistry(Protocol):
    """What a node's lease rounds ask of the server that hosts its databases
    (``server/registry.py`` implements it): one interface rather than a callback per
    step, so the round's needs are named in one place and typed once."""

    def path_of(self, name: str) -> Path:
        """The data directory of database ``name`` on this node."""
        ...

    def durability_for(self, path: Path) -> DurabilityConfig:
        """The durability the database in ``path`` is opened with."""
        ...

    def applied(self) -> dict[str, int]:
        """The last offset each copy open here (led or followed) has applied."""
        ...

    def adopt(self, name: str, db: Database) -> None:
        """Serve ``db``: this node leads ``name`` now (caught up and fenced)."""
        ...

    def drop(self, name: str) -> None:
        """Close this node's copy of ``name`` (its lease was lost, it was deleted or
        placed elsewhere)."""
        ...

    def follow(self, entry: CatalogueEntry) -> None:
        """Open (or keep) a read-only replica of a database another node leads."""
        ...

    def unfollow(self, name: str) -> None:
        """Close this node's replica of ``name``: it is about to lead it."""
        ...

    def snapshot(self, name: str) -> None:
        """Write a local snapshot of ``name``, which this node leads, now (to ship)."""
        ...


class ClusterNode:
    """This server's membership in the cluster (see the module doc).

    Args:
        urls: the NATS servers, comma-separated (``--cluster``).
        node_id: this node's name (``--node-id``), unique in the cluster.
        replicas: copies of each stream and bucket (3: survives one server's loss).
    """

    def __init__(
        self,
        urls: str,
        node_id: str,
        *,
        replicas: int = 3,
        lease_ttl_s: float = LEASE_TTL_S,
    ) -> None:
        self.urls = parse_urls(urls)
        self.node_id = node_id
        self.replicas = replicas
        self.lease_ttl_s = lease_ttl_s
        self.url = ""
        """This node's HTTP URL, set once the server listens."""
        self.connection = NatsConnection(self.urls, node_id)
        self.snapshots = SnapshotShipper(self.connection, replicas=replicas)
        """Ships the snapshots of the databases this node leads (``snapshots.py``)."""
        self._leases: dict[str, Lease] = {}
        self._led: set[str] = set()
        self._creating: set[str] = set()
        """Databases this node is creating (``creating``): the lease round leaves them be."""
        self._known: set[str] = set()
        """The catalogue's names at the last lease round (a name gone since: deleted)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.placer = Placer(self)
        """Placement: which node should lead what, and planned hand-overs (placement.py)."""

    def connect(self) -> ClusterNode:
        """Connect to NATS and make the buckets.

        Raises:
            ClusterUnavailable: no NATS server answered (the message names the URLs).
        """
        self.connection.connect()
        try:
            self.connection.run(self._buckets(), 30.0)
        except Exception as exc:
            self.connection.close()
            raise ClusterUnavailable(
                f"NATS at {','.join(self.urls)} answered but JetStream did not "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        return self

    async def _bucket(self, name: str) -> Any:
        return await kv_bucket(self.connection.js, name, self.replicas)

    async def _buckets(self) -> None:
        await self._bucket(CATALOGUE_BUCKET)
        await self._bucket(NODES_BUCKET)

    # -- the catalogue ----------------------------------------------------------------

    def publish_database(self, name: str, source: bytes, filename: str, owner: Identity) -> None:
        """Record a new database in the catalogue (before its first record is written)."""
        value = json.dumps(
            {
                "source": base64.b64encode(source).decode(),
                "filename": filename,
                "owner": owner.hex(),
            }
        ).encode()

        async def put() -> None:
            kv = await self._bucket(CATALOGUE_BUCKET)
            await kv.put(_key(name), value)

        self.connection.run(put(), 10.0)

    @contextlib.contextmanager
    def creating(self, name: str) -> Iterator[None]:
        """Around a new database's publication and first opening here: the lease round,
        which sees the catalogue entry at once, must not open it as well (it took the
        lease and the data directory first, and the deploy failed with
        ``database_in_use`` at random). Once this is left the name is led here or not
        created."""
        with self._lock:
            self._creating.add(name)
        try:
            yield
        finally:
            with self._lock:
                self._creating.discard(name)

    def has_database(self, name: str) -> bool:
        """Whether the catalogue holds ``name`` (one key read, not a listing)."""

        async def read() -> bool:
            from nats.js.errors import KeyDeletedError, KeyNotFoundError

            kv = await self._bucket(CATALOGUE_BUCKET)
            try:
                await kv.get(_key(name))
            except (KeyNotFoundError, KeyDeletedError):
                return False
            return True

        return self.connection.run(read(), 10.0)

    def catalogue(self) -> dict[str, CatalogueEntry]:
        """Every database of the cluster."""

        async def read() -> dict[str, CatalogueEntry]:
            kv = await self._bucket(CATALOGUE_BUCKET)
            values = await bucket_values(self.connection.js, kv, CATALOGUE_BUCKET)
            out = {}
            for key, value in values.items():
                doc = json.loads(value or b"{}")
                name = _name(key)
                out[name] = CatalogueEntry(
                    name,
                    base64.b64decode(doc["source"]),
                    doc["filename"],
                    Identity.from_hex(doc["owner"]),
                )
            return out

        return self.connection.run(read(), 10.0)

    # -- leadership -------------------------------------------------------------------

    def lease(self, name: str) -> Lease:
        """This node's lease object for ``name``."""
        with self._lock:
            lease = self._leases.get(name)
            if lease is None:
                lease = Lease(
                    self.connection, name, self.node_id, replicas=self.replicas,
                    ttl_s=self.lease_ttl_s,
                    grace_s=lambda: self.placer.takeover_grace_s(name),
                )  # fmt: skip
                self._leases[name] = lease
            return lease

    def leads(self, name: str) -> bool:
        """Whether this node leads ``name`` now."""
        return name in self._led

    def stale_since(self, name: str, db: Database) -> float | None:
        """For a database this node leads (``db``): when (wall-clock seconds) a quorum
        last took its lease renewal or acknowledged its log, once that is older than
        ``follower.STALE_AFTER_S`` (NATS lost its quorum, or this node is cut off: it may
        not lead any more, and its commits wait); None while either goes through, or when
        this node does not lead ``name``. Either counts: after a quorum loss the leases'
        bucket was seen to stay without a leader for over a minute while the log stored
        records again (tests/cluster/test_stale_subscribers.py)."""
        if name not in self._led:
            return None
        contact = self.lease(name).renewed_at
        log = db.core.persistence.replicator
        acked_at = getattr(log, "acked_at", None)
        if isinstance(acked_at, float):
            contact = max(contact, acked_at)
        return out_of_touch_since(contact)

    def release(self, name: str) -> None:
        """Stop renewing ``name``'s lease: this node opened it but could not serve it (its
        database is closed again), so the lease lapses after its TTL and a lease round,
        here or on another node, takes it over instead of it staying led and unserved."""
        self._led.discard(name)

    def leader_of(self, name: str) -> str | None:
        """The node holding ``name``'s lease (None: nobody)."""
        return self.lease(name).read().holder

    def open_leader(
        self,
        entry: CatalogueEntry,
        path: Path,
        durability: DurabilityConfig,
        module: Any = None,
        unfollow: Callable[[str], None] | None = None,
    ) -> Database:
        """Take ``entry``'s lease (it must be free), catch up, fence; the open database.
        ``unfollow`` closes this node's replica of it first, once the lease is won.

        Raises:
            NotLeader: another node holds the lease.
        """
        lease = self.lease(entry.name)
        if not lease.try_acquire():
            raise NotLeader(f"database {entry.name!r} is led by {lease.read().holder}")
        if not self.has_database(entry.name):  # deleted while this node took the lease
            purge_lease(self.connection, entry.name)
            with self._lock:
                self._leases.pop(entry.name, None)
            raise NotLeader(f"database {entry.name!r} was deleted")
        if unfollow is not None:
            unfollow(entry.name)
        loaded = module if module is not None else load_new_module(entry.source, entry.filename)
        db = take_lead(
            self.connection, lease, path, loaded, durability, replicas=self.replicas,
            owner=entry.owner,
        )  # fmt: skip
        self._led.add(entry.name)
        return db

    def delete_database(self, name: str) -> None:
        """Remove ``name`` from the cluster: catalogue entry, then streams, snapshots and
        lease (``removal.py``). The caller (its leader) has closed it here already.

        Raises:
            ClusterUnavailable: JetStream did not answer (the message says what is left).
        """

        async def unlist() -> None:
            kv = await self._bucket(CATALOGUE_BUCKET)
            await kv.purge(_key(name))

        self.connection.run(unlist(), 10.0)
        self._led.discard(name)
        self.snapshots.forget(name)
        with self._lock:
            self._leases.pop(name, None)
        remove_replicated_state(self.connection, name, self.replicas)

    def _forget_deleted(
        self, catalogue: set[str], drop: Callable[[str], None], path_of: Callable[[str], Path]
    ) -> None:
        """Drop (and remove the directory of) each database gone from the catalogue since
        the last round: another node deleted it (``removal.py``)."""
        for name in sorted(self._known - catalogue):
            if self.has_database(name):  # a listing that missed it: a key read decides
                catalogue = catalogue | {name}
                continue
            logger.warning("cluster: %r was deleted; %s drops its copy", name, self.node_id)
            self._led.discard(name)
            self.snapshots.forget(name)
            drop(name)
            shutil.rmtree(path_of(name), ignore_errors=True)
        self._known = catalogue

    def not_leader(self, name: str) -> NotLeader:
        """The error for a request reaching a node that does not lead ``name`` (and
        cannot forward it: no leader yet, or the request was forwarded already)."""
        holder = self.leader_of(name)
        where = f"led by {holder}" if holder else "being taken over (no leader yet)"
        return NotLeader(
            f"database {name!r} is {where}, not by this node ({self.node_id}), which cannot "
            "serve this request itself (its replica is not open yet, or the request was "
            "forwarded to it already): retry"
        )

    def leader_url(self, name: str) -> tuple[str, str] | None:
        """``(node id, HTTP URL)`` of ``name``'s leader, from the lease and the node's
        heartbeat; None while nobody holds the lease (or its holder has no URL yet)."""
        holder = self.leader_of(name)
        if holder is None:
            return None

        async def read() -> str:
            from nats.js.errors import KeyDeletedError, KeyNotFoundError

            kv = await self._bucket(NODES_BUCKET)
            try:
                entry = await kv.get(holder)
            except (KeyNotFoundError, KeyDeletedError):
                return ""
            return str(json.loads(entry.value or b"{}").get("url", ""))

        url = self.connection.run(read(), 10.0)
        return (holder, url) if url else None

    def start(self, registry: NodeRegistry) -> None:
        """Run the lease thread (see the module doc) until :meth:`close`, opening,
        following and dropping this node's copies through ``registry``."""
        self.snapshots.take = registry.snapshot

        def loop() -> None:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self._tick(registry)
                except Exception:
                    logger.exception("cluster: the lease round failed; retrying")
                self._stop.wait(max(0.05, LEASE_RENEW_S - (time.monotonic() - started)))

        self._thread = threading.Thread(target=loop, name="cosmictron-cluster", daemon=True)
        self._thread.start()

    def _tick(self, registry: NodeRegistry) -> None:
        for name in sorted(self._led):
            if not self.lease(name).renew():
                logger.warning("cluster: lost the lease of %r; it is led elsewhere now", name)
                self._led.discard(name)
                self.snapshots.forget(name)
                registry.drop(name)
        catalogue = self.catalogue()
        self._forget_deleted(set(catalogue), registry.drop, registry.path_of)
        for name, entry in sorted(catalogue.items()):
            if name in self._led or name in self._creating or self._stop.is_set():
                continue
            path = registry.path_of(name)
            try:
                db = self.open_leader(
                    entry, path, registry.durability_for(path), unfollow=registry.unfollow
                )
            except NotLeader:
                try:
                    registry.follow(entry)
                except Exception as exc:  # no quorum, say: the next round tries again
                    logger.warning("cluster: cannot follow %r yet: %s", name, exc)
                continue
            logger.warning("cluster: %s now leads %r (epoch %d)", self.node_id, name,
                           self.lease(name).epoch)  # fmt: skip
            registry.adopt(name, db)
        offsets = registry.applied()  # after this round opened or dropped copies
        for name in sorted(self._led):
            path = registry.path_of(name)
            try:
                ledger_on = registry.durability_for(path).signing != "off"
                self.snapshots.tick(name, path, ledger_on, offsets.get(name, 0))
            except Exception:
                logger.exception("cluster: shipping a snapshot of %r failed; retrying", name)
        self._heartbeat(offsets)
        self.placer.round(self.live_nodes(), catalogue, registry.drop)

    def _heartbeat(self, applied: dict[str, int]) -> None:
        value = json.dumps(
            {"url": self.url, "time": time.time(), "applied": applied, "leads": sorted(self._led),
             "leaving": self.placer.leaving}
        ).encode()  # fmt: skip

        async def put() -> None:
            kv = await self._bucket(NODES_BUCKET)
            await kv.put(self.node_id, value)

        self.connection.run(put(), 10.0)

    def live_nodes(self) -> list[str]:
        """The nodes placement counts (sorted): fresh heartbeat, not leaving; this one
        included while it is not leaving."""

        async def read() -> list[str]:
            kv = await self._bucket(NODES_BUCKET)
            now, out = time.time(), []
            for key, value in (await bucket_values(self.connection.js, kv, NODES_BUCKET)).items():
                doc = json.loads(value or b"{}")
                if now - float(doc.get("time", 0)) < NODE_DOWN_AFTER_S and not doc.get("leaving"):
                    out.append(key)
            return out

        live = set(self.connection.run(read(), 10.0)) - {self.node_id}
        if not self.placer.leaving:
            live.add(self.node_id)
        return sorted(live)

    def status(self) -> dict[str, Any]:
        """``GET /v1/cluster``'s document (DESIGN.md §9)."""

        async def nodes() -> dict[str, dict[str, Any]]:
            kv = await self._bucket(NODES_BUCKET)
            values = await bucket_values(self.connection.js, kv, NODES_BUCKET)
            return {key: json.loads(value or b"{}") for key, value in values.items()}

        seen = self.connection.run(nodes(), 10.0)
        now = time.time()
        node_list = [
            {
                "node_id": node_id,
                "url": doc.get("url", ""),
                "status": "leaving"
                if doc.get("leaving")
                else "up"
                if now - float(doc.get("time", 0)) < NODE_DOWN_AFTER_S
                else "down",
            }
            for node_id, doc in sorted(seen.items())
        ]
        databases = []
        placement = self.placer.read()
        for name in sorted(self.catalogue()):
            last = stream_last_offset(self.connection, name)
            replicas = [
                {
                    "node_id": node_id,
                    "applied_offset": int(doc.get("applied", {}).get(name, 0)),
                    "lag": max(0, last - int(doc.get("applied", {}).get(name, 0))),
                }
                for node_id, doc in sorted(seen.items())
                if name in doc.get("applied", {})
            ]
            databases.append({"name": name, "leader": self.leader_of(name), "replicas": replicas,
                              "placement": placement.databases.get(name, [])})  # fmt: skip
        return {"nodes": node_list, "databases": databases, "placement": {
            "nodes": placement.nodes, "computed_by": placement.computed_by,
            "computed_at": placement.computed_at}}  # fmt: skip

    def stop(self) -> None:
        """Stop the lease thread (no database is adopted after this), then leave: hand
        every database led here over to the node placement picks without this one."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15.0)
            self._thread = None
        try:
            self.placer.leave(self.live_nodes(), self.catalogue())
        except Exception:  # JetStream gone: the leases lapse after their TTL instead
            logger.exception("cluster: %s could not hand its databases over", self.node_id)

    def close(self) -> None:
        """Stop the lease thread and the connection (leases lapse after their TTL)."""
        self.stop()
        self.connection.close()


def _key(name: str) -> str:
    return name.encode().hex()


def _name(key: str) -> str:
    return bytes.fromhex(key).decode()


def node_id_default() -> str:
    """``COSMICTRON_NODE_ID`` when set, else the host name."""
    return os.environ.get("COSMICTRON_NODE_ID") or os.uname().nodename
