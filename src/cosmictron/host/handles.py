"""Table handles: ``ctx.db.<table>`` and its ``<column>.find/update/delete/filter``.

A handle converts between the module's row objects and canonical tuples and sends writes
through the running transaction. The same handle classes serve reads outside reducers
(``Database.table``) with no transaction: there, writes are refused and reads hold the
writer lock long enough to copy what they return, so a concurrent writer never shows a
half-applied transaction. Reads return lists, not live iterators, so a reducer may
delete rows while looping over ``iter()``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from cosmictron.datastore import Index, Table, Transaction, TypeMismatch
from cosmictron.datastore.schema import TableSchema
from cosmictron.datastore.tx import BatchConflict
from cosmictron.datastore.types import BytesType, ExactType, IntType
from cosmictron.errors import Conflict, InvalidRequest, NotFound
from cosmictron.module import RowBinding

_ANY = object()


class WriteScope:
    """Where a handle finds its transaction (None: read-only) and the writer lock."""

    __slots__ = ("lock", "tx")

    def __init__(self, lock: threading.RLock) -> None:
        self.lock = lock
        self.tx: Transaction | None = None

    def writable(self, table: Table, action: str) -> Transaction:
        tx = self.tx
        if tx is None:
            raise InvalidRequest(
                f"cannot {action} table {table.name!r} here: writes happen inside reducers "
                f"(Database.call)"
            )
        return tx


class TableHandle:
    """``ctx.db.<table>``: writes, scans and one accessor per unique column or index.

    The accessors are made with the handle and kept in its ``__dict__``, and the class
    has no ``__getattr__``: with one, CPython reads every attribute of the handle (its
    methods too) through its slow hook instead of the specialised lookups, about 40 ns
    a read (docs/design/hot-path.md, "Eighth round"). An unknown name is a plain
    ``AttributeError``, which ``missing_name_message`` (a failed reducer) and
    ``accessor`` (a guest module) turn into one that lists what the table has.
    """

    __slots__ = ("__dict__", "_accessors", "_binding", "_scope", "_table")

    def __init__(self, table: Table, binding: RowBinding, scope: WriteScope) -> None:
        self._table = table
        self._binding = binding
        self._scope = scope
        self._accessors: dict[str, Any] = {}
        schema = table.schema
        names = [_accessor_name(schema.primary_key)] if schema.primary_key else []
        names += [index.name for index in schema.indexes]
        for name in names:
            made = self._accessors[name] = self._make_accessor(name)
            if not hasattr(TableHandle, name):  # a method's name keeps the method
                self.__dict__[name] = made

    def insert(self, row: Any) -> Any:
        """Insert ``row``; returns it as stored, with auto_inc columns filled in."""
        table = self._table
        tx = self._scope.tx
        if tx is None:
            tx = self._scope.writable(table, "insert into")
        binding = self._binding
        if type(row) is binding.python_class:  # to_row inlined: no Python frame
            try:
                canonical = binding.row_checker(binding.values_of(row))
            except TypeMismatch:
                canonical = binding.to_row(row)  # raises, naming the column
        else:
            canonical = binding.to_row(row)  # raises: not an instance of the table class
        positions = binding.auto_inc_positions
        if positions:
            canonical = _assign_ids(tx, table, canonical, positions)
        tx.insert(table, canonical)
        if binding.objects_plain:
            return binding.python_class(*canonical)
        return binding.to_object(canonical)

    def delete(self, row: Any) -> bool:
        """Delete the row equal to ``row``; False if no stored row is equal to it."""
        table = self._table
        tx = self._scope.writable(table, "delete from")
        _refuse_on_event_table(table, "delete from")
        canonical = self._binding.to_row(row)
        key = table.row_key(canonical)
        if table.get(key) != canonical:
            return False
        tx.delete(table, key)
        return True

    def iter(self) -> Iterator[Any]:
        with self._scope.lock:
            rows = list(self._table.rows.values())
        return map(self._binding.to_object, rows)

    def count(self) -> int:
        return len(self._table.rows)

    def __iter__(self) -> Iterator[Any]:
        return self.iter()

    def __len__(self) -> int:
        return self.count()

    def accessor(self, name: str) -> IndexHandle:
        """The accessor of the unique column or index ``name``.

        Raises:
            AttributeError: the table has none of that name (the message lists those it has).
        """
        found = self._accessors.get(name)
        if found is None:
            raise AttributeError(self._missing_accessor_message(name))
        return found

    def _missing_accessor_message(self, name: str) -> str:
        """What ``handle.<name>`` should say when the table has no such accessor."""
        return (
            f"table {self._table.name!r} has no unique column or index {name!r} "
            f"(it has: {', '.join(self._accessors) or 'none'})"
        )

    def _make_accessor(self, name: str) -> IndexHandle:
        table = self._table
        schema = table.schema
        if schema.primary_key and _accessor_name(schema.primary_key) == name:
            return UniqueHandle(self, None)
        index = table.index_named(name)
        assert index is not None, f"{name!r} names no index of {table.name!r}"
        return UniqueHandle(self, index) if index.unique else IndexHandle(self, index)


class TableReadHandle(TableHandle):
    """The handle ``Database.table`` returns: a ``TableHandle`` whose unknown attribute
    raises the message that lists the table's accessors. Outside reducers a read costs
    a lock and a copy, so the slow attribute hook of ``__getattr__`` costs nothing that
    matters there; reducers get the plain ``TableHandle``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(self._missing_accessor_message(name))


