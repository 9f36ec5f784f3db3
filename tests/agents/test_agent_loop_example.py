"""examples/agent_loop against a real server, a real (fake) OpenAI-compatible model
server over HTTP, and its worker driven live by a ``tool_call`` subscription over the SDK."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from cosmictron.client import connect_sync
from tests.agents.fake_openai import FakeModelServer, tool_call
from tests.server.conftest import Server, server

__all__ = ["server"]  # the fixture, shared with tests/server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "agent_loop"
DB = "support"


def load_worker() -> Any:
    spec = importlib.util.spec_from_file_location("agent_loop_worker", EXAMPLE / "worker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Look order 42 up and try unknown order 99, then answer from the tool messages."""
    last = messages[-1]
    if last["role"] == "user":
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                tool_call("call_a", "lookup_order", {"order_id": 42}),
                tool_call("call_b", "lookup_order", {"order_id": 99}),
            ],
        }
    results = [m["content"] for m in messages if m["role"] == "tool"]
    return {"role": "assistant", "content": "Here is what I found: " + "; ".join(results)}


def call(server: Server, token: str, reducer: str, *args: Any) -> Any:
    reply = server.request("POST", f"/v1/database/{DB}/call/{reducer}", list(args), token)
    assert reply.status == 200, reply
    return reply.body["return_value"]


def wait_until(predicate, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_the_model_loop_runs_through_the_agent_reducers_and_a_live_worker(server):
    _, owner = server.deployer()
    assert server.deploy(DB, (EXAMPLE / "app.py").read_text(), owner).status == 201
    worker_identity, worker_token = server.identity()
    _, user_token = server.identity()
    call(server, owner, "grant_agent_worker", worker_identity, "tools")
    worker_module = load_worker()
    with FakeModelServer(script) as model:
        call(server, owner, "configure_model", model.url, "fake-gpt", "sk-test")
        client = connect_sync(DB, "SELECT * FROM tool_call", server=server.url, token=worker_token)
        watcher = connect_sync(
            DB,
            "SELECT * FROM agent_state",
            "SELECT * FROM agent_message",
            server=server.url,
            token=user_token,
        )
        states: list[str] = []
        watcher.on_insert(lambda table, row: table == "agent_state" and states.append(row.status))
        watcher.on_update(lambda table, old, new: states.append(new.status))
        worker = worker_module.ToolWorker(client, "w1", worker_module.TOOLS).start()
        try:
            first = call(server, user_token, "run_turn", "t-1", "Where are orders 42 and 99?")
            assert (first["status"], first["tool_calls"]) == ("waiting_tool", ["call_a", "call_b"])
            wait_until(lambda: any(t.get("status") == "done" for t in worker.turns))
            assert worker.errors == []
        finally:
            worker.stop()
            client.close()
        wait_until(lambda: "done" in states)
        watcher.close()
        assert [r["auth"] for r in model.requests] == ["Bearer sk-test"] * 2
        second = model.requests[1]["body"]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool", "tool"]
    assert second[2]["tool_calls"][0]["function"]["name"] == "lookup_order"
    tool_replies = {m["tool_call_id"]: m["content"] for m in second if m["role"] == "tool"}
    assert tool_replies == {
        "call_a": "order 42: shipped on Monday",
        "call_b": "Error: no order 99",
    }
    assert sorted(worker.done) == [
        ("call_a", 1, "order 42: shipped on Monday"),
        ("call_b", 1, "error: no order 99"),
    ]
    rows = server.request(
        "POST", f"/v1/database/{DB}/sql", "SELECT role, content FROM agent_message", user_token
    ).body["rows"]
    assert [r["role"] for r in rows] == ["user", "assistant", "tool", "tool", "assistant"]
    assert rows[-1]["content"].startswith("Here is what I found: order 42: shipped on Monday")
    thread = server.request(
        "POST", f"/v1/database/{DB}/sql", "SELECT status, owner FROM agent_thread", user_token
    ).body["rows"]
    assert thread[0]["status"] == "done"
    assert states[0] == "running" and "waiting_tool" in states and states[-1] == "done"
    calls = server.request(
        "POST", f"/v1/database/{DB}/sql", "SELECT id, status FROM tool_call", user_token
    ).body["rows"]
    assert sorted((c["id"], c["status"]) for c in calls) == [
        ("call_a", "done"),
        ("call_b", "error"),
    ]
    kinds = [
        e["kind"]
        for e in server.request(
            "POST", f"/v1/database/{DB}/sql", "SELECT kind FROM agent_event", user_token
        ).body["rows"]
    ]
    assert kinds.count("tool_call.claimed") == 2 and "state.done" in kinds
    assert json.dumps(first)  # a plain JSON return value


def test_a_stranger_cannot_drive_anothers_thread_and_a_dead_model_is_an_error(server):
    _, owner = server.deployer()
    assert server.deploy(DB, (EXAMPLE / "app.py").read_text(), owner).status == 201
    _, ann = server.identity()
    _, bob = server.identity()
    unconfigured = server.request("POST", f"/v1/database/{DB}/call/run_turn", ["t", "hi"], ann)
    assert "configure_model first" in unconfigured.body["error"]["message"], unconfigured
    refused = server.request(
        "POST", f"/v1/database/{DB}/call/configure_model", ["http://x/v1", "m"], ann
    )
    assert "database owner's" in refused.body["error"]["message"], refused
    call(server, owner, "configure_model", "http://127.0.0.1:9/v1", "m", "", 2.0)
    dead = server.request("POST", f"/v1/database/{DB}/call/run_turn", ["t-ann", "hi"], ann)
    assert dead.status == 400 and "unreachable" in dead.body["error"]["message"], dead
    state = server.request(
        "POST", f"/v1/database/{DB}/sql", "SELECT status FROM agent_thread", ann
    ).body["rows"]
    assert state == [{"status": "error"}]
    stolen = server.request("POST", f"/v1/database/{DB}/call/run_turn", ["t-ann", "mine"], bob)
    assert "belongs to another identity" in stolen.body["error"]["message"], stolen
