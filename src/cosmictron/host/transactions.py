"""The commit path: every write to a database's tables passes through here.

Reducer calls, scheduled runs, a procedure's ``with_tx`` and the host's own writes (bulk
loads, SQL DML) all end in ``commit`` then ``publish``, so there is one place that
checks the memory budget, builds the record, appends it, tells commit listeners and
decides when to snapshot; and one place (``transact``) that rolls back, counts and logs
a failed reducer. See docs/design/architecture.md, "The life of a reducer call".

This is the bottom of ``host/``'s operations: it imports only ``core.py`` (and the
modules below it), and every other operation writes through it. The functions take
the ``DatabaseCore`` rather than being its methods (or a mixin) because the state they
touch (the writer lock, the offset, the write scope) is shared with recovery and
hot-swap; the core holds it, the steps are here, and ``database.py`` stays the short
list of what a database offers. Every function that writes expects the caller to hold
``core.lock`` unless its docstring says otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from cosmictron import bounded_json
from cosmictron.datastore import Datastore, TableChange, Transaction
from cosmictron.datastore.types import TypeMismatch
from cosmictron.durability import TX_RECORD_KIND
from cosmictron.errors import (
    CosmictronError,
    DurabilityError,
    InvalidRequest,
    NotFinite,
    NotFound,
    ReducerFailed,
    ResourceExhausted,
    attach_traceback,
    unknown_reducer,
)
from cosmictron.host.core import DatabaseCore
from cosmictron.host.handles import missing_name_message
from cosmictron.host.records import transaction_body
from cosmictron.host.scheduler import Due
from cosmictron.module import CURRENT_DB, LoadedModule, ReducerBinding, ReducerContext
from cosmictron.module.tracebacks import user_traceback
from cosmictron.values import ConnectionId, Identity, Timestamp

_T = TypeVar("_T")

logger = logging.getLogger(__name__)

_perf_counter = time.perf_counter

Call = tuple[Sequence[Any], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What a committed reducer call produced."""

    return_value: Any
    tx_offset: int
    timestamp: Timestamp


def execute(
    core: DatabaseCore,
    module: LoadedModule,
    binding: ReducerBinding,
    values: Sequence[Any],
    wire_args: Sequence[Any],
    sender: Identity,
    connection_id: ConnectionId | None,
    call: Call | None = None,
    durable: bool = True,
) -> CallOutcome:
    """Run one call and return what it produced, once durable unless ``durable`` is
    False. Takes the writer lock itself.

    ``binding`` was looked up in ``module`` and the arguments bound outside the
    lock. If a module update ran in between, the reducer is looked up and its
    arguments (``call``: positional, keyword) bound again under the new module, so
    a call never runs old code against the new tables.
    """
    value, offset, now_us = execute_call(
        core, module, binding, values, wire_args, sender, connection_id, call, durable
    )
    return CallOutcome(value, offset, Timestamp(now_us))


def execute_call(
    core: DatabaseCore,
    module: LoadedModule,
    binding: ReducerBinding,
    values: Sequence[Any],
    wire_args: Sequence[Any],
    sender: Identity,
    connection_id: ConnectionId | None,
    call: Call | None = None,
    durable: bool = True,
) -> tuple[Any, int, int]:
    """(value, offset, timestamp in µs) of one call, timed in the reducer metrics.

    ``Database.call`` uses this directly and keeps only the value: on the hottest path,
    building a ``CallOutcome`` and its ``Timestamp`` would cost about a microsecond a
    call for nothing.

    Under the lock this is ``transact(core, name, run, ...)`` with ``run`` calling the
    reducer and ``check_return``, written out flat in this one frame: each Python frame
    on this path costs about 1 % of an in-process call (docs/design/hot-path.md).
    ``transact`` stays the one path for scheduled runs and procedures; both end a
    failure in ``_roll_back``.
    """
    started = _perf_counter()
    failed = True
    try:
        with core.lock:
            if module is not core.module:
                binding, values, wire_args = _rebind(core, binding, call)
            if core.closed or core.scope.tx is not None:
                check_can_write(core, f"Database.call({binding.schema.name!r})")
            name = binding.schema.name
            core.reducer_calls += 1
            now_us = core.clock.now_us()
            if now_us <= core.last_timestamp_us:
                now_us = core.last_timestamp_us + 1
            tx = Transaction()
            scope = core.scope
            scope.tx = tx
            core.current_reducer = name
            ctx = ReducerContext(
                core.view, sender, connection_id, now_us, core.identity, (core.offset + 1) ^ now_us
            )
            token = CURRENT_DB.set(core.current_db)
            try:
                value = binding.function(ctx, *values)
                if value is not None or binding.schema.return_type is not None:
                    check_return(binding, value)
                offset, changes = commit(core, tx, name, wire_args, sender, connection_id, now_us)
            except BaseException as exc:
                _roll_back(core, tx, name, exc)
            finally:
                scope.tx = None
                core.current_reducer = None
                CURRENT_DB.reset(token)
            core.offset = offset
            core.last_timestamp_us = now_us
            # ``publish`` written out for its common case: nobody subscribes, nobody
            # listens, no snapshot due. Then its frame, a ``Timestamp`` and the
            # subscription manager's ``on_commit`` frame are skipped
            # (docs/design/hot-path.md, "Third round").
            if (
                core.listeners
                or core.subscriptions.live
                or offset - core.last_snapshot_offset >= core.snapshot_interval_tx
            ):
                publish(core, offset, now_us, changes)
        if durable:
            core.persistence.wait_durable(offset)
        failed = False
        return value, offset, now_us
    finally:
        core.reducer_metrics.observe(binding.schema.name, _perf_counter() - started, failed)