class IndexHandle:
    """``handle.<indexed column>``: equality, prefix and range lookups.

    The index is found through the table at each use (``_index``), never kept: a
    snapshot (a SQL read, a subscription) makes the table's next write replace its
    index objects with copies (``Table._own``), and a kept one would answer from the
    snapshot's frozen index from then on.
    """

    __slots__ = ("_columns", "_exact", "_handle", "_int_bounds", "_position")

    def __init__(self, handle: TableHandle, index: Index | None) -> None:
        self._handle = handle
        table = handle._table
        self._position = -1 if index is None else table.indexes.index(index)
        names = index.schema.columns if index is not None else table.schema.primary_key
        self._columns = [table.schema.columns[table.schema.column_index(n)] for n in names]
        self._exact = _exact_types(self._columns)
        key_type = self._columns[0].type if len(self._columns) == 1 else None
        self._int_bounds: tuple[int, int] | None = (
            (key_type.low, key_type.high) if type(key_type) is IntType else None
        )
        """A one-integer key's range: ``find`` takes an ``int`` inside it as canonical
        without a ``_canonical`` and a ``check`` frame (``IntType.check`` returns it)."""

    @property
    def _index(self) -> Index:
        """The secondary index; only when ``_position >= 0`` (else: the primary key)."""
        return self._handle._table.indexes[self._position]

    def filter(
        self, value: Any = _ANY, *, start: Any = None, stop: Any = None, inclusive: bool = False
    ) -> list[Any]:
        """Rows whose key equals ``value``, or lies in ``[start, stop)`` (``]`` if inclusive).

        ``value`` may be a ``range`` of integers, or on a multi-column index a tuple
        prefix of the key. Returns a list in key order for ranges.
        """
        if isinstance(value, range):
            if value.step != 1:
                raise InvalidRequest("filter() takes ranges with step 1")
            start, stop, value = value.start, value.stop, _ANY
        handle = self._handle
        table = handle._table
        with handle._scope.lock:
            if value is not _ANY:
                keys = self._equal_keys(value)
            else:
                keys = self._range_keys(start, stop, inclusive)
            rows = [table.rows[key] for key in keys]
        return [handle._binding.to_object(row) for row in rows]

    def first(self, prefix: tuple[Any, ...] = ()) -> Any | None:
        """The row with the smallest key of this btree index (the primary key too), among
        those whose key starts with ``prefix`` (multi-column keys), or None.

        One ordered lookup (O(log n)): what a queue takes its head with, where
        ``filter(prefix)`` would list every match.
        """
        handle = self._handle
        table = handle._table
        if prefix and len(self._columns) == 1:
            raise InvalidRequest("first() takes a prefix on multi-column keys only")
        checked = self._canonical(tuple(prefix), partial=True) if prefix else ()
        with handle._scope.lock:
            key = self._ordered_index().first_row_key(checked)
            row = None if key is None else table.rows[key]
        return None if row is None else handle._binding.to_object(row)

    def _equal_keys(self, value: Any) -> list[Any]:
        width = len(self._columns)
        if width > 1 and isinstance(value, tuple) and len(value) < width:
            prefix = self._canonical(value, partial=True)
            return list(self._ordered_index().prefix_row_keys(prefix))
        key = self._canonical(value)
        if self._position < 0:
            return [key] if key in self._handle._table.rows else []
        return list(self._index.row_keys(key))

    def _range_keys(self, start: Any, stop: Any, inclusive: bool) -> list[Any]:
        partial = len(self._columns) > 1
        low = None if start is None else self._canonical(start, partial=partial)
        high = None if stop is None else self._canonical(stop, partial=partial)
        return list(self._ordered_index().range_row_keys(low, high, inclusive=inclusive))

    def _ordered_index(self) -> Any:
        if self._position < 0:
            return self._handle._table.ordered_primary()
        if self._index.schema.kind != "btree":
            raise InvalidRequest(
                f"index {self._index.schema.name!r} is a hash index: it answers equality only; "
                f"declare index='btree' for ranges and prefixes"
            )
        return self._index

    def _canonical(self, value: Any, partial: bool = False) -> Any:
        exact = self._exact
        if exact is not None:
            # The common key (text, bytes, bool) is canonical as it is: one C-level
            # comparison of the value types instead of a check per column.
            if len(exact) == 1:
                if type(value) is exact[0]:
                    return value
            elif type(value) is tuple and tuple(map(type, value)) == exact:
                return value
        columns = self._columns
        if len(columns) == 1:
            try:
                return columns[0].type.check(value)
            except TypeMismatch as exc:
                raise InvalidRequest(f"table {self._handle._table.name!r} key: {exc}") from None
            parts: tuple[Any, ...] = (value,)
        elif isinstance(value, tuple) and (len(value) == len(columns) or partial):
            parts = value
        else:
            names = ", ".join(c.name for c in columns)
            raise InvalidRequest(f"this key has columns ({names}); pass a tuple of them")
        try:
            checked = tuple(c.type.check(v) for c, v in zip(columns, parts, strict=False))
        except TypeMismatch as exc:
            raise InvalidRequest(f"table {self._handle._table.name!r} key: {exc}") from None
        return checked[0] if len(columns) == 1 else checked


