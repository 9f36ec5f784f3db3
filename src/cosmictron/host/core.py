"""The state of one open database (``DatabaseCore``), below every operation on it.

Every operation of ``host/`` is a function that takes the core: the commit path
(``transactions.py``), and over it bulk loads (``imports.py``), procedures, scheduled
runs, SQL, hot-swap and writing a backup; ``recovery.py`` builds a core and replays the
log into it. ``Database`` (``database.py``) is the public façade that composes those
operations over one core. This module imports none of them and none of them imports the
façade, so ``host/`` reads bottom-up, one direction of imports, and each piece can be
read and tested without the ones above it (docs/design/architecture.md;
``tests/test_layers.py`` keeps it so).

The fields are public so that an operation names what it uses (``core.lock``,
``core.offset``), but they are the host's inside, not its API: code outside ``host/``
goes through ``Database``, and reaches ``db.core`` only where a test or benchmark needs
a figure the API does not give (the live queries behind subscriptions, the snapshot
thread). The rules the operations keep:

- Everything that changes after open (``offset``, ``last_timestamp_us``, the counters,
  ``module`` and its handles, ``book``, ``imports``, ``listeners``) changes only under
  ``lock``; recovery writes without it because it runs before any other thread can see
  the core.
- ``offset`` and ``last_timestamp_us`` advance only after the record is appended
  (``transactions.publish``, ``hotswap.update_module``, replay): a reader that sees an
  offset sees a committed transaction.
- ``scope.tx`` is set only while the commit path runs a reducer on this thread; the
  table handles write through it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cosmictron.datastore import Datastore, TableChange
from cosmictron.durability import DurabilityConfig, PersistenceLayer
from cosmictron.errors import InvalidRequest, NotFound
from cosmictron.host.clock import Clock
from cosmictron.host.handles import DbView, TableHandle, TableReadHandle, WriteScope
from cosmictron.host.import_keys import AppliedImports
from cosmictron.host.logs import ModuleLog, capture_module_logger
from cosmictron.host.memory import MemoryBudget
from cosmictron.host.metrics import ReducerMetrics
from cosmictron.host.procedure_threads import ProcedureRunner
from cosmictron.host.records import snapshot_builder
from cosmictron.host.remote_book import RemoteBook
from cosmictron.host.scheduler import ScheduleBook, Scheduler
from cosmictron.module import LoadedModule
from cosmictron.query.views import ViewBook
from cosmictron.subscription import SubscriptionManager
from cosmictron.values import Identity, Timestamp

CommitListener = Callable[[int, Timestamp, list[TableChange]], None]
"""Called as ``listener(offset, timestamp, changes)`` after each commit, in order."""


class DatabaseCore:
    """One open database's state: what every operation of ``host/`` reads and advances.

    Built by ``recovery.open_core``; ``Database`` wraps it. ``next_scheduled_us`` and
    ``run_due`` are what the scheduler thread calls back (``scheduled_runs.py``): they
    are passed in because this module imports no operation.
    """

    __slots__ = (
        "before_snapshot",
        "book",
        "clock",
        "closed",
        "current_db",
        "current_reducer",
        "datastore",
        "durability",
        "handles",
        "handles_by_class",
        "identity",
        "imports",
        "last_snapshot_offset",
        "last_timestamp_us",
        "listeners",
        "lock",
        "log",
        "memory",
        "module",
        "offset",
        "owner",
        "path",
        "persistence",
        "procedures",
        "read_handles",
        "reducer_calls",
        "reducer_failures",
        "reducer_metrics",
        "remote",
        "retention_running",
        "scheduler",
        "scope",
        "snapshot_interval_tx",
        "sql_views",
        "subscriptions",
        "view",
    )

    def __init__(
        self,
        path: Path,
        loaded: LoadedModule,
        persistence: PersistenceLayer,
        durability: DurabilityConfig,
        identity: Identity,
        owner: Identity,
        clock: Clock,
        next_scheduled_us: Callable[[DatabaseCore], int | None],
        run_due: Callable[[DatabaseCore, int], None],
    ) -> None:
        self.path = path
        """The data directory."""
        self.durability = durability
        """The settings it was opened with (fsync policy, memory limit, snapshot interval)."""
        self.identity = identity
        self.owner = owner
        self.clock = clock
        """Where transaction timestamps and the scheduler's time come from."""
        self.log = ModuleLog(path / "logs")
        """The module log (``logs.py``): failed reducers and the module's ``logging``."""
        self.reducer_metrics = ReducerMetrics()
        self.persistence = persistence
        """The commit log, its fsync policy and the snapshot thread (``durability``)."""
        self.lock = threading.RLock()
        """The writer lock: one transaction, module update or commit read at a time."""
        persistence.writer_lock = self.lock  # the ledger's idle checkpoints take it
        self.scope = WriteScope(self.lock)
        """Where table handles find the running transaction (None outside reducers)."""
        self.datastore = Datastore(loaded.schema)
        self.module = loaded
        """The running module; ``install`` replaces it and everything bound to it."""
        self.handles: dict[str, TableHandle] = {}
        self.read_handles: dict[str, TableReadHandle] = {}
        self.view = DbView({})
        """``ctx.db``: the handles by table name, as a reducer sees them."""
        self.handles_by_class: dict[type, TableHandle] = {}
        self.book = ScheduleBook()
        """The schedule book: when each scheduled row is next due (``scheduler.py``)."""
        self.install(loaded)
        self.offset = 0
        """The offset of the last committed transaction (0: none yet)."""
        self.last_timestamp_us = 0
        """Its timestamp; the next one is strictly later (``transactions.next_timestamp_us``)."""
        self.last_snapshot_offset = 0
        self.snapshot_interval_tx = durability.snapshot_interval_tx
        self.before_snapshot: Callable[[], object] | None = None
        """Runs (under the writer lock) before each snapshot is captured: the event
        tables' retention (``retention.py``), set by ``Database``."""
        self.retention_running = False
        self.subscriptions = SubscriptionManager(
            self.datastore,
            loaded.schema,
            self.lock,
            lambda: self.offset,
            owner,
            lambda: self.sql_views.views,
        )
        """Live queries: ``publish`` tells them of each commit first, and only while
        there are any (``subscriptions.live``), before the ``listeners``."""
        self.listeners: list[CommitListener] = []
        """The commit listeners registered besides the subscriptions, in order."""
        self.reducer_calls = 0
        self.reducer_failures = 0
        self.closed = False
        """Set once by ``close``; every write and scheduled run checks it first."""
        self.current_reducer: str | None = None
        """The reducer running now, named in module log lines."""
        self.current_db: Any = None
        """What module code finds in ``CURRENT_DB`` while this core runs a reducer: the
        ``Database`` over it, which sets it (nested calls, ``Task.insert(...)``, logs)."""
        self.memory = MemoryBudget(durability.memory_limit_bytes)
        self.scheduler = Scheduler(
            clock,
            lambda: next_scheduled_us(self),
            lambda now_us: run_due(self, now_us),
            f"scheduler-{path.name}",
        )
        """The thread that runs scheduled reducers; started once the database is open."""
        self.procedures = ProcedureRunner(f"procedure-{path.name}")
        """The threads procedures run on (made on first use)."""
        self.imports = AppliedImports()
        self.remote = RemoteBook()
        """Idempotency keys of the newest keyed bulk loads (``imports.py``)."""
        self.sql_views = ViewBook()
        """The views ``CREATE VIEW`` made (``query/views.py``, ``host/views.py``)."""

    def install(self, loaded: LoadedModule) -> None:
        """Make ``loaded`` the running module over the datastore's current tables.

        Everything that binds the module to tables is rebuilt here (handles, ``ctx.db``,
        the class map), so nothing keeps a table or schema of the previous module.
        """
        self.module = loaded
        self.handles = {
            name: TableHandle(self.datastore.tables[name], binding, self.scope)
            for name, binding in loaded.rows.items()
        }
        self.read_handles = {  # ``Database.table``'s: they name a missing accessor
            name: TableReadHandle(self.datastore.tables[name], binding, self.scope)
            for name, binding in loaded.rows.items()
        }
        self.view = DbView(self.handles)
        self.handles_by_class = {
            cls: self.handles[name] for cls, name in loaded.table_by_class.items()
        }
        self.book.use_schema(loaded.schema)
        capture_module_logger(loaded.namespace.__name__)

    def table(self, name: str) -> TableHandle:
        """The handle of table ``name``.

        Raises:
            NotFound: no such table (the message lists them).
        """
        handle = self.read_handles.get(name)
        if handle is None:
            known = ", ".join(sorted(self.handles)) or "none"
            raise NotFound(f"no table named {name!r} (tables: {known})")
        return handle

    def handle_for_class(self, cls: type) -> TableHandle:
        handle = self.handles_by_class.get(cls)
        if handle is None:
            raise InvalidRequest(f"{cls.__name__} is not a table of this database's module")
        return handle

    def read_snapshot(self, tables: Iterable[str]) -> Datastore:
        """A view of ``tables`` as of the last commit, taken under the writer lock in
        O(tables), to read without it (``Database.read_snapshot``)."""
        with self.lock:
            return self.datastore.snapshot(tables)

    def request_snapshot(self) -> None:
        """Capture the state now, under the writer lock, for the snapshot thread to write.

        Skipped for an empty database. The capture is O(tables) (rows are immutable
        tuples); encoding and writing happen on the snapshot thread.
        """
        if self.offset == 0:
            return
        if self.before_snapshot is not None and not self.retention_running:
            self.before_snapshot()  # prunes event tables: the snapshot holds the rest
        build = snapshot_builder(
            self.datastore,
            self.module.source,
            self.module.filename,
            self.book.snapshot(self.datastore),
            self.remote.state(),
        )
        imports = self.imports.state()
        views = self.sql_views.state()

        def build_with_imports() -> dict[str, Any]:
            if views:
                return {**build(), "imports": imports, "views": views}
            return {**build(), "imports": imports}

        if self.persistence.request_snapshot(build_with_imports):
            self.last_snapshot_offset = self.offset

    def close(self) -> None:
        """Sync the log, finish snapshots and release the data directory. Idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        self.scheduler.stop()  # after its current run; runs check ``closed`` first
        self.procedures.close()
        self.persistence.close()
        self.log.close()
