"""Hand-offs, embedded: registry checks, supervisor hooks, loop and depth limits, one
transaction per hand-off, and transfer tool schemas from the registry."""

from __future__ import annotations

import json

import pytest

from cosmictron import ReducerFailed, limits

TABLES = ("handoff", "agent_thread", "agent_state", "agent_message", "agent_event", "tool_call")


def snapshot(db) -> dict[str, list]:
    return {name: sorted(map(repr, db.rows(name))) for name in TABLES}


def test_a_transfer_switches_the_thread_and_answers_the_tool_call_in_one_transaction(db):
    db.call("record_tool_call", "tc1", "t1", "triage", "transfer_to_tech", '{"reason": "vpn"}')
    offset = db.tx_offset
    hid = db.call("request_handoff", "t1", "triage", "tech", "vpn down", '{"ip": 1}', "tc1")
    assert db.tx_offset == offset + 1
    thread = db.table("agent_thread").id.find("t1")
    assert (thread.active_agent, thread.handoff_count) == ("tech", 1)
    states = {s.agent: s.status for s in db.rows("agent_state")}
    assert states == {"triage": "handed_off", "tech": "running"}
    handoff = db.table("handoff").id.find(hid)
    assert (handoff.from_agent, handoff.to_agent, handoff.mode) == ("triage", "tech", "transfer")
    assert json.loads(handoff.payload) == {"ip": 1}
    [message] = [m for m in db.rows("agent_message") if m.tool_call_id == "tc1"]
    assert (message.role, message.content) == ("tool", "Successfully transferred to tech")
    assert db.table("tool_call").id.find("tc1").status == "done"  # no worker will claim it
    assert db.call("claim_tool_call", "w", [], 10.0) is None


def test_complete_returns_control_to_the_supervisor(db):
    hid = db.call("request_handoff", "t1", "triage", "tech", "vpn", "{}")
    assert db.call("complete_handoff", hid, "fixed the vpn") == "triage"
    thread = db.table("agent_thread").id.find("t1")
    assert (thread.active_agent, thread.status) == ("triage", "running")
    assert db.table("agent_state").primary_key.find(("t1", "tech")).status == "done"
    assert db.rows("agent_message")[-1].content == "fixed the vpn"
    with pytest.raises(ReducerFailed, match="already completed"):
        db.call("complete_handoff", hid, "")


def test_complete_without_returning_control_ends_the_thread(db):
    hid = db.call("request_handoff", "t1", "triage", "tech", "", "{}")
    assert db.call("complete_handoff", hid, "", False) == "tech"
    assert db.table("agent_thread").id.find("t1").status == "done"


def test_an_after_handoff_hook_chooses_who_gets_control(db):
    hid = db.call("request_handoff", "t1", "triage", "tech", "", "{}")
    assert db.call("complete_handoff", hid, "escalate") == "vip_desk"
    assert db.table("handoff").id.find(hid).returned_to == "vip_desk"


def test_the_registry_decides_who_may_hand_off_to_whom(db):
    db.call("register_agent", "lonely", "worker", "", [])
    with pytest.raises(ReducerFailed, match="'triage' may not hand off to 'lonely'"):
        db.call("request_handoff", "t1", "triage", "lonely", "", "{}")
    with pytest.raises(ReducerFailed, match="'billing' is not the active agent"):
        db.call("request_handoff", "t1", "billing", "tech", "", "{}")
    with pytest.raises(ReducerFailed, match="no agent named 'ghost'"):
        db.call("request_handoff", "t1", "triage", "ghost", "", "{}")
    with pytest.raises(ReducerFailed, match="mode must be one of transfer, delegate"):
        db.call("request_handoff", "t1", "triage", "tech", "", "{}", "", "fork")


def test_a_hook_can_deny_with_a_reason_and_leaves_no_trace(db):
    before = snapshot(db)
    with pytest.raises(ReducerFailed, match="denied by hook supervise: blocked by policy") as e:
        db.call("request_handoff", "t1", "triage", "tech", "", '{"block": true}')
    assert e.value.cause_type == "HandoffRefused"
    assert snapshot(db) == before


