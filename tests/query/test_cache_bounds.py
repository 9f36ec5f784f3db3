"""The statement cache keeps only what a statement uses, and at most so many bytes.

Issue 21: requests carrying many parameters the statement never used pinned hundreds
of MB in the cache (their names were part of the key). Now unused parameters are
ignored: never part of a key, never kept. Measured twice: with the cache's own
accounting (``retained_bytes``) and with tracemalloc (what the process still holds).
"""

from __future__ import annotations

import gc
import importlib
import tracemalloc

import pytest

from cosmictron import limits
from cosmictron.query.cache import STATEMENTS, plan_bytes, referenced_names
from tests.query.shop import SHOP, load

parse_module = importlib.import_module("cosmictron.query.parse")


@pytest.fixture
def shop(open_db):
    db = open_db(SHOP)
    load(db)
    return db


@pytest.fixture
def parses(monkeypatch):
    count = [0]
    original = parse_module.syntax_tree

    def counting(source):
        count[0] += 1
        return original(source)

    monkeypatch.setattr(parse_module, "syntax_tree", counting)
    return count


def test_large_unused_parameters_leave_the_cache_bounded(shop, parses):
    STATEMENTS.clear()
    query = "SELECT name FROM customer WHERE id = :id"
    expected = shop.sql(query, {"id": 3}).rows
    retained = STATEMENTS.retained_bytes
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(200):  # 200 requests, each with ~100 kB of names and values unused
            unused = {f"{'n' * 50_000}{i}": "v" * 50_000}
            assert shop.sql(query, {"id": 3, **unused}).rows == expected
            del unused
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parses[0] == 1  # one plan for every request: the unused names are not keyed
    assert STATEMENTS.retained_bytes == retained and len(STATEMENTS) == 1
    assert after - before < 1_000_000  # 20 MB passed through; under 1 MB remains


def test_the_cache_is_bounded_in_bytes(shop, monkeypatch):
    STATEMENTS.clear()
    monkeypatch.setattr(limits, "sql_statements_cached_bytes_max", 200_000)
    padding = "x" * 20_000
    for i in range(50):  # each text is over 20 kB: at most ten fit
        shop.sql(f"SELECT id FROM customer WHERE name = '{padding}{i}'")
        assert STATEMENTS.retained_bytes <= 200_000
    assert 0 < len(STATEMENTS) <= 10
    # a statement heavier than the whole budget runs, and is not kept
    monkeypatch.setattr(limits, "sql_statements_cached_bytes_max", 1_000)
    assert shop.sql(f"SELECT id FROM customer WHERE name = '{padding}'").rows == []
    assert len(STATEMENTS) == 0 and STATEMENTS.retained_bytes == 0


def test_a_null_parameter_and_a_missing_one_get_plans_of_their_own(shop, parses):
    query = "SELECT id FROM customer WHERE age > :age OR :age IS NULL ORDER BY id"
    every = [row for row in shop.sql("SELECT id FROM customer ORDER BY id")]
    assert shop.sql(query, {"age": None}).rows == every
    older = shop.sql(query, {"age": 60}).rows
    assert older == shop.sql("SELECT id FROM customer WHERE age > 60 ORDER BY id").rows
    assert older != every
    assert shop.sql(query, {"age": None, "unused": 5}).rows == every
    with pytest.raises(Exception, match="missing parameter :age"):
        shop.sql(query, {"unused": 5})


def test_referenced_names_and_plan_weights():
    assert referenced_names("SELECT :b, :a, :b FROM t WHERE x = ':c'") == ("a", "b", "c")
    assert referenced_names("SELECT 1") == ()
    assert plan_bytes(("abc", ("de",))) == 64 + 3 + 64 + 2
