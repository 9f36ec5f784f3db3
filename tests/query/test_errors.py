"""User errors: each a ``SqlError`` naming the problem and where it is (line, column, text).

Also the two limits (SQL text size, result rows), parameters and private tables.
"""

from __future__ import annotations

import pytest

from cosmictron import Identity, limits
from cosmictron.errors import PermissionDenied, ResourceExhausted, SqlError
from tests.query.shop import SHOP, load


@pytest.fixture
def shop(open_db):
    db = open_db(SHOP)
    load(db)
    return db


def failure(db, query, params=None):
    with pytest.raises(SqlError) as caught:
        db.sql(query, params)
    return caught.value


def test_unknown_column_lists_the_known_ones(shop):
    error = failure(shop, "SELECT id,\n  nope FROM customer")
    assert "unknown column 'nope'" in str(error) and "name, city, age" in str(error)
    assert (error.line, error.column, error.text) == (2, 3, "nope")


def test_unknown_table_lists_the_tables(shop):
    error = failure(shop, "SELECT * FROM nosuch")
    assert "unknown table 'nosuch'" in str(error) and "customer" in str(error)
    assert (error.line, error.column, error.text) == (1, 15, "nosuch")


def test_unknown_alias(shop):
    error = failure(shop, "SELECT x.id FROM customer c")
    assert "unknown table or alias 'x'" in str(error)


def test_ambiguous_column(shop):
    error = failure(shop, "SELECT id FROM customer c JOIN orders o ON o.customer_id = c.id")
    assert "ambiguous column 'id'" in str(error) and error.column == 8


def test_type_mismatch_points_at_the_literal(shop):
    # Text that looks like a number (a number in SQLite's column, text in its
    # expression) is refused; text that is no number is answered as SQLite's affinity
    # answers it (tests/query/test_affinity.py).
    error = failure(shop, "SELECT id FROM customer WHERE age = '12'")
    assert "type mismatch" in str(error) and error.text == "'12'" and error.column == 37
    assert "type mismatch" in str(failure(shop, "SELECT id FROM customer WHERE name + 1 > 2"))
    assert "type mismatch" in str(failure(shop, "SELECT id FROM customer WHERE age LIKE 'a'"))


def test_syntax_errors_carry_a_position(shop):
    error = failure(shop, "SELECT * FROM customer WHERE")
    assert "syntax error" in str(error)
    error = failure(shop, "SELECT id, FROM customer")
    assert (error.line, error.column, error.text) == (1, 10, ",")


@pytest.mark.parametrize(
    ("query", "construct"),
    [
        ("SELECT hex(name) FROM customer", "HEX"),
        ("SELECT id FROM customer WHERE id IN (SELECT id, age FROM customer)", "2 columns"),
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT COUNT(*) FROM r) SELECT n FROM r",
            "may not aggregate",
        ),
        ("SELECT id FROM customer UNION SELECT id, qty FROM orders", "same number"),
        ("SELECT id FROM customer UNION SELECT id FROM orders ORDER BY age", "does not match"),
        ("SELECT id FROM customer WHERE name IN (SELECT id FROM orders)", "type mismatch"),
        ("SELECT c.id FROM customer c RIGHT JOIN orders o ON o.customer_id = c.id", "RIGHT"),
        ("CREATE TABLE x (a int)", "CREATE"),
        ("SELECT * ", "FROM"),
    ],
)
def test_unsupported_constructs_are_named(shop, query, construct):
    assert construct.lower() in str(failure(shop, query)).lower()


def test_aggregates_are_checked(shop):
    assert "GROUP BY" in str(failure(shop, "SELECT name, COUNT(*) FROM customer"))
    assert "not allowed in WHERE" in str(
        failure(shop, "SELECT id FROM customer WHERE COUNT(*) > 1")
    )


def test_parameters_bind_values_never_text(shop):
    rows = shop.sql("SELECT id FROM customer WHERE name = :name", {"name": "x' OR '1'='1"})
    assert rows.rows == []
    rows = shop.sql("SELECT id FROM customer WHERE id = :id LIMIT :n", {"id": 3, "n": 1})
    assert rows.rows == [(3,)]


def test_a_missing_parameter_is_named(shop):
    error = failure(shop, "SELECT id FROM customer WHERE id = :wanted", {"other": 1})
    assert ":wanted" in str(error) and error.line == 1


def test_sender_parameter_is_the_caller(shop):
    me = Identity.random()
    shop.sql("UPDATE customer SET owner = :who WHERE id = 2", {"who": me})
    rows = shop.sql("SELECT id FROM customer WHERE owner = :sender", sender=me)
    assert rows.rows == [(2,)]


def test_sql_text_limit(shop, monkeypatch):
    monkeypatch.setattr(limits, "sql_text_bytes_max", 40)
    shop.sql("SELECT id FROM customer")
    error = failure(shop, "SELECT id FROM customer WHERE name = 'a very long name'")
    assert "sql_text_bytes_max" in str(error)


def test_row_limit_default_and_per_call(shop, monkeypatch):
    with pytest.raises(ResourceExhausted, match="more than 10 rows"):
        shop.sql("SELECT id FROM orders", rows_max=10)
    assert len(shop.sql("SELECT id FROM orders LIMIT 10", rows_max=10)) == 10
    monkeypatch.setattr(limits, "query_rows_max", 39)
    with pytest.raises(ResourceExhausted):
        shop.sql("SELECT id FROM customer")
    assert len(shop.sql("SELECT id FROM customer", rows_max=40)) == 40


def test_private_tables_are_for_the_owner(shop):
    shop.sql("INSERT INTO audit (text) VALUES ('secret')")
    stranger = Identity.random()
    with pytest.raises(PermissionDenied, match="audit"):
        shop.sql("SELECT * FROM audit", sender=stranger)
    with pytest.raises(PermissionDenied, match="audit"):
        shop.sql("SELECT c.id FROM customer c JOIN audit a ON a.id = c.id", sender=stranger)
    with pytest.raises(PermissionDenied, match="audit"):
        shop.sql("EXPLAIN SELECT * FROM audit", sender=stranger)
    assert len(shop.sql("SELECT id FROM customer", sender=stranger)) == 40
    assert shop.sql("SELECT text FROM audit").rows == [("secret",)]


def test_text_that_is_not_sql_with_a_comma_is_a_syntax_error(shop):
    """The dangling-comma check tokenizes before the parser does: text that does not
    tokenize (JSON sent as SQL text, found by the shape fuzzer) is a syntax error there
    too, not an internal one."""
    text = '{"query": "SELECT 1", "params": {"p": ' + "[" * 40 + "]" * 40 + "}}"
    with pytest.raises(SqlError, match="syntax error"):
        shop.sql(text)
