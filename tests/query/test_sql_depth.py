"""SQL nesting bounded before anything recurses (issue 21): a 400 ``too_deep``, never a
``RecursionError``.

``limits.sql_depth_max`` counts what SQLGlot's parser recurses on (parentheses and
subqueries, CASE, prefix NOT and -), on the text, before it parses;
``limits.sql_expression_depth_max`` bounds the parsed tree (a chain of ANDs or ||),
before binding. Statements at each limit run, from a thread whose stack is already
150 frames deep (as a server's worker thread is); one level more is refused.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cosmictron import limits
from cosmictron.errors import SqlError, SqlTooDeep, TooDeep

MODULE = """
@table(name="t", public=True)
class T:
    id: int = field(primary_key=True)
    s: str = ""
    n: int = 0

@reducer
def seed(ctx: ReducerContext) -> None:
    for i in range(5):
        T.insert(T(id=i, s="x", n=i))
"""


@pytest.fixture
def db(open_db):
    database = open_db(MODULE)
    database.call("seed")
    return database


def on_a_deep_stack(work: Any) -> Any:
    """Run ``work()`` on a new thread, 150 frames down; return or raise what it did."""
    outcome: dict[str, Any] = {}

    def down(frames: int) -> Any:
        return down(frames - 1) if frames else work()

    def run() -> None:
        try:
            outcome["value"] = down(150)
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def nested(depth: int) -> dict[str, str]:
    """One statement per construct the parser recurses on, ``depth`` levels deep."""
    return {
        "parentheses": "SELECT * FROM t WHERE " + "(" * depth + "n = 1" + ")" * depth,
        "NOT": "SELECT * FROM t WHERE " + "NOT " * depth + "n = 1",
        "minus": "SELECT " + "- " * depth + "n FROM t",
        "parenthesised ||": "SELECT " + "(s || " * depth + "s" + ")" * depth + " FROM t",
    }


def chains(length: int) -> dict[str, str]:
    return {
        "AND": "SELECT * FROM t WHERE " + " AND ".join(["n = 1"] * length),
        "||": "SELECT " + " || ".join(["s"] * length) + " FROM t",
        "+": "SELECT " + " + ".join(["n"] * length) + " FROM t",
    }


def test_nesting_at_the_limit_runs_and_one_deeper_is_too_deep(db):
    depth = limits.sql_depth_max
    for name, text in nested(depth).items():
        on_a_deep_stack(lambda text=text: db.sql(text))
        deeper = nested(depth + 1)[name]
        with pytest.raises(SqlTooDeep) as caught:
            on_a_deep_stack(lambda deeper=deeper: db.sql(deeper))
        error = caught.value
        assert isinstance(error, SqlError) and isinstance(error, TooDeep), name
        assert error.code == "too_deep" and error.http_status == 400, name
        assert f"more than {depth} deep" in str(error), name
        assert "limits.sql_depth_max" in str(error), name


def test_chains_up_to_the_tree_limit_run_and_longer_ones_are_too_deep(db):
    # the statement's own levels (SELECT, WHERE, a comparison) take a few of the limit
    fits = limits.sql_expression_depth_max - 6
    for name, text in chains(fits).items():
        on_a_deep_stack(lambda text=text: db.sql(text))
        if name == "AND":  # subscriptions take whole rows only
            on_a_deep_stack(lambda text=text: db.subscribe([text]))
        longer = chains(limits.sql_expression_depth_max + 1)[name]
        with pytest.raises(SqlTooDeep) as caught:
            on_a_deep_stack(lambda longer=longer: db.sql(longer))
        assert "limits.sql_expression_depth_max" in str(caught.value), name


def test_a_huge_nesting_is_refused_without_recursing(db):
    for text in ("SELECT " + "(" * 60_000, "SELECT " + "NOT " * 10_000 + "1 FROM t"):
        with pytest.raises(SqlTooDeep):
            on_a_deep_stack(lambda text=text: db.sql(text))


def test_parentheses_in_strings_and_comments_do_not_count(db, monkeypatch):
    monkeypatch.setattr(limits, "sql_depth_max", 3)
    text = "SELECT id FROM t WHERE s = '((((((' -- ))))((((\n /* (((((( */ AND n = 1"
    assert db.sql(text).rows == []
    assert db.sql("SELECT id FROM t WHERE \"s\" = 'x' AND (((n = 1)))").rows == [(1,)]
    with pytest.raises(SqlTooDeep):
        db.sql("SELECT id FROM t WHERE ((((n = 1))))")
