"""Tool-call leases with real workers: registered identities on their own WebSocket
connections to a real server, the server's scheduler taking leases back.

- two workers race for one call: one gets attempt 1, the other nothing;
- a worker dies mid-call (its connection is gone, it never heartbeats): the lease runs
  out, the call goes back to pending, another worker claims attempt 2;
- the dead worker's late completion is refused (stale attempt) and changes nothing;
- a poisoned call whose every worker dies is failed after ``max_attempts``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from cosmictron import ReducerFailed
from cosmictron.client import SyncClient, connect_sync
from tests.agents.modules import AGENT_APP, seed
from tests.server.conftest import Server, server

__all__ = ["server"]  # the fixture, shared with tests/server

DB = "leases"


def setup(server: Server, workers: int) -> list[SyncClient]:
    """Deploy, seed as the owner, and connect ``workers`` registered worker identities."""
    _, owner = server.deployer()
    assert server.deploy(DB, AGENT_APP, owner).status == 201

    def call(reducer: str, *args: Any) -> Any:
        reply = server.request("POST", f"/v1/database/{DB}/call/{reducer}", list(args), owner)
        assert reply.status == 200, reply
        return reply.body["return_value"]

    seed(call)
    call("configure_agents", 0.1, 30.0, 2)
    clients = []
    for i in range(workers):
        identity, token = server.identity()
        call("grant_agent_worker", identity, f"worker-{i}")
        clients.append(connect_sync(DB, "SELECT * FROM tool_call", server=server.url, token=token))
    return clients


def status_of(client: SyncClient, call_id: str) -> Any:
    row = client.table("tool_call").find(call_id)
    return None if row is None else (row.status, row.attempt)


def wait_until(predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_two_workers_racing_for_one_call_get_one_attempt_between_them(server):
    first, second = setup(server, 2)
    try:
        first.call("record_tool_call", "only", "t1", "triage", "search", "{}")
        start = threading.Barrier(2)
        claims: dict[str, Any] = {}

        def race(name: str, client: SyncClient) -> None:
            start.wait()
            claims[name] = client.call("claim_tool_call", name, ["search"], 30.0)

        racers = [
            threading.Thread(target=race, args=(name, client))
            for name, client in (("a", first), ("b", second))
        ]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=30)
        won = [name for name, claim in claims.items() if claim is not None]
        assert len(claims) == 2 and len(won) == 1, claims
        assert claims[won[0]]["attempt"] == 1
        wait_until(lambda: status_of(first, "only") == ("running", 1))
        assert first.table("tool_call").find("only").worker == won[0]
    finally:
        first.close()
        second.close()


def test_a_dying_worker_loses_its_lease_and_its_late_completion_is_refused(server):
    dying, survivor = setup(server, 2)
    try:
        survivor.call("record_tool_call", "c", "t1", "triage", "search", "{}")
        doomed = dying.call("claim_tool_call", "dying", ["search"], 0.3)
        assert doomed["attempt"] == 1
        dying.hold_reconnect()
        dying.drop_connection()  # gone mid-call: no heartbeat, no completion
        wait_until(lambda: status_of(survivor, "c") == ("pending", 1))
        retry = survivor.call("claim_tool_call", "survivor", ["search"], 30.0)
        assert (retry["call_id"], retry["attempt"]) == ("c", 2)
        dying.allow_reconnect()  # it comes back and reports its stale result
        wait_until(lambda: dying.tx_offset is not None and status_of(dying, "c") == ("running", 2))
        with pytest.raises(ReducerFailed, match="attempt 2 holds it"):
            dying.call("complete_tool_call", "c", doomed["attempt"], "stale result")
        survivor.call("complete_tool_call", "c", retry["attempt"], "fresh result")
        wait_until(lambda: status_of(survivor, "c") == ("done", 2))
        row = survivor.table("tool_call").find("c")
        assert (row.result, row.worker) == ("fresh result", "survivor")
        tools = survivor.sql("SELECT content FROM agent_message WHERE tool_call_id = 'c'")
        assert tools == [{"content": "fresh result"}]
    finally:
        dying.close()
        survivor.close()


def test_a_poisoned_call_is_failed_after_max_attempts_of_dying_workers(server):
    (worker,) = setup(server, 1)
    try:
        worker.call("record_tool_call", "poison", "t1", "triage", "crashy", "{}")
        for attempt in (1, 2):  # max_attempts is 2 (configure_agents)
            expected = ("pending", attempt - 1)
            wait_until(lambda expected=expected: status_of(worker, "poison") == expected)
            claim = worker.call("claim_tool_call", f"victim-{attempt}", ["crashy"], 0.2)
            assert claim["attempt"] == attempt  # ... and the tool kills the worker
        wait_until(lambda: status_of(worker, "poison") == ("error", 2))
        row = worker.table("tool_call").find("poison")
        assert "lease expired on attempt 2 of 2" in row.error
        assert worker.call("claim_tool_call", "next", ["crashy"], 1.0) is None
        kinds = [
            r["kind"]
            for r in worker.sql("SELECT kind FROM agent_event WHERE kind LIKE 'tool_call.%'")
        ]
        assert kinds.count("tool_call.lease_expired") == 1 and kinds[-1] == "tool_call.failed"
    finally:
        worker.close()