def _exact_types(columns: list[Any]) -> tuple[type, ...] | None:
    """The Python types whose values are canonical as they are, one per key column,
    when every column has one (``str``, ``bool``, ``bytes``); else None."""
    exact = []
    for column in columns:
        column_type = column.type
        if type(column_type) is ExactType:
            exact.append(column_type.python_type)
        elif type(column_type) is BytesType:
            exact.append(bytes)
        else:
            return None
    return tuple(exact)


class UniqueHandle(IndexHandle):
    """A primary key or unique index: ``find``, ``update`` and ``delete`` by value."""

    __slots__ = ()

    def find(self, value: Any) -> Any | None:
        handle = self._handle
        bounds = self._int_bounds
        if bounds is not None and type(value) is int and bounds[0] <= value <= bounds[1]:
            key = value
        else:
            key = self._canonical(value)
        with handle._scope.lock:
            row = handle._table.rows.get(key) if self._position < 0 else self._row_for(key)
        if row is None:
            return None
        binding = handle._binding
        if binding.objects_plain:  # to_object inlined: no Python frame
            return binding.python_class(*row)
        return binding.to_object(row)

    def update(self, row: Any) -> Any:
        """Replace the row that has ``row``'s value in this column; returns the new row.

        Raises:
            NotFound: no row has that value.
        """
        handle = self._handle
        table = handle._table
        tx = handle._scope.tx
        if tx is None:
            tx = handle._scope.writable(table, "update")
        if table.schema.event:
            _refuse_on_event_table(table, "update")
        binding = handle._binding
        if type(row) is binding.python_class:  # to_row inlined, as in TableHandle.insert
            try:
                canonical = binding.row_checker(binding.values_of(row))
            except TypeMismatch:
                canonical = binding.to_row(row)  # raises, naming the column
        else:
            canonical = binding.to_row(row)  # raises: not an instance of the table class
        if self._position < 0:  # by primary key: the key cannot change
            key = table.key_of(canonical)  # type: ignore[misc]
            if key not in table.rows:
                raise NotFound(
                    f"table {table.name!r} has no row with {self._describe(key)} to update"
                )
            tx.replace(table, key, canonical)
            if binding.objects_plain:
                return binding.python_class(*canonical)
            return binding.to_object(canonical)
        key = self._index.key_of(canonical)
        old_key = self._row_key_for(key)
        if old_key is None:
            raise NotFound(f"table {table.name!r} has no row with {self._describe(key)} to update")
        new_key = table.row_key(canonical)
        if new_key == old_key:
            tx.replace(table, old_key, canonical)
        else:
            savepoint = tx.savepoint()
            tx.delete(table, old_key)
            try:
                tx.insert(table, canonical)
            except Exception:
                tx.rollback_to(savepoint)
                raise
        return handle._binding.to_object(canonical)

    def delete(self, value: Any) -> bool:
        handle = self._handle
        table = handle._table
        tx = handle._scope.writable(table, "delete from")
        _refuse_on_event_table(table, "delete from")
        row_key = self._row_key_for(self._canonical(value))
        if row_key is None:
            return False
        tx.delete(table, row_key)
        return True

    def _row_key_for(self, key: Any) -> Any:
        table = self._handle._table
        if self._position < 0:
            return key if key in table.rows else None
        return self._index._entries.get(key)

    def _row_for(self, key: Any) -> tuple[Any, ...] | None:
        row_key = self._row_key_for(key)
        return None if row_key is None else self._handle._table.rows.get(row_key)

    def _describe(self, key: Any) -> str:
        if len(self._columns) == 1:
            return f"{self._columns[0].name}={key!r}"
        return ", ".join(f"{c.name}={v!r}" for c, v in zip(self._columns, key, strict=True))


