"""The commit path: every write to a database's tables passes through here.

Reducer calls, scheduled runs, a procedure's ``with_tx`` and the host's own writes (bulk
loads, SQL DML) all end in ``commit`` then ``publish``, so there is one place that
checks the memory budget, builds the record, appends it, tells commit listeners and
decides when to snapshot; and one place (``transact``) that rolls back, counts and logs
a failed reducer. See docs/design/architecture.md, "The life of a reducer call".

These are functions over a ``Database`` rather than methods of it (or a mixin) because
the state they touch (the writer lock, the offset, the session) is the database's and
is shared with recovery and hot-swap; keeping it in one object and the steps here lets
``database.py`` stay the short list of what a database offers. Every function that
writes expects the caller to hold ``db._lock`` unless its docstring says otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from cosmictron.datastore import Datastore, TableChange, Transaction
from cosmictron.datastore.types import TypeMismatch
from cosmictron.durability import TX_RECORD_KIND
from cosmictron.errors import (
    CosmictronError,
    DurabilityError,
    InvalidRequest,
    NotFound,
    ReducerFailed,
    ResourceExhausted,
)
from cosmictron.host.records import transaction_body
from cosmictron.host.scheduler import Due
from cosmictron.module import CURRENT_DB, LoadedModule, ReducerBinding, ReducerContext
from cosmictron.values import ConnectionId, Identity, Timestamp

if TYPE_CHECKING:
    from cosmictron.host.database import Database

_T = TypeVar("_T")

logger = logging.getLogger(__name__)

Call = tuple[Sequence[Any], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What a committed reducer call produced."""

    return_value: Any
    tx_offset: int
    timestamp: Timestamp


def execute(
    db: Database,
    module: LoadedModule,
    binding: ReducerBinding,
    values: Sequence[Any],
    wire_args: Sequence[Any],
    sender: Identity,
    connection_id: ConnectionId | None,
    call: Call | None = None,
    durable: bool = True,
) -> tuple[Any, int, int]:
    """Run one call; returns (return value, offset, timestamp in µs), once durable
    unless ``durable`` is False. Takes the writer lock itself.

    ``binding`` was looked up in ``module`` and the arguments bound outside the
    lock. If a module update ran in between, the reducer is looked up and its
    arguments (``call``: positional, keyword) bound again under the new module, so
    a call never runs old code against the new tables.
    """
    started = time.perf_counter()
    failed = True
    try:
        result = _run_call(db, module, binding, values, wire_args, sender, connection_id, call)
        if durable:
            db._persistence.wait_durable(result[1])
        failed = False
        return result
    finally:
        db.reducer_metrics.observe(binding.schema.name, time.perf_counter() - started, failed)


def _run_call(
    db: Database,
    module: LoadedModule,
    binding: ReducerBinding,
    values: Sequence[Any],
    wire_args: Sequence[Any],
    sender: Identity,
    connection_id: ConnectionId | None,
    call: Call | None,
) -> tuple[Any, int, int]:
    with db._lock:
        if module is not db.module:
            binding, values, wire_args = _rebind(db, binding, call)
        check_can_write(db, f"Database.call({binding.schema.name!r})")
        function = binding.function

        def run(ctx: ReducerContext) -> Any:
            value = function(ctx, *values)
            check_return(binding, value)
            return value

        return transact(db, binding.schema.name, run, wire_args, sender, connection_id)


def _rebind(
    db: Database, binding: ReducerBinding, call: Call | None
) -> tuple[ReducerBinding, Sequence[Any], Sequence[Any]]:
    """``binding``'s reducer in the running module, with the call's arguments bound."""
    name, kind = binding.schema.name, binding.schema.kind
    if call is None:  # a lifecycle reducer: no arguments
        found = db.module.lifecycle.get(kind)
        if found is None:
            raise NotFound(f"the updated module has no @{kind} reducer")
        return found, [], []
    found = db.module.reducers.get(name)
    if found is None:
        raise_unknown_reducer(db.module, name)
    args, kwargs = call
    values, wire_args = found.bind(tuple(args), dict(kwargs))
    return found, values, wire_args


def raise_unknown_reducer(module: LoadedModule, reducer: str) -> NoReturn:
    known = ", ".join(sorted([*module.reducers, *module.procedures])) or "none"
    raise NotFound(f"no reducer named {reducer!r} (reducers: {known})")


def run_init(db: Database) -> None:
    """Run the module's ``@init`` reducer, if it has one (a new or cleared database)."""
    binding = db.module.lifecycle.get("init")
    if binding is not None:
        execute(db, db.module, binding, [], [], db.owner, None)


