"""Issue 12's last refusals, each checked against SQLite (the standard library's sqlite3)
on the same rows: row values, ``WITH RECURSIVE``, ``CREATE OR REPLACE VIEW``, ``TOTAL``
and ``GROUP_CONCAT``, ``x IN table``, and bare columns in ``HAVING``. The random
differential test (``test_differential.py``, shape ``more``) generates these too; these
are the cases it cannot (order-dependent results fixed by a sorted FROM subquery,
errors, the recursion bound, views).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from cosmictron import limits
from cosmictron.errors import QueryTooCostly, SqlError

MODULE = """
from typing import Optional
from cosmictron import table, field

@table(name="t", public=True)
class T:
    id: int = field(primary_key=True)
    a: Optional[int] = None
    b: Optional[str] = None
    c: Optional[float] = None

@table(name="edge", public=True)
class Edge:
    id: int = field(primary_key=True)
    src: int = 0
    dst: int = 0

@table(name="one", public=True)
class One:
    v: int = field(primary_key=True)
"""

ROWS = [
    (1, 1, "x", 1.5),
    (2, None, "y", None),
    (3, 3, None, 2.0),
    (4, 1, "x", 0.1),
    (5, 2, "z", 3.0),
]
EDGES = [(1, 1, 2), (2, 2, 3), (3, 3, 1), (4, 3, 4), (5, 5, 6)]


@pytest.fixture
def both(open_db: Any) -> tuple[Any, sqlite3.Connection]:
    db = open_db(MODULE)
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL)")
    lite.execute("CREATE TABLE edge (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER)")
    lite.execute("CREATE TABLE one (v INTEGER PRIMARY KEY)")
    for row in ROWS:
        db.sql(
            "INSERT INTO t VALUES (:id, :a, :b, :c)",
            dict(zip(("id", "a", "b", "c"), row, strict=True)),
        )
        lite.execute("INSERT INTO t VALUES (?, ?, ?, ?)", row)
    for row in EDGES:
        db.sql(
            "INSERT INTO edge VALUES (:id, :s, :d)", dict(zip(("id", "s", "d"), row, strict=True))
        )
        lite.execute("INSERT INTO edge VALUES (?, ?, ?)", row)
    for v in (1, 3):
        db.sql(f"INSERT INTO one VALUES ({v})")
        lite.execute(f"INSERT INTO one VALUES ({v})")
    return db, lite


def normal(rows: Any) -> list[tuple[Any, ...]]:
    return [tuple(int(v) if isinstance(v, bool) else v for v in row) for row in rows]


def same(both: tuple[Any, sqlite3.Connection], query: str) -> list[tuple[Any, ...]]:
    db, lite = both
    mine, theirs = normal(db.sql(query).rows), normal(lite.execute(query).fetchall())
    assert mine == theirs, query
    return mine


ROW_VALUES = [
    "SELECT (1, 2) = (1, 2), (1, 2) <> (1, 3), (1, NULL) = (1, 2), (2, NULL) = (1, 2)",
    "SELECT (1, NULL) < (1, 2), (2, NULL) < (1, 5), (NULL, 1) < (2, 3), (1, 2) <= (1, 2)",
    "SELECT (1, 2) > (1, 1), (1, 2) >= (1, 3), (1, 2) IS (1, 2), (NULL, 1) IS NOT (NULL, 1)",
    "SELECT (1, 2) IN ((1, 2), (3, 4)), (1, 2) NOT IN ((1, 3)), (1, NULL) IN ((1, 2))",
    "SELECT (1, 2) BETWEEN (0, 0) AND (5, 5), (1, 2) NOT BETWEEN (1, 3) AND (2, 0)",
    "SELECT id FROM t WHERE (a, b) = (1, 'x') ORDER BY id",
    "SELECT id FROM t WHERE (a, c) > (1, 1.0) ORDER BY id",
    "SELECT id FROM t WHERE (a, b) IN (SELECT a, b FROM t WHERE id = 1) ORDER BY id",
    "SELECT (1, 'x') IN (SELECT a, b FROM t), (2, 'x') IN (SELECT a, b FROM t), "
    "(3, 'q') IN (SELECT a, b FROM t), (NULL, 'y') IN (SELECT a, b FROM t), "
    "(1, 'x') NOT IN (SELECT a, b FROM t WHERE 0), (NULL, 1) NOT IN (SELECT 1, 2 WHERE 0)",
    "SELECT id, (a, b) IN (SELECT u.a, u.b FROM t u WHERE u.id <> t.id) FROM t ORDER BY id",
    "SELECT id, (id, a) NOT IN (SELECT u.id, u.a FROM t u WHERE u.b = t.b) FROM t ORDER BY id",
    "SELECT id FROM t WHERE (id, a) IN (SELECT src, dst - 1 FROM edge) ORDER BY id",
    # A row value compared with a subquery: its first row, NULLs for none.
    "SELECT (1, 2) = (SELECT 1, 2), (1, 2) = (SELECT 1, 3), (1, 2) <> (SELECT 1, 3), "
    "(1, 2) = (SELECT 1, 2 WHERE 0), (1, 2) IS (SELECT NULL, NULL WHERE 0)",
    "SELECT (1, 'x') = (SELECT a, b FROM t ORDER BY id), (SELECT a, b FROM t ORDER BY id) "
    "< (2, 'a'), (3, 4) > (SELECT a, id FROM t WHERE a = 3), (1, 1) >= (SELECT 1, NULL)",
    "SELECT id FROM t WHERE (a, b) = (SELECT a, b FROM t WHERE id = 4) ORDER BY id",
    "SELECT id, (src, dst) = (SELECT a, id FROM t WHERE t.id = edge.dst) FROM edge ORDER BY id",
    "SELECT id FROM edge WHERE (src, dst) <= (SELECT MIN(a), MAX(id) FROM t WHERE a > edge.src) "
    "ORDER BY id",
    "SELECT id FROM t WHERE (a, c) BETWEEN (SELECT 1, 1.0) AND (SELECT 2, 9.0) ORDER BY id",
    "SELECT (1, 2) = (SELECT 1, 2 UNION SELECT 0, 0 ORDER BY 1 DESC)",
]


IN_TABLE = [
    "SELECT id FROM t WHERE id IN one ORDER BY id",
    "SELECT id FROM t WHERE id NOT IN one ORDER BY id",
    "SELECT 3 IN one, 2 IN one, NULL IN one",
    "SELECT id FROM edge WHERE (id, src, dst) IN edge ORDER BY id",
]


AGGREGATES = [
    "SELECT TOTAL(a), TOTAL(c), TOTAL(DISTINCT a), SUM(a) FROM t",
    "SELECT TOTAL(a), GROUP_CONCAT(b), COUNT(*) FROM t WHERE id > 10",
    "SELECT GROUP_CONCAT(b), GROUP_CONCAT(b, '-'), GROUP_CONCAT(DISTINCT b), "
    "GROUP_CONCAT(a, NULL), GROUP_CONCAT(c), GROUP_CONCAT(id, b) "
    "FROM (SELECT * FROM t ORDER BY id)",
    "SELECT a, TOTAL(c), GROUP_CONCAT(id, '|') FROM (SELECT * FROM t ORDER BY id) "
    "GROUP BY a ORDER BY a",
    "SELECT id, (SELECT TOTAL(c) FROM t u WHERE u.a = t.id) FROM t ORDER BY id",
    "SELECT id, (SELECT GROUP_CONCAT(dst) FROM edge WHERE src = t.id) FROM t ORDER BY id",
]


def test_group_concat_obeys_the_value_limit(both: Any) -> None:
    db, _ = both
    from cosmictron.query.budget import QueryBudget

    with pytest.raises(QueryTooCostly, match="GROUP_CONCAT"):
        db.sql("SELECT GROUP_CONCAT(b) FROM t", budget=QueryBudget(value_bytes_max=3))


BARE_HAVING = [
    "SELECT a FROM t GROUP BY a HAVING NULL NOT IN (c) ORDER BY a",
    "SELECT a, COUNT(*) FROM t GROUP BY a HAVING b = 'x' ORDER BY a",
    "SELECT id FROM t GROUP BY id HAVING c > 1 ORDER BY id",
    "SELECT COUNT(*) FROM t HAVING MAX(id) > 3 AND b IS NOT NULL",
    "SELECT a FROM t GROUP BY a HAVING id > 2 ORDER BY a",
    "SELECT a FROM t GROUP BY a HAVING id < 2 ORDER BY a",
]


RECURSIVE = [
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) SELECT x FROM c",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c LIMIT 4",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 6 OFFSET 2) "
    "SELECT x FROM c",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION SELECT e.dst FROM r JOIN edge e ON e.src = r.n) "
    "SELECT n FROM r ORDER BY n",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT e.dst FROM r, edge e "
    "WHERE e.src = r.n AND e.dst <> 1) SELECT n FROM r ORDER BY n",
    "WITH RECURSIVE fib(a, b) AS (SELECT 0, 1 UNION ALL SELECT b, a + b FROM fib WHERE b < 100) "
    "SELECT a FROM fib",
    "SELECT id, (WITH RECURSIVE c(x) AS (SELECT edge.src UNION ALL SELECT x + 1 FROM c "
    "WHERE x < edge.dst) SELECT COUNT(*) FROM c) FROM edge ORDER BY id",
    "WITH RECURSIVE c(x) AS (SELECT a FROM t WHERE a IS NOT NULL UNION SELECT x + 1 FROM c "
    "WHERE x < 4), d AS (SELECT x * 10 AS y FROM c) SELECT y FROM d ORDER BY y",
    "SELECT id, (SELECT COUNT(*) FROM (SELECT edge.src AS s UNION ALL SELECT 3)) FROM edge "
    "ORDER BY id",
]


def test_a_recursion_past_its_row_limit_is_stopped(
    both: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, _ = both
    monkeypatch.setattr(limits, "sql_recursive_rows_max", 500)
    endless = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
    )
    with pytest.raises(QueryTooCostly, match="sql_recursive_rows_max"):
        db.sql(endless)
    # At the limit exactly, it answers; an outer LIMIT stops an endless one early.
    bounded = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) "
    assert db.sql(bounded + "SELECT COUNT(*) FROM c").rows == [(500,)]
    assert db.sql(endless.replace("COUNT(*) FROM c", "x FROM c LIMIT 3")).rows == [(1,), (2,), (3,)]


def test_explain_shows_the_recursion(both: Any) -> None:
    db, _ = both
    lines = [
        line
        for (line,) in db.sql(
            "EXPLAIN WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) "
            "SELECT x FROM c"
        )
    ]
    assert any("RecursiveCTE c (UNION ALL" in line for line in lines), lines
    assert any("WorkingRows" in line for line in lines), lines


def test_create_or_replace_view_replaces_its_body_and_survives_a_reopen(
    open_db: Any, tmp_path: Any
) -> None:
    db = open_db(MODULE, path=tmp_path / "views")
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL)")
    for row in ROWS:
        db.sql(
            "INSERT INTO t VALUES (:id, :a, :b, :c)",
            dict(zip(("id", "a", "b", "c"), row, strict=True)),
        )
        lite.execute("INSERT INTO t VALUES (?, ?, ?, ?)", row)
    db.sql("CREATE OR REPLACE VIEW v AS SELECT id FROM t WHERE a = 1")  # made if absent
    db.sql("CREATE OR REPLACE VIEW v (n, twice) AS SELECT id, a * 2 FROM t WHERE a > 1")
    # SQLite has no OR REPLACE: its DROP VIEW and CREATE VIEW are the same change.
    lite.execute("CREATE VIEW v (n, twice) AS SELECT id, a * 2 FROM t WHERE a > 1")
    query = "SELECT * FROM v ORDER BY n"
    assert db.sql(query).rows == lite.execute(query).fetchall() == [(3, 6), (5, 4)]
    with pytest.raises(SqlError, match="unknown table 'v'"):  # no view inside itself
        db.sql("CREATE OR REPLACE VIEW v AS SELECT * FROM v")
    assert db.sql(query).rows == [(3, 6), (5, 4)]  # the refused change changed nothing
    with pytest.raises(SqlError, match="IF NOT EXISTS"):
        db.sql("CREATE OR REPLACE VIEW IF NOT EXISTS v AS SELECT 1")
    db.close()
    reopened = open_db(MODULE, path=tmp_path / "views")
    assert reopened.sql(query).rows == [(3, 6), (5, 4)]


def test_an_embedded_subscription_to_a_view_follows_its_table(both: Any) -> None:
    db, _ = both
    db.sql("CREATE VIEW big AS SELECT id, a FROM t WHERE a > 1")
    updates: list[Any] = []
    sub = db.subscribe(["SELECT * FROM big"], on_update=updates.append)
    assert sorted(sub.initial["tables"][0]["rows"]) == [(3, 3), (5, 2)]
    assert "re-evaluated when t changes" in sub.explain()[0]
    db.sql("INSERT INTO t VALUES (6, 9, 'w', 1.0)")
    db.sql("UPDATE t SET a = 0 WHERE id = 3")
    changes = [(u["tables"][0]["inserts"], u["tables"][0]["deletes"]) for u in updates]
    assert changes == [([(6, 9)], []), ([], [(3, 3)])]
    db.sql("INSERT INTO edge VALUES (9, 9, 9)")  # a table the view does not read
    assert len(updates) == 2


def test_a_subscribed_row_value_in_is_a_counted_semi_join_kept_exact(both: Any) -> None:
    """``(a, b) IN (SELECT x, y …)`` in a subscription's WHERE is counted per pair of
    values (incremental), and its rows after each change equal a fresh query's."""
    db, _ = both
    query = "SELECT * FROM edge WHERE (src, dst) IN (SELECT a, id FROM t)"
    sub = db.subscribe([query], on_update=lambda update: None)
    assert "semi-joins counted per key" in sub.explain()[0], sub.explain()
    rows = set(sub.initial["tables"][0]["rows"])
    assert rows == set(db.sql(query).rows)
    changes: list[Any] = []
    sub2 = db.subscribe([query], on_update=changes.append)
    for statement in (
        "INSERT INTO edge VALUES (7, 1, 4)",  # (1, 4) is t's row 4: now in
        "UPDATE t SET a = 9 WHERE id = 4",  # and out again
        "INSERT INTO t VALUES (8, 3, 'q', 0.0)",  # (3, 8)? no edge yet
        "INSERT INTO edge VALUES (8, 3, 8)",
    ):
        db.sql(statement)
    for change in changes:
        for table in change["tables"]:
            rows -= set(table["deletes"])
            rows |= set(table["inserts"])
    assert rows == set(db.sql(query).rows) == {(8, 3, 8)}
    assert len(changes) == 3  # in, out, in: the INSERT into t alone matched no edge
    sub.unsubscribe()
    sub2.unsubscribe()


