"""Cross-database calls, the operations: record a call, apply one, settle a delivery.

The three transactions of one ``ctx.call_remote`` (docs/design/remote-calls.md):

1. the caller's own transaction records the outbox entry (``stage_call``);
2. the target applies the call and, in the same transaction, raises the source's inbox
   mark to the call's sequence (``apply_remote``); a call at or below the mark was
   applied before and is skipped, so a redelivery after any crash has no effect;
3. the source settles the entry (``settle``): removed once applied, or its failed
   attempt counted, or given up.

A crash between 1 and 2 leaves the entry pending (the relay delivers it on open); between
2 and 3 it leaves it pending too, and the redelivery finds the mark and settles it. The
relay delivers one source's calls to one target in sequence order, which is what makes
one mark per source enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cosmictron.datastore import Transaction
from cosmictron.errors import InvalidRequest
from cosmictron.host.core import DatabaseCore
from cosmictron.host.remote_book import OutboxEntry
from cosmictron.host.transactions import (
    check_can_write,
    check_return,
    commit,
    next_timestamp_us,
    publish,
    raise_unknown_reducer,
    transact,
)
from cosmictron.module import ReducerContext
from cosmictron.values import Identity

REMOTE_SETTLED = "__remote_settled__"
"""The reducer name of the source's settlement records; args ``[[seq, outcome], ...]``."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What the target did with one delivery."""

    status: str
    """``"applied"`` (this delivery took effect) or ``"duplicate"`` (an earlier one did)."""
    tx_offset: int | None


def stage_call(core: DatabaseCore, database: str, reducer: str, args: Sequence[Any]) -> int:
    """``ctx.call_remote``: record the call in the running transaction."""
    if core.scope.tx is None:
        raise InvalidRequest("call_remote works only inside a running reducer")
    return core.remote.stage_call(database, reducer, tuple(args))


def source_key(core: DatabaseCore) -> str:
    """How a target names this database in its inbox marks: its identity, which never
    changes (a name may be reused by another database after a delete)."""
    return core.identity.data.hex()


def apply_remote(
    core: DatabaseCore,
    source: str,
    seq: int,
    reducer: str,
    args: Sequence[Any],
    sender: Identity,
) -> Applied:
    """Apply ``source``'s call ``seq`` here, once: skipped if the inbox mark covers it.

    Runs ``reducer`` as ``sender`` (the calling database's owner) in one transaction that
    also raises the mark, then waits for it to be durable. Takes the writer lock.

    Raises:
        NotFound: no such reducer here.
        InvalidRequest: the arguments do not bind, or the database is closed.
        ReducerFailed: the reducer raised; nothing was kept, the mark did not move.
    """
    with core.lock:
        check_can_write(core, "a remote call")
        if seq <= core.remote.applied_up_to(source):
            return Applied("duplicate", None)
        binding = core.module.reducers.get(reducer)
        if binding is None:
            raise_unknown_reducer(core.module, reducer)
        values, wire_args = binding.bind(tuple(args), {})

        def run(ctx: ReducerContext) -> Any:
            core.remote.stage(["in", source, seq])
            value = binding.function(ctx, *values)
            check_return(binding, value)
            return value

        _, offset, _ = transact(core, reducer, run, wire_args, sender, None)
    core.persistence.wait_durable(offset)
    return Applied("applied", offset)


def pending(core: DatabaseCore) -> tuple[list[OutboxEntry], int]:
    """A copy of the entries still to deliver, and the offset that covers them all."""
    with core.lock:
        entries = [
            OutboxEntry(e.seq, e.database, e.reducer, list(e.args), e.offset, e.attempts, e.error)
            for e in core.remote.pending()
        ]
        return entries, core.offset


def settle(core: DatabaseCore, ops: list[list[Any]]) -> int | None:
    """Write the outcome of deliveries (``done`` / ``try`` / ``fail`` ops) in one record.

    Ops about entries already settled are dropped; returns the offset, or None when
    nothing was left to write (or the database is closed: the entries stay pending and
    are delivered again, harmlessly, after it reopens).
    """
    with core.lock:
        if core.closed:
            return None
        live = [op for op in ops if op[1] in core.remote.outbox]
        if not live:
            return None
        now_us = next_timestamp_us(core)
        tx = Transaction()
        for op in live:
            core.remote.stage(op)
        try:
            offset, changes = commit(
                core,
                tx,
                REMOTE_SETTLED,
                [[op[1], op[0]] for op in live],
                core.owner,
                None,
                now_us,
            )
        except BaseException:
            core.remote.discard()
            raise
        publish(core, offset, now_us, changes)
        for op in live:
            if op[0] == "fail":
                entry = core.remote.outbox.get(op[1])
                target = f"{entry.database}.{entry.reducer}" if entry else "?"
                core.log.append(
                    "ERROR",
                    f"call_remote #{op[1]} to {target} failed after {op[2]} attempts; "
                    f"given up: {op[3]}",
                    REMOTE_SETTLED,
                )
    return offset
