"""The cost-based join order: same rows as SQLite in every FROM order, one plan for all.

Each test loads the same rows into Cosmictron and into the standard library's SQLite,
runs a join written in every FROM order (or a random sample of them), and compares
rows; EXPLAIN's ``JoinOrder`` line shows the order chosen, which must not depend on how
the query was written, must start where a filter leaves few rows, and must never join a
table with no condition to the tables before it while one with a condition is left.
"""

from __future__ import annotations

import itertools
import random
import sqlite3

import pytest

from cosmictron.datastore import ColumnSchema, Datastore, IndexSchema, ModuleSchema, TableSchema
from cosmictron.datastore.types import I64
from cosmictron.query.statistics import datastore_statistics

MODULE = """
@table(name="region", public=True)
class Region:
    id: int = field(primary_key=True)
    name: str = ""

@table(name="customer", public=True)
class Customer:
    id: int = field(primary_key=True)
    region_id: int = field(default=0, index="btree")
    score: int = 0

@table(name="orders", public=True, indexes=[Index("by_customer_day", ("customer_id", "day"))])
class Orders:
    id: int = field(primary_key=True)
    customer_id: int = field(default=0, index="btree")
    product_id: int = 0
    day: int = 0

@table(name="product", public=True)
class Product:
    id: int = field(primary_key=True)
    price: Optional[int] = None
"""

SQLITE = """
CREATE TABLE region(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE customer(id INTEGER PRIMARY KEY, region_id INTEGER, score INTEGER);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER, product_id INTEGER, day INTEGER);
CREATE TABLE product(id INTEGER PRIMARY KEY, price INTEGER);
"""

ALIASES = {"r": "region r", "c": "customer c", "o": "orders o", "p": "product p"}


def _rows(seed: int = 3) -> dict[str, list[tuple[int | str | None, ...]]]:
    rng = random.Random(seed)
    return {
        "region": [(i, f"r{i}") for i in range(5)],
        "customer": [(i, rng.randrange(6), rng.randrange(100)) for i in range(300)],
        "orders": [
            (i, rng.randrange(320), rng.randrange(60), rng.randrange(30)) for i in range(3000)
        ],
        "product": [(i, rng.choice([None, *range(50)])) for i in range(50)],
    }


@pytest.fixture
def both(open_db):
    db = open_db(MODULE)
    lite = sqlite3.connect(":memory:")
    lite.executescript(SQLITE)
    for name, rows in _rows().items():
        marks = ", ".join("?" * len(rows[0]))
        lite.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
        for start in range(0, len(rows), 500):
            values = ", ".join(
                repr(row).replace("None", "NULL") for row in rows[start : start + 500]
            )
            db.sql(f"INSERT INTO {name} VALUES {values}")
    return db, lite


def _order(db, query, params=None) -> str:
    lines = [line for (line,) in db.sql("EXPLAIN " + query, params).rows]
    (found,) = [line for line in lines if line.startswith("JoinOrder")]
    return found


def _same(db, lite, query, lite_query=None, params=()) -> list[tuple]:
    named = dict(params) if isinstance(params, dict) else None
    got = sorted(db.sql(query, named).rows, key=repr)
    expected = sorted(
        lite.execute(lite_query or query, tuple(named.values()) if named else params), key=repr
    )
    assert got == expected, query
    return got


def test_every_from_order_gives_sqlites_rows_and_one_plan(both):
    db, lite = both
    where = (
        "WHERE o.customer_id = c.id AND o.product_id = p.id AND c.region_id = r.id "
        "AND r.name = 'r2' AND p.price < 20"
    )
    orders = set()
    for perm in itertools.permutations("rcop"):
        query = f"SELECT c.id, o.id, p.price FROM {', '.join(ALIASES[t] for t in perm)} {where}"
        assert _same(db, lite, query)
        orders.add(_order(db, query))
    assert len(orders) == 1, orders
    (chosen,) = orders
    assert chosen.startswith("JoinOrder r "), chosen  # one region row: start there


def test_no_cross_product_while_a_connecting_condition_exists(both):
    db, lite = both
    # r relates only to c, and p only to o: r then p would be a cross product.
    query = (
        "SELECT count(*) FROM region r, product p, customer c, orders o "
        "WHERE c.region_id = r.id AND o.customer_id = c.id AND o.product_id = p.id "
        "AND r.id = 1 AND p.id = 7"
    )
    _same(db, lite, query)
    names = [part.split(" ")[0] for part in _order(db, query)[len("JoinOrder ") :].split(" -> ")]
    related = {frozenset("rc"), frozenset("oc"), frozenset("op")}
    for position in range(1, len(names)):
        assert any(frozenset((names[position], e)) in related for e in names[:position]), names


