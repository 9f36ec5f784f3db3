"""Semantic memory embedded: remember/recall, superseding, as_of, filters, replay without
a model, the approximate index against exact search, SQL's VECTOR_DISTANCE, MiniLM."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosmictron import Database, DurabilityConfig, ReducerFailed, Timestamp, limits
from cosmictron.agents import HashingEmbedder, MiniLMEmbedder
from cosmictron.agents.embedders import minilm_available
from cosmictron.agents.vector_index import VectorIndex, approximate_available, index_for
from cosmictron.errors import InvalidRequest, SqlError
from tests.agents.memory_modules import MEMORY_APP, NO_EMBEDDER_APP

DURABILITY = DurabilityConfig.from_profile("development")
EMBED = HashingEmbedder()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(MEMORY_APP)
    return path


@pytest.fixture
def db(tmp_path: Path, app: Path) -> Iterator[Database]:
    database = Database.open(tmp_path / "data", app, durability=DURABILITY)
    yield database
    database.close()


def texts(hits) -> list[str]:
    return [hit.text for hit in hits]


def test_recall_ranks_by_similarity_within_a_namespace_prefix(db):
    db.call("remember_text", "users/alice", "alice likes green tea", '{"kind": "pref"}')
    db.call("remember_text", "users/alice", "alice lives in Lisbon", '{"kind": "fact"}')
    db.call("remember_text", "users/bob", "bob likes strong coffee", '{"kind": "pref"}')
    db.call("remember_text", "teams/x", "team x likes strong coffee", "{}")
    hits = db.call("recall", "users/", "who likes strong coffee", 2)
    assert texts(hits) == ["bob likes strong coffee", "alice likes green tea"]
    assert hits[0].score > hits[1].score
    assert texts(db.call("recall", "users/alice", "coffee or tea", 5)) == [
        "alice likes green tea",
        "alice lives in Lisbon",
    ]
    only_facts = db.call("recall", "users/", "likes", 5, '{"kind": "fact"}')
    assert texts(only_facts) == ["alice lives in Lisbon"]


def test_a_key_supersedes_instead_of_deleting_and_as_of_sees_the_past(db):
    db.call("remember_text", "u", "the user drinks tea", "{}", "drink")
    between = Timestamp.now()
    db.call("remember_text", "u", "the user drinks coffee", "{}", "drink")
    assert texts(db.call("recall", "u", "what does the user drink", 5)) == [
        "the user drinks coffee"
    ]
    past = db.call("recall", "u", "what does the user drink", 5, "{}", between)
    assert texts(past) == ["the user drinks tea"]
    rows = db.sql("SELECT text, valid_to FROM memory ORDER BY id").rows
    assert rows[0][1] is not None and rows[1][1] is None  # closed, not deleted
    assert db.call("forget", "u", "drink") == 1
    assert db.call("recall", "u", "what does the user drink", 5) == []
    assert len(db.rows("memory")) == 2


def test_replay_never_embeds_and_the_index_is_rebuilt_from_the_table(tmp_path, app):
    database = Database.open(tmp_path / "d", app, durability=DURABILITY)
    for text in ["apples are red", "the sky is blue", "grass is green"]:
        database.call("remember_text", "n", text)
    database.close()
    exploding = tmp_path / "exploding.py"
    exploding.write_text(NO_EMBEDDER_APP)
    database = Database.open(tmp_path / "d", exploding, durability=DURABILITY)
    try:
        vector = EMBED.embed(["what colour is the sky"])[0]
        hits = database.call("recall", "n", "", 1, "{}", None, vector)
        assert texts(hits) == ["the sky is blue"]
        with pytest.raises(ReducerFailed, match="replay must never embed"):
            database.call("recall", "n", "sky", 1)
    finally:
        database.close()


def test_a_reducer_searches_memory_including_its_own_write(db):
    db.call("remember_text", "notes", "buy milk", "{}")
    query = EMBED.embed(["call the plumber"])[0]
    assert db.call("remember_and_search", "call the plumber today", query)[0] == (
        "call the plumber today"
    )


def test_bad_input_is_refused_and_changes_nothing(db):
    with pytest.raises(InvalidRequest, match="expected Vector\\[384\\].*has 2 components"):
        db.call("remember", "n", "short vector", [0.1, 0.2])
    with pytest.raises(ReducerFailed, match="metadata must be a JSON object"):
        db.call("remember_text", "n", "x", "[1, 2]")
    with pytest.raises(ReducerFailed, match="needs a query text or a vector"):
        db.call("recall", "n")
    with pytest.raises(ReducerFailed, match="filter must be a JSON object"):
        db.call("recall", "n", "x", 3, "nope")
    assert db.rows("memory") == []


def test_recall_k_is_bounded_by_its_limit(db):
    db.call("remember_text", "n", "x")
    with pytest.raises(ReducerFailed, match="memory_recall_k_max"):
        db.call("recall", "n", "x", limits.memory_recall_k_max + 1)
    assert len(db.call("recall", "n", "x", limits.memory_recall_k_max)) == 1


def test_recall_without_an_embedder_says_how_to_bind_one(tmp_path):
    plain = tmp_path / "plain.py"
    plain.write_text("from cosmictron.agents import *\n")
    database = Database.open(tmp_path / "p", plain)
    try:
        with pytest.raises(ReducerFailed, match="bind one to 'memory_embedder'"):
            database.call("recall", "n", "text")
        database.call("remember", "n", "given vector", EMBED.embed(["given vector"])[0])
        vector = EMBED.embed(["given vector"])[0]
        assert texts(database.call("recall", "n", vector=vector)) == ["given vector"]
    finally:
        database.close()


def test_sql_orders_by_vector_distance_like_recall(db):
    for text in ["red apples", "blue sky over the sea", "green grass", "the sea is blue"]:
        db.call("remember_text", "n", text)
    query = EMBED.embed(["blue sea"])[0]
    result = db.sql(
        "SELECT text, VECTOR_DISTANCE(embedding, :q) AS d FROM memory "
        "WHERE valid_to IS NULL ORDER BY d LIMIT 3",
        {"q": query},
    )
    recalled = db.call("recall", "n", "", 3, "{}", None, query)
    assert [row[0] for row in result.rows] == texts(recalled)
    for (_, distance), hit in zip(result.rows, recalled, strict=True):
        assert distance == pytest.approx(1 - hit.score, abs=1e-6)
    as_text = db.sql(
        "SELECT text FROM memory ORDER BY VECTOR_DISTANCE(embedding, :q) LIMIT 1",
        {"q": json.dumps(query)},
    )
    assert as_text.rows[0][0] == result.rows[0][0]
    with pytest.raises(SqlError, match="VECTOR_DISTANCE: vectors of 384 and 2 numbers"):
        db.sql("SELECT VECTOR_DISTANCE(embedding, :q) FROM memory", {"q": [1.0, 2.0]})


def unit_vectors(count: int, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    vectors = []
    for _ in range(count):
        vector = [rng.gauss(0, 1) for _ in range(384)]
        norm = sum(v * v for v in vector) ** 0.5
        vectors.append([v / norm for v in vector])
    return vectors


@pytest.mark.skipif(not approximate_available(), reason="hnswlib (the memory extra) absent")
def test_past_the_exact_limit_the_approximate_index_agrees_with_exact_search(db, monkeypatch):
    monkeypatch.setattr(limits, "memory_exact_search_max", 200)
    vectors = unit_vectors(600, seed=7)
    for i, vector in enumerate(vectors):
        db.call("remember", "n", f"m{i}", vector)
    queries = unit_vectors(20, seed=8)
    found = 0
    for query in queries:
        exact = sorted(
            range(len(vectors)),
            key=lambda i: -sum(a * b for a, b in zip(query, vectors[i], strict=True)),
        )[:10]
        hits = db.call("recall", "n", "", 10, "{}", None, query)
        found += len({f"m{i}" for i in exact} & set(texts(hits)))
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert index_for(db, 384).approximate
    assert found / (10 * len(queries)) >= 0.9


def test_the_exact_index_returns_every_candidate_in_order():
    index = VectorIndex(3)
    index.add([1, 2, 3], [[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0]])
    assert [i for i, _ in index.top([1, 0, 0], 1)] == [1]
    ranked = [memory_id for memory_id, _ in index.top([1, 0, 0], 5)]
    assert ranked == [1, 3, 2]
    assert not index.approximate


def test_the_hashing_embedder_is_deterministic_and_unit_length():
    first, again = HashingEmbedder().embed(["same words"]), HashingEmbedder().embed(["same words"])
    assert first == again
    assert sum(v * v for v in first[0]) == pytest.approx(1.0)
    assert HashingEmbedder().embed([""])[0][0] == 1.0


@pytest.mark.skipif(
    minilm_available() is not None, reason=f"MiniLM extra absent: {minilm_available()}"
)
def test_minilm_scores_related_sentences_higher_than_unrelated_ones():
    model = MiniLMEmbedder()
    assert (model.dims, model.model_id) == (384, "all-MiniLM-L6-v2-int8-onnx")
    food, bread, market = model.embed(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market fell sharply today.",
        ]
    )

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(food, bread) > 0.5 > cos(food, market) + 0.3
    assert sum(v * v for v in food) == pytest.approx(1.0, abs=1e-4)
    long_text = "word " * 2000  # truncated to 256 tokens, not refused
    assert len(model.embed([long_text])[0]) == 384
    # synonyms the hashing embedder cannot relate
    car, automobile, banana = model.embed(
        ["I bought a car", "I purchased an automobile", "a ripe banana"]
    )
    assert cos(car, automobile) > cos(car, banana)


def test_a_reducer_scans_the_table_while_a_recall_holds_the_index(db):
    db.call("remember_text", "notes", "water the plants", "{}")
    db.call("recall", "notes", "plants", 1)  # the index exists now
    query = EMBED.embed(["feed the cat"])[0]
    index = index_for(db, 384)
    with index.lock:  # as while a recall builds it: the reducer must not wait
        found = db.call("remember_and_search", "feed the cat", query)
    assert found == ["feed the cat", "water the plants"]


def test_a_vector_tied_at_the_cut_is_found_when_recall_widens(db):
    """Regression: widening the candidate set skipped ids by position, so a memory tied
    with others at the first cut (32 candidates for k=1) could be skipped when the wider
    search returned the tied ones in another order. Each memory below is the only one its
    filter selects, so recall must return it, whichever of its tied neighbours came first.
    """
    rng = random.Random(1)  # a layout where the index's two orders of the ties differ
    best, tied, worse = [1.0] + [0.0] * 383, [1.0, 1.0] + [0.0] * 382, [0.0, 1.0] + [0.0] * 382
    kinds = [rng.choice([0, 1, 2]) for _ in range(100)]
    for i, kind in enumerate(kinds):
        vector = (best, tied, worse)[kind]
        db.call("remember", "n", f"m{i}", vector, json.dumps({"i": i}))
    missed = [
        i
        for i, kind in enumerate(kinds)
        if kind == 1
        and texts(db.call("recall", "n", "", 1, json.dumps({"i": i}), None, best)) != [f"m{i}"]
    ]
    assert missed == []
