"""Who may act on the agent layer (agents/rights.py), embedded with explicit senders:
the owner does everything, a thread belongs to the identity that started it, and only
the owner and the workers it registers claim, heartbeat and complete tool calls."""

from __future__ import annotations

import pytest

from cosmictron import Identity, ReducerFailed

ANN, BOB, WORKER = (Identity(bytes([n]) * 32) for n in (1, 2, 3))


def as_(db, sender: Identity, reducer: str, *args):
    return db.execute_reducer(reducer, list(args), sender=sender).return_value


def refused(db, sender: Identity, reducer: str, *args, match: str) -> None:
    with pytest.raises(ReducerFailed, match=match) as failure:
        as_(db, sender, reducer, *args)
    assert failure.value.cause_type == "PermissionDenied"


def test_the_registry_and_settings_are_the_owners(db):
    refused(db, ANN, "register_agent", "rogue", "worker", "", [], match="database owner's")
    refused(db, ANN, "configure_agents", 1.0, 30.0, 3, match="database owner's")
    refused(db, ANN, "grant_agent_worker", ANN, "me", match="database owner's")
    assert db.table("agent").name.find("rogue") is None


def test_a_thread_belongs_to_whoever_started_it(db):
    as_(db, ANN, "start_thread", "ann-1", "triage", "triage")
    assert db.table("agent_thread").id.find("ann-1").owner == ANN
    as_(db, ANN, "append_message", "ann-1", "triage", "user", "hello")
    as_(db, ANN, "record_tool_call", "c1", "ann-1", "triage", "search", "{}")
    for reducer, args in [
        ("append_message", ("ann-1", "triage", "user", "not yours")),
        ("set_agent_state", ("ann-1", "triage", "done")),
        ("record_tool_call", ("c2", "ann-1", "triage", "search", "{}")),
        ("request_handoff", ("ann-1", "triage", "tech", "x", "{}")),
        ("append_agent_event", ("ann-1", "triage", "note", "{}")),
    ]:
        refused(db, BOB, reducer, *args, match="belongs to another identity")
    db.call("append_message", "ann-1", "triage", "system", "the owner may")  # the owner
    handoff = as_(db, ANN, "request_handoff", "ann-1", "triage", "tech", "vpn", "{}")
    refused(db, BOB, "complete_handoff", handoff, "", True, match="belongs to another")
    as_(db, ANN, "complete_handoff", handoff, "fixed", True)


def test_only_the_owner_and_registered_workers_run_tool_calls(db):
    as_(db, ANN, "start_thread", "ann-1", "triage", "triage")
    as_(db, ANN, "record_tool_call", "c1", "ann-1", "triage", "search", "{}")
    refused(db, ANN, "claim_tool_call", "ann", [], 30.0, match="grant_agent_worker")
    db.call("grant_agent_worker", WORKER, "search-worker")
    claim = as_(db, WORKER, "claim_tool_call", "w", [], 30.0)
    refused(db, BOB, "heartbeat_tool_call", "c1", claim.attempt, 30.0, match="neither")
    refused(db, BOB, "complete_tool_call", "c1", claim.attempt, "forged", match="neither")
    as_(db, WORKER, "heartbeat_tool_call", "c1", claim.attempt, 30.0)
    # a worker may act on any thread, as the tool results it brings back need
    as_(db, WORKER, "append_message", "ann-1", "triage", "assistant", "working on it")
    assert db.call("revoke_agent_worker", WORKER) is True
    refused(db, WORKER, "complete_tool_call", "c1", claim.attempt, "late", match="neither")
    assert db.call("revoke_agent_worker", WORKER) is False
    db.call("complete_tool_call", "c1", claim.attempt, "the owner finished it")
    assert db.table("tool_call").id.find("c1").status == "done"
