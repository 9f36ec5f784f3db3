"""The statement cache: a text is parsed once, parameters are filled per call.

Parses are counted by wrapping the function that calls SQLGlot (``parse._syntax_tree``).
"""

from __future__ import annotations

import importlib

import pytest

from cosmictron import Identity, limits
from cosmictron.errors import PermissionDenied, ResourceExhausted, SqlError
from cosmictron.query.cache import STATEMENTS
from tests.query.shop import SHOP, load

parse_module = importlib.import_module("cosmictron.query.parse")  # the package's
# ``parse`` attribute is the function of that name


@pytest.fixture
def shop(open_db):
    db = open_db(SHOP)
    load(db)
    return db


@pytest.fixture
def parses(monkeypatch):
    """How many times SQLGlot has parsed a statement since the test started."""
    count = [0]
    original = parse_module.syntax_tree

    def counting(source):
        count[0] += 1
        return original(source)

    monkeypatch.setattr(parse_module, "syntax_tree", counting)
    return count


def test_a_repeated_point_select_is_parsed_once(shop, parses):
    query = "SELECT * FROM customer WHERE id = :id"
    first = shop.sql(query, {"id": 3})
    second = shop.sql(query, {"id": 4})
    assert parses[0] == 1
    assert [row[0] for row in first] == [3] and [row[0] for row in second] == [4]
    assert first.columns == ("id", "name", "city", "age", "owner", "joined", "status")
    assert list(shop.sql(query, {"id": 10_000})) == []
    assert parses[0] == 1


def test_cached_results_equal_uncached_ones(shop, parses):
    query = "SELECT name, status, id FROM customer WHERE id = :id"
    for wanted in (1, 2, 3, 2.0, 2.5):
        rows = shop.sql(query, {"id": wanted}).rows
        expected = shop.sql(f"SELECT name, status, id FROM customer WHERE id = {wanted}").rows
        assert rows == expected
    # the status column is converted back to the module's enum on the fast path too
    assert type(shop.sql(query, {"id": 1})[0][1]).__name__ == "Status"


def test_different_values_give_different_results(shop, parses):
    query = "SELECT id FROM customer WHERE age > :age ORDER BY id LIMIT :n"
    young = shop.sql(query, {"age": 20, "n": 100})
    old = shop.sql(query, {"age": 60, "n": 100})
    two = shop.sql(query, {"age": 20, "n": 2})
    none = shop.sql(query, {"age": 20, "n": -1})  # a negative LIMIT means none
    assert parses[0] == 1
    assert len(old) < len(young) and two.rows == young.rows[:2] and none.rows == young.rows
    every = shop.sql("SELECT id, age FROM customer")
    assert {r for r, a in every if a is not None and a > 60} == {r for (r,) in old}


def test_index_choice_does_not_depend_on_the_value(shop, parses):
    query = "EXPLAIN SELECT * FROM customer WHERE id = :id"
    assert shop.sql(query, {"id": 5})[0] == ("IndexScan customer USING primary_key (id = 5)",)
    assert shop.sql(query, {"id": 7})[0] == ("IndexScan customer USING primary_key (id = 7)",)
    ranged = "EXPLAIN SELECT id FROM orders WHERE customer_id BETWEEN :low AND :high"
    plan = shop.sql(ranged, {"low": 2, "high": 4}).rows
    assert "IndexScan orders USING" in plan[0][0] and "customer_id >= 2" in plan[0][0]
    assert parses[0] == 2


def test_literal_only_texts_are_cached(shop, parses):
    for _ in range(3):
        assert len(shop.sql("SELECT id FROM customer WHERE city = 'Oslo'")) > 0
    assert parses[0] == 1


def test_parameter_types_are_part_of_the_key(shop, parses):
    query = "SELECT id FROM customer WHERE age = :age"
    assert len(shop.sql(query, {"age": None})) == 0  # NULL matches nothing
    assert len(shop.sql(query, {"age": 21})) > 0
    assert parses[0] == 2
    with pytest.raises(SqlError) as error:
        shop.sql("SELECT id + :x FROM customer", {"x": "a"})
    assert "arithmetic needs numbers" in str(error.value)
    assert len(shop.sql("SELECT id + :x FROM customer", {"x": 1})) == 40


def test_sender_is_filled_per_call(shop, parses):
    me, you = Identity(b"\x01" * 32), Identity(b"\x02" * 32)
    shop.sql("UPDATE customer SET owner = :who WHERE id = 2", {"who": me})
    shop.sql("UPDATE customer SET owner = :who WHERE id = 3", {"who": you})
    query = "SELECT id FROM customer WHERE owner = :sender"
    assert shop.sql(query, sender=me).rows == [(2,)]
    assert shop.sql(query, sender=you).rows == [(3,)]
    with pytest.raises(SqlError, match=":sender is the caller's identity"):
        shop.sql(query, {"sender": me.hex()})


