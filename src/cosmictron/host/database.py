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

from cosmictron.datastore import Datastore, TableChange, Transaction
from cosmictron.datastore.types import TypeMismatch
from cosmictron.durability import (
    TX_RECORD_KIND,
    DurabilityConfig,
    PersistenceConfig,
    PersistenceLayer,
)
from cosmictron.errors import (
    CosmictronError,
    DurabilityError,
    InvalidRequest,
    NotFound,
    ReducerFailed,
    ResourceExhausted,
    SubscriptionError,
)
from cosmictron.host.directory import identities, load_and_store_module
from cosmictron.host.handles import Session, TableHandle, insert_all
from cosmictron.host.logs import ModuleLog, capture_module_logger
from cosmictron.host.memory import MemoryBudget
from cosmictron.host.records import (
    BULK_INSERT,
    apply_record_body,
    load_snapshot_state,
    snapshot_builder,
    transaction_body,
)
from cosmictron.host.sql import run_sql
from cosmictron.module import (
    CURRENT_DB,
    LoadedModule,
    ReducerBinding,
    ReducerContext,
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
    ) -> None:
        self.path = path
        self.module = loaded
        self.durability = durability
        self.identity = identity
        self.owner = owner
        self.log = ModuleLog()
        self._persistence = persistence
        self._lock = threading.RLock()
        self._session = Session(self._lock)
        self._datastore = Datastore(loaded.schema)
        self._handles = {
            name: TableHandle(self._datastore.tables[name], binding, self._session)
            for name, binding in loaded.rows.items()
        }
        self._view = DbView(self._handles)
        self._by_class = {cls: self._handles[name] for cls, name in loaded.table_by_class.items()}
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
    ) -> Database:
        """Open (or create) the database stored in ``path``.

        Args:
            path: the data directory; created if missing.
            module: a path to a ``.py`` module or a module object. Optional when the
                directory already holds a database: its stored module is used.
            durability: explicit settings; by default they are resolved from the
                environment, ``path/config.toml`` and the ``production`` profile.
            owner: the identity that owns a new database (random if not given).

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
        persistence = PersistenceLayer(PersistenceConfig(data_dir=str(directory)), durability)
        try:
            loaded = load_and_store_module(directory, module)
            identity, owner = identities(directory, owner)
            database = cls(directory, loaded, persistence, durability, identity, owner)
            database._recover()
            if database._offset == 0:
                database._run_init()
        except BaseException:
            persistence.close()
            raise
        return database

    def _recover(self) -> None:
        # Replay allocates a tuple per row and keeps all of them; the cyclic garbage
        # collector would rescan the whole growing heap again and again (a 1M-row replay
        # ran twice as long in a process with a large heap) and can free nothing here.
        with _collector_paused():
            self._replay()

    def _replay(self) -> None:
        recovery = self._persistence.recover()
        datastore = self._datastore
        if recovery.snapshot is not None:
            load_snapshot_state(datastore, recovery.snapshot.state)
            self._offset = recovery.snapshot.offset
            self._last_snapshot_offset = recovery.snapshot.offset
        for record in recovery.records:
            if record.kind == TX_RECORD_KIND:
                apply_record_body(datastore, record.body)
                self._last_timestamp_us = record.body[0]
            self._offset = record.offset
        self._memory.reset(datastore)

    def _run_init(self) -> None:
        binding = self.module.lifecycle.get("init")
        if binding is not None:
            self._execute(binding, [], [], self.owner, None)

    # -- calling ----------------------------------------------------------------------

    def call(self, reducer: str, *args: Any, **kwargs: Any) -> Any:
        """Run a reducer as the database's owner and return its return value.

        Raises:
            NotFound: no such reducer.
            InvalidRequest: the arguments do not match its signature.
            ReducerFailed: it raised; nothing it did was kept.
        """
        binding = self.module.reducers.get(reducer)
        if binding is None:
            self._raise_unknown_reducer(reducer)
        values, wire_args = binding.bind(args, kwargs)
        return self._execute(binding, values, wire_args, self.owner, None)[0]

    def execute_reducer(
        self,
        reducer: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        sender: Identity | None = None,
        connection_id: ConnectionId | None = None,
    ) -> CallOutcome:
        """Run a reducer for a caller; the server and SDK use this form."""
        binding = self.module.reducers.get(reducer)
        if binding is None:
            self._raise_unknown_reducer(reducer)
        values, wire_args = binding.bind(args, kwargs or {})
        value, offset, now_us = self._execute(
            binding, values, wire_args, sender or self.owner, connection_id
        )
        return CallOutcome(value, offset, Timestamp(now_us))

    def _raise_unknown_reducer(self, reducer: str) -> NoReturn:
        known = ", ".join(sorted(self.module.reducers)) or "none"
        raise NotFound(f"no reducer named {reducer!r} (reducers: {known})")

    def run_lifecycle(
        self, kind: str, sender: Identity, connection_id: ConnectionId | None
    ) -> CallOutcome | None:
        """Run the module's ``client_connected``/``client_disconnected`` reducer, if any."""
        binding = self.module.lifecycle.get(kind)
        if binding is None:
            return None
        value, offset, now_us = self._execute(binding, [], [], sender, connection_id)
        return CallOutcome(value, offset, Timestamp(now_us))

    def _execute(
        self,
        binding: ReducerBinding,
        values: Sequence[Any],
        wire_args: Sequence[Any],
        sender: Identity,
        connection_id: ConnectionId | None,
    ) -> tuple[Any, int, int]:
        """Run one call; returns (return value, offset, timestamp in µs) once durable."""
        schema = binding.schema
        with self._lock:
            if self._closed:
                raise InvalidRequest(f"database {str(self.path)!r} is closed")
            if self._session.tx is not None:  # this thread is inside a reducer already
                raise InvalidRequest(
                    f"Database.call({schema.name!r}) from inside a reducer would start a "
                    f"second transaction; call the reducer function itself to join this one"
                )
            self._calls += 1
            now_us = self._next_timestamp_us()
            tx = Transaction()
            session = self._session
            session.tx = tx
            self.current_reducer = schema.name
            ctx = ReducerContext(
                self._view,
                sender,
                connection_id,
                now_us,
                self.identity,
                (self._offset + 1) ^ now_us,
            )
            token = CURRENT_DB.set(self)
            try:
                value = binding.function(ctx, *values)
                _check_return(binding, value)
                offset, changes = self._commit(
                    tx, schema.name, wire_args, sender, connection_id, now_us
                )
            except BaseException as exc:
                tx.rollback()
                self._failures += 1
                if not isinstance(exc, Exception):
                    raise
                if isinstance(exc, DurabilityError | ResourceExhausted):
                    self.log.append(
                        "ERROR", f"reducer {schema.name!r} not committed: {exc}", schema.name
                    )
                    raise
                failure = _as_reducer_failure(schema.name, exc)
                self.log.append("ERROR", str(failure), schema.name)
                raise failure from exc
            finally:
                session.tx = None
                self.current_reducer = None
                CURRENT_DB.reset(token)
            self._published(offset, now_us, changes)
        self._persistence.wait_durable(offset)
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
        binding = self.module.rows.get(table)
        if binding is None:
            self.table(table)  # raises NotFound naming the tables
            raise AssertionError("unreachable")
        target = self._datastore.tables[table]

        def load(tx: Transaction, datastore: Datastore) -> int:
            with _collector_paused():  # see _recover: many new rows, no garbage
                return insert_all(tx, target, binding, rows)

        _, offset = self.run_transaction(BULK_INSERT, load, lambda count: [table, count])
        return offset

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
        return max(time.time_ns() // 1000, self._last_timestamp_us + 1)

    def _commit(
        self,
        tx: Transaction,
        reducer: str,
        wire_args: Any,
        sender: Identity,
        connection_id: ConnectionId | None,
        now_us: int,
    ) -> tuple[int, list[TableChange]]:
        """Check memory, append the record; the caller publishes (or rolls back)."""
        changes = tx.changes()
        estimate = self._memory.check(changes)
        body = transaction_body(
            self._datastore, tx, changes, reducer, wire_args, sender, connection_id, now_us
        )
        offset = self._persistence.append(TX_RECORD_KIND, body)
        self._memory.commit(estimate, changes)
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

    def logs(self, num_lines: int | None = None) -> list[dict[str, Any]]:
        return [line.as_dict() for line in self.log.lines(num_lines)]

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
        if self._persistence.request_snapshot(snapshot_builder(self._datastore)):
            self._last_snapshot_offset = self._offset

    def close(self) -> None:
        """Sync the log, finish snapshots and release the data directory. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._persistence.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r}, tx_offset={self._offset})"


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
