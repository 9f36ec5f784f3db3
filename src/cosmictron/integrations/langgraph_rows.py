"""The embedded ``CosmictronSaver``'s writes: its rows straight into one host transaction.

Over the SDK a saver write is a call of the agent layer's reducer (``put_graph_checkpoint``,
``put_graph_writes``). In process the same rows are written here as one
``Database.run_transaction``, the path bulk loads and SQL writes take: the same writer
lock, memory check, record, subscribers and durability wait (an acknowledged put is
durable under the fsync policy, as a reducer call is), without what a reducer call adds
around the rows. That was most of a put's cost (docs/benchmarks.md, "LangGraph
checkpoint puts, third round"):

- the record carried the call's arguments *and* the row, so each checkpoint LangGraph had
  already serialized was packed, checksummed and hashed into the log twice. Here the
  record's arguments are only the keys (``thread_id``, ``checkpoint_ns``,
  ``checkpoint_id``, and the task for writes): the rows hold the values;
- binding and checking the arguments (four lists for a step's writes), a row object built
  per row and taken apart again by the table handle, a row object returned and dropped,
  a head row found as an object to be updated.

The record names the reserved pseudo-reducers ``__graph_checkpoint__`` and
``__graph_writes__`` (as bulk loads are ``__bulk_insert__``), so an audit can tell the
saver's direct writes from reducer calls. The semantics are the reducers': both apply
the agent layer's rules (``store_checkpoint``, ``store_write``, ``head_change`` in
``agents/checkpoints.py``): a checkpoint id already stored is replaced; a regular write
(``idx`` >= 0) is kept as first stored, a special one replaced; the thread's head moves
only forward. The saver's tests run both ways.

The rows are built in the column order of the agent layer's tables, checked once per
table schema (a module update gives the table a new schema object); a module whose
tables differ is written through the reducers instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from cosmictron.agents.checkpoints import head_change, store_checkpoint, store_write
from cosmictron.host import Database

CHECKPOINT_RECORD = "__graph_checkpoint__"
"""The reducer name the log records for an embedded saver's ``put``."""
WRITES_RECORD = "__graph_writes__"
"""The reducer name the log records for an embedded saver's ``put_writes``."""

CHECKPOINT_COLUMNS = (
    "thread_id",
    "checkpoint_ns",
    "checkpoint_id",
    "parent_checkpoint_id",
    "run_id",
    "checkpoint_type",
    "checkpoint",
    "metadata_type",
    "metadata",
)
WRITE_COLUMNS = (
    "thread_id",
    "checkpoint_ns",
    "checkpoint_id",
    "task_id",
    "idx",
    "task_path",
    "channel",
    "value_type",
    "value",
)
HEAD_COLUMNS = ("thread_id", "checkpoint_ns", "checkpoint_id")
_LAYOUTS = {
    "graph_checkpoint": (CHECKPOINT_COLUMNS, ("thread_id", "checkpoint_ns", "checkpoint_id")),
    "graph_checkpoint_write": (
        WRITE_COLUMNS,
        ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"),
    ),
    "graph_thread_head": (HEAD_COLUMNS, ("thread_id", "checkpoint_ns")),
}


class _NotOurs(Exception):
    """The database's tables are not the agent layer's: roll back, use the reducer."""


def _text(value: Any) -> str:
    return value if type(value) is str else str(value)


def _blob(value: Any) -> bytes:
    """A serializer's bytes as the ``bytes`` column stores them (a custom serde may hand
    back a ``bytearray`` or ``memoryview``)."""
    return value if type(value) is bytes else bytes(value)


class RowWriter:
    """Writes a saver's checkpoints and writes into an embedded database's tables."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._checked: dict[str, Any] = {}
        """Table name -> the schema object whose layout was found to be ours."""

    def _table(self, datastore: Any, name: str) -> Any:
        """The datastore's table ``name`` if it has the agent layer's columns and key
        (checked once per schema object); raises ``_NotOurs`` otherwise."""
        table = datastore.tables.get(name)
        if table is None:
            raise _NotOurs(name)
        schema = table.schema
        if self._checked.get(name) is not schema:
            columns, key = _LAYOUTS[name]
            if tuple(schema.column_names) != columns or tuple(schema.primary_key) != key:
                raise _NotOurs(name)
            self._checked[name] = schema
        return table

    def put_checkpoint(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        parent_checkpoint_id: str,
        run_id: str,
        checkpoint_type: str,
        checkpoint: bytes,
        metadata_type: str,
        metadata: bytes,
    ) -> None:
        """``put_graph_checkpoint``'s effect as one transaction: store the checkpoint
        (replacing one with its id) and move the thread's head to it if it is newer."""
        row = (
            _text(thread_id),
            _text(checkpoint_ns),
            _text(checkpoint_id),
            _text(parent_checkpoint_id),
            _text(run_id),
            _text(checkpoint_type),
            _blob(checkpoint),
            _text(metadata_type),
            _blob(metadata),
        )
        head = row[:3]

        def write(tx: Any, datastore: Any) -> None:
            checkpoints = self._table(datastore, "graph_checkpoint")
            heads = self._table(datastore, "graph_thread_head")
            store_checkpoint(
                partial(tx.insert, checkpoints), partial(tx.replace, checkpoints, head), row
            )
            key = head[:2]
            held = heads.rows.get(key)
            change = head_change(None if held is None else held[2], head[2], only_if_newer=True)
            if change == "insert":
                tx.insert(heads, head)
            elif change == "update":
                tx.replace(heads, key, head)
            elif change == "delete":
                tx.delete(heads, key)

        try:
            self.db.run_transaction(CHECKPOINT_RECORD, write, lambda _: list(head))
        except _NotOurs:  # rolled back, nothing written
            self.db.call("put_graph_checkpoint", *row)

    def put_writes(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        task_id: str,
        task_path: str,
        idxs: Sequence[int],
        channels: Sequence[str],
        value_types: Sequence[str],
        values: Sequence[bytes],
    ) -> None:
        """``put_graph_writes``'s effect as one transaction: each write stored, a regular
        one (``idx`` >= 0) kept as first stored, a special one replaced."""
        prefix = (_text(thread_id), _text(checkpoint_ns), _text(checkpoint_id), _text(task_id))
        path = _text(task_path)
        rows = []
        writes = zip(idxs, channels, value_types, values, strict=True)
        for idx, channel, value_type, value in writes:
            if type(idx) is not int:
                raise TypeError(f"put_writes: a write index must be an int, got {idx!r}")
            rows.append((*prefix, idx, path, _text(channel), _text(value_type), _blob(value)))

        def write(tx: Any, datastore: Any) -> None:
            table = self._table(datastore, "graph_checkpoint_write")
            insert = partial(tx.insert, table)
            for row in rows:
                store_write(insert, partial(tx.replace, table, row[:5]), row, row[4])

        try:
            self.db.run_transaction(WRITES_RECORD, write, lambda _: list(prefix))
        except _NotOurs:  # rolled back, nothing written
            self.db.call(
                "put_graph_writes",
                *prefix,
                path,
                [row[4] for row in rows],
                [row[6] for row in rows],
                [row[7] for row in rows],
                [row[8] for row in rows],
            )
