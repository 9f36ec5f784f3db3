"""The databases one server hosts, each in ``<data-dir>/databases/<name>/``.

Each ``HostedDatabase`` wraps an open ``host.Database``, its reducer-call thread
(``calls.CallWorker``: calls run in batches sharing one fsync) and a thread pool for
the rest (SQL, subscribing). The event loop never runs database work, so a slow reducer
in one database never blocks another database or the network. The pool's size bounds
how many requests of one database run at once; more queue in the event loop, costing
no thread.

Deploying, updating and deleting a database are serialised per server by one lock (they
are rare and change the registry itself); calls never take it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from cosmictron import names
from cosmictron.cluster.follower import Follower, open_follower
from cosmictron.cluster.node import CatalogueEntry, ClusterNode
from cosmictron.durability import DurabilityConfig
from cosmictron.durability.files import fsync_directory
from cosmictron.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from cosmictron.host import Database
from cosmictron.host.backup import RestoreReport, stage_restore
from cosmictron.host.directory import load_new_module
from cosmictron.host.memory import settle_long_lived
from cosmictron.host.remote_nats import InboxConsumer, NatsTransport
from cosmictron.host.remote_relay import RemoteRelay
from cosmictron.module.js import is_js
from cosmictron.server.calls import CallWorker
from cosmictron.values import Identity, Timestamp

T = TypeVar("T")

THREADS_PER_DATABASE = 16


@dataclass
class HostedDatabase:
    name: str
    db: Database
    executor: ThreadPoolExecutor = field(repr=False)
    calls: CallWorker = field(repr=False)
    inbox: InboxConsumer | None = field(default=None, repr=False)
    """Cluster mode: applies the calls other databases sent this one (where it leads)."""
    follower: Follower | None = field(default=None, repr=False)
    """Cluster mode, where another node leads: the tail that keeps this replica current
    (``cluster/follower.py``); writes to it are forwarded (``server/forwarding.py``)."""

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking database work on this database's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, function, *args)

    def close(self) -> None:
        if self.follower is not None:
            self.follower.close()  # first: it applies records to the database
        if self.inbox is not None:
            self.inbox.close()  # first: it applies calls to the database
        self.calls.close()
        self.executor.shutdown(wait=True)
        self.db.close()


class DatabaseRegistry:
    """Names to open databases; creates, updates and deletes them."""

    def __init__(
        self, root: Path, profile: str | None = None, cluster: ClusterNode | None = None
    ) -> None:
        self.root = root
        self.profile = profile
        self.cluster = cluster
        """Cluster mode (issue 19): leases decide which databases this node hosts."""
        self._databases: dict[str, HostedDatabase] = {}
        self._admin = threading.Lock()
        self._uploads = root / "uploads"
        self.relay = (
            RemoteRelay(transport=NatsTransport(cluster.urls, replicas=cluster.replicas))
            if cluster is not None
            else RemoteRelay()
        )
        """Delivers ``ctx.call_remote`` calls: between this server's databases, or in
        cluster mode to the target's inbox stream (its leader may be another node)."""

    @property
    def directory(self) -> Path:
        return self.root / "databases"

    def open_all(self) -> None:
        """Open every database found under the data directory (at server start), and
        remove what uploads a crash interrupted (``uploads/`` only holds temporary files)."""
        shutil.rmtree(self._uploads, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.cluster is not None:
            self._start_cluster(self.cluster)
            return
        for path in sorted(self.directory.iterdir()):
            if path.is_dir() and (path / "module" / "module.py").exists():
                self._databases[path.name] = self._host(
                    path.name, Database.open(path, durability=self.durability_for(path)), False
                )
        # Only once all are open: a call recorded before a crash may target any of them.
        for name, hosted in self._databases.items():
            self.relay.add(name, hosted.db)
        settle_long_lived()

    def durability_for(self, path: Path) -> DurabilityConfig:
        """A database's settings: the server's ``--profile`` is a flag, so the usual
        precedence holds (flag > environment > the database's config.toml > profile)."""
        flags = {"profile": self.profile} if self.profile else None
        return DurabilityConfig.resolve(
            flags=flags, environ=os.environ, config_file=path / "config.toml"
        )

    def names(self) -> list[str]:
        return sorted(self._databases)

    def get(self, name: str) -> HostedDatabase:
        """The database called ``name``; ``NotFound`` naming it if there is none
        (``InvalidRequest`` if no database could have that name)."""
        hosted = self._databases.get(name)
        if hosted is None:
            check_name(name)
            if self.cluster is not None and self.cluster.has_database(name):
                raise self.cluster.not_leader(name)
            raise NotFound(f"database {name!r} does not exist")
        return hosted

    def deploy(
        self,
        name: str,
        source: bytes,
        caller: Identity,
        clear: bool = False,
        filename: str | None = None,
    ) -> tuple[HostedDatabase, bool, dict[str, Any] | None]:
        """Create database ``name`` owned by ``caller``, or update its module.

        ``filename`` is the module's file name as the deploying user gave it (``app.py``):
        what its load errors, tracebacks and log name; when not given, the database's
        name with the language's suffix.

        Returns the database, whether it was created, and the migration report of an
        update (None for a creation). Blocking: run it off the event loop.

        Raises:
            InvalidRequest: a bad name or an empty module.
            PermissionDenied: updating a database ``caller`` does not own.
            SchemaError: the module fails to load or (on update) to migrate.
        """
        check_name(name)
        if not source.strip():
            raise InvalidRequest("the module is empty: send the module's Python source")
        with self._admin:
            existing = self._databases.get(name)
            if existing is not None:
                if existing.db.owner != caller:
                    raise PermissionDenied(
                        f"database {name!r} belongs to another identity; only its owner "
                        f"may deploy over it"
                    )
                report = existing.db.update_module(
                    source, clear=clear, filename=filename or default_filename(name, source)
                )
                if self.cluster is not None:  # the module a standby would take over with
                    self.cluster.publish_database(
                        name, source, filename or default_filename(name, source), caller
                    )
                settle_long_lived()
                return existing, False, report.describe()
            path = self.directory / name
            if self.cluster is not None and self.cluster.has_database(name):
                raise self.cluster.not_leader(name)
            if path.exists():
                shutil.rmtree(path)  # a creation that failed half-way before
            # Loaded (and checked) before the directory exists, under the user's name.
            filename = filename or default_filename(name, source)
            loaded = load_new_module(source, filename)
            try:
                if self.cluster is not None:
                    db = self._create_in_cluster(self.cluster, name, source, filename, caller)
                else:
                    db = Database.open(
                        path, loaded, durability=self.durability_for(path), owner=caller
                    )
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                raise
            hosted = self._host(name, db)
            self._databases[name] = hosted
            settle_long_lived()
            return hosted, True, None

    def delete(self, name: str, caller: Identity) -> None:
        """Close and remove database ``name`` (owner only). Blocking."""
        with self._admin:
            hosted = self.get(name)
            if hosted.db.owner != caller:
                raise PermissionDenied(f"only the owner of database {name!r} may delete it")
            del self._databases[name]
            self.relay.remove(name)
            hosted.close()
            shutil.rmtree(self.directory / name, ignore_errors=True)
            if self.cluster is not None:  # the other nodes drop it (cluster/removal.py)
                self.cluster.delete_database(name)
            settle_long_lived()

    def restore(
        self,
        name: str,
        archive: Path | BinaryIO,
        caller: Identity,
        to_offset: int | None = None,
        to_time: Timestamp | None = None,
    ) -> tuple[HostedDatabase, RestoreReport]:
        """Create database ``name``, owned by ``caller``, from a backup archive. Blocking.

        ``archive`` may be a stream (an upload as it arrives): it is extracted and
        verified in ``uploads/`` without the registry lock, so a slow upload holds up no
        other deploy; only the rename into ``databases/`` and the open take the lock.

        Raises:
            InvalidRequest: a bad name, or a point past the backup's cut.
            Conflict: a database called ``name`` exists.
            BackupDamaged: the archive is damaged; nothing was created.
        """
        check_name(name)
        self._refuse_existing(name)  # before reading the upload
        path = self.directory / name
        staged = stage_restore(
            archive,
            self._uploads,
            name,
            to_offset=to_offset,
            to_time=to_time,
            owner=caller,
            durability=self.durability_for(path),
        )
        try:
            with self._admin:
                self._refuse_existing(name)
                if path.exists():
                    shutil.rmtree(path)  # a creation that failed half-way before
                self.directory.mkdir(parents=True, exist_ok=True)
                os.replace(staged.directory, path)
                fsync_directory(str(self.directory))
                try:
                    db = Database.open(path, durability=self.durability_for(path))
                except BaseException:
                    shutil.rmtree(path, ignore_errors=True)
                    raise
                hosted = self._host(name, db)
                self._databases[name] = hosted
        finally:
            shutil.rmtree(staged.directory, ignore_errors=True)  # gone once renamed
        settle_long_lived()
        return hosted, RestoreReport(str(path), *staged.report)

    def _refuse_existing(self, name: str) -> None:
        if name in self._databases:
            raise Conflict(
                f"database {name!r} already exists; restore under another name or delete it first"
            )

    def close_all(self) -> None:
        """Close every database: each waits for its calls, syncs its log and closes."""
        if self.cluster is not None:
            self.cluster.stop()  # no lease round may adopt a database meanwhile
        with self._admin:
            self.relay.close()  # first: it would count closed targets as failures
            for hosted in self._databases.values():
                hosted.close()
            self._databases.clear()
        if self.cluster is not None:
            self.cluster.close()

    # -- cluster mode (issue 19) --------------------------------------------------------

    def _create_in_cluster(
        self, cluster: ClusterNode, name: str, source: bytes, filename: str, caller: Identity
    ) -> Database:
        """A new database: in the catalogue first (so a standby can open it), then led here."""
        entry = CatalogueEntry(name, source, filename, caller)
        path = self.directory / name
        with cluster.creating(name):
            cluster.publish_database(name, source, filename, caller)
            return cluster.open_leader(entry, path, self.durability_for(path))

    def _start_cluster(self, cluster: ClusterNode) -> None:
        cluster.start(_ClusterCopies(self, cluster))

    def follower(self, name: str) -> Follower | None:
        """Cluster mode: the tail of this node's replica of ``name`` (None: it leads it,
        or holds no copy)."""
        hosted = self._databases.get(name)
        return None if hosted is None else hosted.follower

    def current(self, name: str) -> HostedDatabase | None:
        """The database open under ``name`` now (None: none), without asking the cluster;
        in cluster mode a role switch replaces it (``server/staleness.py``)."""
        return self._databases.get(name)

    def stale_since(self, hosted: HostedDatabase) -> float | None:
        """Cluster mode: since when (wall-clock seconds) what this node serves of
        ``hosted`` may be behind the cluster: its replica lost the stream's quorum, or,
        leading it, its lease renewals stopped going through (``cluster/follower.py``
        has the rule; the leader's log acknowledgements count as renewals); None while it
        is current, and always in single-node mode."""
        if hosted.follower is not None:
            return hosted.follower.stale_since
        if self.cluster is None:
            return None
        return self.cluster.stale_since(hosted.name, hosted.db)

    def _host(
        self, name: str, db: Database, relay: bool = True, follower: Follower | None = None
    ) -> HostedDatabase:
        executor = ThreadPoolExecutor(THREADS_PER_DATABASE, thread_name_prefix=f"db-{name}")
        hosted = HostedDatabase(name, db, executor, CallWorker(db, name), follower=follower)
        if follower is not None:  # a replica: no inbox, no relay (its leader has them)
            return hosted
        if self.cluster is not None:  # its inbox is applied where it leads: here
            try:
                hosted.inbox = InboxConsumer(
                    self.cluster.urls, name, db.core, replicas=self.cluster.replicas
                )
            except BaseException:
                hosted.close()
                self.cluster.release(name)
                raise
        if relay:
            self.relay.add(name, db)  # drains what it recorded before a crash
        return hosted


def default_filename(name: str, source: bytes) -> str:
    """The file name a module's errors show when the deployer gave none: the database's
    name with the suffix of the module's language."""
    suffix = ".wasm" if source[:4] == b"\0asm" else ".js" if is_js(source) else ".py"
    return f"{name}{suffix}"


def check_name(name: str) -> None:
    """Raise InvalidRequest unless ``name`` is a valid database name (``cosmictron.names``)."""
    names.check_database(name)


class _ClusterCopies:
    """The registry's side of a cluster node's lease rounds (``cluster.node.NodeRegistry``):
    the databases this node leads or follows, as ``HostedDatabase`` entries of the
    registry it serves them from."""

    def __init__(self, registry: DatabaseRegistry, cluster: ClusterNode) -> None:
        self.registry = registry
        self.cluster = cluster

    def path_of(self, name: str) -> Path:
        return self.registry.directory / name

    def durability_for(self, path: Path) -> DurabilityConfig:
        return self.registry.durability_for(path)

    def applied(self) -> dict[str, int]:
        databases = self.registry._databases
        return {name: hosted.db.tx_offset for name, hosted in list(databases.items())}

    def adopt(self, name: str, db: Database) -> None:
        registry = self.registry
        with registry._admin:
            registry._databases[name] = registry._host(name, db)

    def drop(self, name: str) -> None:
        registry = self.registry
        with registry._admin:
            hosted = registry._databases.pop(name, None)
        registry.relay.remove(name)  # only the leader of a source relays its calls
        if hosted is not None:
            hosted.close()

    def follow(self, entry: CatalogueEntry) -> None:
        registry = self.registry
        hosted = registry._databases.get(entry.name)
        if hosted is not None:
            if hosted.follower is None or hosted.follower.failure is None:
                return  # led here (being dropped), or a healthy replica
            self.drop(entry.name)  # a replica that diverged: rebuilt from the stream
        path = self.path_of(entry.name)
        follower = open_follower(
            self.cluster.connection, self.cluster.node_id, entry.name, entry.source,
            entry.filename, entry.owner, path, registry.durability_for(path),
        )  # fmt: skip
        with registry._admin:
            registry._databases[entry.name] = registry._host(
                entry.name, follower.db, follower=follower
            )

    def unfollow(self, name: str) -> None:
        hosted = self.registry._databases.get(name)
        if hosted is not None and hosted.follower is not None:
            self.drop(name)

    def snapshot(self, name: str) -> None:
        hosted = self.registry._databases.get(name)
        if hosted is not None:
            hosted.db.snapshot()
