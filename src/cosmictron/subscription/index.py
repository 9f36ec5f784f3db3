"""Which live queries a transaction wakes: the manager's index of queries by what they read.

Identical queries (same plan after binding parameters and ``:sender``, same schema)
share one ``LiveQuery``, held here by its key (``queries``). Each query is indexed by
the tables it reads (``LiveQuery.reads``), so a transaction touching none of a query's
tables costs that query nothing. A query with an equality to a constant on a table
(``LiveQuery.guards``) is indexed under that value instead: queries differing only in a
constant (one per ``:sender`` under row-level security) cost a transaction only those
its changed rows name. A query restricted by a join filter on a FROM table
(``LiveQuery.key_guard``) is indexed under the values that filter admits now, and
indexed again after each re-evaluation (``refresh``).
"""

from __future__ import annotations

from typing import Any

from cosmictron.datastore import Datastore, TableChange
from cosmictron.subscription.guards import Guard
from cosmictron.subscription.live import LiveQuery


class QueryIndex:
    """Every distinct live query of one database, indexed by the rows that wake it."""

    def __init__(self, datastore: Datastore) -> None:
        self._datastore = datastore
        self.queries: dict[Any, LiveQuery] = {}
        self._by_table: dict[str, set[LiveQuery]] = {}
        # Queries with a guard on a table (``LiveQuery.guards``): table -> guard ->
        # value -> queries; a changed row wakes only those whose value it leads to.
        self._guarded: dict[str, dict[Guard, dict[Any, set[LiveQuery]]]] = {}
        # Queries restricted by a join filter on a FROM table (``LiveQuery.key_guard``):
        # table -> column -> value -> queries, the values being the filter's current
        # set for that query (re-indexed after each re-evaluation).
        self._keyed: dict[str, dict[int, dict[Any, set[LiveQuery]]]] = {}
        self._key_values: dict[LiveQuery, frozenset[Any]] = {}

    def affected(self, changes: list[TableChange]) -> set[LiveQuery]:
        """The queries whose result these changes may change."""
        affected: set[LiveQuery] = set()
        for change in changes:
            name = change.table.name
            readers = self._by_table.get(name)
            if readers:
                affected |= readers
            guarded = self._guarded.get(name)
            if guarded:
                affected |= self._woken(guarded, change)
            keyed = self._keyed.get(name)
            if keyed:
                for column, by_value in keyed.items():
                    for rows in (change.inserts, change.deletes):
                        for row in rows:
                            found = by_value.get(row[column])
                            if found:
                                affected |= found
        return affected

    def refresh(self, query: LiveQuery) -> None:
        """After ``query`` re-evaluated: index it again under its filter's set (which may
        have changed), if it is indexed by one."""
        if query in self._key_values:
            self._index_keys(query)

    def _woken(
        self,
        guarded: dict[Guard, dict[Any, set[LiveQuery]]],
        change: TableChange,
    ) -> set[LiveQuery]:
        """The guarded queries a table's changed rows lead to (old and new versions).

        A guard through a joined table reads that table as it is now. If this
        transaction also changed the joined row, the query is woken anyway: the joined
        table carries the query's direct guard on the same value, and its old or new
        version has that value, or else neither joins the row into the result.
        """
        woken: set[LiveQuery] = set()
        for guard, by_value in guarded.items():
            for rows in (change.inserts, change.deletes):
                for row in rows:
                    found = by_value.get(guard.value_of(row, self._datastore))
                    if found:
                        woken |= found
        return woken

    def register(self, query: LiveQuery) -> None:
        """Index ``query`` by the tables it reads (by a guard value where it has one)."""
        self.queries[query.key] = query
        keyed = query.key_guard[0] if query.key_guard is not None else None
        if keyed is not None:
            self._index_keys(query)
        for name in query.reads:
            if name == keyed:
                continue
            guarded = query.guards.get(name)
            if guarded is None:
                self._by_table.setdefault(name, set()).add(query)
            else:
                guard, value = guarded
                by_value = self._guarded.setdefault(name, {}).setdefault(guard, {})
                by_value.setdefault(value, set()).add(query)

    def forget(self, query: LiveQuery) -> None:
        if self.queries.get(query.key) is not query:
            return
        del self.queries[query.key]
        keyed = query.key_guard[0] if query.key_guard is not None else None
        if keyed is not None:
            self._unindex_keys(query)
        for name in query.reads:
            if name == keyed:
                continue
            guarded = query.guards.get(name)
            if guarded is None:
                readers = self._by_table.get(name)
                if readers is not None:
                    readers.discard(query)
                    if not readers:
                        del self._by_table[name]
                continue
            guard, value = guarded
            by_guard = self._guarded[name]
            by_value = by_guard[guard]
            by_value[value].discard(query)
            if not by_value[value]:
                del by_value[value]
                if not by_value:
                    del by_guard[guard]
                    if not by_guard:
                        del self._guarded[name]

    def _index_keys(self, query: LiveQuery) -> None:
        """(Re-)index ``query`` under the values its join filter admits now."""
        assert query.key_guard is not None
        table, column, _ = query.key_guard
        self._unindex_keys(query)
        values = query.key_values(self._datastore)
        by_value = self._keyed.setdefault(table, {}).setdefault(column, {})
        for value in values:
            by_value.setdefault(value, set()).add(query)
        self._key_values[query] = values

    def _unindex_keys(self, query: LiveQuery) -> None:
        values = self._key_values.pop(query, None)
        if values is None or query.key_guard is None:
            return
        table, column, _ = query.key_guard
        by_column = self._keyed[table]
        by_value = by_column[column]
        for value in values:
            found = by_value.get(value)
            if found is not None:
                found.discard(query)
                if not found:
                    del by_value[value]
        if not by_value:
            del by_column[column]
            if not by_column:
                del self._keyed[table]
