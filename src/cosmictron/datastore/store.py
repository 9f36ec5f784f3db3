"""The datastore: every table of one database, addressed by name."""

from __future__ import annotations

from collections.abc import Iterator

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

    def __iter__(self) -> Iterator[Table]:
        return iter(self.tables.values())

    def estimated_bytes(self) -> int:
        return sum([table.estimated_bytes for table in self.tables.values()])

    def check_invariants(self) -> None:
        for table in self.tables.values():
            table.check_invariants()
