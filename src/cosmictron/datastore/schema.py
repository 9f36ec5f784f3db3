"""Schema objects: tables, columns, indexes and reducers as plain, frozen data.

Everything above the datastore reads these: the SQL planner, the server's ``schema``
route, the stored ``schema.json`` a database reopens with, and later WASM/JS modules,
which declare the same objects through their ABI instead of Python decorators.
``describe()`` gives the JSON form; two schemas are compatible exactly when their
descriptions say so (see ``differences``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cosmictron import names as names_
from cosmictron.datastore.types import REQUIRED, ColumnType
from cosmictron.errors import SchemaError

INDEX_KINDS = ("btree", "hash")
REDUCER_KINDS = ("reducer", "init", "client_connected", "client_disconnected", "procedure")


@dataclass(frozen=True)
class ColumnSchema:
    name: str
    type: ColumnType
    default: Any = REQUIRED
    auto_inc: bool = False

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"name": self.name, **self.type.describe()}
        if self.auto_inc:
            described["auto_inc"] = True
        return described


@dataclass(frozen=True)
class IndexSchema:
    """An index; ``name`` is also the accessor on a table handle (``handle.<name>``)."""

    name: str
    columns: tuple[str, ...]
    kind: str = "btree"
    unique: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.columns, str):
            object.__setattr__(self, "columns", (self.columns,))
        object.__setattr__(self, "columns", tuple(self.columns))
        if self.kind not in INDEX_KINDS:
            raise SchemaError(
                f"index {self.name!r} has kind {self.kind!r}; use one of {', '.join(INDEX_KINDS)}"
            )
        if not self.columns:
            raise SchemaError(f"index {self.name!r} names no columns")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": list(self.columns),
            "kind": self.kind,
            "unique": self.unique,
        }


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[ColumnSchema, ...]
    primary_key: tuple[str, ...] = ()
    indexes: tuple[IndexSchema, ...] = ()
    public: bool = False
    event: bool = False
    scheduled: str | None = None

    def __post_init__(self) -> None:
        names = [column.name for column in self.columns]
        if not names_.is_identifier(self.name):
            raise SchemaError(
                f"table name {self.name!r} is not valid: use {names_.IDENTIFIER_RULE}"
            )
        for column_name in names:
            if not names_.is_identifier(column_name):
                raise SchemaError(
                    f"table {self.name!r} column name {column_name!r} is not valid: "
                    f"use {names_.IDENTIFIER_RULE}"
                )
        if not names:
            raise SchemaError(f"table {self.name!r} has no columns")
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise SchemaError(f"table {self.name!r} repeats columns {sorted(duplicates)}")
        for index in self.indexes:
            unknown = [c for c in index.columns if c not in names]
            if unknown:
                raise SchemaError(
                    f"table {self.name!r} index {index.name!r} names unknown columns {unknown}"
                )
        unknown_key = [c for c in self.primary_key if c not in names]
        if unknown_key:
            raise SchemaError(f"table {self.name!r} primary key names unknown {unknown_key}")
        index_names = [index.name for index in self.indexes]
        if len(set(index_names)) != len(index_names):
            raise SchemaError(f"table {self.name!r} declares two indexes with one name")

    def column_index(self, name: str) -> int:
        for position, column in enumerate(self.columns):
            if column.name == name:
                return position
        raise SchemaError(f"table {self.name!r} has no column {name!r}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": [column.describe() for column in self.columns],
            "primary_key": list(self.primary_key),
            "indexes": [index.describe() for index in self.indexes],
            "public": self.public,
            "event": self.event,
            "scheduled": self.scheduled,
        }


@dataclass(frozen=True)
class ParamSchema:
    name: str
    type: ColumnType
    default: Any = REQUIRED

    def describe(self) -> dict[str, Any]:
        described = {"name": self.name, **self.type.describe()}
        if self.default is not REQUIRED:
            described["optional"] = True
        return described


@dataclass(frozen=True)
class ReducerSchema:
    name: str
    params: tuple[ParamSchema, ...] = ()
    return_type: ColumnType | None = None
    kind: str = "reducer"

    def __post_init__(self) -> None:
        if not names_.is_identifier(self.name):
            raise SchemaError(
                f"{self.kind} name {self.name!r} is not valid: use {names_.IDENTIFIER_RULE}"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "params": [param.describe() for param in self.params],
            "returns": None if self.return_type is None else self.return_type.describe(),
        }


@dataclass(frozen=True)
class ModuleSchema:
    tables: tuple[TableSchema, ...] = ()
    reducers: tuple[ReducerSchema, ...] = ()
    visibility_filters: tuple[str, ...] = ()
    """Row-level security rules as SQL text; the query layer parses and applies them."""
    _by_name: dict[str, TableSchema] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for table in self.tables:
            if table.name in self._by_name:
                raise SchemaError(f"two tables are named {table.name!r}")
            self._by_name[table.name] = table
        reducer_names = [reducer.name for reducer in self.reducers]
        repeated = {n for n in reducer_names if reducer_names.count(n) > 1}
        if repeated:
            raise SchemaError(f"two reducers share the names {sorted(repeated)}")

    def table(self, name: str) -> TableSchema | None:
        return self._by_name.get(name)

    def describe(self, private: bool = True) -> dict[str, Any]:
        """``private=False`` leaves out private tables: their names and columns are the
        owner's business, as their rows are (the pgwire catalogue hides them too)."""
        return {
            "tables": [table.describe() for table in self.tables if private or table.public],
            "reducers": [reducer.describe() for reducer in self.reducers],
            "visibility_filters": list(self.visibility_filters),
        }


def differences(stored: ModuleSchema, new: ModuleSchema) -> list[str]:
    """What in ``new`` would not read the data ``stored`` wrote, one sentence each.

    Adding tables and changing reducers is always fine; changing an existing table is
    the business of migrations, which come with hot-swap deploys.

    >>> differences(ModuleSchema(), ModuleSchema())
    []
    """
    problems = []
    for old_table in stored.tables:
        new_table = new.table(old_table.name)
        if new_table is None:
            problems.append(f"table {old_table.name!r} was removed")
        elif new_table.describe() != old_table.describe():
            problems.append(f"table {old_table.name!r} changed its columns, keys or indexes")
    return problems
