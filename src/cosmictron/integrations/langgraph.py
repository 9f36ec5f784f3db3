"""``CosmictronSaver``: a LangGraph checkpointer whose checkpoints are Cosmictron rows.

Needs the ``langgraph`` extra (``pip install 'cosmictron[langgraph]'``). The database's
module must include the agent layer (``from cosmictron.agents import *``), whose
``graph_checkpoint`` and ``graph_checkpoint_write`` tables and ``put_graph_*`` reducers
(``agents/checkpoints.py``) do the storing: every saver write is one transaction,
durable under the database's fsync policy and replayed after a crash. Over the SDK it is
one reducer call; embedded, ``put`` and ``put_writes`` write the same rows directly
(``langgraph_rows.py``: the reducer's rules without a call bound around them).

Two ways to reach the database, one saver:

- ``CosmictronSaver(db)`` with an embedded ``Database``: calls run in process; the async
  methods run them on a worker thread so the event loop is never blocked.
- ``CosmictronSaver.from_url(url, database, token=...)``: over the SDK's WebSocket
  connection to a server, as the owner's token (the tables are private). The connection
  runs on an event loop of its own; the sync methods wait on it, the async ones await
  it without blocking the caller's loop.

Values are serialized by the saver's ``serde`` (LangGraph's ``JsonPlusSerializer`` by
default) before they leave the process, so the database stores opaque bytes.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

try:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import (
        WRITES_IDX_MAP,
        BaseCheckpointSaver,
        ChannelVersions,
        Checkpoint,
        CheckpointMetadata,
        CheckpointTuple,
        get_checkpoint_id,
        get_checkpoint_metadata,
    )
    from langgraph.checkpoint.serde.base import SerializerProtocol
except ImportError as exc:  # the core does not depend on LangGraph
    raise ImportError(
        f"cosmictron.integrations.langgraph needs LangGraph ({exc.name} is missing): "
        "pip install 'cosmictron[langgraph]'"
    ) from exc

from cosmictron.host import Database
from cosmictron.integrations.connection import EmbeddedConnection, RemoteConnection
from cosmictron.integrations.langgraph_rows import CHECKPOINT_COLUMNS, WRITE_COLUMNS, RowWriter

__all__ = ["CosmictronSaver"]

CHECKPOINT_SELECT = ", ".join(CHECKPOINT_COLUMNS)
WRITE_SELECT = ", ".join(WRITE_COLUMNS)

# A read hands the saver rows as tuples in the agent layer's column order
# (``langgraph_rows.CHECKPOINT_COLUMNS`` / ``WRITE_COLUMNS``): the stored rows as they
# are, in process, so a get builds no dict per row. Positions in those tuples:
_THREAD, _NS, _ID, _PARENT, _RUN, _CP_TYPE, _CP, _META_TYPE, _META = range(9)
_TASK_ID, _IDX, _TASK_PATH, _CHANNEL, _VALUE_TYPE, _VALUE = range(3, 9)


class _Where(NamedTuple):
    """Which checkpoints a read wants (None: any). A named tuple, not a frozen
    dataclass: one is made per ``get_tuple``, and a frozen dataclass's ``__init__``
    (an ``object.__setattr__`` per field) cost more than the key lookups."""

    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    before: str | None = None
    latest_only: bool = False

    def admits(self, row: _Row) -> bool:
        """Whether a checkpoint row is one the read wants."""
        return (
            (self.thread_id is None or row[_THREAD] == self.thread_id)
            and (self.checkpoint_ns is None or row[_NS] == self.checkpoint_ns)
            and (self.checkpoint_id is None or row[_ID] == self.checkpoint_id)
            and (self.before is None or row[_ID] < self.before)
        )


_Row = tuple[Any, ...]
"""A checkpoint or write row, in the agent layer's column order."""

_by_id = itemgetter(_ID)
_write_order = itemgetter(_TASK_PATH, _TASK_ID, _IDX)
"""The order of a checkpoint's pending writes (as the peer savers give them)."""


