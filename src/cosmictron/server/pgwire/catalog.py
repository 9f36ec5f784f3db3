"""Catalogue queries: ``pg_catalog``, ``information_schema`` and the session functions,
answered by SQLite over tables built from the schema for this caller.

PostgreSQL clients discover a database by querying its catalogue with PostgreSQL's
own SQL: joins, ``::regclass`` casts, ``OPERATOR(pg_catalog.~)``, ``= ANY(ARRAY[...])``,
functions such as ``format_type`` and ``pg_get_constraintdef``. The engine that runs
user queries is not the place for that dialect, so a catalogue query is translated
with sqlglot (PostgreSQL to SQLite, plus the rewrites below) and run on an in-memory
SQLite database holding ``catalog_tables``' rows for this caller (built once per
schema, caller kind and database list, then reused). Functions are Python functions
registered on the connection. Result columns get their PostgreSQL type from the
catalogue column or function they come from; a boolean column is sent as a boolean.

A query the translation cannot run fails with the SQLite error as a 0A000 (feature not
supported) naming the construct, never with invented rows.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from cosmictron.host import Database
from cosmictron.server.pgwire import catalog_tables, pgtypes, session_sql
from cosmictron.server.pgwire.catalog_tables import INFO_TABLES, TABLES, Catalogue
from cosmictron.server.pgwire.sqlstate import FEATURE_NOT_SUPPORTED, UNDEFINED_PARAMETER, PgError
from cosmictron.values import Identity

_TRIGGERS = re.compile(
    r"\b(pg_catalog|information_schema|pg_[a-z_]+|version\s*\(|current_schemas?\b|"
    r"current_database\s*\(|current_setting\s*\(|current_user\b|session_user\b|current_catalog\b|"
    r"current_role\b|user\b\s*$|has_\w+_privilege|format_type|to_regtype|to_regclass|"
    r"obj_description|col_description|set_config\s*\()",
    re.IGNORECASE,
)


def handles(text: str) -> bool:
    """Whether ``text`` reads the catalogue or calls a session function."""
    return _TRIGGERS.search(text) is not None


@dataclass(frozen=True)
class SessionInfo:
    database: str
    user: str
    pid: int
    settings: Mapping[str, str]


@dataclass(frozen=True)
class Answer:
    columns: tuple[str, ...]
    oids: tuple[int, ...]
    rows: list[tuple[Any, ...]]


# --- the SQLite side ----------------------------------------------------------------

_CONNECTIONS: OrderedDict[tuple[Any, ...], tuple[sqlite3.Connection, Catalogue, threading.Lock]] = (
    OrderedDict()
)
_CONNECTIONS_MAX = 16
_CONNECTIONS_LOCK = threading.Lock()


def _connection(
    db: Database, caller: Identity, info: SessionInfo, databases: list[str]
) -> tuple[sqlite3.Connection, Catalogue, threading.Lock]:
    schema = db.core.module.schema
    owner = caller == db.owner
    key = (
        id(db),
        id(schema),
        owner,
        caller.hex() if not owner else "",
        info.database,
        tuple(databases),
    )
    with _CONNECTIONS_LOCK:
        found = _CONNECTIONS.get(key)
        if found is not None and found[1] is not None:
            _CONNECTIONS.move_to_end(key)
            return found
    tables = [t for t in schema.tables if owner or t.public]
    cat = catalog_tables.build(
        schema,
        tables,
        info.database,
        databases,
        db.owner.hex(),
        caller.hex() if not owner else db.owner.hex(),
        dict(session_sql.DEFAULTS),
    )
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute("ATTACH DATABASE ':memory:' AS pg_catalog")
    conn.execute("ATTACH DATABASE ':memory:' AS information_schema")
    for name, columns in TABLES.items():
        _create(conn, "pg_catalog", name, columns, cat.rows.get(name, []))
    for name, columns in INFO_TABLES.items():
        _create(conn, "information_schema", name, columns, cat.info_rows.get(name, []))
    _functions(conn, cat)
    entry = (conn, cat, threading.Lock())
    with _CONNECTIONS_LOCK:
        _CONNECTIONS[key] = entry
        while len(_CONNECTIONS) > _CONNECTIONS_MAX:
            _CONNECTIONS.popitem(last=False)[1][0].close()
    return entry


def _create(
    conn: sqlite3.Connection,
    schema: str,
    name: str,
    columns: list[tuple[str, int]],
    rows: list[tuple[Any, ...]],
) -> None:
    names = ", ".join(f'"{c}" {_AFFINITY.get(oid, "")}' for c, oid in columns)
    conn.execute(f'CREATE TABLE {schema}."{name}" ({names})')
    if rows:
        marks = ", ".join("?" for _ in columns)
        conn.executemany(f'INSERT INTO {schema}."{name}" VALUES ({marks})', rows)


_AFFINITY = {
    pgtypes.OID: "INTEGER",
    pgtypes.INT2: "INTEGER",
    pgtypes.INT4: "INTEGER",
    pgtypes.INT8: "INTEGER",
    pgtypes.FLOAT4: "REAL",
    pgtypes.BOOL: "INTEGER",
}
"""SQLite column affinities: a text operand compared with an OID column is read as a
number, as PostgreSQL reads ``'16384'`` as an OID."""

_CURRENT: threading.local = threading.local()
"""The session a catalogue query runs for (its settings, database, user), read by the
session functions registered on the shared connection."""


def _session() -> SessionInfo:
    info: SessionInfo = _CURRENT.info
    return info


def _functions(conn: sqlite3.Connection, cat: Catalogue) -> None:
    names_by_oid = pgtypes.TYPE_NAMES
    oid_by_name = {name: oid for oid, name in names_by_oid.items()}
    oid_by_name.update(
        {
            "integer": 23,
            "int": 23,
            "bigint": 20,
            "smallint": 21,
            "boolean": 16,
            "double precision": 701,
            "real": 700,
            "character varying": 1043,
            "timestamp with time zone": 1184,
            "text[]": 1009,
        }
    )
    relation_by_name = {name: oid for oid, name in cat.relations.items()}

    def format_type(oid: Any, typmod: Any = None) -> str | None:
        if oid is None:
            return None
        oid = int(oid)
        return pgtypes.FORMATTED.get(oid, names_by_oid.get(oid, "???"))

    def regclass(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, int):
            return cat.relations.get(value, str(value))
        text = str(value)
        if text.isdigit():
            return int(text)
        bare = text.split(".")[-1].strip('"')
        found = relation_by_name.get(bare)
        if found is None:
            catalogue = {
                "pg_class": 1259,
                "pg_constraint": 2606,
                "pg_type": 1247,
                "pg_namespace": 2615,
                "pg_attribute": 1249,
                "pg_index": 2610,
                "pg_proc": 1255,
            }
            found = catalogue.get(bare)
        if found is None:
            raise sqlite3.OperationalError(f'relation "{text}" does not exist')
        return found

    def to_regclass(value: Any) -> Any:
        try:
            return regclass(str(value)) if value is not None else None
        except sqlite3.OperationalError:
            return None

    def regtype(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, int):
            return format_type(value)
        text = str(value)
        if text.isdigit():
            return int(text)
        found = oid_by_name.get(text.lower().split(".")[-1].strip('"'))
        if found is None:
            raise sqlite3.OperationalError(f'type "{text}" does not exist')
        return found

    def to_regtype(value: Any) -> Any:
        if value is None:
            return None
        return oid_by_name.get(str(value).lower().split(".")[-1].strip('"'))

    def regnamespace(value: Any) -> Any:
        spaces = {11: "pg_catalog", 2200: "public", 13000: "information_schema"}
        if isinstance(value, int):
            return spaces.get(value, str(value))
        return {v: k for k, v in spaces.items()}.get(str(value))

    def current_setting(name: Any, missing_ok: Any = False) -> str | None:
        try:
            return session_sql.Settings(dict(_session().settings)).show(str(name))
        except PgError:
            if missing_ok:
                return None
            raise sqlite3.OperationalError(
                f'unrecognized configuration parameter "{name}"'
            ) from None

    def regexp(pattern: Any, value: Any) -> bool | None:
        if pattern is None or value is None:
            return None
        return re.search(str(pattern), str(value)) is not None

    def regexp_i(pattern: Any, value: Any) -> bool | None:
        if pattern is None or value is None:
            return None
        return re.search(str(pattern), str(value), re.IGNORECASE) is not None

    def any_of(value: Any, array: Any) -> bool | None:
        if value is None or array is None:
            return None
        items = _array_items(array)
        return str(value) in items

    def array_to_string(array: Any, delimiter: Any, null: Any = None) -> str | None:
        if array is None:
            return None
        return str(delimiter).join(_array_items(array))

    functions: dict[str, tuple[int, Any]] = {
        "format_type": (-1, format_type),
        "_regclass": (1, regclass),
        "to_regclass": (1, to_regclass),
        "_regtype": (1, regtype),
        "to_regtype": (1, to_regtype),
        "_regnamespace": (1, regnamespace),
        "_regproc": (1, lambda v: v),
        "_regrole": (1, lambda v: cat.roles.get(v, v) if isinstance(v, int) else v),
        "pg_get_userbyid": (1, lambda oid: cat.roles.get(int(oid)) if oid is not None else None),
        "pg_encoding_to_char": (1, lambda _: "UTF8"),
        "pg_char_to_encoding": (1, lambda _: 6),
        "pg_table_is_visible": (1, lambda _: True),
        "pg_type_is_visible": (1, lambda _: True),
        "pg_function_is_visible": (1, lambda _: True),
        "pg_collation_is_visible": (1, lambda _: True),
        "pg_get_expr": (-1, lambda expr, *_: expr),
        "pg_get_constraintdef": (
            -1,
            lambda oid, *_: cat.constraint_defs.get(int(oid)) if oid is not None else None,
        ),
        "pg_get_indexdef": (-1, lambda oid, column=0, *_: _indexdef(cat, oid, column)),
        "pg_get_viewdef": (-1, lambda *_: None),
        "pg_get_serial_sequence": (2, lambda *_: None),
        "pg_get_partkeydef": (1, lambda _: None),
        "pg_get_statisticsobjdef_columns": (1, lambda _: None),
        "pg_relation_is_publishable": (1, lambda _: False),
        "pg_relation_size": (-1, lambda *_: 0),
        "pg_total_relation_size": (1, lambda _: 0),
        "pg_table_size": (1, lambda _: 0),
        "pg_indexes_size": (1, lambda _: 0),
        "pg_size_pretty": (1, lambda v: f"{v} bytes"),
        "obj_description": (-1, lambda *_: None),
        "col_description": (2, lambda *_: None),
        "shobj_description": (2, lambda *_: None),
        "has_table_privilege": (-1, lambda *_: True),
        "has_schema_privilege": (-1, lambda *_: True),
        "has_database_privilege": (-1, lambda *_: True),
        "has_column_privilege": (-1, lambda *_: True),
        "has_any_column_privilege": (-1, lambda *_: True),
        "has_sequence_privilege": (-1, lambda *_: True),
        "pg_has_role": (-1, lambda *_: True),
        "version": (0, lambda: session_sql.VERSION_TEXT),
        "current_schema": (0, lambda: "public"),
        "current_schemas": (1, lambda _: "{public}"),
        "current_database": (0, lambda: _session().database),
        "current_catalog": (0, lambda: _session().database),
        "current_user": (0, lambda: _session().user),
        "session_user": (0, lambda: _session().user),
        "current_role": (0, lambda: _session().user),
        "current_setting": (-1, current_setting),
        "set_config": (3, lambda name, value, _local: value),
        "pg_backend_pid": (0, lambda: _session().pid),
        "pg_is_in_recovery": (0, lambda: False),
        "pg_postmaster_start_time": (0, lambda: None),
        "inet_server_addr": (0, lambda: None),
        "inet_server_port": (0, lambda: None),
        "txid_current": (0, lambda: 0),
        "quote_ident": (1, lambda v: catalog_tables._quote(str(v))),
        "regexp": (2, regexp),
        "_regexp_i": (2, regexp_i),
        "_any": (2, any_of),
        "array_to_string": (-1, array_to_string),
        "_array": (
            -1,
            lambda *items: "{" + ",".join("" if i is None else str(i) for i in items) + "}",
        ),
        "_subscript": (2, lambda array, index: _subscript(array, index)),
        "array_upper": (2, lambda array, _: len(_array_items(array)) or None),
        "array_length": (2, lambda array, _: len(_array_items(array)) or None),
        "json_build_object": (-1, lambda *args: None),
        "pg_column_size": (1, lambda v: len(str(v)) if v is not None else None),
    }
    for name, (count, function) in functions.items():
        conn.create_function(name, count, function, deterministic=False)
    conn.create_function("_json_array", 1, _json_array, deterministic=True)
    conn.create_aggregate("_array_agg", 3, _ArrayAgg)  # type: ignore[arg-type]
    conn.create_aggregate("_bool_and", 1, _BoolAnd)  # type: ignore[arg-type]
    conn.create_aggregate("_bool_or", 1, _BoolOr)  # type: ignore[arg-type]


def _json_array(array: Any) -> str | None:
    """An ``int2vector``, ``oidvector`` or array text as a JSON array (for ``json_each``)."""
    if array is None:
        return None
    items = _array_items(array)
    return (
        "["
        + ",".join(i if i.lstrip("-").isdigit() else '"' + i.replace('"', "") + '"' for i in items)
        + "]"
    )


def _array_text(items: list[Any], kind: str) -> str:
    """PostgreSQL's text form of an array of ``kind`` (``bool``, ``int``, ``text``)."""
    shown = []
    for item in items:
        if item is None:
            shown.append("NULL")
        elif kind == "bool":
            shown.append("t" if item else "f")
        else:
            text = str(item)
            if text == "" or text.upper() == "NULL" or any(c in text for c in ',{}"\\ '):
                text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
            shown.append(text)
    return "{" + ",".join(shown) + "}"


