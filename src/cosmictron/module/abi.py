"""The module ABI, version 1: what a guest (WASM, JavaScript) and the host exchange.

Language-neutral: nothing here knows an engine. A guest *describes* its module once
(a msgpack map, ``parse_description``), the host turns that description into the same
schema objects a Python module produces, and every later exchange is one msgpack
document: a *call frame* (host -> guest), a batch of *operations* (guest -> host, the
host functions), their *results* (host -> guest) and a *result frame* (guest -> host).
Values travel in the column types' *wire form* (``ColumnType.encode``), the form the
commit log already holds, so one encoding serves rows, arguments and return values.

The byte-exact contract is docs/reference/module-abi.md; this module is its reader.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

import msgpack

from cosmictron.datastore import types as column_types
from cosmictron.datastore.schema import (
    ColumnSchema,
    IndexSchema,
    ModuleSchema,
    ParamSchema,
    ReducerSchema,
    TableSchema,
)
from cosmictron.datastore.types import REQUIRED, ColumnType
from cosmictron.errors import SchemaError

ABI_VERSION = 1
"""The version a guest's description names in ``"abi"``; the host refuses others."""

# Operation codes: the first element of each operation in a batch (module-abi.md).
OP_INSERT = 0
OP_DELETE_BY_KEY = 1
OP_DELETE_ROW = 2
OP_UPDATE = 3
OP_FIND = 4
OP_FILTER = 5
OP_RANGE = 6
OP_ITER = 7
OP_COUNT = 8
OP_LOG = 9
OP_RANDOM = 10
OP_FAIL = 11
OP_NAMES = {
    OP_INSERT: "insert",
    OP_DELETE_BY_KEY: "delete_by_key",
    OP_DELETE_ROW: "delete_row",
    OP_UPDATE: "update",
    OP_FIND: "find",
    OP_FILTER: "filter",
    OP_RANGE: "range",
    OP_ITER: "iter",
    OP_COUNT: "count",
    OP_LOG: "log",
    OP_RANDOM: "random",
    OP_FAIL: "fail",
}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""``OP_LOG``'s level is an index into this tuple (the module log's levels)."""

STATUS_OK = 0
STATUS_FAILED = 1

_LIFECYCLE = ("init", "client_connected", "client_disconnected")


def pack(value: Any) -> bytes:
    """msgpack with binary kept apart from text (``bin`` vs ``str``)."""
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes, what: str) -> Any:
    """Read a document a guest sent, bounded; ``GuestError`` names ``what`` if it is bad."""
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
        )
    except Exception as exc:
        raise GuestError(
            f"the guest sent a malformed {what}: {type(exc).__name__}: {exc}"
        ) from None


class GuestError(Exception):
    """The guest broke the ABI (bad document, pointer, index); the call fails with this."""


@dataclass
class GuestTable:
    """One described table: its schema, the row class the host hands to handles, and
    the wire <-> canonical conversions of its columns."""

    index: int
    schema: TableSchema
    row_class: type
    types: tuple[ColumnType, ...]
    plain: bool


@dataclass
class GuestSchema:
    """What a guest's description becomes: the module schema and the pieces to run it."""

    schema: ModuleSchema
    tables: list[GuestTable]
    reducers: list[ReducerSchema]
    """In description order: the call frame names a reducer by its position here."""


def merge_fragments(fragments: list[Any]) -> dict[str, Any]:
    """One description from several fragments (an SDK may emit one per table, reducer and
    type, as the Rust SDK's custom sections do): their lists concatenated in order.

    Raises:
        SchemaError: a fragment is not a map, or the fragments name different versions.
    """
    merged: dict[str, Any] = {"abi": None}
    for fragment in fragments:
        if not isinstance(fragment, dict):
            raise SchemaError("a description fragment is not a map (module-abi.md)")
        version = fragment.get("abi")
        if merged["abi"] is not None and version != merged["abi"]:
            raise SchemaError(
                f"description fragments name ABI versions {merged['abi']} and {version}"
            )
        merged["abi"] = version
        for key in ("tables", "reducers", "types", "visibility_filters"):
            merged.setdefault(key, [])
            merged[key].extend(_list(fragment, key, "a description fragment", []))
    return merged