def check_can_write(db: Database, action: str) -> None:
    if db._closed:
        raise InvalidRequest(f"database {str(db.path)!r} is closed")
    if db._session.tx is not None:  # this thread is inside a reducer already
        raise InvalidRequest(
            f"{action} from inside a reducer would start a second transaction; "
            f"call it outside reducers (a reducer calls another reducer's function "
            f"directly to join its transaction)"
        )


def next_timestamp_us(db: Database) -> int:
    """Now, but strictly after the last transaction's timestamp (the clock may step)."""
    return max(db._clock.now_us(), db._last_timestamp_us + 1)


def transact(
    db: Database,
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
    db._calls += 1
    now_us = next_timestamp_us(db)
    tx = Transaction()
    session = db._session
    session.tx = tx
    db.current_reducer = name
    ctx = ReducerContext(
        db._view, sender, connection_id, now_us, db.identity, (db._offset + 1) ^ now_us
    )
    token = CURRENT_DB.set(db)
    try:
        value = run(ctx)
        offset, changes = commit(db, tx, name, wire_args, sender, connection_id, now_us, ran)
    except BaseException as exc:
        tx.rollback()
        db._failures += 1
        if not isinstance(exc, Exception):
            raise
        if isinstance(exc, DurabilityError | ResourceExhausted):
            db.log.append("ERROR", f"reducer {name!r} not committed: {exc}", name)
            raise
        failure = as_reducer_failure(name, exc)
        db.log.append("ERROR", str(failure), name)
        raise failure from exc
    finally:
        session.tx = None
        db.current_reducer = None
        CURRENT_DB.reset(token)
    publish(db, offset, now_us, changes)
    return value, offset, now_us


def run_transaction(
    db: Database,
    reducer: str,
    function: Callable[[Transaction, Datastore], _T],
    wire_args: Callable[[_T], Any],
    sender: Identity | None = None,
) -> tuple[_T, int]:
    """``Database.run_transaction``: the host's own writes; takes the lock itself."""
    with db._lock:
        if db._closed:
            raise InvalidRequest(f"database {str(db.path)!r} is closed")
        if db._session.tx is not None:
            raise InvalidRequest(
                f"{reducer} from inside a reducer would start a second transaction; "
                f"write through ctx.db instead"
            )
        now_us = next_timestamp_us(db)
        tx = Transaction()
        try:
            value = function(tx, db._datastore)
            offset, changes = commit(
                db, tx, reducer, wire_args(value), sender or db.owner, None, now_us
            )
        except BaseException:
            tx.rollback()
            raise
        publish(db, offset, now_us, changes)
    db._persistence.wait_durable(offset)
    return value, offset


def commit(
    db: Database,
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
    estimate = db._memory.check(changes)
    book = db._book
    updates = book.plan(changes, now_us, ran) if book.active else []
    body = transaction_body(
        db._datastore,
        tx,
        changes,
        reducer,
        wire_args,
        sender,
        connection_id,
        now_us,
        book.encode(db._datastore, updates) if updates else None,
    )
    offset = db._persistence.append(TX_RECORD_KIND, body)
    db._memory.commit(estimate, changes)
    if updates:
        book.apply(updates)
        db._scheduler.wake()
    return offset, changes


def publish(db: Database, offset: int, now_us: int, changes: list[TableChange]) -> None:
    """After the append: advance the offset, tell listeners, maybe snapshot."""
    db._offset = offset
    db._last_timestamp_us = now_us
    if db._listeners:
        timestamp = Timestamp(now_us)
        for listener in db._listeners:
            try:
                listener(offset, timestamp, changes)
            except Exception:
                # The transaction is in the log: its caller must hear it committed.
                # A listener that fails is a bug in the layer that registered it.
                logger.exception("commit listener %r failed at offset %d", listener, offset)
    if offset - db._last_snapshot_offset >= db._snapshot_interval_tx:
        db._snapshot()


def call_nested(
    db: Database,
    name: str,
    function: Callable[..., Any],
    ctx: ReducerContext,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """``Database.call_nested``: the caller's transaction, under a savepoint."""
    tx = db._session.tx
    assert tx is not None, "nested reducer call outside a transaction"
    binding = db.module.reducers.get(name)
    if binding is None or binding.function is not function:
        raise InvalidRequest(f"reducer {name!r} is not part of this database's module")
    values, _ = binding.bind(args, kwargs)
    savepoint = tx.savepoint()
    try:
        value = function(ctx, *values)
        check_return(binding, value)
        return value
    except BaseException:
        tx.rollback_to(savepoint)
        raise


def check_return(binding: ReducerBinding, value: Any) -> None:
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


def as_reducer_failure(name: str, exc: BaseException) -> CosmictronError:
    if isinstance(exc, ReducerFailed):
        return exc
    message = str(exc) or type(exc).__name__
    if not isinstance(exc, CosmictronError):
        message = f"{type(exc).__name__}: {message}"
    return ReducerFailed(name, message, type(exc).__name__)
