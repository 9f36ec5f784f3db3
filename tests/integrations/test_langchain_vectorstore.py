"""CosmictronVectorStore against langchain-tests' standard ``VectorStoreIntegrationTests``
(none overridden), embedded and over a real server, plus what the suite does not cover.

The standard suite's async tests are plain ``async def`` methods written for pytest-asyncio's
``asyncio_mode=auto``; here anyio's pytest plugin runs them on asyncio, for this module
only (``pytestmark``), so the rest of the suite keeps its own mode.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip(
    "langchain_tests",
    reason="needs the langchain extra: pip install -e '.[langchain]' (scripts/test installs it)",
)

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests

from cosmictron import Database, DurabilityConfig
from cosmictron.integrations.langchain import CosmictronVectorStore
from tests.server.conftest import STARTED, Server, start_server, stop_server

pytestmark = pytest.mark.anyio

APP = "from cosmictron import *\nfrom cosmictron.agents import *\n"
DB = "docs"


def open_db(tmp_path: Path) -> Database:
    (tmp_path / "app.py").write_text(APP)
    return Database.open(
        tmp_path / "data",
        tmp_path / "app.py",
        durability=DurabilityConfig.from_profile("development"),
    )


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


class TestEmbeddedStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path: Path) -> Iterator[CosmictronVectorStore]:
        db = open_db(tmp_path)
        yield CosmictronVectorStore(db, self.get_embeddings())
        db.close()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    running = start_server(
        tmp_path_factory.mktemp("vs-server") / "data", "--profile", "development"
    )
    # one server for the whole standard suite: taken off the list tests/conftest.py kills
    # after every test, and stopped here instead
    STARTED.remove(running.process)
    try:
        _, token = running.deployer()
        reply = running.deploy(DB, APP, token)
        assert reply.status == 201, reply
        yield running, token
    finally:
        stop_server(running)


class TestOverAServerStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, shared_server: tuple[Server, str]) -> Iterator[CosmictronVectorStore]:
        running, token = shared_server
        collection = uuid.uuid4().hex  # a fresh, empty collection per test
        with CosmictronVectorStore.from_url(
            running.url, DB, self.get_embeddings(), token=token, collection=collection
        ) as store:
            yield store


# -- beyond the standard suite ----------------------------------------------------------


def test_filters_retriever_scores_and_history(tmp_path: Path) -> None:
    db = open_db(tmp_path)
    try:
        embedding = DeterministicFakeEmbedding(size=6)
        store = CosmictronVectorStore(db, embedding, collection="kb")
        other = CosmictronVectorStore(db, embedding, collection="kb2")
        ids = store.add_texts(
            ["refund policy", "shipping times", "refund form"],
            [{"topic": "billing"}, {"topic": "logistics"}, {"topic": "billing"}],
            ids=["a", "b", "c"],
        )
        other.add_texts(["refund policy"], ids=["z"])
        assert ids == ["a", "b", "c"]
        found = store.similarity_search_with_score("refund policy", k=3)
        assert found[0][0].id == "a"  # the same text: cosine 1
        assert found[0][1] == pytest.approx(1.0, abs=1e-5)
        assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
        billing = store.similarity_search("refund", k=5, filter={"topic": "billing"})
        assert sorted(d.id for d in billing) == ["a", "c"]  # kb2's "z" never leaks in
        retriever = store.as_retriever(search_kwargs={"k": 1})
        assert [d.id for d in retriever.invoke("shipping times")] == ["b"]
        relevance = store.similarity_search_with_relevance_scores("shipping times", k=1)
        assert relevance[0][1] == pytest.approx(1.0, abs=1e-5)
        store.delete(["b"])
        assert store.get_by_ids(["a", "b"]) == [
            Document(id="a", page_content="refund policy", metadata={"topic": "billing"})
        ]
        # deleting supersedes: the row stays, closed
        rows = db.sql("SELECT key, valid_to FROM memory WHERE namespace = 'langchain/kb/'")
        closed = [r for r in rows.as_dicts() if r["valid_to"] is not None]
        assert [r["key"] for r in closed] == ["b"]
    finally:
        db.close()


def test_bad_input_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    db = open_db(tmp_path)
    try:
        store = CosmictronVectorStore(db, DeterministicFakeEmbedding(size=400))
        with pytest.raises(
            ValueError, match=r"vectors of 1\.\.384 numbers, the embeddings gave 400"
        ):
            store.add_texts(["too wide"])
        small = CosmictronVectorStore(db, DeterministicFakeEmbedding(size=6))
        with pytest.raises(ValueError, match="metadata must be JSON-serializable"):
            small.add_texts(["x"], [{"when": object()}])
        with pytest.raises(ValueError, match="a collection name is non-empty and has no '/'"):
            CosmictronVectorStore(db, DeterministicFakeEmbedding(size=6), collection="a/b")
        assert db.sql("SELECT COUNT(*) AS n FROM memory").rows[0][0] == 0
    finally:
        db.close()


def transactions_of(rows: list[dict]) -> int:
    """How many transactions stored these memory rows: a transaction's rows share its
    timestamp (``ctx.timestamp``), and two transactions never share one."""
    return len({row["valid_from"] for row in rows})


def test_a_batch_of_documents_is_one_transaction(tmp_path: Path) -> None:
    db = open_db(tmp_path)
    try:
        store = CosmictronVectorStore(db, DeterministicFakeEmbedding(size=6), collection="kb")
        store.add_texts([f"doc {i}" for i in range(50)], ids=[f"d{i}" for i in range(50)])
        rows = db.sql("SELECT key, valid_from FROM memory").as_dicts()
        assert len(rows) == 50 and transactions_of(rows) == 1
        # a re-add supersedes in the same single transaction; a key twice in one batch
        # leaves only its last text current
        store.add_texts(["new 0", "new 1", "newer 1"], ids=["d0", "d1", "d1"])
        current = db.sql(
            "SELECT key, text FROM memory WHERE valid_to IS NULL AND key IN ('d0', 'd1')"
        ).as_dicts()
        assert sorted((r["key"], r["text"]) for r in current) == [
            ("d0", "new 0"),
            ("d1", "newer 1"),
        ]
        assert len(db.sql("SELECT id FROM memory").rows) == 53
        assert [d.page_content for d in store.get_by_ids(["d1"])] == ["newer 1"]
    finally:
        db.close()


def test_a_batch_is_all_or_nothing(tmp_path: Path) -> None:
    db = open_db(tmp_path)
    try:
        vector = [1.0] + [0.0] * 383
        with pytest.raises(Exception, match="metadata"):
            db.call(
                "remember_many",
                "n",
                ["kept?", "bad"],
                [vector, vector],
                ["{}", "not json"],
                ["a", "b"],
            )
        with pytest.raises(Exception, match="2 texts but 1 embeddings"):
            db.call("remember_many", "n", ["a", "b"], [vector], [], [])
        assert db.sql("SELECT COUNT(*) AS n FROM memory").rows[0][0] == 0
    finally:
        db.close()


def test_over_a_server_a_batch_is_as_few_transactions_as_fit_in_a_message(
    shared_server: tuple[Server, str],
) -> None:
    running, token = shared_server
    with CosmictronVectorStore.from_url(
        running.url, DB, DeterministicFakeEmbedding(size=384), token=token, collection="batch"
    ) as store:
        store.add_texts([f"small {i}" for i in range(20)])
        many = 200  # ~8 KB of JSON each: more than one message holds
        ids = store.add_texts([f"doc {i}" for i in range(many)])
        rows = store._connection.sql(
            "SELECT key, valid_from FROM memory WHERE namespace = 'langchain/batch/'"
        )
    assert len(rows) == 20 + many
    assert transactions_of([r for r in rows if r["key"] not in ids]) == 1
    batches = transactions_of([r for r in rows if r["key"] in ids])
    assert 2 <= batches <= 6  # split by message size, not one per document