def parse_description(description: Any) -> GuestSchema:
    """Turn a guest's decoded description into schema objects.

    Raises:
        SchemaError: not ABI version 1, or a table, column, type or reducer the
            description declares is invalid; the message names it.
    """
    if not isinstance(description, dict):
        raise SchemaError("the guest's description is not a map (module-abi.md, describe)")
    version = description.get("abi")
    if version != ABI_VERSION:
        raise SchemaError(
            f"the guest speaks module ABI version {version!r}; this server speaks "
            f"{ABI_VERSION} (rebuild the module with a matching SDK)"
        )
    tables_in = _list(description, "tables", "the description")
    reducers_in = _list(description, "reducers", "the description")
    filters = [str(f) for f in _list(description, "visibility_filters", "the description", [])]
    named = _named_types(_list(description, "types", "the description", []))
    tables: list[GuestTable] = []
    for position, table in enumerate(tables_in):
        tables.append(_table(position, table, named))
    row_classes = {t.row_class.__name__: t for t in tables}
    reducers = [_reducer(r, row_classes, named) for r in reducers_in]
    kinds = [r.kind for r in reducers]
    for kind in _LIFECYCLE:
        if kinds.count(kind) > 1:
            raise SchemaError(f"module declares two @{kind} reducers")
    schema = ModuleSchema(
        tables=tuple(t.schema for t in tables),
        reducers=tuple(reducers),
        visibility_filters=tuple(filters),
    )
    by_name = {r.name: r for r in reducers if r.kind == "reducer"}
    for table in tables:
        _check_scheduled(table, by_name)
    return GuestSchema(schema, tables, reducers)


def _named_types(declared: list[Any]) -> dict[str, Any]:
    """The description's ``types``: enum and product declarations that ``ref`` names."""
    named: dict[str, Any] = {}
    for item in declared:
        if not isinstance(item, dict):
            raise SchemaError("a declared type is a map")
        name = item.get("enum") if item.get("type") == "enum" else item.get("product")
        if item.get("type") not in ("enum", "product") or not isinstance(name, str):
            raise SchemaError(f"a declared type is an enum or a product with a name: {item!r:.80}")
        named[name] = item
    return named


def column_type_from(
    described: Any, where: str, named: dict[str, Any] | None = None, depth: int = 0
) -> ColumnType:
    """The ``ColumnType`` a type description names (the ``describe()`` form, plus
    ``{"type": "ref", "ref": N}`` for a type declared in the description's ``types``)."""
    if not isinstance(described, dict) or not isinstance(described.get("type"), str):
        raise SchemaError(f"{where}: a type is a map with a 'type' name, got {described!r}")
    if depth > 32:
        raise SchemaError(f"{where}: types nest deeper than 32 levels (or refer to themselves)")
    name = described["type"]
    if name == "ref":
        target = (named or {}).get(str(described.get("ref")))
        if target is None:
            raise SchemaError(f"{where}: type {described.get('ref')!r} is not declared")
        return column_type_from(target, where, named, depth + 1)
    scalar = column_types.SCALARS.get(name)
    if scalar is not None:
        return scalar
    if name == "Optional":
        return column_types.OptionalType(
            column_type_from(described.get("of"), where, named, depth + 1)
        )
    if name == "list":
        return column_types.ListType(
            column_type_from(described.get("of"), f"{where}[]", named, depth + 1)
        )
    if name == "Vector":
        dimension = described.get("dimension")
        if type(dimension) is not int or dimension <= 0:
            raise SchemaError(f"{where}: Vector needs a positive dimension, got {dimension!r}")
        return column_types.VectorType(dimension)
    if name == "enum":
        members = described.get("members")
        enum_name = described.get("enum")
        if (
            not isinstance(enum_name, str)
            or not enum_name.isidentifier()
            or not isinstance(members, list)
            or not members
            or not all(isinstance(m, str) and m.isidentifier() for m in members)
            or len(set(members)) != len(members)
        ):
            raise SchemaError(f"{where}: an enum needs a name and distinct member names")
        enum_class: Any = enum.Enum(enum_name, members)  # type: ignore[misc]
        return column_types.EnumType(enum_class)
    if name == "product":
        product = described.get("product")
        fields_in = described.get("fields")
        if not isinstance(product, str) or not product.isidentifier():
            raise SchemaError(f"{where}: a product type needs a name")
        if not isinstance(fields_in, list):
            raise SchemaError(f"{where}: product {product!r} needs a list of fields")
        fields = []
        for field_in in fields_in:
            if not isinstance(field_in, dict) or not str(field_in.get("name", "")).isidentifier():
                raise SchemaError(f"{where}: product {product!r} has a field without a name")
            field_where = f"{where}.{field_in['name']}"
            fields.append(
                (field_in["name"], column_type_from(field_in, field_where, named, depth + 1))
            )
        python_class = dataclasses.make_dataclass(product, [n for n, _ in fields])
        python_class.__cosmictron_type__ = True  # type: ignore[attr-defined]
        return column_types.ProductType(python_class, fields)
    raise SchemaError(f"{where}: unknown column type {name!r} (docs/reference/column-types.md)")


