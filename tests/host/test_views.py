"""``CREATE VIEW`` / ``DROP VIEW`` through ``db.sql``: the answers SQLite gives, the
errors SQLite gives, views kept across a restart (log and snapshot), only the owner
changing them, and a non-owner's visibility filters applied inside them."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

import pytest

from cosmictron.errors import PermissionDenied, SqlError
from tests.host.test_row_level_security import BOB, MODULE, PEOPLE, post, visible

TABLES = """
from typing import Optional

@table(name="t1", public=True)
class T1:
    a: int = field(primary_key=True)
    b: Optional[int] = None
    c: Optional[str] = None

@table(name="t2", public=True)
class T2:
    x: int = field(primary_key=True)
    y: Optional[int] = None
"""

ROWS = [
    "INSERT INTO t1 VALUES (1, 10, 'p'), (2, NULL, 'q'), (3, 30, NULL), (4, 10, 'p')",
    "INSERT INTO t2 VALUES (1, 3), (2, 4), (3, NULL), (5, 1)",
]

VIEWS = [
    "CREATE VIEW v_big AS SELECT a, b FROM t1 WHERE b > 5",
    "CREATE VIEW v_named(k, total) AS SELECT c, SUM(b) FROM t1 GROUP BY c",
    "CREATE VIEW v_nested AS SELECT a FROM v_big WHERE a > 1",
    "CREATE VIEW v_join AS SELECT t1.a, t2.y FROM t1 JOIN t2 ON t1.a = t2.x",
    "CREATE VIEW v_union AS SELECT a FROM t1 UNION SELECT y FROM t2",
    "CREATE VIEW v_const AS SELECT 1 AS one, 'two' AS two",
]

QUERIES = [
    "SELECT * FROM v_big",
    "SELECT k, total FROM v_named",
    "SELECT * FROM v_nested",
    "SELECT a, y FROM v_join WHERE y IS NOT NULL",
    "SELECT * FROM v_union",
    "SELECT one, two FROM v_const",
    "SELECT v.a, t2.y FROM v_big AS v JOIN t2 ON v.a = t2.x",
    "SELECT COUNT(*) FROM v_big, v_union",
    "SELECT a FROM t1 WHERE a IN (SELECT a FROM v_nested)",
    "SELECT (SELECT MAX(a) FROM v_big), (SELECT COUNT(*) FROM v_union)",
    "WITH w AS (SELECT a FROM v_big) SELECT a FROM w",
    "SELECT a FROM v_big UNION ALL SELECT a FROM v_nested",
]


def _sqlite() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t1 (a INTEGER PRIMARY KEY, b INTEGER, c TEXT)")
    connection.execute("CREATE TABLE t2 (x INTEGER PRIMARY KEY, y INTEGER)")
    for statement in ROWS + VIEWS:
        connection.execute(statement)
    return connection


def _opened(open_db: Any) -> Any:
    db = open_db(TABLES)
    for statement in ROWS + VIEWS:
        db.sql(statement)
    return db


def test_views_answer_as_sqlite_does(open_db: Any) -> None:
    db = _opened(open_db)
    lite = _sqlite()
    for query in QUERIES:
        assert Counter(db.sql(query).rows) == Counter(lite.execute(query).fetchall()), query
    assert db.sql("SELECT k, total FROM v_named").columns == ("k", "total")


def test_a_view_reads_the_rows_of_now_and_is_never_a_stale_plan(open_db: Any) -> None:
    db = _opened(open_db)
    before = db.sql("SELECT * FROM v_nested").rows
    db.sql("INSERT INTO t1 VALUES (9, 90, 'z')")
    assert Counter(db.sql("SELECT * FROM v_nested").rows) == Counter([*before, (9,)])
    db.sql("DROP VIEW v_nested")
    with pytest.raises(SqlError, match="unknown table 'v_nested'"):
        db.sql("SELECT * FROM v_nested")
    db.sql("CREATE VIEW v_nested AS SELECT x FROM t2")  # same name, other body
    assert sorted(db.sql("SELECT * FROM v_nested").rows) == [(1,), (2,), (3,), (5,)]


def test_view_statements_fail_as_sqlite_does(open_db: Any) -> None:
    db = _opened(open_db)
    lite = _sqlite()
    failing = [
        "CREATE VIEW v_big AS SELECT 1",  # exists
        "CREATE VIEW t1 AS SELECT 1",  # a table's name
        "DROP VIEW no_such_view",
    ]
    for statement in failing:
        with pytest.raises(sqlite3.Error):
            lite.execute(statement)
        with pytest.raises(SqlError):
            db.sql(statement)
    # SQLite stores these and fails each query that names them; Cosmictron refuses
    # them at once (docs/design/views.md), with the error the first query would get.
    for statement, error in [
        ("CREATE VIEW v_bad AS SELECT zz FROM t1", "unknown column 'zz'"),
        ("CREATE VIEW v_bad(p, q) AS SELECT a FROM t1", "names 2 columns"),
        ("CREATE VIEW v_bad AS SELECT * FROM no_such_table", "unknown table 'no_such_table'"),
    ]:
        lite.execute(statement)
        with pytest.raises(sqlite3.Error):
            lite.execute("SELECT * FROM v_bad")
        lite.execute("DROP VIEW v_bad")
        with pytest.raises(SqlError, match=error):
            db.sql(statement)
    for statement in ["CREATE VIEW IF NOT EXISTS v_big AS SELECT 1", "DROP VIEW IF EXISTS nope"]:
        lite.execute(statement)
        assert db.sql(statement).rows_affected == 0
    assert db.sql("SELECT * FROM v_big").rows == lite.execute("SELECT * FROM v_big").fetchall()


def test_only_the_owner_changes_views(open_db: Any) -> None:
    db = _opened(open_db)
    with pytest.raises(PermissionDenied):
        db.sql("CREATE VIEW v_other AS SELECT a FROM t1", sender=BOB)
    with pytest.raises(PermissionDenied):
        db.sql("DROP VIEW v_big", sender=BOB)
    assert sorted(db.sql("SELECT * FROM v_big", sender=BOB).rows) == [(1, 10), (3, 30), (4, 10)]


@pytest.mark.parametrize("snapshot", [False, True])
def test_views_survive_a_restart(open_db: Any, tmp_path: Any, snapshot: bool) -> None:
    db = _opened(open_db)
    db.sql("DROP VIEW v_const")
    if snapshot:
        db.snapshot()
    db.sql("CREATE VIEW v_late AS SELECT COUNT(*) FROM t2")
    expected = {query: Counter(db.sql(query).rows) for query in QUERIES if "v_const" not in query}
    db.close()
    again = open_db(path=tmp_path / "data")
    for query, rows in expected.items():
        assert Counter(again.sql(query).rows) == rows, query
    assert again.sql("SELECT * FROM v_late").rows == [(4,)]
    with pytest.raises(SqlError, match="unknown table 'v_const'"):
        again.sql("SELECT * FROM v_const")


def test_a_non_owner_sees_through_a_view_only_the_rows_their_filters_admit(
    open_db: Any, tmp_path: Any
) -> None:
    full = open_db(MODULE)
    only = open_db(MODULE, path=tmp_path / "filtered")
    messages = [(n, PEOPLE[n % 3], PEOPLE[(n * 7) % 3], n % 5) for n in range(1, 30)]
    for db in (full, only):
        for person, name in zip(PEOPLE, ["alice", "bob", "carol"], strict=True):
            db.call("join", person.hex(), name)
        db.sql("CREATE VIEW starred AS SELECT id, stars FROM message WHERE stars > 1")
        db.sql("CREATE VIEW tally AS SELECT COUNT(*) AS n, SUM(stars) AS s FROM starred")
    for id_, author, recipient, stars in messages:
        post(full, id_, author, recipient, stars)
        if visible(author, recipient, BOB):
            post(only, id_, author, recipient, stars)
    for query in ["SELECT * FROM starred", "SELECT * FROM tally"]:
        assert Counter(full.sql(query, sender=BOB).rows) == Counter(only.sql(query).rows)
        assert Counter(full.sql(query).rows) != Counter(only.sql(query).rows)
