"""One in-memory table: rows as canonical tuples in a dict keyed by primary key.

A table with a primary key maps each key to its row; a table without one is a set of
rows (the row is its own key), so inserting an identical row twice stores it once, as in
SpacetimeDB. Unique constraints are checked before anything changes, so a failed insert
leaves the table as it was. Tables know nothing of transactions: ``Transaction`` records
what it did to them and undoes it.

Snapshots are copy-on-write at table granularity (docs/design/query-snapshots.md):
``share`` hands a reader a view holding the table's current dict and indexes, in
O(indexes), and marks the table shared; the next write to a shared table first gives it
copies of its own (``_own``), so the view never changes under its reader. A table nobody
reads pays one flag test per write.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from cosmictron.datastore.index import Index, PrimaryOrder, make_key_getter
from cosmictron.datastore.schema import TableSchema
from cosmictron.datastore.types import BYTES, STR, OptionalType
from cosmictron.errors import Conflict

_untrack_atomic: Callable[[list[Any]], None] | None = None
"""The compiled ``_rows.untrack_atomic`` (rows the cyclic collector need not walk), or
None: not built, or ``COSMICTRON_PURE`` is set; the collector then untracks them itself at
its next run. See docs/design/hot-path.md."""
_net_effect_pass: Callable[..., tuple[dict[Any, Any], int, list[list[list[Any]]]]] | None = None
"""The compiled ``_rows.net_effect_pass`` (``apply_net_effect``'s loop), or None, likewise."""
if not os.environ.get("COSMICTRON_PURE"):
    try:
        from cosmictron.datastore._rows import net_effect_pass as _net_effect_pass
        from cosmictron.datastore._rows import untrack_atomic as _untrack_atomic
    except ImportError:  # built without a compiler
        pass

# Rough bytes a stored row costs beyond its variable-length values: the tuple, its
# dict slot and each index's slot. Memory limits are enforced against this estimate.
_ROW_OVERHEAD_BYTES = 64
_SLOT_BYTES = 8
_INDEX_ENTRY_BYTES = 48


def _python_net_effect_pass(
    changes: dict[Any, Any],
    held: dict[Any, Any],
    deleted: Any,
    key_getters: list[Callable[[tuple[Any, ...]], Any]],
    positions: list[int],
    required: list[bool],
) -> tuple[dict[Any, Any], int, list[list[list[Any]]]]:
    """``Table.apply_net_effect``'s pass over the changes, when ``_rows.net_effect_pass``
    (the same steps in C; its docstring says what it returns) is not built."""
    pop = held.pop
    per_index: list[list[list[Any]]] = [[[], [], [], []] for _ in key_getters]
    indexes = list(zip(key_getters, per_index, strict=True))
    fresh: dict[Any, tuple[Any, ...]] = {}
    size = 0
    for key, row in changes.items():
        was = pop(key, None)
        if was is not None:
            for position in positions:
                value = was[position]
                if value is not None:
                    size -= len(value)
        if row is deleted:
            if was is not None:
                for _, (gone_rows, gone_keys, _, _) in indexes:
                    gone_rows.append(was)
                    gone_keys.append(key)
            continue
        fresh[key] = row
        for key_of, (gone_rows, gone_keys, came_rows, came_keys) in indexes:
            if was is not None:
                if key_of(was) == key_of(row):
                    continue
                gone_rows.append(was)
                gone_keys.append(key)
            came_rows.append(row)
            came_keys.append(key)
    return fresh, size + _column_lengths(fresh.values(), positions, required), per_index


def _column_lengths(
    rows: Iterable[tuple[Any, ...]], positions: list[int], required: list[bool]
) -> int:
    """The lengths of the text and bytes values at ``positions`` in ``rows``, a column at
    a time (no call per row); ``required`` says which are never None (measured untested).
    ``rows`` is read once per position: a collection, not an iterator."""
    size = 0
    for position, never_none in zip(positions, required, strict=True):
        values = map(itemgetter(position), rows)
        if never_none:
            size += sum(map(len, values))
        else:
            size += sum(len(value) for value in values if value is not None)
    return size


@dataclass(frozen=True)
class TableStatistics:
    row_count: int
    estimated_bytes: int
    index_count: int


class Table:
    __slots__ = (
        "_fixed_row_bytes",
        "_required_variable",
        "_shared",
        "_variable_positions",
        "committed_bytes",
        "indexes",
        "key_of",
        "name",
        "primary_columns",
        "primary_order",
        "rows",
        "schema",
        "sequences",
        "unique_indexes",
        "variable_bytes",
    )

    def __init__(self, schema: TableSchema) -> None:
        self.schema = schema
        self.name = schema.name
        self.rows: dict[Any, tuple[Any, ...]] = {}
        self.primary_columns = [schema.column_index(c) for c in schema.primary_key]
        self.key_of = make_key_getter(self.primary_columns) if self.primary_columns else None
        self.primary_order = PrimaryOrder(schema, self.rows) if self.primary_columns else None
        self.indexes = [Index(index, schema) for index in schema.indexes]
        self.unique_indexes = [index for index in self.indexes if index.unique]
        self.sequences = {
            position: 1 for position, column in enumerate(schema.columns) if column.auto_inc
        }
        width = len(schema.columns)
        self._fixed_row_bytes = (
            _ROW_OVERHEAD_BYTES
            + 2 * _SLOT_BYTES * width
            + _INDEX_ENTRY_BYTES * (1 + len(self.indexes))
        )
        self._variable_positions = [
            position
            for position, column in enumerate(schema.columns)
            if column.type in (STR, BYTES)
            or (isinstance(column.type, OptionalType) and column.type.inner in (STR, BYTES))
        ]
        # Which of them are never None (``_variable_size_of`` measures those untested).
        self._required_variable = [
            schema.columns[position].type in (STR, BYTES) for position in self._variable_positions
        ]
        self.variable_bytes = 0
        self.committed_bytes = 0
        self._shared = False

    # -- snapshots ------------------------------------------------------------------

    def share(self) -> Table:
        """A read-only view of the table as it is now, in O(indexes).

        The view holds this table's row dict and index objects; the table is marked
        shared, so its next write copies them first and the view stays as it was. Only
        read the view (its readers may run on other threads, without the writer lock).
        """
        view = Table.__new__(Table)
        for slot in Table.__slots__:
            setattr(view, slot, getattr(self, slot))
        self._shared = view._shared = True  # a write to either copies first
        return view

    def _own(self) -> None:
        """Copy the structures a view shares before the first write after ``share``."""
        self._shared = False
        rows = self.rows.copy()
        self.rows = rows
        self.indexes = [index.owned_copy() for index in self.indexes]
        self.unique_indexes = [index for index in self.indexes if index.unique]
        if self.primary_order is not None:
            self.primary_order = self.primary_order.owned_copy(rows)

    # -- keys -----------------------------------------------------------------------

    def row_key(self, row: tuple[Any, ...]) -> Any:
        key_of = self.key_of
        return row if key_of is None else key_of(row)

    def row_bytes(self, row: tuple[Any, ...]) -> int:
        """Estimated memory of one row, for memory limits (cheap, not exact)."""
        return self._fixed_row_bytes + self._variable_size(row)

    def _variable_size(self, row: tuple[Any, ...]) -> int:
        size = 0
        for position in self._variable_positions:
            value = row[position]
            if value is not None:
                size += len(value)
        return size

    @property
    def estimated_bytes(self) -> int:
        """Estimated memory of all rows: fixed cost per row plus text and bytes lengths.

        ``committed_bytes`` is the same figure as of the last commit (the host sets it),
        so a transaction's growth is the difference, at no cost per row.
        """
        return len(self.rows) * self._fixed_row_bytes + self.variable_bytes

    # -- writes (no transaction logic here) -------------------------------------------

    def insert(self, row: tuple[Any, ...]) -> Any:
        """Store ``row`` and return its key; None if an identical keyless row exists.

        Raises:
            Conflict: the primary key or a unique index already holds this key.
        """
        if self._shared:
            self._own()
        key = row if self.key_of is None else self.key_of(row)
        if key in self.rows:
            if self.key_of is None:
                return None
            raise Conflict(self._duplicate_message("primary key", self.schema.primary_key, key))
        for index in self.unique_indexes:
            if index.holder_of(row) is not None:
                raise Conflict(
                    self._duplicate_message("unique index", index.schema.columns, index.key_of(row))
                )
        self.rows[key] = row
        for index in self.indexes:
            index.add(row, key)
        if self.primary_order is not None and self.primary_order._ordered is not None:
            self.primary_order.added(key)
        if self._variable_positions:  # ``_variable_size`` inline: every insert's path
            size = 0
            for position in self._variable_positions:
                value = row[position]
                if value is not None:
                    size += len(value)
            self.variable_bytes += size
        return key

    def insert_many(self, rows: list[tuple[Any, ...]]) -> list[Any]:
        """Store many rows at once (replay, snapshots, bulk loads); returns their keys.

        All or nothing. The fast path applies when every key is new and distinct and no
        unique index or ordered view must be checked: then the rows go in with one
        ``dict.update`` and each index in one pass. Otherwise rows go in one by one.

        Raises:
            Conflict: a row duplicates a key; ``row_index`` on the exception says which.
                No row of this call remains stored.
        """
        if self._shared:
            self._own()
        key_of = self.key_of
        if (
            key_of is None
            or self.unique_indexes
            or (self.primary_order is not None and self.primary_order._ordered is not None)
        ):
            return self._insert_each(rows)
        keys = list(map(key_of, rows))
        table_rows = self.rows
        empty = not table_rows
        if not empty and (len(set(keys)) != len(keys) or not table_rows.keys().isdisjoint(keys)):
            return self._insert_each(rows)
        if _untrack_atomic is not None:
            # Before they go in: a dict holding only untracked values stays untracked
            # itself, so the collector walks neither the rows nor the table's dict.
            _untrack_atomic(rows)
        table_rows.update(zip(keys, rows, strict=True))
        if empty and len(table_rows) != len(keys):
            # A key repeated: into an empty table (a snapshot's load, a first bulk load)
            # the dict itself says so, without a set of the keys built first.
            table_rows.clear()
            return self._insert_each(rows)
        for index in self.indexes:
            index.add_many(rows, keys)
        if self._variable_positions:
            self.variable_bytes += self._variable_size_of(rows)
        return keys

    def _insert_each(self, rows: list[tuple[Any, ...]]) -> list[Any]:
        keys: list[Any] = []
        for row_index, row in enumerate(rows):
            try:
                keys.append(self.insert(row))
            except BaseException as exc:
                for key in reversed(keys):
                    if key is not None:
                        self.delete(key)
                if isinstance(exc, Conflict):
                    exc.row_index = row_index  # type: ignore[attr-defined]
                raise
        return keys

    def delete(self, key: Any) -> tuple[Any, ...] | None:
        """Remove the row stored under ``key`` and return it (None if there was none)."""
        if self._shared:
            self._own()
        row = self.rows.pop(key, None)
        if row is not None:
            for index in self.indexes:
                index.remove(row, key)
            if self.primary_order is not None:
                self.primary_order.removed(key)
            if self._variable_positions:
                self.variable_bytes -= self._variable_size(row)
        return row

    def delete_many(self, keys: list[Any]) -> list[tuple[Any, ...]]:
        """``delete`` for many keys the table holds, each index updated in one pass
        (replay's overlay flush); returns the removed rows.

        Raises:
            KeyError: a key the table does not hold (nothing is removed then).
        """
        if self._shared:
            self._own()
        held = self.rows
        missing = [key for key in keys if key not in held]
        if missing:
            raise KeyError(missing[0])
        pop = held.pop
        rows = [pop(key) for key in keys]
        for index in self.indexes:
            index.remove_many(rows, keys)
        primary_order = self.primary_order
        if primary_order is not None and primary_order._ordered is not None:
            for key in keys:
                primary_order.removed(key)
        if self._variable_positions:
            self.variable_bytes -= self._variable_size_of(rows)
        return rows

    def apply_net_effect(self, changes: dict[Any, Any], deleted: Any) -> None:
        """Apply a run of changes by net effect (replay's overlay flush): ``changes`` maps
        each key the run touched to its newest row, or to ``deleted``. The table ends as
        ``delete_many`` of the touched keys it holds then ``insert_many`` of the rows, in
        ``changes``' order, leave it; a row the run replaced keeps its entry in every index
        whose key for it did not change, so an update that leaves the indexed columns
        alone costs the indexes nothing. The caller has refused a change that inserts a
        key the table held before the run (``CorruptLog``).

        One pass over the changes: each key is looked up once, and each replaced row read
        once, while it is in the cache (the touched rows are scattered over the heap, and
        a pass per index and per column cost more in cache misses than in instructions).
        """
        if (
            self.key_of is None
            or self.unique_indexes
            or (self.primary_order is not None and self.primary_order._ordered is not None)
        ):  # the general path checks and keeps what these need
            touched = [key for key in changes if key in self.rows]
            if touched:
                self.delete_many(touched)
            self.insert_many([row for row in changes.values() if row is not deleted])
            return
        if self._shared:
            self._own()
        held = self.rows  # after ``_own``: a snapshot's view keeps the dict it had
        survivors, size, per_index = (_net_effect_pass or _python_net_effect_pass)(
            changes,
            held,
            deleted,
            [index.key_of for index in self.indexes],
            self._variable_positions,
            self._required_variable,
        )
        for index, (gone_rows, gone_keys, came_rows, came_keys) in zip(
            self.indexes, per_index, strict=True
        ):
            if gone_rows:
                index.remove_many(gone_rows, gone_keys)
            if came_rows:
                index.add_many(came_rows, came_keys)
        if _untrack_atomic is not None:
            # As in ``insert_many``: the dict stays untracked.
            _untrack_atomic(list(survivors.values()))
        held.update(survivors)
        self.variable_bytes += size

    def _variable_size_of(self, rows: Iterable[tuple[Any, ...]]) -> int:
        """``_variable_size`` summed over ``rows``, a column at a time (no call per row)."""
        return _column_lengths(rows, self._variable_positions, self._required_variable)

    def replace(self, key: Any, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """Swap the row under ``key`` for ``row`` (same key) and return the old row.

        Raises:
            Conflict: ``row`` would duplicate another row's unique key.
        """
        if self._shared:
            self._own()
        old = self.rows[key]
        for index in self.unique_indexes:
            holder = index.holder_of(row)
            if holder is not None and holder != key:  # held by another row
                raise Conflict(
                    self._duplicate_message("unique index", index.schema.columns, index.key_of(row))
                )
        self.rows[key] = row
        for index in self.indexes:
            if index.key_of(old) != index.key_of(row):
                index.remove(old, key)
                index.add(row, key)
        if self._variable_positions:  # inline: this is every update's path
            delta = 0
            for position in self._variable_positions:
                new_value, old_value = row[position], old[position]
                if new_value is not old_value:
                    if new_value is not None:
                        delta += len(new_value)
                    if old_value is not None:
                        delta -= len(old_value)
            self.variable_bytes += delta
        return old

    def clear(self) -> None:
        if self._shared:
            self._own()
        self.rows.clear()
        for index in self.indexes:
            index.clear()
        if self.primary_order is not None:
            self.primary_order._ordered = None
        self.variable_bytes = 0

    # -- reads ----------------------------------------------------------------------

    def get(self, key: Any) -> tuple[Any, ...] | None:
        return self.rows.get(key)

    def scan(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows.values())

    def __len__(self) -> int:
        return len(self.rows)

    def ordered_primary(self) -> PrimaryOrder:
        """The primary key's ordered view; the table must have a primary key."""
        assert self.primary_order is not None, f"table {self.name} has no primary key"
        return self.primary_order

    def index_named(self, name: str) -> Index | None:
        for index in self.indexes:
            if index.schema.name == name:
                return index
        return None

    def statistics(self) -> TableStatistics:
        return TableStatistics(len(self.rows), self.estimated_bytes, len(self.indexes))

    def check_invariants(self) -> None:
        """Assert keys, indexes and the byte estimate agree with the rows (tests only)."""
        for key, row in self.rows.items():
            assert self.row_key(row) == key, f"{self.name}: row stored under a wrong key"
        for index in self.indexes:
            index.check_invariants(self.rows)
        if self.primary_order is not None and self.primary_order._ordered is not None:
            assert list(self.primary_order._ordered) == sorted(
                self.rows, key=self.primary_order._sort_key
            )
        assert self.variable_bytes == sum(map(self._variable_size, self.rows.values()))

    def _duplicate_message(self, what: str, columns: tuple[str, ...], key: Any) -> str:
        shown = (
            ", ".join(f"{c}={v!r}" for c, v in zip(columns, key, strict=True))
            if len(columns) > 1
            else f"{columns[0]}={key!r}"
        )
        return f"table {self.name!r} already has a row with {what} {shown}"
