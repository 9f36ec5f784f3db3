"""``EXPLAIN`` through ``db.sql``: a SELECT's last line says how a subscription to it
would be kept up to date, the same line ``Subscription.explain`` starts with, computed
from the statement already planned (the statement cache still parses it once)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.subscription.conftest import MODULE

parse_module = importlib.import_module("cosmictron.query.parse")  # not query.parse()


@pytest.fixture
def db(open_db: Any) -> Any:
    return open_db(MODULE)


def explained(db: Any, text: str, params: Any = None, sender: Any = None) -> list[str]:
    return [line for (line,) in db.sql("EXPLAIN " + text, params, sender=sender).rows]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("SELECT * FROM a WHERE v > 1", "Subscription: incremental (delta terms) over a"),
        ("SELECT * FROM a ORDER BY v LIMIT 3", "Subscription: incremental (top-N window) over a"),
        (
            "SELECT * FROM b WHERE EXISTS (SELECT 1 FROM c WHERE c.k = b.k)",
            "Subscription: incremental (delta terms, semi-joins counted per key: "
            "EXISTS SELECT 1 FROM c WHERE c.k = b.k) over b, c",
        ),
        ("SELECT k, COUNT(*) FROM a GROUP BY k", "not incremental: aggregates and GROUP BY"),
        ("SELECT k FROM a UNION SELECT k FROM b", "re-evaluated when a, b change"),
        ("SELECT 1", "Subscription: its result never changes (it reads no table)"),
    ],
)
def test_explain_ends_with_the_subscription_line(db: Any, text: str, line: str) -> None:
    lines = explained(db, text)
    assert line in lines[-1]
    assert lines[-1] == db.subscribe([text]).explain()[0]
    assert not any(found.startswith("Subscription") for found in lines[:-1])


def test_explain_of_dml_has_no_subscription_line(db: Any) -> None:
    assert not any("Subscription" in line for line in explained(db, "DELETE FROM a WHERE id = 1"))


def test_the_line_is_computed_without_parsing_again(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses = [0]
    original = parse_module.syntax_tree

    def counting(source: Any) -> Any:
        parses[0] += 1
        return original(source)

    monkeypatch.setattr(parse_module, "syntax_tree", counting)
    text = "SELECT * FROM a WHERE k IN (SELECT k FROM b WHERE w > :w)"
    first = explained(db, text, {"w": 1})
    second = explained(db, text, {"w": 2})
    assert parses[0] == 1  # the statement cache serves the second, line included
    assert "semi-joins counted per key" in first[-1] and "semi-joins" in second[-1]
    assert first[:-1] != second[:-1]  # each bound to its own value
