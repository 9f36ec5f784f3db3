"""Tool calls with leases, embedded: idempotent recording, fencing, expiry by the real
scheduler (a short sweep interval set through ``configure_agents``), racing workers."""

from __future__ import annotations

import threading
import time

import pytest

from cosmictron import ReducerFailed, limits


def wait_until(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_recording_is_idempotent_on_the_model_call_id(db):
    assert (
        db.call("record_tool_call", "call_1", "t1", "triage", "search", '{"q": "x"}') == "pending"
    )
    assert (
        db.call("record_tool_call", "call_1", "t1", "triage", "search", '{"q": "x"}') == "pending"
    )
    assert len(db.rows("tool_call")) == 1
    recorded = db.sql("SELECT seq FROM agent_event WHERE kind = 'tool_call.recorded'").rows
    assert len(recorded) == 1
    with pytest.raises(ReducerFailed, match="recorded with other content"):
        db.call("record_tool_call", "call_1", "t1", "triage", "search", '{"q": "y"}')
    state = db.table("agent_state").primary_key.find(("t1", "triage"))
    assert state.status == "waiting_tool"


def test_a_completion_appends_the_tool_message_and_a_repeat_returns_it(db):
    db.call("record_tool_call", "call_1", "t1", "triage", "search", "{}")
    claim = db.call("claim_tool_call", "w1", ["search"], 30.0)
    assert (claim.call_id, claim.attempt) == ("call_1", 1)
    message_id = db.call("complete_tool_call", "call_1", 1, "42 results")
    assert db.call("complete_tool_call", "call_1", 1, "42 results") == message_id
    messages = [m for m in db.rows("agent_message") if m.tool_call_id == "call_1"]
    assert [(m.id, m.role, m.content) for m in messages] == [(message_id, "tool", "42 results")]
    call = db.table("tool_call").id.find("call_1")
    assert (call.status, call.result, call.message_id) == ("done", "42 results", message_id)
    assert db.table("agent_state").primary_key.find(("t1", "triage")).status == "running"
    with pytest.raises(ReducerFailed, match="exactly one of result or error"):
        db.call("complete_tool_call", "call_1", 1, "a", "b")


def test_a_tool_error_is_a_tool_message_too(db):
    db.call("record_tool_call", "call_1", "t1", "triage", "search", "{}")
    db.call("claim_tool_call", "w1", [], 30.0)
    db.call("complete_tool_call", "call_1", 1, None, "timeout from upstream")
    call = db.table("tool_call").id.find("call_1")
    assert (call.status, call.error) == ("error", "timeout from upstream")
    assert db.rows("agent_message")[-1].content == "Error: timeout from upstream"


def test_claims_pick_the_oldest_pending_call_of_the_named_tools(db):
    db.call("record_tool_call", "a", "t1", "triage", "search", "{}")
    db.call("record_tool_call", "b", "t1", "triage", "fetch", "{}")
    db.call("record_tool_call", "c", "t1", "triage", "search", "{}")
    assert db.call("claim_tool_call", "w", ["fetch"], 10.0).call_id == "b"
    assert db.call("claim_tool_call", "w", ["search"], 10.0).call_id == "a"
    assert db.call("claim_tool_call", "w", ["fetch"], 10.0) is None
    assert db.call("claim_tool_call", "w", [], 10.0).call_id == "c"
    with pytest.raises(ReducerFailed, match="tool_call_lease_s_max"):
        db.call("claim_tool_call", "w", [], limits.tool_call_lease_s_max + 1)


def test_a_stale_attempt_is_fenced_off_after_expiry_and_reclaim(db):
    db.call("configure_agents", 0.1, 30.0, 3)
    db.call("record_tool_call", "call_1", "t1", "triage", "search", "{}")
    first = db.call("claim_tool_call", "slow", ["search"], 0.2)
    wait_until(lambda: db.table("tool_call").id.find("call_1").status == "pending")
    second = db.call("claim_tool_call", "fast", ["search"], 30.0)
    assert (first.attempt, second.attempt) == (1, 2)
    with pytest.raises(ReducerFailed, match="attempt 1: attempt 2 holds it") as refused:
        db.call("complete_tool_call", "call_1", first.attempt, "late result")
    assert refused.value.cause_type == "StaleToolCall"
    with pytest.raises(ReducerFailed, match="cannot heartbeat"):
        db.call("heartbeat_tool_call", "call_1", first.attempt, 10.0)
    db.call("complete_tool_call", "call_1", second.attempt, "fresh result")
    assert db.table("tool_call").id.find("call_1").result == "fresh result"
    tool_messages = [m.content for m in db.rows("agent_message") if m.role == "tool"]
    assert tool_messages == ["fresh result"]


def test_a_heartbeat_keeps_the_lease(db):
    db.call("configure_agents", 0.1, 30.0, 3)
    db.call("record_tool_call", "call_1", "t1", "triage", "search", "{}")
    claim = db.call("claim_tool_call", "w", [], 0.5)
    for _ in range(6):
        time.sleep(0.2)
        db.call("heartbeat_tool_call", "call_1", claim.attempt, 0.5)
    call = db.table("tool_call").id.find("call_1")
    assert (call.status, call.attempt) == ("running", 1)


def test_a_poisoned_call_fails_after_max_attempts(db):
    db.call("configure_agents", 0.1, 30.0, 2)
    db.call("record_tool_call", "poison", "t1", "triage", "crashy", "{}")
    for attempt in (1, 2):
        wait_until(lambda: db.table("tool_call").id.find("poison").status == "pending")
        claim = db.call("claim_tool_call", f"worker-{attempt}", ["crashy"], 0.1)
        assert claim.attempt == attempt  # and the worker dies: no heartbeat, no completion
    wait_until(lambda: db.table("tool_call").id.find("poison").status == "error")
    call = db.table("tool_call").id.find("poison")
    assert "attempt 2 of 2" in call.error
    assert db.rows("agent_message")[-1].content.startswith("Error: lease expired on attempt 2")
    kinds = [e.kind for e in db.rows("agent_event") if "poison" in e.payload]
    assert kinds.count("tool_call.lease_expired") == 1 and kinds[-1] == "tool_call.failed"
    assert db.table("agent_state").primary_key.find(("t1", "triage")).status == "running"


def test_the_sweep_refuses_clients(db):
    db.call("record_tool_call", "c", "t1", "triage", "search", "{}")
    row = db.rows("tool_call_lease_sweep")[0]
    with pytest.raises(ReducerFailed, match="run by the scheduler"):
        db.call("expire_tool_call_leases", row)


def test_concurrent_workers_never_share_an_attempt(db):
    calls = [f"call_{i}" for i in range(40)]
    for call_id in calls:
        db.call("record_tool_call", call_id, "t1", "triage", "search", "{}")
    claimed: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def work(worker: str) -> None:
        while (claim := db.call("claim_tool_call", worker, ["search"], 30.0)) is not None:
            with lock:
                claimed.append((claim.call_id, claim.attempt, worker))
            db.call("complete_tool_call", claim.call_id, claim.attempt, f"by {worker}")

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(c for c, _, _ in claimed) == sorted(calls)
    assert {attempt for _, attempt, _ in claimed} == {1}
    assert all(c.status == "done" for c in db.rows("tool_call"))


def test_subscribers_see_tool_call_and_agent_state_changes(db):
    updates: list[dict] = []
    db.subscribe(
        ["SELECT * FROM tool_call", "SELECT * FROM agent_state WHERE thread_id = 't1'"],
        on_update=updates.append,
    )
    db.call("record_tool_call", "c", "t1", "triage", "search", "{}")
    db.call("claim_tool_call", "w", [], 30.0)
    db.call("complete_tool_call", "c", 1, "ok")
    seen = [
        (table["table_name"], len(table["inserts"]))
        for update in updates
        for table in update["tables"]
    ]
    assert seen.count(("tool_call", 1)) == 3  # recorded, claimed, completed
    assert ("agent_state", 1) in seen
    assert len(updates) == 3


def test_attempts_and_config_past_their_limits_are_refused(db):
    over = limits.tool_call_attempts_max + 1
    with pytest.raises(ReducerFailed, match="tool_call_attempts_max"):
        db.call("record_tool_call", "c", "t1", "triage", "search", "{}", over)
    with pytest.raises(ReducerFailed, match="tool_call_attempts_max"):
        db.call("configure_agents", 1.0, 30.0, over)
    with pytest.raises(ReducerFailed, match="tool_call_lease_s_max"):
        db.call("configure_agents", 1.0, limits.tool_call_lease_s_max * 2, 3)
    assert db.rows("tool_call") == []


def test_the_sweep_goes_on_after_a_reopen(tmp_path, app_path):
    from cosmictron import Database, DurabilityConfig

    durability = DurabilityConfig.from_profile("development")
    database = Database.open(tmp_path / "reopen", app_path, durability=durability)
    database.call("register_agent", "solo", "worker", "", [])
    database.call("start_thread", "t", "solo", "")
    database.call("configure_agents", 0.1, 30.0, 3)
    database.call("record_tool_call", "c", "t", "solo", "search", "{}")
    database.call("claim_tool_call", "dies-with-the-process", [], 0.3)
    database.close()
    database = Database.open(tmp_path / "reopen", durability=durability)
    try:
        wait_until(lambda: database.table("tool_call").id.find("c").status == "pending")
        assert database.call("claim_tool_call", "next", [], 5.0).attempt == 2
    finally:
        database.close()
