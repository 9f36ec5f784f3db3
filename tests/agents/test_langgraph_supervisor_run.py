"""Issue 14's end-to-end run: a LangGraph supervisor with two workers (a researcher with a
tool, a writer that waits for a human) on Cosmictron, the server SIGKILLed mid-run.

The graph runs in this process with LangChain's fake chat models; its checkpoints go to a
real server through ``CosmictronSaver.from_url``, and every step goes through the agent
reducers (``request_handoff``/``complete_handoff``, ``record_tool_call``/``claim``/
``complete``, ``set_agent_state``). The server is killed inside the researcher's tool,
after the call was claimed and before it completed; it restarts on the same port, the
call's lease runs out and the resumed graph claims it again (attempt 2) from the last
checkpoint. The writer's ``interrupt`` is resumed with ``Command(resume=...)``. A
subscriber of ``agent_state`` and ``agent_event`` (an SDK client that reconnects on its
own) sees every step live, across the crash.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph", reason="needs the langgraph extra (pip install '.[langgraph]')")

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt

from cosmictron.client import connect_sync
from cosmictron.integrations.langgraph import CosmictronSaver
from tests.server.conftest import Server, start_server, stop_server

DB = "crew"
THREAD = "run-1"
APP = "from cosmictron import *\nfrom cosmictron.agents import *\n"


class Agents:
    """The agent reducers over HTTP as the database owner (the graph's process)."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def __call__(self, reducer: str, *args: Any) -> Any:
        request = urllib.request.Request(
            f"{self.url}/v1/database/{DB}/call/{reducer}",
            data=json.dumps(list(args)).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())["return_value"]


class Crew(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    handoff_id: int


def transfer(target: str, call_id: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": f"transfer_to_{target}", "args": {}, "id": call_id}])


def build_graph(agents: Agents, saver: CosmictronSaver, models: dict[str, Any], tool: Any):
    """Supervisor -> researcher (model, tool, model) -> supervisor -> writer (interrupt,
    model) -> supervisor (answer). Hand-offs and tool calls are Cosmictron reducer calls."""

    def supervisor(state: Crew) -> Command:
        agents("set_agent_state", THREAD, "supervisor", "running", "routing")
        reply = models["supervisor"].invoke(state["messages"])
        if not reply.tool_calls:
            agents("set_agent_state", THREAD, "supervisor", "done", reply.content)
            return Command(goto="__end__", update={"messages": [reply]})
        call = reply.tool_calls[0]
        target = call["name"].removeprefix("transfer_to_")
        handoff = agents(
            "request_handoff",
            THREAD,
            "supervisor",
            target,
            "next step",
            "{}",
            call["id"],
            "delegate",
        )
        done = ToolMessage(f"Successfully transferred to {target}", tool_call_id=call["id"])
        return Command(goto=target, update={"messages": [reply, done], "handoff_id": handoff})

    def researcher(state: Crew) -> Command:
        reply = models["researcher"].invoke(state["messages"])
        if reply.tool_calls:
            agents("set_agent_state", THREAD, "researcher", "running", "asked for a tool")
            return Command(goto="research_tools", update={"messages": [reply]})
        agents("complete_handoff", state["handoff_id"], reply.content, True)
        return Command(goto="supervisor", update={"messages": [reply]})

    def research_tools(state: Crew) -> Command:
        results = []
        for call in state["messages"][-1].tool_calls:
            agents(
                "record_tool_call",
                call["id"],
                THREAD,
                "researcher",
                call["name"],
                json.dumps(call["args"]),
            )
            while (claim := agents("claim_tool_call", "graph", [call["name"]], 1.0)) is None:
                time.sleep(0.1)  # claimed by a run that died: wait for its lease to run out
            output = tool(**call["args"])
            agents("complete_tool_call", claim["call_id"], claim["attempt"], output)
            results.append(ToolMessage(output, tool_call_id=call["id"]))
        return Command(goto="researcher", update={"messages": results})

    def writer(state: Crew) -> Command:
        agents("set_agent_state", THREAD, "writer", "waiting_tool", "waiting for approval")
        approval = interrupt({"question": "publish the draft?"})
        reply = models["writer"].invoke([*state["messages"], HumanMessage(approval)])
        agents("complete_handoff", state["handoff_id"], reply.content, True)
        return Command(goto="supervisor", update={"messages": [reply]})

    graph = StateGraph(Crew)
    graph.add_node("supervisor", supervisor)
    graph.add_node("researcher", researcher)
    graph.add_node("research_tools", research_tools)
    graph.add_node("writer", writer)
    graph.add_edge(START, "supervisor")
    return graph.compile(checkpointer=saver)


def fake_models() -> dict[str, Any]:
    return {
        "supervisor": FakeMessagesListChatModel(
            responses=[
                transfer("researcher", "sup-1"),
                transfer("writer", "sup-2"),
                AIMessage("Published: Cosmictron keeps agent state durable."),
            ]
        ),
        "researcher": FakeMessagesListChatModel(
            responses=[
                AIMessage(
                    "",
                    tool_calls=[{"name": "search", "args": {"q": "durability"}, "id": "res-1"}],
                ),
                AIMessage("Research: commit log plus snapshots, SIGKILL-safe."),
            ]
        ),
        "writer": FakeMessagesListChatModel(responses=[AIMessage("Draft approved and written.")]),
    }


def test_a_supervisor_run_survives_sigkill_and_resumes_from_its_checkpoint(tmp_path: Path):
    data_dir = tmp_path / "server-data"
    server = start_server(data_dir, "--profile", "production")
    port = server.url.rsplit(":", 1)[1]
    _, owner = server.deployer()
    assert server.deploy(DB, APP, owner).status == 201

    _, watcher_token = server.identity()
    events: dict[int, str] = {}
    states: list[tuple[str, str]] = []
    watcher = connect_sync(
        DB,
        "SELECT * FROM agent_state",
        "SELECT * FROM agent_event",
        server=server.url,
        token=watcher_token,
    )
    watcher.on_insert(
        lambda table, row: (
            events.__setitem__(row.seq, row.kind)
            if table == "agent_event"
            else states.append((row.agent, row.status))
        )
    )
    watcher.on_update(lambda table, old, new: states.append((new.agent, new.status)))
    # agent_event is an event table: a subscriber sees its rows as they are appended
    agents = Agents(server.url, owner)
    agents("register_agent", "supervisor", "supervisor", "routes", ["researcher", "writer"])
    agents("register_agent", "researcher", "worker", "finds facts", ["supervisor"])
    agents("register_agent", "writer", "worker", "writes", ["supervisor"])
    agents("configure_agents", 0.2, 30.0, 3)
    agents("start_thread", THREAD, "supervisor", "supervisor")

    killed = threading.Event()
    before: list[str] = []
    restarted: list[Server] = []

    def restart() -> None:  # as a supervisor (systemd, k8s) would, a moment later
        time.sleep(1.0)
        listen = f"127.0.0.1:{port}"
        restarted.append(start_server(data_dir, "--profile", "production", "--listen", listen))

    restarter = threading.Thread(target=restart)

    def search(q: str) -> str:
        if not killed.is_set():  # the first attempt: the server dies under it
            killed.set()
            before.extend(c.checkpoint["id"] for c in saver.list(config))
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=30)
            restarter.start()
        return f"results for {q}: the log is fsynced before the reply"

    models = fake_models()
    config = {"configurable": {"thread_id": THREAD}}
    saver = CosmictronSaver.from_url(server.url, DB, token=owner)
    graph = build_graph(agents, saver, models, search)
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        graph.invoke(
            {"messages": [HumanMessage("Write a note on durability")], "handoff_id": 0},
            config,
            durability="sync",
        )
    # The node failed (its completion found no server); the saver's write of that
    # failure waited for its connection to come back, to the restarted server.
    assert killed.is_set() and before
    saver.close()
    stop_server(server, signal.SIGKILL)
    restarter.join(timeout=60)
    server = restarted[0]
    try:
        saver = CosmictronSaver.from_url(server.url, DB, token=owner)
        assert [c.checkpoint["id"] for c in saver.list(config)] == before  # nothing lost
        resumed = saver.get_tuple(config)
        assert (
            resumed is not None and resumed.checkpoint["channel_values"]["messages"][-1].tool_calls
        )
        graph = build_graph(agents, saver, models, search)
        paused = graph.invoke(None, config, durability="sync")  # from the last checkpoint
        assert paused["__interrupt__"][0].value == {"question": "publish the draft?"}
        assert graph.get_state(config).next == ("writer",)
        final = graph.invoke(Command(resume="yes, publish"), config, durability="sync")
        saver.close()

        texts = [m.content for m in final["messages"]]
        assert texts[0] == "Write a note on durability"
        assert "results for durability: the log is fsynced before the reply" in texts
        assert "Research: commit log plus snapshots, SIGKILL-safe." in texts
        assert "Draft approved and written." in texts
        assert texts[-1] == "Published: Cosmictron keeps agent state durable."

        call = query(server, owner, "SELECT status, attempt, result FROM tool_call")
        assert call == [{"status": "done", "attempt": 2, "result": texts[4]}]
        handoffs = query(server, owner, "SELECT to_agent, status FROM handoff")
        assert sorted((h["to_agent"], h["status"]) for h in handoffs) == [
            ("researcher", "completed"),
            ("writer", "completed"),
        ]
        thread = query(server, owner, "SELECT active_agent FROM agent_thread")
        assert thread == [{"active_agent": "supervisor"}]
        stored = {
            r["seq"]: r["kind"] for r in query(server, owner, "SELECT seq, kind FROM agent_event")
        }
        kinds = list(stored.values())
        for kind in [
            "tool_call.recorded",
            "tool_call.claimed",
            "tool_call.lease_expired",
            "tool_call.done",
            "handoff.requested",
            "handoff.completed",
            "state.done",
        ]:
            assert kind in kinds, kind
        deadline = time.monotonic() + 30  # the subscriber reconnected and caught up
        while events != stored and time.monotonic() < deadline:
            time.sleep(0.1)
        assert events == stored
        steps = [
            ("supervisor", "handed_off"),  # to the researcher
            ("researcher", "running"),
            ("researcher", "waiting_tool"),  # its tool call recorded; then the kill
            ("researcher", "running"),  # the call completed on attempt 2
            ("researcher", "done"),
            ("supervisor", "running"),  # control came back
            ("supervisor", "handed_off"),  # to the writer
            ("writer", "waiting_tool"),  # the interrupt
            ("writer", "done"),  # resumed and finished
            ("supervisor", "done"),
        ]
        position = 0
        for step in states:  # the steps, in this order, among everything it saw
            if position < len(steps) and step == steps[position]:
                position += 1
        assert position == len(steps), (steps[position], states)
        assert states[-1] == ("supervisor", "done")
    finally:
        watcher.close()
        stop_server(server)


def query(server: Server, token: str, sql: str) -> list[dict[str, Any]]:
    reply = server.request("POST", f"/v1/database/{DB}/sql", sql, token)
    assert reply.status == 200, reply
    return list(reply.body["rows"])
