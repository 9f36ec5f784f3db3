"""The client's local copy of its subscribed rows: one ``TableCache`` per table.

A table's rows are a *bag*, as the server sends them (a keyless table may hold equal rows
twice): each distinct row is kept once with its count, keyed by its canonical JSON text,
because decoded values (lists, dicts) need not be hashable while their JSON always is.
Unique indexes (the primary key first) map the JSON of the key columns to that row, so
``find`` is a dictionary lookup.

Applying a transaction returns its ``RowEvent``s instead of firing callbacks, so the
caller can fire them *after* every table of the transaction is applied: a callback then
sees the whole transaction in the cache. On a table with a primary key, a delete and an
insert of the same key in one transaction become one ``update`` event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cosmictron.client.jsonforms import decode
from cosmictron.client.schema import TableInfo, column_from_json
from cosmictron.errors import InternalError, InvalidRequest, NotFound
from cosmictron.values import json_form

JsonRow = dict[str, Any]
RowFactory = Callable[..., Any]


class Row(Mapping[str, Any]):
    """A cached row: read-only, by column (``row["text"]``) or attribute (``row.text``).

    >>> row = Row("message", {"id": 1, "text": "hi"})
    >>> row.text, row["id"], dict(row)
    ('hi', 1, {'id': 1, 'text': 'hi'})
    """

    __slots__ = ("_table", "_values")

    def __init__(self, table: str, values: dict[str, Any]) -> None:
        self._table = table
        self._values = values

    def __getitem__(self, column: str) -> Any:
        return self._values[column]

    def __getattr__(self, column: str) -> Any:
        try:
            return self._values[column]
        except KeyError:
            raise AttributeError(f"table {self._table!r} has no column {column!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self._values.items())
        return f"{self._table}({shown})"


@dataclass(frozen=True)
class RowEvent:
    """One change a transaction made to the cache; ``old``/``new`` are None when absent."""

    kind: Literal["insert", "delete", "update"]
    table: str
    old: Any = None
    new: Any = None


def row_key(row: JsonRow) -> str:
    """A row's identity in the bag: its canonical JSON text."""
    return json.dumps(row, sort_keys=True, separators=(",", ":"))


class TableCache:
    """The subscribed rows of one table; read it with ``iter``, ``count`` and ``find``."""

    def __init__(self, info: TableInfo, row_factory: RowFactory | None = None) -> None:
        self.info = info
        self.name = info.name
        self._row_factory = row_factory
        self._rows: dict[str, list[Any]] = {}  # row_key -> [row object, count]
        self._indexes: dict[str, dict[str, str]] = {name: {} for name in info.unique}

    # -- reading --------------------------------------------------------------------------

    def iter(self) -> Iterator[Any]:
        """Every cached row, a row held twice (keyless tables) yielded twice."""
        for row, count in list(self._rows.values()):
            for _ in range(count):
                yield row

    def __iter__(self) -> Iterator[Any]:
        return self.iter()

    def count(self) -> int:
        """How many rows ``iter`` yields."""
        return sum(count for _, count in self._rows.values())

    def find(self, *key: Any, by: str = "primary_key") -> Any:
        """The row whose unique key equals ``key``, or None.

        Args:
            key: the key's values, one per key column (``find(7)``, ``find("a", 2)``).
            by: ``"primary_key"``, a unique index's name, or the column of a one-column
                unique index.

        Raises:
            NotFound: the table has no such unique key (the message lists them).
        """
        columns = self._unique_columns(by)
        if len(key) != len(columns):
            raise InvalidRequest(
                f"{self.name}.{by} is {len(columns)} columns {list(columns)}, got {len(key)} values"
            )
        found = self._indexes[self._index_name(by)].get(_key_text(json_form(list(key))))
        return None if found is None else self._rows[found][0]

    def _index_name(self, by: str) -> str:
        if by in self.info.unique:
            return by
        for name, columns in self.info.unique.items():
            if columns == (by,):
                return name
        known = ", ".join(self.info.unique) or "none"
        raise NotFound(f"table {self.name!r} has no unique key {by!r} (unique keys: {known})")

    def _unique_columns(self, by: str) -> tuple[str, ...]:
        return self.info.unique[self._index_name(by)]

    # -- changing -------------------------------------------------------------------------

    def apply(self, deletes: list[JsonRow], inserts: list[JsonRow]) -> list[RowEvent]:
        """Apply one transaction's changes to this table; return its events.

        Raises:
            InternalError: a delete names a row the cache does not hold, which means the
                client missed an update (a bug in the client or the server).
        """
        removed = [(row, self._remove(row)) for row in deletes]
        added = [(row, self._add(row)) for row in inserts]
        key = self.info.primary_key
        if not key:
            return [RowEvent("delete", self.name, old=old) for _, old in removed] + [
                RowEvent("insert", self.name, new=new) for _, new in added
            ]
        # The same key deleted and inserted in one transaction is an update.
        deleted_by_key = {_key_text([row[c] for c in key]): old for row, old in removed}
        events: list[RowEvent] = []
        for row, new in added:
            old = deleted_by_key.pop(_key_text([row[c] for c in key]), None)
            if old is None:
                events.append(RowEvent("insert", self.name, new=new))
            else:
                events.append(RowEvent("update", self.name, old=old, new=new))
        deletes_first = [RowEvent("delete", self.name, old=old) for old in deleted_by_key.values()]
        return deletes_first + events

    def replace(self, rows: list[JsonRow]) -> list[RowEvent]:
        """Make the table hold exactly ``rows``; return the events for the difference."""
        wanted: dict[str, int] = {}
        for row in rows:
            text = row_key(row)
            wanted[text] = wanted.get(text, 0) + 1
        deletes: list[JsonRow] = []
        inserts: list[JsonRow] = []
        for text in set(wanted) | set(self._rows):
            have = self._rows[text][1] if text in self._rows else 0
            difference = wanted.get(text, 0) - have
            target = inserts if difference > 0 else deletes
            target.extend([json.loads(text)] * abs(difference))
        return self.apply(deletes, inserts)

    def _add(self, row: JsonRow) -> Any:
        text = row_key(row)
        held = self._rows.get(text)
        if held is not None:
            held[1] += 1
            return held[0]
        values = {
            column.name: decode(row.get(column.name), column.type) for column in self.info.columns
        }
        made = self._row_factory(**values) if self._row_factory else Row(self.name, values)
        self._rows[text] = [made, 1]
        for name, columns in self.info.unique.items():
            self._indexes[name][_key_text([row.get(c) for c in columns])] = text
        return made

    def _remove(self, row: JsonRow) -> Any:
        text = row_key(row)
        held = self._rows.get(text)
        if held is None:
            raise InternalError(
                f"table {self.name!r}: the server deleted a row the client does not hold: {text}"
            )
        held[1] -= 1
        if held[1] == 0:
            del self._rows[text]
            for name, columns in self.info.unique.items():
                index = self._indexes[name]
                key = _key_text([row.get(c) for c in columns])
                if index.get(key) == text:
                    del index[key]
        return held[0]


