"""``ctx.call_remote`` between two embedded databases served by one ``RemoteRelay``.

Real databases on disk, the real relay thread; nothing of ours is replaced. The crash
cases (a SIGKILL at chosen points and at random ones) are in test_remote_calls_crash.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosmictron import Database, DurabilityConfig, limits
from cosmictron.errors import InvalidRequest, ReducerFailed
from cosmictron.host import RemoteRelay
from cosmictron.host.remote import apply_remote, source_key

ORDERS = """
from cosmictron import ReducerContext, field, reducer, table

@table(name="order", public=True)
class Order:
    id: int = field(primary_key=True, auto_inc=True)
    item: str = ""

@reducer
def place(ctx: ReducerContext, item: str, fail: bool = False) -> int:
    row = ctx.db.order.insert(Order(item=item))
    ctx.call_remote("billing", "charge", row.id, item)
    if fail:
        raise ValueError("refused")
    return row.id

@reducer
def place_to(ctx: ReducerContext, database: str, reducer_name: str, n: int) -> int:
    return ctx.call_remote(database, reducer_name, n)

@reducer
def inner(ctx: ReducerContext, n: int) -> None:
    ctx.call_remote("billing", "charge", n, "inner")
    raise ValueError("inner refused")

@reducer
def outer(ctx: ReducerContext, n: int) -> None:
    ctx.call_remote("billing", "charge", n, "outer")
    try:
        inner(ctx, n + 1000)
    except Exception:
        pass

@reducer
def many(ctx: ReducerContext, n: int) -> None:
    for i in range(n):
        ctx.call_remote("billing", "charge", i, "many")

@reducer
def bad_argument(ctx: ReducerContext) -> None:
    ctx.call_remote("billing", "charge", ctx.sender, "x")
"""

BILLING = """
from cosmictron import ReducerContext, field, reducer, table

@table(name="charge", public=True)
class Charge:
    id: int = field(primary_key=True, auto_inc=True)
    order_id: int = 0
    item: str = ""
    by: str = ""

@table(name="gate", public=True)
class Gate:
    id: int = field(primary_key=True)

@reducer
def charge(ctx: ReducerContext, order_id: int, item: str) -> None:
    if item == "gated" and ctx.db.gate.id.find(1) is None:
        raise ValueError("the gate is closed")
    ctx.db.charge.insert(Charge(order_id=order_id, item=item, by=str(ctx.sender)))

@reducer
def open_gate(ctx: ReducerContext) -> None:
    ctx.db.gate.insert(Gate(id=1))