UNREAD_BARE = [
    "SELECT a, CASE - CAST(NULL AS INTEGER) WHEN id THEN id + 1 ELSE NULL END FROM t "
    "GROUP BY a ORDER BY a",
    "SELECT a, CASE NULL WHEN id THEN 1 ELSE 7 END FROM t GROUP BY a ORDER BY a",
    "SELECT a, 5 * NULLIF(+ CAST(NULL AS INTEGER), id * 91) FROM t GROUP BY a ORDER BY a",
    "SELECT a, id + CAST(NULL AS INTEGER), - (NULL * id) FROM t GROUP BY a ORDER BY a",
]


UNREAD_BARE_MORE = [
    "SELECT a, CASE WHEN NOT NULL NOT BETWEEN NULL AND NULL THEN - id ELSE NULL END FROM t "
    "GROUP BY a ORDER BY a",
    "SELECT a, CASE WHEN (a) < (NULL) THEN - id END + 97 FROM t GROUP BY a ORDER BY a",
    "SELECT a, id = NULL, NULL <> id FROM t GROUP BY a ORDER BY a",
]


REORDERED_JOIN = [
    # Found by the random queries: a CASE in a condition of a join the planner reordered
    # kept its WHEN columns' old slots (an IndexError), since the slot remap skipped the
    # (WHEN, THEN) pairs.
    "SELECT COUNT(*) FROM edge a JOIN edge b ON b.src = a.dst JOIN edge c ON c.dst = b.src "
    "WHERE (2 * a.src) = CASE WHEN c.id IS NOT NULL THEN 2 ELSE a.id END",
]