def _newest_first(rows: list[_Row], where: _Where) -> list[_Row]:
    rows.sort(key=_by_id, reverse=True)
    return rows[:1] if where.latest_only else rows


def _in_order(columns: tuple[str, ...], dicts: list[dict[str, Any]]) -> list[_Row]:
    """Query results (dicts by column name) as rows in the agent layer's column order."""
    return [tuple([d[c] for c in columns]) for d in dicts]


def _checkpoints_sql(where: _Where) -> tuple[str, dict[str, Any]]:
    conditions: list[str] = []
    params: dict[str, Any] = {}
    for column, value, op in (
        ("thread_id", where.thread_id, "="),
        ("checkpoint_ns", where.checkpoint_ns, "="),
        ("checkpoint_id", where.checkpoint_id, "="),
        ("checkpoint_id", where.before, "<"),
    ):
        if value is not None:
            name = f"p{len(params)}"
            conditions.append(f"{column} {op} :{name}")
            params[name] = value
    query = f"SELECT {CHECKPOINT_SELECT} FROM graph_checkpoint"
    if conditions:
        query += " WHERE " + " AND ".join(conditions)
    query += " ORDER BY checkpoint_id DESC"
    if where.latest_only:
        query += " LIMIT 1"
    return query, params


def _writes_sql(
    thread_id: str, checkpoint_ns: str | None, checkpoint_id: str | None
) -> tuple[str, dict[str, Any]]:
    query = f"SELECT {WRITE_SELECT} FROM graph_checkpoint_write WHERE thread_id = :t"
    params = {"t": thread_id}
    if checkpoint_ns is not None and checkpoint_id is not None:
        query += " AND checkpoint_ns = :ns AND checkpoint_id = :id"
        params.update(ns=checkpoint_ns, id=checkpoint_id)
    return query, params


_Found = tuple[_Row, list[_Row]]
"""A checkpoint row and the rows of its writes."""


