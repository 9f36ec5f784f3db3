"""Apply UPDATE and DELETE inside a transaction the host opened.

The statement's source plan finds the rows (with an index when the WHERE allows); they
are collected before any is changed, so a write never disturbs the scan that found it.
UPDATE computes every new row first and checks each value against its column's type,
then writes: rows whose primary key is unchanged are replaced in place, and rows whose
key changes are all deleted before any is re-inserted, so ``SET id = id + 1`` does not
trip over its own old keys. Any error propagates and the host rolls the whole
transaction back. Event tables are append-only, so both statements refuse them.
"""

from __future__ import annotations

from typing import Any

from cosmictron.datastore import Datastore, Table, Transaction, TypeMismatch
from cosmictron.errors import InvalidRequest
from cosmictron.query.execute import execute
from cosmictron.query.expressions import compile_expr
from cosmictron.query.statements import DeleteStatement, UpdateStatement

_UNLIMITED = 1 << 62


def apply_delete(statement: DeleteStatement, datastore: Datastore, tx: Transaction) -> int:
    """Delete the matching rows; returns how many."""
    table = _writable(statement.table.name, datastore, "DELETE FROM")
    rows = execute(statement.source, datastore, _UNLIMITED)
    for row in rows:
        tx.delete(table, table.row_key(row))
    return len(rows)


def apply_update(statement: UpdateStatement, datastore: Datastore, tx: Transaction) -> int:
    """Update the matching rows; returns how many.

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
        key = table.row_key(row)
        (in_place if table.row_key(new) == key else moved).append((key, new))
    for key, new in in_place:
        tx.replace(table, key, new)
    for key, _ in moved:
        tx.delete(table, key)
    for _, new in moved:
        tx.insert(table, new)
    return len(rows)


def _writable(name: str, datastore: Datastore, action: str) -> Table:
    table = datastore.tables[name]
    if table.schema.event:
        raise InvalidRequest(f"cannot {action} event table {name!r}: event tables are append-only")
    return table