def _accessor_name(primary_key: tuple[str, ...]) -> str:
    return primary_key[0] if len(primary_key) == 1 else "primary_key"


def _refuse_on_event_table(table: Table, action: str) -> None:
    if table.schema.event:
        raise InvalidRequest(
            f"cannot {action} event table {table.name!r}: event tables are append-only"
        )


def _assign_ids(
    tx: Transaction, table: Table, row: tuple[Any, ...], positions: list[int]
) -> tuple[Any, ...]:
    values = list(row)
    for position in positions:
        if values[position] == 0:
            values[position] = tx.next_sequence_value(table, position)
        else:
            tx.observe_explicit_value(table, position, values[position])
    return tuple(values)


def insert_all(
    tx: Transaction,
    table: Table,
    binding: RowBinding,
    rows: Any,
    stored: list[tuple[Any, ...]] | None = None,
    checked_for: TableSchema | None = None,
    on_conflict: str | None = None,
) -> int:
    """Check every row (sequences or dicts), then insert them all as one batch.

    Errors name the row's position (0-based). Auto-increment ids are drawn as one block,
    so the undo log holds one entry per counter, not one per row. ``stored``, when
    given, receives the rows stored (auto-increment ids filled in): SQL's RETURNING.
    ``checked_for``: the rows are canonical tuples already checked against this schema
    (the server's bulk converter checks each cell as it reads it); the check is skipped
    only if it is still the table's schema object, so a module update in between
    (which builds new schemas) gets its rows checked again. ``on_conflict`` is SQL's
    ``INSERT OR REPLACE`` (``"REPLACE"``: each row, in order, first deletes the rows
    holding its primary key or any of its unique keys) or ``INSERT OR IGNORE``
    (``"IGNORE"``: a row that would conflict is skipped), row by row
    (``_insert_resolving``); None: a conflict is an error and nothing is stored.

    Returns:
        How many rows were stored (an identical row in a keyless table is stored once).
    """
    positions = binding.auto_inc_positions
    bulk = not positions and on_conflict is None and isinstance(rows, list)
    kinds = set(map(type, rows)) if bulk else None
    if kinds is not None and kinds <= {tuple, list}:
        # The bulk path: every row checked by one C-level map over the compiled checker
        # (its unpacking refuses a wrong width). Any failure falls through to the loop
        # below, which finds the row and names it.
        try:
            if checked_for is binding.schema and kinds <= {tuple}:
                checked_fast = rows
            else:
                checked_fast = list(map(binding.row_checker, rows))
        except Exception:
            pass
        else:
            try:
                done = tx.insert_batch(table, checked_fast)
            except BatchConflict as exc:
                raise _at_row(Conflict(f"row {exc.row_index}: {exc}"), exc.row_index, exc) from None
            if stored is not None:
                stored.extend(done)
            return len(done)
    to_row = binding.values_to_row
    from_mapping = binding.values_from_mapping
    checked: list[tuple[Any, ...]] = []
    append = checked.append
    counters = {position: table.sequences[position] for position in positions}
    for number, values in enumerate(rows):
        try:
            row = to_row(from_mapping(values) if isinstance(values, dict) else values)
        except InvalidRequest as exc:
            raise _at_row(InvalidRequest(f"row {number}: {exc}"), number, exc) from None
        if positions:
            row = _draw_ids(row, positions, counters)
        append(row)
    for position, value in counters.items():
        if value != table.sequences[position]:
            tx.observe_explicit_value(table, position, value - 1)
    if on_conflict is not None:
        return _insert_resolving(tx, table, checked, stored, on_conflict)
    try:
        done = tx.insert_batch(table, checked)
    except BatchConflict as exc:
        raise _at_row(Conflict(f"row {exc.row_index}: {exc}"), exc.row_index, exc) from None
    if stored is not None:
        stored.extend(done)
    return len(done)


