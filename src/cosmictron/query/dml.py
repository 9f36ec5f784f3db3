"""Apply INSERT, UPDATE and DELETE inside a transaction the host opened.

Counts are honest: INSERT counts the rows stored (a keyless table is a set, so a row
identical to a stored one stores nothing and counts 0), UPDATE the rows it matched (as
SQLite counts them, a row set to its own values included), DELETE the rows deleted.
``RETURNING`` is evaluated on each row stored (with its auto-increment id), each
updated row's new values and each deleted row's old values, in the order they were
written. ``INSERT … SELECT`` runs its query inside the transaction, before any row is
written, so it reads the table as it was (``INSERT INTO t SELECT * FROM t`` doubles
nothing in a keyless table and conflicts on a keyed one).

The statement's source plan finds the rows (with an index when the WHERE allows); they
are collected before any is changed, so a write never disturbs the scan that found it.
UPDATE computes every new row first and checks each value against its column's type,
then writes: rows whose primary key is unchanged are replaced in place, and rows whose
key changes are all deleted before any is re-inserted, so ``SET id = id + 1`` does not
trip over its own old keys. Any error propagates and the host rolls the whole
transaction back. Event tables are append-only, so both statements refuse them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cosmictron.datastore import Datastore, Table, Transaction, TypeMismatch
from cosmictron.errors import InvalidRequest
from cosmictron.query.cache import converter
from cosmictron.query.execute import execute
from cosmictron.query.expressions import compile_expr
from cosmictron.query.statements import (
    DeleteStatement,
    InsertStatement,
    Returning,
    UpdateStatement,
)

_UNLIMITED = 1 << 62

Row = tuple[Any, ...]
Inserter = Callable[[Table, Any, "list[Row] | None", "str | None"], int]
"""The host's batch insert: (table, rows, a list to receive the rows stored, the
statement's ``OR REPLACE``/``OR IGNORE`` or None) -> count."""


def apply_insert(
    statement: InsertStatement, datastore: Datastore, insert: Inserter
) -> tuple[int, list[Row]]:
    """Insert the statement's rows (or its query's); returns (rows stored, RETURNING rows).

    ``insert`` is the host's checked batch insert (type checks, defaults, auto-increment),
    all or nothing; ``INSERT OR REPLACE`` (``REPLACE INTO``) first deletes the rows each
    new row conflicts with, ``INSERT OR IGNORE`` skips a row that conflicts.
    """
    table = datastore.tables[statement.table.name]
    rows: Any = statement.rows
    if statement.source is not None:
        found = execute(statement.source, datastore, _UNLIMITED)
        names = statement.names
        rows = found if names is None else [dict(zip(names, row, strict=True)) for row in found]
    stored: list[Row] | None = [] if statement.returning is not None else None
    count = insert(table, rows, stored, statement.on_conflict)
    return count, returned(statement.returning, stored or [])


def returned(returning: Returning | None, rows: list[Row]) -> list[Row]:
    """The RETURNING rows for ``rows`` (a table's rows), in Python form."""
    if returning is None:
        return []
    functions = [compile_expr(expr) for expr in returning.exprs]
    converters = [converter(t) for t in returning.types]
    out = []
    for row in rows:
        values = [function(row) for function in functions]
        out.append(
            tuple(
                v if c is None or v is None else c(v)
                for c, v in zip(converters, values, strict=True)
            )
        )
    return out


def apply_delete(statement: DeleteStatement, datastore: Datastore, tx: Transaction) -> int:
    """Delete the matching rows; returns how many were deleted."""
    return delete_rows(statement, datastore, tx)[0]


def delete_rows(
    statement: DeleteStatement, datastore: Datastore, tx: Transaction
) -> tuple[int, list[Row]]:
    """Delete the matching rows; returns (how many, the RETURNING rows)."""
    table = _writable(statement.table.name, datastore, "DELETE FROM")
    rows = execute(statement.source, datastore, _UNLIMITED)
    deleted = [old for row in rows if (old := tx.delete(table, table.row_key(row))) is not None]
    return len(deleted), returned(statement.returning, deleted)


def apply_update(statement: UpdateStatement, datastore: Datastore, tx: Transaction) -> int:
    """Update the matching rows; returns how many it matched."""
    return update_rows(statement, datastore, tx)[0]


def update_rows(
    statement: UpdateStatement, datastore: Datastore, tx: Transaction
) -> tuple[int, list[Row]]:
    """Update the matching rows; returns (how many it matched, the RETURNING rows).

    Raises:
        InvalidRequest: a new value does not fit its column (names the column).
        Conflict: a new row duplicates a primary or unique key.
    """
    table = _writable(statement.table.name, datastore, "UPDATE")
    columns = statement.table.columns
    assignments = [(p, compile_expr(e), columns[p]) for p, e in statement.assignments]
    rows = execute(statement.source, datastore, _UNLIMITED)
    in_place: list[tuple[Any, tuple[Any, ...]]] = []
    moved: list[tuple[Any, tuple[Any, ...]]] = []
    new_rows: list[Row] = []
    for row in rows:
        values = list(row)
        for position, function, column in assignments:
            value = function(row)
            try:
                values[position] = column.type.check(value)
            except TypeMismatch as exc:
                raise InvalidRequest(
                    f"table {table.name!r} column {column.name!r}: {exc}"
                ) from None
        new = tuple(values)
        new_rows.append(new)
        key = table.row_key(row)
        (in_place if table.row_key(new) == key else moved).append((key, new))
    for key, new in in_place:
        tx.replace(table, key, new)
    for key, _ in moved:
        tx.delete(table, key)
    for _, new in moved:
        tx.insert(table, new)  # a keyless row now identical to another joins it (a set)
    return len(rows), returned(statement.returning, new_rows)


def _writable(name: str, datastore: Datastore, action: str) -> Table:
    table = datastore.tables[name]
    if table.schema.event:
        raise InvalidRequest(f"cannot {action} event table {name!r}: event tables are append-only")
    return table
