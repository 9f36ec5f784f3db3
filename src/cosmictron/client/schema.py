"""A database's schema as the client sees it: ``GET /v1/database/{name}/schema``, parsed.

The cache needs three things per table: each column's type description (to decode rows,
``jsonforms.decode``), the primary key (to turn a delete and an insert of one key into an
update) and the unique indexes (for ``find``). ``generate`` needs the reducers too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cosmictron.client.jsonforms import TypeDescription


@dataclass(frozen=True)
class ColumnInfo:
    """One column: its name and type description (``{"type": "i64"}``, …)."""

    name: str
    type: TypeDescription
    auto_inc: bool = False


@dataclass(frozen=True)
class TableInfo:
    """One table: columns in order, primary key, and the column tuples that are unique."""

    name: str
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...]
    unique: dict[str, tuple[str, ...]]
    public: bool = True
    query: bool = False  # a subscribed query's result, cached under its text (cache.py)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


@dataclass(frozen=True)
class ParamInfo:
    name: str
    type: TypeDescription
    optional: bool = False


@dataclass(frozen=True)
class ReducerInfo:
    """One reducer: its parameters and return type (None for ``-> None``)."""

    name: str
    params: tuple[ParamInfo, ...]
    returns: TypeDescription | None
    kind: str = "reducer"


@dataclass(frozen=True)
class DatabaseSchema:
    """Tables and reducers by name."""

    database: str
    tables: dict[str, TableInfo]
    reducers: dict[str, ReducerInfo]

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> DatabaseSchema:
        """Parse the schema route's reply."""
        tables = {}
        for table in document.get("tables", []):
            columns = tuple(
                ColumnInfo(column["name"], _type_of(column), bool(column.get("auto_inc")))
                for column in table["columns"]
            )
            unique: dict[str, tuple[str, ...]] = {}
            key = tuple(table.get("primary_key") or ())
            if key:
                unique["primary_key"] = key
            for index in table.get("indexes", []):
                if index.get("unique"):
                    unique[index["name"]] = tuple(index["columns"])
            tables[table["name"]] = TableInfo(
                table["name"], columns, key, unique, bool(table.get("public", True))
            )
        reducers = {}
        for reducer in document.get("reducers", []):
            params = tuple(
                ParamInfo(param["name"], _type_of(param), bool(param.get("optional")))
                for param in reducer.get("params", [])
            )
            reducers[reducer["name"]] = ReducerInfo(
                reducer["name"], params, reducer.get("returns"), reducer.get("kind", "reducer")
            )
        return cls(str(document.get("database", "")), tables, reducers)


def column_from_json(described: dict[str, Any]) -> ColumnInfo:
    """A column described as the schema route describes one (``{"name", "type", …}``)."""
    return ColumnInfo(described["name"], _type_of(described), bool(described.get("auto_inc")))


def _type_of(described: dict[str, Any]) -> TypeDescription:
    """A column's or parameter's type description without its own ``name``."""
    return {
        key: value
        for key, value in described.items()
        if key not in ("name", "auto_inc", "optional")
    }
