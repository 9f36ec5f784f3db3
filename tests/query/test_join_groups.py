"""Parenthesised groups of joins in FROM (``FROM (a CROSS JOIN b)``), found refused by
SQLite's sqllogictest corpus (``random/aggregates``): read flat, as SQLite reads them,
and compared with SQLite on the same rows."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

import pytest

from cosmictron.errors import SqlError

MODULE = """
from typing import Optional

@table(name="t0", public=True)
class T0:
    a: int = field(primary_key=True)
    b: Optional[int] = None

@table(name="t1", public=True)
class T1:
    a: int = field(primary_key=True)
    b: Optional[int] = None
"""

ROWS = [
    "INSERT INTO t0 VALUES (1, 2), (2, 3), (3, NULL), (5, 1)",
    "INSERT INTO t1 VALUES (1, 1), (2, 3), (4, 2), (5, NULL)",
]

QUERIES = [
    "SELECT MIN(x.a), COUNT(*) FROM ( t0 AS x CROSS JOIN t1 y )",
    "SELECT * FROM ( t0 AS x CROSS JOIN t1 y ) WHERE x.b = y.b",
    "SELECT * FROM t0 AS z, ( t0 AS x CROSS JOIN t1 y ) WHERE x.b = y.b AND z.a = x.a",
    "SELECT * FROM t0 AS z JOIN ( t0 AS x JOIN t1 y ON x.b = y.b ) ON z.a = y.a",
    "SELECT * FROM ( ( t0 AS x CROSS JOIN t1 y ) CROSS JOIN t0 w ) WHERE w.a = 1",
    "SELECT * FROM ( t0 AS x CROSS JOIN t1 y ) JOIN t1 q ON q.a = x.a",
    "SELECT * FROM (t0) JOIN (t1) ON t0.a = t1.a",
    "SELECT * FROM t0 JOIN (t1) ON t0.a = t1.a",
    "SELECT COUNT(*) FROM ( t0 AS x CROSS JOIN t1 y ) LEFT JOIN t1 z ON z.a = y.b",
]


def test_parenthesised_inner_joins_read_as_sqlite_reads_them(open_db: Any) -> None:
    db = open_db(MODULE)
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE TABLE t0 (a INTEGER PRIMARY KEY, b INTEGER)")
    lite.execute("CREATE TABLE t1 (a INTEGER PRIMARY KEY, b INTEGER)")
    for statement in ROWS:
        db.sql(statement)
        lite.execute(statement)
    for query in QUERIES:
        assert Counter(db.sql(query).rows) == Counter(lite.execute(query).fetchall()), query


def test_a_parenthesised_group_on_the_right_of_a_left_join_is_refused_by_name(
    open_db: Any,
) -> None:
    db = open_db(MODULE)
    with pytest.raises(SqlError, match="parenthesised join"):
        db.sql("SELECT * FROM t0 LEFT JOIN (t1 CROSS JOIN t0 AS k) ON t0.a = t1.a")
