"""The function registry, CASE, CAST and the other expressions: what the differential
test cannot see (errors, this project's own types, the docs, value limits)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosmictron import Identity, Timestamp
from cosmictron.errors import QueryTooCostly, SqlError
from cosmictron.query.budget import QueryBudget
from cosmictron.query.functions import FUNCTIONS, reference_table

SQL_MD = Path(__file__).resolve().parents[2] / "docs" / "reference" / "sql.md"

MODULE = """
from typing import Optional
from cosmictron import table, field, Identity, Timestamp

@table(name="t", public=True)
class T:
    id: int = field(primary_key=True)
    n: Optional[int] = None
    s: Optional[str] = None
    who: Optional[Identity] = None
    at: Optional[Timestamp] = None
"""

ALICE = Identity(b"\x0a" * 32)


@pytest.fixture
def db(open_db):
    database = open_db(MODULE)
    database.sql(
        "INSERT INTO t VALUES (1, 5, 'Hello', :who, '2026-01-02T03:04:05Z'), "
        "(2, NULL, NULL, NULL, NULL)",
        {"who": ALICE},
    )
    return database


def one(db, expression: str, where: str = "id = 1", params=None):
    return db.sql(f"SELECT {expression} FROM t WHERE {where}", params).rows[0][0]


def test_the_docs_list_every_registered_function_from_the_registry():
    text = SQL_MD.read_text()
    assert reference_table() in text, (
        "docs/reference/sql.md's functions table is stale: replace it with the output of "
        "`python -m cosmictron.query.functions`"
    )
    for function in FUNCTIONS.values():
        assert f"`{function.syntax}`" in text, f"{function.name} is not in sql.md"
    not_supported = text.split("## Not supported", 1)[1]
    for construct in ("`CASE`", "`CAST`", "`RETURNING`", "`INSERT … SELECT`", "`ABS`"):
        assert construct not in not_supported, f"{construct} is still listed as not supported"


def test_empty_in_lists_even_for_null(db):
    assert one(db, "NULL NOT IN ()") is True
    assert one(db, "NULL IN ()") is False
    assert one(db, "n IN ()", "id = 2") is False
    assert db.sql("SELECT id FROM t WHERE n NOT IN () ORDER BY id").rows == [(1,), (2,)]


def test_is_and_is_not_treat_null_as_a_value(db):
    assert db.sql("SELECT id FROM t WHERE n IS NULL").rows == [(2,)]
    assert db.sql("SELECT id FROM t WHERE n IS 5").rows == [(1,)]
    assert db.sql("SELECT id FROM t WHERE n IS NOT 5").rows == [(2,)]
    assert one(db, "NULL IS NULL") is True and one(db, "n IS NOT NULL", "id = 2") is False


def test_cast_to_this_projects_types(db):
    assert one(db, "CAST(s AS bytes)") == b"Hello"
    assert one(db, "CAST('" + ALICE.hex() + "' AS Identity)") == ALICE
    assert one(db, "CAST(who AS Identity) = :who", params={"who": ALICE}) is True
    assert one(db, "CAST(1000000 AS Timestamp)") == Timestamp(1_000_000)
    assert one(db, "CAST('1970-01-01T00:00:02Z' AS TIMESTAMP)") == Timestamp(2_000_000)
    assert one(db, "CAST(n AS u8)") == 5
    assert one(db, "CAST('7x' AS i16) + 1") == 8
    assert one(db, "CAST(2 AS bool)") is True and one(db, "CAST(0 AS BOOLEAN)") is False
    assert one(db, "CAST(n AS SIGNED)") == 5 and one(db, "CAST('1.5' AS DECIMAL)") == 1.5
    with pytest.raises(SqlError, match=r"cannot CAST 300 AS u8.*out of range"):
        one(db, "CAST(300 AS u8)")
    with pytest.raises(SqlError, match="cannot CAST 'zz' AS Identity"):
        one(db, "CAST('zz' AS Identity)")


def test_typeof_of_this_projects_types(db):
    assert one(db, "TYPEOF(who)") == "blob"
    assert one(db, "TYPEOF(at)") == "integer"
    assert one(db, "TYPEOF(who)", "id = 2") == "null"


def test_functions_are_checked_when_planned(db):
    with pytest.raises(SqlError, match=r"argument 1 of LOWER\(\) must be text, got i64") as e:
        db.sql("SELECT LOWER(n) FROM t")
    assert (e.value.line, e.value.text) == (1, "n")
    with pytest.raises(SqlError, match=r"SUBSTR\(\) takes 2 to 3 arguments, got 1"):
        db.sql("SELECT SUBSTR(s) FROM t")
    with pytest.raises(SqlError, match=r"function NOPE\(\) \(functions: ABS, COALESCE"):
        db.sql("SELECT NOPE(s) FROM t")
    with pytest.raises(SqlError, match=r"the arguments of COALESCE\(\) mix i64 and str"):
        db.sql("SELECT COALESCE(n, s) FROM t")
    with pytest.raises(SqlError, match="ESCAPE expression must be a single character"):
        db.sql("SELECT id FROM t WHERE s LIKE 'a' ESCAPE 'xy'")
    with pytest.raises(SqlError, match="type mismatch"):
        db.sql("SELECT CASE WHEN n > 1 THEN n ELSE s END FROM t")


def test_a_literal_takes_the_type_of_the_other_arguments(db):
    text = "SELECT id FROM t WHERE COALESCE(who, :zero) = :who ORDER BY id"
    assert db.sql(text, {"zero": "00" * 32, "who": ALICE}).rows == [(1,)]
    assert one(db, f"COALESCE(who, '{'00' * 32}')", "id = 2") == Identity.zero()


def test_replace_is_bounded_by_the_value_limit(db):
    small = QueryBudget(value_bytes_max=1000)
    assert len(db.sql("SELECT REPLACE(s, 'l', 'xxxx') FROM t", budget=small).rows) == 2
    with pytest.raises(QueryTooCostly, match=r"REPLACE\(\)"):
        db.sql(
            "SELECT REPLACE(REPLACE(REPLACE(s, 'l', :big), 'x', :big), 'x', :big) FROM t",
            {"big": "x" * 40},
            budget=small,
        )


def test_case_evaluates_only_the_branch_taken(db):
    assert one(db, "CASE WHEN n > 0 THEN n ELSE CAST(300 AS u8) END") == 5
    assert one(db, "CASE n WHEN 5 THEN 'five' END") == "five"
    assert one(db, "CASE n WHEN 5 THEN 'five' END", "id = 2") is None


def test_explain_shows_functions_case_and_cast(db):
    lines = [
        line
        for (line,) in db.sql(
            "EXPLAIN SELECT ABS(n), CASE WHEN n IS 1 THEN 'a' END, CAST(s AS INTEGER) FROM t "
            "WHERE s GLOB 'H*' ORDER BY UPPER(s) NULLS LAST"
        )
    ]
    text = "\n".join(lines)
    assert "ABS(n)" in text and "CASE WHEN (n IS 1) THEN 'a' END" in text
    assert "CAST(s AS INTEGER)" in text and "s GLOB 'H*'" in text
    assert "UPPER(s) NULLS LAST" in text


def test_functions_in_group_by_having_and_order_by(db):
    db.sql("INSERT INTO t (id, n, s) VALUES (3, -5, 'hello'), (4, 7, 'HELLO ')")
    rows = db.sql(
        "SELECT UPPER(TRIM(s)) AS k, COUNT(*), MAX(ABS(n)) FROM t WHERE s IS NOT NULL "
        "GROUP BY UPPER(TRIM(s)) HAVING SUM(ABS(n)) > 0 ORDER BY k"
    ).rows
    assert rows == [("HELLO", 3, 7)]
    ordered = db.sql("SELECT id FROM t ORDER BY n NULLS LAST, id").rows
    assert ordered == [(3,), (1,), (4,), (2,)]
    ordered = db.sql("SELECT id FROM t ORDER BY n DESC NULLS FIRST").rows
    assert ordered == [(2,), (4,), (1,), (3,)]


def test_json_functions_on_a_text_column(db):
    db.sql("""INSERT INTO t (id, s) VALUES (5, '{"a":[1,2.5,{"b":true}],"n":"x"}'), (6, '{')""")
    row = db.sql(
        "SELECT JSON_EXTRACT(s, '$.a[2].b'), s -> '$.n', s ->> 'n', JSON_TYPE(s, '$.a'), "
        "JSON_ARRAY_LENGTH(s, '$.a'), JSON_EXTRACT(s, '$.a[#-2]', '$.zz'), s -> '$.zz' "
        "FROM t WHERE id = 5"
    ).rows[0]
    assert row == (1, '"x"', "x", "array", 3, "[2.5,null]", None)
    assert db.sql("SELECT id FROM t WHERE id = 5 AND s ->> '$.a[0]' = 1").rows == [(5,)]
    assert db.sql("SELECT id, JSON_VALID(s) FROM t WHERE id >= 5 ORDER BY id").rows == [
        (5, True),
        (6, False),
    ]
    with pytest.raises(SqlError, match="malformed JSON"):
        db.sql("SELECT JSON_EXTRACT(s, '$.a') FROM t WHERE id = 6")
    with pytest.raises(SqlError, match="bad JSON path"):
        db.sql("SELECT JSON_EXTRACT(s, :path) FROM t WHERE id = 5", {"path": "$.a["})


def test_coalesce_stops_at_the_first_value_as_sqlite_does(db):
    """Later arguments are not evaluated (here one would raise: malformed JSON)."""
    assert one(db, "COALESCE(s, JSON_TYPE('{'))") == "Hello"
    assert one(db, "IFNULL(s, JSON_TYPE('{'))") == "Hello"
    with pytest.raises(SqlError, match="malformed JSON"):
        one(db, "COALESCE(s, JSON_TYPE('{'))", "id = 2")
