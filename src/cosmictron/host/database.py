"""A Database: one module, its tables, and the single writer that runs its reducers.

Calls are serialised by one re-entrant writer lock: a reducer runs, its transaction's
net effect is encoded and appended to the commit log, committed state is published to
commit listeners, and the lock is released. Only then does the caller wait for its
record to become durable (``wait_durable``), so under ``always`` concurrent callers
queue their records behind one fsync (group commit) instead of each paying for its own.

The data directory's host-owned files are described in ``directory.py``; the record body
and snapshot state formats in ``records.py`` (``durability`` owns ``log/``,
``snapshots/`` and ``LOCK``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from cosmictron.datastore import Datastore, TableChange, Transaction, differences
from cosmictron.datastore.migration import plan_migration, reset_datastore, stage_migration
from cosmictron.datastore.types import TypeMismatch
from cosmictron.durability import (
    MODULE_RECORD_KIND,
    TX_RECORD_KIND,
    DurabilityConfig,
    PersistenceConfig,
    PersistenceLayer,
    PersistenceStatistics,
)
from cosmictron.durability.archive import Manifest
from cosmictron.errors import (
    CosmictronError,
    DurabilityError,
    InvalidRequest,
    NotFound,
    ProcedureTimedOut,
    ReducerFailed,
    ResourceExhausted,
    SchemaError,
    SubscriptionError,
)
from cosmictron.host.backup import backup_to_file
from cosmictron.host.clock import Clock, SystemClock
from cosmictron.host.directory import (
    identities,
    load_new_module,
    save_genesis,
    store_module,
    stored_module,
)
from cosmictron.host.handles import Session, TableHandle, insert_all
from cosmictron.host.hotswap import MigrationReport, replay_module_change
from cosmictron.host.imports import AppliedImports, BulkInsertOutcome
from cosmictron.host.logs import ModuleLog, capture_module_logger
from cosmictron.host.memory import MemoryBudget
from cosmictron.host.metrics import ReducerMetrics
from cosmictron.host.procedures import Deadline, ProcedureCall, ProcedureRunner
from cosmictron.host.records import (
    BULK_INSERT,
    apply_record_body,
    load_snapshot_state,
    module_body,
    read_module_body,
    record_schedule,
    snapshot_builder,
    snapshot_module,
    snapshot_schedules,
    transaction_body,
)
from cosmictron.host.scheduler import SCHEDULE_FAILED, Due, ScheduleBook, Scheduler
from cosmictron.host.sql import run_sql
from cosmictron.module import (
    CURRENT_DB,
    LoadedModule,
    ProcedureContext,
    ReducerBinding,
    ReducerContext,
    load_source,
)
from cosmictron.query import QueryResult
from cosmictron.subscription import Subscription, SubscriptionManager
from cosmictron.values import ConnectionId, Identity, Timestamp

_T = TypeVar("_T")

logger = logging.getLogger(__name__)

CommitListener = Callable[[int, Timestamp, list[TableChange]], None]


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What a committed reducer call produced."""

    return_value: Any
    tx_offset: int
    timestamp: Timestamp


@dataclass(frozen=True)
class DatabaseStatistics:
    tx_offset: int
    durable_offset: int
    row_count: int
    estimated_bytes: int
    memory_limit_bytes: int
    reducer_calls: int
    reducer_failures: int


class DbView:
    """``ctx.db``: one handle per table, all bound to the running transaction."""

    def __init__(self, handles: dict[str, TableHandle]) -> None:
        self.__dict__.update(handles)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"the database has no table {name!r}")