class _ArrayAgg:
    def __init__(self) -> None:
        self.items: list[tuple[Any, Any]] = []
        self.kind = "text"

    def step(self, value: Any, order: Any, kind: str) -> None:
        self.items.append((order, value))
        self.kind = kind

    def finalize(self) -> str | None:
        if not self.items:
            return None
        ordered = sorted(self.items, key=lambda pair: (pair[0] is None, pair[0]))
        return _array_text([value for _, value in ordered], self.kind)


class _BoolAnd:
    def __init__(self) -> None:
        self.value: bool | None = None

    def step(self, value: Any) -> None:
        if value is not None:
            self.value = bool(value) if self.value is None else self.value and bool(value)

    def finalize(self) -> int | None:
        return None if self.value is None else int(self.value)


class _BoolOr(_BoolAnd):
    def step(self, value: Any) -> None:
        if value is not None:
            self.value = bool(value) if self.value is None else self.value or bool(value)


def _indexdef(cat: Catalogue, oid: Any, column: Any) -> str | None:
    if oid is None:
        return None
    column = int(column or 0)
    if column:
        names = cat.index_columns.get(int(oid), [])
        return names[column - 1] if column <= len(names) else ""
    return cat.index_defs.get(int(oid))


def _subscript(array: Any, index: Any) -> Any:
    if array is None or index is None:
        return None
    items = _array_items(array)
    position = int(index) - 1
    return items[position] if 0 <= position < len(items) else None