class _Embedded(EmbeddedConnection):
    """A ``Database`` in this process (the integrations' shared ``EmbeddedConnection``),
    with the saver's reads."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._orders: dict[str, tuple[Any, tuple[int, ...] | None]] = {}
        self._rows = RowWriter(db)

    def put_checkpoint(self, *args: Any) -> None:
        """``put``'s rows in one transaction of their own (``langgraph_rows.py``)."""
        self._rows.put_checkpoint(*args)

    def put_writes(self, *args: Any) -> None:
        """``put_writes``'s rows in one transaction of their own."""
        self._rows.put_writes(*args)

    async def aput_checkpoint(self, *args: Any) -> None:
        await asyncio.to_thread(self._rows.put_checkpoint, *args)

    async def aput_writes(self, *args: Any) -> None:
        await asyncio.to_thread(self._rows.put_writes, *args)

    def _reorder(self, table: Any, columns: tuple[str, ...]) -> tuple[int, ...] | None:
        """Where each of ``columns`` is in ``table``'s stored rows; None when they are
        stored in that order already (the agent layer's tables), so rows are used as
        they are. Kept while the table's schema is the same object (a module update
        gives it a new one)."""
        kept = self._orders.get(table.name)
        if kept is None or kept[0] is not table.schema:
            names = tuple(table.schema.column_names)
            order = None if names == columns else tuple(names.index(c) for c in columns)
            kept = self._orders[table.name] = (table.schema, order)
        return kept[1]

    def _stored(self, table: Any, rows: list[_Row], columns: tuple[str, ...]) -> list[_Row]:
        order = self._reorder(table, columns)
        if order is None:
            return rows
        return [tuple([row[i] for i in order]) for row in rows]

    def _checkpoints_in(self, datastore: Any, where: _Where) -> list[_Row]:
        """Through the primary key, the head table or the thread index; SQL would
        project and weigh every row of the thread. The stored row tuples are read
        directly (the keys are built here from ``str`` values), not through table
        handles: their key checks and row objects were most of ``get_tuple``'s own
        time."""
        table = datastore.tables["graph_checkpoint"]
        rows = table.rows
        thread_id, ns = where.thread_id, where.checkpoint_ns or ""
        if thread_id is not None and where.checkpoint_id is not None:
            found = rows.get((thread_id, ns, where.checkpoint_id))
            candidates = [] if found is None else [found]
        elif where.latest_only and thread_id is not None:
            heads = datastore.tables["graph_thread_head"]
            head = heads.rows.get((thread_id, ns))
            newest = None if head is None else head[heads.schema.column_index("checkpoint_id")]
            found = None if newest is None else rows.get((thread_id, ns, newest))
            candidates = [] if found is None else [found]
        elif thread_id is not None:
            index = table.index_named("thread")
            candidates = [rows[key] for key in index.row_keys(thread_id)]
        else:
            candidates = list(rows.values())
        stored = self._stored(table, candidates, CHECKPOINT_COLUMNS)
        if len(stored) == 1:  # a key lookup (get_tuple): nothing to sort
            return stored if where.admits(stored[0]) else []
        return _newest_first([r for r in stored if where.admits(r)], where)

    def _writes_in(
        self,
        datastore: Any,
        thread_id: str,
        checkpoint_ns: str | None,
        checkpoint_id: str | None,
    ) -> list[_Row]:
        table = datastore.tables["graph_checkpoint_write"]
        rows = table.rows
        if checkpoint_ns is not None and checkpoint_id is not None:
            keys = table.index_named("checkpoint").row_keys(
                (thread_id, checkpoint_ns, checkpoint_id)
            )
        else:
            keys = table.index_named("thread").row_keys(thread_id)
        return self._stored(table, [rows[key] for key in keys], WRITE_COLUMNS)

    def checkpoints(self, where: _Where) -> list[_Row]:
        """The checkpoints ``where`` names, newest first, under the writer lock (no
        commit is half-seen)."""
        result: list[_Row] = self.db.read(lambda datastore: self._checkpoints_in(datastore, where))
        return result

    def writes_of(
        self, thread_id: str, checkpoint_ns: str | None, checkpoint_id: str | None
    ) -> list[_Row]:
        result: list[_Row] = self.db.read(
            lambda datastore: self._writes_in(datastore, thread_id, checkpoint_ns, checkpoint_id)
        )
        return result

    def checkpoint_with_writes(self, where: _Where) -> _Found | None:
        """``get_tuple``'s rows: the checkpoint ``where`` names and its writes, read
        under one hold of the lock (so from one commit)."""

        def read(datastore: Any) -> _Found | None:
            rows = self._checkpoints_in(datastore, where)
            if not rows:
                return None
            row = rows[0]
            return row, self._writes_in(datastore, row[_THREAD], row[_NS], row[_ID])

        found: _Found | None = self.db.read(read)
        return found

    async def acheckpoint_with_writes(self, where: _Where) -> _Found | None:
        return await asyncio.to_thread(self.checkpoint_with_writes, where)

    async def acheckpoints(self, where: _Where) -> list[_Row]:
        return await asyncio.to_thread(self.checkpoints, where)

    async def awrites_of(
        self, thread_id: str, checkpoint_ns: str | None, checkpoint_id: str | None
    ) -> list[_Row]:
        return await asyncio.to_thread(self.writes_of, thread_id, checkpoint_ns, checkpoint_id)


