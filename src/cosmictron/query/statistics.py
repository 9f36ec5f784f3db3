"""What the join planner knows about the tables: row counts and distinct keys per index.

Nothing here scans a table. The datastore already keeps both figures as rows change: a
table's row count is the length of its row dict, and an index's number of distinct keys
is the length of its entries dict (``Index.distinct_key_count``), each O(1). A column
without an index has no distinct count; the planner then assumes it is as selective as a
key of its table would be, which favours joining on it (the usual guess, and the one
that keeps a connecting predicate ahead of a cross product).

``Statistics`` is what the cost model (``join_order.py``) reads: over a datastore
(``datastore_statistics``, when a query runs or is explained against one) or a fixed
guess (``GUESS``, when a plan is explained with no data at hand).
"""

from __future__ import annotations

from typing import Protocol

from cosmictron.datastore import Datastore

GUESSED_ROWS = 1000
"""The row count assumed for every table when no datastore is at hand."""


class Statistics(Protocol):
    def rows(self, table: str) -> int:
        """The table's row count."""
        ...

    def distinct(self, table: str, column: str) -> int | None:
        """Distinct values of ``column`` if an index (or the primary key) says; else None."""
        ...


class DatastoreStatistics:
    """Statistics read off a datastore (a snapshot or the live one), in O(1) each."""

    __slots__ = ("_datastore",)

    def __init__(self, datastore: Datastore) -> None:
        self._datastore = datastore

    def rows(self, table: str) -> int:
        found = self._datastore.tables.get(table)
        return 0 if found is None else len(found.rows)

    def distinct(self, table: str, column: str) -> int | None:
        found = self._datastore.tables.get(table)
        if found is None:
            return None
        if tuple(found.schema.primary_key) == (column,):
            return len(found.rows)
        for index in found.indexes:
            if tuple(index.schema.columns) == (column,):
                return index.distinct_key_count()
        return None


class GuessedStatistics:
    """Every table ``GUESSED_ROWS`` rows, keys unique: for EXPLAIN without data."""

    def rows(self, table: str) -> int:
        return GUESSED_ROWS

    def distinct(self, table: str, column: str) -> int | None:
        return None


GUESS = GuessedStatistics()


def datastore_statistics(datastore: Datastore) -> Statistics:
    return DatastoreStatistics(datastore)