ANSWERS_AS_SQLITE = {
    "row-value": ROW_VALUES,
    "in-table": IN_TABLE,  # ``x IN t`` is ``x IN (SELECT * FROM t)``
    "total-group-concat": AGGREGATES,
    "bare-having": BARE_HAVING,
    "recursive": RECURSIVE,
    # Found in the corpus (``random/groupby``): a bare column under ``CASE NULL``,
    # ``NULLIF(NULL, …)``, arithmetic or a comparison with a constant NULL is never read,
    # so SQLite's answer does not depend on which row it would come from.
    "unread-bare": UNREAD_BARE + UNREAD_BARE_MORE,
    "reordered-join": REORDERED_JOIN,
}


@pytest.mark.parametrize(
    ("kind", "query"),
    [
        pytest.param(kind, query, id=f"{kind}-{number}")
        for kind, queries in ANSWERS_AS_SQLITE.items()
        for number, query in enumerate(queries)
    ],
)
def test_answers_as_sqlite(both: Any, kind: str, query: str) -> None:
    rows = same(both, query)
    if kind == "recursive":
        assert rows  # every recursion here yields rows: an empty answer is no check


REFUSED = [
    # Row values misused.
    ("SELECT (1, 2)", "row value misused"),
    ("SELECT (1, 2) = 1", "row value misused"),
    ("SELECT (1, 2) = (1, 2, 3)", "row value misused"),
    ("SELECT (1, 2) = (SELECT 1, 2, 3)", "sub-select returns 3 columns - expected 2"),
    ("SELECT (1, 2) = (SELECT 1)", "sub-select returns 1 columns - expected 2"),
    ("SELECT (1, 2) IN (SELECT a FROM t)", "expected 2"),
    ("SELECT (1, 'x') IN (SELECT a, a FROM t)", "type mismatch"),
    # A bare column outside HAVING is still refused.
    ("SELECT a, b FROM t GROUP BY a", "GROUP BY"),
    # Recursive forms SQLite refuses, or orders.
    (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT COUNT(*) FROM c) SELECT x FROM c",
        "may not aggregate",
    ),
    (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x FROM c, c AS d) SELECT x FROM c",
        "exactly once",
    ),
    (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c GROUP BY x) "
        "SELECT x FROM c",
        "may not aggregate",
    ),
    (
        "WITH RECURSIVE c(x) AS (SELECT x FROM c UNION ALL SELECT 1) SELECT x FROM c",
        "only its last SELECT",
    ),
]


