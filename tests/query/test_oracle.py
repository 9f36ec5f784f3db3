"""Oracle: the same queries on Cosmictron and on stdlib sqlite3 over the same rows.

SQLite runs with ``case_sensitive_like`` on (our LIKE is case-sensitive, as in standard
SQL). Results are compared exactly when the query orders them completely, else as
multisets; floats are rounded, since sums may add in a different order.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from tests.query.shop import SHOP, customers, load, orders

QUERIES = [
    # filters
    "SELECT id, name FROM customer WHERE age > 40",
    "SELECT id FROM customer WHERE age >= 30 AND age < 50 OR city = 'Oslo'",
    "SELECT id FROM customer WHERE NOT (age > 40)",
    "SELECT id FROM customer WHERE age <> 30",
    "SELECT id FROM customer WHERE age != 30 AND city IS NOT NULL",
    "SELECT id, city FROM customer WHERE city IS NULL",
    "SELECT id FROM customer WHERE city IN ('Oslo', 'Lima')",
    "SELECT id FROM customer WHERE city NOT IN ('Oslo', 'Lima')",
    "SELECT id FROM customer WHERE age IN (21, 30, NULL)",
    "SELECT id FROM customer WHERE age NOT IN (21, 30, NULL)",
    "SELECT id FROM customer WHERE age BETWEEN 20 AND 35",
    "SELECT id FROM customer WHERE age NOT BETWEEN 20 AND 35",
    "SELECT id, name FROM customer WHERE name LIKE 'a%'",
    "SELECT id, name FROM customer WHERE name LIKE '_o_'",
    "SELECT id, name FROM customer WHERE name NOT LIKE '%n%'",
    "SELECT id FROM orders WHERE note LIKE '50%'",
    "SELECT id FROM customer WHERE id = 5",
    "SELECT id FROM customer WHERE id > 35",
    "SELECT id FROM customer WHERE 10 > id",
    "SELECT id FROM customer WHERE id BETWEEN 3 AND 6 AND age IS NULL",
    "SELECT id FROM orders WHERE customer_id = 3",
    "SELECT id FROM orders WHERE customer_id IN (1, 2, 3) AND qty > 2",
    "SELECT id FROM orders WHERE customer_id >= 40",
    "SELECT id FROM customer WHERE (age > 30) = (city = 'Oslo')",
    "SELECT id FROM customer WHERE NOT (city = 'Oslo' AND age > 30)",
    "SELECT id FROM customer WHERE city = 'Oslo' OR age IS NULL OR NOT (age < 60)",
    # arithmetic and literals
    "SELECT id, qty * 2 + 1, qty / 2, qty % 5, -qty FROM orders",
    "SELECT id, amount * qty, amount / 2, amount + 1 FROM orders",
    "SELECT id, qty / 0, (qty + 1) * (qty - 1) FROM orders WHERE id < 10",
    "SELECT id, 7 / 2, 7.0 / 2, -7 / 2, 7 % 3, 'x', TRUE, FALSE, NULL FROM customer WHERE id = 1",
    "SELECT id, name || '!' FROM customer WHERE id < 5",
    # ordering, limits, distinct
    "SELECT id, age FROM customer ORDER BY age, id",
    "SELECT id, age FROM customer ORDER BY age DESC, id DESC",
    "SELECT id, city FROM customer ORDER BY city DESC, id LIMIT 7",
    "SELECT id, name FROM customer ORDER BY name, id LIMIT 5 OFFSET 3",
    "SELECT id AS k, age FROM customer ORDER BY k DESC LIMIT 3",
    "SELECT id, age FROM customer ORDER BY 2, 1 LIMIT 10",
    "SELECT id FROM customer ORDER BY age * -1, id",
    "SELECT DISTINCT city FROM customer",
    "SELECT DISTINCT city, age > 40 FROM customer",
    "SELECT DISTINCT note FROM orders ORDER BY note",
    "SELECT id FROM orders ORDER BY amount, id LIMIT 10 OFFSET 100",
    # aggregates
    "SELECT COUNT(*), COUNT(age), COUNT(DISTINCT city), SUM(age), MIN(age), MAX(age), AVG(age) "
    "FROM customer",
    "SELECT COUNT(*), SUM(age), MIN(name), AVG(age) FROM customer WHERE id > 1000",
    "SELECT city, COUNT(*), AVG(age) FROM customer GROUP BY city",
    "SELECT city, COUNT(*) AS n FROM customer GROUP BY city HAVING COUNT(*) > 7 ORDER BY n, city",
    "SELECT customer_id, SUM(qty), SUM(amount), MAX(amount) FROM orders GROUP BY customer_id",
    "SELECT note, COUNT(DISTINCT customer_id) FROM orders GROUP BY note ORDER BY note",
    "SELECT qty % 3, COUNT(*) FROM orders GROUP BY qty % 3",
    "SELECT city, SUM(age) * 2 FROM customer GROUP BY city HAVING MIN(age) < 30",
    "SELECT SUM(amount) / COUNT(amount), AVG(amount) FROM orders",
    "SELECT COUNT(*) FROM orders WHERE amount IS NULL",
    "SELECT city, age, COUNT(*) FROM customer GROUP BY city, age ORDER BY 3 DESC, 1, 2 LIMIT 5",
    # joins
    "SELECT c.id, o.id FROM customer c JOIN orders o ON o.customer_id = c.id",
    "SELECT c.name, o.amount FROM customer c INNER JOIN orders o ON c.id = o.customer_id "
    "WHERE o.qty > 5",
    "SELECT c.id, o.id FROM customer c LEFT JOIN orders o ON o.customer_id = c.id",
    "SELECT o.id, c.name FROM orders o LEFT JOIN customer c ON c.id = o.customer_id",
    "SELECT o.id, c.name FROM orders o LEFT JOIN customer c ON c.id = o.customer_id "
    "WHERE c.id IS NULL",
    "SELECT o.id, c.name FROM orders o LEFT JOIN customer c ON c.id = o.customer_id AND c.age > 40",
    "SELECT c.id, o.id FROM customer c, orders o WHERE c.id = o.customer_id AND c.city = 'Oslo'",
    "SELECT c.id, o.id FROM customer c JOIN orders o ON o.qty = c.id",
    "SELECT c.id, o.id FROM customer c JOIN orders o ON o.customer_id < c.id "
    "WHERE c.id < 4 AND o.id < 6",
    "SELECT a.id, b.id FROM customer a JOIN customer b ON a.age = b.age AND a.id < b.id",
    "SELECT o.*, c.name FROM customer c JOIN orders o ON o.customer_id = c.id WHERE o.qty = 7",
    "SELECT c.city, COUNT(o.id), SUM(o.qty) FROM customer c LEFT JOIN orders o "
    "ON o.customer_id = c.id GROUP BY c.city",
    "SELECT c.id, o1.id, o2.id FROM customer c JOIN orders o1 ON o1.customer_id = c.id "
    "JOIN orders o2 ON o2.customer_id = c.id AND o2.id > o1.id WHERE c.id < 10",
    "SELECT c.id, o.id, l.id FROM customer c LEFT JOIN orders o ON o.customer_id = c.id "
    "LEFT JOIN customer l ON l.id = o.qty",
    "SELECT c.id, o.id FROM customer c JOIN orders o ON o.customer_id = c.id "
    "ORDER BY o.amount DESC, o.id LIMIT 8",
    "SELECT DISTINCT c.city FROM customer c JOIN orders o ON o.customer_id = c.id "
    "WHERE o.note = 'gift'",
]


def _normal(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def _rows(rows: Any) -> list[tuple[Any, ...]]:
    return [tuple(_normal(v) for v in row) for row in rows]


def _sorted(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=lambda row: [(v is not None, str(type(v)), v) for v in row])


@pytest.fixture(scope="module")
def reference() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:")
    connection.execute("PRAGMA case_sensitive_like = ON")
    connection.execute("CREATE TABLE customer (id INTEGER PRIMARY KEY, name, city, age)")
    connection.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id, amount, qty, note)"
    )
    connection.executemany("INSERT INTO customer VALUES (?, ?, ?, ?)", customers())
    connection.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", orders())
    return connection


@pytest.fixture
def shop(open_db):
    db = open_db(SHOP)
    load(db)
    return db


def test_queries_match_sqlite(shop, reference):
    failures = []
    for query in QUERIES:
        expected = _rows(reference.execute(query).fetchall())
        actual = _rows(shop.sql(query).rows)
        if "ORDER BY" not in query:  # every ORDER BY above orders completely
            expected, actual = _sorted(expected), _sorted(actual)
        if expected != actual:
            failures.append(f"{query}\n  sqlite:     {expected[:8]}\n  cosmictron: {actual[:8]}")
    assert not failures, f"{len(failures)} of {len(QUERIES)} differ:\n" + "\n".join(failures)


def test_there_are_enough_queries():
    assert len(QUERIES) >= 50


def test_column_names_follow_sqlite(shop, reference):
    query = "SELECT id, name AS who, COUNT(*), age + 1 FROM customer GROUP BY id, name, age"
    cursor = reference.execute(query)
    assert shop.sql(query).columns == tuple(d[0] for d in cursor.description)
