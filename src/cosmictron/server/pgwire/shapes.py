"""What a statement returns and takes, before it runs: column names and types, and
the type of each ``$n`` parameter (for RowDescription and ParameterDescription).

The engine plans a statement with a ``Param`` slot wherever a parameter appears, and
chooses the type each value will be coerced to (``Param.target``: the column it is
compared with or stored in). The shape is read from that plan, prepared through the
statement cache, so running the statement afterwards finds it planned already. A
parameter the plan gives no type (``SELECT $1``) is described as ``text``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cosmictron.datastore import ColumnType
from cosmictron.host import Database
from cosmictron.query import Explain, InsertStatement, SelectStatement
from cosmictron.query.cache import STATEMENTS, Prepared
from cosmictron.query.parse import prepare
from cosmictron.query.plan import Param
from cosmictron.query.visibility import restricts
from cosmictron.server.pgwire import pgtypes
from cosmictron.values import Identity


@dataclass(frozen=True)
class Shape:
    """``columns`` None: the statement returns no rows (DML without RETURNING)."""

    columns: tuple[str, ...] | None
    types: tuple[ColumnType | None, ...]
    param_oids: tuple[int, ...]
    kind: str
    """``SELECT``, ``INSERT``, ``UPDATE``, ``DELETE`` or ``EXPLAIN``: the command tag's verb."""
    column_oids: tuple[int, ...] = ()
    """The OID of each column (``pgtypes.oid_of`` of ``types``), worked out once."""

    def __post_init__(self) -> None:
        if not self.column_oids and self.columns is not None:
            oids = tuple(pgtypes.oid_of(t) for t in self.types)
            object.__setattr__(self, "column_oids", oids)


def sample_params(count: int, oids: tuple[int, ...]) -> dict[str, Any]:
    """A value of each parameter's declared type (text when undeclared): the engine
    plans on value types, and reports the type it coerces each one to."""
    samples: dict[str, Any] = {}
    for number in range(1, count + 1):
        oid = oids[number - 1] if number <= len(oids) else 0
        samples[f"p{number}"] = _SAMPLES.get(oid, "")
    return samples


_SAMPLES: dict[int, Any] = {
    pgtypes.BOOL: False,
    pgtypes.INT2: 0,
    pgtypes.INT4: 0,
    pgtypes.INT8: 0,
    pgtypes.NUMERIC: 0,
    pgtypes.FLOAT4: 0.0,
    pgtypes.FLOAT8: 0.0,
    pgtypes.BYTEA: b"",
}


def shape_of(
    db: Database, text: str, params: Mapping[str, Any], sender: Identity, count: int
) -> Shape:
    """The shape of ``text`` (``:pn`` placeholders) for ``sender``.

    Raises:
        SqlError: as when the statement runs.
    """
    schema = db.core.module.schema
    restricted = restricts(schema, sender, db.owner)
    cached = STATEMENTS.get(text, schema, params, restricted)
    if cached is not None:
        statement = cached.statement
    else:
        views = db.core.sql_views
        statement = prepare(text, schema, params, sender, restricted=restricted, views=views.views)
        if not views.names_any(text):
            STATEMENTS.put(text, schema, params, statement, restricted)
    return _shape(statement, count)


def cached_shape(
    db: Database, text: str, params: Mapping[str, Any], sender: Identity, count: int
) -> Shape | None:
    """The shape of ``text`` if the statement cache has it planned already (a dict
    lookup, fit for the event loop); None when it must be prepared (``shape_of``)."""
    schema = db.core.module.schema
    cached = STATEMENTS.get(text, schema, params, restricts(schema, sender, db.owner))
    return None if cached is None else _shape(cached.statement, count)


def is_point_lookup(
    db: Database, text: str, params: Mapping[str, Any] | None, sender: Identity
) -> bool:
    """Whether ``text`` with these parameters is a cached primary-key lookup, which
    ``Database.sql`` answers with one dict lookup (no operators, no snapshot)."""
    return point_entry(db, text, params, sender) is not None


def point_entry(
    db: Database, text: str, params: Mapping[str, Any] | None, sender: Identity
) -> Prepared | None:
    """The statement cache's entry for ``text`` with these parameter types and this
    sender if it is a primary-key lookup (``host.sql.point_rows`` runs it), else None."""
    schema = db.core.module.schema
    cached = STATEMENTS.get(text, schema, params, restricts(schema, sender, db.owner))
    return cached if cached is not None and cached.point is not None else None


_SHAPES: dict[int, tuple[Any, Shape]] = {}
_SHAPES_MAX = 1024


def _shape(statement: Any, count: int) -> Shape:
    known = _SHAPES.get(id(statement))
    if known is not None and known[0] is statement:
        return known[1]
    found = _compute(statement, count)
    if len(_SHAPES) >= _SHAPES_MAX:
        _SHAPES.clear()
    _SHAPES[id(statement)] = (statement, found)
    return found


def _compute(statement: Any, count: int) -> Shape:
    targets: dict[str, ColumnType | None] = {}
    _find_params(statement, targets, set())
    if isinstance(statement, InsertStatement):
        _insert_targets(statement, targets)
    oids = tuple(
        pgtypes.oid_of(targets.get(f"p{n}")) if targets.get(f"p{n}") is not None else pgtypes.TEXT
        for n in range(1, count + 1)
    )
    if isinstance(statement, Explain):
        return Shape(("plan",), (None,), oids, "EXPLAIN")
    if isinstance(statement, SelectStatement):
        return Shape(statement.columns, statement.types, oids, "SELECT")
    kind = type(statement).__name__.removesuffix("Statement").upper()
    returning = statement.returning
    if returning is None:
        return Shape(None, (), oids, kind)
    return Shape(returning.columns, returning.types, oids, kind)


def _find_params(value: Any, found: dict[str, ColumnType | None], seen: set[int]) -> None:
    if id(value) in seen or value is None or isinstance(value, str | int | float | bytes):
        return
    seen.add(id(value))
    if isinstance(value, Param):
        if found.get(value.name) is None:
            found[value.name] = value.target or value.type
        return
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _find_params(item, found, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _find_params(item, found, seen)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for spec in dataclasses.fields(value):
            _find_params(getattr(value, spec.name), found, seen)


def _insert_targets(statement: InsertStatement, found: dict[str, ColumnType | None]) -> None:
    """INSERT values are coerced to their column when stored: the column's type."""
    columns = statement.table.columns
    for row in statement.rows:
        items = row.items() if isinstance(row, dict) else enumerate(row)
        for key, value in items:
            if isinstance(value, Param):
                if isinstance(key, str):
                    column = next((c for c in columns if c.name == key), None)
                else:
                    column = columns[key] if key < len(columns) else None
                if column is not None:
                    found[value.name] = column.type