def _key_text(values: list[Any]) -> str:
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


class ClientCache:
    """Every subscribed table's ``TableCache``, changed one transaction at a time."""

    def __init__(
        self, tables: Mapping[str, TableInfo], row_types: Mapping[str, RowFactory] | None = None
    ) -> None:
        self._factories = dict(row_types or {})
        self.tables = {
            name: TableCache(info, self._factories.get(name)) for name, info in tables.items()
        }

    def reshape(self, tables: Mapping[str, TableInfo]) -> tuple[list[RowEvent], list[str]]:
        """Follow a module update: ``tables`` is the new schema's; return the delete events
        of the rows dropped and the names of the tables that changed shape or vanished.

        A table whose description (columns, types, keys, unique indexes) is unchanged
        keeps its rows. One that vanished or changed loses them (one ``delete`` event each,
        so the application can forget them), and a changed table starts empty under its
        new shape: the resubscription that follows refills it in the new shape. Its
        ``row_types`` class was generated for the old columns, so it is dropped
        (rows become ``Row`` objects until the classes are generated again).
        """
        events: list[RowEvent] = []
        changed: list[str] = []
        for name, cache in list(self.tables.items()):
            info = tables.get(name)
            if info == cache.info:
                continue
            changed.append(name)
            events += [RowEvent("delete", name, old=row) for row in cache.iter()]
            if info is None:
                del self.tables[name]
                continue
            self._factories.pop(name, None)
            self.tables[name] = TableCache(info)
        for name, info in tables.items():
            if name not in self.tables:
                self.tables[name] = TableCache(info, self._factories.get(name))
        return events, changed

    def table(self, name: str) -> TableCache:
        """The cache of table ``name``.

        Raises:
            NotFound: the database has no such table.
        """
        try:
            return self.tables[name]
        except KeyError:
            known = ", ".join(sorted(self.tables)) or "none"
            raise NotFound(f"no table named {name!r} (tables: {known})") from None

    def apply(self, tables: list[dict[str, Any]]) -> list[RowEvent]:
        """Apply a ``TransactionUpdate``'s tables; return every event once all are applied."""
        events: list[RowEvent] = []
        for change in tables:
            cache = self.table(change["table_name"])
            events += cache.apply(change.get("deletes", []), change.get("inserts", []))
        return events

    def replace(self, tables: list[dict[str, Any]]) -> list[RowEvent]:
        """Hold exactly a full ``SubscribeApplied``'s rows; tables it omits become empty.

        A table that comes with ``columns`` is a query's result, not a schema table (a
        column list, an aggregate, a compound: docs/reference/websocket.md): it is cached
        under the query's text, keyless, its rows decoded with those columns, and dropped
        once a later full reply no longer has it.
        """
        given = {change["table_name"]: change.get("rows", []) for change in tables}
        events: list[RowEvent] = []
        for change in tables:
            if "columns" in change:
                events += self._result(change["table_name"], change["columns"])
        for name, cache in list(self.tables.items()):
            events += cache.replace(given.get(name, []))
            if cache.info.query and name not in given:
                del self.tables[name]
        return events

    def _result(self, name: str, columns: list[dict[str, Any]]) -> list[RowEvent]:
        """Make ``name`` the cache of a query result with ``columns``; the events of
        emptying an earlier one of other columns (a module update changed its types)."""
        described = tuple(column_from_json(column) for column in columns)
        info = TableInfo(name, described, (), {}, query=True)
        held = self.tables.get(name)
        if held is not None and held.info == info:
            return []
        if held is not None and not held.info.query:
            raise InvalidRequest(f"the server sent a query result named like table {name!r}")
        events = held.replace([]) if held is not None else []
        self.tables[name] = TableCache(info)
        return events
