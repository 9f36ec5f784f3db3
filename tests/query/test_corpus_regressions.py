"""Queries SQLite's sqllogictest corpus found refused or answered unlike SQLite, each
compared with SQLite (the standard library's sqlite3) on the same rows."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

MODULE = """
from typing import Optional

@table(name="tab1", public=True)
class Tab1:
    pk: int = field(primary_key=True)
    col1: Optional[int] = None
    col2: Optional[int] = None
"""

ROWS = "INSERT INTO tab1 VALUES (1, 2, 3), (2, 2, NULL), (3, NULL, 5), (4, 7, 7)"


def _engines(open_db: Any) -> tuple[Any, sqlite3.Connection]:
    db = open_db(MODULE)
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE TABLE tab1 (pk INTEGER PRIMARY KEY, col1 INTEGER, col2 INTEGER)")
    db.sql(ROWS)
    lite.execute(ROWS)
    return db, lite


def test_constant_coalesce_and_case_branches_read_no_column_in_an_aggregate_query(
    open_db: Any,
) -> None:
    # random/groupby: ``COALESCE(-86, col2)`` never reads col2, nor ``CASE 8 WHEN 76
    # THEN col2 END``, so col2 needs no GROUP BY there.
    db, lite = _engines(open_db)
    for query in [
        "SELECT ALL + 33 * - COALESCE ( - 86, tab1.col2 ) + + col1 FROM tab1 GROUP BY tab1.col1",
        "SELECT IFNULL(1 + 2, col2), COUNT(*) FROM tab1 GROUP BY col1",
        "SELECT COALESCE(NULL, 5, col2) FROM tab1 GROUP BY col1",
        "SELECT DISTINCT - COALESCE ( - 4, - col2 ) * col1 FROM tab1 GROUP BY col1, col2",
        "SELECT COALESCE(col1, 7) FROM tab1 GROUP BY col1",
        "SELECT COALESCE(NULL, col2, 1), col2 FROM tab1",
        "SELECT COALESCE(col1, col1, 63, col2) * - col1 AS x FROM tab1 GROUP BY col1",
        "SELECT CASE + 8 WHEN 76 THEN - col2 * + 8 WHEN 9 THEN NULL ELSE NULL END "
        "FROM tab1 GROUP BY col1",
        "SELECT CASE WHEN 1 > 2 THEN col2 WHEN 2 > 1 THEN col1 * 2 ELSE col2 END "
        "FROM tab1 GROUP BY col1",
        "SELECT CASE 3 WHEN 3 THEN 5 ELSE col2 END FROM tab1 GROUP BY col1",
        "SELECT CASE NULL WHEN NULL THEN col2 ELSE -1 END FROM tab1 GROUP BY col1",
        "SELECT CASE col1 WHEN 2 THEN 'two' WHEN 7 THEN 'seven' END, col1 FROM tab1",
        "SELECT CASE WHEN col1 > 2 THEN 1 WHEN 1 = 1 THEN 2 ELSE col2 END FROM tab1",
        "SELECT CASE - col2 WHEN CAST ( NULL AS INTEGER ) THEN col2 / 2 END FROM tab1 "
        "GROUP BY col1",
        "SELECT CASE 64 WHEN col1 THEN NULL WHEN 77 THEN col2 END * col1 FROM tab1 GROUP BY col1",
        "SELECT CASE col1 WHEN NULL THEN 1 WHEN 2 THEN 5 ELSE 0 END FROM tab1",
        "SELECT CASE 2 WHEN col1 THEN 'a' WHEN 2 THEN 'b' ELSE 'c' END, col1 FROM tab1",
    ]:
        assert Counter(db.sql(query).rows) == Counter(lite.execute(query).fetchall()), query


def test_coalesce_still_needs_group_by_for_a_column_it_may_read(open_db: Any) -> None:
    import pytest

    from cosmictron.errors import SqlError

    db, _ = _engines(open_db)
    with pytest.raises(SqlError, match="must appear in GROUP BY"):
        db.sql("SELECT COALESCE(col2, 1) FROM tab1 GROUP BY col1")


def test_an_aggregate_a_fold_drops_still_makes_one_row_over_no_rows(open_db: Any) -> None:
    # index/random/1000/slt_good_8.test:5250: ``COUNT(col4) * CAST(NULL AS INTEGER)`` is
    # NULL whatever COUNT is, and folding it away left no aggregate, so the query over
    # no rows answered no row where SQLite answers one (NULL): a wrong answer.
    db, lite = _engines(open_db)
    for query in [
        "SELECT COUNT ( - - col1 ) * CAST ( NULL AS INTEGER ) FROM tab1 WHERE + 70 IS NULL",
        "SELECT - COUNT ( * ) * CAST ( NULL AS INTEGER ) * + - ( 51 ) FROM tab1 "
        "WHERE NULL NOT BETWEEN col1 AND + col1",
        "SELECT COUNT(col1) * CAST(NULL AS INTEGER) FROM tab1",
        "SELECT NULLIF(NULL, COUNT(*)) FROM tab1 WHERE pk > 9",
        "SELECT COALESCE(4, COUNT(*)) FROM tab1 WHERE pk > 9",
        "SELECT CASE NULL WHEN COUNT(*) THEN 1 ELSE 2 END FROM tab1 WHERE pk > 9",
        "SELECT CASE 8 WHEN 76 THEN MAX(col1) END FROM tab1 WHERE pk > 9",
        "SELECT COUNT(*) = NULL, MAX(col2) < NULL FROM tab1 WHERE pk > 9",
        "SELECT (SELECT COUNT(*) * NULL FROM tab1 AS u WHERE u.pk > 9) FROM tab1",
    ]:
        rows = lite.execute(query).fetchall()
        assert rows  # every one answers at least one row in SQLite
        assert Counter(db.sql(query).rows) == Counter(rows), query


def test_null_in_a_list_or_between_reads_no_bare_column(open_db: Any) -> None:
    # random/groupby/slt_good_11.test:65637 and slt_good_12.test:46626: ``NULL NOT IN
    # (52, -col1, …)`` and ``NOT (NULL) BETWEEN 21 AND <col1 …>`` are NULL whatever the
    # list or bounds hold, so SQLite never reads col1 there and asks no GROUP BY of it.
    db, lite = _engines(open_db)
    for query in [
        "SELECT DISTINCT - - CASE WHEN NOT ( NULL ) BETWEEN ( + + 21 ) AND 42 * - CASE - col1 "
        "WHEN - col1 * - 20 * - col1 + - 83 THEN NULL ELSE - COALESCE ( CAST ( NULL AS INTEGER )"
        ", + + 58 + 99 ) * + col1 END THEN + - 84 END AS col2 FROM tab1 cor0 GROUP BY col2",
        "SELECT DISTINCT col2 * - CASE WHEN NULL NOT IN ( 52, - col1, + col1 + ( + + COUNT ( * ) )"
        ", - CAST ( NULL AS INTEGER ) ) THEN + - NULLIF ( - 84, + - SUM ( + pk ) - 35 ) ELSE "
        "COUNT ( * ) END FROM tab1 GROUP BY col2",
        "SELECT NULL IN (col1, 2), NULL NOT IN (col1), NULL BETWEEN col1 AND col2, "
        "NULL NOT BETWEEN 1 AND col1 FROM tab1 GROUP BY col2",
        "SELECT NULL IN (SELECT col1 FROM tab1 WHERE 0), NULL NOT IN ()",
    ]:
        assert Counter(db.sql(query).rows) == Counter(lite.execute(query).fetchall()), query


def test_distinct_star_in_an_aggregate_is_refused_as_sqlite_refuses_it(open_db: Any) -> None:
    # evidence/slt_lang_aggfunc.test:232 expects an error for ``count(DISTINCT *)``; it
    # was answered as ``count(*)``. ``DISTINCT`` of one expression still counts.
    import pytest

    from cosmictron.errors import SqlError

    db, lite = _engines(open_db)
    for query in ["SELECT count(DISTINCT *) FROM tab1", "SELECT sum(DISTINCT *) FROM tab1"]:
        with pytest.raises(sqlite3.OperationalError):
            lite.execute(query)
        with pytest.raises(SqlError, match=r"DISTINCT \*\) is not valid"):
            db.sql(query)
    query = "SELECT count(DISTINCT col1), count(*) FROM tab1"
    assert db.sql(query).rows == lite.execute(query).fetchall()