@pytest.mark.parametrize(("query", "wording"), REFUSED)
def test_refused_naming_why(both: Any, query: str, wording: str) -> None:
    db, _ = both
    with pytest.raises(SqlError, match=wording):
        db.sql(query)


@pytest.mark.parametrize(
    ("query", "sqlite_says", "wording"),
    [
        # ``x IN t`` of a table of several columns.
        ("SELECT 1 IN t", "4 columns", "4 columns - expected 1"),
        # GROUP_CONCAT(DISTINCT …) takes one argument.
        ("SELECT GROUP_CONCAT(DISTINCT b, '-') FROM t", "exactly one argument", "DISTINCT"),
    ],
)
def test_refused_as_sqlite_refuses_it(
    both: Any, query: str, sqlite_says: str, wording: str
) -> None:
    db, lite = both
    with pytest.raises(sqlite3.OperationalError, match=sqlite_says):
        lite.execute(query)
    with pytest.raises(SqlError, match=wording):
        db.sql(query)


GROUP_CONCAT_ORDER = [
    "SELECT GROUP_CONCAT(b), GROUP_CONCAT(id, '|') FROM t",
    "SELECT GROUP_CONCAT(b) FROM t WHERE a > 1",
    "SELECT a, GROUP_CONCAT(id) FROM t GROUP BY a ORDER BY a",
    "SELECT GROUP_CONCAT(DISTINCT b) FROM t WHERE c IS NOT NULL",
    "SELECT id, (SELECT GROUP_CONCAT(u.id) FROM t u WHERE u.a = t.a) FROM t ORDER BY id",
]


@pytest.mark.parametrize("query", GROUP_CONCAT_ORDER)
def test_group_concat_reads_a_table_in_key_order_as_sqlite(both: Any, query: str) -> None:
    """Rows stored out of key order, then changed: SQLite's scan walks its rowid (the
    INTEGER PRIMARY KEY) b-tree, so GROUP_CONCAT joins them in key order; so does
    Cosmictron's scan under a GROUP_CONCAT (``rules/concat_order.py``)."""
    db, lite = both
    for statement in (
        "INSERT INTO t VALUES (9, 2, 'n', 1.0), (7, 1, 's', 2.0), (8, 2, 'e', NULL)",
        "DELETE FROM t WHERE id = 2",
        "INSERT INTO t VALUES (2, 2, 'w', 0.5)",
        "UPDATE t SET b = 'v' WHERE id = 1",
    ):
        db.sql(statement)
        lite.execute(statement)
    assert same(both, query)


def test_explain_shows_the_key_ordered_scan_under_group_concat(both: Any) -> None:
    db, _ = both
    lines = [line for (line,) in db.sql("EXPLAIN SELECT GROUP_CONCAT(b) FROM t")]
    assert lines[0] == "IndexScan t USING primary_key (every row, in id order)", lines
