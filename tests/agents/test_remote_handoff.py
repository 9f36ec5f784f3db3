"""A hand-off to an agent registered in another database goes through ``ctx.call_remote``.

Two embedded databases, each including the agent layer, served by one ``RemoteRelay``:
the registry of ``front`` lists ``"back/billing"`` as a target of its ``triage`` agent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cosmictron import Database, DurabilityConfig, ReducerFailed
from cosmictron.host import RemoteRelay

AGENTS = "from cosmictron.agents import *\n"
FAST = DurabilityConfig.from_profile("development")


def open_two(tmp_path: Path, owner_of_back: bool = True) -> tuple[Database, Database]:
    (tmp_path / "agents.py").write_text(AGENTS)
    front = Database.open(tmp_path / "front", tmp_path / "agents.py", durability=FAST)
    back = Database.open(
        tmp_path / "back",
        tmp_path / "agents.py",
        durability=FAST,
        owner=front.owner if owner_of_back else None,
    )
    front.call("register_agent", "triage", "worker", "", ["back/billing", "back/"])
    back.call("register_agent", "billing", "worker", "refunds and invoices", [])
    front.call("start_thread", "t1", "triage")
    return front, back


def test_a_transfer_to_another_database_arrives_once(tmp_path: Path) -> None:
    front, back = open_two(tmp_path)
    relay = RemoteRelay(attempts_max=2, retry_s=0.01)
    try:
        relay.add("front", front)
        relay.add("back", back)
        front.call("record_tool_call", "tc1", "t1", "triage", "transfer_to_billing", "{}")
        sent = front.call(
            "request_handoff", "t1", "triage", "back/billing", "refund", '{"order": 7}', "tc1"
        )
        handoff = front.table("handoff").id.find(sent)
        assert (handoff.to_agent, handoff.status) == ("back/billing", "sent")
        thread = front.table("agent_thread").id.find("t1")
        assert thread.active_agent == "back/billing"
        [answer] = [m for m in front.rows("agent_message") if m.tool_call_id == "tc1"]
        assert answer.content == "Transferred to back/billing"
        assert relay.drain(10)
        there = back.table("agent_thread").id.find("t1")
        assert (there.active_agent, there.status) == ("billing", "running")
        [received] = back.rows("handoff")
        assert received.from_agent.endswith("/triage") and received.to_agent == "billing"
        assert json.loads(received.payload) == {"order": 7}
        assert back.table("agent_state").primary_key.find(("t1", "billing")).status == "running"
        events = [e.kind for e in back.rows("agent_event") if e.thread_id == "t1"]
        assert events == ["handoff.received"]
        assert front.remote_calls() == []
        # The receiving side completes it like any hand-off of its own.
        assert back.call("complete_handoff", received.id, "refunded", False) == "billing"
    finally:
        relay.close()
        front.close()
        back.close()


def test_a_refused_or_malformed_remote_handoff_sends_nothing(tmp_path: Path) -> None:
    front, back = open_two(tmp_path)
    try:
        with pytest.raises(ReducerFailed, match="must be a transfer"):
            front.call("request_handoff", "t1", "triage", "back/billing", "", "{}", "", "delegate")
        with pytest.raises(ReducerFailed, match="'database/agent'"):
            front.call("request_handoff", "t1", "triage", "back/", "", "{}")
        with pytest.raises(ReducerFailed, match="may not hand off"):
            front.call("request_handoff", "t1", "triage", "back/other", "", "{}")
        assert front.remote_calls() == []
        assert front.table("agent_thread").id.find("t1").active_agent == "triage"
    finally:
        front.close()
        back.close()


def test_another_owners_database_refuses_the_thread_until_it_trusts_the_sender(
    tmp_path: Path,
) -> None:
    front, back = open_two(tmp_path, owner_of_back=False)
    relay = RemoteRelay(attempts_max=1)
    try:
        relay.add("front", front)
        relay.add("back", back)
        front.call("request_handoff", "t1", "triage", "back/billing", "", "{}")
        assert relay.drain(10)
        [call] = front.remote_calls()
        assert call["status"] == "failed" and "receive_handoff" in call["error"]
        assert back.rows("agent_thread") == []
        back.call("grant_agent_worker", front.owner)
        front.call("start_thread", "t2", "triage")
        front.call("request_handoff", "t2", "triage", "back/billing", "", "{}")
        assert relay.drain(10)
        assert back.table("agent_thread").id.find("t2").active_agent == "billing"
    finally:
        relay.close()
        front.close()
        back.close()