def _array_items(array: Any) -> list[str]:
    return [item for item in pgtypes.array_items(array) if item is not None]


# --- translation --------------------------------------------------------------------

_OPERATOR = re.compile(r"OPERATOR\s*\(\s*pg_catalog\s*\.\s*([~!<>=*@#&|+\-]+)\s*\)", re.I)
_COLLATE = re.compile(r"\s+COLLATE\s+(pg_catalog\s*\.\s*)?(\"?default\"?|\"C\"|\"POSIX\")", re.I)
_QUALIFIED_FUNCTION = re.compile(r"\bpg_catalog\s*\.\s*(?=[a-z_0-9]+\s*\()", re.I)
_QUALIFIED_TYPE = re.compile(r"::\s*pg_catalog\s*\.\s*", re.I)
_ARRAY_CAST = re.compile(r"::\s*[\w.]+\s*(\[\s*\])+")
_REG_TYPES = {
    "regclass",
    "regtype",
    "regproc",
    "regprocedure",
    "regnamespace",
    "regrole",
    "regoper",
}
_TEXTUAL = {"text", "varchar", "name", "char", "bpchar", "character varying"}
_NO_PARENS = (
    "current_user",
    "session_user",
    "current_role",
    "current_catalog",
    "current_schema",
    "user",
)


