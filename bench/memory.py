"""Semantic memory benchmark: ``recall`` exact and approximate against numpy brute force.

    .venv/bin/python bench/memory.py [--quick] [--out bench/results/memory.json] [--tmpdir DIR]

For 10,000 and 100,000 memories of 384 dimensions (``--quick``: 2,000 and 10,000), in
one process:

- ``peer numpy``: the brute-force baseline every vector store is measured against, a
  float32 matrix-vector product (``einsum``: single-threaded, as ``recall`` does it;
  ``@`` wakes OpenBLAS's threads, which on a loaded 2-core machine made it slower) and
  ``argpartition`` over the same vectors, no database. Its top 10 is the ground truth
  for recall@10.
- ``recall exact``: ``db.call("recall", vector=...)`` with the index exact (the limit
  ``memory_exact_search_max`` above the size): the whole procedure call, index top-up,
  row checks and exact re-scoring included.
- ``recall approximate``: the same call past the limit (hnswlib HNSW, M=16,
  ef_construction=200, ef=64), with its build time and recall@10.
- ``hnswlib raw`` / ``usearch raw``: the libraries alone on the same data (usearch only
  if installed), the measurement behind choosing hnswlib (docs/design/agents.md).
- ``lancedb exact`` / ``lancedb approximate``: the same data in LanceDB, a real embedded
  vector database (if installed; the ``bench`` extra), flat search and its IVF_HNSW_SQ
  index (from 10,000 memories on).

Data: unit vectors drawn around 200 random centres (clustered, as sentence embeddings
are), queries drawn the same way. Latencies are p50/p99 over the queries, one at a time.
Prints a table with each p50's ratio to the numpy peer and writes JSON; nothing is
asserted. Goal (issue 14): approximate p99 <= 5 ms and recall@10 >= 0.95 at 100k.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from common import (  # noqa: E402
    fmt,
    machine_info,
    parse_args,
    run_took,
    temp_parent,
    text_table,
    write_results,
)

from cosmictron import Database, DurabilityConfig, limits  # noqa: E402
from cosmictron.agents import vector_index  # noqa: E402

APP = "from cosmictron.agents import *\n"
DIMS = 384
K = 10
P99_GOAL_MS = 5.0
RECALL_GOAL = 0.95


@dataclasses.dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...]
    queries: int
    dims: int = DIMS
    k: int = K
    centres: int = 200
    spread: float = 0.6


def clustered(rng: np.random.Generator, count: int, centres: Any, spread: float) -> Any:
    picks = centres[rng.integers(0, len(centres), count)]
    block = picks + spread * rng.standard_normal((count, centres.shape[1])) / np.sqrt(DIMS)
    block /= np.linalg.norm(block, axis=1, keepdims=True)
    return block.astype(np.float32)


def latencies_ms(queries: Any, search: Callable[[Any], list[int]]) -> tuple[list[float], list]:
    times, found = [], []
    for query in queries:
        started = time.perf_counter()
        found.append(search(query))
        times.append((time.perf_counter() - started) * 1000)
    return times, found


def summary(times: Sequence[float], found: list, truth: list) -> dict[str, float]:
    hits = sum(len(set(f[:K]) & set(t)) for f, t in zip(found, truth, strict=True))
    return {
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "recall_at_10": hits / (K * len(truth)),
    }


def measure_size(n: int, settings: Settings, parent: str, rng: Any) -> dict[str, Any]:
    centres = rng.standard_normal((settings.centres, DIMS)).astype(np.float32)
    data = clustered(rng, n, centres, settings.spread)
    queries = clustered(rng, settings.queries, centres, settings.spread)
    ids = np.arange(1, n + 1)
    out: dict[str, Any] = {}

    def peer(query: Any) -> list[int]:
        scores = np.einsum("ij,j->i", data, query)  # single-threaded: see --help
        top = np.argpartition(-scores, K)[:K]
        return [int(ids[i]) for i in top[np.argsort(-scores[top])]]

    times, truth = latencies_ms(queries, peer)
    out["peer_numpy"] = summary(times, truth, truth)

    app = Path(parent) / "app.py"
    app.write_text(APP)
    db = Database.open(
        Path(parent) / f"data-{n}", app, durability=DurabilityConfig.from_profile("development")
    )
    try:
        started = time.perf_counter()
        rows = (
            {"namespace": "bench", "text": f"m{i}", "embedding": v.tolist()}
            for i, v in enumerate(data)
        )
        db.bulk_insert("memory", rows)
        out["load_seconds"] = time.perf_counter() - started
        text_to_id = {f"m{i}": i + 1 for i in range(n)}

        def recall(query: Any) -> list[int]:
            hits = db.call("recall", "bench", "", K, "{}", None, query.tolist())
            return [text_to_id[h.text] for h in hits]

        for mode, limit in (("recall_exact", n + 1), ("recall_approximate", 0)):
            saved = limits.memory_exact_search_max
            limits.memory_exact_search_max = limit
            try:
                vector_index._INDEXES.pop(db, None)  # as after a reopen: rebuilt from the table
                started = time.perf_counter()
                recall(queries[0])
                build = time.perf_counter() - started
                times, found = latencies_ms(queries, recall)
            finally:
                limits.memory_exact_search_max = saved
            out[mode] = {**summary(times, found, truth), "first_call_seconds": build}
            assert vector_index.index_for(db, DIMS).approximate == (limit == 0)
    finally:
        db.close()

    import hnswlib

    started = time.perf_counter()
    index = hnswlib.Index(space="cosine", dim=DIMS)
    index.init_index(max_elements=n, ef_construction=vector_index.EF_CONSTRUCTION, M=vector_index.M)
    index.set_num_threads(1)
    index.add_items(data, ids)
    index.set_ef(vector_index.EF_SEARCH)
    build = time.perf_counter() - started
    times, found = latencies_ms(queries, lambda q: [int(x) for x in index.knn_query(q, k=K)[0][0]])
    out["hnswlib_raw"] = {**summary(times, found, truth), "build_seconds": build}
    try:
        from usearch.index import Index
    except ImportError:
        out["usearch_raw"] = None
    else:
        started = time.perf_counter()
        uindex = Index(ndim=DIMS, metric="cos", dtype="f32", connectivity=vector_index.M)
        uindex.add(ids, data, threads=1)
        build = time.perf_counter() - started
        times, found = latencies_ms(queries, lambda q: [int(x) for x in uindex.search(q, K).keys])
        out["usearch_raw"] = {**summary(times, found, truth), "build_seconds": build}
    out.update(lancedb_peer(n, data, ids, queries, truth, parent))
    return out


def lancedb_peer(
    n: int, data: Any, ids: Any, queries: Any, truth: list, parent: str
) -> dict[str, Any]:
    """The same data in LanceDB (an embedded vector database), if it is installed: a flat
    (exact) cosine search, and its HNSW index (IVF_HNSW_SQ) where the data is large enough."""
    try:
        import lancedb
        import pyarrow as pa
    except ImportError:
        return {"lancedb_exact": None, "lancedb_approximate": None}
    database = lancedb.connect(str(Path(parent) / f"lance-{n}"))
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(data.reshape(-1)), DIMS)
    table = database.create_table(
        "memory", pa.table({"id": pa.array(ids, pa.int64()), "vector": vectors})
    )

    def search(query: Any) -> list[int]:
        hits = table.search(query).metric("cosine").limit(K).select(["id", "_distance"]).to_arrow()
        return [int(x) for x in hits.column("id").to_pylist()]

    times, found = latencies_ms(queries, search)
    out: dict[str, Any] = {"lancedb_exact": summary(times, found, truth)}
    out["lancedb_approximate"] = None
    if n >= 10_000:
        started = time.perf_counter()
        table.create_index(metric="cosine", vector_column_name="vector", index_type="IVF_HNSW_SQ")
        build = time.perf_counter() - started
        times, found = latencies_ms(queries, search)
        out["lancedb_approximate"] = {**summary(times, found, truth), "build_seconds": build}
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__ or "", "memory.json", argv, quick_help="2k and 10k, seconds")
    started = time.perf_counter()
    if args.quick:
        settings = Settings(sizes=(2_000, 10_000), queries=50)
    else:
        settings = Settings(sizes=(10_000, 100_000), queries=200)
    rng = np.random.default_rng(14)
    results: dict[str, Any] = {}
    with temp_parent(args.tmpdir, "cosmictron-bench-memory-") as parent:
        machine = machine_info(parent)
        for n in settings.sizes:
            results[str(n)] = measure_size(n, settings, parent, rng)
    rows = []
    for n, figures in results.items():
        peer = figures["peer_numpy"]["p50_ms"]
        for name in (
            "peer_numpy",
            "recall_exact",
            "recall_approximate",
            "hnswlib_raw",
            "usearch_raw",
            "lancedb_exact",
            "lancedb_approximate",
        ):
            f = figures[name]
            if f is None:
                continue
            f["p50_over_peer"] = f["p50_ms"] / peer
            rows.append([f"{int(n):,}", name, fmt(f["p50_ms"]), fmt(f["p99_ms"]),
                         f"{f['recall_at_10']:.3f}", f"{f['p50_over_peer']:.2f}x"])  # fmt: skip
    print(text_table(["memories", "search", "p50 ms", "p99 ms", "recall@10", "p50 / peer"],
                     rows, left=(0, 1)))  # fmt: skip
    largest = results[str(settings.sizes[-1])]["recall_approximate"]
    met = largest["p99_ms"] <= P99_GOAL_MS and largest["recall_at_10"] >= RECALL_GOAL
    goals = {"p99_ms_max": P99_GOAL_MS, "recall_at_10_min": RECALL_GOAL, "met": met}
    print(f"approximate at {settings.sizes[-1]:,}: goals p99 <= {P99_GOAL_MS} ms, "
          f"recall@10 >= {RECALL_GOAL}: {'met' if goals['met'] else 'NOT met'}")  # fmt: skip
    print(run_took(started, args.mode))
    write_results(args.out, "memory", args.mode, settings, machine, started, results, goals=goals)


if __name__ == "__main__":
    main()
