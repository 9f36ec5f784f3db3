"""Idempotency keys of bulk loads: a retried import batch is applied once.

A client that loads a file in batches (``cosmictron-cli import``) names each batch with
a key (``<file hash>:<first line>``). The key is written in the bulk load's own record
(``__bulk_insert__`` with arguments ``[table, row_count, key]``), so it is committed in
the same transaction as the rows: a batch whose reply was lost is either in the log with
its key or not applied at all, and the retry can tell which. The host keeps the most
recent keys in memory, rebuilds them on replay from the records, and carries them in
snapshots (state key ``"imports"``), so a snapshot does not forget a key.

Keys are bounded (``limits.bulk_insert_keys_max``, oldest dropped first): an import
resumes within minutes or hours of an interruption, not after a million later batches.

The bulk loads themselves (``bulk_insert``, ``bulk_insert_once``) are here, beside the
keys they record; the keys' container, ``AppliedImports``, is state the core holds, so
it lives below the core in ``import_keys.py``. The loads are functions over the
``DatabaseCore`` (``Database`` delegates to them) that write through
``transactions.run_transaction``, like SQL DML does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cosmictron.datastore import Datastore, Transaction
from cosmictron.host.core import DatabaseCore
from cosmictron.host.handles import insert_all
from cosmictron.host.memory import collector_paused
from cosmictron.host.records import BULK_INSERT
from cosmictron.host.transactions import run_transaction


@dataclass(frozen=True, slots=True)
class BulkInsertOutcome:
    """What a keyed bulk load did: its offset and rows, or those of the earlier load."""

    tx_offset: int
    row_count: int
    already_applied: bool


class _AlreadyApplied(Exception):
    """Raised inside a keyed bulk load's transaction to roll it back: nothing to do."""


def bulk_insert(core: DatabaseCore, table: str, rows: Iterable[Any]) -> int:
    """``Database.bulk_insert``: all the rows in one transaction; returns its offset."""
    core.table(table)  # raises NotFound naming the tables

    def load(tx: Transaction, datastore: Datastore) -> int:
        # Looked up under the lock, so a module update cannot slip in between.
        binding = core.module.rows.get(table)
        if binding is None:
            core.table(table)
        assert binding is not None
        target = datastore.tables[table]
        with collector_paused():  # many new rows, no garbage (see memory.py)
            return insert_all(tx, target, binding, rows)

    _, offset = run_transaction(core, BULK_INSERT, load, lambda count: [table, count])
    return offset


def bulk_insert_once(
    core: DatabaseCore, table: str, rows: Iterable[Any], key: str | None
) -> BulkInsertOutcome:
    """``Database.bulk_insert_once``: ``bulk_insert`` applied at most once per key."""
    core.table(table)  # raises NotFound naming the tables
    added: list[bool] = []

    def load(tx: Transaction, datastore: Datastore) -> int:
        # Under the writer lock, so two requests with one key cannot both load.
        if key is not None and core.imports.find(table, key) is not None:
            raise _AlreadyApplied
        binding = core.module.rows.get(table)
        if binding is None:
            core.table(table)
        assert binding is not None
        with collector_paused():
            count = insert_all(tx, datastore.tables[table], binding, rows)
        # The record about to be appended takes the log's next offset (not always
        # core.offset + 1: ledger records, such as checkpoints, take offsets too); the key
        # is remembered now, still under the lock, and forgotten on failure.
        if key is not None:
            core.imports.add(table, key, core.persistence.next_offset, count)
            added.append(True)
        return count

    try:
        count, offset = run_transaction(
            core,
            BULK_INSERT,
            load,
            lambda count: [table, count] if key is None else [table, count, key],
        )
    except _AlreadyApplied:
        assert key is not None, "only a keyed load is found applied"
        with core.lock:
            found = core.imports.find(table, key)
        assert found is not None, "a key found applied is kept"
        return BulkInsertOutcome(found[0], found[1], already_applied=True)
    except BaseException:
        if key is not None and added:
            with core.lock:
                core.imports.discard(table, key)
        raise
    assert key is None or core.imports.find(table, key) in (None, (offset, count))
    return BulkInsertOutcome(offset, count, already_applied=False)
