"""What the host puts in the log and in snapshots, and how it is applied again.

Transaction record body (``TX_RECORD_KIND``; msgpack; see docs/design/commitlog-format.md)::

    [timestamp_us, caller (32 bytes), connection_id (16 bytes | nil), reducer,
     args (wire form), [[table, inserts, deletes], ...], [[table, [[column, next], ...]], ...]]

Bulk loads use the reserved reducer name ``__bulk_insert__`` with ``[table, row_count]``;
SQL INSERT/UPDATE/DELETE use ``__sql__`` with ``[text, params]`` (``host/sql.py``).

Snapshot state (msgpack)::

    [[table, [row, ...], [[column, next_value], ...]], ...]

``snapshot_builder`` copies each table's row list under the writer lock (rows are
immutable tuples, so the copy is consistent and cheap) and returns a closure that encodes
them later, in the persistence layer's snapshot thread, while writers carry on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cosmictron.datastore import Datastore, TableChange, Transaction
from cosmictron.errors import CorruptLog
from cosmictron.values import ConnectionId, Identity

BULK_INSERT = "__bulk_insert__"
"""The reducer name recorded for ``Database.bulk_insert`` transactions."""


def transaction_body(
    datastore: Datastore,
    tx: Transaction,
    changes: list[TableChange],
    reducer: str,
    wire_args: Any,
    sender: Identity,
    connection_id: ConnectionId | None,
    timestamp_us: int,
) -> list[Any]:
    """The body of one transaction record: who called what, and the net effect."""
    codecs = datastore.codecs
    tables = []
    for change in changes:
        codec = codecs[change.table.name]
        tables.append(
            [
                change.table.name,
                codec.encode_many(change.inserts),
                codec.encode_many(change.deletes),
            ]
        )
    sequences = (
        [
            [table.name, [[position, value] for position, value in table.sequences.items()]]
            for table in tx.sequence_tables
        ]
        if tx.sequence_tables
        else []
    )
    connection = None if connection_id is None else connection_id.value.to_bytes(16, "big")
    return [timestamp_us, sender.data, connection, reducer, wire_args, tables, sequences]


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
        if len(inserts) == 1:
            table.insert(decode(inserts[0]))
        elif inserts:
            table.insert_many(codecs[name].decode_many(inserts))
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
        table.insert_many(datastore.codecs[name].decode_many(rows))
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
