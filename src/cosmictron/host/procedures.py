"""Procedures: calls that may do I/O, outside any transaction, with a timeout.

A ``@procedure`` runs on threads of its own (``ProcedureRunner``, at most
``limits.procedure_threads_max`` per database), never under the writer lock, so a
procedure waiting seconds on an HTTP or LLM call delays no reducer and takes none of the
threads the server runs reducer calls on. It changes data only through
``ctx.with_tx(fn)``, which runs ``fn`` as an ordinary transaction (``transactions.transact``)
logged as ``<procedure>/with_tx`` with the procedure's arguments; the record holds the
transaction's effects, so replay never repeats the I/O.

Timeouts: a call has a deadline ``timeout_s`` after it was submitted. The caller stops
waiting there and gets ``ProcedureTimedOut``. Python cannot stop a thread, so the
procedure itself runs on until it returns; but from the deadline on its ``with_tx``
refuses to start (``Deadline.check``), so a timed-out procedure changes nothing more. A
``with_tx`` already running is never interrupted: it commits or rolls back whole.

"Retried safely": our datastore has one writer, so a transaction never conflicts and is
never retried behind the caller's back. ``fn`` runs exactly once per ``with_tx``; if it
raises, it is rolled back and the error reaches the procedure, which may call
``with_tx`` again. That is safe because ``fn`` is meant to be deterministic and free of
side effects (I/O belongs in the procedure, before or after it).

``start_procedure`` (what ``Database.start_procedure`` delegates to) is a function over
the database, for the reason given in ``transactions.py``; the rest of this module knows
nothing of databases.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from cosmictron import limits
from cosmictron.errors import ProcedureTimedOut
from cosmictron.host.transactions import (
    CallOutcome,
    as_reducer_failure,
    check_can_write,
    check_return,
    raise_unknown_reducer,
    transact,
)
from cosmictron.module import ProcedureContext, ReducerContext
from cosmictron.values import ConnectionId, Identity, Timestamp

if TYPE_CHECKING:
    from cosmictron.host.database import Database

T = TypeVar("T")


class Deadline:
    """When a procedure call's caller stops waiting; shared by the caller and the call."""

    def __init__(self, procedure: str, timeout_s: float) -> None:
        self.procedure = procedure
        self.timeout_s = timeout_s
        self._at = time.monotonic() + timeout_s
        self._expired = threading.Event()

    def remaining_s(self) -> float:
        return max(0.0, self._at - time.monotonic())

    def expire(self) -> ProcedureTimedOut:
        """Mark the call timed out (no more ``with_tx``); the error for its caller."""
        self._expired.set()
        return ProcedureTimedOut(self.procedure, self.timeout_s)

    def check(self) -> None:
        """Raise ``ProcedureTimedOut`` once the deadline has passed.

        Raises:
            ProcedureTimedOut: too late to start anything that changes data.
        """
        if self._expired.is_set() or time.monotonic() >= self._at:
            raise self.expire()


@dataclass(frozen=True)
class ProcedureCall:
    """A submitted procedure call: ``result()`` blocks, ``await wait()`` does not.

    Both give up at the deadline with ``ProcedureTimedOut``; the outcome's ``tx_offset``
    is the offset of the last transaction the procedure committed (0 if none).
    """

    procedure: str
    future: Future[Any]
    deadline: Deadline

    def result(self) -> Any:
        try:
            return self.future.result(timeout=self.deadline.remaining_s())
        except concurrent.futures.TimeoutError:
            self.future.cancel()  # still queued: it never starts
            raise self.deadline.expire() from None

    async def wait(self) -> Any:
        """Wait on the event loop: no thread is held while the procedure runs."""
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(self.future), self.deadline.remaining_s()
            )
        except TimeoutError:
            raise self.deadline.expire() from None


class ProcedureRunner:
    """The threads one database's procedures run on."""

    def __init__(self, name: str, threads: int = limits.procedure_threads_max) -> None:
        self._name = name
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, function: Callable[[], T]) -> Future[T]:
        with self._lock:
            if self._executor is None:  # most databases never call a procedure
                self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix=self._name)
            return self._executor.submit(function)

    def close(self) -> None:
        """Cancel queued calls; running ones finish on their own (their with_tx refuses)."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)


def start_procedure(
    db: Database,
    procedure: str,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any] | None,
    sender: Identity | None,
    connection_id: ConnectionId | None,
) -> ProcedureCall:
    """``Database.start_procedure``: check the arguments, then submit the call."""
    binding = db.module.procedures.get(procedure)
    if binding is None:
        raise_unknown_reducer(db.module, procedure)
    values, wire_args = binding.bind(tuple(args), kwargs or {})
    caller = sender or db.owner
    deadline = Deadline(procedure, binding.timeout_s)
    last_offset = [0]

    def run_tx(fn: Callable[[ReducerContext], Any]) -> Any:
        deadline.check()
        value, offset = _with_tx(db, procedure, fn, wire_args, caller, connection_id)
        last_offset[0] = offset
        return value

    def run() -> CallOutcome:
        deadline.check()  # it waited in the queue past its deadline: never start
        started_us = db._clock.now_us()
        ctx = ProcedureContext(
            procedure, caller, connection_id, db.identity, Timestamp(started_us), run_tx
        )
        started = time.perf_counter()
        try:
            value = binding.function(ctx, *values)
            check_return(binding, value)
        except ProcedureTimedOut:
            db.reducer_metrics.observe(procedure, time.perf_counter() - started, True)
            raise
        except Exception as exc:
            db.reducer_metrics.observe(procedure, time.perf_counter() - started, True)
            failure = as_reducer_failure(procedure, exc)
            db.log.append("ERROR", str(failure), procedure)
            raise failure from exc
        db.reducer_metrics.observe(procedure, time.perf_counter() - started, False)
        return CallOutcome(value, last_offset[0], Timestamp(started_us))

    return ProcedureCall(procedure, db._procedures.submit(run), deadline)


def _with_tx(
    db: Database,
    procedure: str,
    fn: Callable[[ReducerContext], Any],
    wire_args: Any,
    sender: Identity,
    connection_id: ConnectionId | None,
) -> tuple[Any, int]:
    """A procedure's ``ctx.with_tx(fn)``: one transaction, logged ``<name>/with_tx``."""
    name = f"{procedure}/with_tx"
    with db._lock:
        check_can_write(db, name)
        value, offset, _ = transact(db, name, fn, wire_args, sender, connection_id)
    db._persistence.wait_durable(offset)
    return value, offset
