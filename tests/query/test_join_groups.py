"""Parenthesised groups of joins in FROM (``FROM (a CROSS JOIN b)``), found refused by
SQLite's sqllogictest corpus (``random/aggregates``): read flat, as SQLite reads them,
and compared with SQLite on the same rows. A group given an alias (``(a JOIN b ON …)
AS j``), or one that cannot be read flat (on the right of an outer join), is SQLite's
"nested FROM": a subquery ``SELECT * FROM a JOIN b ON …`` whose tables' names still
name its columns, compared with SQLite the same way."""

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
    db, lite = _both(open_db)
    for query in QUERIES:
        assert Counter(db.sql(query).rows) == Counter(lite.execute(query).fetchall()), query


NESTED = [
    # An alias: the group's columns by its name (a repeated name made unique as SQLite
    # makes it), and by its tables' names.
    'SELECT j.a, j.b, j."a:1", j."b:1" FROM ( t0 JOIN t1 ON t0.b = t1.b ) AS j',
    "SELECT t0.a, t1.a, j.b FROM ( t0 JOIN t1 ON t0.b = t1.b ) AS j",
    "SELECT COUNT(*), SUM(j.b) FROM ( t0 AS x CROSS JOIN t1 y ) AS j WHERE x.a < y.a",
    "SELECT j.a, y.b FROM ( t0 AS x LEFT JOIN t1 y ON y.a = x.b ) j ORDER BY 1",
    "SELECT * FROM ( t0 AS x LEFT JOIN t1 y ON y.a = x.b ) AS j, t1 WHERE t1.a = j.a",
    "SELECT j.b, COUNT(*) FROM ( t0 AS x JOIN t1 y ON x.a = y.a ) AS j GROUP BY j.b",
    "SELECT * FROM ( t0 ) AS j WHERE j.b > 1",
    "SELECT x.a FROM t0 AS x, ( t0 AS x2 JOIN t1 ON x2.a = t1.a ) AS j WHERE x.a = j.a",
    "SELECT * FROM ( t0 AS x JOIN t1 y ON x.a = y.a ) AS j "
    "JOIN ( t1 AS p JOIN t0 r ON p.a = r.b ) AS k ON j.a = k.a",
    # On the right of an outer join, by the group's alias or its tables' names.
    "SELECT q.a, j.a FROM t1 q LEFT JOIN ( t0 AS x JOIN t1 y ON x.a = y.a ) AS j ON j.b = q.b",
    "SELECT q.a, y.b FROM t1 q LEFT JOIN ( t0 AS x JOIN t1 y ON x.a = y.a ) AS j ON x.b = q.b",
    # Without an alias where it cannot be read flat.
    "SELECT * FROM t0 LEFT JOIN (t1 CROSS JOIN t0 AS k) ON t0.a = t1.a",
    "SELECT t0.a, k.a FROM t0 LEFT JOIN (t1 JOIN t0 AS k ON k.b = t1.b) ON t0.a = t1.a",
    "SELECT * FROM t1 q JOIN ( t0 AS x LEFT JOIN t1 y ON y.a = x.b ) ON q.a = x.a",
    # In a correlated subquery: x.b is the group's, q.a the enclosing query's.
    "SELECT (SELECT COUNT(*) FROM ( t0 AS x JOIN t1 y ON x.a = y.a ) AS j WHERE x.b < q.a) "
    "FROM t1 q",
]


@pytest.mark.parametrize("query", NESTED)
def test_a_group_that_cannot_read_flat_is_a_subquery_as_in_sqlite(open_db: Any, query: str) -> None:
    db, lite = _both(open_db)
    assert Counter(db.sql(query).rows) == Counter(lite.execute(query).fetchall()), query


def test_a_star_over_a_group_names_its_columns_as_sqlite_does(open_db: Any) -> None:
    # SQLite 3.40 refuses ``SELECT *`` over such a group standing alone when a name
    # repeats ("ambiguous column name"), though it answers beside another table; here
    # it answers, its columns named as SQLite names them there.
    db, lite = _both(open_db)
    group = "( t0 JOIN t1 ON t0.b = t1.b )"
    got = db.sql(f"SELECT * FROM {group} AS j")
    assert got.columns == ("a", "b", "a:1", "b:1")
    theirs = lite.execute(f'SELECT j.a, j.b, j."a:1", j."b:1" FROM {group} AS j').fetchall()
    assert Counter(got.rows) == Counter(theirs)
    assert Counter(db.sql(f"SELECT j.* FROM {group} AS j").rows) == Counter(theirs)


@pytest.mark.parametrize(
    "query",
    [
        # t0 is both beside the group and inside it: SQLite says "ambiguous" too.
        "SELECT t0.a FROM t0, ( t0 JOIN t1 ON t0.a = t1.a ) AS j",
        "SELECT * FROM ( ( t0 JOIN t1 ON t0.a = t1.a ) AS k JOIN t0 ON t0.a = k.a ) AS j",
    ],
)
def test_a_name_both_inside_and_beside_a_group_is_ambiguous(open_db: Any, query: str) -> None:
    db, lite = _both(open_db)
    with pytest.raises(sqlite3.OperationalError, match="ambiguous"):
        lite.execute(query)
    with pytest.raises(SqlError, match="ambiguous column 'a'"):
        db.sql(query)


def _both(open_db: Any) -> tuple[Any, sqlite3.Connection]:
    db = open_db(MODULE)
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE TABLE t0 (a INTEGER PRIMARY KEY, b INTEGER)")
    lite.execute("CREATE TABLE t1 (a INTEGER PRIMARY KEY, b INTEGER)")
    for statement in ROWS:
        db.sql(statement)
        lite.execute(statement)
    return db, lite