def decode_value(column_type: ColumnType, wire: Any, where: str) -> Any:
    """A wire value as the canonical form the datastore stores (checked).

    Raises:
        GuestError: the value is not of ``column_type``; names ``where``.
    """
    try:
        return column_type.check(column_type.to_python(column_type.decode(wire)))
    except Exception as exc:
        raise GuestError(f"{where}: {exc}") from None


def _table(position: int, described: Any, named: dict[str, Any]) -> GuestTable:
    if not isinstance(described, dict) or not isinstance(described.get("name"), str):
        raise SchemaError(f"table #{position} of the description has no name")
    name = described["name"]
    where = f"table {name!r}"
    columns = []
    for column in _list(described, "columns", where):
        if not isinstance(column, dict) or not isinstance(column.get("name"), str):
            raise SchemaError(f"{where}: a column has no name")
        column_where = f"{where} column {column['name']!r}"
        column_type = column_type_from(column, column_where, named)
        auto_inc = bool(column.get("auto_inc", False))
        if auto_inc and not hasattr(column_type, "bits"):
            raise SchemaError(
                f"{column_where}: auto_inc needs an integer column, not {column_type.name}"
            )
        default = REQUIRED
        if "default" in column:
            try:
                default = column_type.to_python(column_type.decode(column["default"]))
                column_type.check(default)
            except Exception as exc:
                raise SchemaError(f"{column_where}: default is invalid: {exc}") from None
        columns.append(ColumnSchema(column["name"], column_type, default, auto_inc))
    indexes = []
    for index in _list(described, "indexes", where, []):
        if not isinstance(index, dict):
            raise SchemaError(f"{where}: an index is a map")
        indexes.append(
            IndexSchema(
                str(index.get("name")),
                tuple(index.get("columns") or ()),
                str(index.get("kind", "btree")),
                bool(index.get("unique", False)),
            )
        )
    scheduled = described.get("scheduled")
    schema = TableSchema(
        name=name,
        columns=tuple(columns),
        primary_key=tuple(_list(described, "primary_key", where, [])),
        indexes=tuple(indexes),
        public=bool(described.get("public", False)),
        event=bool(described.get("event", False)),
        scheduled=None if scheduled is None else str(scheduled),
    )
    class_name = described.get("class") or _camel(name)
    if not isinstance(class_name, str) or not class_name.isidentifier():
        raise SchemaError(f"{where}: class {class_name!r} is not an identifier")
    row_class = _row_class(class_name, schema)
    types = tuple(c.type for c in columns)
    plain = all(t.plain and type(t).to_python is ColumnType.to_python for t in types)
    return GuestTable(position, schema, row_class, types, plain)


