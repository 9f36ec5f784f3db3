"""The subscription guarantees, one by one, through ``Database.subscribe``."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from typing import Any

import pytest

from cosmictron.errors import PermissionDenied, SqlError, SubscriptionError
from cosmictron.values import Identity, Timestamp
from tests.subscription.conftest import MODULE, Mirror


@pytest.fixture
def db(open_db: Any) -> Any:
    return open_db(MODULE)


def put(db: Any, table: str, **values: Any) -> int:
    db.call("batch", json.dumps([["put", table, values]]))
    return int(db.tx_offset)


def test_initial_rows_and_updates_carry_offsets_in_commit_order(db: Any) -> None:
    put(db, "a", id=1, k=1, v=5)
    updates: list[dict[str, Any]] = []
    sub = db.subscribe(["SELECT * FROM a WHERE v > 2"], on_update=updates.append)
    assert sub.initial == {
        "tx_offset": db.tx_offset,
        "tables": [{"table_name": "a", "rows": [(1, 1, 5)]}],
    }
    first = put(db, "a", id=2, k=None, v=3)
    second = put(db, "a", id=1, k=1, v=0)  # leaves the result
    assert [u["tx_offset"] for u in updates] == [first, second] == [sub.tx_offset + 1, first + 1]
    assert isinstance(updates[0]["timestamp"], Timestamp)
    assert updates[0]["tables"] == [{"table_name": "a", "inserts": [(2, None, 3)], "deletes": []}]
    assert updates[1]["tables"] == [{"table_name": "a", "inserts": [], "deletes": [(1, 1, 5)]}]


def test_no_gap_and_no_overlap_with_concurrent_writers(db: Any) -> None:
    """Writers commit while subscribers join; initial + updates equals the query."""
    stop = threading.Event()

    def write() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            put(db, "a", id=number % 6 + 1, k=number % 3, v=number % 4)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        mirrors = []
        for _ in range(20):
            mirror = Mirror()
            sub = db.subscribe(["SELECT * FROM a WHERE v >= 2"], on_update=mirror)
            mirror.start(sub.initial)
            mirrors.append((mirror, sub))
    finally:
        stop.set()
        writer.join()
    expected = Counter(db.sql("SELECT * FROM a WHERE v >= 2").rows)
    for mirror, sub in mirrors:
        assert mirror.table("a") == expected
        offsets = [u["tx_offset"] for u in mirror.updates]
        assert offsets == sorted(set(offsets))
        assert not offsets or offsets[0] > sub.tx_offset


def test_a_transaction_not_touching_the_query_costs_it_nothing(db: Any) -> None:
    updates: list[dict[str, Any]] = []
    db.subscribe(["SELECT a.* FROM a JOIN c ON c.a_id = a.id"], on_update=updates.append)
    (query,) = db.core.subscriptions.live_queries()
    put(db, "b", id=1, k=1, w=1)
    assert updates == [] and query.evaluations == 0
    put(db, "a", id=1, k=1, v=1)  # touches a table, changes nothing visible: no update
    assert updates == [] and query.evaluations == 1


def test_identical_queries_are_computed_once_per_transaction(db: Any) -> None:
    seen: list[list[dict[str, Any]]] = [[], [], []]
    text = "SELECT * FROM a WHERE v = :v"
    db.subscribe([text], on_update=seen[0].append, params={"v": 1})
    db.subscribe(["SELECT *  FROM a\nWHERE v = 1"], on_update=seen[1].append)
    db.subscribe([text], on_update=seen[2].append, params={"v": 2})  # another value
    assert db.core.subscriptions.query_count == 2
    put(db, "a", id=1, k=None, v=1)
    evaluations = sorted(q.evaluations for q in db.core.subscriptions.live_queries())
    assert evaluations == [0, 1]  # v = 2 is not even looked at: its guard says so
    assert seen[0] == seen[1] and len(seen[0]) == 1 and seen[2] == []


def test_queries_differing_in_a_constant_cost_only_the_rows_they_name(db: Any) -> None:
    """Each query is indexed by its ``column = constant``: a row wakes only its own."""
    mirrors = {}
    for v in range(100):
        mirror = Mirror()
        mirror.start(
            db.subscribe(
                ["SELECT * FROM a WHERE v = :v"], on_update=mirror, params={"v": v}
            ).initial
        )
        mirrors[v] = mirror
    joined = Mirror()
    joined.start(
        db.subscribe(
            ["SELECT a.* FROM a JOIN b ON b.k = a.k WHERE b.w = 3"], on_update=joined
        ).initial
    )
    queries = {q.text: q for q in db.core.subscriptions.live_queries()}
    by_v = {q.origin[1].get("v"): q for q in db.core.subscriptions.live_queries()}

    def evaluated() -> set[Any]:
        return {v for v, q in by_v.items() if q.evaluations}

    put(db, "a", id=1, k=1, v=5)
    assert evaluated() == {5, None}  # None: the join, which has no guard on a
    put(db, "a", id=1, k=1, v=7)  # leaves 5, enters 7: both are told
    assert evaluated() == {5, 7, None}
    put(db, "b", id=1, k=1, w=2)  # b's guard (w = 3) does not match: the join is skipped
    assert queries["SELECT a.* FROM a JOIN b ON b.k = a.k WHERE b.w = 3"].evaluations == 2
    put(db, "b", id=1, k=1, w=3)  # w moves from 2 to 3: the delete does not, the insert does
    assert joined.table("a") == Counter([(1, 1, 7)])
    for v, mirror in mirrors.items():
        expected = Counter(db.sql("SELECT * FROM a WHERE v = :v", {"v": v}).rows)
        assert mirror.table("a") == expected
    assert mirrors[7].table("a") == Counter([(1, 1, 7)]) and not mirrors[5].table("a")


def test_unsubscribe_stops_updates_and_frees_the_shared_query(db: Any) -> None:
    updates: list[dict[str, Any]] = []
    sub = db.subscribe(["SELECT * FROM a"], on_update=updates.append)
    other = db.subscribe(["SELECT * FROM a"], on_update=lambda update: None)
    put(db, "a", id=1, k=None, v=1)
    sub.unsubscribe()
    sub.unsubscribe()  # idempotent
    put(db, "a", id=2, k=None, v=1)
    assert len(updates) == 1 and db.core.subscriptions.query_count == 1
    other.unsubscribe()
    assert db.core.subscriptions.query_count == 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("SELECT COUNT(*) FROM a", "aggregates"),
        ("SELECT k, MAX(v) FROM a GROUP BY k", "aggregates"),
        ("SELECT DISTINCT * FROM a", "DISTINCT"),
        ("SELECT a.* FROM a LEFT JOIN b ON a.k = b.k", "LEFT JOIN"),
        ("SELECT id, v FROM a", "whole rows"),
        ("SELECT v + 1 FROM a", "whole rows"),
        ("SELECT * FROM a JOIN b ON a.k = b.k", "SELECT t.*"),
        ("SELECT * FROM a ORDER BY v LIMIT 3 OFFSET 1", "OFFSET"),
        ("SELECT * FROM a WHERE k NOT IN (SELECT k FROM b)", "NOT IN"),
        ("SELECT * FROM a WHERE v > (SELECT COUNT(*) FROM b)", "subquery"),
        ("SELECT k FROM a UNION SELECT k FROM b", "UNION"),
    ],
)
def test_queries_outside_the_delta_core_are_reevaluated_naming_why(
    db: Any, text: str, reason: str
) -> None:
    for number in range(1, 6):
        put(db, "a", id=number, k=number % 3, v=number)
        put(db, "b", id=number, k=number % 2, w=number)
    updates: list[Any] = []
    sub = db.subscribe([text], on_update=updates.append)
    explained = sub.explain()
    assert explained[0].startswith("Subscription: re-evaluated") and reason in explained[0]
    assert len(explained) > 1
    first = [row for table in sub.initial["tables"] for row in table["rows"]]
    assert Counter(first) == Counter(db.sql(text).rows)
    put(db, "a", id=50, k=1, v=7)
    put(db, "b", id=50, k=2, w=8)
    put(db, "a", id=2, k=None, v=0)
    # The subscriber's rows, updated by the diffs, are what the query returns now.
    mirror = Counter(first)
    for update in updates:
        for table in update["tables"]:
            mirror.update(table["inserts"])
            mirror.subtract(table["deletes"])
    assert +mirror == Counter(db.sql(text).rows)
    sub.unsubscribe()
    assert db.core.subscriptions.query_count == 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [("DELETE FROM a", "only a SELECT"), ("SELECT * FROM nope", "unknown table")],
)
def test_unsubscribable_statements_are_refused_naming_why(db: Any, text: str, reason: str) -> None:
    with pytest.raises(SqlError, match=reason):
        db.subscribe([text], on_update=lambda update: None)
    assert db.core.subscriptions.query_count == 0


def test_a_non_owner_cannot_subscribe_to_a_private_table(db: Any) -> None:
    stranger = Identity.from_hex("11" * 32)
    with pytest.raises(PermissionDenied, match="private"):
        db.subscribe(["SELECT * FROM secret"], sender=stranger)
    db.subscribe(["SELECT * FROM a WHERE id = 1"], sender=stranger)


def test_a_failing_callback_is_logged_and_its_subscription_kept(db: Any, caplog: Any) -> None:
    calls: list[int] = []
    healthy: list[int] = []

    def broken(update: dict[str, Any]) -> None:
        calls.append(update["tx_offset"])
        raise RuntimeError("subscriber bug")

    db.subscribe(["SELECT * FROM a"], on_update=broken)
    db.subscribe(["SELECT * FROM a"], on_update=lambda u: healthy.append(u["tx_offset"]))
    with caplog.at_level(logging.ERROR):
        first = put(db, "a", id=1, k=None, v=1)
        second = put(db, "a", id=2, k=None, v=1)
    assert calls == healthy == [first, second]
    assert "subscriber bug" in caplog.text
    assert db.sql("SELECT id FROM a").rows == [(1,), (2,)]


def test_bag_semantics_a_row_appears_once_per_combination(db: Any) -> None:
    put(db, "a", id=1, k=7, v=0)
    put(db, "b", id=1, k=7, w=0)
    mirror = Mirror()
    sub = db.subscribe(["SELECT a.* FROM a JOIN b ON a.k = b.k"], on_update=mirror)
    mirror.start(sub.initial)
    put(db, "b", id=2, k=7, w=0)
    assert mirror.updates[-1]["tables"][0]["inserts"] == [(1, 7, 0)]
    assert mirror.table("a") == Counter({(1, 7, 0): 2})
    # A row that enters and leaves in one transaction nets out: no update at all.
    db.call("batch", json.dumps([["put", "b", {"id": 3, "k": 7}], ["del", "b", {"id": 3}]]))
    assert len(mirror.updates) == 1


def test_several_queries_in_one_subscription_merge_per_table(db: Any) -> None:
    updates: list[dict[str, Any]] = []
    sub = db.subscribe(
        ["SELECT * FROM a WHERE v = 1", "SELECT * FROM a WHERE k = 1", "SELECT * FROM b"],
        on_update=updates.append,
    )
    assert [t["table_name"] for t in sub.initial["tables"]] == ["a", "b"]
    db.call(
        "batch",
        json.dumps([["put", "a", {"id": 1, "k": 1, "v": 1}], ["put", "b", {"id": 1, "k": 1}]]),
    )
    (update,) = updates
    tables = {t["table_name"]: t for t in update["tables"]}
    assert tables["a"]["inserts"] == [(1, 1, 1), (1, 1, 1)]  # matched by both queries
    assert tables["b"]["inserts"] == [(1, 1, None)]


def test_a_live_top_n_refills_its_window(db: Any) -> None:
    for number in range(1, 6):
        put(db, "a", id=number, k=None, v=number)
    updates: list[dict[str, Any]] = []
    sub = db.subscribe(["SELECT * FROM a ORDER BY v DESC LIMIT 2"], on_update=updates.append)
    assert sub.initial["tables"][0]["rows"] == [(5, None, 5), (4, None, 4)]
    db.call("batch", json.dumps([["del", "a", {"id": 5}]]))
    assert updates[-1]["tables"] == [
        {"table_name": "a", "inserts": [(3, None, 3)], "deletes": [(5, None, 5)]}
    ]
    put(db, "a", id=1, k=None, v=0)  # outside the window: no update
    assert len(updates) == 1
    put(db, "a", id=9, k=None, v=9)
    assert updates[-1]["tables"] == [
        {"table_name": "a", "inserts": [(9, None, 9)], "deletes": [(3, None, 3)]}
    ]


def test_a_callback_that_commits_does_not_reorder_updates(db: Any) -> None:
    first: list[int] = []
    second: list[int] = []

    def writer(update: dict[str, Any]) -> None:
        first.append(update["tx_offset"])
        if len(first) == 1:
            put(db, "a", id=99, k=None, v=0)

    db.subscribe(["SELECT * FROM a"], on_update=writer)
    db.subscribe(
        ["SELECT * FROM a WHERE v >= 0"], on_update=lambda u: second.append(u["tx_offset"])
    )
    base = db.tx_offset
    put(db, "a", id=1, k=None, v=1)  # its callback commits base + 2 during delivery
    assert first == second == [base + 1, base + 2]


def test_python_forms_in_initial_rows_and_updates(open_db: Any) -> None:
    db = open_db(
        """