def test_left_join_keeps_its_meaning_after_the_inner_joins_are_reordered(both):
    db, lite = both
    query = (
        "SELECT c.id, o.id, p.price FROM orders o JOIN customer c ON o.customer_id = c.id "
        "LEFT JOIN product p ON p.id = o.product_id AND p.price > 40 WHERE c.score < 10"
    )
    rows = _same(db, lite, query)
    assert any(price is None for _, _, price in rows)  # the LEFT join padded some rows


def test_a_parametrised_join_is_right_for_every_binding(both):
    db, lite = both
    query = "SELECT o.id FROM orders o, customer c WHERE o.customer_id = c.id AND c.score = :s"
    lite_query = query.replace(":s", "?")
    for score in (3, 50, 77, 3):
        _same(db, lite, query, lite_query, {"s": score})


def test_the_order_follows_the_tables_sizes(open_db):
    db = open_db(MODULE)
    query = "SELECT count(*) FROM customer c, orders o WHERE o.customer_id = c.id AND c.score = 1"
    db.sql("INSERT INTO customer VALUES " + ", ".join(f"({i}, 0, {i % 100})" for i in range(200)))
    db.sql("INSERT INTO orders VALUES (0, 1, 0, 3)")
    assert _order(db, query).startswith("JoinOrder o ")  # one order: look its customer up
    assert db.sql(query).rows == [(1,)]
    db.sql(
        "INSERT INTO orders VALUES " + ", ".join(f"({i}, {i % 200}, 0, 3)" for i in range(1, 2000))
    )
    assert _order(db, query).startswith("JoinOrder c ")  # few customers, each a lookup
    assert db.sql(query).rows == [(21,)]  # customers 1 and 101: 11 + 10 orders


def test_many_tables_are_ordered_greedily_and_stay_right(open_db):
    count = 12
    source = "\n".join(
        f'@table(name="t{i}", public=True)\nclass T{i}:\n    a: int = field(primary_key=True)\n'
        f"    b: int = 0\n"
        for i in range(count)
    )
    db = open_db(source)
    lite = sqlite3.connect(":memory:")
    rng = random.Random(5)
    for i in range(count):
        lite.execute(f"CREATE TABLE t{i}(a INTEGER PRIMARY KEY, b INTEGER)")
        rows = [(k, rng.randrange(10)) for k in range(10)]
        lite.executemany(f"INSERT INTO t{i} VALUES (?, ?)", rows)
        db.sql(f"INSERT INTO t{i} VALUES " + ", ".join(map(repr, rows)))
    tables = [f"t{i}" for i in range(count)]
    for _ in range(3):
        rng.shuffle(tables)
        where = " AND ".join(f"t{i}.b = t{i + 1}.a" for i in range(count - 1))
        query = f"SELECT t0.a, t{count - 1}.b FROM {', '.join(tables)} WHERE {where} AND t3.a < 6"
        _same(db, lite, query)


def test_equality_on_a_prefix_and_a_range_on_the_next_column_use_one_index(both):
    db, lite = both
    query = "SELECT id FROM orders WHERE customer_id = 7 AND day >= 10 AND day < 20"
    lines = [line for (line,) in db.sql("EXPLAIN " + query).rows]
    assert lines[0] == (
        "IndexScan orders USING by_customer_day ((customer_id, day) STARTS WITH (7,) "
        "AND day >= 10 AND day < 20)"
    )
    _same(db, lite, query)
    for low, high in ((None, 5), (25, None), (3, 3)):
        parts = ["customer_id = :c"]
        if low is not None:
            parts.append(f"day > {low}")
        if high is not None:
            parts.append(f"day <= {high}")
        text = "SELECT id, day FROM orders WHERE " + " AND ".join(parts)
        for customer in (7, 100, 319):
            _same(db, lite, text, text.replace(":c", "?"), {"c": customer})


def test_statistics_follow_inserts_and_deletes_without_a_scan():
    table = TableSchema(
        "t",
        (ColumnSchema("id", I64), ColumnSchema("k", I64)),
        ("id",),
        indexes=(IndexSchema("k", ("k",)),),
    )
    store = Datastore(ModuleSchema((table,)))
    stats = datastore_statistics(store)
    live = store.tables["t"]
    assert (stats.rows("t"), stats.distinct("t", "k"), stats.distinct("t", "id")) == (0, 0, 0)
    for number in range(10):
        row = (number, number % 3)
        live.rows[number] = row
        live.indexes[0].add(row, number)
    assert (stats.rows("t"), stats.distinct("t", "k"), stats.distinct("t", "id")) == (10, 3, 10)
    assert stats.distinct("t", "nothing") is None
