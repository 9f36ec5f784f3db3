"""The in-memory search structure behind ``recall``: exact with numpy, approximate past
a size.

It is a cache of the ``memory`` table, never a source of truth: built from the table on
the first search after a database opens, topped up from the table's primary key (ids
only grow) before each search, and its candidates are checked against the rows (still
there, still valid, same namespace, matching the filter) and re-scored with the stored
vector. So a rolled-back ``remember`` never shows (the index only reads committed rows),
a deleted row is skipped, and the order of the results is always the exact one among
the candidates.

Exact search is a matrix product over every stored vector (numpy, ~10 ms at 100k
384-d vectors on this machine). Past ``limits.memory_exact_search_max`` vectors an HNSW
index (``hnswlib``, the ``memory`` extra) proposes candidates instead; see
bench/memory.py for the measured trade and docs/design/agents.md for why hnswlib and
not usearch.
"""

from __future__ import annotations

import importlib
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from cosmictron import limits
from cosmictron.agents.errors import AgentError


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise AgentError(
            "semantic memory search needs numpy: pip install 'cosmictron[memory]'"
        ) from None
    return numpy


def approximate_available() -> bool:
    try:
        importlib.import_module("hnswlib")
    except ImportError:
        return False
    return True


class VectorIndex:
    """Unit vectors by id: ``add`` them, then the ``top`` ones by cosine similarity."""

    def __init__(self, dims: int) -> None:
        np = _numpy()
        self.dims = dims
        self._ids = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, dims), dtype=np.float32)
        self._size = 0
        self._approximate: Any = None  # an hnswlib Index once past the exact limit
        self.max_id = 0
        self.lock = threading.Lock()
        """Held to add to or search the index; never taken while holding the writer lock
        except without blocking (``search_memory``), so the two cannot deadlock."""

    def __len__(self) -> int:
        return self._size

    @property
    def approximate(self) -> bool:
        return self._approximate is not None

    def add(self, ids: Sequence[int], vectors: Sequence[Sequence[float]]) -> None:
        if not ids:
            return
        np = _numpy()
        block = normalise(np.asarray(vectors, dtype=np.float32))
        needed = self._size + len(ids)
        if needed > len(self._ids):
            capacity = max(needed, 2 * len(self._ids), 1024)
            grown_ids = np.zeros(capacity, dtype=np.int64)
            grown_ids[: self._size] = self._ids[: self._size]
            grown = np.zeros((capacity, self.dims), dtype=np.float32)
            grown[: self._size] = self._matrix[: self._size]
            self._ids, self._matrix = grown_ids, grown
        self._ids[self._size : needed] = ids
        self._matrix[self._size : needed] = block
        self._size = needed
        self.max_id = max(self.max_id, max(ids))
        if self._approximate is not None:
            capacity = self._approximate.get_max_elements()
            if needed > capacity:
                self._approximate.resize_index(max(needed, 2 * capacity))
            self._approximate.add_items(block, np.asarray(ids, dtype=np.int64))
        elif needed > limits.memory_exact_search_max and approximate_available():
            self._build_approximate()

    def _build_approximate(self) -> None:
        hnswlib = importlib.import_module("hnswlib")  # untyped: Any
        index = hnswlib.Index(space="cosine", dim=self.dims)
        index.init_index(max_elements=2 * self._size, ef_construction=EF_CONSTRUCTION, M=M)
        index.add_items(self._matrix[: self._size], self._ids[: self._size])  # all cores
        index.set_num_threads(1)  # then one search, one thread: queries run side by side
        index.set_ef(EF_SEARCH)
        self._approximate = index

    def top(self, query: Sequence[float], count: int) -> list[tuple[int, float]]:
        """The ``count`` best (id, similarity) pairs, best first (fewer if the index is)."""
        np = _numpy()
        count = min(count, self._size)
        if count <= 0:
            return []
        unit = normalise(np.asarray([query], dtype=np.float32))[0]
        if self._approximate is not None:
            if count > EF_SEARCH:
                self._approximate.set_ef(count)
            labels, distances = self._approximate.knn_query(unit, k=count)
            self._approximate.set_ef(EF_SEARCH)
            return [(int(i), 1.0 - float(d)) for i, d in zip(labels[0], distances[0], strict=True)]
        # einsum, not ``@``: a matrix-vector product in OpenBLAS wakes its thread pool,
        # which on a busy 2-core server costs more (p50 ~15 ms at 10k) than it saves.
        scores = np.einsum("ij,j->i", self._matrix[: self._size], unit)
        if count == self._size:
            order = np.argsort(-scores, kind="stable")
        else:
            best = np.argpartition(-scores, count - 1)[:count]
            order = best[np.argsort(-scores[best], kind="stable")]
        return [(int(self._ids[i]), float(scores[i])) for i in order]


M = 16
"""HNSW links per node (hnswlib's default; bench/memory.py measures recall with it)."""
EF_CONSTRUCTION = 100
EF_SEARCH = 64
"""Candidates HNSW keeps while searching: recall@10 against build and query time."""


def normalise(block: Any) -> Any:
    np = _numpy()
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    return block / np.maximum(norms, 1e-12)


_INDEXES: weakref.WeakKeyDictionary[Any, VectorIndex] = weakref.WeakKeyDictionary()


def index_for(database: Any, dims: int) -> VectorIndex:
    """The index of ``database``'s memory table (a new one after every open)."""
    index = _INDEXES.get(database)
    if index is None:
        index = VectorIndex(dims)
        _INDEXES[database] = index
    return index
