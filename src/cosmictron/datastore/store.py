"""The datastore: every table of one database, addressed by name.

``snapshot`` gives a reader a consistent, unchanging view of some tables, taken in
O(tables) under the writer lock and read without it (``Table.share``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from cosmictron.datastore.codec import RowCodec
from cosmictron.datastore.schema import ModuleSchema, TableSchema
from cosmictron.datastore.table import Table
from cosmictron.errors import NotFound


class Datastore:
    __slots__ = ("codecs", "schema", "tables")

    def __init__(self, schema: ModuleSchema) -> None:
        self.schema = schema
        self.tables: dict[str, Table] = {}
        self.codecs: dict[str, RowCodec] = {}
        for table_schema in schema.tables:
            self.add_table(table_schema)

    def add_table(self, table_schema: TableSchema) -> Table:
        table = Table(table_schema)
        self.tables[table_schema.name] = table
        self.codecs[table_schema.name] = RowCodec(table_schema)
        return table

    def table(self, name: str) -> Table:
        table = self.tables.get(name)
        if table is None:
            known = ", ".join(sorted(self.tables)) or "none"
            raise NotFound(f"no table named {name!r} (tables: {known})")
        return table

    def snapshot(self, names: Iterable[str]) -> Datastore:
        """A read-only datastore holding views of the tables ``names``, as they are now.

        Call it with no writer active (under the writer lock); read the result anywhere.
        Tables not named are absent from it. Unknown names are skipped (the query that
        names one fails on it as it would have).
        """
        view = Datastore.__new__(Datastore)
        view.schema = self.schema
        view.codecs = self.codecs
        tables = self.tables
        view.tables = {name: tables[name].share() for name in names if name in tables}
        return view

    def __iter__(self) -> Iterator[Table]:
        return iter(self.tables.values())

    def estimated_bytes(self) -> int:
        return sum([table.estimated_bytes for table in self.tables.values()])

    def check_invariants(self) -> None:
        for table in self.tables.values():
            table.check_invariants()
