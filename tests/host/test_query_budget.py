"""Query budgets on the embedded Database, and queries reading snapshots off the lock.

A budget is checked while the query runs: the cartesian product below returns one row
(``COUNT(*)``) yet examines 27 billion row triples, and must be stopped by its time or
rows-examined budget with the error that names the limit. Snapshots: a query or a
subscription running on another thread sees one committed state while reducers commit.
"""

from __future__ import annotations

import threading

import pytest

from cosmictron import ResourceExhausted, limits
from cosmictron.errors import QueryCancelled, QueryTooCostly
from cosmictron.query.budget import QueryBudget

MODULE = """
@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True)
    v: int = field(default=0, index="btree")

@table(name="log", public=True)
class Log:
    id: int = field(primary_key=True)

@reducer
def seed(ctx: ReducerContext, n: int) -> None:
    for i in range(n):
        Item.insert(Item(id=i, v=i))

@reducer
def add(ctx: ReducerContext, id: int, v: int) -> None:
    Item.insert(Item(id=id, v=v))

@reducer
def note(ctx: ReducerContext, id: int) -> None:
    Log.insert(Log(id=id))
"""

CARTESIAN = "SELECT COUNT(*) FROM item a, item b, item c WHERE a.v + b.v + c.v = -1"


@pytest.fixture
def db(open_db):
    database = open_db(MODULE)
    database.call("seed", 3000)
    return database


def test_the_time_budget_stops_a_cartesian_product_that_returns_one_row(db):
    with pytest.raises(QueryCancelled) as caught:
        db.sql(CARTESIAN, timeout_s=0.3)
    error = caught.value
    assert error.code == "query_cancelled" and error.http_status == 422
    assert "0.3 s (its time budget)" in str(error)
    assert "timeout_s=" in str(error) and "limits.query_time_s_max" in str(error)


def test_the_rows_examined_budget_counts_join_pairs_not_rows_returned(db):
    with pytest.raises(QueryTooCostly) as caught:
        db.sql(CARTESIAN, rows_examined_max=200_000)
    error = caught.value
    assert isinstance(error, ResourceExhausted)  # existing handlers still catch it
    assert error.code == "resource_exhausted" and error.http_status == 422
    assert "more than 200,000 rows" in str(error) and "rows_examined_max=" in str(error)
    # The same budget is plenty for a join on equal columns (about 2 rows per row).
    rows = db.sql(
        "SELECT COUNT(*) FROM item a JOIN item b ON a.id = b.v", rows_examined_max=200_000
    ).rows
    assert rows == [(3000,)]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM item",  # a scan
        "SELECT * FROM item WHERE v >= 0",  # an index range
        "SELECT COUNT(*) FROM item a JOIN item b ON a.v = b.v + 0",  # a hash join
        "SELECT COUNT(*) FROM item a JOIN item b ON a.v = b.id",  # an index join
        "SELECT v, COUNT(*) FROM item GROUP BY v ORDER BY v",  # aggregate and sort
    ],
)
def test_every_operator_charges_the_rows_it_examines(db, query):
    assert db.sql(query, rows_examined_max=10_000).rows  # enough for each
    with pytest.raises(QueryTooCostly):
        db.sql(query, rows_examined_max=1_000)


def test_the_defaults_in_limits_apply_when_nothing_is_passed(db, monkeypatch):
    monkeypatch.setattr(limits, "query_time_s_max", 0.2)
    with pytest.raises(QueryCancelled, match="0.2 s"):
        db.sql(CARTESIAN)
    monkeypatch.setattr(limits, "query_time_s_max", 60.0)
    monkeypatch.setattr(limits, "query_rows_examined_max", 100_000)
    with pytest.raises(QueryTooCostly, match="100,000 rows"):
        db.sql(CARTESIAN)
    monkeypatch.setattr(limits, "query_rows_max", 10)
    with pytest.raises(QueryTooCostly, match="more than 10 rows"):
        db.sql("SELECT * FROM item WHERE id < 50")


def test_a_stopped_query_changes_nothing_and_the_next_one_runs(db):
    with pytest.raises(QueryCancelled):
        db.sql(CARTESIAN, timeout_s=0.1)
    assert db.sql("SELECT COUNT(*) FROM item").rows == [(3000,)]
    db.call("add", 5000, 1)
    db.check_invariants()


