"""Semantic memory: ``remember`` and ``remember_many`` (reducers: the vectors are their
arguments), ``forget``, ``remember_text`` and ``recall`` (procedures: they embed text
before their transaction).

Why the split: embedding runs a model, which is slow and must never run on replay, so it
happens outside every transaction (in the client, or in a procedure before ``with_tx``)
and the vector travels as an ordinary argument. The log then holds the vector, and
replay, backups and followers never need the model. The embedder of a module is the
value it binds to ``memory_embedder`` (docs/guide/agents.md, "Semantic memory").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cosmictron import limits
from cosmictron.agents.common import append_event, dumps, json_object
from cosmictron.agents.embedders import Embedder
from cosmictron.agents.errors import AgentError
from cosmictron.agents.rights import check_namespace, is_trusted, trusted_in
from cosmictron.agents.tables import MEMORY_DIMS, Embedding, Memory, MemoryHit
from cosmictron.agents.vector_index import VectorIndex, index_for
from cosmictron.module import CURRENT_DB, ProcedureContext, ReducerContext, procedure, reducer
from cosmictron.values import Timestamp

EMBEDDER_NAME = "memory_embedder"
"""The module-level name a module binds its embedder to."""

RECALL_TIMEOUT_S = 600.0
"""``recall``'s procedure timeout: the first call after an open builds the index from the
table (an HNSW build of 100k vectors takes tens of seconds on 2 busy cores)."""

FOREVER = None
"""``valid_to`` of a memory that is still valid (NULL in SQL)."""


@reducer
def remember(
    ctx: ReducerContext,
    namespace: str,
    text: str,
    embedding: Embedding,
    metadata: str = "{}",
    key: str = "",
    model_id: str = "",
    valid_from: Timestamp | None = None,
) -> int:
    """Store one memory; with a ``key``, supersede the current memory of that key.

    The superseded row keeps its text and gets ``valid_to`` = the new ``valid_from``, so
    ``recall(as_of=...)`` before that time still finds it. Returns the new row's id.
    """
    check_namespace(ctx.sender, is_trusted(ctx), namespace, "remember")
    meta = json_object(metadata, "metadata")
    start = ctx.timestamp if valid_from is None else valid_from
    superseded = supersede(ctx, namespace, key, start) if key else []
    row = Memory(
        id=0,
        namespace=namespace,
        key=key,
        text=text,
        metadata=dumps(meta),
        valid_from=start,
        valid_to=FOREVER,
        model_id=model_id,
        embedding=list(embedding),
    )
    stored: Memory = ctx.db.memory.insert(row)
    append_event(
        ctx,
        "",
        "",
        "memory.remembered",
        {"id": stored.id, "namespace": namespace, "key": key, "superseded": superseded},
    )
    return stored.id


@reducer
def remember_many(
    ctx: ReducerContext,
    namespace: str,
    texts: list[str],
    embeddings: list[Embedding],
    metadatas: list[str],
    keys: list[str],
    model_id: str = "",
) -> list[int]:
    """Store a batch of memories in one transaction (``remember`` for each, in order).

    The lists are parallel (``metadatas`` and ``keys`` may be empty: ``{}`` and no key
    for every memory). A batch is all or nothing, and costs one commit (one fsync) where
    a ``remember`` per memory cost one each. The namespace is scanned once for the
    batch's keys, not once per memory. A key repeated in the batch leaves its last
    memory current; the earlier ones are closed at the batch's own time, so no
    ``as_of`` sees them. Returns the new ids.
    """
    check_namespace(ctx.sender, is_trusted(ctx), namespace, "remember_many")
    count = len(texts)
    if len(embeddings) != count:
        raise AgentError(f"remember_many: {count} texts but {len(embeddings)} embeddings")
    for name, optional in (("metadatas", metadatas), ("keys", keys)):
        if optional and len(optional) != count:
            raise AgentError(f"remember_many: {count} texts but {len(optional)} {name}")
    metas = [dumps(json_object(m, "metadata")) for m in metadatas] if metadatas else []
    current: dict[str, list[Memory]] = {}
    wanted = {key for key in keys if key}
    if wanted:
        for row in ctx.db.memory.namespace.filter(namespace):
            if row.key in wanted and row.valid_to is FOREVER:
                current.setdefault(row.key, []).append(row)
    table = ctx.db.memory
    ids: list[int] = []
    for index in range(count):
        key = keys[index] if keys else ""
        superseded: list[int] = []
        for old in current.pop(key, []) if key else []:
            old.valid_to = ctx.timestamp
            table.id.update(old)
            superseded.append(old.id)
        stored: Memory = table.insert(
            Memory(
                id=0,
                namespace=namespace,
                key=key,
                text=texts[index],
                metadata=metas[index] if metas else "{}",
                valid_from=ctx.timestamp,
                valid_to=FOREVER,
                model_id=model_id,
                embedding=list(embeddings[index]),
            )
        )
        if key:
            current[key] = [stored]
        ids.append(stored.id)
        append_event(
            ctx,
            "",
            "",
            "memory.remembered",
            {"id": stored.id, "namespace": namespace, "key": key, "superseded": superseded},
        )
    return ids


@reducer
def forget(ctx: ReducerContext, namespace: str, key: str) -> int:
    """Close the current memory of ``key`` (nothing is deleted); returns how many closed."""
    if not key:
        raise AgentError("forget needs the key of the memory to close")
    check_namespace(ctx.sender, is_trusted(ctx), namespace, "forget")
    closed = supersede(ctx, namespace, key, ctx.timestamp)
    append_event(
        ctx, "", "", "memory.forgotten", {"namespace": namespace, "key": key, "ids": closed}
    )
    return len(closed)


def supersede(ctx: ReducerContext, namespace: str, key: str, at: Timestamp) -> list[int]:
    """Set ``valid_to`` = ``at`` on the still-valid memories of (namespace, key)."""
    closed = []
    for row in ctx.db.memory.namespace.filter(namespace):
        if row.key == key and row.valid_to is FOREVER:
            row.valid_to = at
            ctx.db.memory.id.update(row)
            closed.append(row.id)
    return closed


@procedure
def remember_text(
    ctx: ProcedureContext,
    namespace: str,
    text: str,
    metadata: str = "{}",
    key: str = "",
    valid_from: Timestamp | None = None,
) -> int:
    """Embed ``text`` with the module's ``memory_embedder``, then ``remember`` it."""
    embedder = module_embedder()
    vector = embed_one(embedder, text)
    model = embedder.model_id

    def store(tx: ReducerContext) -> int:
        stored: int = remember(tx, namespace, text, vector, metadata, key, model, valid_from)
        return stored

    return ctx.with_tx(store)


