"""Rebuilding state from disk: snapshot state in, record bodies applied, state out.

Snapshot state (msgpack)::

    [[table, [row, ...], [[column, next_value], ...]], ...]

``snapshot_builder`` copies each table's row list under the writer lock (rows are
immutable tuples, so the copy is consistent and cheap) and returns a closure that encodes
them later, in the persistence layer's snapshot thread, while writers carry on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cosmictron.datastore import Datastore
from cosmictron.errors import CorruptLog


def apply_record_body(datastore: Datastore, body: list[Any]) -> None:
    """Apply one transaction record's net effect (deletes first, then inserts)."""
    tables = datastore.tables
    codecs = datastore.codecs
    for name, inserts, deletes in body[5]:
        table = tables.get(name)
        if table is None:
            raise CorruptLog("log", 0, f"a record names table {name!r}, which the module lacks")
        decode = codecs[name].decode
        for wire in deletes:
            row = decode(wire)
            table.delete(table.row_key(row))
        for wire in inserts:
            table.insert(decode(wire))
    for name, sequences in body[6]:
        table = tables[name]
        for position, value in sequences:
            table.sequences[position] = value


def load_snapshot_state(datastore: Datastore, state: list[Any]) -> None:
    for name, rows, sequences in state:
        table = datastore.tables.get(name)
        if table is None:
            raise CorruptLog(
                "snapshot", 0, f"the snapshot holds table {name!r}, which the module lacks"
            )
        decode = datastore.codecs[name].decode
        insert = table.insert
        for wire in rows:
            insert(decode(wire))
        for position, value in sequences:
            table.sequences[position] = value


def snapshot_builder(datastore: Datastore) -> Callable[[], list[Any]]:
    """Capture the current state now; the returned function encodes it later."""
    captured = [
        (table.name, datastore.codecs[table.name], list(table.rows.values()), dict(table.sequences))
        for table in datastore
    ]

    def build() -> list[Any]:
        return [
            [name, codec.encode_many(rows), [[p, v] for p, v in sequences.items()]]
            for name, codec, rows, sequences in captured
        ]

    return build
