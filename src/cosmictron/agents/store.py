"""LangGraph's long-term store as rows: items in ``store_item``, their vectors in ``memory``.

Behind ``cosmictron.integrations.langgraph.CosmictronStore``. An item (a namespace, a key,
a JSON object) is one ``store_item`` row; each of its indexed text fields is embedded by
the client (never here: replay must not run a model) and stored as a ``memory`` row in
the namespace ``store:<labels joined by '.'>`` with the item's key, so a store search
walks the same vector index as ``recall`` and an item's old vectors are superseded, not
deleted, when it changes. Writes are one reducer call per batch (one transaction); reads
are procedures, so they take no transaction and log nothing, except to refresh a TTL.

Time-to-live: an item with ``ttl_minutes`` expires ``ttl_minutes`` after its last write
(or its last read, when the read asks to refresh). Expired items are invisible at once to
every read; ``store_sweep`` deletes them (the integration calls it on demand or on a
timer).

The table is private and the reducers are the owner's, like graph checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cosmictron.agents.checkpoints import require_owner
from cosmictron.agents.common import dumps
from cosmictron.agents.errors import AgentError
from cosmictron.agents.memory import RECALL_TIMEOUT_S, running_database, supersede
from cosmictron.agents.tables import MEMORY_DIMS, Memory
from cosmictron.agents.vector_index import index_for
from cosmictron.module import (
    Index,
    ProcedureContext,
    ReducerContext,
    procedure,
    reducer,
    table,
    type_,
)
from cosmictron.module import field as column
from cosmictron.values import TimeDuration, Timestamp

MEMORY_NAMESPACE = "store:"
"""The prefix of the memory namespaces holding store vectors (apart from agents' own)."""

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")


@table(
    name="store_item",
    indexes=[
        Index("item", ("namespace", "key"), unique=True),
        Index("by_namespace", ("namespace",)),
    ],
)
class StoreItem:
    """One item of a LangGraph store. ``id`` keeps insertion order (an update keeps it),
    the order of a search without a query; ``namespace`` is the labels joined by '.'
    (LangGraph forbids '.' in a label)."""

    id: int = column(primary_key=True, auto_inc=True)
    namespace: str = ""
    key: str = ""
    value: str = "{}"
    created_at: Timestamp = column(default=Timestamp(0))
    updated_at: Timestamp = column(default=Timestamp(0))
    ttl_minutes: float | None = None
    expires_at: Timestamp | None = None


@type_
class StoreVector:
    """The embedding of one indexed field (``path``: LangGraph's, e.g. ``text`` or
    ``tags.0``); at most ``MEMORY_DIMS`` numbers, zero-padded to it."""

    path: str = ""
    embedding: list[float] = column(default=[])


@type_
class StorePut:
    """One put (``delete`` true: remove the item)."""

    namespace: str = ""
    key: str = ""
    value: str = "{}"
    delete: bool = False
    ttl_minutes: float | None = None
    vectors: list[StoreVector] = column(default=[])


def _after_minutes(at: Timestamp, minutes: float) -> Timestamp:
    return at + TimeDuration(round(minutes * 60_000_000))


def live(item: StoreItem, now: Timestamp) -> bool:
    return item.expires_at is None or now < item.expires_at


def in_prefix(namespace: str, prefix: str) -> bool:
    return not prefix or namespace == prefix or namespace.startswith(prefix + ".")


def _padded(vector: Sequence[float]) -> list[float]:
    if not 0 < len(vector) <= MEMORY_DIMS:
        raise AgentError(
            f"a store vector has 1..{MEMORY_DIMS} numbers, got {len(vector)} "
            "(the index's dims must fit the memory column)"
        )
    return [float(v) for v in vector] + [0.0] * (MEMORY_DIMS - len(vector))


@reducer
def store_write(ctx: ReducerContext, puts: list[StorePut]) -> int:
    """Apply a batch of puts and deletes in one transaction; returns how many."""
    require_owner(ctx, "store_write")
    items = ctx.db.store_item
    now = ctx.timestamp
    for put in puts:
        if not put.key:
            raise AgentError("a store item needs a non-empty key")
        existing = items.item.find((put.namespace, put.key))
        supersede(ctx, MEMORY_NAMESPACE + put.namespace, put.key, now)
        if put.delete:
            if existing is not None:
                items.delete(existing)
            continue
        value = json.loads(put.value)
        if not isinstance(value, dict):
            raise AgentError(f"a store value is a JSON object, got {type(value).__name__}")
        if put.ttl_minutes is not None and put.ttl_minutes <= 0:
            raise AgentError(f"ttl_minutes must be positive, got {put.ttl_minutes}")
        expires = None if put.ttl_minutes is None else _after_minutes(now, put.ttl_minutes)
        if existing is None:
            row = StoreItem(0, put.namespace, put.key, put.value, now, now)
            row.ttl_minutes, row.expires_at = put.ttl_minutes, expires
            items.insert(row)
        else:
            existing.value, existing.updated_at = put.value, now
            existing.ttl_minutes, existing.expires_at = put.ttl_minutes, expires
            items.id.update(existing)
        for vector in put.vectors:
            ctx.db.memory.insert(
                Memory(
                    id=0,
                    namespace=MEMORY_NAMESPACE + put.namespace,
                    key=put.key,
                    text="",
                    metadata=dumps({"path": vector.path}),
                    valid_from=now,
                    valid_to=None,
                    model_id="langgraph-store",
                    embedding=_padded(vector.embedding),
                )
            )
    return len(puts)


@reducer
def store_touch(ctx: ReducerContext, keys: list[list[str]]) -> int:
    """Restart the TTL of these ``[namespace, key]`` items (a read that refreshes)."""
    require_owner(ctx, "store_touch")
    touched = 0
    for namespace, key in keys:
        item = ctx.db.store_item.item.find((namespace, key))
        if item is not None and item.ttl_minutes is not None and live(item, ctx.timestamp):
            item.expires_at = _after_minutes(ctx.timestamp, item.ttl_minutes)
            ctx.db.store_item.id.update(item)
            touched += 1
    return touched


@reducer
def store_sweep(ctx: ReducerContext) -> int:
    """Delete expired items (and close their vectors); returns how many."""
    require_owner(ctx, "store_sweep")
    now = ctx.timestamp
    expired = [i for i in ctx.db.store_item.iter() if not live(i, now)]
    for item in expired:
        supersede(ctx, MEMORY_NAMESPACE + item.namespace, item.key, now)
        ctx.db.store_item.delete(item)
    return len(expired)


def _as_json(item: StoreItem, score: float | None = None) -> dict[str, Any]:
    found = {
        "namespace": item.namespace,
        "key": item.key,
        "value": item.value,
        "created_at": item.created_at.micros_since_epoch,
        "updated_at": item.updated_at.micros_since_epoch,
        "ttl": item.ttl_minutes is not None,
    }
    if score is not None:
        found["score"] = score
    return found


def _refresh(ctx: ProcedureContext, found: list[dict[str, Any]]) -> None:
    keys = [[f["namespace"], f["key"]] for f in found if f["ttl"]]
    if keys:
        ctx.with_tx(lambda tx: store_touch(tx, keys))


@procedure
def store_get(ctx: ProcedureContext, namespace: str, key: str, refresh: bool = False) -> str:
    """The item as JSON, or ``null`` when absent or expired."""
    database = running_database()
    require_owner_of_reads(ctx, database)

    def read(_: Any) -> dict[str, Any] | None:
        item = database.table("store_item").item.find((namespace, key))
        return None if item is None or not live(item, ctx.timestamp) else _as_json(item)

    found = database.read(read)
    if found is not None and refresh:
        _refresh(ctx, [found])
    return json.dumps(found)


def require_owner_of_reads(ctx: ProcedureContext, database: Any) -> None:
    owner = getattr(database, "owner", None)
    if owner is not None and ctx.sender != owner:
        from cosmictron.errors import PermissionDenied

        raise PermissionDenied(
            f"store items belong to the database's owner; connect CosmictronStore with the "
            f"owner's token (caller {ctx.sender})"
        )


@procedure(timeout_s=RECALL_TIMEOUT_S)  # as recall: the first search may build the index
def store_search(
    ctx: ProcedureContext,
    namespace_prefix: str,
    vector: list[float] | None = None,
    filter: str = "{}",
    limit: int = 10,
    offset: int = 0,
    refresh: bool = False,
) -> str:
    """Items under ``namespace_prefix`` matching ``filter`` (LangGraph's operators), as
    a JSON list: without ``vector`` in insertion order, with it best first by the
    highest cosine similarity of any of an item's vectors, then items with no vector."""
    database = running_database()
    require_owner_of_reads(ctx, database)
    wanted = json.loads(filter or "{}")
    if not isinstance(wanted, dict):
        raise AgentError("a store filter is a JSON object")
    if limit < 0 or offset < 0:
        raise AgentError(f"limit and offset must not be negative, got {limit} and {offset}")
    now = ctx.timestamp

    def admitted(item: StoreItem | None) -> bool:
        return (
            item is not None
            and in_prefix(item.namespace, namespace_prefix)
            and live(item, now)
            and (not wanted or matches(json.loads(item.value), wanted))
        )

    def in_order() -> list[StoreItem]:
        """Every admitted item under the prefix, in insertion order."""
        chosen = [i for i in _items_under(database, namespace_prefix) if admitted(i)]
        chosen.sort(key=lambda i: i.id)
        return chosen

    if vector is None:
        found = database.read(lambda _: [_as_json(i) for i in in_order()])
        page = found[offset : offset + limit]
    else:
        page = _semantic_page(database, admitted, in_order, _padded(vector), limit, offset)
    if refresh:
        _refresh(ctx, page)
    return json.dumps(page)


def _items_under(database: Any, namespace_prefix: str) -> list[StoreItem]:
    """The items whose namespace is ``namespace_prefix`` or under it."""
    items = database.table("store_item")
    if not namespace_prefix:
        return list(items.iter())
    return [i for i in items.iter() if in_prefix(i.namespace, namespace_prefix)]


def _semantic_page(
    database: Any,
    admitted: Any,
    in_order: Any,
    vector: list[float],
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """A page of a search with a query: the memory index's nearest vectors first.

    The walk goes best first through the shared vector index (exact, or HNSW past
    ``limits.memory_exact_search_max``), as ``recall`` does, and looks up only the
    items those vectors belong to (one unique-index lookup each), checking the prefix,
    the TTL and the filter on them alone: the cost follows the page asked for, not the
    number of items in the namespace. Only when the index runs out before the page is
    full (few embedded items match) are the items read in order, to fill the page with
    the matching items that have no vector, as LangGraph's stores do.
    """
    need = offset + limit
    index = index_for(database, MEMORY_DIMS)
    with index.lock:  # as recall: the index lock, then the writer lock for short reads
        new = database.read(lambda _: database.table("memory").id.filter(start=index.max_id + 1))
        if new:
            index.add([row.id for row in new], [row.embedding for row in new])

        def walk(_: Any) -> list[dict[str, Any]]:
            memory = database.table("memory")
            items = database.table("store_item").item
            count = max(4 * need, 32)
            while True:
                # walk each longer candidate list from its start: two calls may order
                # vectors of equal score differently, so resuming at the previous end
                # could skip one that was cut at the boundary the first time
                hits = index.top(vector, count)
                order: list[tuple[StoreItem, float]] = []
                seen: set[tuple[str, str]] = set()
                for memory_id, score in hits:
                    row = memory.id.find(memory_id)
                    if row is None or row.valid_to is not None:
                        continue
                    if not row.namespace.startswith(MEMORY_NAMESPACE):
                        continue
                    found = (row.namespace[len(MEMORY_NAMESPACE) :], row.key)
                    if found in seen:
                        continue
                    seen.add(found)
                    item = items.find(found)
                    if admitted(item):
                        order.append((item, float(score)))
                        if len(order) >= need:
                            break
                exhausted = len(hits) < count
                if len(order) >= need or exhausted:
                    break
                count *= 4
            page = [_as_json(item, score) for item, score in order[offset:need]]
            if len(page) < limit and exhausted:  # fill with the unembedded, in order
                # the walk saw every indexed vector; rows newer than the index are few
                embedded = seen | {
                    (row.namespace[len(MEMORY_NAMESPACE) :], row.key)
                    for row in memory.id.filter(start=index.max_id + 1)
                    if row.valid_to is None and row.namespace.startswith(MEMORY_NAMESPACE)
                }
                rest = [i for i in in_order() if (i.namespace, i.key) not in embedded]
                # from the first, whatever the offset: LangGraph's InMemoryStore does so
                page += [_as_json(i) for i in rest[: limit - len(page)]]
            return page

        result: list[dict[str, Any]] = database.read(walk)
        return result


@procedure
def store_list_namespaces(
    ctx: ProcedureContext,
    conditions: str = "[]",
    max_depth: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> str:
    """The namespaces holding live items, sorted, as a JSON list of label lists.
    ``conditions``: ``[["prefix" | "suffix", [label or "*", ...]], ...]``."""
    database = running_database()
    require_owner_of_reads(ctx, database)
    parsed = json.loads(conditions)
    now = ctx.timestamp

    def read(_: Any) -> list[str]:
        return sorted({i.namespace for i in database.table("store_item").iter() if live(i, now)})

    names = [tuple(n.split(".")) for n in database.read(read)]
    names = [n for n in names if all(_namespace_matches(kind, p, n) for kind, p in parsed)]
    names = sorted({n[:max_depth] for n in names} if max_depth is not None else names)
    return json.dumps([list(n) for n in names[offset : offset + limit]])


def _namespace_matches(kind: str, path: list[str], namespace: tuple[str, ...]) -> bool:
    if len(namespace) < len(path):
        return False
    if kind == "prefix":
        pairs = zip(namespace, path, strict=False)
    elif kind == "suffix":
        pairs = zip(reversed(namespace), reversed(path), strict=False)
    else:
        raise AgentError(f"a namespace condition is prefix or suffix, got {kind!r}")
    return all(p == "*" or n == p for n, p in pairs)


def matches(value: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """LangGraph's filter semantics (its stores follow PostgreSQL's JSONB): nested
    objects match key by key, lists element by element, ``$eq``/``$ne``/``$gt``/``$gte``
    /``$lt``/``$lte`` compare."""
    return all(_compare(value.get(k), v) for k, v in wanted.items())


def _compare(have: Any, want: Any) -> bool:
    if isinstance(want, dict):
        if any(k.startswith("$") for k in want):
            return all(_operator(have, op, operand) for op, operand in want.items())
        return isinstance(have, dict) and all(_compare(have.get(k), v) for k, v in want.items())
    if isinstance(want, list | tuple):
        return (
            isinstance(have, list | tuple)
            and len(have) == len(want)
            and all(_compare(h, w) for h, w in zip(have, want, strict=True))
        )
    return bool(have == want)


def _operator(have: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return bool(have == operand)
    if op == "$ne":
        return bool(have != operand)
    if op not in OPERATORS:
        raise AgentError(f"unsupported filter operator {op!r} (one of {', '.join(OPERATORS)})")
    if have is None:
        return False
    try:
        left, right = float(have), float(operand)
    except (TypeError, ValueError):
        return False
    if op == "$gt":
        return left > right
    if op == "$gte":
        return left >= right
    if op == "$lt":
        return left < right
    return left <= right
