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
the ``DatabaseCore``, for the reason given in ``transactions.py``. The threads, the
deadline and the ``ProcedureCall`` it returns are in ``procedure_threads.py``, below the
core, which holds the runner.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cosmictron.errors import ProcedureTimedOut
from cosmictron.host.core import DatabaseCore
from cosmictron.host.procedure_threads import Deadline, ProcedureCall
from cosmictron.host.transactions import (
    CallOutcome,
    as_reducer_failure,
    check_can_write,
    check_return,
    failure_log_line,
    raise_unknown_reducer,
    transact,
)
from cosmictron.module import CURRENT_DB, ProcedureContext, ReducerContext
from cosmictron.values import ConnectionId, Identity, Timestamp


def start_procedure(
    core: DatabaseCore,
    procedure: str,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any] | None,
    sender: Identity | None,
    connection_id: ConnectionId | None,
) -> ProcedureCall:
    """``Database.start_procedure``: check the arguments, then submit the call."""
    binding = core.module.procedures.get(procedure)
    if binding is None:
        raise_unknown_reducer(core.module, procedure)
    values, wire_args = binding.bind(tuple(args), kwargs or {})
    caller = sender or core.owner
    deadline = Deadline(procedure, binding.timeout_s)
    last_offset = [0]

    def run_tx(fn: Callable[[ReducerContext], Any]) -> Any:
        deadline.check()
        value, offset = _with_tx(core, procedure, fn, wire_args, caller, connection_id)
        last_offset[0] = offset
        return value

    def run() -> CallOutcome:
        deadline.check()  # it waited in the queue past its deadline: never start
        started_us = core.clock.now_us()
        ctx = ProcedureContext(
            procedure, caller, connection_id, core.identity, Timestamp(started_us), run_tx
        )
        started = time.perf_counter()
        # Module code finds its database through CURRENT_DB in a procedure too (the agent
        # layer's recall reads the module's embedder before its transaction).
        token = CURRENT_DB.set(core.current_db)
        try:
            value = binding.function(ctx, *values)
            check_return(binding, value)
        except ProcedureTimedOut:
            core.reducer_metrics.observe(procedure, time.perf_counter() - started, True)
            raise
        except Exception as exc:
            core.reducer_metrics.observe(procedure, time.perf_counter() - started, True)
            failure = as_reducer_failure(procedure, exc, core.module)
            core.log.append("ERROR", failure_log_line(failure), procedure)
            raise failure from exc
        finally:
            CURRENT_DB.reset(token)
        core.reducer_metrics.observe(procedure, time.perf_counter() - started, False)
        return CallOutcome(value, last_offset[0], Timestamp(started_us))

    return ProcedureCall(procedure, core.procedures.submit(run), deadline)


def _with_tx(
    core: DatabaseCore,
    procedure: str,
    fn: Callable[[ReducerContext], Any],
    wire_args: Any,
    sender: Identity,
    connection_id: ConnectionId | None,
) -> tuple[Any, int]:
    """A procedure's ``ctx.with_tx(fn)``: one transaction, logged ``<name>/with_tx``."""
    name = f"{procedure}/with_tx"
    with core.lock:
        check_can_write(core, name)
        value, offset, _ = transact(core, name, fn, wire_args, sender, connection_id)
    core.persistence.wait_durable(offset)
    return value, offset