def test_bad_values_name_the_parameter_on_cache_hits(shop, parses):
    query = "SELECT id FROM customer\nWHERE owner = :who"
    assert len(shop.sql(query, {"who": "ab" * 32})) == 0
    for _ in range(2):
        with pytest.raises(SqlError) as caught:
            shop.sql(query, {"who": "not hex"})
        error = caught.value
        assert ":who" in str(error) and "type mismatch" in str(error)
        assert (error.line, error.column, error.text) == (2, 15, ":who")
    assert parses[0] == 1
    update = "UPDATE customer SET joined = :at WHERE id = :id"
    shop.sql(update, {"at": "2024-01-02T03:04:05Z", "id": 1})
    with pytest.raises(SqlError, match=":at"):
        shop.sql(update, {"at": "yesterday", "id": 1})
    assert parses[0] == 2


def test_dml_with_parameters_runs_each_time(shop, parses):
    insert = "INSERT INTO label (id, name) VALUES (:id, :name), (:id + 100, 'x' || :name)"
    shop.sql(insert, {"id": 1, "name": "a"})
    shop.sql(insert, {"id": 2, "name": "b"})
    update = "UPDATE label SET name = :name WHERE id = :id"
    shop.sql(update, {"id": 1, "name": "z"})
    shop.sql(update, {"id": 2, "name": "y"})
    shop.sql("DELETE FROM label WHERE id = :id", {"id": 101})
    shop.sql("DELETE FROM label WHERE id = :id", {"id": 102})
    assert parses[0] == 3
    assert shop.sql("SELECT id, name FROM label ORDER BY id").rows == [(1, "z"), (2, "y")]
    with pytest.raises(SqlError, match="parameter :name: column label.name"):
        shop.sql(insert, {"id": 3, "name": 5})


def test_permissions_are_checked_on_every_call(shop, parses):
    stranger = Identity(b"\x09" * 32)
    query = "SELECT * FROM audit WHERE id = :id"
    assert len(shop.sql(query, {"id": 1})) == 0  # the owner: cached now
    for _ in range(2):
        with pytest.raises(PermissionDenied):
            shop.sql(query, {"id": 1}, sender=stranger)
    assert parses[0] == 1


def test_the_row_limit_applies_on_the_fast_path(shop):
    query = "SELECT * FROM customer WHERE id = :id"
    assert len(shop.sql(query, {"id": 1}, rows_max=1)) == 1
    with pytest.raises(ResourceExhausted):
        shop.sql(query, {"id": 1}, rows_max=0)
    assert len(shop.sql(query, {"id": 1})) == 1


def test_a_schema_change_invalidates(open_db, tmp_path, parses):
    query = "SELECT * FROM thing WHERE id = :id"
    narrow = open_db(
        "@table(name='thing', public=True)\n"
        "class Thing:\n    id: int = field(primary_key=True)\n    a: int = 0\n",
        path=tmp_path / "narrow",
    )
    wide = open_db(
        "@table(name='thing', public=True)\n"
        "class Thing:\n    id: int = field(primary_key=True)\n    a: int = 0\n    b: str = ''\n",
        path=tmp_path / "wide",
    )
    narrow.sql("INSERT INTO thing VALUES (1, 2)")
    wide.sql("INSERT INTO thing VALUES (1, 2, 'x')")
    assert narrow.sql(query, {"id": 1}).rows == [(1, 2)]
    assert wide.sql(query, {"id": 1}).rows == [(1, 2, "x")]
    assert narrow.sql(query, {"id": 1}).columns == ("id", "a")
    assert wide.sql(query, {"id": 1}).columns == ("id", "a", "b")


def test_a_reopen_invalidates(open_db, tmp_path, parses):
    source = (
        "@table(name='thing', public=True)\nclass Thing:\n    id: int = field(primary_key=True)\n"
    )
    db = open_db(source, path=tmp_path / "db")
    db.sql("INSERT INTO thing VALUES (1)")
    query = "SELECT id FROM thing WHERE id = :id"
    assert db.sql(query, {"id": 1}).rows == [(1,)]
    assert db.sql(query, {"id": 1}).rows == [(1,)]
    assert parses[0] == 2  # the INSERT and the SELECT
    db.close()
    again = open_db(source, path=tmp_path / "db")
    assert again.sql(query, {"id": 1}).rows == [(1,)]
    assert parses[0] == 3


def test_the_cache_is_bounded(shop, parses, monkeypatch):
    monkeypatch.setattr(limits, "sql_statements_cached_max", 3)
    texts = [f"SELECT id FROM customer WHERE id = {n}" for n in range(4)]
    for text in texts:
        shop.sql(text)
    assert len(STATEMENTS) == 3 and parses[0] == 4
    shop.sql(texts[3])  # still cached
    assert parses[0] == 4
    shop.sql(texts[0])  # evicted by the fourth text: parsed again
    assert parses[0] == 5 and len(STATEMENTS) == 3
    monkeypatch.setattr(limits, "sql_statements_cached_max", 0)
    shop.sql(texts[1])
    shop.sql(texts[1])
    assert parses[0] == 7 and len(STATEMENTS) == 0
