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

The bulk loads themselves (``bulk_insert``, ``bulk_insert_once``) are here too, beside
the keys they record: ``Database`` delegates to them. They are plain functions over the
database that write through ``transactions.run_transaction``, like SQL DML does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cosmictron import limits
from cosmictron.datastore import Datastore, Transaction
from cosmictron.host.handles import insert_all
from cosmictron.host.memory import collector_paused
from cosmictron.host.records import BULK_INSERT
from cosmictron.host.transactions import run_transaction

if TYPE_CHECKING:
    from cosmictron.host.database import Database


@dataclass(frozen=True, slots=True)
class BulkInsertOutcome:
    """What a keyed bulk load did: its offset and rows, or those of the earlier load."""

    tx_offset: int
    row_count: int
    already_applied: bool


class AppliedImports:
    """(table, key) -> (offset, row_count) of the newest keyed bulk loads."""

    def __init__(self, keys_max: int = limits.bulk_insert_keys_max) -> None:
        self._applied: OrderedDict[tuple[str, str], tuple[int, int]] = OrderedDict()
        self._keys_max = keys_max

    def find(self, table: str, key: str) -> tuple[int, int] | None:
        return self._applied.get((table, key))

    def add(self, table: str, key: str, offset: int, row_count: int) -> None:
        self._applied[(table, key)] = (offset, row_count)
        while len(self._applied) > self._keys_max:
            self._applied.popitem(last=False)

    def discard(self, table: str, key: str) -> None:
        """Forget a key whose load did not commit."""
        self._applied.pop((table, key), None)

    def observe(self, args: Any, offset: int) -> None:
        """Remember the key of a replayed ``__bulk_insert__`` record, if it has one."""
        if isinstance(args, list | tuple) and len(args) >= 3 and isinstance(args[2], str):
            self.add(str(args[0]), args[2], offset, int(args[1]))

    def clear(self) -> None:
        """Forget every key: the rows they loaded were wiped (a module update with clear)."""
        self._applied.clear()

    def state(self) -> list[list[Any]]:
        """The snapshot form: ``[[table, key, offset, row_count], ...]``, oldest first."""
        return [[table, key, *value] for (table, key), value in self._applied.items()]

    def load(self, state: Any) -> None:
        """Restore from a snapshot's ``"imports"`` (absent in older snapshots)."""
        self._applied.clear()
        for table, key, offset, row_count in state or ():
            self.add(table, key, offset, row_count)


class _AlreadyApplied(Exception):
    """Raised inside a keyed bulk load's transaction to roll it back: nothing to do."""


def bulk_insert(db: Database, table: str, rows: Iterable[Any]) -> int:
    """``Database.bulk_insert``: all the rows in one transaction; returns its offset."""
    db.table(table)  # raises NotFound naming the tables

    def load(tx: Transaction, datastore: Datastore) -> int:
        # Looked up under the lock, so a module update cannot slip in between.
        binding = db.module.rows.get(table)
        if binding is None:
            db.table(table)
        assert binding is not None
        target = datastore.tables[table]
        with collector_paused():  # many new rows, no garbage (see memory.py)
            return insert_all(tx, target, binding, rows)

    _, offset = run_transaction(db, BULK_INSERT, load, lambda count: [table, count])
    return offset


def bulk_insert_once(
    db: Database, table: str, rows: Iterable[Any], key: str | None
) -> BulkInsertOutcome:
    """``Database.bulk_insert_once``: ``bulk_insert`` applied at most once per key."""
    db.table(table)  # raises NotFound naming the tables
    added: list[bool] = []

    def load(tx: Transaction, datastore: Datastore) -> int:
        # Under the writer lock, so two requests with one key cannot both load.
        if key is not None and db._imports.find(table, key) is not None:
            raise _AlreadyApplied
        binding = db.module.rows.get(table)
        if binding is None:
            db.table(table)
        assert binding is not None
        with collector_paused():
            count = insert_all(tx, datastore.tables[table], binding, rows)
        # The record about to be appended takes the next offset (the log's contract);
        # the key is remembered now, still under the lock, and forgotten on failure.
        if key is not None:
            db._imports.add(table, key, db._offset + 1, count)
            added.append(True)
        return count

    try:
        count, offset = run_transaction(
            db,
            BULK_INSERT,
            load,
            lambda count: [table, count] if key is None else [table, count, key],
        )
    except _AlreadyApplied:
        assert key is not None, "only a keyed load is found applied"
        with db._lock:
            found = db._imports.find(table, key)
        assert found is not None, "a key found applied is kept"
        return BulkInsertOutcome(found[0], found[1], already_applied=True)
    except BaseException:
        if key is not None and added:
            with db._lock:
                db._imports.discard(table, key)
        raise
    assert key is None or db._imports.find(table, key) in (None, (offset, count))
    return BulkInsertOutcome(offset, count, already_applied=False)