_SESSION_FUNCTIONS: list[tuple[type[exp.Expression], str]] = [
    (exp.CurrentUser, "current_user"),
    (exp.CurrentSchema, "current_schema"),
    (exp.CurrentVersion, "version"),
    (exp.CurrentDatabase, "current_database"),
]
for _kind_name, _function in (
    ("SessionUser", "session_user"),
    ("CurrentCatalog", "current_catalog"),
):
    if hasattr(exp, _kind_name):
        _SESSION_FUNCTIONS.append((getattr(exp, _kind_name), _function))


_EXPAND_FIELD = re.compile(
    r"\(\s*(?:information_schema\s*\.\s*)?_pg_expandarray\s*\(([^()]*)\)\s*\)\s*\.\s*(n|x)\b",
    re.I,
)
_EXPAND = re.compile(r"(?:information_schema\s*\.\s*)?_pg_expandarray\s*\(([^()]*)\)", re.I)
_FIELD_X = re.compile(r"\(\s*(\w+\s*\.\s*\w+)\s*\)\s*\.\s*x\b", re.I)


def _expandarray(text: str) -> str:
    """``information_schema._pg_expandarray(a)`` (PostgreSQL's ``(x, n)`` pairs of an
    array; the JDBC driver's ``getPrimaryKeys`` reads index keys with it) as the
    set-returning forms the translation walks in step: ``(…).n`` is
    ``generate_subscripts(a, 1)``, ``(…).x`` and the bare composite are ``unnest(a)``,
    so a later ``(sub.keys).x`` is just ``sub.keys``."""
    if "_pg_expandarray" not in text.lower():
        return text
    text = _EXPAND_FIELD.sub(
        lambda m: (
            f"generate_subscripts({m.group(1)}, 1)"
            if m.group(2).lower() == "n"
            else f"unnest({m.group(1)})"
        ),
        text,
    )
    text = _EXPAND.sub(r"unnest(\1)", text)
    return _FIELD_X.sub(r"\1", text)


def translate(text: str) -> tuple[str, exp.Expression]:
    """The SQLite text of a PostgreSQL catalogue query (``$n`` become ``:pn``)."""
    text = _expandarray(text)
    text = _OPERATOR.sub(r"\1", text)
    text = _COLLATE.sub("", text)
    text = _QUALIFIED_FUNCTION.sub("", text)
    text = _QUALIFIED_TYPE.sub("::", text)
    text = _ARRAY_CAST.sub("", text)  # arrays travel as their text form here
    tree = sqlglot.parse_one(text, read="postgres")
    for select in list(tree.find_all(exp.Select)):
        _unnest_as_join(select)
    tree = tree.transform(_rewrite)
    sql = tree.sql("sqlite")
    sql = re.sub(r"@(\d+)", r":p\1", sql)
    return sql, tree


