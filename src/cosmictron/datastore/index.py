"""Secondary indexes: a hash map from key to row keys, plus an ordered view for btrees.

One mechanism serves both kinds. Every index is a dict from its key to the row key (unique
index) or to the row keys (non-unique: a single row key until a second row shares the key,
then a set, which keeps memory near one dict entry per row). A ``btree`` index adds an
ordered list of its distinct keys, built the first time someone asks for order or a
range and maintained from then on, so tables nobody range-scans pay nothing for it.

Keys whose columns may be NULL are ordered with NULL first, through ``sort_key``.

``owned_copy`` serves the table's copy-on-write snapshots: the entries dict and the
ordered list are copied at once, but a non-unique key's set of row keys is still shared
with the snapshot's index until the first write to that key copies it (``_owned`` lists
the keys whose sets are this index's own), so a snapshot costs the writer one C-level
dict copy, not a Python loop over every set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any, Self

from sortedcontainers import SortedKeyList, SortedList

from cosmictron.datastore.schema import IndexSchema, TableSchema

_NOTHING = object()


def _null_first(value: Any) -> tuple[Any, ...]:
    return (False,) if value is None else (True, value)


def make_key_getter(positions: list[int]) -> Callable[[tuple[Any, ...]], Any]:
    """Return a function from a row tuple to its key: a value, or a tuple for composites."""
    return itemgetter(*positions)


class Index:
    """One secondary index over a table's rows (the primary key is the table's dict)."""

    __slots__ = ("_entries", "_ordered", "_owned", "_sort_key", "key_of", "schema", "unique")

    def __init__(self, schema: IndexSchema, table: TableSchema) -> None:
        positions = [table.column_index(name) for name in schema.columns]
        self.schema = schema
        self.unique = schema.unique
        self.key_of = make_key_getter(positions)
        self._entries: dict[Any, Any] = {}
        self._ordered: SortedList | None = None
        self._owned: set[Any] | None = None  # None: every set of row keys is ours
        nullable = [not table.columns[p].type.orderable for p in positions]
        if not any(nullable):
            self._sort_key: Callable[[Any], Any] | None = None
        elif len(positions) == 1:
            self._sort_key = _null_first
        else:
            self._sort_key = lambda key: tuple(_null_first(part) for part in key)

    # -- snapshots ------------------------------------------------------------------

    def owned_copy(self, entries: dict[Any, Any] | None = None) -> Self:
        """A copy for the writer to change, leaving this one to a snapshot's readers
        (over ``entries`` when given: the primary order's are the table's new dict)."""
        copy = object.__new__(type(self))
        copy.schema = self.schema
        copy.unique = self.unique
        copy.key_of = self.key_of
        copy._sort_key = self._sort_key
        copy._entries = self._entries.copy() if entries is None else entries
        ordered = self._ordered
        copy._ordered = None if ordered is None else ordered.copy()
        copy._owned = None if self.unique else set()
        return copy

    def _own_set(self, key: Any, found: set[Any]) -> set[Any]:
        """``found`` (the set under ``key``), copied first if a snapshot shares it."""
        owned = self._owned
        if owned is None or key in owned:
            return found
        found = set(found)
        self._entries[key] = found
        owned.add(key)
        return found

    # -- writes ---------------------------------------------------------------------

    def holder_of(self, row: tuple[Any, ...]) -> Any:
        """The row key holding ``row``'s key in a unique index, or None if it is free."""
        return self._entries.get(self.key_of(row))

    def add(self, row: tuple[Any, ...], row_key: Any) -> None:
        key = self.key_of(row)
        entries = self._entries
        found = entries.get(key, _NOTHING)
        if found is _NOTHING:
            entries[key] = row_key
            if self._ordered is not None:
                self._ordered.add(key)
        elif self.unique:
            raise AssertionError(f"index {self.schema.name}: add over a held key {key!r}")
        elif type(found) is set:
            if self._owned is None:  # no snapshot shares the set: ``_own_set`` inlined
                found.add(row_key)
            else:
                self._own_set(key, found).add(row_key)
        else:
            entries[key] = {found, row_key}
            if self._owned is not None:
                self._owned.add(key)

    def add_many(self, rows: list[tuple[Any, ...]], row_keys: list[Any]) -> None:
        """``add`` for many rows whose index keys the caller knows are free if unique."""
        entries = self._entries
        get = entries.get
        ordered = self._ordered
        unique = self.unique
        owned = self._owned
        for key, row_key in zip(map(self.key_of, rows), row_keys, strict=True):
            found = get(key, _NOTHING)
            if found is _NOTHING:
                entries[key] = row_key
                if ordered is not None:
                    ordered.add(key)
            elif unique:
                raise AssertionError(f"index {self.schema.name}: add over a held key {key!r}")
            elif type(found) is set:
                # ``_own_set`` inline for the set this writer already owns (a bulk load
                # or replay adds many rows under one key): a call less per row.
                if owned is None or key in owned:
                    found.add(row_key)
                else:
                    self._own_set(key, found).add(row_key)
            else:
                entries[key] = {found, row_key}
                if owned is not None:
                    owned.add(key)

    def remove(self, row: tuple[Any, ...], row_key: Any) -> None:
        key = self.key_of(row)
        entries = self._entries
        found = entries[key]
        if type(found) is set:
            found = self._own_set(key, found)
            found.discard(row_key)
            if len(found) == 1:
                entries[key] = next(iter(found))
            return
        del entries[key]
        if self._ordered is not None:
            self._ordered.remove(key)

    def remove_many(self, rows: list[tuple[Any, ...]], row_keys: list[Any]) -> None:
        """``remove`` for many rows this index holds (replay's overlay flush)."""
        entries = self._entries
        ordered = self._ordered
        owned = self._owned
        for key, row_key in zip(map(self.key_of, rows), row_keys, strict=True):
            found = entries[key]
            if type(found) is set:
                if owned is not None and key not in owned:
                    found = self._own_set(key, found)
                found.discard(row_key)
                if len(found) == 1:
                    entries[key] = next(iter(found))
                continue
            del entries[key]
            if ordered is not None:
                ordered.remove(key)

    def clear(self) -> None:
        self._entries.clear()
        self._ordered = None
        self._owned = None

    # -- reads ----------------------------------------------------------------------

    def row_keys(self, key: Any) -> Iterator[Any]:
        """Row keys whose index key equals ``key`` exactly."""
        found = self._entries.get(key, _NOTHING)
        if found is _NOTHING:
            return
        if type(found) is set:
            yield from list(found)
        else:
            yield found

    def ordered_keys(self) -> SortedList:
        if self._ordered is None:
            if self._sort_key is None:
                self._ordered = SortedList(self._entries)
            else:
                self._ordered = SortedKeyList(self._entries, key=self._sort_key)
        return self._ordered

    def _irange(self, low: Any, high: Any, inclusive: tuple[bool, bool]) -> Iterator[Any]:
        ordered = self.ordered_keys()
        if self._sort_key is None:
            return ordered.irange(low, high, inclusive)
        low = None if low is None else self._sort_key(low)
        high = None if high is None else self._sort_key(high)
        return ordered.irange_key(low, high, inclusive)

    def range_row_keys(
        self, start: Any = None, stop: Any = None, *, inclusive: bool = False
    ) -> Iterator[Any]:
        """Row keys with ``start <= key < stop`` (``<= stop`` when inclusive), in key order.

        ``None`` leaves that side open. On a composite index a shorter tuple is a prefix.
        """
        width = len(stop) if isinstance(stop, tuple) else 0
        if width and width < len(self.schema.columns):
            # A prefix stop bounds the prefix, not the whole key: stop=(2,) inclusive
            # must take (2, x) for every x, which plain tuple order would leave out.
            keys = self._prefix_bounded(start, stop, width, inclusive)
        else:
            keys = self._irange(start, stop, (True, inclusive))
        for key in list(keys):
            yield from self.row_keys(key)

    def _prefix_bounded(
        self, start: Any, stop: tuple[Any, ...], width: int, inclusive: bool
    ) -> Iterator[Any]:
        transform = self._sort_key or (lambda key: key)
        bound = transform(stop)
        for key in self._irange(start, None, (True, True)):
            head = transform(key[:width])
            if head > bound or (head == bound and not inclusive):
                return
            yield key

    def prefix_row_keys(self, prefix: tuple[Any, ...]) -> Iterator[Any]:
        """Row keys whose key starts with ``prefix`` (composite btree indexes)."""
        width = len(prefix)
        matched = []
        for key in self._irange(prefix, None, (True, True)):
            if key[:width] != prefix:
                break
            matched.append(key)
        for key in matched:
            yield from self.row_keys(key)

    def first_row_key(self, prefix: tuple[Any, ...] = ()) -> Any:
        """The row key of the smallest index key starting with ``prefix`` (composite
        btree indexes), or None when none does: one ordered
        lookup, O(log n), where ``prefix_row_keys`` walks every match."""
        width = len(prefix)
        for key in self._irange(prefix or None, None, (True, True)):
            if width and key[:width] != prefix:
                return None
            return next(self.row_keys(key), None)
        return None

    def distinct_key_count(self) -> int:
        return len(self._entries)

    def check_invariants(self, rows: dict[Any, tuple[Any, ...]]) -> None:
        """Assert the index holds exactly ``rows`` (tests call this; the hot path never)."""
        expected: dict[Any, set[Any]] = {}
        for row_key, row in rows.items():
            expected.setdefault(self.key_of(row), set()).add(row_key)
        actual = {
            key: set(found) if type(found) is set else {found}
            for key, found in self._entries.items()
        }
        assert actual == expected, f"index {self.schema.name} disagrees with its table"
        if self.unique:
            assert all(len(keys) == 1 for keys in expected.values())
        if self._ordered is not None:
            assert list(self._ordered) == sorted(self._entries, key=self._sort_key)


class PrimaryOrder(Index):
    """The ordered view of a table's primary keys, for ranges over the primary key.

    The table's own dict is the entries (key -> row), so this adds nothing per row until
    the first range query builds the ordered list.
    """

    __slots__ = ()

    def __init__(self, table: TableSchema, rows: dict[Any, tuple[Any, ...]]) -> None:
        super().__init__(IndexSchema("primary_key", table.primary_key, "btree", True), table)
        self._entries = rows

    def row_keys(self, key: Any) -> Iterator[Any]:
        if key in self._entries:
            yield key

    def added(self, key: Any) -> None:
        if self._ordered is not None:
            self._ordered.add(key)

    def removed(self, key: Any) -> None:
        if self._ordered is not None:
            self._ordered.remove(key)
