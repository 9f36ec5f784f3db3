"""An aggregate of enclosing columns inside a subquery belongs to the enclosing query.

SQLite's rule: ``SELECT (SELECT MAX(t.a) FROM u) FROM t`` aggregates ``t`` (one row),
because ``MAX``'s argument reads only the outer query's columns; an aggregate that reads
the subquery's own columns (or none) is the subquery's. Each query runs over the random
rows of ``random_sql.py`` on Cosmictron and on SQLite, several seeds, and must agree.
"""

from __future__ import annotations

from typing import Any

import pytest

from cosmictron.errors import SqlError
from tests.query.test_differential import _engines, _rows, _sorted

QUERIES = [
    "SELECT (SELECT MAX(r.a) FROM t1 q) FROM t0 r",
    "SELECT (SELECT COUNT(r.b) FROM t2 q) FROM t0 r",
    "SELECT (SELECT SUM(r.a) + q.b FROM t1 q WHERE q.id = 1) FROM t0 r",
    "SELECT (SELECT MIN(r.a + r.b) FROM t3 q WHERE q.a IS NOT NULL) FROM t0 r",
    "SELECT r.a, (SELECT SUM(r.b) FROM t1 q WHERE q.a = r.a) FROM t0 r GROUP BY r.a",
    "SELECT (SELECT COUNT(*) FROM t1 q WHERE q.b < MAX(r.a)) FROM t0 r",
    "SELECT (SELECT (SELECT MAX(r.a) FROM t2 p) FROM t1 q) FROM t0 r",
    "SELECT (SELECT MAX(r.a + q.a) FROM t1 q) FROM t0 r",
    "SELECT (SELECT MAX(q.a) FROM t1 q WHERE q.b = r.b) FROM t0 r",
    "SELECT COUNT(*), (SELECT AVG(r.a) FROM t4 q) FROM t0 r",
]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_outer_aggregates_agree_with_sqlite(open_db: Any, seed: int) -> None:
    db, reference = _engines(open_db, seed)
    for query in QUERIES:
        ours = _sorted(_rows(db.sql(query).rows))
        theirs = _sorted(_rows(reference.execute(query).fetchall()))
        assert ours == theirs, (query, seed)


def test_an_outer_aggregate_in_where_is_refused(open_db: Any) -> None:
    db, _ = _engines(open_db, 1)
    with pytest.raises(SqlError, match=r"aggregate MAX\(\) is not allowed in WHERE"):
        db.sql("SELECT * FROM t0 r WHERE r.a = (SELECT MAX(r.b) FROM t1 q)")
