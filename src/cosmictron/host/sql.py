"""``Database.sql``: permissions, locking and logging around the query layer.

The query layer plans and executes; the host decides who may do what and how a write
becomes a transaction. A SELECT runs under the writer lock (``Database.read``), so it
sees one committed state. Every INSERT, UPDATE or DELETE is one transaction, logged
like a reducer call named ``__sql__`` with arguments ``[text, params]`` (parameters in
a JSON-like wire form), so it is replayed after a restart and visible to audits.

Permissions: the owner may do anything; anyone else may SELECT from public tables
only, and may not write. Reducers read private tables through ``ctx.db``, not SQL.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cosmictron import limits
from cosmictron.datastore import ColumnType, Datastore, Transaction
from cosmictron.errors import PermissionDenied
from cosmictron.host.handles import insert_all
from cosmictron.query import (
    DeleteStatement,
    Explain,
    InsertStatement,
    QueryResult,
    SelectStatement,
    UpdateStatement,
    apply_delete,
    apply_update,
    execute,
    parse,
)
from cosmictron.query.coerce import base
from cosmictron.values import ConnectionId, Identity, TimeDuration, Timestamp

if TYPE_CHECKING:
    from cosmictron.host.database import Database

SQL_REDUCER = "__sql__"
"""The reducer name recorded for SQL INSERT/UPDATE/DELETE transactions."""


def run_sql(
    db: Database,
    text: str,
    params: Mapping[str, Any] | None,
    sender: Identity,
    rows_max: int | None,
) -> QueryResult:
    """Parse, check permissions, run; see ``Database.sql``."""
    statement = parse(text, db.schema, params, sender)
    _check_permissions(db, statement, sender)
    if isinstance(statement, Explain):
        lines = statement.statement.explain()
        return QueryResult(("plan",), [(line,) for line in lines])
    if isinstance(statement, SelectStatement):
        return _select(db, statement, rows_max)
    wire = [text, _wire_params(params)]
    if isinstance(statement, InsertStatement):
        binding = db.module.rows[statement.table.name]

        def insert(tx: Transaction, datastore: Datastore) -> int:
            table = datastore.tables[statement.table.name]
            return insert_all(tx, table, binding, statement.rows)

        count, offset = db.run_transaction(SQL_REDUCER, insert, lambda _: wire, sender)
        count = len(statement.rows)  # an identical keyless row is still a row inserted
    elif isinstance(statement, UpdateStatement):
        update = statement

        def run_update(tx: Transaction, datastore: Datastore) -> int:
            return apply_update(update, datastore, tx)

        count, offset = db.run_transaction(SQL_REDUCER, run_update, lambda _: wire, sender)
    else:
        assert isinstance(statement, DeleteStatement)
        delete = statement

        def run_delete(tx: Transaction, datastore: Datastore) -> int:
            return apply_delete(delete, datastore, tx)

        count, offset = db.run_transaction(SQL_REDUCER, run_delete, lambda _: wire, sender)
    return QueryResult((), [], rows_affected=count, tx_offset=offset)


def _select(db: Database, statement: SelectStatement, rows_max: int | None) -> QueryResult:
    limit = limits.query_rows_max if rows_max is None else rows_max
    rows = db.read(lambda datastore: execute(statement.plan, datastore, limit))
    converters = [_converter(t) for t in statement.types]
    if any(c is not None for c in converters):
        rows = [
            tuple(
                v if c is None or v is None else c(v) for c, v in zip(converters, row, strict=True)
            )
            for row in rows
        ]
    return QueryResult(statement.columns, rows)


def _converter(column_type: ColumnType | None) -> Callable[[Any], Any] | None:
    """Canonical to Python (enum names to members, ...); None where they are the same."""
    inner = base(column_type)
    if inner is None or type(inner).to_python is ColumnType.to_python:
        return None
    return inner.to_python


def _check_permissions(db: Database, statement: Any, sender: Identity) -> None:
    if sender == db.owner:
        return
    inner = statement.statement if isinstance(statement, Explain) else statement
    if not isinstance(inner, SelectStatement):
        raise PermissionDenied("only the database owner may change data through SQL")
    for name in sorted(inner.tables):
        table = db.schema.table(name)
        if table is not None and not table.public:
            raise PermissionDenied(
                f"table {name!r} is private: only the database owner and its reducers read it"
            )


def _wire_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parameters as msgpack-able values for the log record."""
    return {name: _wire(value) for name, value in (params or {}).items()}


def _wire(value: Any) -> Any:
    if isinstance(value, Identity | ConnectionId):
        return value.hex()
    if isinstance(value, Timestamp):
        return value.isoformat()
    if isinstance(value, TimeDuration):
        return value.micros
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, list | tuple):
        return [_wire(item) for item in value]
    return value