@procedure(timeout_s=RECALL_TIMEOUT_S)
def recall(
    ctx: ProcedureContext,
    namespace_prefix: str,
    query: str = "",
    k: int = 5,
    filter: str = "{}",
    as_of: Timestamp | None = None,
    vector: Embedding | None = None,
) -> list[MemoryHit]:
    """The ``k`` memories nearest ``query`` (text, embedded here) or ``vector``.

    Only memories whose namespace starts with ``namespace_prefix``, whose metadata has
    every key/value of ``filter`` (a JSON object), and that were valid at ``as_of``
    (default: now) are returned, best first, with their cosine similarity. A read: it
    takes no transaction and writes nothing to the log.
    """
    database = running_database()
    check_namespace(ctx.sender, trusted_in(database, ctx.sender), namespace_prefix, "recall")
    if vector is None and not query:
        raise AgentError("recall needs a query text or a vector")
    query_vector = embed_one(module_embedder(), query) if vector is None else list(vector)
    at = ctx.timestamp if as_of is None else as_of
    wanted = check_search(query_vector, k, filter)

    index = index_for(database, MEMORY_DIMS)
    with index.lock:  # the index lock, then the writer lock for short reads: never both ways
        new = database.read(lambda _: database.table("memory").id.filter(start=index.max_id + 1))
        if new:  # built or grown outside the writer lock: writers go on meanwhile
            index.add([row.id for row in new], [row.embedding for row in new])
        memory = database.table("memory")
        return database.read(
            lambda _: search(memory, index, namespace_prefix, query_vector, k, wanted, at)
        )


def search_memory(
    ctx: ReducerContext,
    namespace_prefix: str,
    vector: Sequence[float],
    k: int = 5,
    filter: str = "{}",
    as_of: Timestamp | None = None,
) -> list[MemoryHit]:
    """``recall``'s search inside a reducer (give it the vector: reducers do not embed).

    It sees the reducer's own writes. The shared index only ever holds committed rows
    (``recall`` tops it up), so rows newer than the index are scored here one by one.
    """
    wanted = check_search(vector, k, filter)
    at = ctx.timestamp if as_of is None else as_of
    memory = ctx.db.memory
    index = index_for(running_database(), MEMORY_DIMS)
    if not index.lock.acquire(blocking=False):  # a recall is building it: scan the table
        rows = [r for r in memory.iter() if visible(r, namespace_prefix, wanted, at)]
        scored = [hit(r, cosine(vector, r.embedding)) for r in rows]
        return sorted(scored, key=lambda h: -h.score)[:k]
    try:
        hits = search(memory, index, namespace_prefix, vector, k, wanted, at)
        newer = memory.id.filter(start=index.max_id + 1)
    finally:
        index.lock.release()
    hits += [
        hit(row, cosine(vector, row.embedding))
        for row in newer
        if visible(row, namespace_prefix, wanted, at)
    ]
    hits.sort(key=lambda h: -h.score)
    return hits[:k]