def _row_class(class_name: str, schema: TableSchema) -> type:
    """A dataclass standing for the guest's row type, so the host's handles, the
    scheduler and the SDK's JSON forms treat guest rows as they treat Python ones."""
    specs = [
        (column.name, Any, dataclasses.field(default=column.default)) for column in schema.columns
    ]
    row_class = dataclasses.make_dataclass(class_name, specs, eq=True)
    row_class.__cosmictron_table__ = _Declared(schema.name)  # type: ignore[attr-defined]
    return row_class


@dataclass(frozen=True)
class _Declared:
    """The one attribute of ``@table``'s declaration other layers read from a class."""

    name: str


def _reducer(
    described: Any, row_classes: dict[str, GuestTable], named: dict[str, Any]
) -> ReducerSchema:
    if not isinstance(described, dict) or not isinstance(described.get("name"), str):
        raise SchemaError("a reducer of the description has no name")
    name = described["name"]
    kind = described.get("kind", "reducer")
    if kind not in ("reducer", *_LIFECYCLE):
        raise SchemaError(
            f"reducer {name!r} has kind {kind!r}; guests declare reducer, init, "
            f"client_connected or client_disconnected (procedures are Python-only)"
        )
    params = []
    for param in _list(described, "params", f"reducer {name!r}", []):
        if not isinstance(param, dict) or not isinstance(param.get("name"), str):
            raise SchemaError(f"reducer {name!r}: an argument has no name")
        where = f"reducer {name!r} argument {param['name']!r}"
        column_type = _param_type(param, where, row_classes, named)
        default = REQUIRED
        if "default" in param:
            default = column_type.to_python(column_type.decode(param["default"]))
        params.append(ParamSchema(param["name"], column_type, default))
    if kind in _LIFECYCLE and params:
        raise SchemaError(f"@{kind} reducer {name!r} takes only the ReducerContext")
    returns = described.get("returns")
    return_type = None
    if returns is not None:
        return_type = _param_type(returns, f"reducer {name!r} return value", row_classes, named)
    return ReducerSchema(name, tuple(params), return_type, kind)


def _param_type(
    described: Any, where: str, row_classes: dict[str, GuestTable], named: dict[str, Any]
) -> ColumnType:
    """As ``column_type_from``, but a product or ref named like a table's class is that
    table's row (a Python reducer annotated with a table class gets the same)."""
    if isinstance(described, dict) and described.get("type") in ("product", "ref"):
        key = "product" if described["type"] == "product" else "ref"
        table = row_classes.get(str(described.get(key)))
        if table is not None:
            fields = [(c.name, c.type) for c in table.schema.columns]
            return column_types.ProductType(table.row_class, fields)
    return column_type_from(described, where, named)


def _check_scheduled(table: GuestTable, reducers: dict[str, ReducerSchema]) -> None:
    schema = table.schema
    if schema.scheduled is None:
        return
    reducer = reducers.get(schema.scheduled)
    if reducer is None:
        raise SchemaError(
            f"table {schema.name!r} is scheduled to run reducer {schema.scheduled!r}, "
            f"which the module does not declare"
        )
    columns = {c.name: c for c in schema.columns}
    if (
        "scheduled_at" not in columns
        or columns["scheduled_at"].type is not column_types.SCHEDULE_AT
    ):
        raise SchemaError(
            f"scheduled table {schema.name!r} needs a column 'scheduled_at: ScheduleAt'"
        )
    params = reducer.params
    row_type = getattr(params[0].type, "python_class", None) if len(params) == 1 else None
    if row_type is not table.row_class:
        raise SchemaError(
            f"reducer {schema.scheduled!r} runs the scheduled table {schema.name!r}: it "
            f"must take (ctx, row) with the row of that table"
        )


def _list(described: dict[str, Any], key: str, where: str, default: Any = None) -> list[Any]:
    value = described.get(key, default)
    if not isinstance(value, list):
        raise SchemaError(f"{where}: {key!r} must be a list")
    return value


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_")) or name
