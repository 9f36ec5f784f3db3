"""Transactions: writes go straight to the tables, and an undo log takes them back.

There is one writer per database, so a transaction can change the tables in place: the
reducer reads its own writes for free, and commit (the common case) costs nothing. Each
write appends ``(table, key, old_row, new_row)`` to ``ops``. Rolling back walks ``ops``
backwards restoring ``old_row``; a savepoint is just a position in ``ops``, which is how a
reducer called from a reducer can fail alone. Auto-increment counters are undone the same
way (their old value is an op too): with one writer no other transaction can have seen an
id a failed one drew, so ids stay dense, and the log (which records only committed
counters), snapshots and the running database always agree on the next id.

``changes()`` folds ``ops`` into the transaction's net effect per table (a row inserted
then deleted in one transaction appears in neither list): that is what the commit log
records and what subscriptions will see.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cosmictron.datastore.table import Table
from cosmictron.errors import Conflict


class BatchConflict(Conflict):
    """A row of a batch insert duplicated a key; ``row_index`` is its position."""

    def __init__(self, message: str, row_index: int) -> None:
        super().__init__(message)
        self.row_index = row_index


_SEQUENCE: Any = type("SequenceOp", (), {"__repr__": lambda self: "<sequence>"})()
"""The ``key`` of an op that changed a counter: ``(table, _SEQUENCE, position, old)``."""

_BATCH: Any = type("BatchOp", (), {"__repr__": lambda self: "<batch>"})()
"""The ``key`` of an op that inserted many rows: ``(table, _BATCH, keys, rows)``."""


@dataclass(slots=True)
class TableChange:
    """The net effect of one transaction on one table.

    Not ``frozen``: one is built per table per commit, and a frozen dataclass's
    ``__init__`` (three ``object.__setattr__`` calls) cost more than the rest of
    ``changes()`` for a one-row transaction. Treat it as read-only all the same.
    """

    table: Table
    inserts: list[tuple[Any, ...]]
    deletes: list[tuple[Any, ...]]


class Transaction:
    __slots__ = ("closed", "ops", "sequence_tables")

    def __init__(self) -> None:
        # (table, key, old row, new row); sequence and batch ops reuse the slots (above).
        self.ops: list[tuple[Table, Any, Any, Any]] = []
        self.sequence_tables: set[Table] | None = None
        self.closed = False

    def insert(self, table: Table, row: tuple[Any, ...]) -> Any:
        """Insert ``row``; returns its key (None if an identical keyless row existed)."""
        key = table.insert(row)
        if key is not None:
            self.ops.append((table, key, None, row))
        return key

    def insert_batch(self, table: Table, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Insert many rows as one op (bulk loads); all or none. Returns the rows stored.

        Raises:
            BatchConflict: a row duplicates a key (``row_index`` says which); the rows of
                this batch already stored are removed again before it propagates.
        """
        try:
            keys = table.insert_many(rows)
        except Conflict as exc:
            raise BatchConflict(str(exc), getattr(exc, "row_index", 0)) from None
        if table.key_of is None:  # identical keyless rows are stored once
            stored = [row for row, key in zip(rows, keys, strict=True) if key is not None]
            keys = [key for key in keys if key is not None]
        else:
            stored = rows
        self.ops.append((table, _BATCH, keys, stored))
        return stored

    def delete(self, table: Table, key: Any) -> tuple[Any, ...] | None:
        old = table.delete(key)
        if old is not None:
            self.ops.append((table, key, old, None))
        return old

    def replace(self, table: Table, key: Any, row: tuple[Any, ...]) -> tuple[Any, ...]:
        old = table.replace(key, row)
        self.ops.append((table, key, old, row))
        return old

    def next_sequence_value(self, table: Table, position: int) -> int:
        value = table.sequences[position]
        self._set_sequence(table, position, value + 1)
        return value

    def observe_explicit_value(self, table: Table, position: int, value: int) -> None:
        """Keep the counter above an id the caller chose, so it never hands it out again."""
        if value >= table.sequences[position]:
            self._set_sequence(table, position, value + 1)

    def _set_sequence(self, table: Table, position: int, value: int) -> None:
        self.ops.append((table, _SEQUENCE, position, table.sequences[position]))
        table.sequences[position] = value
        if self.sequence_tables is None:
            self.sequence_tables = {table}
        else:
            self.sequence_tables.add(table)

    # -- undo -----------------------------------------------------------------------

    def savepoint(self) -> int:
        return len(self.ops)

    def rollback_to(self, savepoint: int) -> None:
        ops = self.ops
        while len(ops) > savepoint:
            table, key, old, new = ops.pop()
            if key is _SEQUENCE:
                table.sequences[old] = new
            elif key is _BATCH:
                for batch_key in reversed(old):
                    table.delete(batch_key)
            elif new is None:
                table.insert(old)
            elif old is None:
                table.delete(key)
            else:
                table.replace(key, old)

    def rollback(self) -> None:
        self.rollback_to(0)
        self.closed = True

    # -- commit ---------------------------------------------------------------------

    def changes(self) -> list[TableChange]:
        """The net effect, table by table, in the order tables were first touched."""
        ops = self.ops
        if self.sequence_tables is not None:
            ops = [op for op in ops if op[1] is not _SEQUENCE]
        if not ops:
            return []
        if len(ops) == 1:  # the common one-write transaction
            table, key, old, new = ops[0]
            if key is _BATCH:
                return [TableChange(table, new, [])]
            if old == new:
                return []
            return [TableChange(table, [] if new is None else [new], [] if old is None else [old])]
        if any(op[1] is _BATCH for op in ops):
            ops = list(_expand_batches(ops))
        first_old: dict[tuple[Table, Any], Any] = {}
        last_new: dict[tuple[Table, Any], Any] = {}
        for table, key, old, new in ops:
            slot = (table, key)
            if slot not in first_old:
                first_old[slot] = old
            last_new[slot] = new
        by_table: dict[Table, TableChange] = {}
        for slot, old in first_old.items():
            new = last_new[slot]
            if old == new:
                continue
            change = by_table.get(slot[0])
            if change is None:
                change = by_table[slot[0]] = TableChange(slot[0], [], [])
            if old is not None:
                change.deletes.append(old)
            if new is not None:
                change.inserts.append(new)
        return list(by_table.values())

    def touched_tables(self) -> Iterator[Table]:
        seen: set[Table] = set()
        for table, *_ in self.ops:
            if table not in seen:
                seen.add(table)
                yield table


def _expand_batches(ops: list[Any]) -> Iterator[Any]:
    for table, key, old, new in ops:
        if key is _BATCH:
            for batch_key, row in zip(old, new, strict=True):
                yield table, batch_key, None, row
        else:
            yield table, key, old, new