class Mood(enum.Enum):
    CALM = 1
    ANGRY = 2

@table(name="feeling", public=True)
class Feeling:
    id: int = field(primary_key=True)
    mood: Mood = Mood.CALM

@reducer
def feel(ctx: ReducerContext, id: int, angry: bool) -> None:
    ctx.db.feeling.insert(Feeling(id=id, mood=Mood.ANGRY if angry else Mood.CALM))
"""
    )
    db.call("feel", 1, False)
    updates: list[dict[str, Any]] = []
    sub = db.subscribe(["SELECT * FROM feeling"], on_update=updates.append)
    assert sub.initial["tables"][0]["rows"] == db.sql("SELECT * FROM feeling").rows
    db.call("feel", 2, True)
    (row,) = updates[0]["tables"][0]["inserts"]
    assert row == db.sql("SELECT * FROM feeling WHERE id = 2").rows[0]
    assert row[1].name == "ANGRY"


def test_keyless_tables_and_composite_keys_are_maintained(open_db: Any) -> None:
    db = open_db(
        """
@table(name="tag", public=True)
class Tag:
    item: int = 0
    label: str = ""

@table(name="stock", public=True, primary_key=("shop", "item"))
class Stock:
    shop: int = 0
    item: int = 0
    qty: int = 0
