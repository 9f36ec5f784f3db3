"""``from cosmictron.agents import *`` puts the agent tables and reducers next to a
module's own, and two databases in one process keep their hooks apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cosmictron import Database, DurabilityConfig, ReducerFailed

AGENT_TABLES = {
    "agent",
    "agent_thread",
    "agent_state",
    "agent_event",
    "agent_message",
    "tool_call",
    "handoff",
    "memory",
}
AGENT_REDUCERS = {
    "record_tool_call",
    "claim_tool_call",
    "heartbeat_tool_call",
    "complete_tool_call",
    "request_handoff",
    "complete_handoff",
}


def test_the_module_gets_the_agent_tables_and_reducers_beside_its_own(db):
    tables = {t.name for t in db.schema.tables}
    reducers = {r.name for r in db.schema.reducers}
    assert AGENT_TABLES | {"ticket"} <= tables
    assert AGENT_REDUCERS | {"open_ticket"} <= reducers
    assert next(t for t in db.schema.tables if t.name == "agent_message").event
    assert next(t for t in db.schema.tables if t.name == "agent_event").event
    assert db.call("open_ticket", "printer on fire") == 1


def test_agent_rows_survive_a_reopen(tmp_path, app_path):
    durability = DurabilityConfig.from_profile("development")
    database = Database.open(tmp_path / "d", app_path, durability=durability)
    database.call("register_agent", "solo", "worker", "", [])
    database.call("start_thread", "t", "solo", "")
    database.call("record_tool_call", "c", "t", "solo", "search", "{}")
    database.close()
    database = Database.open(tmp_path / "d", durability=durability)
    assert [c.id for c in database.rows("tool_call")] == ["c"]
    assert [s.status for s in database.rows("agent_state")] == ["waiting_tool"]
    database.close()


def test_hooks_belong_to_the_database_whose_module_defines_them(tmp_path: Path, db):
    plain = tmp_path / "plain.py"
    plain.write_text("from cosmictron.agents import *\n")
    other = Database.open(tmp_path / "plain-data", plain)
    try:
        for name, targets in (("a", ["b"]), ("b", [])):
            other.call("register_agent", name, "worker", "", targets)
        other.call("start_thread", "t", "a", "")
        # the payload that db's hook denies goes through here: no hooks in this module
        assert other.call("request_handoff", "t", "a", "b", "", json.dumps({"block": True})) == 1
        with pytest.raises(ReducerFailed, match="denied by hook supervise"):
            db.call("request_handoff", "t1", "triage", "tech", "", json.dumps({"block": True}))
    finally:
        other.close()


def test_bad_arguments_get_specific_errors(db):
    with pytest.raises(ReducerFailed, match="no agent named 'ghost'.*agents: billing"):
        db.call("start_thread", "t2", "ghost", "")
    with pytest.raises(ReducerFailed, match="must be 1-52 letters"):
        db.call("register_agent", "has space", "worker", "", [])
    with pytest.raises(ReducerFailed, match="arguments must be a JSON object"):
        db.call("record_tool_call", "c", "t1", "triage", "search", "[1]")
    with pytest.raises(ReducerFailed, match="agent status must be one of"):
        db.call("set_agent_state", "t1", "triage", "sleeping", "")
    with pytest.raises(ReducerFailed, match="role must be one of"):
        db.call("append_message", "t1", "triage", "robot", "hi")


def test_events_have_a_global_sequence_and_idempotency_keys(db):
    first = db.call("append_agent_event", "t1", "triage", "model.start", "{}", 0, "run-1", "k1")
    again = db.call("append_agent_event", "t1", "triage", "model.start", "{}", 0, "run-1", "k1")
    caused = db.call("append_agent_event", "t1", "triage", "model.end", "{}", first, "run-1", "k2")
    assert again == first and caused == first + 1
    events = db.sql("SELECT seq, kind, causation_id, correlation_id FROM agent_event").rows
    seqs = [row[0] for row in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert (caused, "model.end", first, "run-1") in events
    assert sum(1 for row in events if row[1] == "model.start") == 1
    with pytest.raises(ReducerFailed, match="causation_id 9999 is not the seq"):
        db.call("append_agent_event", "t1", "triage", "x", "{}", 9999)
