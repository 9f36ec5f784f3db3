"""The agent layer against a real server: workers over HTTP racing for calls, lease
expiry by the server's scheduler, subscriptions over the SDK, and SIGKILL mid-run."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cosmictron.client import connect_sync
from tests.agents.modules import AGENT_APP, seed
from tests.server.conftest import Server, server, start_server, stop_server

__all__ = ["server"]  # the fixture, shared with tests/server

DB = "agents"
OWNER_TOKENS: dict[str, str] = {}
"""The database owner's token per server data directory: the registry and tool-call leases are the
owner's and its workers' (agents/rights.py), so these tests call as the owner."""


def deploy(server: Server) -> str:
    _, token = server.deployer()
    reply = server.deploy(DB, AGENT_APP, token)
    assert reply.status == 201, reply
    OWNER_TOKENS[str(server.data_dir)] = token
    seed(lambda reducer, *args: call(server, reducer, *args))
    return token


def call(server: Server, reducer: str, *args: Any) -> Any:
    reply = server.request(
        "POST",
        f"/v1/database/{DB}/call/{reducer}",
        list(args),
        OWNER_TOKENS.get(str(server.data_dir)),
    )
    assert reply.status == 200, reply
    return reply.body["return_value"]


def rows(server: Server, query: str) -> list[dict[str, Any]]:
    reply = server.request("POST", f"/v1/database/{DB}/sql", query)
    assert reply.status == 200, reply
    return list(reply.body["rows"])


def wait_until(predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_workers_racing_over_http_never_claim_the_same_attempt(server):
    deploy(server)
    ids = [f"call_{i}" for i in range(30)]
    for call_id in ids:
        call(server, "record_tool_call", call_id, "t1", "triage", "search", "{}")
    claims: list[tuple[str, int]] = []
    lock = threading.Lock()

    def work(worker: str) -> None:
        while (claim := call(server, "claim_tool_call", worker, ["search"], 30.0)) is not None:
            with lock:
                claims.append((claim["call_id"], claim["attempt"]))
            call(server, "complete_tool_call", claim["call_id"], claim["attempt"], worker)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(claims) == sorted((i, 1) for i in ids)
    done = rows(server, "SELECT id FROM tool_call WHERE status = 'done'")
    assert len(done) == len(ids)
    tool_messages = rows(server, "SELECT tool_call_id FROM agent_message WHERE role = 'tool'")
    assert sorted(m["tool_call_id"] for m in tool_messages) == sorted(ids)


def test_the_server_scheduler_expires_leases_and_fences_the_late_worker(server):
    deploy(server)
    call(server, "configure_agents", 0.1, 30.0, 3)
    call(server, "record_tool_call", "c", "t1", "triage", "search", "{}")
    late = call(server, "claim_tool_call", "dies", [], 0.2)
    wait_until(lambda: rows(server, "SELECT status FROM tool_call")[0]["status"] == "pending")
    fresh = call(server, "claim_tool_call", "lives", [], 30.0)
    assert (late["attempt"], fresh["attempt"]) == (1, 2)
    reply = server.request(
        "POST",
        f"/v1/database/{DB}/call/complete_tool_call",
        ["c", late["attempt"], "late"],
        OWNER_TOKENS[str(server.data_dir)],
    )
    assert reply.status == 400 and reply.body["error"]["code"] == "reducer_failed", reply
    assert "attempt 2 holds it" in reply.body["error"]["message"]
    call(server, "complete_tool_call", "c", fresh["attempt"], "fresh")
    assert rows(server, "SELECT result FROM tool_call") == [{"result": "fresh"}]


def test_subscribers_get_agent_state_and_tool_call_changes_over_the_sdk(server):
    deploy(server)
    seen: list[tuple[str, str, str]] = []
    client = connect_sync(
        DB,
        "SELECT * FROM tool_call",
        "SELECT * FROM agent_state",
        server=server.url,
        use_saved_token=False,
    )
    try:
        client.on_insert(lambda table, row: seen.append(("insert", table, row.status)))
        client.on_update(lambda table, old, new: seen.append(("update", table, new.status)))
        call(server, "record_tool_call", "c", "t1", "triage", "search", "{}")
        claim = call(server, "claim_tool_call", "w", [], 30.0)
        call(server, "complete_tool_call", "c", claim["attempt"], "ok")
        call(server, "request_handoff", "t1", "triage", "tech", "vpn", "{}")
        wait_until(lambda: ("insert", "agent_state", "running") in seen)
    finally:
        client.close()
    assert [s for s in seen if s[1] == "tool_call"] == [
        ("insert", "tool_call", "pending"),
        ("update", "tool_call", "running"),
        ("update", "tool_call", "done"),
    ]
    assert ("update", "agent_state", "waiting_tool") in seen
    assert ("update", "agent_state", "handed_off") in seen


def test_sigkill_mid_run_loses_no_acknowledged_completion(tmp_path: Path):
    data_dir = tmp_path / "server-data"
    server = start_server(data_dir, "--profile", "production")
    deploy(server)
    ids = [f"call_{i}" for i in range(160)]

    def record(part: list[str]) -> None:
        for call_id in part:
            call(server, "record_tool_call", call_id, "t1", "triage", "search", "{}")

    recorders = [threading.Thread(target=record, args=(ids[i::4],)) for i in range(4)]
    for thread in recorders:
        thread.start()
    for thread in recorders:
        thread.join(timeout=120)
    acknowledged: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def work(worker: str) -> None:
        while not stop.is_set():
            try:
                claim = call(server, "claim_tool_call", worker, ["search"], 60.0)
                if claim is None:
                    return
                message_id = call(
                    server, "complete_tool_call", claim["call_id"], claim["attempt"], worker
                )
            except (OSError, AssertionError):
                return  # the server died mid-request: that completion was not acknowledged
            with lock:
                acknowledged[claim["call_id"]] = message_id

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(acknowledged) >= 10, timeout_s=60)
    server.process.send_signal(signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    stop_server(server, signal.SIGKILL)
    assert 10 <= len(acknowledged) < len(ids), "the kill must land mid-run"

    server = start_server(data_dir, "--profile", "production")
    try:
        calls = {r["id"]: r for r in rows(server, "SELECT * FROM tool_call")}
        messages = {
            r["tool_call_id"]: r
            for r in rows(server, "SELECT * FROM agent_message WHERE role = 'tool'")
        }
        for call_id, message_id in acknowledged.items():
            assert calls[call_id]["status"] == "done", call_id
            assert calls[call_id]["message_id"] == message_id
            assert messages[call_id]["id"] == message_id
            assert messages[call_id]["content"] == calls[call_id]["result"]
        # nothing half-applied: every done call has its message, and only those do
        assert {i for i, c in calls.items() if c["status"] == "done"} == set(messages)
        # the run resumes: a worker finishes what is left
        while (claim := call(server, "claim_tool_call", "after", [], 60.0)) is not None:
            call(server, "complete_tool_call", claim["call_id"], claim["attempt"], "after")
        assert len(rows(server, "SELECT id FROM tool_call WHERE status = 'done'")) == len(
            ids
        ) - sum(1 for c in calls.values() if c["status"] == "running")
    finally:
        stop_server(server)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
