"""CosmictronStore against LangGraph's own ``InMemoryStore``: the same operations, the same
deterministic embedder, the same answers (put, get, delete, list_namespaces, filters,
search order), embedded and over a real server; TTL expiry and refresh; refusals.

Where the two stores legitimately differ, the comparison says so: scores are float32 here
and float64 there (compared to 1e-5); items of equal score may come in either order (each
item's score is checked against the reference's instead); without a query, the in-memory
store lists namespace by namespace in first-touched order, this one by insertion, so
multi-namespace pages are compared as sets over every item.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "langgraph.store.memory",
    reason="needs the langgraph extra: pip install -e '.[langgraph]' (scripts/test installs it)",
)

from langgraph.store.base import BaseStore, InvalidNamespaceError, PutOp
from langgraph.store.memory import InMemoryStore

from cosmictron import CosmictronError, Database, DurabilityConfig, ReducerFailed
from cosmictron.agents import HashingEmbedder
from cosmictron.integrations.langgraph import CosmictronStore
from tests.server.conftest import Server, server, start_server, stop_server

__all__ = ["server"]

APP = "from cosmictron import *\nfrom cosmictron.agents import *\n"
DB = "stores"
EMBED = HashingEmbedder()
INDEX: Any = {"dims": 384, "embed": EMBED.embed, "fields": ["text", "tags[*]"]}
WORDS = [
    "green",
    "tea",
    "coffee",
    "apples",
    "red",
    "blue",
    "sky",
    "river",
    "stone",
    "music",
    "jazz",
    "rain",
]
NAMESPACES = [("users", "1"), ("users", "2"), ("users", "2", "notes"), ("docs",)]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    (tmp_path / "app.py").write_text(APP)
    database = Database.open(
        tmp_path / "data",
        tmp_path / "app.py",
        durability=DurabilityConfig.from_profile("development"),
    )
    yield database
    database.close()


def deploy(server: Server) -> str:
    _, token = server.deployer()
    reply = server.deploy(DB, APP, token)
    assert reply.status == 201, reply
    return token


class Reference(InMemoryStore):
    """LangGraph's ``InMemoryStore`` with two of its quirks removed, as LangGraph's
    PostgreSQL store behaves and ours does: a put replaces the item's vectors (the
    in-memory store keeps those of fields the new value no longer has or indexes, so a
    stale text would still be found), and a namespace is listed only while it holds an
    item (the in-memory store lists every namespace a get or delete ever touched).
    Only single-operation batches reach it here, so doing both before the batch is the
    same as doing them at its write."""

    def batch(self, ops: Any) -> list[Any]:
        ops = list(ops)
        for empty in [n for n, found in self._data.items() if not found]:
            del self._data[empty]
        for op in ops:
            if isinstance(op, PutOp):
                self._vectors[op.namespace].pop(op.key, None)
        return super().batch(ops)

    async def abatch(self, ops: Any) -> list[Any]:
        return self.batch(ops)


def random_value(rng: random.Random) -> dict[str, Any]:
    value: dict[str, Any] = {"n": rng.randint(0, 9), "kind": rng.choice(["a", "b"])}
    if rng.random() < 0.8:
        value["text"] = " ".join(rng.sample(WORDS, rng.randint(1, 4)))
    if rng.random() < 0.3:
        # never a text of the same item: the in-memory store embeds a text once, and
        # fails when two of an item's fields hold the same text
        value["tags"] = [f"label {w}" for w in rng.sample(WORDS, 2)]
    if rng.random() < 0.3:
        value["meta"] = {"level": rng.randint(1, 3)}
    return value


def random_filter(rng: random.Random) -> dict[str, Any] | None:
    return rng.choice(
        [
            None,
            {"kind": "a"},
            {"n": {"$gt": 4}},
            {"n": {"$lte": 3}, "kind": "b"},
            {"n": {"$ne": 5}},
            {"meta": {"level": 2}},
            {"kind": {"$eq": "b"}},
        ]
    )


def items(found: list[Any]) -> list[tuple[tuple[str, ...], str, dict[str, Any]]]:
    return [(tuple(i.namespace), i.key, i.value) for i in found]


def same_search(ours: list[Any], ref: list[Any], ref_all: list[Any], ordered: bool) -> None:
    """Same scores in the same order, each item with its reference score; an item whose
    score is unique is the reference's item at that place; unscored items in order
    within one namespace, as a set across several."""
    assert len(ours) == len(ref), (items(ours), items(ref))
    full = {(tuple(i.namespace), i.key): i.score for i in ref_all}
    for mine, theirs in zip(ours, ref, strict=True):
        if theirs.score is None:
            assert mine.score is None
        else:
            assert mine.score == pytest.approx(theirs.score, abs=1e-5)
            assert mine.score == pytest.approx(full[(tuple(mine.namespace), mine.key)], abs=1e-5)
    every_score = [i.score for i in ref_all if i.score is not None]
    for position, (mine, theirs) in enumerate(zip(ours, ref, strict=True)):
        if theirs.score is not None:
            ties = sum(abs(theirs.score - s) <= 1e-5 for s in every_score)
            if ties == 1:  # a unique score: its item is determined
                assert items([mine]) == items([theirs]), position
        elif ordered:  # unscored items come in insertion order within one namespace
            assert items([mine]) == items([theirs]), position
    if not ordered:
        unscored = [i for i in ours if i.score is None], [i for i in ref if i.score is None]
        assert sorted(map(repr, items(unscored[0]))) == sorted(map(repr, items(unscored[1])))


def run_differential(ours: BaseStore, seed: int, steps: int) -> None:
    ref = Reference(index=INDEX)
    rng = random.Random(seed)
    keys = [f"k{i}" for i in range(8)]
    for _ in range(steps):
        action = rng.random()
        namespace = rng.choice(NAMESPACES)
        key = rng.choice(keys)
        if action < 0.45:
            value = random_value(rng)
            index = rng.choice([None, None, False, ["text"]])
            for store in (ours, ref):
                store.put(namespace, key, value, index=index)
        elif action < 0.55:
            for store in (ours, ref):
                store.delete(namespace, key)
        elif action < 0.65:
            assert items([x for x in [ours.get(namespace, key)] if x]) == items(
                [x for x in [ref.get(namespace, key)] if x]
            )
        elif action < 0.75:
            prefix = rng.choice([("users",), ("users", "2"), ()])
            depth = rng.choice([None, 1, 2])
            suffix = rng.choice([None, ("2",), ("*", "notes")])
            args: dict[str, Any] = {"prefix": prefix or None, "max_depth": depth}
            if suffix:
                args["suffix"] = suffix
            assert ours.list_namespaces(**args) == ref.list_namespaces(**args), args
        else:
            prefix = rng.choice([namespace, namespace[:1]])
            query = rng.choice([None, " ".join(rng.sample(WORDS, 2))])
            flt = random_filter(rng)
            ordered = prefix == namespace or len(prefix) == len(namespace)
            single = all(n[: len(prefix)] != prefix or n == prefix for n in NAMESPACES)
            limit, offset = (rng.choice([1, 3, 10]), rng.choice([0, 0, 2])) if single else (50, 0)
            got = ours.search(prefix, query=query, filter=flt, limit=limit, offset=offset)
            want = ref.search(prefix, query=query, filter=flt, limit=limit, offset=offset)
            every = ref.search(prefix, query=query, filter=flt, limit=100)
            same_search(got, want, every, ordered and single)
    # finally every item, both ways
    for namespace in NAMESPACES:
        for key in keys:
            mine, theirs = ours.get(namespace, key), ref.get(namespace, key)
            assert (mine and (mine.key, mine.value)) == (theirs and (theirs.key, theirs.value))


def test_differential_embedded(db: Database) -> None:
    run_differential(CosmictronStore(db, index=INDEX), seed=7, steps=300)


def test_differential_over_a_real_server(server: Server) -> None:
    token = deploy(server)
    with CosmictronStore.from_url(server.url, DB, token=token, index=INDEX) as store:
        run_differential(store, seed=11, steps=150)
        assert asyncio.run(async_scenario(store)) == asyncio.run(
            async_scenario(InMemoryStore(index=INDEX))
        )


async def async_scenario(store: BaseStore) -> list[Any]:
    """The async API (``abatch`` underneath) on namespace ``("a",)``."""
    await store.aput(("a",), "x", {"text": "green tea", "n": 1})
    await store.aput(("a",), "y", {"text": "black coffee", "n": 2})
    await store.aput(("a", "b"), "z", {"text": "green river", "n": 3})
    await store.adelete(("a",), "y")
    return [
        items([await store.aget(("a",), "x")]),
        await store.aget(("a",), "y"),
        [(i.key, round(i.score or 0, 5)) for i in await store.asearch(("a",), query="green")],
        items(await store.asearch(("a",), filter={"n": {"$gte": 2}})),
        await store.alist_namespaces(prefix=("a",)),
    ]


def test_async_batches_agree_with_in_memory(db: Database) -> None:
    assert asyncio.run(async_scenario(CosmictronStore(db, index=INDEX))) == asyncio.run(
        async_scenario(InMemoryStore(index=INDEX))
    )


def test_a_batch_reads_before_it_writes_and_the_last_put_wins(db: Database) -> None:
    from langgraph.store.base import GetOp, PutOp, SearchOp

    ops = [
        PutOp(("n",), "k", {"text": "first"}),
        GetOp(("n",), "k"),
        PutOp(("n",), "k", {"text": "second"}),
        SearchOp(("n",), None, 10, 0, "second"),
    ]
    ours, ref = CosmictronStore(db, index=INDEX), InMemoryStore(index=INDEX)
    assert ours.batch(ops) == ref.batch(ops) == [None, None, None, []]
    assert items([ours.get(("n",), "k")]) == items([ref.get(("n",), "k")])
    assert [i.value for i in ours.search(("n",), query="second")] == [{"text": "second"}]


@pytest.mark.slow
def test_items_and_their_vectors_survive_a_sigkill(tmp_path: Path) -> None:
    """Acknowledged puts are on disk (production profile): after SIGKILL and a restart,
    the items are there and the vector index, rebuilt from the table, finds them."""
    data_dir = tmp_path / "server-data"
    running = start_server(data_dir, "--profile", "production")
    try:
        token = deploy(running)
        with CosmictronStore.from_url(running.url, DB, token=token, index=INDEX) as store:
            for n, text in enumerate(["green tea", "black coffee", "river stone"]):
                store.put(("mem",), f"k{n}", {"text": text})
            store.delete(("mem",), "k1")
            before = [(i.key, i.score) for i in store.search(("mem",), query="green river")]
        stop_server(running, signal.SIGKILL)
        assert running.process.returncode == -signal.SIGKILL
        running = start_server(data_dir, "--profile", "production")
        with CosmictronStore.from_url(running.url, DB, token=token, index=INDEX) as store:
            after = [(i.key, i.score) for i in store.search(("mem",), query="green river")]
            assert store.get(("mem",), "k1") is None
        assert after == before and {k for k, _ in after} == {"k0", "k2"}
    finally:
        stop_server(running)


# -- TTL: the in-memory store has none, so the reference drops an item when it expires -


def expires_at(db: Database, key: str) -> int:
    rows = db.sql("SELECT key, expires_at FROM store_item").as_dicts()
    return next(r["expires_at"].micros_since_epoch for r in rows if r["key"] == key)


def test_ttl_expiry_refresh_and_sweep(db: Database) -> None:
    ttl_minutes = 0.02  # 1.2 s
    ours = CosmictronStore(db, index=INDEX, ttl={"default_ttl": ttl_minutes})
    ref = InMemoryStore(index=INDEX)
    for store in (ours, ref):
        store.put(("t",), "short", {"text": "green tea"})  # the default TTL
        store.put(("t",), "forever", {"text": "green river"}, ttl=None)
    assert items(ours.search(("t",))) == items(ref.search(("t",)))

    before = expires_at(db, "short")
    ours.get(("t",), "short", refresh_ttl=False)
    assert expires_at(db, "short") == before  # a plain read leaves the TTL
    ours.get(("t",), "short")  # refresh_on_read defaults to true
    refreshed = expires_at(db, "short")
    assert refreshed > before
    ours.search(("t",), query="green")
    assert expires_at(db, "short") > refreshed  # a search refreshes what it returns

    time.sleep(ttl_minutes * 60 + 0.3)
    ref.delete(("t",), "short")  # what expiry means
    assert ours.get(("t",), "short") is None
    assert items(ours.search(("t",))) == items(ref.search(("t",)))
    assert [i.key for i in ours.search(("t",), query="green tea")] == ["forever"]
    assert ours.list_namespaces() == ref.list_namespaces() == [("t",)]
    assert db.sql("SELECT COUNT(*) AS n FROM store_item").rows[0][0] == 2  # invisible, not gone
    assert ours.sweep_ttl() == 1
    assert db.sql("SELECT COUNT(*) AS n FROM store_item").rows[0][0] == 1
    # the expired item's vector is closed, not deleted: memory keeps its history
    closed = db.sql("SELECT key FROM memory WHERE valid_to IS NOT NULL").as_dicts()
    assert [r["key"] for r in closed] == ["short"]


def test_the_sweeper_thread_sweeps_and_stops(db: Database) -> None:
    store = CosmictronStore(db, ttl={"default_ttl": 0.001})  # 60 ms
    store.put(("t",), "gone", {"n": 1})
    done = store.start_ttl_sweeper(sweep_interval_minutes=0.002)  # every 120 ms
    deadline = time.monotonic() + 30
    while db.sql("SELECT COUNT(*) AS n FROM store_item").rows[0][0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert db.sql("SELECT COUNT(*) AS n FROM store_item").rows[0][0] == 0
    assert store.stop_ttl_sweeper(timeout=10)
    assert done.result(timeout=10) is None


# -- refusals ---------------------------------------------------------------------------


def test_bad_input_is_refused_and_changes_nothing(db: Database) -> None:
    store = CosmictronStore(db, index=INDEX)
    store.put(("ok",), "k", {"text": "kept"})
    with pytest.raises(InvalidNamespaceError):
        store.put(("a.b",), "k", {"n": 1})
    with pytest.raises(ValueError, match="CosmictronStore stores JSON values"):
        store.put(("ok",), "k", {"when": object()})
    with pytest.raises(ReducerFailed, match="unsupported filter operator '\\$in'"):
        store.search(("ok",), filter={"n": {"$in": [1]}})
    with pytest.raises(ReducerFailed, match="ttl_minutes must be positive"):
        store.put(("ok",), "k", {"text": "changed"}, ttl=-1)
    with pytest.raises(ValueError, match="index dims must be 1..384, got 1536"):
        CosmictronStore(db, index={"dims": 1536, "embed": EMBED.embed})
    assert items([store.get(("ok",), "k")]) == [(("ok",), "k", {"text": "kept"})]


def test_only_the_owner_reads_or_writes_items_over_a_server(server: Server) -> None:
    owner = deploy(server)
    with CosmictronStore.from_url(server.url, DB, token=owner) as store:
        store.put(("private",), "k", {"secret": 1})
    _, stranger_token = server.identity()
    with CosmictronStore.from_url(server.url, DB, token=stranger_token) as stranger:
        with pytest.raises(CosmictronError, match="belong to the database's owner"):
            stranger.get(("private",), "k")
        with pytest.raises(CosmictronError, match="belong to the database's owner"):
            stranger.put(("private",), "k", {"secret": 2})
    with CosmictronStore.from_url(server.url, DB, token=owner) as store:
        assert store.get(("private",), "k").value == {"secret": 1}  # type: ignore[union-attr]


def test_a_search_with_a_query_reads_the_items_its_nearest_vectors_name(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query walks the memory index best first and reads only the items the nearest
    vectors belong to: with 1,000 items in the namespace, a page of 5 looks at a few
    dozen items (checked by counting the filter's evaluations, which the old search ran
    on every item of the namespace), and answers as InMemoryStore does."""
    import cosmictron.agents.store as store_module

    ours, ref = CosmictronStore(db, index=INDEX), Reference(index=INDEX)
    rng = random.Random(5)
    puts = [
        PutOp(("kb",), f"k{i}", {"text": " ".join([*rng.sample(WORDS, 3), f"i{i}"]), "n": i % 10})
        for i in range(1_000)
    ]
    ours.batch(puts)
    ref.batch(puts)
    looked_at = 0
    real_matches = store_module.matches

    def counted(value: dict[str, Any], wanted: dict[str, Any]) -> bool:
        nonlocal looked_at
        looked_at += 1
        return real_matches(value, wanted)

    monkeypatch.setattr(store_module, "matches", counted)
    for query, flt in [("green tea", {"n": {"$lt": 5}}), ("jazz rain", {"n": 3})]:
        looked_at = 0
        got = ours.search(("kb",), query=query, filter=flt, limit=5)
        assert 0 < looked_at <= 200, looked_at  # the namespace holds 1,000
        want = ref.search(("kb",), query=query, filter=flt, limit=5)
        every = ref.search(("kb",), query=query, filter=flt, limit=1_000)
        same_search(got, want, every, ordered=True)