def test_reducers_commit_while_a_long_query_reads_its_snapshot(db):
    """The calls complete while the query still runs (before, a SELECT held the writer
    lock and every call waited for it), and the query sees the state it started on."""
    started = threading.Event()
    outcome: dict[str, object] = {}

    def long_query() -> None:
        started.set()
        try:
            db.sql(CARTESIAN, timeout_s=5.0)
        except QueryCancelled as exc:
            outcome["error"] = exc
        outcome["finished"] = True

    thread = threading.Thread(target=long_query)
    thread.start()
    started.wait()
    while db.core.datastore.tables["item"]._shared is False and thread.is_alive():
        pass  # wait until the query has taken its snapshot
    for i in range(20):
        db.call("add", 10_000 + i, -5)
    calls_done_while_query_ran = "finished" not in outcome
    thread.join()
    assert calls_done_while_query_ran
    assert isinstance(outcome["error"], QueryCancelled)
    assert db.sql("SELECT COUNT(*) FROM item WHERE id >= 10000").rows == [(20,)]


def test_a_query_sees_the_snapshot_it_started_on(db):
    """Rows added by reducers while a query runs are not in its result."""
    view = db.read_snapshot(["item"])
    for i in range(10):
        db.call("add", 20_000 + i, 7)
    from cosmictron.query import execute
    from cosmictron.query.parse import prepare

    statement = prepare("SELECT COUNT(*) FROM item", db.schema, None, db.owner)
    assert execute(statement.plan, view, 10) == [(3000,)]
    assert db.sql("SELECT COUNT(*) FROM item").rows == [(3010,)]


def test_a_subscription_over_budget_raises_and_is_not_registered(db):
    cartesian = "SELECT a.* FROM item a, item b WHERE a.v + b.v = -1"
    with pytest.raises(QueryCancelled):
        db.subscribe([cartesian], timeout_s=0.2)
    with pytest.raises(QueryTooCostly):
        db.subscribe([cartesian], rows_examined_max=50_000)
    assert db.subscription_statistics()["subscriptions"] == 0
    sub = db.subscribe(["SELECT * FROM item WHERE v = 3"], rows_examined_max=50_000)
    assert sub.initial["tables"][0]["rows"] == [(3, 3)]


def test_a_subscription_whose_tables_keep_changing_falls_back_to_the_locked_path(db, monkeypatch):
    """No snapshot attempt: the initial rows are evaluated under the lock, capped by
    ``subscription_locked_time_s_max``; a cheap query still gets correct rows."""
    monkeypatch.setattr(limits, "subscription_snapshot_attempts_max", 0)
    updates: list[dict[str, object]] = []
    sub = db.subscribe(["SELECT * FROM item WHERE v = 4"], on_update=updates.append)
    assert sub.initial["tables"][0]["rows"] == [(4, 4)]
    db.call("add", 30_000, 4)
    assert updates and updates[-1]["tables"][0]["inserts"] == [(30_000, 4)]
    monkeypatch.setattr(limits, "subscription_locked_time_s_max", 0.05)
    with pytest.raises(QueryCancelled, match="subscription_locked_time_s_max"):
        db.subscribe(["SELECT a.* FROM item a, item b WHERE a.v + b.v = -1"])


def test_subscriptions_made_while_reducers_commit_have_no_gap_and_no_overlap(db):
    """Initial rows plus every later update equal the final result, for subscriptions
    made on one thread while another commits to the table they read."""
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            db.call("add", 40_000 + i, i % 5)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        states = []
        for _ in range(10):
            state: dict[int, tuple[int, int]] = {}
            sub = db.subscribe(
                ["SELECT * FROM item WHERE v = 2"],
                on_update=lambda update, state=state: _apply(state, update),
            )
            for row in sub.initial["tables"][0]["rows"]:
                assert row[0] not in state  # an update never precedes the initial rows
                state[row[0]] = row
            states.append((sub, state))
    finally:
        stop.set()
        thread.join()
    final = {row[0]: row for row in db.sql("SELECT * FROM item WHERE v = 2").rows}
    for sub, state in states:
        assert state == final
        sub.unsubscribe()


def _apply(state: dict[int, tuple[int, int]], update: dict[str, object]) -> None:
    for table in update["tables"]:  # type: ignore[attr-defined]
        for row in table["deletes"]:
            del state[row[0]]
        for row in table["inserts"]:
            state[row[0]] = row


def test_an_explicit_budget_object_overrides_the_arguments(db):
    budget = QueryBudget(time_s=0.1, origin="the test's budget")
    with pytest.raises(QueryCancelled, match="the test's budget"):
        db.sql(CARTESIAN, timeout_s=100.0, budget=budget)