def _roll_back(core: DatabaseCore, tx: Transaction, name: str, exc: BaseException) -> NoReturn:
    """Undo a failed transaction, count and log it, and raise what its caller hears."""
    tx.rollback()
    core.remote.discard()
    core.reducer_failures += 1
    if not isinstance(exc, Exception):
        raise exc
    if isinstance(exc, DurabilityError | ResourceExhausted):
        core.log.append("ERROR", f"reducer {name!r} not committed: {exc}", name)
        raise exc
    failure = as_reducer_failure(name, exc, core.module)
    core.log.append("ERROR", failure_log_line(failure), name)
    raise failure from exc


def _rebind(
    core: DatabaseCore, binding: ReducerBinding, call: Call | None
) -> tuple[ReducerBinding, Sequence[Any], Sequence[Any]]:
    """``binding``'s reducer in the running module, with the call's arguments bound."""
    name, kind = binding.schema.name, binding.schema.kind
    if call is None:  # a lifecycle reducer: no arguments
        found = core.module.lifecycle.get(kind)
        if found is None:
            raise NotFound(f"the updated module has no @{kind} reducer")
        return found, [], []
    found = core.module.reducers.get(name)
    if found is None:
        raise_unknown_reducer(core.module, name)
    args, kwargs = call
    values, wire_args = found.bind(tuple(args), dict(kwargs))
    return found, values, wire_args


def raise_unknown_reducer(module: LoadedModule, reducer: str) -> NoReturn:
    raise unknown_reducer(reducer, [*module.reducers, *module.procedures])


def run_init(core: DatabaseCore) -> None:
    """Run the module's ``@init`` reducer, if it has one (a new or cleared database)."""
    binding = core.module.lifecycle.get("init")
    if binding is not None:
        execute(core, core.module, binding, [], [], core.owner, None)


def check_can_write(core: DatabaseCore, action: str) -> None:
    if core.closed:
        raise InvalidRequest(f"database {str(core.path)!r} is closed")
    if core.scope.tx is not None:  # this thread is inside a reducer already
        raise InvalidRequest(
            f"{action} from inside a reducer would start a second transaction; "
            f"call it outside reducers (a reducer calls another reducer's function "
            f"directly to join its transaction)"
        )


def next_timestamp_us(core: DatabaseCore) -> int:
    """Now, but strictly after the last transaction's timestamp (the clock may step)."""
    return max(core.clock.now_us(), core.last_timestamp_us + 1)


