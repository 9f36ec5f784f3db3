"""``CosmictronStore``: LangGraph's long-term memory store (``BaseStore``) as Cosmictron rows.

Needs the ``langgraph`` extra and a module that includes the agent layer. Items are rows of
``store_item``; the vectors of their indexed fields are ``memory`` rows searched through the
agent layer's vector index (``agents/store.py``). One batch is at most one write
transaction: its reads run first (procedures, no transaction), then all its puts and
deletes in one ``store_write`` call, as LangGraph's ``InMemoryStore`` applies a batch.

Embedding happens here, in the client, with the index's ``embed`` (LangChain
``Embeddings``, a function of a list of texts, or a Cosmictron ``Embedder`` such as
``HashingEmbedder``); the database stores the vectors (at most 384 numbers each,
zero-padded, which keeps every cosine similarity) and never runs a model.

Differences from ``InMemoryStore``, on purpose: a put keeps the item's ``created_at``
(as LangGraph's PostgreSQL store does); a put replaces the item's old vectors (the
in-memory store keeps vectors of fields no longer indexed); TTLs are supported
(``supports_ttl``), expired items are invisible at once and ``sweep_ttl`` deletes them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

try:
    from langchain_core.embeddings import Embeddings
    from langgraph.store.base import (
        BaseStore,
        GetOp,
        IndexConfig,
        Item,
        ListNamespacesOp,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
        TTLConfig,
    )
    from langgraph.store.base.embed import ensure_embeddings, get_text_at_path, tokenize_path
except ImportError as exc:  # the core does not depend on LangGraph
    raise ImportError(
        f"cosmictron.integrations.langgraph needs LangGraph ({exc.name} is missing): "
        "pip install 'cosmictron[langgraph]'"
    ) from exc

from cosmictron.agents.embedders import Embedder
from cosmictron.agents.store import StorePut, StoreVector
from cosmictron.agents.tables import MEMORY_DIMS
from cosmictron.host import Database
from cosmictron.integrations.connection import Connection, RemoteConnection, connection_of

__all__ = ["CosmictronStore"]


def _namespace(labels: Sequence[str]) -> str:
    return ".".join(labels)


def _labels(namespace: str) -> tuple[str, ...]:
    return tuple(namespace.split(".")) if namespace else ()


def _when(micros: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(micros / 1_000_000, tz=dt.UTC)


def _item(found: dict[str, Any]) -> Item:
    return Item(
        value=json.loads(found["value"]),
        key=found["key"],
        namespace=_labels(found["namespace"]),
        created_at=_when(found["created_at"]),
        updated_at=_when(found["updated_at"]),
    )


def _search_item(found: dict[str, Any]) -> SearchItem:
    return SearchItem(
        namespace=_labels(found["namespace"]),
        key=found["key"],
        value=json.loads(found["value"]),
        created_at=_when(found["created_at"]),
        updated_at=_when(found["updated_at"]),
        score=found.get("score"),
    )


def _value_text(value: Mapping[str, Any]) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"CosmictronStore stores JSON values: {exc}") from None


class CosmictronStore(BaseStore):
    """A LangGraph store whose items are Cosmictron rows, with semantic search and TTL.

    ``CosmictronStore(db, index=..., ttl=...)`` for an embedded ``Database``;
    ``CosmictronStore.from_url(url, database, token=..., index=..., ttl=...)`` for a
    server (the owner's token: the items are private). ``index`` is LangGraph's
    ``IndexConfig`` (``dims`` at most 384, ``embed``, ``fields``); ``ttl`` its
    ``TTLConfig`` (``default_ttl`` minutes, ``refresh_on_read``,
    ``sweep_interval_minutes`` for ``start_ttl_sweeper``).
    """

    supports_ttl: bool = True

    def __init__(
        self,
        db: Database | Connection,
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
    ) -> None:
        self._connection = connection_of(db)
        self.ttl_config = ttl
        self.index_config: dict[str, Any] | None = None
        self.embeddings: Embeddings | None = None
        if index is not None:
            dims = index.get("dims", MEMORY_DIMS)
            if not 0 < dims <= MEMORY_DIMS:
                raise ValueError(f"CosmictronStore index dims must be 1..{MEMORY_DIMS}, got {dims}")
            embed: Any = index.get("embed")
            if isinstance(embed, Embedder):
                embed = embed.embed
            self.embeddings = ensure_embeddings(embed)
            self.index_config = {
                **index,
                "fields": [
                    (p, tokenize_path(p) if p != "$" else p) for p in index.get("fields") or ["$"]
                ],
            }
        self._sweeper: threading.Thread | None = None
        self._stop_sweeping = threading.Event()

    @classmethod
    def from_url(
        cls,
        url: str,
        database: str,
        *,
        token: str | None = None,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
    ) -> CosmictronStore:
        """A store over the SDK (``token``: the database owner's)."""
        return cls(RemoteConnection(url, database, token), index=index, ttl=ttl)

    def close(self) -> None:
        """Stop the sweeper and close the server connection ``from_url`` opened."""
        self.stop_ttl_sweeper()
        self._connection.close()

    def __enter__(self) -> CosmictronStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- batches ----------------------------------------------------------------------

    def _texts(self, puts: list[PutOp]) -> list[tuple[int, str, str]]:
        """(put position, field path, text) of every text to embed."""
        if self.index_config is None:
            return []
        out = []
        for position, op in enumerate(puts):
            if op.value is None or op.index is False:
                continue
            paths = (
                self.index_config["fields"]
                if op.index is None
                else [(p, tokenize_path(p)) for p in op.index]
            )
            for path, tokens in paths:
                texts = get_text_at_path(op.value, tokens)
                if len(texts) > 1:
                    out += [(position, f"{path}.{i}", t) for i, t in enumerate(texts)]
                elif texts:
                    out.append((position, path, texts[0]))
        return out

    @staticmethod
    def _last_puts(ops: Sequence[Op]) -> list[PutOp]:
        """The batch's puts, the last per item winning (as ``InMemoryStore``)."""
        last: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, PutOp):
                last[(op.namespace, op.key)] = op
        return list(last.values())

    @staticmethod
    def _write_args(
        puts: list[PutOp], texts: list[tuple[int, str, str]], vectors: list[list[float]]
    ) -> list[dict[str, Any]]:
        per_put: dict[int, list[dict[str, Any]]] = {}
        for (position, path, _), vector in zip(texts, vectors, strict=True):
            per_put.setdefault(position, []).append(
                {"path": path, "embedding": [float(v) for v in vector]}
            )
        return [
            {
                "namespace": _namespace(op.namespace),
                "key": str(op.key),
                "value": "{}" if op.value is None else _value_text(op.value),
                "delete": op.value is None,
                "ttl_minutes": op.ttl,
                "vectors": per_put.get(position, []),
            }
            for position, op in enumerate(puts)
        ]

    def _writes(
        self, puts: list[PutOp], texts: list[tuple[int, str, str]], vectors: list[list[float]]
    ) -> Any:
        def build(row: dict[str, Any]) -> StorePut:
            vectors = [StoreVector(**v) for v in row["vectors"]]
            return StorePut(**{**row, "vectors": vectors})

        return self._connection.records(self._write_args(puts, texts, vectors), build)

    def _read_call(self, op: Op, query_vector: list[float] | None) -> tuple[Any, ...]:
        if isinstance(op, GetOp):
            return ("store_get", _namespace(op.namespace), str(op.key), op.refresh_ttl)
        if isinstance(op, SearchOp):
            return (
                "store_search",
                _namespace(op.namespace_prefix),
                query_vector,
                json.dumps(op.filter or {}),
                op.limit,
                op.offset,
                op.refresh_ttl,
            )
        assert isinstance(op, ListNamespacesOp)
        conditions = [[c.match_type, list(c.path)] for c in op.match_conditions or ()]
        return (
            "store_list_namespaces",
            json.dumps(conditions),
            op.max_depth,
            op.limit,
            op.offset,
        )

    @staticmethod
    def _result(op: Op, reply: str) -> Result:
        found = json.loads(reply)
        if isinstance(op, GetOp):
            return None if found is None else _item(found)
        if isinstance(op, SearchOp):
            return [_search_item(f) for f in found]
        return [tuple(n) for n in found]

    def _check(self, ops: Sequence[Op]) -> None:
        for op in ops:
            if not isinstance(op, GetOp | SearchOp | ListNamespacesOp | PutOp):
                raise ValueError(f"unknown store operation {type(op).__name__}")

    def _query_of(self, op: Op) -> str | None:
        """The text a search op wants embedded (None: no semantic search)."""
        if isinstance(op, SearchOp) and op.query and self.embeddings is not None:
            return op.query
        return None

    def _queries(self, ops: Sequence[Op]) -> list[str]:
        return sorted({q for q in map(self._query_of, ops) if q is not None})

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run a batch: its reads, then its writes in one transaction."""
        ops = list(ops)
        self._check(ops)
        queries = self._queries(ops)
        vectors = dict(zip(queries, self._embed_queries(queries), strict=True))
        results: list[Result] = []
        for op in ops:
            if isinstance(op, PutOp):
                results.append(None)
                continue
            query = self._query_of(op)
            vector = None if query is None else vectors[query]
            results.append(self._result(op, self._connection.call(*self._read_call(op, vector))))
        puts = self._last_puts(ops)
        if puts:
            texts = self._texts(puts)
            embedded = self._embed_documents([t for _, _, t in texts]) if texts else []
            self._connection.call("store_write", self._writes(puts, texts, embedded))
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        self._check(ops)
        queries = self._queries(ops)
        vectors = dict(zip(queries, await self._aembed_queries(queries), strict=True))
        results: list[Result] = []
        for op in ops:
            if isinstance(op, PutOp):
                results.append(None)
                continue
            query = self._query_of(op)
            vector = None if query is None else vectors[query]
            reply = await self._connection.acall(*self._read_call(op, vector))
            results.append(self._result(op, reply))
        puts = self._last_puts(ops)
        if puts:
            texts = self._texts(puts)
            embedded = await self._aembed_documents([t for _, _, t in texts]) if texts else []
            await self._connection.acall("store_write", self._writes(puts, texts, embedded))
        return results

    def _embed_queries(self, queries: list[str]) -> list[list[float]]:
        assert self.embeddings is not None or not queries
        return [self.embeddings.embed_query(q) for q in queries] if self.embeddings else []

    async def _aembed_queries(self, queries: list[str]) -> list[list[float]]:
        if not self.embeddings:
            return []
        return list(await asyncio.gather(*(self.embeddings.aembed_query(q) for q in queries)))

    def _embed_documents(self, texts: list[str]) -> list[list[float]]:
        assert self.embeddings is not None
        return self.embeddings.embed_documents(texts)

    async def _aembed_documents(self, texts: list[str]) -> list[list[float]]:
        assert self.embeddings is not None
        return await self.embeddings.aembed_documents(texts)

    # -- TTL --------------------------------------------------------------------------

    def sweep_ttl(self) -> int:
        """Delete the expired items now; returns how many."""
        swept: int = self._connection.call("store_sweep")
        return swept

    async def asweep_ttl(self) -> int:
        swept: int = await self._connection.acall("store_sweep")
        return swept

    def start_ttl_sweeper(self, sweep_interval_minutes: float | None = None) -> Future[None]:
        """Sweep every ``sweep_interval_minutes`` (default: the TTL config's, else 5) on a
        thread until ``stop_ttl_sweeper``; the future completes when it stops."""
        interval = sweep_interval_minutes or (self.ttl_config or {}).get("sweep_interval_minutes")
        seconds = 60.0 * (interval or 5)
        done: Future[None] = Future()
        self._stop_sweeping.clear()

        def run() -> None:
            try:
                while not self._stop_sweeping.wait(seconds):
                    self.sweep_ttl()
            finally:
                done.set_result(None)

        self._sweeper = threading.Thread(target=run, name="cosmictron-store-sweeper", daemon=True)
        self._sweeper.start()
        return done

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper thread; True when it has stopped."""
        if self._sweeper is None:
            return True
        self._stop_sweeping.set()
        self._sweeper.join(timeout)
        stopped = not self._sweeper.is_alive()
        if stopped:
            self._sweeper = None
        return stopped