def _set_returning(node: exp.Expression) -> exp.Expression | None:
    """The array a set-returning projection (``unnest(a)``, ``generate_subscripts(a,
    1)``) walks, or None."""
    if isinstance(node, exp.Explode | exp.Unnest):
        inner = node.this if isinstance(node, exp.Explode) else node.expressions[0]
        return inner if isinstance(inner, exp.Expression) else None
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "generate_subscripts":
        return node.expressions[0]
    return None


def _unnest_as_join(select: exp.Select) -> None:
    """PostgreSQL's set-returning functions in a SELECT list (``unnest(indkey)``,
    ``generate_subscripts(indkey, 1)``, several walking their arrays in step) as a join
    with SQLite's ``json_each`` over the first array: one row per element."""
    found = []
    for projection in select.expressions:
        for node in projection.walk():
            if node.find_ancestor(exp.Select) is select and _set_returning(node) is not None:
                found.append(node)
    if not found:
        return
    first = _set_returning(found[0])
    assert first is not None
    key = first.sql("postgres")
    for node in found:
        array = _set_returning(node)
        assert array is not None
        position = exp.Add(this=exp.column("key", "_u"), expression=exp.Literal.number(1))
        if not isinstance(node, exp.Explode | exp.Unnest):
            node.replace(position)
        elif array.sql("postgres") == key:
            node.replace(exp.column("value", "_u"))
        else:
            node.replace(exp.Anonymous(this="_subscript", expressions=[array.copy(), position]))
    walker = exp.Anonymous(
        this="json_each",
        expressions=[exp.Anonymous(this="_json_array", expressions=[first.copy()])],
    )
    select.join(
        exp.Table(this=walker, alias=exp.TableAlias(this=exp.to_identifier("_u"))),
        join_type="cross",
        copy=False,
    )


def _resolve_column(node: exp.Column) -> exp.Expression | None:
    """The projection a ``sub.col`` reference reads, when ``sub`` is a subquery of
    the same statement; None otherwise."""
    if not node.table:
        return None
    for subquery in node.root().find_all(exp.Subquery):
        if subquery.alias != node.table or not isinstance(subquery.this, exp.Select):
            continue
        for projection in subquery.this.expressions:
            if projection.alias_or_name == node.name:
                return projection.this if isinstance(projection, exp.Alias) else projection
    return None


def _aggregate_kind(node: exp.Expression) -> str:
    if isinstance(node, exp.Column):
        resolved = _resolve_column(node)
        if resolved is not None:
            return _aggregate_kind(resolved)
        found = _COLUMN_TYPES.get(node.name)
        if found == pgtypes.BOOL:
            return "bool"
        if found in (pgtypes.INT2, pgtypes.INT4, pgtypes.INT8, pgtypes.OID):
            return "int"
        return "text"
    if isinstance(node, exp.Predicate | exp.Not | exp.Boolean):
        return "bool"
    if isinstance(node, exp.Cast) and node.to.sql("postgres").lower() in (
        "bigint",
        "int",
        "integer",
    ):
        return "int"
    return "text"


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.ArrayAgg):
        inner = node.this
        order: exp.Expression = exp.Null()
        if isinstance(inner, exp.Order):
            ordered = inner.expressions[0]
            order = ordered.this if isinstance(ordered, exp.Ordered) else ordered
            inner = inner.this
        kind = exp.Literal.string(_aggregate_kind(inner))
        return exp.Anonymous(this="_array_agg", expressions=[inner, order, kind])
    if isinstance(node, exp.LogicalAnd):
        return exp.Anonymous(this="_bool_and", expressions=[node.this])
    if isinstance(node, exp.LogicalOr):
        return exp.Anonymous(this="_bool_or", expressions=[node.this])
    if isinstance(node, exp.Cast):
        target = node.to.sql("postgres").lower().strip('"')
        if target.endswith("[]"):
            return node.this
        if target in _REG_TYPES:
            return exp.Anonymous(this=f"_{target.removesuffix('edure')}", expressions=[node.this])
        if target in _TEXTUAL or target.startswith(("varchar", "char")):
            return exp.Cast(this=node.this, to=exp.DataType.build("text"))
        if target == "oid":
            return exp.Cast(this=node.this, to=exp.DataType.build("bigint"))
        return node
    if isinstance(node, exp.EQ) and isinstance(node.expression, exp.Any):
        inner = node.expression.this
        while isinstance(inner, exp.Paren):
            inner = inner.this
        if isinstance(inner, exp.Array):
            return exp.In(this=node.this, expressions=list(inner.expressions))
        return exp.Anonymous(this="_any", expressions=[node.this, inner])
    if (
        isinstance(node, exp.Column)
        and not node.table
        and node.name.lower() in _NO_PARENS
        and not isinstance(node.parent, exp.Dot)
        and not node.this.quoted
    ):
        bare = node.name.lower()
        return exp.Anonymous(this="current_user" if bare == "user" else bare, expressions=[])
    for form, function in _SESSION_FUNCTIONS:
        if isinstance(node, form):
            return exp.Anonymous(this=function, expressions=[])
    if isinstance(node, exp.ByteString):  # E'...': its escapes are decoded already
        return exp.Literal.string(str(node.this))
    if isinstance(node, exp.Array):
        items = list(node.expressions)
        if len(items) == 1 and isinstance(items[0], exp.Select | exp.Subquery):
            inner = items[0].this if isinstance(items[0], exp.Subquery) else items[0]
            name = inner.expressions[0].alias_or_name if isinstance(inner, exp.Select) else "?"
            gathered = exp.Anonymous(
                this="_array_agg",
                expressions=[exp.column(name), exp.Null(), exp.Literal.string("text")],
            )
            source = inner.transform(_rewrite)
            assert isinstance(source, exp.Select)
            return exp.Subquery(this=exp.select(gathered).from_(source.subquery()))
        return exp.Anonymous(this="_array", expressions=items)
    if isinstance(node, exp.Bracket) and len(node.expressions) == 1:
        return exp.Anonymous(this="_subscript", expressions=[node.this, node.expressions[0]])
    if isinstance(node, exp.Table) and isinstance(
        node.this, exp.GenerateSeries | exp.ExplodingGenerateSeries
    ):
        series = node.this
        alias = node.alias or "generate_series"
        start = series.args["start"].transform(_rewrite).sql("sqlite")
        end = series.args["end"].transform(_rewrite).sql("sqlite")
        subquery = sqlglot.parse_one(
            f"(WITH RECURSIVE _series(v) AS (SELECT {start} UNION ALL SELECT v + 1 FROM _series "
            f"WHERE v < {end}) SELECT v AS {alias} FROM _series)",
            read="sqlite",
        )
        return exp.Subquery(
            this=subquery.this if isinstance(subquery, exp.Subquery) else subquery,
            alias=exp.TableAlias(this=exp.to_identifier(alias)),
        )
    if isinstance(node, exp.RegexpILike):
        return exp.Anonymous(this="_regexp_i", expressions=[node.expression, node.this])
    return node