def transact(
    core: DatabaseCore,
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
    core.reducer_calls += 1
    now_us = next_timestamp_us(core)
    tx = Transaction()
    scope = core.scope
    scope.tx = tx
    core.current_reducer = name
    ctx = ReducerContext(
        core.view, sender, connection_id, now_us, core.identity, (core.offset + 1) ^ now_us
    )
    assert core.current_db is not None, "a Database wraps the core before reducers run"
    token = CURRENT_DB.set(core.current_db)
    try:
        value = run(ctx)
        offset, changes = commit(core, tx, name, wire_args, sender, connection_id, now_us, ran)
    except BaseException as exc:
        _roll_back(core, tx, name, exc)
    finally:
        scope.tx = None
        core.current_reducer = None
        CURRENT_DB.reset(token)
    publish(core, offset, now_us, changes)
    return value, offset, now_us


def run_transaction(
    core: DatabaseCore,
    reducer: str,
    function: Callable[[Transaction, Datastore], _T],
    wire_args: Callable[[_T], Any],
    sender: Identity | None = None,
) -> tuple[_T, int]:
    """``Database.run_transaction``: the host's own writes; takes the lock itself."""
    with core.lock:
        if core.closed:
            raise InvalidRequest(f"database {str(core.path)!r} is closed")
        if core.scope.tx is not None:
            raise InvalidRequest(
                f"{reducer} from inside a reducer would start a second transaction; "
                f"write through ctx.db instead"
            )
        now_us = next_timestamp_us(core)
        tx = Transaction()
        try:
            value = function(tx, core.datastore)
            offset, changes = commit(
                core, tx, reducer, wire_args(value), sender or core.owner, None, now_us
            )
        except BaseException:
            tx.rollback()
            core.remote.discard()
            raise
        publish(core, offset, now_us, changes)
    core.persistence.wait_durable(offset)
    return value, offset


def commit(
    core: DatabaseCore,
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
    refusal = core.persistence.commit_refusal  # strict anchoring is overdue
    if refusal is not None:
        raise type(refusal)(str(refusal))  # a fresh error: no traceback piles up
    changes = tx.changes()
    estimate = core.memory.check(changes)
    book = core.book
    updates = book.plan(changes, now_us, ran) if book.active else []
    remote = core.remote.staged
    body = transaction_body(
        core.datastore,
        tx,
        changes,
        reducer,
        wire_args,
        sender,
        connection_id,
        now_us,
        book.encode(core.datastore, updates) if updates else None,
        list(remote) if remote else None,
    )
    offset = core.persistence.append(TX_RECORD_KIND, body)
    core.memory.commit(estimate, changes)
    if remote:
        core.remote.committed(offset)
    if updates:
        book.apply(updates)
        core.scheduler.wake()
    return offset, changes


def publish(core: DatabaseCore, offset: int, now_us: int, changes: list[TableChange]) -> None:
    """After the append: advance the offset, tell listeners, maybe snapshot."""
    core.offset = offset
    core.last_timestamp_us = now_us
    subscriptions = core.subscriptions
    if core.listeners or subscriptions.live:
        timestamp = Timestamp(now_us)
        listeners = core.listeners
        if subscriptions.live:  # the live queries first, then the other listeners
            listeners = [subscriptions.on_commit, *listeners]
        for listener in listeners:
            try:
                listener(offset, timestamp, changes)
            except Exception:
                # The transaction is in the log: its caller must hear it committed.
                # A listener that fails is a bug in the layer that registered it.
                logger.exception("commit listener %r failed at offset %d", listener, offset)
    if offset - core.last_snapshot_offset >= core.snapshot_interval_tx:
        core.request_snapshot()


def call_nested(
    core: DatabaseCore,
    name: str,
    function: Callable[..., Any],
    ctx: ReducerContext,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """``Database.call_nested``: the caller's transaction, under a savepoint."""
    tx = core.scope.tx
    assert tx is not None, "nested reducer call outside a transaction"
    binding = core.module.reducers.get(name)
    if binding is None or binding.function is not function:
        raise InvalidRequest(f"reducer {name!r} is not part of this database's module")
    values, _ = binding.bind(args, kwargs)
    savepoint = tx.savepoint()
    staged = len(core.remote.staged)
    try:
        value = function(ctx, *values)
        check_return(binding, value)
        return value
    except BaseException:
        tx.rollback_to(savepoint)
        del core.remote.staged[staged:]  # its call_remote calls go with its writes
        raise


def check_return(binding: ReducerBinding, value: Any) -> None:
    schema = binding.schema
    if schema.return_type is None:
        if value is not None and binding.returns_none:
            raise InvalidRequest(
                f"reducer {schema.name!r} is annotated -> None but returned {value!r}"
            )
        if value is not None and not isinstance(value, int | str | bool):
            found = bounded_json.first_non_finite(value)
            if found is not None:  # no JSON form: refused before it commits
                raise NotFinite(
                    f"reducer {schema.name!r} returned {found!r}: NaN and the infinities "
                    "have no JSON form; return None or a finite number"
                )
        return
    try:
        schema.return_type.check(value)
    except TypeMismatch as exc:
        raise InvalidRequest(f"reducer {schema.name!r} returned a wrong value: {exc}") from None


def as_reducer_failure(
    name: str, exc: BaseException, module: LoadedModule | None = None
) -> CosmictronError:
    """The ``ReducerFailed`` a caller gets for ``exc``, carrying the frames of the
    module's own code (``module/tracebacks.py``) for its owner."""
    if isinstance(exc, ReducerFailed):
        return exc
    message = str(exc) or type(exc).__name__
    if isinstance(exc, AttributeError):  # ``ctx.db.<unknown>``: say what is missing
        message = missing_name_message(exc) or message
    if not isinstance(exc, CosmictronError):
        message = f"{type(exc).__name__}: {message}"
    failure = ReducerFailed(name, message, type(exc).__name__)
    sources = {module.filename: module.source} if module is not None else {}
    return attach_traceback(failure, user_traceback(exc, sources))


def failure_log_line(failure: CosmictronError) -> str:
    """A failure as its module log line: the message, then the user's frames (the log
    is the owner's alone, so it always carries them)."""
    return str(failure) + (f"\n{failure.traceback}" if failure.traceback else "")
