"""Honest DML: counts of rows really written, INSERT … SELECT and RETURNING.

A keyless table is a set: an INSERT of a row identical to a stored one stores nothing
and counts 0 (SQLite, whose tables are bags, would store and count it). Every statement
is checked against what a following SELECT sees and, for the writes, against the state
after reopening (the commit log replays them).
"""

from __future__ import annotations

import pytest

from cosmictron.errors import Conflict, InvalidRequest, SqlError

MODULE = """
from typing import Optional
from cosmictron import table, field

@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True, auto_inc=True)
    name: str = ""
    price: Optional[float] = None
    tag: Optional[str] = None

@table(name="pair", public=True)
class Pair:
    x: int = 0
    y: str = ""

@table(name="log", public=True, event=True)
class Log:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""
"""


@pytest.fixture
def db(open_db):
    return open_db(MODULE)


def test_a_duplicate_keyless_row_stores_nothing_and_counts_zero(db):
    assert db.sql("INSERT INTO pair VALUES (1, 'a'), (1, 'a'), (2, 'b')").rows_affected == 2
    assert db.sql("INSERT INTO pair VALUES (1, 'a')").rows_affected == 0
    assert db.sql("INSERT INTO pair VALUES (1, 'a'), (3, 'c')").rows_affected == 1
    assert sorted(db.sql("SELECT * FROM pair").rows) == [(1, "a"), (2, "b"), (3, "c")]


def test_insert_returning_gives_the_stored_rows_with_their_ids(db):
    result = db.sql(
        "INSERT INTO item (name, price) VALUES ('lamp', 12.5), ('desk', NULL) "
        "RETURNING id, UPPER(name) AS loud, COALESCE(price, 0) * 2"
    )
    assert result.rows_affected == 2
    assert result.columns == ("id", "loud", "COALESCE(price, 0) * 2")
    assert result.rows == [(1, "LAMP", 25.0), (2, "DESK", 0)]
    assert db.sql("INSERT INTO pair VALUES (1, 'a') RETURNING *").rows == [(1, "a")]
    again = db.sql("INSERT INTO pair VALUES (1, 'a') RETURNING *")
    assert (again.rows_affected, again.rows) == (0, [])  # nothing stored, nothing returned


def test_update_and_delete_returning(db):
    db.sql("INSERT INTO item (name, price) VALUES ('a', 1.0), ('b', 2.0), ('c', 3.0)")
    result = db.sql("UPDATE item SET price = price * 10 WHERE price > 1 RETURNING id, price")
    assert (result.rows_affected, sorted(result.rows)) == (2, [(2, 20.0), (3, 30.0)])
    result = db.sql("DELETE FROM item WHERE price < 25 RETURNING name, price")
    assert (result.rows_affected, sorted(result.rows)) == (2, [("a", 1.0), ("b", 20.0)])
    assert db.sql("SELECT name FROM item").rows == [("c",)]
    none = db.sql("DELETE FROM item WHERE id = 99 RETURNING *")
    assert (none.rows_affected, none.columns, none.rows) == (0, ("id", "name", "price", "tag"), [])


def test_update_counts_matched_rows_and_merges_keyless_duplicates(db):
    db.sql("INSERT INTO pair VALUES (1, 'a'), (2, 'a'), (3, 'b')")
    result = db.sql("UPDATE pair SET x = 0 WHERE y = 'a'")
    assert result.rows_affected == 2  # two rows matched and changed ...
    assert sorted(db.sql("SELECT * FROM pair").rows) == [(0, "a"), (3, "b")]  # ... now one


def test_insert_select_copies_rows_with_expressions(db, open_db, tmp_path):
    db.sql("INSERT INTO item (name, price, tag) VALUES ('a', 1.5, 'x'), ('b', NULL, NULL)")
    result = db.sql(
        "INSERT INTO pair (y, x) SELECT COALESCE(tag, 'none'), "
        "COALESCE(CAST(ROUND(price) AS INTEGER), -1) FROM item WHERE name <> 'zz'"
    )
    assert result.rows_affected == 2
    assert sorted(db.sql("SELECT * FROM pair").rows) == [(-1, "none"), (2, "x")]
    copied = db.sql("INSERT INTO item (name) SELECT y FROM pair RETURNING id, name")
    assert sorted(name for _, name in copied.rows) == ["none", "x"]
    assert sorted(id_ for id_, _ in copied.rows) == [3, 4]
    assert db.sql("INSERT INTO pair SELECT x, y FROM pair").rows_affected == 0  # a set
    with pytest.raises(InvalidRequest, match="column 'x'"):  # NULL into a non-NULL column
        db.sql("INSERT INTO pair SELECT CAST(price AS INTEGER), name FROM item")
    db.close()
    reopened = open_db(path=tmp_path / "data")
    assert len(reopened.sql("SELECT * FROM item").rows) == 4
    assert len(reopened.sql("SELECT * FROM pair").rows) == 2


def test_insert_select_is_all_or_nothing_on_a_conflict(db):
    db.sql("INSERT INTO item (name) VALUES ('a'), ('b')")
    with pytest.raises(Conflict):
        db.sql("INSERT INTO item SELECT * FROM item")
    assert len(db.sql("SELECT * FROM item").rows) == 2


def test_insert_select_errors_are_specific(db):
    with pytest.raises(SqlError, match="the SELECT gives 1 columns for 2 columns"):
        db.sql("INSERT INTO pair SELECT x FROM pair")
    with pytest.raises(SqlError, match="type mismatch: column pair.x is i64, the SELECT gives str"):
        db.sql("INSERT INTO pair SELECT y, y FROM pair")
    with pytest.raises(SqlError, match="not allowed in RETURNING"):
        db.sql("INSERT INTO pair VALUES (1, 'a') RETURNING COUNT(*)")
    with pytest.raises(SqlError, match="unknown column"):
        db.sql("DELETE FROM pair RETURNING nope")
    with pytest.raises(InvalidRequest, match="append-only"):
        db.sql("DELETE FROM log RETURNING *")


def test_explain_shows_the_query_an_insert_reads(db):
    lines = [line for (line,) in db.sql("EXPLAIN INSERT INTO pair SELECT id, name FROM item")]
    assert lines[0].startswith("Scan item") and lines[-1] == "Insert pair (the rows above)"