_FUNCTION_TYPES = {
    "format_type": pgtypes.TEXT,
    "pg_get_userbyid": pgtypes.NAME,
    "pg_encoding_to_char": pgtypes.NAME,
    "pg_get_expr": pgtypes.TEXT,
    "pg_get_constraintdef": pgtypes.TEXT,
    "pg_get_indexdef": pgtypes.TEXT,
    "version": pgtypes.TEXT,
    "current_schema": pgtypes.NAME,
    "current_database": pgtypes.NAME,
    "current_user": pgtypes.NAME,
    "session_user": pgtypes.NAME,
    "current_setting": pgtypes.TEXT,
    "pg_table_is_visible": pgtypes.BOOL,
    "has_table_privilege": pgtypes.BOOL,
    "has_schema_privilege": pgtypes.BOOL,
    "has_database_privilege": pgtypes.BOOL,
    "pg_is_in_recovery": pgtypes.BOOL,
    "to_regtype": pgtypes.OID,
    "to_regclass": pgtypes.OID,
    "pg_backend_pid": pgtypes.INT4,
    "array_to_string": pgtypes.TEXT,
    "_regclass": pgtypes.TEXT,
    "_regtype": pgtypes.TEXT,
    "_regnamespace": pgtypes.TEXT,
    "obj_description": pgtypes.TEXT,
    "col_description": pgtypes.TEXT,
    "pg_relation_size": pgtypes.INT8,
    "pg_total_relation_size": pgtypes.INT8,
    "pg_size_pretty": pgtypes.TEXT,
    "current_schemas": pgtypes.TEXT_ARRAY,
}
_COLUMN_TYPES: dict[str, int] = {}
for _columns in (*TABLES.values(), *INFO_TABLES.values()):
    for _name, _oid in _columns:
        _COLUMN_TYPES.setdefault(_name, _oid)


_OUTPUT_NAMES = {
    "elemtype": pgtypes.OID,
    "basetype": pgtypes.OID,
    "range_subtype": pgtypes.OID,
    "attrtypoids": pgtypes.OID_ARRAY,
    "attrnames": pgtypes.TEXT_ARRAY,
    "depth": pgtypes.INT4,
    "kind": pgtypes.CHAR,
    "elemdelim": pgtypes.CHAR,
    "ns": pgtypes.NAME,
    "basetype_name": pgtypes.TEXT,
    "elemtype_name": pgtypes.TEXT,
    "range_subtype_name": pgtypes.TEXT,
    "array_oid": pgtypes.OID,
    "regtype": pgtypes.TEXT,
    "delimiter": pgtypes.CHAR,
}
"""Types of result columns clients name themselves (asyncpg's type introspection,
psycopg's ``TypeInfo``), for a statement described before it runs, when the column's
form does not tell (``SELECT *`` over a CTE)."""