class _Remote(RemoteConnection):
    """An SDK connection to a server's database (the integrations' shared
    ``RemoteConnection``: an event loop thread of its own), with the saver's reads."""

    def put_checkpoint(self, *args: Any) -> None:
        """One call of the agent layer's reducer: one transaction on the server."""
        self.call("put_graph_checkpoint", *args)

    def put_writes(self, *args: Any) -> None:
        self.call("put_graph_writes", *args)

    async def aput_checkpoint(self, *args: Any) -> None:
        await self.acall("put_graph_checkpoint", *args)

    async def aput_writes(self, *args: Any) -> None:
        await self.acall("put_graph_writes", *args)

    async def _checkpoint_rows(self, where: _Where) -> list[_Row]:
        return _in_order(CHECKPOINT_COLUMNS, await self.client.sql(*_checkpoints_sql(where)))

    async def _write_rows(
        self, thread_id: str, checkpoint_ns: str | None, checkpoint_id: str | None
    ) -> list[_Row]:
        query, params = _writes_sql(thread_id, checkpoint_ns, checkpoint_id)
        return _in_order(WRITE_COLUMNS, await self.client.sql(query, params))

    def checkpoints(self, where: _Where) -> list[_Row]:
        """By one-off queries on the connection: they follow every write acknowledged
        before them."""
        return self.wait(self.acheckpoints_on_loop(where))

    def checkpoint_with_writes(self, where: _Where) -> _Found | None:
        return self.wait(self._checkpoint_with_writes_on_loop(where))

    async def acheckpoint_with_writes(self, where: _Where) -> _Found | None:
        return await self.awaited(self._checkpoint_with_writes_on_loop(where))

    async def _checkpoint_with_writes_on_loop(self, where: _Where) -> _Found | None:
        """The checkpoint and its writes as two queries in flight at once (one round
        trip when the id is known; the head lookup first otherwise), where asking for
        the writes after the checkpoint took a round trip more. Each query follows
        every write acknowledged before it; a write landing between the two can only
        add writes of this checkpoint, which a later read would show as well."""
        if where.thread_id is None or where.checkpoint_ns is None:
            rows = await self.acheckpoints_on_loop(where)
            if not rows:
                return None
            row = rows[0]
            return row, await self._write_rows(row[_THREAD], row[_NS], row[_ID])
        resolved = await self._resolve_head(where)
        if resolved is None or resolved.checkpoint_id is None:
            return None
        rows, writes = await asyncio.gather(
            self._checkpoint_rows(resolved),
            self._write_rows(where.thread_id, where.checkpoint_ns, resolved.checkpoint_id),
        )
        return (rows[0], writes) if rows else None

    async def _resolve_head(self, where: _Where) -> _Where | None:
        """``where`` with the id of the newest checkpoint, when it asks for the newest
        of a thread and namespace (None when there is none); as it is otherwise."""
        if not (where.latest_only and where.thread_id is not None and where.checkpoint_id is None):
            return where
        # the head table names the newest: two key lookups instead of a sort
        heads = await self.client.sql(
            "SELECT checkpoint_id FROM graph_thread_head "
            "WHERE thread_id = :t AND checkpoint_ns = :ns",
            {"t": where.thread_id, "ns": where.checkpoint_ns or ""},
        )
        return where._replace(checkpoint_id=heads[0]["checkpoint_id"]) if heads else None

    async def acheckpoints_on_loop(self, where: _Where) -> list[_Row]:
        resolved = await self._resolve_head(where)
        return [] if resolved is None else await self._checkpoint_rows(resolved)

    def writes_of(
        self, thread_id: str, checkpoint_ns: str | None, checkpoint_id: str | None
    ) -> list[_Row]:
        return self.wait(self._write_rows(thread_id, checkpoint_ns, checkpoint_id))

    async def acheckpoints(self, where: _Where) -> list[_Row]:
        return await self.awaited(self.acheckpoints_on_loop(where))

    async def awrites_of(
        self, thread_id: str, checkpoint_ns: str | None, checkpoint_id: str | None
    ) -> list[_Row]:
        return await self.awaited(self._write_rows(thread_id, checkpoint_ns, checkpoint_id))


