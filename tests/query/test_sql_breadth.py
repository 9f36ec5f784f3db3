"""Issue 12's refusals found last in SQLite's sqllogictest corpus, each checked against
SQLite (the standard library's sqlite3) on the same rows: the bitwise operators,
``REPLACE INTO`` / ``INSERT OR REPLACE`` / ``INSERT OR IGNORE``, a parenthesised group
of outer joins first in FROM (``random/aggregates/slt_good_45.test``), and a recursive
CTE's ``ORDER BY`` (a priority queue) and ``DISTINCT`` step, with SQLite's refusal of
an aggregating recursive select. The random differential test generates the bitwise
operators and ordered recursive CTEs too (shapes ``bitwise`` and ``more``).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

import pytest

from cosmictron.errors import SqlError

MODULE = """
from typing import Optional
from cosmictron import Index, field, table

@table(name="t", public=True)
class T:
    id: int = field(primary_key=True)
    a: Optional[int] = None
    r: Optional[float] = None

@table(name="edge", public=True)
class Edge:
    id: int = field(primary_key=True)
    src: int = 0
    dst: int = 0

@table(name="item", public=True, indexes=[Index("by_code", ["code"], unique=True)])
class Item:
    id: int = field(primary_key=True)
    name: str = ""
    code: int = 0

@table(name="pair", public=True)
class Pair:
    x: int
    y: str
