"""Graph checkpoints: the tables and reducers behind LangGraph's ``CosmictronSaver``.

A LangGraph checkpointer stores, per thread and namespace, a chain of checkpoints (each
naming its parent) and the pending writes of the tasks of each step. Here both are rows
of the agent layer (``graph_checkpoint``, ``graph_checkpoint_write``), so they are
persisted, replayed after a crash and signed by the ledger with everything else. The
values are opaque bytes serialized by the saver's serde (``dumps_typed``): the database
never unpickles or interprets them, and replay needs no LangGraph. Each saver operation
is one reducer, so one transaction: a checkpoint and its run id, a step's writes, a
thread's deletion or copy happen entirely or not at all.

The tables are private (a checkpoint holds the whole conversation state): the saver reads
them as the database's owner (embedded, or over the SDK with the owner's token).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from cosmictron.errors import Conflict, PermissionDenied
from cosmictron.module import CURRENT_DB, Index, ReducerContext, reducer, table, type_


@table(
    name="graph_checkpoint",
    primary_key=("thread_id", "checkpoint_ns", "checkpoint_id"),
    indexes=[
        Index("thread", ("thread_id",)),
        Index("run", ("run_id",)),
    ],
)
class GraphCheckpoint:
    """One LangGraph checkpoint (``checkpoint_id`` sorts by time: LangGraph's uuid6)."""

    thread_id: str = ""
    checkpoint_ns: str = ""
    checkpoint_id: str = ""
    parent_checkpoint_id: str = ""
    run_id: str = ""
    checkpoint_type: str = ""
    checkpoint: bytes = b""
    metadata_type: str = ""
    metadata: bytes = b""


@table(
    name="graph_checkpoint_write",
    primary_key=("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"),
    indexes=[
        Index("thread", ("thread_id",)),
        Index("checkpoint", ("thread_id", "checkpoint_ns", "checkpoint_id")),
    ],
)
class GraphCheckpointWrite:
    """One pending write of a task at a checkpoint (``idx`` < 0: a special channel such
    as an error or an interrupt, which a later write of the same task replaces)."""

    thread_id: str = ""
    checkpoint_ns: str = ""
    checkpoint_id: str = ""
    task_id: str = ""
    idx: int = 0
    task_path: str = ""
    channel: str = ""
    value_type: str = ""
    value: bytes = b""


@table(
    name="graph_thread_head",
    primary_key=("thread_id", "checkpoint_ns"),
    indexes=[Index("thread", ("thread_id",))],
)
class GraphThreadHead:
    """The newest checkpoint of each thread and namespace, kept by the reducers below so
    that "resume this thread" is two key lookups, not a scan of the thread's history."""

    thread_id: str = ""
    checkpoint_ns: str = ""
    checkpoint_id: str = ""


@type_
class GraphWrite:
    """A pending write: its index, channel and serialized value (``put_graph_writes``
    takes these as parallel lists)."""

    idx: int = 0
    channel: str = ""
    value_type: str = ""
    value: bytes = b""


PRUNE_STRATEGIES = ("keep_latest", "delete")


def require_owner(ctx: ReducerContext, what: str) -> None:
    """Checkpoints are the owner's, for writing as for reading (the tables are
    private): another identity could otherwise rewrite or delete any thread's state."""
    database = CURRENT_DB.get(None)
    owner = getattr(database, "owner", None)
    if owner is not None and ctx.sender != owner:
        raise PermissionDenied(
            f"{what}: graph checkpoints belong to the database's owner; connect "
            f"CosmictronSaver with the owner's token (caller {ctx.sender})"
        )


def _refresh_head(ctx: ReducerContext, thread_id: str, checkpoint_ns: str) -> None:
    """Recompute a namespace's head after checkpoints were removed or copied in."""
    newest = ""
    for checkpoint in ctx.db.graph_checkpoint.thread.filter(thread_id):
        if checkpoint.checkpoint_ns == checkpoint_ns and checkpoint.checkpoint_id > newest:
            newest = checkpoint.checkpoint_id
    _set_head(ctx, thread_id, checkpoint_ns, newest, only_if_newer=False)


Row = TypeVar("Row")
HeadChange = Literal["insert", "update", "delete"] | None
"""What a namespace's head row needs: inserted, updated, deleted, or nothing."""


def store_checkpoint(
    insert: Callable[[Row], object], replace: Callable[[Row], object], row: Row
) -> None:
    """The rule for a checkpoint stored again: its id already stored is replaced, as
    LangGraph's own savers do. One function for the reducer and the embedded saver's
    direct writes (``integrations/langgraph_rows.py``), which must not drift apart.

    A new id is the rule: insert, and replace only when the key is taken (nothing was
    stored then: the insert checks the key before writing)."""
    try:
        insert(row)
    except Conflict:
        replace(row)


def store_write(
    insert: Callable[[Row], object], replace: Callable[[Row], object], row: Row, idx: int
) -> None:
    """The rule for a pending write stored again: a regular one (``idx`` >= 0) is kept
    as first stored, so a task retried after a crash cannot change what the step already
    recorded; a special one (``idx`` < 0: an error, an interrupt) is replaced, as
    LangGraph's own savers do. Shared as ``store_checkpoint`` is."""
    try:  # new writes are the rule: no lookup first
        insert(row)
    except Conflict:  # nothing was stored
        if idx < 0:
            replace(row)


def head_change(held: str | None, checkpoint_id: str, only_if_newer: bool) -> HeadChange:
    """What moving a namespace's head (now ``held``, None without a head row) to
    ``checkpoint_id`` needs. A put moves it only forward (``only_if_newer``: a late put
    of an older checkpoint leaves "resume" at the newest); a recount after deletes or
    copies sets it to whatever is newest, and "" (no checkpoint left) removes the row.
    Shared as ``store_checkpoint`` is."""
    if held is None:
        return "insert" if checkpoint_id else None
    if not checkpoint_id:
        return "delete"
    if not only_if_newer or checkpoint_id > held:
        return "update"
    return None


def _set_head(
    ctx: ReducerContext, thread_id: str, checkpoint_ns: str, checkpoint_id: str, only_if_newer: bool
) -> None:
    heads = ctx.db.graph_thread_head.primary_key
    head = heads.find((thread_id, checkpoint_ns))
    change = head_change(None if head is None else head.checkpoint_id, checkpoint_id, only_if_newer)
    if change == "insert":
        ctx.db.graph_thread_head.insert(GraphThreadHead(thread_id, checkpoint_ns, checkpoint_id))
    elif change == "delete":
        ctx.db.graph_thread_head.delete(head)
    elif change == "update":
        head.checkpoint_id = checkpoint_id
        heads.update(head)


@reducer
def put_graph_checkpoint(
    ctx: ReducerContext,
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
    """Store a checkpoint (replacing one with the same id, as LangGraph's savers do)."""
    require_owner(ctx, "put_graph_checkpoint")
    row = GraphCheckpoint(
        thread_id,
        checkpoint_ns,
        checkpoint_id,
        parent_checkpoint_id,
        run_id,
        checkpoint_type,
        checkpoint,
        metadata_type,
        metadata,
    )
    table = ctx.db.graph_checkpoint
    store_checkpoint(table.insert, table.primary_key.update, row)
    _set_head(ctx, thread_id, checkpoint_ns, checkpoint_id, only_if_newer=True)


@reducer
def put_graph_writes(
    ctx: ReducerContext,
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str,
    task_id: str,
    task_path: str,
    idxs: list[int],
    channels: list[str],
    value_types: list[str],
    values: list[bytes],
) -> None:
    """Store a task's writes at a checkpoint, all in one transaction.

    The writes come as parallel lists (index, channel, serializer type, serialized
    value): plain values the call checks in one pass each, where a list of
    ``GraphWrite`` objects cost an object built, checked field by field and taken apart
    again per write. A write stored again follows ``store_write``.
    """
    require_owner(ctx, "put_graph_writes")
    count = len(idxs)
    if not len(channels) == len(value_types) == len(values) == count:
        raise ValueError(
            f"put_graph_writes: {count} idxs, {len(channels)} channels, "
            f"{len(value_types)} value_types and {len(values)} values (parallel lists)"
        )
    table = ctx.db.graph_checkpoint_write
    for idx, channel, value_type, value in zip(idxs, channels, value_types, values, strict=True):
        row = GraphCheckpointWrite(
            thread_id,
            checkpoint_ns,
            checkpoint_id,
            task_id,
            idx,
            task_path,
            channel,
            value_type,
            value,
        )
        store_write(table.insert, table.primary_key.update, row, idx)


def _delete_writes_of(ctx: ReducerContext, checkpoint: GraphCheckpoint) -> None:
    key = (checkpoint.thread_id, checkpoint.checkpoint_ns, checkpoint.checkpoint_id)
    for write in list(ctx.db.graph_checkpoint_write.checkpoint.filter(key)):
        ctx.db.graph_checkpoint_write.delete(write)


@reducer
def delete_graph_thread(ctx: ReducerContext, thread_id: str) -> int:
    """Delete every checkpoint and write of a thread; returns how many checkpoints."""
    require_owner(ctx, "delete_graph_thread")
    checkpoints = list(ctx.db.graph_checkpoint.thread.filter(thread_id))
    for write in list(ctx.db.graph_checkpoint_write.thread.filter(thread_id)):
        ctx.db.graph_checkpoint_write.delete(write)
    for checkpoint in checkpoints:
        ctx.db.graph_checkpoint.delete(checkpoint)
    for head in list(ctx.db.graph_thread_head.thread.filter(thread_id)):
        ctx.db.graph_thread_head.delete(head)
    return len(checkpoints)


@reducer
def delete_graph_runs(ctx: ReducerContext, run_ids: list[str]) -> int:
    """Delete the checkpoints (and their writes) made by these runs, in every thread."""
    require_owner(ctx, "delete_graph_runs")
    deleted = 0
    touched: set[tuple[str, str]] = set()
    for run_id in dict.fromkeys(run_ids):
        if run_id == "":
            continue  # checkpoints without a run id are no run's
        for checkpoint in list(ctx.db.graph_checkpoint.run.filter(run_id)):
            _delete_writes_of(ctx, checkpoint)
            ctx.db.graph_checkpoint.delete(checkpoint)
            touched.add((checkpoint.thread_id, checkpoint.checkpoint_ns))
            deleted += 1
    for thread_id, checkpoint_ns in touched:
        _refresh_head(ctx, thread_id, checkpoint_ns)
    return deleted


@reducer
def copy_graph_thread(ctx: ReducerContext, source_thread_id: str, target_thread_id: str) -> int:
    """Copy every checkpoint and write of a thread to another (whole parent chains, so
    delta channels stay reconstructible); returns how many checkpoints were copied."""
    require_owner(ctx, "copy_graph_thread")
    if source_thread_id == target_thread_id:
        raise ValueError("copy_graph_thread: source and target are the same thread")
    checkpoints = list(ctx.db.graph_checkpoint.thread.filter(source_thread_id))
    for checkpoint in checkpoints:
        checkpoint.thread_id = target_thread_id
        handle = ctx.db.graph_checkpoint.primary_key
        key = (target_thread_id, checkpoint.checkpoint_ns, checkpoint.checkpoint_id)
        if handle.find(key) is None:
            ctx.db.graph_checkpoint.insert(checkpoint)
        else:
            handle.update(checkpoint)
    writes = ctx.db.graph_checkpoint_write.primary_key
    for write in list(ctx.db.graph_checkpoint_write.thread.filter(source_thread_id)):
        write.thread_id = target_thread_id
        write_key = (
            target_thread_id,
            write.checkpoint_ns,
            write.checkpoint_id,
            write.task_id,
            write.idx,
        )
        if writes.find(write_key) is None:
            ctx.db.graph_checkpoint_write.insert(write)
        else:
            writes.update(write)
    for checkpoint_ns in {c.checkpoint_ns for c in checkpoints}:
        _refresh_head(ctx, target_thread_id, checkpoint_ns)
    return len(checkpoints)


@reducer
def prune_graph_checkpoints(
    ctx: ReducerContext, thread_ids: list[str], strategy: str = "keep_latest"
) -> int:
    """Prune threads: ``keep_latest`` keeps each namespace's newest checkpoint (and its
    writes), ``delete`` removes everything; returns how many checkpoints were removed.

    ``keep_latest`` drops the ancestors of the kept checkpoint, so it is not safe for a
    graph that uses LangGraph's ``DeltaChannel`` (its values live in the ancestors'
    writes): the same caveat as LangGraph's own ``prune``.
    """
    require_owner(ctx, "prune_graph_checkpoints")
    if strategy not in PRUNE_STRATEGIES:
        raise ValueError(
            f"prune strategy must be one of {', '.join(PRUNE_STRATEGIES)}, got {strategy!r}"
        )
    removed = 0
    for thread_id in dict.fromkeys(thread_ids):
        checkpoints = list(ctx.db.graph_checkpoint.thread.filter(thread_id))
        keep: set[tuple[str, str]] = set()
        if strategy == "keep_latest":
            latest: dict[str, str] = {}
            for checkpoint in checkpoints:
                ns = checkpoint.checkpoint_ns
                if checkpoint.checkpoint_id > latest.get(ns, ""):
                    latest[ns] = checkpoint.checkpoint_id
            keep = set(latest.items())
        for checkpoint in checkpoints:
            if (checkpoint.checkpoint_ns, checkpoint.checkpoint_id) in keep:
                continue
            _delete_writes_of(ctx, checkpoint)
            ctx.db.graph_checkpoint.delete(checkpoint)
            removed += 1
        for checkpoint_ns in {c.checkpoint_ns for c in checkpoints}:
            _refresh_head(ctx, thread_id, checkpoint_ns)
    return removed