def test_a_failing_hook_leaves_no_trace(db):
    db.call("record_tool_call", "tc", "t1", "triage", "transfer_to_tech", "{}")
    before = snapshot(db)
    offset = db.tx_offset
    with pytest.raises(ReducerFailed, match="hook crashed"):
        db.call("request_handoff", "t1", "triage", "tech", "", '{"explode": true}', "tc")
    assert snapshot(db) == before
    assert db.tx_offset == offset


def test_a_hook_can_reroute_target_and_payload(db):
    hid = db.call("request_handoff", "t1", "triage", "billing", "refund", '{"vip": true}')
    handoff = db.table("handoff").id.find(hid)
    assert (handoff.requested_to, handoff.to_agent) == ("billing", "vip_desk")
    assert json.loads(handoff.payload) == {"vip": True, "rerouted": True}
    assert db.table("agent_thread").id.find("t1").active_agent == "vip_desk"


def test_a_delegation_cycle_is_refused(db):
    first = db.call("request_handoff", "t1", "triage", "billing", "", "{}", "", "delegate")
    db.call("request_handoff", "t1", "billing", "tech", "", "{}", "", "delegate")
    before = snapshot(db)
    with pytest.raises(
        ReducerFailed, match="hand-off loop .*triage → billing → tech → billing"
    ) as e:
        db.call("request_handoff", "t1", "tech", "billing", "", "{}", "", "delegate")
    assert e.value.cause_type == "HandoffLoop"
    assert snapshot(db) == before
    with pytest.raises(ReducerFailed, match="complete the later hand-offs first"):
        db.call("complete_handoff", first, "")
    assert db.call("complete_handoff", first + 1, "done") == "billing"
    assert db.call("complete_handoff", first, "done") == "triage"


def test_a_self_handoff_is_refused_even_when_a_hook_reroutes_to_it(db):
    with pytest.raises(ReducerFailed, match="cannot list itself"):
        db.call("register_agent", "echo", "worker", "", ["echo"])
    with pytest.raises(ReducerFailed, match="'triage' cannot hand off to itself"):
        db.call("request_handoff", "t1", "triage", "tech", "", '{"to": "triage"}')
    with pytest.raises(ReducerFailed, match="no agent named 'nobody'"):
        db.call("request_handoff", "t1", "triage", "tech", "", '{"to": "nobody"}')
    assert db.rows("handoff") == []


def test_delegations_deeper_than_the_limit_are_refused(db, monkeypatch):
    monkeypatch.setattr(limits, "agent_handoff_depth_max", 2)
    db.call("request_handoff", "t1", "triage", "billing", "", "{}", "", "delegate")
    db.call("request_handoff", "t1", "billing", "tech", "", "{}", "", "delegate")
    db.call("request_handoff", "t1", "tech", "triage", "", "{}", "", "transfer")  # not nested
    with pytest.raises(
        ReducerFailed, match="would nest 3 delegations.*agent_handoff_depth_max is 2"
    ):
        db.call("request_handoff", "t1", "triage", "vip_desk", "", "{}", "", "delegate")


def test_ping_pong_transfers_stop_at_the_thread_budget(db, monkeypatch):
    monkeypatch.setattr(limits, "agent_handoffs_per_thread_max", 5)
    pair = ("billing", "tech")
    db.call("request_handoff", "t1", "triage", "billing", "", "{}")
    for i in range(4):
        db.call("request_handoff", "t1", pair[i % 2], pair[(i + 1) % 2], "", "{}")
    with pytest.raises(
        ReducerFailed, match="already had 5 hand-offs; agent_handoffs_per_thread_max"
    ):
        db.call("request_handoff", "t1", "billing", "tech", "", "{}")


def test_transfer_tools_come_from_the_registry(db):
    tools = json.loads(db.call("handoff_tool_schemas", "billing"))
    names = [t["function"]["name"] for t in tools]
    assert names == ["transfer_to_tech", "transfer_to_triage"]
    assert tools[0]["function"]["parameters"]["required"] == ["reason"]
    assert "technical problems" in tools[0]["function"]["description"]
    db.call("register_agent", "billing", "worker", "", ["vip_desk"])
    assert [
        t["function"]["name"] for t in json.loads(db.call("handoff_tool_schemas", "billing"))
    ] == ["transfer_to_vip_desk"]