"""
    )
    db.sql("INSERT INTO tag VALUES (1, 'red'), (2, 'red'), (1, 'big')")
    db.sql("INSERT INTO stock VALUES (1, 1, 5), (2, 1, 0), (1, 2, 3)")
    text = "SELECT s.* FROM tag t JOIN stock s ON s.item = t.item WHERE t.label = 'red'"
    mirror = Mirror()
    sub = db.subscribe([text], on_update=mirror)
    mirror.start(sub.initial)
    for statement in [
        "UPDATE stock SET qty = 9 WHERE shop = 1 AND item = 1",
        "DELETE FROM tag WHERE item = 1 AND label = 'red'",
        "INSERT INTO tag VALUES (1, 'red'), (3, 'red')",
        "INSERT INTO stock VALUES (7, 3, 1)",
        "DELETE FROM stock WHERE qty > 2",
    ]:
        db.sql(statement)
        assert mirror.table("stock") == Counter(db.sql(text).rows), statement
    assert len(mirror.updates) == 5


def test_a_query_that_cannot_be_maintained_ends_with_an_error(
    db: Any, monkeypatch: Any, caplog: Any
) -> None:
    """A top-N refill over the row limit: its subscribers get a SubscriptionError."""
    from cosmictron import limits

    for number in range(1, 6):
        put(db, "a", id=number, k=1, v=number)
    errors: list[SubscriptionError] = []
    updates: list[dict[str, Any]] = []
    top = db.subscribe(
        ["SELECT * FROM a ORDER BY v LIMIT 2"], on_update=updates.append, on_error=errors.append
    )
    other = db.subscribe(["SELECT * FROM a WHERE v > 3"], on_update=updates.append)
    monkeypatch.setattr(limits, "query_rows_max", 3)
    db.call("batch", json.dumps([["del", "a", {"id": 1}]]))  # a hole: refill reads 4 rows
    assert len(errors) == 1 and top.error is errors[0] and not top.active
    assert "could not be kept up to date" in str(errors[0]) and "row limit" in str(errors[0])
    put(db, "a", id=9, k=1, v=9)
    assert other.active and updates[-1]["tables"][0]["inserts"] == [(9, 1, 9)]
    assert all(
        query.text != "SELECT * FROM a ORDER BY v LIMIT 2"
        for query in db.core.subscriptions.live_queries()
    )


def test_a_module_update_ends_only_the_subscriptions_it_breaks(db: Any) -> None:
    """``schema_changed`` (what a hot-swap calls): dropped or changed tables end theirs."""
    import dataclasses

    from cosmictron.datastore import ColumnSchema, ModuleSchema
    from cosmictron.datastore.types import I64

    schema = db.schema
    a, c = schema.table("a"), schema.table("c")
    changed_c = dataclasses.replace(c, columns=(*c.columns, ColumnSchema("extra", I64, 0)))
    new = ModuleSchema(
        tables=(a, changed_c, schema.table("secret")), reducers=schema.reducers
    )  # b dropped, c changed
    errors: dict[str, list[SubscriptionError]] = {"a": [], "ab": [], "c": [], "a2": []}
    mirror = Mirror()
    kept = db.subscribe(
        ["SELECT * FROM a WHERE v >= 1"], on_update=mirror, on_error=errors["a"].append
    )
    mirror.start(kept.initial)
    joined = db.subscribe(["SELECT a.* FROM a JOIN b ON a.k = b.k"], on_error=errors["ab"].append)
    of_c = db.subscribe(["SELECT * FROM c"], on_error=errors["c"].append)
    top = db.subscribe(["SELECT * FROM a ORDER BY v DESC LIMIT 2"], on_error=errors["a2"].append)
    db.core.subscriptions.schema_changed(new)
    assert errors["a"] == [] and errors["a2"] == [] and kept.active and top.active
    assert "table 'b' was dropped" in str(errors["ab"][0]) and not joined.active
    assert "table 'c' was changed" in str(errors["c"][0]) and not of_c.active
    assert joined.error is errors["ab"][0]
    put(db, "a", id=7, k=2, v=3)  # the kept subscription goes on, on the new schema
    assert mirror.table("a") == Counter(db.sql("SELECT * FROM a WHERE v >= 1").rows)
    assert mirror.updates and mirror.updates[-1]["tables"][0]["inserts"] == [(7, 2, 3)]
    assert {query.text for query in db.core.subscriptions.live_queries()} == {
        "SELECT * FROM a WHERE v >= 1",
        "SELECT * FROM a ORDER BY v DESC LIMIT 2",
    }