def _output_oid(node: exp.Expression) -> int | None:
    """The type a projection has, when it can be told from its form."""
    if isinstance(node, exp.Alias):
        node = node.this
    if isinstance(node, exp.Paren):
        return _output_oid(node.this)
    if isinstance(node, exp.Column):
        resolved = _resolve_column(node)
        if resolved is not None and resolved is not node:
            return _output_oid(resolved)
        return _COLUMN_TYPES.get(node.name)
    if isinstance(node, exp.Boolean | exp.Predicate | exp.Not):
        return pgtypes.BOOL
    if isinstance(node, exp.Cast):
        target = node.to.sql("postgres").lower()
        if target in ("text", "varchar", "name"):
            return pgtypes.TEXT
        if target in ("int", "integer", "int4"):
            return pgtypes.INT4
        if target in ("bigint", "int8"):
            return pgtypes.INT8
        if target in ("bool", "boolean"):
            return pgtypes.BOOL
        return None
    if isinstance(node, exp.ArrayAgg):
        inner = node.this.this if isinstance(node.this, exp.Order) else node.this
        return {"bool": pgtypes.BOOL_ARRAY, "int": pgtypes.INT8_ARRAY}.get(
            _aggregate_kind(inner), pgtypes.TEXT_ARRAY
        )
    if isinstance(node, exp.LogicalAnd | exp.LogicalOr):
        return pgtypes.BOOL
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        if name == "_array_agg":
            kind = node.expressions[2].name
            return {"bool": pgtypes.BOOL_ARRAY, "int": pgtypes.INT8_ARRAY}.get(
                kind, pgtypes.TEXT_ARRAY
            )
        if name in ("_bool_and", "_bool_or"):
            return pgtypes.BOOL
        return _FUNCTION_TYPES.get(name)
    if isinstance(node, exp.Min | exp.Max | exp.Coalesce | exp.Nullif | exp.AnyValue):
        return _output_oid(node.this)
    if isinstance(node, exp.Func):
        name = node.sql_name().lower()
        if name in ("count",):
            return pgtypes.INT8
        return _FUNCTION_TYPES.get(name)
    if isinstance(node, exp.Case):
        for branch in node.args.get("ifs") or []:
            found = _output_oid(branch.args["true"])
            if found is not None:
                return found
        default = node.args.get("default")
        return _output_oid(default) if default is not None else None
    if isinstance(node, exp.Subquery):
        select = node.this
        if isinstance(select, exp.Select) and select.expressions:
            return _output_oid(select.expressions[0])
    return None


def _output_name(node: exp.Expression, index: int) -> str:
    if isinstance(node, exp.Alias):
        return node.alias
    if isinstance(node, exp.Column):
        return node.name
    if isinstance(node, exp.Cast):
        return (
            _output_name(node.this, index)
            if isinstance(node.this, exp.Column)
            else node.to.sql("postgres").lower()
        )
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower().lstrip("_")
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return "?column?"


_CAST_OIDS = {
    "int": pgtypes.INT4,
    "integer": pgtypes.INT4,
    "int4": pgtypes.INT4,
    "smallint": pgtypes.INT2,
    "int2": pgtypes.INT2,
    "bigint": pgtypes.INT8,
    "int8": pgtypes.INT8,
    "oid": pgtypes.OID,
    "bool": pgtypes.BOOL,
    "boolean": pgtypes.BOOL,
    "regclass": pgtypes.TEXT,
    "name": pgtypes.NAME,
    "char": pgtypes.TEXT,
}


def param_oids(text: str, count: int) -> tuple[int, ...]:
    """The type of each ``$n`` of a catalogue query: its cast (``$1::INTEGER``), else
    the catalogue column it is compared with, else text."""
    found: dict[int, int] = {}
    arrays = {
        "oid": pgtypes.OID_ARRAY,
        "int2": pgtypes.INT2_ARRAY,
        "int8": pgtypes.INT8_ARRAY,
        "text": pgtypes.TEXT_ARRAY,
        "name": pgtypes.NAME_ARRAY,
        "bool": pgtypes.BOOL_ARRAY,
    }
    for number, name in re.findall(r"\$(\d+)\s*::\s*(?:pg_catalog\.)?(\w+)\s*\[\s*\]", text):
        found[int(number)] = arrays.get(name.lower(), pgtypes.TEXT_ARRAY)
    try:
        cleaned = _QUALIFIED_TYPE.sub("::", _OPERATOR.sub(r"\1", text))
        if _ARRAY_CAST.search(cleaned):  # an array parameter: sent as its text form
            cleaned = _ARRAY_CAST.sub("::text", cleaned)
        tree = sqlglot.parse_one(cleaned, read="postgres")
    except sqlglot.errors.ParseError:
        return (pgtypes.TEXT,) * count
    for parameter in tree.find_all(exp.Parameter):
        try:
            number = int(parameter.name)
        except ValueError:
            continue
        parent = parameter.parent
        oid = None
        if isinstance(parent, exp.Cast):
            oid = _CAST_OIDS.get(parent.to.sql("postgres").lower().strip('"'))
            if oid is None:
                oid = pgtypes.TEXT
        elif isinstance(parent, exp.Binary):
            other = parent.left if parent.right is parameter else parent.right
            if isinstance(other, exp.Column):
                oid = _COLUMN_TYPES.get(other.name)
                if oid == pgtypes.CHAR:  # "char" travels as text in parameters
                    oid = pgtypes.TEXT
        if oid is not None and number not in found:
            found[number] = oid
    return tuple(found.get(n, pgtypes.TEXT) for n in range(1, count + 1))


