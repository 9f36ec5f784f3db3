"""What the host puts in the log and in snapshots, and how it is applied again.

Transaction record body (``TX_RECORD_KIND``; msgpack; see docs/design/commitlog-format.md)::

    [timestamp_us, caller (32 bytes), connection_id (16 bytes | nil), reducer,
     args (wire form), [[table, inserts, deletes], ...], [[table, [[column, next], ...]], ...]
     (, [[table, row (wire form), next_due_us | nil], ...] | nil (, [remote op, ...]))]

The optional 8th element is present only when the transaction changed the schedule book
(``host/scheduler.py``): a row of a scheduled table was inserted or deleted, or a
scheduled reducer ran. Replay applies it to the book; older records never have it.
The optional 9th is present only when the transaction changed the remote-call book
(``host/remote_book.py``: ``ctx.call_remote``, a delivery settled, a call applied); the
8th is then nil if the schedule book did not change.

Bulk loads use the reserved reducer name ``__bulk_insert__`` with ``[table, row_count]``;
SQL INSERT/UPDATE/DELETE use ``__sql__`` with ``[text, params]`` (``host/sql.py``); a
transaction block of the PostgreSQL port, ``__sql__`` with ``[[text, params], ...]``.
A scheduled run records its reducer with the row as its one argument; a failed one
``__schedule_failed__`` with ``[table, reducer, error]`` (``host/scheduler.py``); a
procedure's ``ctx.with_tx`` records ``<procedure>/with_tx`` with the procedure's
arguments (``host/procedures.py``).

Module record body (``MODULE_RECORD_KIND``; a hot-swap, ``Database.update_module``)::

    [timestamp_us, caller (32 bytes), source (bytes), filename, schema (describe()), clear]

Replay loads ``source``, checks that it still declares ``schema``'s tables, and moves
the datastore to it at this offset (emptying it first when ``clear`` is true), so the
records after it decode with the new tables' codecs and the records before it with the
old ones.

Snapshot state (msgpack)::

    {"module": [source (bytes), filename],
     "tables": [[table, [row, ...], [[column, next_value], ...]], ...],
     "schedules": [[table, row (wire form), next_due_us], ...],
     "remote": {"next_seq", "outbox": [...], "inbox": [[source, seq], ...]}}

``schedules`` (absent before scheduling existed) is the whole schedule book; ``remote``
(absent when the database never used cross-database calls) the remote-call book.

``module`` is the module the state was taken under: replay from this snapshot starts with
it. Snapshots written before hot-swap existed are the bare ``tables`` list; they were
taken under the database's first module (``module/genesis.py``, or ``module/module.py``
when the database was never updated).

``snapshot_builder`` copies each table's row list under the writer lock (rows are
immutable tuples, so the copy is consistent and cheap) and returns a closure that encodes
them later, in the persistence layer's snapshot thread, while writers carry on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cosmictron.datastore import Datastore, TableChange, Transaction
from cosmictron.durability import TX_RECORD_KIND
from cosmictron.errors import CorruptLog
from cosmictron.values import ConnectionId, Identity

_take: Callable[..., tuple[int, Any]] | None = None
"""The compiled ``_replay.take`` (``ReplayOverlay.take``'s loop in C), or None: not built,
or ``COSMICTRON_PURE`` is set. See docs/design/hot-path.md, "Sixth round"."""
if not os.environ.get("COSMICTRON_PURE"):
    try:
        from cosmictron.host._replay import take as _take
    except ImportError:  # built without a compiler: the Python loop
        pass
REPLAY_COMPILED = _take is not None
"""Whether ``ReplayOverlay.take`` runs the compiled loop (it takes nothing otherwise)."""

BULK_INSERT = "__bulk_insert__"
"""The reducer name recorded for ``Database.bulk_insert`` transactions."""


@dataclass(frozen=True)
class ModuleChange:
    """A decoded module record body."""

    timestamp_us: int
    caller: bytes
    source: bytes
    filename: str
    schema: dict[str, Any]
    clear: bool


def module_body(
    timestamp_us: int, caller: Identity, source: bytes, filename: str, schema: Any, clear: bool
) -> list[Any]:
    """The body of a module record; ``schema`` is the new module's ``ModuleSchema``."""
    return [timestamp_us, caller.data, source, filename, schema.describe(), clear]


def read_module_body(body: list[Any]) -> ModuleChange:
    timestamp_us, caller, source, filename, schema, clear = body
    return ModuleChange(timestamp_us, caller, source, filename, schema, bool(clear))


def transaction_body(
    datastore: Datastore,
    tx: Transaction,
    changes: list[TableChange],
    reducer: str,
    wire_args: Any,
    sender: Identity,
    connection_id: ConnectionId | None,
    timestamp_us: int,
    schedule: list[Any] | None = None,
    remote: list[Any] | None = None,
) -> list[Any]:
    """The body of one transaction record: who called what, and the net effect."""
    codecs = datastore.codecs
    tables = []
    for change in changes:
        name = change.table.name
        codec = codecs[name]
        if codec.plain:  # rows are their own wire form: no call per list
            tables.append([name, change.inserts, change.deletes])
        else:
            tables.append(
                [name, codec.encode_many(change.inserts), codec.encode_many(change.deletes)]
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
    body = [timestamp_us, sender.data, connection, reducer, wire_args, tables, sequences]
    if schedule or remote:
        body.append(schedule or None)
    if remote:
        body.append(remote)
    return body


def record_schedule(body: list[Any]) -> list[Any]:
    """A transaction body's schedule-book entries (empty for most records)."""
    return (body[7] or []) if len(body) > 7 else []


def record_remote(body: list[Any]) -> list[Any]:
    """A transaction body's remote-call operations (empty for most records)."""
    return body[8] if len(body) > 8 else []


def snapshot_schedules(state: Any) -> list[Any]:
    """The schedule book a snapshot holds (empty for snapshots from before scheduling)."""
    if isinstance(state, dict):
        schedules: list[Any] = state.get("schedules", [])
        return schedules
    return []


def apply_record_body(datastore: Datastore, body: list[Any]) -> None:
    """Apply one transaction record's net effect (deletes first, then inserts)."""
    tables = datastore.tables
    codecs = datastore.codecs
    for name, inserts, deletes in body[5]:
        table = tables.get(name)
        if table is None:
            raise CorruptLog("log", 0, f"a record names table {name!r}, which the module lacks")
        codec = codecs[name]
        decode = codec.decode
        if codec.plain and (inserts or deletes):  # a plain row is taken as it is
            codec.check_width((inserts or deletes)[0])
        for wire in deletes:
            row = decode(wire)
            table.delete(table.row_key(row))
        if len(inserts) == 1:
            table.insert(decode(inserts[0]))
        elif inserts:
            table.insert_many(codec.decode_many(inserts))
    for name, sequences in body[6]:
        table = tables[name]
        for position, value in sequences:
            table.sequences[position] = value


_DELETED: Any = type("Deleted", (), {"__repr__": lambda self: "<deleted>"})()
"""What a ``ReplayOverlay`` holds for a key whose row the log deleted."""


def _held_key(name: str, key: Any) -> CorruptLog:
    """The error for a record inserting a key the table (or the overlay's run) holds."""
    return CorruptLog("log", 0, f"a record inserts a key table {name!r} already holds: {key!r}")


class ReplayOverlay:
    """Applies a run of transaction records by their net effect per key (replay only).

    A log of small transactions, replayed one record at a time, pays for every
    intermediate state: an update is a delete and an insert, each maintaining every
    index. The overlay instead keeps, per table, the newest row (or ``_DELETED``) of every
    key the run touched, in the order the rows were last inserted; ``flush`` then deletes
    the touched keys the table held and inserts the surviving rows with one
    ``insert_many``. The final state, and the order of the table's rows, are what
    applying the records one by one gives (a row deleted and re-inserted moves to the
    end either way). A record that inserts a key the table (or the run) already holds is
    ``CorruptLog``, as it was when applied one by one; so is one naming an unknown table.
    The caller flushes before anything that reads the tables (a record with schedule
    entries, a bulk load, a module change) and at the end.
    """

    __slots__ = ("_datastore", "_pending")

    def __init__(self, datastore: Datastore) -> None:
        self._datastore = datastore
        # Per table: (table, rows, decode, key_of, check_width, width); ``_replay.take``
        # reads the same tuples.
        self._pending: dict[str, tuple[Any, dict[Any, Any], Any, Any, Any, int]] = {}

    def _start(self, name: str) -> tuple[Any, dict[Any, Any], Any, Any, Any, int]:
        table = self._datastore.tables.get(name)
        if table is None:
            raise CorruptLog("log", 0, f"a record names table {name!r}, which the module lacks")
        codec = self._datastore.codecs[name]
        state: tuple[Any, dict[Any, Any], Any, Any, Any, int] = (
            table,
            {},
            tuple if codec.plain else codec.decode,
            table.key_of,
            codec.check_width if codec.plain else None,
            codec.width,
        )
        self._pending[name] = state
        return state

    def take(
        self, batch: list[Any], start: int, skip_kinds: frozenset[int], apart: frozenset[str]
    ) -> tuple[int, Any]:
        """Add ``batch[start:]`` while each record is a plain transaction ``add`` would take
        with nothing else to do (records of ``skip_kinds`` are passed over, reducers in
        ``apart`` are not taken); return where it stopped and the last transaction
        record taken (None if none).

        The compiled loop (``_replay.pyx``) does this without an interpreter step per
        record; without it this takes nothing, and the caller's loop applies each record.
        """
        if _take is None:
            return start, None
        return _take(
            batch,
            start,
            self._pending,
            TX_RECORD_KIND,
            skip_kinds,
            apart,
            _DELETED,
            _held_key,
        )

    def add(self, body: list[Any]) -> None:
        """Take one transaction record's row changes and counters (not its schedule)."""
        pending = self._pending
        for name, inserts, deletes in body[5]:
            state = pending.get(name) or self._start(name)
            table, rows, decode, key_of, check_width, _ = state
            if check_width is not None and (inserts or deletes):
                check_width((inserts or deletes)[0])  # a plain row is taken as it is
            for wire in deletes:
                row = decode(wire)
                key = row if key_of is None else key_of(row)
                rows.pop(key, None)
                rows[key] = _DELETED
            held = table.rows
            for wire in inserts:
                row = decode(wire)
                key = row if key_of is None else key_of(row)
                seen = rows.pop(key, None)
                if key_of is not None and (
                    (seen is None and key in held) or (seen is not None and seen is not _DELETED)
                ):
                    raise _held_key(name, key)
                rows[key] = row
        if body[6]:
            self.flush()  # counters are few; applying them in order keeps this simple
            for name, sequences in body[6]:
                table = self._datastore.tables[name]
                for position, value in sequences:
                    table.sequences[position] = value

    def flush(self) -> None:
        """Apply what the run did to the tables and start a new run."""
        for table, rows, _, _, _, _ in self._pending.values():
            if len(rows) == 1:  # one change: no lists to build
                ((key, row),) = rows.items()
                if key in table.rows:
                    table.delete(key)
                if row is not _DELETED:
                    table.insert(row)
            else:
                table.apply_net_effect(rows, _DELETED)
        self._pending.clear()


def snapshot_module(state: Any) -> tuple[bytes, str] | None:
    """The module a snapshot was taken under; None for a snapshot from before hot-swap."""
    if isinstance(state, dict):
        source, filename = state["module"]
        return source, filename
    return None


def load_snapshot_state(datastore: Datastore, state: Any) -> None:
    """Fill the (empty) datastore, already under the snapshot's module, from ``state``."""
    tables = state["tables"] if isinstance(state, dict) else state
    for name, rows, sequences in tables:
        table = datastore.tables.get(name)
        if table is None:
            raise CorruptLog(
                "snapshot", 0, f"the snapshot holds table {name!r}, which the module lacks"
            )
        table.insert_many(datastore.codecs[name].decode_many(rows))
        for position, value in sequences:
            table.sequences[position] = value


def snapshot_builder(
    datastore: Datastore,
    source: bytes,
    filename: str,
    schedules: list[Any] | None = None,
    remote: dict[str, Any] | None = None,
) -> Callable[[], dict[str, Any]]:
    """Capture the current state now; the returned function encodes it later.

    ``source`` and ``filename`` name the module the state is under, so recovery from
    this snapshot starts with the right tables even when the log updated the module.
    ``schedules`` is the schedule book, already in log form (it is small).
    """
    captured = [
        (table.name, datastore.codecs[table.name], list(table.rows.values()), dict(table.sequences))
        for table in datastore
    ]

    def build() -> dict[str, Any]:
        tables = [
            [name, codec.encode_many(rows), [[p, v] for p, v in sequences.items()]]
            for name, codec, rows, sequences in captured
        ]
        state: dict[str, Any] = {"module": [source, filename], "tables": tables}
        if schedules:
            state["schedules"] = schedules
        if remote:
            state["remote"] = remote
        return state

    return build
