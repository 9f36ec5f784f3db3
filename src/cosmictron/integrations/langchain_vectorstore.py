"""``CosmictronVectorStore``: a LangChain ``VectorStore`` over the agent layer's memory.

Needs the ``langchain`` extra (``pip install 'cosmictron[langchain]'``) and a module that
includes the agent layer (``from cosmictron.agents import *``). A document is one row of
the ``memory`` table: its id is the row's ``key``, its text and metadata the row's, in
the namespace ``langchain/<collection>/``. So adding a document with an id already
present supersedes the old row (``remember_many`` with its key: a batch of documents is
one transaction), deleting closes it (``forget``):
the history stays and ``recall(as_of=...)`` still answers as it was. Searching is the
agent layer's ``recall`` with the query's vector (exact, or the HNSW index past
``limits.memory_exact_search_max``), so a retriever and an agent share one memory.

Vectors are embedded here, outside the database, by the LangChain ``Embeddings`` given;
the memory column holds 384 float32s, and a shorter vector is stored zero-padded, which
leaves every cosine similarity unchanged. Scores are cosine similarities (higher is
nearer); relevance scores map them to [0, 1].
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
except ImportError as exc:  # the core does not depend on LangChain
    raise ImportError(
        f"cosmictron.integrations.langchain needs LangChain ({exc.name} is missing): "
        "pip install 'cosmictron[langchain]'"
    ) from exc

from cosmictron.agents.tables import MEMORY_DIMS
from cosmictron.host import Database
from cosmictron.integrations.connection import (
    Connection,
    RemoteConnection,
    connection_of,
    field_of,
)

__all__ = ["CosmictronVectorStore"]

NAMESPACE_PREFIX = "langchain/"

BATCH_MESSAGE_BYTES = 512 * 1024
"""Most JSON bytes of documents ``add_texts`` sends in one call over a server: half the
server's default largest client message, leaving room for the envelope and escapes."""

VECTOR_JSON_BYTES = 26 * MEMORY_DIMS
"""A memory vector in JSON at its longest (``-1.2345678901234567e-05, `` per number)."""


def collection_namespace(collection: str) -> str:
    """The memory namespace of a collection; the trailing ``/`` keeps ``docs`` from
    matching ``docs2`` in ``recall``'s prefix search."""
    if not collection or "/" in collection:
        raise ValueError(f"a collection name is non-empty and has no '/', got {collection!r}")
    return f"{NAMESPACE_PREFIX}{collection}/"


def padded(vector: Sequence[float]) -> list[float]:
    """``vector`` as the memory column holds it (zero-padded to ``MEMORY_DIMS``)."""
    if not 0 < len(vector) <= MEMORY_DIMS:
        raise ValueError(
            f"CosmictronVectorStore stores vectors of 1..{MEMORY_DIMS} numbers, "
            f"the embeddings gave {len(vector)}"
        )
    return [float(v) for v in vector] + [0.0] * (MEMORY_DIMS - len(vector))


def metadata_text(metadata: dict[str, Any] | None) -> str:
    try:
        return json.dumps(metadata or {}, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"document metadata must be JSON-serializable: {exc}") from None