def answer(
    db: Database,
    text: str,
    params: Mapping[str, Any],
    caller: Identity,
    info: SessionInfo,
    databases: list[str] | None = None,
) -> Answer:
    """Run the catalogue query ``text`` (``:pn`` placeholders) for ``caller``.

    Raises:
        PgError: 0A000 (the query uses what the translation cannot run), 42P01, 42703.
    """
    original = re.sub(r":p(\d+)\b", r"$\1", text)
    try:
        sql, tree = translate(original)
    except sqlglot.errors.ParseError as exc:
        raise PgError("42601", f"syntax error in catalogue query: {exc}") from None
    conn, _cat, lock = _connection(
        db, caller, info, databases if databases is not None else [info.database]
    )
    values = {str(name): _sqlite_value(value) for name, value in params.items()}
    _CURRENT.info = info
    try:
        with lock:
            cursor = conn.execute(sql, values)
            rows = cursor.fetchall()
            description = cursor.description or ()
    except sqlite3.Error as exc:
        message = str(exc)
        if "no such table" in message:
            raise PgError(
                "42P01",
                f"catalogue query: {message} (Cosmictron's catalogue has "
                "only the tables PostgreSQL clients commonly read)",
            ) from None
        if "no such column" in message:
            raise PgError("42703", f"catalogue query: {message}") from None
        if "unrecognized configuration parameter" in message:
            raise PgError(UNDEFINED_PARAMETER, message) from None
        raise PgError(FEATURE_NOT_SUPPORTED, f"catalogue query not supported: {message}") from None
    projections = tree.expressions if isinstance(tree, exp.Select) else []
    if isinstance(tree, exp.Union):
        first = tree.left
        while isinstance(first, exp.Union):
            first = first.left
        projections = first.expressions if isinstance(first, exp.Select) else []
    columns = []
    oids = []
    for index, column in enumerate(description):
        node = (
            projections[index]
            if index < len(projections) and not any(isinstance(p, exp.Star) for p in projections)
            else None
        )
        name = _output_name(node, index) if node is not None else column[0]
        oid = _output_oid(node) if node is not None else _COLUMN_TYPES.get(column[0])
        if oid is None:
            oid = _OUTPUT_NAMES.get(name)
        if oid is None:
            oid = _oid_of_values(rows, index)
        columns.append(name)
        oids.append(oid)
    converted = _convert(rows, oids)
    return Answer(tuple(columns), tuple(oids), converted)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | str | bytes) or value is None:
        return value
    return str(value)


def _oid_of_values(rows: list[tuple[Any, ...]], index: int) -> int:
    for row in rows:
        value = row[index]
        if value is not None:
            return pgtypes.oid_of_value(value)
    return pgtypes.TEXT


def _convert(rows: list[tuple[Any, ...]], oids: list[int]) -> list[tuple[Any, ...]]:
    booleans = [i for i, oid in enumerate(oids) if oid == pgtypes.BOOL]
    numbers = [
        i
        for i, oid in enumerate(oids)
        if oid in (pgtypes.OID, pgtypes.INT2, pgtypes.INT4, pgtypes.INT8)
    ]
    texts = [
        i
        for i, oid in enumerate(oids)
        if oid
        in (
            pgtypes.TEXT,
            pgtypes.NAME,
            pgtypes.CHAR,
            pgtypes.INT2VECTOR,
            pgtypes.OIDVECTOR,
            pgtypes.TEXT_ARRAY,
        )
    ]
    if not (booleans or numbers or texts):
        return rows
    out = []
    for row in rows:
        values = list(row)
        for i in booleans:
            if values[i] is not None:
                values[i] = (
                    bool(values[i])
                    if not isinstance(values[i], str)
                    else values[i] in ("t", "true", "1")
                )
        for i in numbers:
            if values[i] is not None and not isinstance(values[i], int):
                try:
                    values[i] = int(values[i])
                except (TypeError, ValueError):
                    values[i] = str(values[i])
        for i in texts:
            if values[i] is not None and not isinstance(values[i], str):
                values[i] = (
                    str(values[i])
                    if not isinstance(values[i], bool)
                    else ("t" if values[i] else "f")
                )
        out.append(tuple(values))
    return out
