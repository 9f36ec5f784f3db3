"""Subqueries in the WHERE of UPDATE and DELETE, against SQLite on the same rows.

``IN (SELECT …)``, ``EXISTS``, ``NOT EXISTS``, ``NOT IN`` and scalar subqueries,
uncorrelated and correlated with the row being changed, including subqueries reading
the table being changed (they see it as it was before the statement, as in SQLite).
Each statement runs on a fresh copy of random rows in both databases; the tables after
it and the rows deleted must agree.
"""

from __future__ import annotations

import random
import sqlite3
from typing import Any

import pytest

from cosmictron.errors import SqlError

MODULE = """
from typing import Optional
from cosmictron import *

@table(name="a", public=True)
class A:
    id: int = field(primary_key=True)
    k: Optional[int] = None
    v: int = 0

@table(name="b", public=True)
class B:
    id: int = field(primary_key=True)
    k: Optional[int] = None
    w: int = 0
"""

SCHEMA = """
CREATE TABLE a (id INTEGER PRIMARY KEY, k INTEGER, v INTEGER NOT NULL);
CREATE TABLE b (id INTEGER PRIMARY KEY, k INTEGER, w INTEGER NOT NULL);
"""

WHERES = [
    "k IN (SELECT k FROM b WHERE w > {x})",
    "k NOT IN (SELECT k FROM b)",
    "k NOT IN (SELECT k FROM b WHERE k IS NOT NULL)",
    "EXISTS (SELECT 1 FROM b WHERE b.k = a.k AND b.w >= {x})",
    "NOT EXISTS (SELECT 1 FROM b WHERE b.k = a.k)",
    "v > (SELECT COUNT(*) FROM b WHERE b.k = a.k)",
    "v = (SELECT MAX(w) FROM b)",
    "id IN (SELECT k FROM a WHERE v = {x})",
    "v < (SELECT AVG(v) FROM a)",
    "EXISTS (SELECT 1 FROM b WHERE b.w > a.v) AND k IS NOT NULL",
]

SEEDS = range(12)


def rows(seed: int) -> dict[str, list[tuple[Any, ...]]]:
    rng = random.Random(seed)

    def k() -> int | None:
        return None if rng.random() < 0.2 else rng.randint(0, 4)

    return {
        "a": [(i, k(), rng.randint(0, 4)) for i in range(1, rng.randint(2, 9))],
        "b": [(i, k(), rng.randint(0, 4)) for i in range(1, rng.randint(1, 7))],
    }


def load(db: Any, oracle: sqlite3.Connection, data: dict[str, list[tuple[Any, ...]]]) -> None:
    for table in ("a", "b"):
        db.sql(f"DELETE FROM {table}")
        oracle.execute(f"DELETE FROM {table}")
        for row in data[table]:
            db.sql(
                f"INSERT INTO {table} VALUES (:i, :k, :v)", {"i": row[0], "k": row[1], "v": row[2]}
            )
            oracle.execute(f"INSERT INTO {table} VALUES (?, ?, ?)", row)


def state(db: Any, oracle: sqlite3.Connection) -> tuple[Any, Any]:
    ours = {t: sorted(db.sql(f"SELECT * FROM {t}").rows) for t in ("a", "b")}
    theirs = {t: sorted(oracle.execute(f"SELECT * FROM {t}").fetchall()) for t in ("a", "b")}
    return ours, theirs


@pytest.fixture
def pair(open_db: Any) -> Any:
    oracle = sqlite3.connect(":memory:")
    oracle.executescript(SCHEMA)
    return open_db(MODULE), oracle


@pytest.mark.parametrize("where", WHERES)
def test_update_and_delete_with_subqueries_agree_with_sqlite(pair: Any, where: str) -> None:
    db, oracle = pair
    for seed in SEEDS:
        x = seed % 4
        condition = where.format(x=x)
        for statement in (
            f"DELETE FROM a WHERE {condition}",
            f"UPDATE a SET v = v + 10 WHERE {condition}",
        ):
            load(db, oracle, rows(seed))
            result = db.sql(statement)
            cursor = oracle.execute(statement)
            ours, theirs = state(db, oracle)
            assert ours == theirs, (statement, seed)
            if statement.startswith("DELETE"):
                assert result.rows_affected == cursor.rowcount, (statement, seed)


def test_a_subquery_in_set_is_refused_naming_it(pair: Any) -> None:
    db, _ = pair
    with pytest.raises(SqlError, match="a subquery in SET"):
        db.sql("UPDATE a SET v = (SELECT MAX(w) FROM b)")


def test_explain_shows_the_subquery_of_a_delete(pair: Any) -> None:
    db, _ = pair
    lines = [line for (line,) in db.sql("EXPLAIN DELETE FROM a WHERE k IN (SELECT k FROM b)")]
    assert lines[-1] == "Delete a" and any("Subquery IN" in line for line in lines)