"""

SCHEMA = [
    "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, r REAL)",
    "CREATE TABLE edge (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER)",
    "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, code INTEGER UNIQUE)",
    "CREATE TABLE pair (x INTEGER, y TEXT)",
]

ROWS = [
    "INSERT INTO t VALUES (1, 2, 1.5), (2, -3, -2.5), (3, NULL, NULL), (5, 1, 1e30), "
    "(6, 9223372036854775807, 3.9), (7, -9223372036854775808, -0.5)",
    "INSERT INTO edge VALUES (1, 1, 2), (2, 1, 3), (3, 2, 4), (4, 3, 5), (5, 4, 6), "
    "(6, 5, 7), (7, 2, 8), (8, 3, 4), (9, 6, 1)",
]


@pytest.fixture
def both(open_db: Any) -> tuple[Any, sqlite3.Connection]:
    db = open_db(MODULE)
    lite = sqlite3.connect(":memory:")
    for statement in SCHEMA:
        lite.execute(statement)
    for statement in ROWS:
        db.sql(statement)
        lite.execute(statement)
    return db, lite


def normal(rows: Any) -> list[tuple[Any, ...]]:
    return [tuple(int(v) if isinstance(v, bool) else v for v in row) for row in rows]


def same(both: tuple[Any, sqlite3.Connection], query: str, ordered: bool = True) -> Any:
    db, lite = both
    mine, theirs = normal(db.sql(query).rows), normal(lite.execute(query).fetchall())
    if ordered:
        assert mine == theirs, query
    else:
        assert Counter(mine) == Counter(theirs), query
    return mine


# -- bitwise operators ----------------------------------------------------------------

BITWISE = [
    # 1 << 63 is the smallest 64-bit integer; shifts by 64 or more, or by a negative
    # amount (the other way), as SQLite's OP_ShiftLeft/OP_ShiftRight.
    "SELECT 1 << 63, 1 << 64, 1 << -1, 8 >> -1, -1 >> 100, -1 << 63, 1 >> 64, 1 << 62.9",
    "SELECT -8 >> 1, -8 >> 63, -8 >> 64, -8 << -64, 5 << -100, 3 << 61, 7 << 62",
    "SELECT 5 & 3, 5 | 2, ~5, ~-1, ~0, 5 & 3.7, ~1.5, 6 & 3 | 8, NULL & 1, ~NULL, 1 << NULL",
    # Precedence: + - bind tighter than << >>, which bind tighter than & |, than =.
    "SELECT 1 + 2 << 1, 1 << 2 + 1, ~ -5 * 2, 5 & 3 = 1, 2 | 1 < 4, - ~3, ~ ~3",
    "SELECT id, a & 6, a | 4, ~a, a << 2, a >> 1, r & 1, r << 1, a << id FROM t ORDER BY id",
    "SELECT id FROM t WHERE a & 1 ORDER BY id",
    "SELECT id FROM t WHERE (a | 8) >> 3 = 1 ORDER BY id",
    "SELECT SUM(a & 7), MAX(a >> 60), MIN(~a) FROM t",
    # Integer arithmetic past 64 bits becomes a real, as in SQLite.
    "SELECT (1 << 63) - 2, (1 << 62) * 4, (1 << 62) + (1 << 62), -(1 << 63), "
    "(1 << 63) / -1, (1 << 63) % -1",
    "SELECT id, a + 1, a - 1, a * 2, -a FROM t ORDER BY id",
]


@pytest.mark.parametrize("query", BITWISE)
def test_bitwise_operators_answer_as_sqlite(both: Any, query: str) -> None:
    same(both, query)


def test_a_bitwise_operator_on_text_is_a_type_error(both: Any) -> None:
    db, _ = both
    with pytest.raises(SqlError, match=r"argument 1 of &\(\) must be a number"):
        db.sql("SELECT 'a' & 1")


# -- REPLACE INTO, INSERT OR REPLACE, INSERT OR IGNORE --------------------------------

WRITES = [
    "INSERT INTO item VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30)",
    "REPLACE INTO item VALUES (2, 'B', 21)",  # same primary key: replaced
    "INSERT OR REPLACE INTO item VALUES (4, 'd', 30)",  # same unique code: row 3 goes
    "  /* a comment */ replace into item (id, name, code) VALUES (5, 'e', 10), (6, 'f', 10)",
    "REPLACE INTO item VALUES (1, 'x', 21), (7, 'g', 70)",  # key of one, code of another
    "INSERT OR IGNORE INTO item VALUES (8, 'h', 70), (9, 'i', 90), (9, 'j', 91)",
    "INSERT OR REPLACE INTO item SELECT id + 100, name, code + 1 FROM item WHERE id < 7",
    "INSERT OR ABORT INTO item VALUES (10, 'k', 100)",
]


def test_replace_and_ignore_write_what_sqlite_writes(both: Any) -> None:
    db, lite = both
    for statement in WRITES:
        result = db.sql(statement)
        assert result.rows_affected == lite.execute(statement).rowcount, statement
        same(both, "SELECT * FROM item ORDER BY id")


def test_replace_returns_the_rows_it_wrote(both: Any) -> None:
    db, _ = both
    db.sql("INSERT INTO item VALUES (1, 'a', 10), (2, 'b', 20)")
    result = db.sql("REPLACE INTO item VALUES (1, 'z', 20) RETURNING id, name, code")
    assert result.rows == [(1, "z", 20)]
    assert result.rows_affected == 1
    assert db.sql("SELECT id, name, code FROM item").rows == [(1, "z", 20)]


def test_replace_in_a_keyless_table_keeps_one_row(both: Any) -> None:
    """A table without a primary key is a set: REPLACE of a stored row writes it again
    (counted, as SQLite counts it); OR IGNORE skips it (SQLite would add a copy)."""
    db, _ = both
    db.sql("INSERT INTO pair VALUES (1, 'a')")
    assert db.sql("REPLACE INTO pair VALUES (1, 'a')").rows_affected == 1
    assert db.sql("INSERT OR IGNORE INTO pair VALUES (1, 'a'), (2, 'b')").rows_affected == 1
    assert sorted(db.sql("SELECT x, y FROM pair").rows) == [(1, "a"), (2, "b")]


def test_replace_is_one_transaction_and_survives_a_reopen(open_db: Any, tmp_path: Any) -> None:
    db = open_db(MODULE, path=tmp_path / "replace")
    db.sql("INSERT INTO item VALUES (1, 'a', 10), (2, 'b', 20)")
    db.sql("REPLACE INTO item VALUES (3, 'c', 10)")
    db.close()
    again = open_db(MODULE, path=tmp_path / "replace")
    assert sorted(again.sql("SELECT id, code FROM item").rows) == [(2, 20), (3, 10)]


@pytest.mark.parametrize(
    ("statement", "wording"),
    [
        ("INSERT OR FAIL INTO item VALUES (1, 'a', 1)", "INSERT OR FAIL"),
        ("INSERT OR ROLLBACK INTO item VALUES (1, 'a', 1)", "INSERT OR ROLLBACK"),
        ("REPLACE INTO item VALUES (1, 2, 3)", "column item.name"),
    ],
)
def test_insert_conflict_forms_refused_or_checked(both: Any, statement: str, wording: str) -> None:
    db, _ = both
    with pytest.raises(SqlError, match=wording):
        db.sql(statement)


def test_a_replace_error_points_into_the_users_text(both: Any) -> None:
    db, _ = both
    with pytest.raises(SqlError) as caught:
        db.sql("REPLACE INTO item VALUES (1, 2, 3)")
    assert (caught.value.line, caught.value.column, caught.value.text) == (1, 30, "2")


def test_explain_names_the_conflict_resolution(both: Any) -> None:
    db, _ = both
    lines = [line for (line,) in db.sql("EXPLAIN REPLACE INTO item VALUES (1, 'a', 1)")]
    assert lines == ["Insert or replace item (1 rows)"]


# -- a parenthesised group of outer joins first in FROM ---------------------------------

GROUPS = [
    # random/aggregates/slt_good_45.test:5437, on these rows
    "SELECT COUNT(*) FROM ( t cor0 LEFT JOIN edge AS cor1 ON NOT + + 11 = NULL )",
    "SELECT * FROM ( t AS x LEFT JOIN t y ON y.id = x.a ) ORDER BY 1",
    "SELECT x.id, y.id, z.id FROM ( ( t AS x LEFT JOIN t y ON y.id = x.a ) "
    "LEFT JOIN t z ON z.id = y.a ) ORDER BY 1",
    "SELECT x.id, w.id FROM ( t AS x LEFT JOIN edge e ON e.src = x.id ) "
    "JOIN t w ON w.id = x.id ORDER BY 1, 2",
    "SELECT x.id, q.id FROM ( t AS x LEFT JOIN edge e ON e.src = x.id ), t q "
    "WHERE q.id = x.id ORDER BY 1, 2",
    # Not first, so not flat: read as SQLite reads it, a subquery whose tables' names
    # still name its columns (tests/query/test_join_groups.py).
    "SELECT * FROM t q JOIN ( t AS x LEFT JOIN t y ON y.id = x.a ) ON q.id = x.id ORDER BY 1",
]


@pytest.mark.parametrize("query", GROUPS)
def test_a_group_of_outer_joins_first_in_from_reads_flat(both: Any, query: str) -> None:
    same(both, query)


# -- ORDER BY and DISTINCT in a recursive CTE ------------------------------------------

WALK = "WITH RECURSIVE w(n, d) AS (SELECT 1 AS n, 0 AS d UNION ALL SELECT e.dst, w.d + 1 "
RECURSIVE_ORDERED = [
    # Depth first: the deepest row is taken next (ties first in, first out).
    WALK + "FROM w JOIN edge e ON e.src = w.n WHERE w.d < 6 ORDER BY 2 DESC LIMIT 6) "
    "SELECT n, d FROM w",
    # Breadth first, by name, and an OFFSET: the skipped rows are still walked from.
    WALK + "FROM w JOIN edge e ON e.src = w.n WHERE w.d < 6 ORDER BY d, n LIMIT 7 OFFSET 2) "
    "SELECT n, d FROM w",
    WALK + "FROM w JOIN edge e ON e.src = w.n WHERE w.d < 4 ORDER BY n DESC, d) SELECT n, d FROM w",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c ORDER BY 1) "
    "SELECT x FROM c LIMIT 4",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5 "
    "ORDER BY 1 LIMIT 0) SELECT x FROM c",
    "WITH RECURSIVE c(x) AS (SELECT 5 UNION SELECT 9 UNION SELECT x - 2 FROM c "
    "WHERE x > -3 ORDER BY 1 DESC LIMIT 6) SELECT x FROM c",
    # NULLs are the smallest, as in SQLite.
    "WITH RECURSIVE c(x, k) AS (SELECT 1, NULL UNION ALL SELECT x + 1, CASE WHEN x % 2 "
    "THEN x END FROM c WHERE x < 6 ORDER BY 2 NULLS LAST, 1 LIMIT 4) SELECT x, k FROM c",
]


@pytest.mark.parametrize("query", RECURSIVE_ORDERED)
def test_a_recursive_ctes_order_by_picks_rows_as_sqlite(both: Any, query: str) -> None:
    same(both, query, ordered=False)


def test_a_distinct_recursive_step_is_distinct_per_row(both: Any) -> None:
    """SQLite runs the step once per queued row, so DISTINCT removes duplicates among
    one row's successors only (rows reached twice are walked twice)."""
    rows = same(
        both,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT DISTINCT e.dst FROM c "
        "JOIN edge e ON e.src = c.x AND e.dst <> 1) SELECT x FROM c",
        ordered=False,
    )
    assert Counter(x for (x,) in rows)[4] == 2