def _blob(value: Any) -> bytes:
    """A bytes column as a row gives it: bytes in process, hex text over the SDK."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return bytes.fromhex(value)
    return bytes(value)


class CosmictronSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer storing checkpoints and writes in Cosmictron tables.

    ``CosmictronSaver(db)`` for an embedded ``Database``;
    ``CosmictronSaver.from_url(url, database, token=...)`` for a server. Supports
    LangGraph's whole checkpointer interface, sync and async: ``put``, ``put_writes``,
    ``get_tuple``, ``list``, ``delete_thread``, ``delete_for_runs``, ``copy_thread`` and
    ``prune``. Use it as a context manager (or call ``close``) to close a connection
    it opened.
    """

    def __init__(
        self,
        db: Database | _Embedded | _Remote,
        *,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._backend: _Embedded | _Remote = _Embedded(db) if isinstance(db, Database) else db

    @classmethod
    def from_url(
        cls,
        url: str,
        database: str,
        *,
        token: str | None = None,
        serde: SerializerProtocol | None = None,
    ) -> CosmictronSaver:
        """A saver over the SDK: ``url`` is the server's, ``token`` the database
        owner's (the checkpoint tables are private; without one, the token the CLI
        saved for this server)."""
        return cls(_Remote(url, database, token), serde=serde)

    def close(self) -> None:
        """Close the server connection ``from_url`` opened (an embedded database is
        the caller's to close)."""
        self._backend.close()

    def __enter__(self) -> CosmictronSaver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> CosmictronSaver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.close)

    # -- versions ---------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None = None) -> str:
        """A string that sorts after ``current``: a zero-padded counter, then a random
        fraction (so two writers of one version do not collide)."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # -- writes: each is one transaction ---------------------------------------------

    def _put_args(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
    ) -> tuple[tuple[Any, ...], RunnableConfig]:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        checkpoint_ns = str(configurable.get("checkpoint_ns", ""))
        parent_id = str(configurable.get("checkpoint_id") or "")
        merged = get_checkpoint_metadata(config, metadata)
        run_id = merged.get("run_id")
        checkpoint_type, checkpoint_bytes = self.serde.dumps_typed(checkpoint)
        metadata_type, metadata_bytes = self.serde.dumps_typed(merged)
        args = (
            thread_id,
            checkpoint_ns,
            checkpoint["id"],
            parent_id,
            "" if run_id is None else str(run_id),
            checkpoint_type,
            checkpoint_bytes,
            metadata_type,
            metadata_bytes,
        )
        stored: RunnableConfig = {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }
        return args, stored

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (with its channel values) and return its config."""
        args, stored = self._put_args(config, checkpoint, metadata)
        self._backend.put_checkpoint(*args)
        return stored

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        args, stored = self._put_args(config, checkpoint, metadata)
        await self._backend.aput_checkpoint(*args)
        return stored

    def _writes_args(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> tuple[Any, ...]:
        configurable = config["configurable"]
        idxs, channels, value_types, values = [], [], [], []
        dumps_typed = self.serde.dumps_typed
        for index, (channel, value) in enumerate(writes):
            value_type, value_bytes = dumps_typed(value)
            idxs.append(WRITES_IDX_MAP.get(channel, index))
            channels.append(channel)
            value_types.append(value_type)
            values.append(value_bytes)
        return (
            str(configurable["thread_id"]),
            str(configurable.get("checkpoint_ns", "")),
            str(configurable["checkpoint_id"]),
            task_id,
            task_path,
            idxs,
            channels,
            value_types,
            values,
        )

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes at the checkpoint of ``config``, in one transaction."""
        self._backend.put_writes(*self._writes_args(config, writes, task_id, task_path))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        args = self._writes_args(config, writes, task_id, task_path)
        await self._backend.aput_writes(*args)

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of a thread."""
        self._backend.call("delete_graph_thread", str(thread_id))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._backend.acall("delete_graph_thread", str(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) of these runs, in every thread."""
        self._backend.call("delete_graph_runs", [str(r) for r in run_ids])

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._backend.acall("delete_graph_runs", [str(r) for r in run_ids])

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread to another thread."""
        self._backend.call("copy_graph_thread", str(source_thread_id), str(target_thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._backend.acall("copy_graph_thread", str(source_thread_id), str(target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep each namespace's newest checkpoint; ``delete``: all.
        Not for graphs using ``DeltaChannel`` (see ``BaseCheckpointSaver.prune``)."""
        self._backend.call("prune_graph_checkpoints", [str(t) for t in thread_ids], strategy)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._backend.acall("prune_graph_checkpoints", [str(t) for t in thread_ids], strategy)

    # -- reads: the tables' indexes (in process) or a one-off SQL query (SDK) --------

    @staticmethod
    def _where(
        config: RunnableConfig | None, before: RunnableConfig | None, latest_only: bool
    ) -> _Where:
        thread_id = ns = checkpoint_id = None
        if config is not None:
            configurable = config["configurable"]
            thread_id = str(configurable["thread_id"])
            if configurable.get("checkpoint_ns") is not None or latest_only:
                ns = str(configurable.get("checkpoint_ns") or "")
            checkpoint_id = get_checkpoint_id(config) or None
        before_id = (get_checkpoint_id(before) or None) if before is not None else None
        return _Where(thread_id, ns, checkpoint_id, before_id, latest_only)

    def _pending_writes(
        self, rows: list[_Row], checkpoint_ns: str, checkpoint_id: str
    ) -> list[tuple[str, str, Any]]:
        mine = [r for r in rows if r[_ID] == checkpoint_id and r[_NS] == checkpoint_ns]
        if len(mine) > 1:
            mine.sort(key=_write_order)
        loads_typed = self.serde.loads_typed
        return [
            (r[_TASK_ID], r[_CHANNEL], loads_typed((r[_VALUE_TYPE], _blob(r[_VALUE]))))
            for r in mine
        ]

    def _tuple(self, row: _Row, writes: list[_Row]) -> CheckpointTuple:
        thread_id, ns, checkpoint_id, parent = row[_THREAD], row[_NS], row[_ID], row[_PARENT]
        loads_typed = self.serde.loads_typed
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": checkpoint_id,
                }
            },
            checkpoint=loads_typed((row[_CP_TYPE], _blob(row[_CP]))),
            metadata=loads_typed((row[_META_TYPE], _blob(row[_META]))),
            parent_config=(
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": ns,
                        "checkpoint_id": parent,
                    }
                }
                if parent
                else None
            ),
            pending_writes=self._pending_writes(writes, ns, checkpoint_id),
        )

    @staticmethod
    def _matches(metadata: Any, filter: dict[str, Any] | None) -> bool:
        return not filter or all(metadata.get(k) == v for k, v in filter.items())

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint of ``config`` (its ``checkpoint_id``, or the thread's latest in
        its namespace), with its pending writes; None when there is none."""
        found = self._backend.checkpoint_with_writes(self._where(config, None, latest_only=True))
        return None if found is None else self._tuple(*found)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        where = self._where(config, None, latest_only=True)
        found = await self._backend.acheckpoint_with_writes(where)
        return None if found is None else self._tuple(*found)

    def _select(
        self,
        rows: list[_Row],
        filter: dict[str, Any] | None,
        limit: int | None,
    ) -> list[_Row]:
        chosen: list[_Row] = []
        for row in rows:
            if limit is not None and len(chosen) >= limit:
                break
            if filter:
                metadata = self.serde.loads_typed((row[_META_TYPE], _blob(row[_META])))
                if not self._matches(metadata, filter):
                    continue
            chosen.append(row)
        return chosen

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first: of ``config``'s thread (and namespace, when given)
        or of every thread, whose metadata has ``filter``'s values, older than
        ``before``, at most ``limit``."""
        where = self._where(config, before, latest_only=False)
        rows = self._select(self._backend.checkpoints(where), filter, limit)
        writes: dict[str, list[_Row]] = {}
        for row in rows:
            thread_id = row[_THREAD]
            if thread_id not in writes:
                writes[thread_id] = self._backend.writes_of(thread_id, None, None)
            yield self._tuple(row, writes[thread_id])

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        where = self._where(config, before, latest_only=False)
        rows = self._select(await self._backend.acheckpoints(where), filter, limit)
        writes: dict[str, list[_Row]] = {}
        for row in rows:
            thread_id = row[_THREAD]
            if thread_id not in writes:
                writes[thread_id] = await self._backend.awrites_of(thread_id, None, None)
            yield self._tuple(row, writes[thread_id])


# CosmictronStore lives in a module of its own; both are public here (DESIGN.md §8).
from cosmictron.integrations.langgraph_store import CosmictronStore  # noqa: E402

__all__ += ["CosmictronStore"]