class Database:
    """An open database. Create it with ``Database.open``; close it (or use ``with``)."""

    def __init__(
        self,
        path: Path,
        loaded: LoadedModule,
        persistence: PersistenceLayer,
        durability: DurabilityConfig,
        identity: Identity,
        owner: Identity,
        clock: Clock,
    ) -> None:
        self.path = path
        self.module = loaded
        self.durability = durability
        self.identity = identity
        self.owner = owner
        self.log = ModuleLog(path / "logs")
        self.reducer_metrics = ReducerMetrics()
        self._persistence = persistence
        self._lock = threading.RLock()
        self._session = Session(self._lock)
        self._datastore = Datastore(loaded.schema)
        self._handles: dict[str, TableHandle] = {}
        self._view = DbView({})
        self._by_class: dict[type, TableHandle] = {}
        self._clock = clock
        self._book = ScheduleBook()
        self._install(loaded)
        self._offset = 0
        self._subscriptions = SubscriptionManager(
            self._datastore, loaded.schema, self._lock, lambda: self._offset, owner
        )
        self._listeners: list[CommitListener] = [self._subscriptions.on_commit]
        self._last_timestamp_us = 0
        self._last_snapshot_offset = 0
        self._calls = 0
        self._failures = 0
        self._closed = False
        self.current_reducer: str | None = None
        self._memory = MemoryBudget(durability.memory_limit_bytes)
        self._snapshot_interval_tx = durability.snapshot_interval_tx
        self._scheduler = Scheduler(
            clock, self._next_scheduled_us, self._run_due, f"scheduler-{path.name}"
        )
        self._procedures = ProcedureRunner(f"procedure-{path.name}")
        self._imports = AppliedImports()

    def _install(self, loaded: LoadedModule) -> None:
        """Make ``loaded`` the running module over the datastore's current tables.

        Everything that binds the module to tables is rebuilt here (handles, ``ctx.db``,
        the class map), so nothing keeps a table or schema of the previous module.
        """
        self.module = loaded
        self._handles = {
            name: TableHandle(self._datastore.tables[name], binding, self._session)
            for name, binding in loaded.rows.items()
        }
        self._view = DbView(self._handles)
        self._by_class = {cls: self._handles[name] for cls, name in loaded.table_by_class.items()}
        self._book.use_schema(loaded.schema)
        capture_module_logger(loaded.namespace.__name__)

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        module: Any = None,
        *,
        durability: DurabilityConfig | None = None,
        owner: Identity | None = None,
        clock: Clock | None = None,
    ) -> Database:
        """Open (or create) the database stored in ``path``.

        Args:
            path: the data directory; created if missing.
            module: a path to a ``.py`` module or a module object. Optional when the
                directory already holds a database: the module it last ran is used. A
                module whose tables differ from the stored ones is refused (use
                ``update_module`` to migrate); one that changes only reducers is
                recorded in the log as a module update.
            durability: explicit settings; by default they are resolved from the
                environment, ``path/config.toml`` and the ``production`` profile.
            owner: the identity that owns a new database (random if not given).
            clock: where transaction timestamps and the scheduler's time come from;
                the system clock by default (tests pass ``testing.ManualClock``).

        Raises:
            DatabaseInUse: another process has the directory open.
            SchemaError: the module is invalid or would not read the stored data.
            CorruptLog: the log is damaged other than at its tail.
        """
        directory = Path(path)
        if module is None and not (directory / "module" / "module.py").exists():
            raise NotFound(f"{str(directory)!r} holds no database yet; give a module to create one")
        if durability is None:
            config_file = directory / "config.toml"
            durability = DurabilityConfig.resolve(
                environ=os.environ, config_file=config_file if config_file.exists() else None
            )
        explicit = load_new_module(module) if module is not None else None
        persistence = PersistenceLayer(PersistenceConfig(data_dir=str(directory)), durability)
        try:
            base = stored_module(directory, explicit)
            assert base is not None, "checked above: a module was given or one is stored"
            identity, owner = identities(directory, owner)
            database = cls(
                directory, base, persistence, durability, identity, owner, clock or SystemClock()
            )
            database._recover()
            if explicit is not None:
                database._adopt(explicit)
            store_module(directory, database.module)
            if database._offset == 0:
                database._run_init()
        except BaseException:
            persistence.close()
            raise
        database._scheduler.start()
        return database

    def _recover(self) -> None:
        # Replay allocates a tuple per row and keeps all of them; the cyclic garbage
        # collector would rescan the whole growing heap again and again (a 1M-row replay
        # ran twice as long in a process with a large heap) and can free nothing here.
        with _collector_paused():
            self._replay()

    def _replay(self) -> None:
        """Load the newest snapshot, then apply every record after it, in order.

        The replay starts under the module the snapshot was taken under (or the first
        module), and a module record switches module and tables at its offset, so each
        record is decoded with the tables it was written with.
        """
        recovery = self._persistence.recover()
        datastore = self._datastore
        module = self.module
        book = self._book
        if recovery.snapshot is not None:
            taken_under = snapshot_module(recovery.snapshot.state)
            if taken_under is not None and taken_under[0] != module.source:
                module = load_source(*taken_under)
                reset_datastore(datastore, module.schema)
                book.use_schema(module.schema)
            load_snapshot_state(datastore, recovery.snapshot.state)
            book.apply(book.decode(datastore, snapshot_schedules(recovery.snapshot.state)))
            if isinstance(recovery.snapshot.state, dict):
                self._imports.load(recovery.snapshot.state.get("imports"))
            self._offset = recovery.snapshot.offset
            self._last_snapshot_offset = recovery.snapshot.offset
        for record in recovery.records:
            if record.kind == TX_RECORD_KIND:
                apply_record_body(datastore, record.body)
                schedule = record_schedule(record.body)
                if schedule:
                    book.apply(book.decode(datastore, schedule))
                self._last_timestamp_us = record.body[0]
                if record.body[3] == BULK_INSERT:
                    self._imports.observe(record.body[4], record.offset)
            elif record.kind == MODULE_RECORD_KIND:
                change = read_module_body(record.body)
                module = replay_module_change(datastore, module, change, record.offset)
                book.use_schema(module.schema)
                book.reconcile(datastore, change.timestamp_us)
                if change.clear:
                    self._imports.clear()
                self._last_timestamp_us = change.timestamp_us
            self._offset = record.offset
        if module is not self.module:
            self._install(module)
            self._subscriptions.schema_changed(module.schema)
        # Only a log from before scheduling existed leaves rows without an entry.
        book.reconcile(datastore, self._clock.now_us())
        self._memory.reset(datastore)

    def _adopt(self, explicit: LoadedModule) -> None:
        """Run the module ``open`` was given, after replay: it must fit the stored tables.

        The same source is only rebound (the caller's classes must be the table classes).
        Different source with the same tables is a module update without migration,
        recorded like any other so that replay and ``open(path)`` find it.

        Raises:
            SchemaError: its tables differ from the stored ones.
        """
        if explicit.source == self.module.source or self._offset == 0:
            if self._offset == 0:  # nothing was written under the stored module
                reset_datastore(self._datastore, explicit.schema)
                self._subscriptions.schema_changed(explicit.schema)
            self._install(explicit)
            return
        problems = differences(self.module.schema, explicit.schema)
        if problems:
            raise SchemaError(
                f"the module does not match the data in {str(self.path)!r}: "
                f"{'; '.join(problems)} (use Database.update_module to migrate the data)"
            )
        self.update_module(explicit)

    def _run_init(self) -> None:
        binding = self.module.lifecycle.get("init")
        if binding is not None:
            self._execute(self.module, binding, [], [], self.owner, None)

    # -- calling ----------------------------------------------------------------------

    def call(self, reducer: str, *args: Any, **kwargs: Any) -> Any:
        """Run a reducer (or a procedure) as the database's owner and return its value.

        Raises:
            NotFound: no such reducer or procedure.
            InvalidRequest: the arguments do not match its signature.
            ReducerFailed: it raised; nothing it did was kept (a procedure keeps the
                transactions its ``with_tx`` calls committed).
            ProcedureTimedOut: a procedure ran past its ``timeout_s``.
        """
        module = self.module
        binding = module.reducers.get(reducer)
        if binding is None:
            if reducer in module.procedures:
                return self.start_procedure(reducer, args, kwargs).result().return_value
            self._raise_unknown_reducer(reducer)
        values, wire_args = binding.bind(args, kwargs)
        return self._execute(module, binding, values, wire_args, self.owner, None, (args, kwargs))[
            0
        ]

    def execute_reducer(
        self,
        reducer: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        sender: Identity | None = None,
        connection_id: ConnectionId | None = None,
        durable: bool = True,
    ) -> CallOutcome:
        """Run a reducer (or a procedure) for a caller; the server and SDK use this form.

        ``durable=False`` returns once a reducer's transaction is committed and published,
        before it is durable: the caller must ``wait_durable(outcome.tx_offset)`` before
        it reports success. The server does that once for a batch of calls, so they share
        one fsync.
        """
        module = self.module
        binding = module.reducers.get(reducer)
        if binding is None:
            if reducer in module.procedures:
                return self.start_procedure(
                    reducer, args, kwargs, sender=sender, connection_id=connection_id
                ).result()
            self._raise_unknown_reducer(reducer)
        values, wire_args = binding.bind(args, kwargs or {})
        value, offset, now_us = self._execute(
            module,
            binding,
            values,
            wire_args,
            sender or self.owner,
            connection_id,
            (args, kwargs or {}),
            durable,
        )
        return CallOutcome(value, offset, Timestamp(now_us))

    def _rebind(
        self, binding: ReducerBinding, call: tuple[Sequence[Any], Mapping[str, Any]] | None
    ) -> tuple[ReducerBinding, Sequence[Any], Sequence[Any]]:
        """``binding``'s reducer in the running module, with the call's arguments bound."""
        name, kind = binding.schema.name, binding.schema.kind
        if call is None:  # a lifecycle reducer: no arguments
            found = self.module.lifecycle.get(kind)
            if found is None:
                raise NotFound(f"the updated module has no @{kind} reducer")
            return found, [], []
        found = self.module.reducers.get(name)
        if found is None:
            self._raise_unknown_reducer(name)
        args, kwargs = call
        values, wire_args = found.bind(tuple(args), dict(kwargs))
        return found, values, wire_args

    def _raise_unknown_reducer(self, reducer: str) -> NoReturn:
        known = ", ".join(sorted([*self.module.reducers, *self.module.procedures])) or "none"
        raise NotFound(f"no reducer named {reducer!r} (reducers: {known})")

    def run_lifecycle(
        self, kind: str, sender: Identity, connection_id: ConnectionId | None
    ) -> CallOutcome | None:
        """Run the module's ``client_connected``/``client_disconnected`` reducer, if any."""
        module = self.module
        binding = module.lifecycle.get(kind)
        if binding is None:
            return None
        value, offset, now_us = self._execute(module, binding, [], [], sender, connection_id)
        return CallOutcome(value, offset, Timestamp(now_us))

    # -- procedures ---------------------------------------------------------------------

    def start_procedure(
        self,
        procedure: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        sender: Identity | None = None,
        connection_id: ConnectionId | None = None,
    ) -> ProcedureCall:
        """Start a procedure call on the procedure threads; wait with ``.result()``.

        The arguments are checked here, before anything runs. The server awaits
        ``.wait()`` instead, so a slow procedure holds no thread of the database's pool.
        See ``host/procedures.py`` for timeouts and ``with_tx``.

        Raises:
            NotFound: no such procedure.
            InvalidRequest: the arguments do not match its signature.
        """
        binding = self.module.procedures.get(procedure)
        if binding is None:
            self._raise_unknown_reducer(procedure)
        values, wire_args = binding.bind(tuple(args), kwargs or {})
        caller = sender or self.owner
        deadline = Deadline(procedure, binding.timeout_s)
        last_offset = [0]

        def run_tx(fn: Callable[[ReducerContext], Any]) -> Any:
            deadline.check()
            value, offset = self._with_tx(procedure, fn, wire_args, caller, connection_id)
            last_offset[0] = offset
            return value

        def run() -> CallOutcome:
            deadline.check()  # it waited in the queue past its deadline: never start
            started_us = self._clock.now_us()
            ctx = ProcedureContext(
                procedure, caller, connection_id, self.identity, Timestamp(started_us), run_tx
            )
            started = time.perf_counter()
            try:
                value = binding.function(ctx, *values)
                _check_return(binding, value)
            except ProcedureTimedOut:
                self.reducer_metrics.observe(procedure, time.perf_counter() - started, True)
                raise
            except Exception as exc:
                self.reducer_metrics.observe(procedure, time.perf_counter() - started, True)
                failure = _as_reducer_failure(procedure, exc)
                self.log.append("ERROR", str(failure), procedure)
                raise failure from exc
            self.reducer_metrics.observe(procedure, time.perf_counter() - started, False)
            return CallOutcome(value, last_offset[0], Timestamp(started_us))

        return ProcedureCall(procedure, self._procedures.submit(run), deadline)

    def _with_tx(
        self,
        procedure: str,
        fn: Callable[[ReducerContext], Any],
        wire_args: Any,
        sender: Identity,
        connection_id: ConnectionId | None,
    ) -> tuple[Any, int]:
        """A procedure's ``ctx.with_tx(fn)``: one transaction, logged ``<name>/with_tx``."""
        name = f"{procedure}/with_tx"
        with self._lock:
            self._check_can_write(name)
            value, offset, _ = self._transact(name, fn, wire_args, sender, connection_id)
        self._persistence.wait_durable(offset)
        return value, offset

    # -- scheduled reducers -------------------------------------------------------------

    def wait_scheduler_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until every scheduled run due at the clock's current time has committed.

        For tests and tools driving a ``ManualClock``: advance it, then wait here.
        Returns False if ``timeout_s`` passed first or the database closed.
        """
        return self._scheduler.wait_idle(timeout_s)

    def _next_scheduled_us(self) -> int | None:
        with self._lock:
            return None if self._closed else self._book.next_due()

    def _run_due(self, now_us: int) -> None:
        """The scheduler's pass: run every row due at ``now_us``, one transaction each."""
        with self._lock:
            if self._closed:
                return
            due = self._book.due(now_us)
        for item in due:
            offset = self._run_scheduled(item)
            if offset is not None:
                self._persistence.wait_durable(offset)

    def _run_scheduled(self, due: Due) -> int | None:
        """Run one due row's reducer; on failure, commit only its bookkeeping.

        Returns the offset of the transaction that consumed the due time, or None when
        the row was cancelled or already ran meanwhile.
        """
        with self._lock:
            entry = self._book.entry(due.table, due.key)
            if self._closed or entry is None or entry[1] != due.due_us:
                return None
            module = self.module
            table_schema = module.schema.table(due.table)
            assert table_schema is not None and table_schema.scheduled is not None
            reducer = table_schema.scheduled
            binding = module.reducers[reducer]
            table = self._datastore.tables[due.table]
            one_shot = self._book.schedule_of(due.table, entry[0]).kind == "at"
            values, wire_args = binding.bind((module.rows[due.table].to_object(entry[0]),), {})
            function = binding.function

            def finish_one_shot() -> None:
                tx = self._session.tx
                assert tx is not None, "runs inside _transact"
                if one_shot and due.key in table.rows:
                    tx.delete(table, due.key)

            def run(ctx: ReducerContext) -> None:
                function(ctx, *values)
                finish_one_shot()

            try:
                _, offset, _ = self._transact(reducer, run, wire_args, self.identity, None, due)
            except (ReducerFailed, ResourceExhausted) as exc:
                # Logged by _transact. The due time is consumed all the same, or the
                # scheduler would run it again at once, forever.
                _, offset, _ = self._transact(
                    SCHEDULE_FAILED,
                    lambda ctx: finish_one_shot(),
                    [due.table, reducer, str(exc)],
                    self.identity,
                    None,
                    due,
                )
            return offset

    def _execute(
        self,
        module: LoadedModule,
        binding: ReducerBinding,
        values: Sequence[Any],
        wire_args: Sequence[Any],
        sender: Identity,
        connection_id: ConnectionId | None,
        call: tuple[Sequence[Any], Mapping[str, Any]] | None = None,
        durable: bool = True,
    ) -> tuple[Any, int, int]:
        """Run one call; returns (return value, offset, timestamp in µs), once durable
        unless ``durable`` is False.

        ``binding`` was looked up in ``module`` and the arguments bound outside the
        lock. If a module update ran in between, the reducer is looked up and its
        arguments (``call``: positional, keyword) bound again under the new module, so
        a call never runs old code against the new tables.
        """
        started = time.perf_counter()
        failed = True
        try:
            result = self._run_call(
                module, binding, values, wire_args, sender, connection_id, call, durable
            )
            failed = False
            return result
        finally:
            self.reducer_metrics.observe(binding.schema.name, time.perf_counter() - started, failed)

    def _run_call(
        self,
        module: LoadedModule,
        binding: ReducerBinding,
        values: Sequence[Any],
        wire_args: Sequence[Any],
        sender: Identity,
        connection_id: ConnectionId | None,
        call: tuple[Sequence[Any], Mapping[str, Any]] | None,
        durable: bool,
    ) -> tuple[Any, int, int]:
        with self._lock:
            if module is not self.module:
                binding, values, wire_args = self._rebind(binding, call)
            self._check_can_write(f"Database.call({binding.schema.name!r})")
            function = binding.function

            def run(ctx: ReducerContext) -> Any:
                value = function(ctx, *values)
                _check_return(binding, value)
                return value

            result = self._transact(binding.schema.name, run, wire_args, sender, connection_id)
        if durable:
            self._persistence.wait_durable(result[1])
        return result

    def _transact(
        self,
        name: str,
        run: Callable[[ReducerContext], Any],
        wire_args: Any,
        sender: Identity,
        connection_id: ConnectionId | None,
        ran: Due | None = None,
    ) -> tuple[Any, int, int]:
        """Run ``run(ctx)`` as one transaction logged under ``name``, and publish it.

        Reducer calls, scheduled runs and a procedure's ``with_tx`` all come through
        here, so they share one rollback, logging and commit path. The caller holds the
        writer lock and has checked that it may write; it waits for durability after
        releasing the lock. ``ran`` is the scheduled run this transaction performs.

        Returns:
            (``run``'s value, offset, timestamp in µs).
        """
        self._calls += 1
        now_us = self._next_timestamp_us()
        tx = Transaction()
        session = self._session
        session.tx = tx
        self.current_reducer = name
        ctx = ReducerContext(
            self._view, sender, connection_id, now_us, self.identity, (self._offset + 1) ^ now_us
        )
        token = CURRENT_DB.set(self)
        try:
            value = run(ctx)
            offset, changes = self._commit(tx, name, wire_args, sender, connection_id, now_us, ran)
        except BaseException as exc:
            tx.rollback()
            self._failures += 1
            if not isinstance(exc, Exception):
                raise
            if isinstance(exc, DurabilityError | ResourceExhausted):
                self.log.append("ERROR", f"reducer {name!r} not committed: {exc}", name)
                raise
            failure = _as_reducer_failure(name, exc)
            self.log.append("ERROR", str(failure), name)
            raise failure from exc
        finally:
            session.tx = None
            self.current_reducer = None
            CURRENT_DB.reset(token)
        self._published(offset, now_us, changes)
        return value, offset, now_us

    def bulk_insert(self, table: str, rows: Iterable[Any]) -> int:
        """Insert many rows in one transaction: all of them, or none.

        Each row is a sequence of column values in declaration order or a dict by column
        name (missing columns take their defaults). The record names the pseudo-reducer
        ``__bulk_insert__`` so audits can tell loads from reducer calls.

        Returns:
            The transaction offset.

        Raises:
            NotFound: no such table.
            InvalidRequest: a row is malformed; the message names its position (0-based).
            Conflict: a row duplicates a key; nothing was inserted.
        """
        self.table(table)  # raises NotFound naming the tables

        def load(tx: Transaction, datastore: Datastore) -> int:
            # Looked up under the lock, so a module update cannot slip in between.
            binding = self.module.rows.get(table)
            if binding is None:
                self.table(table)
            assert binding is not None
            target = datastore.tables[table]
            with _collector_paused():  # see _recover: many new rows, no garbage
                return insert_all(tx, target, binding, rows)

        _, offset = self.run_transaction(BULK_INSERT, load, lambda count: [table, count])
        return offset

    def bulk_insert_once(
        self, table: str, rows: Iterable[Any], key: str | None
    ) -> BulkInsertOutcome:
        """``bulk_insert``, applied at most once per ``(table, key)``.

        The key is recorded in the load's own record (``host/imports.py``), so a client
        that lost the reply can send the same batch again and learn it was applied,
        instead of loading it twice. Without a key it is ``bulk_insert`` that also
        reports the row count.

        Returns:
            The new load's offset and row count; or, when ``key`` was applied before,
            that load's, with ``already_applied`` set and nothing changed.

        Raises:
            As ``bulk_insert``.
        """
        self.table(table)  # raises NotFound naming the tables
        added: list[bool] = []

        def load(tx: Transaction, datastore: Datastore) -> int:
            # Under the writer lock, so two requests with one key cannot both load.
            if key is not None and self._imports.find(table, key) is not None:
                raise _AlreadyApplied
            binding = self.module.rows.get(table)
            if binding is None:
                self.table(table)
            assert binding is not None
            with _collector_paused():
                count = insert_all(tx, datastore.tables[table], binding, rows)
            # The record about to be appended takes the next offset (the log's contract);
            # the key is remembered now, still under the lock, and forgotten on failure.
            if key is not None:
                self._imports.add(table, key, self._offset + 1, count)
                added.append(True)
            return count

        try:
            count, offset = self.run_transaction(
                BULK_INSERT,
                load,
                lambda count: [table, count] if key is None else [table, count, key],
            )
        except _AlreadyApplied:
            assert key is not None, "only a keyed load is found applied"
            with self._lock:
                found = self._imports.find(table, key)
            assert found is not None, "a key found applied is kept"
            return BulkInsertOutcome(found[0], found[1], already_applied=True)
        except BaseException:
            if key is not None and added:
                with self._lock:
                    self._imports.discard(table, key)
            raise
        assert key is None or self._imports.find(table, key) in (None, (offset, count))
        return BulkInsertOutcome(offset, count, already_applied=False)

    def update_module(
        self, module: Any, *, clear: bool = False, filename: str | None = None
    ) -> MigrationReport:
        """Replace the running module, migrating the stored data, while the database is open.

        Runs under the writer lock, between transactions: callers wait for it, and
        subscribers stay connected (those reading a table the update changed get a
        ``SubscriptionError``; with ``clear``, all of them). The update is a module
        record in the log, so it is as durable as a transaction and a restart replays
        the records before it under the old tables and those after it under the new.
        Allowed changes and refusals: docs/guide/updating-modules.md.

        Args:
            module: a path to a ``.py`` file, a module object, or the source as bytes.
            clear: wipe every row and install the new schema whatever it changes; the
                new module's ``@init`` then runs.
            filename: the file name to record for source given as bytes.

        Returns:
            What was done, with the offset of the module record.

        Raises:
            SchemaError: the module does not load or declares an invalid schema, or
                (without ``clear``) the stored data cannot migrate to it; the message
                lists every incompatibility. Nothing was changed.
            DurabilityError: the record could not be written; nothing was changed.
        """
        loaded = load_new_module(module, filename)  # runs module code: outside the lock
        with self._lock:
            self._check_can_write("update_module")
            plan = plan_migration(self.module.schema, loaded.schema)
            staged = None if clear else stage_migration(self._datastore, plan)
            save_genesis(self.path, self.module)
            now_us = self._next_timestamp_us()
            body = module_body(
                now_us, self.owner, loaded.source, loaded.filename, loaded.schema, clear
            )
            offset = self._persistence.append(MODULE_RECORD_KIND, body)
            # The record is written: from here on, nothing may fail half-way.
            if staged is None:
                reset_datastore(self._datastore, loaded.schema)
                self._imports.clear()
                self._subscriptions.end_all(
                    "the module was updated with clear: every row was deleted; subscribe again"
                )
            else:
                staged.commit()
            self._install(loaded)
            self._book.reconcile(self._datastore, now_us)  # as replay does, at this record
            self._scheduler.wake()
            self._offset = offset
            self._last_timestamp_us = now_us
            self._memory.reset(self._datastore)
            self._subscriptions.schema_changed(loaded.schema)
            self.log.append("INFO", f"module updated at offset {offset} ({loaded.filename})")
            try:
                store_module(self.path, loaded)
            except OSError:
                # The log holds the update and wins on open; the files are a convenience.
                logger.exception("could not store the updated module in %s", self.path)
            if clear:
                self._run_init()
        self._persistence.wait_durable(offset)
        return MigrationReport.from_plan(plan, offset, clear)

    def _check_can_write(self, action: str) -> None:
        if self._closed:
            raise InvalidRequest(f"database {str(self.path)!r} is closed")
        if self._session.tx is not None:  # this thread is inside a reducer already
            raise InvalidRequest(
                f"{action} from inside a reducer would start a second transaction; "
                f"call it outside reducers (a reducer calls another reducer's function "
                f"directly to join its transaction)"
            )

    def run_transaction(
        self,
        reducer: str,
        function: Callable[[Transaction, Datastore], _T],
        wire_args: Callable[[_T], Any],
        sender: Identity | None = None,
    ) -> tuple[_T, int]:
        """Run ``function(tx, datastore)`` as one transaction, logged under ``reducer``.

        The host's own writes (bulk loads, SQL DML) use this: the same writer lock,
        memory check, record, listeners and durability wait as a reducer call. The
        record's arguments are ``wire_args(result)``. Anything ``function`` raises rolls
        the transaction back and propagates unchanged.

        Returns:
            ``function``'s result and the transaction offset (once durable).
        """
        with self._lock:
            if self._closed:
                raise InvalidRequest(f"database {str(self.path)!r} is closed")
            if self._session.tx is not None:
                raise InvalidRequest(
                    f"{reducer} from inside a reducer would start a second transaction; "
                    f"write through ctx.db instead"
                )
            now_us = self._next_timestamp_us()
            tx = Transaction()
            try:
                value = function(tx, self._datastore)
                offset, changes = self._commit(
                    tx, reducer, wire_args(value), sender or self.owner, None, now_us
                )
            except BaseException:
                tx.rollback()
                raise
            self._published(offset, now_us, changes)
        self._persistence.wait_durable(offset)
        return value, offset

    def sql(
        self,
        text: str,
        params: Mapping[str, Any] | None = None,
        *,
        sender: Identity | None = None,
        rows_max: int | None = None,
    ) -> QueryResult:
        """Run one SQL statement; see docs/reference/sql.md and ``host/sql.py``.

        Raises:
            SqlError: the statement is invalid (with line, column and text).
            PermissionDenied: a non-owner reads a private table or writes at all.
            ResourceExhausted: the result has more than ``rows_max`` rows.
            Conflict: DML would duplicate a key; nothing was changed.
        """
        return run_sql(self, text, params, sender or self.owner, rows_max)

    def subscribe(
        self,
        queries: Sequence[str],
        on_update: Callable[[dict[str, Any]], Any] | None = None,
        params: Mapping[str, Any] | None = None,
        sender: Identity | None = None,
        on_error: Callable[[SubscriptionError], Any] | None = None,
    ) -> Subscription:
        """Subscribe to ``queries``: rows now (``.initial``), then each change.

        ``on_update(update)`` is called synchronously, under the writer lock, once per
        later transaction that changes the result; keep it short. ``on_error(error)`` is
        called once if the database ends the subscription (a module update drops or
        changes a table it reads; its maintenance fails). See
        docs/guide/subscriptions.md for the message shapes and guarantees.

        Raises:
            SqlError: a query is invalid or not subscribable (the message says why).
            PermissionDenied: a non-owner subscribes to a private table.
        """
        return self._subscriptions.subscribe(
            queries, on_update, params, sender or self.owner, on_error
        )

    def _next_timestamp_us(self) -> int:
        """Now, but strictly after the last transaction's timestamp (the clock may step)."""
        return max(self._clock.now_us(), self._last_timestamp_us + 1)

    def _commit(
        self,
        tx: Transaction,
        reducer: str,
        wire_args: Any,
        sender: Identity,
        connection_id: ConnectionId | None,
        now_us: int,
        ran: Due | None = None,
    ) -> tuple[int, list[TableChange]]:
        """Check memory, append the record; the caller publishes (or rolls back).

        The schedule book's changes (``ran`` and any write to a scheduled table) go in
        the same record and are applied only once it is appended: a run and its
        bookkeeping commit together (docs/design/scheduler.md).
        """
        changes = tx.changes()
        estimate = self._memory.check(changes)
        book = self._book
        updates = book.plan(changes, now_us, ran) if book.active else []
        body = transaction_body(
            self._datastore,
            tx,
            changes,
            reducer,
            wire_args,
            sender,
            connection_id,
            now_us,
            book.encode(self._datastore, updates) if updates else None,
        )
        offset = self._persistence.append(TX_RECORD_KIND, body)
        self._memory.commit(estimate, changes)
        if updates:
            book.apply(updates)
            self._scheduler.wake()
        return offset, changes

    def _published(self, offset: int, now_us: int, changes: list[TableChange]) -> None:
        """After the append: advance the offset, tell listeners, maybe snapshot."""
        self._offset = offset
        self._last_timestamp_us = now_us
        if self._listeners:
            timestamp = Timestamp(now_us)
            for listener in self._listeners:
                try:
                    listener(offset, timestamp, changes)
                except Exception:
                    # The transaction is in the log: its caller must hear it committed.
                    # A listener that fails is a bug in the layer that registered it.
                    logger.exception("commit listener %r failed at offset %d", listener, offset)
        if offset - self._last_snapshot_offset >= self._snapshot_interval_tx:
            self._snapshot()

    def call_nested(
        self,
        name: str,
        function: Callable[..., Any],
        ctx: ReducerContext,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """A reducer called from a reducer: same transaction, its own savepoint.

        Its arguments are checked like a client's, so a reducer sees the same values
        whoever calls it.
        """
        tx = self._session.tx
        assert tx is not None, "nested reducer call outside a transaction"
        binding = self.module.reducers.get(name)
        if binding is None or binding.function is not function:
            raise InvalidRequest(f"reducer {name!r} is not part of this database's module")
        values, _ = binding.bind(args, kwargs)
        savepoint = tx.savepoint()
        try:
            value = function(ctx, *values)
            _check_return(binding, value)
            return value
        except BaseException:
            tx.rollback_to(savepoint)
            raise

    def handle_for_class(self, cls: type) -> TableHandle:
        handle = self._by_class.get(cls)
        if handle is None:
            raise InvalidRequest(f"{cls.__name__} is not a table of this database's module")
        return handle

    # -- reading ----------------------------------------------------------------------

    def table(self, name: str) -> TableHandle:
        """A read-only handle: ``iter()``, ``count()``, ``<column>.find/filter``."""
        handle = self._handles.get(name)
        if handle is None:
            known = ", ".join(sorted(self._handles)) or "none"
            raise NotFound(f"no table named {name!r} (tables: {known})")
        return handle

    def rows(self, name: str) -> list[Any]:
        """Every row of a table, as row objects."""
        return list(self.table(name).iter())

    def read(self, function: Callable[[Datastore], Any]) -> Any:
        """Run ``function`` over the datastore with no writer running (query layer)."""
        with self._lock:
            return function(self._datastore)

    @property
    def tx_offset(self) -> int:
        """The offset of the last committed transaction (0 for an empty database)."""
        return self._offset

    @property
    def durable_offset(self) -> int:
        """The highest offset durable under the fsync policy (see ``wait_durable``)."""
        return self._persistence.durable_offset

    def wait_durable(self, offset: int) -> None:
        """Block until ``offset`` is durable under the fsync policy (no-op unless ``always``).

        Raises:
            DurabilityError: a sync failed, now or earlier.
        """
        self._persistence.wait_durable(offset)

    @property
    def schema(self) -> Any:
        return self.module.schema

    def logs(self, num_lines: int | None = None, level: str | None = None) -> list[dict[str, Any]]:
        """The newest ``num_lines`` module log lines at ``level`` or above, oldest first."""
        return [line.as_dict() for line in self.log.lines(num_lines, level)]

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call ``listener(offset, timestamp, changes)`` after each commit, in order."""
        with self._lock:
            self._listeners.append(listener)

    def statistics(self) -> DatabaseStatistics:
        with self._lock:
            return DatabaseStatistics(
                tx_offset=self._offset,
                durable_offset=self._persistence.durable_offset,
                row_count=sum(len(t) for t in self._datastore),
                estimated_bytes=self._memory.used_bytes,
                memory_limit_bytes=self.durability.memory_limit_bytes,
                reducer_calls=self._calls,
                reducer_failures=self._failures,
            )

    def persistence_statistics(self) -> PersistenceStatistics:
        """The commit log's counters (appends, syncs and their latency) for ``/metrics``."""
        return self._persistence.statistics()

    def subscription_statistics(self) -> dict[str, Any]:
        """Active subscriptions, the distinct live queries maintained for them, and the
        time spent keeping them up to date since the database opened."""
        manager = self._subscriptions
        return {
            "subscriptions": manager.subscription_count,
            "queries": manager.query_count,
            "maintenance_seconds": manager.maintenance_seconds,
        }

    def check_invariants(self) -> None:
        with self._lock:
            self._datastore.check_invariants()

    # -- snapshots and closing ----------------------------------------------------------

    def snapshot(self) -> None:
        """Write a snapshot of the current state now (and wait for it)."""
        with self._lock:
            self._snapshot()
        self._persistence.wait_snapshots()

    def _snapshot(self) -> None:
        if self._offset == 0:
            return
        build = snapshot_builder(
            self._datastore,
            self.module.source,
            self.module.filename,
            self._book.snapshot(self._datastore),
        )
        imports = self._imports.state()

        def build_with_imports() -> dict[str, Any]:
            return {**build(), "imports": imports}

        if self._persistence.request_snapshot(build_with_imports):
            self._last_snapshot_offset = self._offset

    def backup(self, path: str | os.PathLike[str]) -> Manifest:
        """Write a verified backup of this database to the file ``path``, while writes go on.

        The backup holds the state at the last transaction committed when it starts (its
        cut); transactions committed meanwhile are not in it. Restore it with
        ``cosmictron.host.backup.restore`` (docs/guide/backup-restore.md).

        Returns:
            The backup's manifest (``cut_offset``, ``cut_hash``, members and checksums).

        Raises:
            BackupDamaged: the written file failed verification (it was deleted).
        """
        return backup_to_file(self, path)

    def close(self) -> None:
        """Sync the log, finish snapshots and release the data directory. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._scheduler.stop()  # after its current run; runs check ``_closed`` first
        self._procedures.close()
        self._persistence.close()
        self.log.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r}, tx_offset={self._offset})"


class _AlreadyApplied(Exception):
    """Raised inside a keyed bulk load's transaction to roll it back: nothing to do."""


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_return(binding: ReducerBinding, value: Any) -> None:
    schema = binding.schema
    if schema.return_type is None:
        if value is not None and binding.returns_none:
            raise InvalidRequest(
                f"reducer {schema.name!r} is annotated -> None but returned {value!r}"
            )
        return
    try:
        schema.return_type.check(value)
    except TypeMismatch as exc:
        raise InvalidRequest(f"reducer {schema.name!r} returned a wrong value: {exc}") from None


def _as_reducer_failure(name: str, exc: BaseException) -> CosmictronError:
    if isinstance(exc, ReducerFailed):
        return exc
    message = str(exc) or type(exc).__name__
    if not isinstance(exc, CosmictronError):
        message = f"{type(exc).__name__}: {message}"
    return ReducerFailed(name, message, type(exc).__name__)