def test_explain_shows_the_queue(both: Any) -> None:
    db, _ = both
    lines = [
        line
        for (line,) in db.sql(
            "EXPLAIN WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
            "ORDER BY 1 DESC LIMIT 3) SELECT x FROM c"
        )
    ]
    assert any("queue of rows taken by ORDER BY 1 DESC" in line for line in lines), lines


@pytest.mark.parametrize(
    ("query", "wording"),
    [
        (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT MAX(x) + 1 FROM c WHERE x < 5) "
            "SELECT x FROM c",
            "recursive aggregate queries not supported",
        ),
        (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5 "
            "GROUP BY x) SELECT x FROM c",
            "recursive aggregate queries not supported",
        ),
        (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5 "
            "ORDER BY 3) SELECT x FROM c",
            "ORDER BY term out of range",
        ),
        (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5 "
            "ORDER BY x) SELECT x FROM c",
            "must name a result column",
        ),
    ],
)
def test_what_sqlite_refuses_in_a_recursive_cte_is_refused(
    both: Any, query: str, wording: str
) -> None:
    db, lite = both
    with pytest.raises(SqlError, match=wording):
        db.sql(query)
    with pytest.raises(sqlite3.OperationalError):
        lite.execute(query)


def test_aggregates_around_a_recursive_cte_still_answer(both: Any) -> None:
    same(
        both,
        "WITH RECURSIVE c(x) AS (SELECT COUNT(*) FROM edge UNION ALL SELECT x + 1 FROM c "
        "WHERE x < (SELECT MAX(dst) FROM edge) + 3) SELECT COUNT(*), SUM(x) FROM c",
    )