class CosmictronVectorStore(VectorStore):
    """A LangChain vector store whose documents are rows of Cosmictron's memory table.

    ``CosmictronVectorStore(db, embedding)`` for an embedded ``Database``;
    ``CosmictronVectorStore.from_url(url, database, embedding, token=...)`` for a server
    (the memory table is private: use the owner's token). ``collection`` keeps several
    stores apart in one database.
    """

    def __init__(
        self,
        db: Database | Connection,
        embedding: Embeddings,
        *,
        collection: str = "default",
    ) -> None:
        self._connection = connection_of(db)
        self._embedding = embedding
        self.collection = collection
        self.namespace = collection_namespace(collection)

    @classmethod
    def from_url(
        cls,
        url: str,
        database: str,
        embedding: Embeddings,
        *,
        token: str | None = None,
        collection: str = "default",
    ) -> CosmictronVectorStore:
        """A store over the SDK (``token``: the database owner's; without one, the
        token the CLI saved for this server)."""
        return cls(RemoteConnection(url, database, token), embedding, collection=collection)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> CosmictronVectorStore:
        """``from_texts(texts, embedding, db=database, collection=...)``."""
        db = kwargs.pop("db", None)
        if db is None:
            raise ValueError("CosmictronVectorStore.from_texts needs db=<Database or connection>")
        store = cls(db, embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def close(self) -> None:
        """Close the server connection ``from_url`` opened."""
        self._connection.close()

    def __enter__(self) -> CosmictronVectorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    # -- writes -----------------------------------------------------------------------

    def _rows(
        self,
        texts: list[str],
        vectors: list[list[float]],
        metadatas: list[dict[Any, Any]] | None,
        ids: Sequence[str | None] | None,
    ) -> list[tuple[Any, ...]]:
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(metadatas)} metadatas")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(ids)} ids")
        model = type(self._embedding).__name__
        rows = []
        for index, text in enumerate(texts):
            key = (ids[index] if ids is not None else None) or str(uuid.uuid4())
            metadata = metadata_text(metadatas[index] if metadatas is not None else None)
            rows.append(
                (self.namespace, text, padded(vectors[index]), metadata, str(key), model, None)
            )
        return rows

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store ``texts``; an id already present is superseded."""
        texts = list(texts)
        rows = self._rows(texts, self._embedding.embed_documents(texts), metadatas, ids)
        for batch in self._batches(rows):
            self._connection.call("remember_many", *batch)
        return [row[4] for row in rows]

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        texts = list(texts)
        vectors = await self._embedding.aembed_documents(texts)
        rows = self._rows(texts, vectors, metadatas, ids)
        for batch in self._batches(rows):
            await self._connection.acall("remember_many", *batch)
        return [row[4] for row in rows]

    def _batches(self, rows: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        """``remember_many``'s arguments: one batch (one transaction) for every row
        in process; over a server, as many rows as fit in one WebSocket message
        (``BATCH_MESSAGE_BYTES``, under the server's ``limits.client_message_bytes_max``),
        so a large ``add_texts`` is a few transactions rather than one per document."""
        if not rows:
            return
        budget = BATCH_MESSAGE_BYTES if isinstance(self._connection, RemoteConnection) else None
        start, size = 0, 0
        for end, row in enumerate(rows):
            if budget is not None:
                cost = len(json.dumps(row[:2])) + len(row[3]) + len(row[4]) + VECTOR_JSON_BYTES
                if end > start and size + cost > budget:
                    yield self._batch(rows[start:end])
                    start, size = end, 0
                size += cost
        yield self._batch(rows[start:])

    @staticmethod
    def _batch(rows: list[tuple[Any, ...]]) -> tuple[Any, ...]:
        namespace, model = rows[0][0], rows[0][5]
        texts = [row[1] for row in rows]
        vectors = [row[2] for row in rows]
        metadatas = [row[3] for row in rows]
        keys = [row[4] for row in rows]
        return (namespace, texts, vectors, metadatas, keys, model)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Close the documents of ``ids`` (their rows stay, superseded); missing ids
        are no error."""
        if ids is None:
            raise ValueError("CosmictronVectorStore.delete needs the ids to delete")
        for key in ids:
            self._connection.call("forget", self.namespace, str(key))
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        if ids is None:
            raise ValueError("CosmictronVectorStore.delete needs the ids to delete")
        for key in ids:
            await self._connection.acall("forget", self.namespace, str(key))
        return True

    # -- reads ------------------------------------------------------------------------

    def _current_sql(self, ids: Sequence[str]) -> tuple[str, dict[str, Any]]:
        """The current rows of ``ids`` (not empty), in one ``IN`` list."""
        params: dict[str, Any] = {"ns": self.namespace}
        params.update({f"k{n}": str(key) for n, key in enumerate(dict.fromkeys(ids))})
        keys = ", ".join(f":{name}" for name in params if name != "ns")
        return (
            "SELECT key, text, metadata FROM memory "
            f"WHERE namespace = :ns AND valid_to IS NULL AND key IN ({keys})",
            params,
        )

    @staticmethod
    def _in_order(rows: list[dict[str, Any]], ids: Sequence[str]) -> list[Document]:
        found = {row["key"]: row for row in rows}
        return [
            Document(
                id=key,
                page_content=found[key]["text"],
                metadata=json.loads(found[key]["metadata"]),
            )
            for key in dict.fromkeys(str(i) for i in ids)
            if key in found
        ]

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The current documents of ``ids``, in that order (missing ones left out)."""
        if not ids:
            return []
        return self._in_order(self._connection.sql(*self._current_sql(ids)), ids)

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        if not ids:
            return []
        return self._in_order(await self._connection.asql(*self._current_sql(ids)), ids)

    def _recall_args(
        self, vector: Sequence[float], k: int, filter: dict[str, Any] | None
    ) -> tuple[Any, ...]:
        return (self.namespace, "", k, metadata_text(filter), None, padded(vector))

    @staticmethod
    def _documents(hits: list[Any]) -> list[tuple[Document, float]]:
        return [
            (
                Document(
                    id=field_of(h, "key"),
                    page_content=field_of(h, "text"),
                    metadata=json.loads(field_of(h, "metadata")),
                ),
                float(field_of(h, "score")),
            )
            for h in hits
        ]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents nearest ``embedding`` with their cosine similarity;
        ``filter``: metadata keys that must have these values."""
        hits = self._connection.call("recall", *self._recall_args(embedding, k, filter))
        return self._documents(hits)

    async def asimilarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None
    ) -> list[tuple[Document, float]]:
        hits = await self._connection.acall("recall", *self._recall_args(embedding, k, filter))
        return self._documents(hits)

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        vector = self._embedding.embed_query(query)
        return self.similarity_search_with_score_by_vector(vector, k, filter)

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        vector = await self._embedding.aembed_query(query)
        return await self.asimilarity_search_with_score_by_vector(vector, k, filter)

    def similarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter)]

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        found = await self.asimilarity_search_with_score(query, k, filter)
        return [doc for doc, _ in found]

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        found = self.similarity_search_with_score_by_vector(embedding, k, filter)
        return [doc for doc, _ in found]

    async def asimilarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        found = await self.asimilarity_search_with_score_by_vector(embedding, k, filter)
        return [doc for doc, _ in found]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine similarity in [-1, 1] to a relevance in [0, 1] (clamped: float32
        scores of equal vectors can exceed 1 by an ulp)."""
        return lambda score: min(1.0, max(0.0, (score + 1.0) / 2.0))
