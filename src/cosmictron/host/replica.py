"""A read-only replica: a database that applies another node's records instead of running reducers.

Cluster mode (issue 19, part 3): a node that does not lead a database still serves its SQL
reads and subscriptions from a copy. The copy is opened like any database (its local log
replayed by ``recovery``), but never *started*: no ``@init``, no scheduler, no anchoring,
and every write is refused (``persistence.commit_refusal`` holds a ``NotLeader``, checked
before a reducer runs, by ``transactions.check_can_write``, and again at the append). Its
state advances only through :func:`apply_replicated`: the leader's record, byte for
byte, appended to the local log (``PersistenceLayer.append_replicated`` checks that it
continues the chain) and applied to the tables as replay applies it, then *published*
like a commit of this node's own, so subscriptions see the same changes at the same
``tx_offset`` as the leader's subscribers.

The record kinds are those of ``recovery._replay``; this applies one record at a time, under
the writer lock, while readers run (a SELECT reads a snapshot taken under that lock).
"""

from __future__ import annotations

from typing import Any

from cosmictron.datastore import Datastore, TableChange
from cosmictron.durability import MODULE_RECORD_KIND, TX_RECORD_KIND
from cosmictron.durability.record import decode_payload
from cosmictron.errors import InvalidRequest, NotLeader
from cosmictron.host.core import DatabaseCore
from cosmictron.host.directory import save_genesis, store_module
from cosmictron.host.hotswap import replay_module_change
from cosmictron.host.records import (
    BULK_INSERT,
    apply_record_body,
    read_module_body,
    record_remote,
    record_schedule,
)
from cosmictron.host.transactions import publish
from cosmictron.host.views import VIEW_REDUCER
from cosmictron.ledger.record_format import LEDGER_KINDS

REPLICA_RETRY_AFTER_S = 1.0
"""The ``Retry-After`` of a write refused on a replica: the leader takes it at once."""


def refuse_writes(core: DatabaseCore, node: str, database: str) -> None:
    """Make ``core`` a replica: every transaction and module update is refused."""
    core.persistence.commit_refusal = NotLeader(
        f"database {database!r} is a read-only replica on node {node}: it applies the "
        "leader's log and runs no reducer; send writes to the leader (any node forwards "
        "HTTP calls, deploys and SQL writes)",
        REPLICA_RETRY_AFTER_S,
    )


def _changes(datastore: Datastore, body: list[Any]) -> list[TableChange]:
    """The record's net effect per table, as rows (what subscriptions are told)."""
    changes = []
    for name, inserts, deletes in body[5]:
        table = datastore.tables.get(name)
        if table is None:
            continue  # apply_record_body reports it as a damaged log
        codec = datastore.codecs[name]
        changes.append(
            TableChange(
                table, [codec.decode(w) for w in inserts], [codec.decode(w) for w in deletes]
            )
        )
    return changes


def apply_replicated(core: DatabaseCore, payload: bytes) -> int:
    """Append the leader's record ``payload`` to the local log and apply it; its offset.

    Raises:
        DurabilityError: the record does not continue the local log (the caller sets the
            copy aside and rebuilds it from the replicated log).
        InvalidRequest: the database is closed.
    """
    kind, _offset, _prev, body = decode_payload(payload)
    with core.lock:
        if core.closed:
            raise InvalidRequest(f"database {str(core.path)!r} is closed")
        offset = core.persistence.append_replicated(payload)
        if kind in LEDGER_KINDS:
            return offset  # keys, checkpoints, anchors: the ledger's, nothing to apply
        if kind == TX_RECORD_KIND:
            _apply_transaction(core, offset, body)
        elif kind == MODULE_RECORD_KIND:
            _apply_module(core, offset, body)
        return offset


def _apply_transaction(core: DatabaseCore, offset: int, body: list[Any]) -> None:
    datastore = core.datastore
    changes = _changes(datastore, body)
    apply_record_body(datastore, body)
    schedule = record_schedule(body)
    if schedule:
        core.book.apply(core.book.decode(datastore, schedule))
    remote = record_remote(body)
    if remote:
        core.remote.apply(remote, offset)
    if body[3] == BULK_INSERT:
        core.imports.observe(body[4], offset)
    elif body[3] == VIEW_REDUCER:
        core.sql_views.replayed(body[4][0])
    publish(core, offset, body[0], changes)


def _apply_module(core: DatabaseCore, offset: int, body: list[Any]) -> None:
    change = read_module_body(body)
    save_genesis(core.path, core.module)
    loaded = replay_module_change(core.datastore, core.module, change, offset)
    if change.clear:
        core.imports.clear()
        core.subscriptions.end_all(
            "the module was updated with clear: every row was deleted; subscribe again"
        )
    core.install(loaded)
    core.book.reconcile(core.datastore, change.timestamp_us)
    core.offset = offset
    core.last_timestamp_us = change.timestamp_us
    core.memory.reset(core.datastore)
    core.subscriptions.schema_changed(loaded.schema)
    store_module(core.path, loaded)
