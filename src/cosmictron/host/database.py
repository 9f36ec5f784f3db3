"""A Database: one module, its tables, and the single writer that runs its reducers.

Calls are serialised by one re-entrant writer lock: a reducer runs, its transaction's
net effect is encoded and appended to the commit log, committed state is published to
commit listeners, and the lock is released. Only then does the caller wait for its
record to become durable (``wait_durable``), so under ``always`` concurrent callers
queue their records behind one fsync (group commit) instead of each paying for its own.

``Database`` is the host's one public face, and only a face: it says what a database
offers, with each public method's contract, and composes the operations that do the
work over one ``DatabaseCore`` (``core.py``: the writer lock, the datastore, the offset,
the persistence layer, the schedule book, ...). Each operation is a function over the
core in the module that owns its job:

- ``transactions.py``: the commit path (reducer calls, ``run_transaction``, nested calls);
- ``recovery.py``: snapshot and log replay on open, adopting the module ``open`` got;
- ``hotswap.py``: ``update_module`` and module records on replay;
- ``procedures.py``, ``scheduled_runs.py``: procedure calls, scheduled reducer runs;
- ``imports.py``: bulk loads and their idempotency keys; ``sql.py``: SQL;
  ``backup_writer.py``: writing a backup (``backup.py``, restoring, sits above this).

Functions over a core rather than mixins because those jobs share one set of state and
call each other (a module update runs ``@init`` through the commit path; replay
installs a module); with mixins each would see every other's attributes through
``self`` with no import saying so, while a function names what it uses. And a core
below the façade rather than functions over ``Database`` so that imports run one way:
the operations import ``core.py`` and each other downward, never this module, and
``host/`` reads bottom-up (docs/design/architecture.md). The data directory's
host-owned files are described in ``directory.py``; the record body and snapshot state
formats in ``records.py`` (``durability`` owns ``log/``, ``snapshots/`` and ``LOCK``).

Longer than the ~400 lines a module aims for, and one piece all the same: it is the
list of what a database offers, and nearly all of it is the public methods' contracts;
each body is a line or two handing over to the module that owns the job.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cosmictron.datastore import Datastore, Transaction
from cosmictron.datastore.schema import TableSchema
from cosmictron.datastore.types import TypeMismatch
from cosmictron.durability import DurabilityConfig, PersistenceStatistics
from cosmictron.durability.archive import Manifest
from cosmictron.durability.durable_point import Replicator
from cosmictron.errors import DurabilityError, SubscriptionError
from cosmictron.host import (
    hotswap,
    imports,
    procedures,
    recovery,
    remote,
    replica,
    retention,
    transactions,
)
from cosmictron.host.backup_writer import backup_to_file
from cosmictron.host.clock import Clock
from cosmictron.host.core import CommitListener, DatabaseCore
from cosmictron.host.handles import TableHandle
from cosmictron.host.hotswap import MigrationReport
from cosmictron.host.imports import BulkInsertOutcome
from cosmictron.host.logs import ModuleLog
from cosmictron.host.metrics import ReducerMetrics
from cosmictron.host.procedure_threads import ProcedureCall
from cosmictron.host.sql import run_sql, run_sql_block
from cosmictron.host.transactions import CallOutcome
from cosmictron.ledger.signing import SigningKey, VerifierKey
from cosmictron.module import LoadedModule, ReducerContext
from cosmictron.query import QueryResult
from cosmictron.query.budget import DEFAULT_BUDGET, QueryBudget
from cosmictron.subscription import Subscription
from cosmictron.values import ConnectionId, Identity

_T = TypeVar("_T")

__all__ = ["CallOutcome", "CommitListener", "Database", "DatabaseStatistics"]


@dataclass(frozen=True)
class DatabaseStatistics:
    tx_offset: int
    durable_offset: int
    row_count: int
    estimated_bytes: int
    memory_limit_bytes: int
    reducer_calls: int
    reducer_failures: int


class Database:
    """An open database. Create it with ``Database.open``; close it (or use ``with``).

    ``core`` is its state (``host/core.py``); the operations of ``host/`` work on it.
    It is the host's inside, not the API: tests and benchmarks read a figure there by
    name (``db.core.subscriptions``, ``db.core.persistence``) where the API has none.
    """

    def __init__(self, core: DatabaseCore) -> None:
        """Wrap an opened core (``Database.open`` does this); reducers see this object."""
        self.core = core
        core.current_db = self
        # Fixed for the life of the database: plain attributes, read on every call.
        self.path: Path = core.path
        self.durability: DurabilityConfig = core.durability
        self.identity: Identity = core.identity
        self.owner: Identity = core.owner
        self.log: ModuleLog = core.log
        self.reducer_metrics: ReducerMetrics = core.reducer_metrics

    @property
    def module(self) -> LoadedModule:
        """The running module (``update_module`` replaces it)."""
        return self.core.module

    @property
    def current_reducer(self) -> str | None:
        """The reducer running now on this database, if any (named in module logs)."""
        return self.core.current_reducer

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
        replicator: Replicator | None = None,
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
            replicator: cluster mode (issue 19): a transaction is acknowledged only once
                this replicated log stored its record (``cosmictron.cluster``); by default
                the local fsync policy alone decides.

        Raises:
            DatabaseInUse: another process has the directory open.
            SchemaError: the module is invalid or would not read the stored data.
            CorruptLog: the log is damaged other than at its tail.
        """
        core = recovery.open_core(Path(path), module, durability, owner, clock, replicator)
        try:
            retention.policies(core.datastore, core.durability.event_retention)
        except BaseException:
            core.close()
            raise
        database = cls(core)
        recovery.start(core)
        core.before_snapshot = lambda: retention.prune_events(core)
        if core.durability.event_retention:
            retention.prune_events(core)
        return database

    @classmethod
    def open_replica(
        cls,
        path: str | os.PathLike[str],
        module: Any = None,
        *,
        node: str,
        durability: DurabilityConfig | None = None,
        owner: Identity | None = None,
    ) -> Database:
        """Open ``path`` as a read-only replica (cluster mode; ``host/replica.py``).

        Recovered like :meth:`open`, but not started (no ``@init``, no scheduler) and
        refusing every write; it advances only by :meth:`apply_replicated`. ``node`` names
        this node in the refusal.
        """
        core = recovery.open_core(Path(path), module, durability, owner, None, replica=True)
        database = cls(core)
        replica.refuse_writes(core, node, Path(path).name)
        return database

    def apply_replicated(self, payload: bytes) -> int:
        """A replica: append the leader's record and apply it, publishing it to
        subscribers at the leader's offset; returns the offset (``host/replica.py``)."""
        return replica.apply_replicated(self.core, payload)

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
        core = self.core
        module = core.module
        binding = module.reducers.get(reducer)
        if binding is None:
            if reducer in module.procedures:
                return self.start_procedure(reducer, args, kwargs).result().return_value
            transactions.raise_unknown_reducer(module, reducer)
        values: Sequence[Any]
        wire_args: Sequence[Any]
        if not kwargs and len(args) == binding.plain_arity:  # ``bind`` inlined
            try:
                values = wire_args = binding.check_arguments(args)
            except TypeMismatch:
                values, wire_args = binding.bind(args, kwargs)  # raises, naming it
        else:
            values, wire_args = binding.bind(args, kwargs)
        return transactions.execute_call(
            core, module, binding, values, wire_args, core.owner, None, (args, kwargs)
        )[0]

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
        core = self.core
        module = core.module
        binding = module.reducers.get(reducer)
        if binding is None:
            if reducer in module.procedures:
                return self.start_procedure(
                    reducer, args, kwargs, sender=sender, connection_id=connection_id
                ).result()
            transactions.raise_unknown_reducer(module, reducer)
        values, wire_args = binding.bind(args, kwargs or {})
        return transactions.execute(
            core,
            module,
            binding,
            values,
            wire_args,
            sender or core.owner,
            connection_id,
            (args, kwargs or {}),
            durable,
        )

    def run_lifecycle(
        self, kind: str, sender: Identity, connection_id: ConnectionId | None
    ) -> CallOutcome | None:
        """Run the module's ``client_connected``/``client_disconnected`` reducer, if any."""
        module = self.core.module
        binding = module.lifecycle.get(kind)
        if binding is None:
            return None
        return transactions.execute(self.core, module, binding, [], [], sender, connection_id)

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
        return procedures.start_procedure(self.core, procedure, args, kwargs, sender, connection_id)

    # -- scheduled reducers -------------------------------------------------------------

    def wait_scheduler_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until every scheduled run due at the clock's current time has committed.

        For tests and tools driving a ``ManualClock``: advance it, then wait here.
        Returns False if ``timeout_s`` passed first or the database closed.
        """
        return self.core.scheduler.wait_idle(timeout_s)

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
        return transactions.run_transaction(self.core, reducer, function, wire_args, sender)

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
        return imports.bulk_insert(self.core, table, rows)

    def bulk_insert_once(
        self,
        table: str,
        rows: Iterable[Any],
        key: str | None,
        *,
        checked_for: TableSchema | None = None,
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
            NotFound, InvalidRequest, Conflict: as ``bulk_insert``.

        ``checked_for`` is for loaders that check rows as they convert them (the
        server's CSV path): the rows are canonical tuples already checked against that
        ``TableSchema``, and the host skips its own check while it is still the table's
        schema (a module update in between makes new schemas, so they are checked again).
        """
        return imports.bulk_insert_once(self.core, table, rows, key, checked_for)

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
        return hotswap.update_module(self.core, module, clear, filename)

    def sql(
        self,
        text: str,
        params: Mapping[str, Any] | None = None,
        *,
        sender: Identity | None = None,
        rows_max: int | None = None,
        timeout_s: float | None = None,
        rows_examined_max: int | None = None,
        budget: QueryBudget | None = None,
    ) -> QueryResult:
        """Run one SQL statement; see docs/reference/sql.md and ``host/sql.py``.

        A SELECT reads a snapshot, off the writer lock, so it never delays a commit; it
        runs under a budget: ``timeout_s`` (default ``limits.query_time_s_max``),
        ``rows_examined_max`` (``limits.query_rows_examined_max``) and ``rows_max``
        (``limits.query_rows_max``), or all three as ``budget`` (the server's, per caller).

        Raises:
            SqlError: the statement is invalid (with line, column and text).
            PermissionDenied: a non-owner reads a private table or writes at all.
            QueryTooCostly: (a ``ResourceExhausted``) the result has more than
                ``rows_max`` rows, or the query examined more than ``rows_examined_max``.
            QueryCancelled: the query ran longer than ``timeout_s``.
            Conflict: DML would duplicate a key; nothing was changed.
        """
        if budget is None:
            if timeout_s is None and rows_examined_max is None and rows_max is None:
                budget = DEFAULT_BUDGET  # the common case: no object to build
            else:
                budget = QueryBudget(timeout_s, rows_examined_max, rows_max)
        return run_sql(self.core, text, params, sender or self.owner, budget)

    def sql_block(
        self,
        statements: list[tuple[str, Mapping[str, Any] | None]],
        *,
        sender: Identity | None = None,
        budget: QueryBudget | None = None,
        apply: bool = True,
        expect: list[int | None] | None = None,
    ) -> list[QueryResult]:
        """Run DML statements (and a last SELECT) as one transaction; with ``apply``
        False, roll it back once the results are known (``host/sql.run_sql_block``).

        Raises:
            SqlError: a statement does not parse or plan, as for ``sql``; nothing was
                changed.
            PermissionDenied: a non-owner sent DML; nothing was changed.
            BlockChanged: a statement's row count differs from ``expect`` (another
                transaction committed in between); nothing was applied.
        """
        return run_sql_block(
            self.core, statements, sender or self.owner, budget or DEFAULT_BUDGET, apply, expect
        )

    def subscribe(
        self,
        queries: Sequence[str],
        on_update: Callable[[dict[str, Any]], Any] | None = None,
        params: Mapping[str, Any] | None = None,
        sender: Identity | None = None,
        on_error: Callable[[SubscriptionError], Any] | None = None,
        *,
        timeout_s: float | None = None,
        rows_examined_max: int | None = None,
        rows_max: int | None = None,
        budget: QueryBudget | None = None,
        then: Callable[[Subscription, Datastore], Any] | None = None,
    ) -> Subscription:
        """Subscribe to ``queries``: rows now (``.initial``), then each change.

        The initial rows are evaluated on a snapshot, off the writer lock, under a
        budget: ``timeout_s``, ``rows_examined_max`` and ``rows_max`` as for ``sql``, or
        all three as ``budget``.
        ``then(subscription, datastore)`` runs under the writer lock right after the
        subscription is registered, before any later transaction's update.

        ``on_update(update)`` is called synchronously, under the writer lock, once per
        later transaction that changes the result; keep it short. ``on_error(error)`` is
        called once if the database ends the subscription (a module update drops or
        changes a table it reads; its maintenance fails). See
        docs/guide/subscriptions.md for the message shapes and guarantees.

        Raises:
            SqlError: a query is invalid or not subscribable (the message says why).
            PermissionDenied: a non-owner subscribes to a private table.
            QueryCancelled, QueryTooCostly: the initial evaluation exceeded its budget.
        """
        if budget is None:
            budget = QueryBudget(timeout_s, rows_examined_max, rows_max)
        return self.core.subscriptions.subscribe(
            queries, on_update, params, sender or self.owner, on_error, budget, then
        )

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
        return transactions.call_nested(self.core, name, function, ctx, args, kwargs)

    def stage_remote_call(self, database: str, reducer: str, args: Sequence[Any]) -> int:
        """``ctx.call_remote``: record a call to another database in the running
        transaction; returns its sequence number (host/remote.py)."""
        return remote.stage_call(self.core, database, reducer, args)

    def remote_calls(self) -> list[dict[str, Any]]:
        """The calls this database recorded with ``ctx.call_remote`` that are not done:
        pending ones (still to deliver, or between attempts) and failed ones (given up
        after ``limits.remote_call_attempts_max`` attempts), oldest first. Each is a dict
        with ``seq``, ``database``, ``reducer``, ``args``, ``tx_offset`` (the transaction
        that recorded it), ``status`` (``"pending"`` | ``"failed"``), ``attempts`` and
        ``error`` (the last failure's message, or None)."""
        with self.core.lock:
            return self.core.remote.describe()

    def handle_for_class(self, cls: type) -> TableHandle:
        """The handle of a module's table class (``Task.insert(...)`` inside a reducer)."""
        return self.core.handle_for_class(cls)

    # -- reading ----------------------------------------------------------------------

    def table(self, name: str) -> TableHandle:
        """A read-only handle: ``iter()``, ``count()``, ``<column>.find/filter``."""
        return self.core.table(name)

    def rows(self, name: str) -> list[Any]:
        """Every row of a table, as row objects."""
        return list(self.table(name).iter())

    def read(self, function: Callable[[Datastore], Any]) -> Any:
        """Run ``function`` over the datastore with no writer running (query layer)."""
        core = self.core
        with core.lock:
            return function(core.datastore)

    def read_snapshot(self, tables: Iterable[str]) -> Datastore:
        """A consistent view of ``tables`` as of the last commit, to read without the lock.

        Taken under the writer lock in O(tables); the next write to each table copies
        it first (``datastore/table.py``), so the view never changes and a reader of it
        never delays a commit. See docs/design/query-snapshots.md.
        """
        return self.core.read_snapshot(tables)

    @property
    def tx_offset(self) -> int:
        """The offset of the last committed transaction (0 for an empty database)."""
        return self.core.offset

    @property
    def durable_offset(self) -> int:
        """The highest offset durable under the fsync policy (see ``wait_durable``)."""
        return self.core.persistence.durable_offset

    def wait_durable(self, offset: int) -> None:
        """Block until ``offset`` is durable under the fsync policy (no-op unless ``always``).

        Raises:
            DurabilityError: a sync failed, now or earlier.
        """
        self.core.persistence.wait_durable(offset)

    @property
    def schema(self) -> Any:
        return self.core.module.schema

    def logs(self, num_lines: int | None = None, level: str | None = None) -> list[dict[str, Any]]:
        """The newest ``num_lines`` module log lines at ``level`` or above, oldest first."""
        return [line.as_dict() for line in self.log.lines(num_lines, level)]

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call ``listener(offset, timestamp, changes)`` after each commit, in order."""
        with self.core.lock:
            self.core.listeners.append(listener)

    def add_checkpoint_listener(self, listener: Callable[[int, str, Any], None]) -> bool:
        """Call ``listener(seq, note, tree)`` after each signed checkpoint record, under
        the writer lock; ``tree`` is the ledger's ``MerkleTree`` at exactly the
        checkpoint's size (read it there, never keep it). Returns False when the ledger
        is off (no checkpoints will come)."""
        with self.core.lock:
            ledger = self.core.persistence.ledger
            if ledger is None:
                return False
            ledger.checkpoint_listeners.append(listener)
            return True

    def ledger_leaf_hash(self, seq: int) -> bytes | None:
        """The Merkle leaf hash of record ``seq`` (None with the ledger off). Call it
        under the writer lock, as commit listeners and subscription callbacks run."""
        ledger = self.core.persistence.ledger
        return None if ledger is None else ledger.leaf_hash(seq)

    def statistics(self) -> DatabaseStatistics:
        core = self.core
        with core.lock:
            return DatabaseStatistics(
                tx_offset=core.offset,
                durable_offset=core.persistence.durable_offset,
                row_count=sum(len(t) for t in core.datastore),
                estimated_bytes=core.memory.used_bytes,
                memory_limit_bytes=core.durability.memory_limit_bytes,
                reducer_calls=core.reducer_calls,
                reducer_failures=core.reducer_failures,
            )

    def persistence_statistics(self) -> PersistenceStatistics:
        """The commit log's counters (appends, syncs and their latency) for ``/metrics``."""
        return self.core.persistence.statistics()

    def subscription_statistics(self) -> dict[str, Any]:
        """Active subscriptions, the distinct live queries maintained for them, and the
        time spent keeping them up to date since the database opened."""
        manager = self.core.subscriptions
        return {
            "subscriptions": manager.subscription_count,
            "queries": manager.query_count,
            "maintenance_seconds": manager.maintenance_seconds,
        }

    def check_invariants(self) -> None:
        with self.core.lock:
            self.core.datastore.check_invariants()

    # -- snapshots and closing ----------------------------------------------------------

    def snapshot(self) -> None:
        """Write a snapshot of the current state now (and wait for it)."""
        core = self.core
        with core.lock:
            core.request_snapshot()
        core.persistence.wait_snapshots()

    def backup(self, path: str | os.PathLike[str]) -> Manifest:
        """Write a verified backup of this database to the file ``path``, while writes go on.

        The backup holds the state at the last transaction committed when it starts (its
        cut); transactions committed meanwhile are not in it. Restore it with
        ``cosmictron.restore`` (docs/guide/backup-restore.md).

        Returns:
            The backup's manifest (``cut_offset``, ``cut_hash``, members and checksums).

        Raises:
            BackupDamaged: the written file failed verification (it was deleted).
        """
        return backup_to_file(self.core, path)

    def rotate_signing_key(self, new_key: SigningKey | None = None) -> VerifierKey:
        """Rotate the ledger's signing key: one log record signed by the old and new key.

        From that record on only the new key signs; it replaces the old one where the
        old one was kept (docs/guide/ledger.md, "Keys"). Give the returned public key to
        your auditors.

        Args:
            new_key: the key to rotate to; None makes a fresh one.

        Raises:
            DurabilityError: the ledger is off (``signing = "off"``).
        """
        core = self.core
        with core.lock:
            transactions.check_can_write(core, "Database.rotate_signing_key()")
            public: VerifierKey = core.persistence.rotate_signing_key(new_key)
        core.persistence.wait_durable(core.persistence.next_offset - 1)
        return public

    def revoke_signing_key(self, key: VerifierKey | bytes | str) -> VerifierKey:
        """Revoke a key the log still counts as valid: one record signed by the current key.

        A key stays valid until it is rotated out or revoked; a database whose key was
        replaced outside it (a new ``signing_key_path`` or ``COSMICTRON_SIGNING_KEY``
        adds the new key with a *key added* record) still counts the old one. Revoking it
        ends its range: from the revocation record on, ``verify`` refuses anything it
        signs (``key_out_of_range``). The key the database signs with now is retired by
        :meth:`rotate_signing_key` instead (docs/guide/ledger.md, "Keys").

        Args:
            key: the key's ``VerifierKey``, its verifier-key text (``name+id+base64``, as
                ``verify --json`` lists it) or its 32-byte fingerprint.

        Returns:
            The revoked key.

        Raises:
            DurabilityError: the ledger is off (``signing = "off"``).
            InvalidRequest: the key is the current one, not in the log, or not active.
        """
        if isinstance(key, str):
            key = VerifierKey.from_text(key)
        fp = key.fingerprint if isinstance(key, VerifierKey) else bytes(key)
        core = self.core
        with core.lock:
            transactions.check_can_write(core, "Database.revoke_signing_key()")
            revoked: VerifierKey = core.persistence.revoke_signing_key(fp)
        core.persistence.wait_durable(core.persistence.next_offset - 1)
        return revoked

    def prune_events(self) -> dict[str, int]:
        """Apply ``DurabilityConfig.event_retention`` now: delete each event table's rows
        beyond its bound in one logged transaction (``__retention__``).

        It also runs at open and before every snapshot; call it to bound memory sooner.
        Pruned rows stay provable in the ledger (docs/guide/ledger.md, "Retention").

        Returns:
            Rows pruned by table (empty: nothing was over its bound, nothing logged).
        """
        transactions.check_can_write(self.core, "Database.prune_events()")
        return retention.prune_events(self.core)

    def anchor_now(self) -> list[int]:
        """Run one RFC 3161 anchoring round now, in this thread (docs/guide/ledger.md).

        The latest checkpoint goes to every configured TSA (after a checkpoint of any
        records since the last one); each checked token becomes an anchor record. The
        TSA requests are made without the writer lock: commits go on meanwhile.

        Returns:
            The anchor records' sequence numbers (empty: nothing new to anchor, or no
            TSA answered; a TSA outage is not an error here either).

        Raises:
            DurabilityError: anchoring is off (no ``anchor_tsa_urls``, or the ledger off).
        """
        anchorer = self.core.persistence.anchorer
        if anchorer is None:
            raise DurabilityError(
                "anchoring is off: set anchor_tsa_urls and anchor_trust_roots "
                '(and signing = "checkpoint" or "event")'
            )
        return anchorer.anchor_once()

    def close(self) -> None:
        """Sync the log, finish snapshots and release the data directory. Idempotent."""
        self.core.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r}, tx_offset={self.core.offset})"