"""

FAST = DurabilityConfig.from_profile("development")


def open_pair(tmp_path: Path) -> tuple[Database, Database]:
    (tmp_path / "orders.py").write_text(ORDERS)
    (tmp_path / "billing.py").write_text(BILLING)
    orders = Database.open(tmp_path / "orders", tmp_path / "orders.py", durability=FAST)
    billing = Database.open(tmp_path / "billing", tmp_path / "billing.py", durability=FAST)
    return orders, billing


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Database, Database, RemoteRelay]]:
    orders, billing = open_pair(tmp_path)
    relay = RemoteRelay(attempts_max=3, retry_s=0.01)
    relay.add("orders", orders)
    relay.add("billing", billing)
    yield orders, billing, relay
    relay.close()
    orders.close()
    billing.close()


def charges(billing: Database) -> list[tuple[int, str, str]]:
    return sorted((r.order_id, r.item, r.by) for r in billing.table("charge").iter())


def test_a_call_is_applied_once_as_the_callers_owner(
    pair: tuple[Database, Database, RemoteRelay],
) -> None:
    orders, billing, relay = pair
    for item in ("apple", "pear", "plum"):
        orders.call("place", item)
    assert relay.drain(10)
    owner = str(orders.owner)
    assert charges(billing) == [(1, "apple", owner), (2, "pear", owner), (3, "plum", owner)]
    assert orders.remote_calls() == []  # settled: the outbox is empty
    assert billing.core.remote.applied_up_to(source_key(orders.core)) == 3


def test_a_failed_caller_records_nothing(pair: tuple[Database, Database, RemoteRelay]) -> None:
    orders, billing, relay = pair
    with pytest.raises(ReducerFailed, match="refused"):
        orders.call("place", "apple", True)
    assert orders.remote_calls() == []
    assert orders.core.remote.next_seq == 1
    orders.call("place", "pear")
    assert relay.drain(10)
    assert [c[:2] for c in charges(billing)] == [(1, "pear")]  # one call, the second


def test_a_nested_reducer_that_fails_takes_its_calls_with_it(
    pair: tuple[Database, Database, RemoteRelay],
) -> None:
    orders, billing, relay = pair
    orders.call("outer", 7)
    assert relay.drain(10)
    assert [c[:2] for c in charges(billing)] == [(7, "outer")]


def test_a_redelivery_is_recognised_and_skipped(
    pair: tuple[Database, Database, RemoteRelay],
) -> None:
    orders, billing, relay = pair
    orders.call("place", "apple")
    assert relay.drain(10)
    source = source_key(orders.core)
    again = apply_remote(billing.core, source, 1, "charge", [1, "apple"], orders.owner)
    assert again.status == "duplicate" and again.tx_offset is None
    assert len(charges(billing)) == 1


def test_an_unknown_database_or_reducer_is_a_recorded_error(
    pair: tuple[Database, Database, RemoteRelay],
) -> None:
    orders, _, relay = pair
    orders.call("place_to", "nowhere", "charge", 1)
    orders.call("place_to", "billing", "refund", 2)
    assert relay.drain(10)
    calls = orders.remote_calls()
    assert [(c["seq"], c["status"], c["attempts"]) for c in calls] == [
        (1, "failed", 3),
        (2, "failed", 3),
    ]
    assert calls[0]["error"] == "database 'nowhere' does not exist"
    assert "refund" in calls[1]["error"] and "billing" in calls[1]["error"]
    log = [line.message for line in orders.log.lines(50)]
    assert any("call_remote #1 to nowhere.charge failed after 3 attempts" in m for m in log)


def test_a_failing_target_is_retried_then_given_up(
    pair: tuple[Database, Database, RemoteRelay],
) -> None:
    orders, billing, relay = pair
    orders.call("place", "gated")
    assert relay.drain(10)
    [call] = orders.remote_calls()
    assert call["status"] == "failed" and call["attempts"] == 3  # limits: attempts_max
    assert "the gate is closed" in call["error"]
    assert charges(billing) == []


def test_a_target_that_recovers_gets_the_call_and_order_is_kept(tmp_path: Path) -> None:
    orders, billing = open_pair(tmp_path)
    relay = RemoteRelay(attempts_max=50, retry_s=0.05)
    try:
        relay.add("orders", orders)
        relay.add("billing", billing)
        orders.call("place", "gated")  # fails until the gate opens
        orders.call("place", "after")  # must wait behind it: one order per target
        deadline = time.monotonic() + 10
        while orders.remote_calls()[0]["attempts"] < 2:  # retried at least once
            assert time.monotonic() < deadline, orders.remote_calls()
            time.sleep(0.01)
        assert charges(billing) == []
        assert "the gate is closed" in (orders.remote_calls()[0]["error"] or "")
        billing.call("open_gate")
        assert relay.drain(10)
        assert [c[:2] for c in charges(billing)] == [(1, "gated"), (2, "after")]
        assert [r.id for r in billing.table("charge").iter()] == [1, 2]  # applied in order
    finally:
        relay.close()
        orders.close()
        billing.close()


def test_the_books_survive_reopening_from_the_log_and_from_a_snapshot(tmp_path: Path) -> None:
    orders, billing = open_pair(tmp_path)
    orders.call("place", "apple")  # no relay yet: stays pending
    orders.call("place_to", "billing", "refund", 9)
    orders.close()
    billing.close()
    orders, billing = open_pair(tmp_path)
    assert [c["status"] for c in orders.remote_calls()] == ["pending", "pending"]
    relay = RemoteRelay(attempts_max=1)
    relay.add("orders", orders)
    relay.add("billing", billing)
    assert relay.drain(10)
    relay.close()
    assert [(c["seq"], c["status"]) for c in orders.remote_calls()] == [(2, "failed")]
    orders.core.request_snapshot()
    billing.core.request_snapshot()
    orders.close()
    billing.close()
    orders, billing = open_pair(tmp_path)
    try:
        assert [(c["seq"], c["status"]) for c in orders.remote_calls()] == [(2, "failed")]
        assert orders.core.remote.next_seq == 3
        assert billing.core.remote.applied_up_to(source_key(orders.core)) == 1
        assert len(charges(billing)) == 1
    finally:
        orders.close()
        billing.close()


def test_call_remote_outside_a_reducer_and_bad_arguments_are_refused(
    pair: tuple[Database, Database, RemoteRelay],
) -> None:
    orders, _, _ = pair
    with pytest.raises(InvalidRequest, match="inside a running reducer"):
        orders.stage_remote_call("billing", "charge", [1, "x"])
    with pytest.raises(ReducerFailed, match="plain values"):
        orders.call("bad_argument")
    with pytest.raises(ReducerFailed, match="non-empty name"):
        orders.call("place_to", "", "charge", 1)
    assert orders.remote_calls() == []


def test_calls_per_transaction_are_bounded(
    pair: tuple[Database, Database, RemoteRelay], monkeypatch: pytest.MonkeyPatch
) -> None:
    orders, billing, relay = pair
    monkeypatch.setattr(limits, "remote_calls_per_tx_max", 3)
    orders.call("many", 3)
    with pytest.raises(ReducerFailed, match="remote_calls_per_tx_max"):
        orders.call("many", 4)
    assert relay.drain(10)
    assert len(charges(billing)) == 3


def test_failed_calls_kept_are_bounded(
    pair: tuple[Database, Database, RemoteRelay], monkeypatch: pytest.MonkeyPatch
) -> None:
    orders, _, relay = pair
    monkeypatch.setattr(limits, "remote_calls_failed_kept_max", 2)
    for n in range(4):
        orders.call("place_to", "nowhere", "charge", n)
    assert relay.drain(10)
    assert [(c["seq"], c["status"]) for c in orders.remote_calls()] == [
        (3, "failed"),
        (4, "failed"),
    ]


def test_the_retry_wait_doubles(tmp_path: Path) -> None:
    orders, billing = open_pair(tmp_path)
    relay = RemoteRelay(attempts_max=3, retry_s=0.3)
    try:
        relay.add("orders", orders)
        relay.add("billing", billing)
        started = time.monotonic()
        orders.call("place_to", "nowhere", "charge", 1)
        assert relay.drain(10)
        # Three attempts: waits of 0.3 s and 0.6 s between them (at least).
        assert time.monotonic() - started >= 0.9
        assert orders.remote_calls()[0]["attempts"] == 3
    finally:
        relay.close()
        orders.close()
        billing.close()


def test_a_database_may_call_itself(tmp_path: Path) -> None:
    (tmp_path / "billing.py").write_text(
        BILLING
        + """
@reducer
def charge_later(ctx: ReducerContext, n: int) -> None:
    ctx.call_remote("billing", "charge", n, "self")
"""
    )
    billing = Database.open(tmp_path / "b", tmp_path / "billing.py", durability=FAST)
    relay = RemoteRelay()
    try:
        relay.add("billing", billing)
        billing.call("charge_later", 5)
        assert relay.drain(10)
        assert [c[:2] for c in charges(billing)] == [(5, "self")]
        assert billing.core.remote.applied_up_to(source_key(billing.core)) == 1
    finally:
        relay.close()
        billing.close()