def check_search(vector: Sequence[float], k: int, filter: str) -> dict[str, Any]:
    """Refuse a bad search before any work; returns the parsed filter."""
    if not 1 <= k <= limits.memory_recall_k_max:
        raise AgentError(
            f"recall k must be 1..{limits.memory_recall_k_max} "
            f"(limits.memory_recall_k_max), got {k}"
        )
    if len(vector) != MEMORY_DIMS:
        raise AgentError(f"recall needs a vector of {MEMORY_DIMS} numbers, got {len(vector)}")
    return json_object(filter, "filter")


def search(
    memory: Any,
    index: VectorIndex,
    namespace_prefix: str,
    vector: Sequence[float],
    k: int,
    wanted: dict[str, Any],
    at: Timestamp,
) -> list[MemoryHit]:
    """Walk the index's candidates best first and keep the first ``k`` visible ones.

    The scores are the index's: exact cosine similarity of the stored vectors (HNSW
    only chooses which vectors are looked at, not their distance), computed in float32.

    When too few candidates are visible the set is widened and walked again, skipping
    the ids already checked. Not by position: vectors tied at the old cut may come back
    in another order (``argpartition`` picks any of equal scores, HNSW any of equal
    distances), so the first ``count`` of the wider list are not the ones checked.
    """
    hits: list[MemoryHit] = []
    count = max(4 * k, 32)
    checked: set[int] = set()
    while True:
        candidates = index.top(vector, count)
        for memory_id, score in candidates:
            if memory_id in checked:
                continue
            checked.add(memory_id)
            row = memory.id.find(memory_id)
            if row is not None and visible(row, namespace_prefix, wanted, at):
                hits.append(hit(row, score))
                if len(hits) == k:
                    return hits
        if len(candidates) < count:  # the index has no more
            return hits
        count *= 4


def visible(row: Memory, namespace_prefix: str, wanted: dict[str, Any], at: Timestamp) -> bool:
    """In the namespace, valid at ``at``, and matching the metadata filter."""
    if not row.namespace.startswith(namespace_prefix):
        return False
    if not (row.valid_from <= at and (row.valid_to is None or at < row.valid_to)):
        return False
    return not wanted or matches(row.metadata, wanted)


def running_database() -> Any:
    database = CURRENT_DB.get(None)
    if database is None:
        raise AgentError("semantic memory search runs inside a database call")
    return database


def matches(metadata: str, wanted: dict[str, Any]) -> bool:
    try:
        have = json.loads(metadata)
    except ValueError:
        return False
    return isinstance(have, dict) and all(have.get(k) == v for k, v in wanted.items())


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = sum(x * x for x in a) ** 0.5
    nb = sum(y * y for y in b) ** 0.5
    return dot / (na * nb) if na and nb else 0.0


def hit(row: Memory, score: float) -> MemoryHit:
    return MemoryHit(
        id=row.id,
        namespace=row.namespace,
        key=row.key,
        text=row.text,
        metadata=row.metadata,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        score=score,
    )


def module_embedder() -> Embedder:
    """The embedder the running database's module binds to ``memory_embedder``."""
    database = CURRENT_DB.get(None)
    found = None if database is None else vars(database.module.namespace).get(EMBEDDER_NAME)
    if found is None:
        raise AgentError(
            f"this module has no embedder: bind one to {EMBEDDER_NAME!r} in the module, "
            f"e.g. {EMBEDDER_NAME} = MiniLMEmbedder(), or pass a vector"
        )
    if not isinstance(found, Embedder) or found.dims != MEMORY_DIMS:
        raise AgentError(
            f"{EMBEDDER_NAME} must have model_id, dims == {MEMORY_DIMS} and embed(texts)"
        )
    return found


def embed_one(embedder: Embedder, text: str) -> list[float]:
    vectors = embedder.embed([text])
    if len(vectors) != 1 or len(vectors[0]) != MEMORY_DIMS:
        raise AgentError(f"{embedder.model_id} returned no {MEMORY_DIMS}-number vector")
    return list(vectors[0])
