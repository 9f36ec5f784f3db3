"""Differential tests: random queries on Cosmictron (``db.sql``) and on SQLite.

``random_sql.py`` writes queries of every supported shape over random rows with NULLs;
each runs on both engines and the answers must be equal: as lists when the query orders
its rows completely, else as multisets. Booleans are compared as SQLite's 0/1 and floats
rounded (sums may add in another order). A fixed seed runs in CI; the soak run
(``scripts/soak``) tries many more seeds.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

import pytest

from tests.query import random_sql

MODULE = "from typing import Optional\n\n" + random_sql.module_source()
CI_QUERIES = 1500
CI_SEED = 20261206


def _normal(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def _rows(rows: Any) -> list[tuple[Any, ...]]:
    return [tuple(_normal(v) for v in row) for row in rows]


def _sorted(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=lambda row: [(v is not None, str(type(v)), v) for v in row])


def _engines(open_db: Any, seed: int, path: Any = None) -> tuple[Any, sqlite3.Connection]:
    db = open_db(MODULE, path=path)
    reference = sqlite3.connect(":memory:")
    reference.execute("PRAGMA case_sensitive_like = ON")
    for statement in random_sql.sqlite_schema():
        reference.execute(statement)
    for name, rows in random_sql.rows(seed).items():
        reference.executemany(f"INSERT INTO {name} VALUES (?, ?, ?, ?)", rows)
        for row in rows:
            db.sql(
                f"INSERT INTO {name} VALUES (:id, :a, :b, :c)",
                dict(zip(("id", "a", "b", "c"), row, strict=True)),
            )
    return db, reference


def compare(db: Any, reference: sqlite3.Connection, seed: int, count: int) -> list[str]:
    """Run ``count`` random queries from ``seed`` on both; the differences found."""
    generator = random_sql.Generator(seed)
    failures: list[str] = []
    for _ in range(count):
        query, ordered = generator.query()
        expected = _rows(reference.execute(query).fetchall())
        try:
            actual = _rows(db.sql(query).rows)
        except Exception as exc:
            failures.append(f"{query}\n  cosmictron raised {type(exc).__name__}: {exc}")
            continue
        if not ordered:
            expected, actual = _sorted(expected), _sorted(actual)
        if expected != actual:
            failures.append(f"{query}\n  sqlite:     {expected[:6]}\n  cosmictron: {actual[:6]}")
    return failures


def test_random_queries_match_sqlite(open_db: Any) -> None:
    db, reference = _engines(open_db, CI_SEED)
    failures = compare(db, reference, CI_SEED, CI_QUERIES)
    assert not failures, f"{len(failures)} of {CI_QUERIES} differ:\n" + "\n".join(failures[:10])


def test_the_generator_covers_every_shape() -> None:
    """Each supported construct appears among the CI queries (so none is silently off)."""
    generator = random_sql.Generator(CI_SEED)
    texts = " ".join(generator.query()[0] for _ in range(CI_QUERIES))
    for construct in (
        " IN (SELECT",
        "NOT IN (SELECT",
        "EXISTS (SELECT",
        "NOT EXISTS",
        "(SELECT COUNT(*)",
        " UNION ",
        "UNION ALL",
        "INTERSECT",
        "EXCEPT",
        "WITH w AS",
        "FROM (SELECT",
        "GROUP BY",
        "HAVING",
        "ORDER BY",
        "LIMIT",
        "IS NULL",
        "BETWEEN",
        "LIKE",
        "DISTINCT",
        "JOIN t",
        "r7.",
        "CASE WHEN",
        "CASE r",
        "CAST(",
        "AS REAL)",
        "COALESCE(",
        "NULLIF(",
        "SUBSTR(",
        "TYPEOF(",
        "WITH RECURSIVE",
        ") IN (SELECT s",
        ") IN t",
        ") BETWEEN (",
        "TOTAL(",
        "GROUP_CONCAT(",
        "HAVING NULL NOT IN",
        " & ",
        " | ",
        " << ",
        " >> ",
        "(~",
        "(1 << 63)",
        "w(n, d)",
    ):
        assert construct in texts, construct
    assert not random_sql.SHAPES & random_sql.PENDING


@pytest.mark.soak
def test_many_random_queries_match_sqlite(open_db: Any, tmp_path: Any) -> None:
    seeds = int(os.environ.get("COSMICTRON_SOAK_SEEDS", "40"))
    started = time.monotonic()
    for seed in range(seeds):
        db, reference = _engines(open_db, seed, tmp_path / f"seed{seed}")
        failures = compare(db, reference, seed, 2000)
        assert not failures, f"seed {seed}: {len(failures)} differ:\n" + "\n".join(failures[:10])
        db.close()
    assert time.monotonic() > started


def test_a_repeated_item_is_not_a_null_in_an_in_list(open_db: Any) -> None:
    """Found by the random queries: ``NOT IN (4, 4)`` was NULL, as if the list held one."""
    db, reference = _engines(open_db, CI_SEED)
    query = "SELECT id FROM t0 WHERE a NOT IN (4, 4) AND 1 IN (1, 1)"
    assert _sorted(_rows(db.sql(query).rows)) == _sorted(reference.execute(query).fetchall())
    assert db.sql(query).rows
