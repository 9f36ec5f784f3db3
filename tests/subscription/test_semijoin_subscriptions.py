"""Semi-join subscriptions one guarantee at a time: how each is kept, and what survives
a module update (differential coverage: test_semijoin_differential.py)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

import pytest

from cosmictron import limits
from cosmictron.datastore import ColumnSchema, ModuleSchema
from cosmictron.datastore.types import I64
from cosmictron.errors import PermissionDenied, QueryTooCostly
from cosmictron.values import Identity
from tests.subscription.conftest import MODULE, Mirror

COUNTED = "SELECT * FROM a WHERE k IN (SELECT k FROM b WHERE w > 0)"
GROUPED = "SELECT k, COUNT(*) FROM a GROUP BY k"


@pytest.fixture
def db(open_db: Any) -> Any:
    return open_db(MODULE)


def put(db: Any, table: str, **values: Any) -> None:
    db.call("batch", json.dumps([["put", table, values]]))


@pytest.mark.parametrize(
    ("text", "explained"),
    [
        (COUNTED, "incremental (delta terms, semi-joins counted per key: IN (SELECT k FROM b"),
        (
            "SELECT * FROM b WHERE NOT EXISTS (SELECT 1 FROM c WHERE c.k = b.k)",
            "semi-joins counted per key: NOT EXISTS SELECT 1 FROM c WHERE c.k = b.k",
        ),
        ("SELECT * FROM a WHERE k NOT IN (SELECT k FROM b)", "re-evaluated when a, b change"),
        (
            "SELECT * FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.k > a.k)",
            "not incremental: a subquery correlated other than by equalities",
        ),
        (
            "SELECT * FROM a WHERE k IN (SELECT k FROM b) ORDER BY v LIMIT 2",
            "not incremental: a subquery in a top-N subscription",
        ),
        (
            "SELECT * FROM a WHERE k IN (SELECT MAX(k) FROM b)",
            "not incremental: a subquery that is not a filter of one table",
        ),
    ],
)
def test_explain_says_how_each_subquery_is_kept(db: Any, text: str, explained: str) -> None:
    lines = db.subscribe([text]).explain()
    assert explained in lines[0]
    if "counted" in lines[0]:
        assert any(line.startswith("  Semi-join ") for line in lines)


def test_a_non_owner_cannot_count_a_private_table(db: Any) -> None:
    stranger = Identity.from_hex("22" * 32)
    with pytest.raises(PermissionDenied, match="secret"):
        db.subscribe(["SELECT * FROM a WHERE id IN (SELECT id FROM secret)"], sender=stranger)


def test_counted_and_reevaluated_queries_survive_a_module_update(db: Any) -> None:
    """A hot-swap recompiles both and counts (or evaluates) them again on the new schema."""
    put(db, "a", id=1, k=1, v=1)
    put(db, "b", id=1, k=1, w=1)
    mirrors = {text: Mirror() for text in (COUNTED, GROUPED)}
    for text, mirror in mirrors.items():
        mirror.start(db.subscribe([text], on_update=mirror).initial)
    schema = db.schema
    c = schema.table("c")
    changed_c = dataclasses.replace(c, columns=(*c.columns, ColumnSchema("extra", I64, 0)))
    new = ModuleSchema(
        tables=(schema.table("a"), schema.table("b"), changed_c, schema.table("secret")),
        reducers=schema.reducers,
    )
    db.core.subscriptions.schema_changed(new)
    put(db, "a", id=2, k=1, v=5)
    put(db, "b", id=1, k=1, w=0)  # key 1 no longer passes: both rows of a leave
    put(db, "b", id=2, k=1, w=3)  # and come back
    for text, mirror in mirrors.items():
        assert mirror.table(mirror_name(text)) == Counter(db.sql(text).rows), text
    assert len(mirrors[COUNTED].updates) == 3


def mirror_name(text: str) -> str:
    return "a" if text == COUNTED else text


def test_the_row_limit_bounds_the_result_not_the_inner_rows(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten inner rows and a result of two fit a row limit of 3; a result of four does not."""
    monkeypatch.setattr(limits, "query_rows_max", 3)
    ops = [["put", "b", {"id": n, "k": n, "w": 1}] for n in range(1, 11)]
    ops += [["put", "a", {"id": n, "k": n, "v": n}] for n in range(1, 5)]
    db.call("batch", json.dumps(ops))
    small = "SELECT * FROM a WHERE v <= 2 AND k IN (SELECT k FROM b WHERE w > 0)"
    sub = db.subscribe([small])
    assert sorted(sub.initial["tables"][0]["rows"]) == [(1, 1, 1), (2, 2, 2)]
    with pytest.raises(QueryTooCostly, match="more than 3 rows"):
        db.subscribe([COUNTED])