def _insert_resolving(
    tx: Transaction,
    table: Table,
    rows: list[tuple[Any, ...]],
    stored: list[tuple[Any, ...]] | None,
    on_conflict: str,
) -> int:
    """SQLite's ``INSERT OR REPLACE`` / ``OR IGNORE``, one checked row after another.

    A row conflicts with the stored rows holding its primary key (in a keyless table:
    the identical row) or any of its unique keys. ``REPLACE`` deletes them, then inserts
    the row (so a later row of the statement replaces an earlier one) and counts it, as
    SQLite's ``changes()`` does (the rows it deleted are not counted); ``IGNORE`` skips
    the row and does not count it.
    """
    written: list[tuple[Any, ...]] = []
    for row in rows:
        key = table.row_key(row)
        doomed = {key} if table.get(key) is not None else set()
        for index in table.unique_indexes:
            holder = index.holder_of(row)
            if holder is not None:
                doomed.add(holder)
        if doomed and on_conflict == "IGNORE":
            continue
        for held in doomed:
            tx.delete(table, held)
        tx.insert(table, row)
        written.append(row)
    if stored is not None:
        stored.extend(written)
    return len(written)


def _at_row(error: Exception, row_index: int, cause: Exception) -> Exception:
    """Attach the failing row's position and the bare reason, for callers that know lines."""
    error.row_index = row_index  # type: ignore[attr-defined]
    error.reason = str(cause)  # type: ignore[attr-defined]
    return error


def _draw_ids(
    row: tuple[Any, ...], positions: list[int], counters: dict[int, int]
) -> tuple[Any, ...]:
    values = list(row)
    for position in positions:
        if values[position] == 0:
            values[position] = counters[position]
            counters[position] += 1
        elif values[position] >= counters[position]:
            counters[position] = values[position] + 1
    return tuple(values)


class DbView:
    """``ctx.db``: one handle per table, all bound to the running transaction.

    No ``__getattr__``, for the reason ``TableHandle`` has none: ``ctx.db.<table>`` is
    then CPython's specialised instance-dict read. ``ctx.db.<unknown>`` raises a plain
    ``AttributeError``; a reducer that fails with it is reported as "the database has no
    table ..." (``missing_name_message``).
    """

    def __init__(self, handles: dict[str, TableHandle]) -> None:
        self.__dict__.update(handles)


def missing_name_message(exc: AttributeError) -> str | None:
    """The message for ``ctx.db.<unknown>`` or ``ctx.db.<table>.<unknown>``, which raise
    a plain ``AttributeError`` (the classes have no ``__getattr__``, for speed); None
    for any other ``AttributeError``."""
    holder, name = exc.obj, exc.name
    if not isinstance(name, str):
        return None
    if type(holder) is DbView:
        return f"the database has no table {name!r}"
    if isinstance(holder, TableHandle):
        return holder._missing_accessor_message(name)
    return None
