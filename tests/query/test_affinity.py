"""A number compared with text that is no number, or with a blob, answers as SQLite's
affinity rules do (``query/affinity.py``): the value stays as it is and storage classes
order NULL < numbers < text < blobs. Found in the corpus (``evidence/in1``: ``'hello'
IN t1``, ``x'303132' IN t1`` over an integer column), each checked against SQLite (the
standard library's sqlite3) on the same rows."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from cosmictron.errors import SqlError

MODULE = """
from typing import Optional
from cosmictron import table, field

@table(name="t", public=True)
class T:
    id: int = field(primary_key=True)
    a: Optional[int] = None
    r: Optional[float] = None

@table(name="t1", public=True)
class T1:
    x: int = field(primary_key=True)

@table(name="t2", public=True)
class T2:
    id: int = field(primary_key=True)
    y: Optional[int] = None
"""

STATEMENTS = [
    "INSERT INTO t VALUES (1, 1, 0.5), (2, NULL, NULL), (3, 3, 2.0)",
    "INSERT INTO t1 VALUES (1), (2), (4)",
    "INSERT INTO t2 VALUES (1, 1), (2, NULL)",
]


@pytest.fixture
def both(open_db: Any) -> tuple[Any, sqlite3.Connection]:
    db = open_db(MODULE)
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, r REAL)")
    lite.execute("CREATE TABLE t1 (x INTEGER PRIMARY KEY)")
    lite.execute("CREATE TABLE t2 (id INTEGER PRIMARY KEY, y INTEGER)")
    for statement in STATEMENTS:
        db.sql(statement)
        lite.execute(statement)
    return db, lite


QUERIES = [
    "SELECT 'hello' IN t1, 'hello' NOT IN t1, x'303132' IN t1, "
    "'hello' IN (SELECT * FROM t1), x'303132' NOT IN (SELECT * FROM t1)",
    "SELECT 'hello' IN (SELECT y FROM t2), 'hello' NOT IN (SELECT y FROM t2), "
    "'hello' IN (SELECT y FROM t2 WHERE 0)",
    "SELECT 'hello' IN (SELECT x FROM t1 WHERE x = t.id) FROM t ORDER BY id",
    "SELECT id, a = 'hello', a <> 'hello', a < 'hello', a <= 'x', a > 'hello', a >= 'x', "
    "a IS 'hello', a IS NOT 'hello' FROM t ORDER BY id",
    "SELECT id, 'hello' = a, 'hello' < a, 'hello' > a, x'00' > a, x'00' < r, r = 'abc' "
    "FROM t ORDER BY id",
    "SELECT id FROM t WHERE a < 'zz' ORDER BY id",
    "SELECT id FROM t WHERE a IN ('hello', 3) ORDER BY id",
    "SELECT id, a IN ('hello'), a NOT IN ('hello', x'01') FROM t ORDER BY id",
    "SELECT id FROM t WHERE id = 'abc' OR id > 2 ORDER BY id",
    "SELECT 1 = 'a', 1 < 'a', 'a' > 2.5, NULL = 'a'",
]


@pytest.mark.parametrize("query", QUERIES)
def test_a_number_against_text_that_is_no_number_answers_as_sqlite(both: Any, query: str) -> None:
    db, lite = both
    mine = [tuple(int(v) if isinstance(v, bool) else v for v in row) for row in db.sql(query)]
    assert mine == lite.execute(query).fetchall(), query


@pytest.mark.parametrize("text", ["'12'", "' 1.5 '", "'-3e2'"])
def test_text_that_looks_like_a_number_is_still_refused(both: Any, text: str) -> None:
    """SQLite would convert it (numeric affinity) for a column but not for an
    expression; Cosmictron refuses rather than guess which."""
    db, _ = both
    with pytest.raises(SqlError, match="type mismatch"):
        db.sql(f"SELECT id FROM t WHERE a = {text}")
