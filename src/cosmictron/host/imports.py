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
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cosmictron import limits


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
