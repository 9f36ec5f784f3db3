"""EXPLAIN shows the plan the rules chose: index scans, join algorithms, the pipeline.

Each test asserts on the plan lines (data-flow order: inputs first), then runs the query
to check the chosen plan gives the right rows.
"""

from __future__ import annotations

import pytest

from tests.query.shop import SHOP, load


@pytest.fixture
def shop(open_db):
    db = open_db(SHOP)
    load(db)
    return db


def plan(db, query, params=None):
    result = db.sql("EXPLAIN " + query, params)
    assert result.columns == ("plan",)
    # A SELECT's last line says how a subscription would keep it (tests/subscription).
    return [line for (line,) in result.rows if not line.startswith("Subscription: ")]


def test_primary_key_equality_uses_the_primary_key(shop):
    lines = plan(shop, "SELECT * FROM customer WHERE id = 5")
    assert lines[0] == "IndexScan customer USING primary_key (id = 5)"
    assert not any(line.startswith("Filter") for line in lines)
    assert [row[0] for row in shop.sql("SELECT * FROM customer WHERE id = 5")] == [5]


def test_hash_index_equality_uses_the_index(shop):
    owner = "ab" * 32
    lines = plan(shop, "SELECT id FROM customer WHERE owner = :o", {"o": owner})
    assert lines[0].startswith("IndexScan customer USING owner (owner = ")


def test_btree_range_uses_the_index_and_keeps_the_filter(shop):
    lines = plan(shop, "SELECT id FROM orders WHERE customer_id > 40 AND customer_id <= 42")
    assert (
        lines[0] == "IndexScan orders USING customer_id (customer_id >= 40 AND customer_id <= 42)"
    )
    assert lines[1].startswith("Filter")
    rows = shop.sql("SELECT customer_id FROM orders WHERE customer_id > 40 AND customer_id <= 42")
    assert rows.rows and all(40 < value <= 42 for (value,) in rows)


def test_hash_index_is_not_used_for_ranges(shop):
    lines = plan(shop, "SELECT id FROM customer WHERE owner > :o", {"o": "00" * 32})
    assert lines[0] == "Scan customer"


def test_in_list_on_the_primary_key(shop):
    lines = plan(shop, "SELECT id FROM customer WHERE id IN (3, 1, 3)")
    assert lines[0] == "IndexScan customer USING primary_key (id IN (3, 1))"
    assert sorted(shop.sql("SELECT id FROM customer WHERE id IN (3, 1, 3)").rows) == [(1,), (3,)]


def test_unindexed_filter_scans(shop):
    assert plan(shop, "SELECT id FROM customer WHERE age = 30")[:2] == [
        "Scan customer",
        "Filter (age = 30)",
    ]


def test_join_on_an_indexed_column_uses_index_nested_loop(shop):
    lines = plan(shop, "SELECT c.id, o.id FROM customer c JOIN orders o ON o.customer_id = c.id")
    assert lines[0] == "Scan customer AS c"
    assert lines[1].startswith("IndexNestedLoopJoin INNER orders AS o USING customer_id")


def test_join_without_an_index_uses_a_hash_join(shop):
    lines = plan(shop, "SELECT c.id, o.id FROM customer c JOIN orders o ON o.qty = c.age")
    assert any(line.startswith("HashJoin INNER ON c.age = o.qty") for line in lines)


def test_join_without_equality_uses_nested_loop(shop):
    lines = plan(shop, "SELECT c.id FROM customer c JOIN orders o ON o.qty < c.age")
    assert any(line.startswith("NestedLoopJoin INNER") for line in lines)


def test_where_filters_are_pushed_to_their_table(shop):
    lines = plan(
        shop,
        "SELECT c.id FROM customer c, orders o WHERE c.id = o.customer_id AND o.qty > 3 "
        "AND c.id = 7",
    )
    assert lines[0] == "IndexScan customer AS c USING primary_key (id = 7)"
    assert lines[1].startswith("IndexNestedLoopJoin INNER orders AS o USING customer_id")
    assert "(o.qty > 3)" in lines[1]


def test_left_join_keeps_where_on_the_right_table_above_the_join(shop):
    lines = plan(
        shop,
        "SELECT o.id FROM orders o LEFT JOIN customer c ON c.id = o.customer_id WHERE c.id IS NULL",
    )
    assert lines[1].startswith("IndexNestedLoopJoin LEFT customer AS c USING primary_key")
    assert lines[2] == "Filter c.id IS NULL"


def test_the_whole_pipeline_is_shown(shop):
    lines = plan(
        shop,
        "SELECT DISTINCT city, COUNT(*) FROM customer WHERE age > 1 GROUP BY city "
        "HAVING COUNT(*) > 1 ORDER BY city LIMIT 2 OFFSET 1",
    )
    kinds = [line.split()[0] for line in lines]
    assert kinds == [
        "Scan",
        "Filter",
        "Aggregate",
        "Filter",
        "Project",
        "Distinct",
        "Sort",
        "Limit",
    ]
    assert lines[-1] == "Limit 2 OFFSET 1"


def test_explain_of_dml_changes_nothing(shop):
    before = shop.tx_offset
    lines = plan(shop, "DELETE FROM orders WHERE id = 3")
    assert lines == ["IndexScan orders USING primary_key (id = 3)", "Delete orders"]
    assert shop.tx_offset == before
