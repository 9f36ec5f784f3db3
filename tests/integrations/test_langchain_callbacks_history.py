"""CosmictronCallbackHandler with LangChain's fake chat model and real tools (embedded and
over a real server), and the chat message history shim over ``agent_message``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "langchain_core",
    reason="needs the langchain extra: pip install -e '.[langchain]' (scripts/test installs it)",
)

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from cosmictron import CosmictronError, Database, DurabilityConfig, ReducerFailed
from cosmictron.agents import AgentError
from cosmictron.integrations.connection import Connection, EmbeddedConnection, RemoteConnection
from cosmictron.integrations.langchain import (
    CosmictronCallbackHandler,
    CosmictronChatMessageHistory,
)
from tests.server.conftest import Server, server

__all__ = ["server"]

APP = "from cosmictron import *\nfrom cosmictron.agents import *\n"
DB = "agents"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    (tmp_path / "app.py").write_text(APP)
    database = Database.open(
        tmp_path / "data",
        tmp_path / "app.py",
        durability=DurabilityConfig.from_profile("development"),
    )
    yield database
    database.close()


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two numbers."""
    return a * b


@tool
def lookup(city: str) -> str:
    """Look up a city's weather."""
    raise ValueError(f"no weather service for {city}")


ASKS = AIMessage(
    "",
    tool_calls=[
        {"id": "call-1", "name": "multiply", "args": {"a": 6, "b": 7}},
        {"id": "call-2", "name": "lookup", "args": {"city": "Paris"}},
    ],
)


def run_agent_turn(handler: CosmictronCallbackHandler) -> Any:
    """One turn of a tool-calling loop: the model asks for two tools, both run (one
    fails), the model answers."""
    model = FakeMessagesListChatModel(responses=[ASKS, AIMessage("6 x 7 = 42")])
    config: Any = {"callbacks": [handler]}
    asked = model.invoke([HumanMessage("what is 6 x 7, and the weather in Paris?")], config)
    results = [multiply.invoke(asked.tool_calls[0] | {"type": "tool_call"}, config)]
    with pytest.raises(ValueError, match="no weather service for Paris"):
        lookup.invoke(asked.tool_calls[1] | {"type": "tool_call"}, config)
    return model.invoke([HumanMessage("so?"), asked, *results], config), results


def seed(connection: Connection) -> None:
    connection.call("register_agent", "researcher", "worker", "", [])
    connection.call("start_thread", "t1", "researcher", "")


def check_recorded(connection: Connection) -> None:
    calls = connection.sql(
        "SELECT id, tool_name, status, attempt, worker, arguments, result, error FROM tool_call"
    )
    by_id = {c["id"]: c for c in calls}
    assert set(by_id) == {"call-1", "call-2"}
    assert by_id["call-1"]["status"] == "done" and by_id["call-1"]["result"] == "42"
    assert json.loads(by_id["call-1"]["arguments"]) == {"a": 6, "b": 7}
    assert by_id["call-1"]["attempt"] == 1 and by_id["call-1"]["worker"] == "langchain"
    assert by_id["call-2"]["status"] == "error"
    assert by_id["call-2"]["error"] == "no weather service for Paris"
    messages = connection.sql(
        "SELECT role, content, tool_call_id FROM agent_message WHERE thread_id = 't1' ORDER BY id"
    )
    assert [(m["role"], m["tool_call_id"], m["content"]) for m in messages] == [
        ("tool", "call-1", "42"),
        ("tool", "call-2", "Error: no weather service for Paris"),
    ]
    events = connection.sql(
        "SELECT seq, kind, payload, causation_id FROM agent_event "
        "WHERE thread_id = 't1' ORDER BY seq"
    )
    kinds = [e["kind"] for e in events]
    assert kinds == [
        "thread.started",
        "model.started",
        "model.finished",
        "tool_call.recorded",
        "tool_call.claimed",
        "tool_call.done",
        "tool_call.recorded",
        "tool_call.claimed",
        "tool_call.error",
        "model.started",
        "model.finished",
    ]
    starts = [e for e in events if e["kind"] == "model.started"]
    ends = [e for e in events if e["kind"] == "model.finished"]
    assert [e["causation_id"] for e in ends] == [s["seq"] for s in starts]
    first = json.loads(ends[0]["payload"])["generations"][0]
    assert [c["id"] for c in first["tool_calls"]] == ["call-1", "call-2"]
    assert json.loads(ends[1]["payload"])["generations"][0]["text"] == "6 x 7 = 42"
    state = connection.sql("SELECT status FROM agent_state WHERE thread_id = 't1'")
    assert [s["status"] for s in state] == ["running"]  # no tool call left open


def test_callbacks_record_tool_calls_and_model_events_embedded(db: Database) -> None:
    connection = EmbeddedConnection(db)
    seed(connection)
    final, results = run_agent_turn(
        CosmictronCallbackHandler(db, agent="researcher", thread_id="t1")
    )
    assert final.content == "6 x 7 = 42"
    assert isinstance(results[0], ToolMessage) and results[0].content == "42"
    check_recorded(connection)


def test_callbacks_over_a_real_server(server: Server) -> None:
    _, token = server.deployer()
    assert server.deploy(DB, APP, token).status == 201
    connection = RemoteConnection(server.url, DB, token)
    try:
        seed(connection)
        handler = CosmictronCallbackHandler.from_url(
            server.url, DB, agent="researcher", token=token, thread_id="t1"
        )
        try:
            run_agent_turn(handler)
        finally:
            handler.close()
        check_recorded(connection)
    finally:
        connection.close()


def test_async_runs_and_the_langgraph_thread_id(db: Database) -> None:
    connection = EmbeddedConnection(db)
    connection.call("register_agent", "researcher", "worker", "", [])
    connection.call("start_thread", "lg-7", "researcher", "")
    handler = CosmictronCallbackHandler(db, agent="researcher")  # the thread from metadata

    async def run() -> None:
        config: Any = {"callbacks": [handler], "metadata": {"thread_id": "lg-7"}}
        await multiply.ainvoke(
            {"id": "c9", "name": "multiply", "args": {"a": 2, "b": 3}, "type": "tool_call"}, config
        )

    asyncio.run(run())
    rows = db.sql("SELECT id, thread_id, status, result FROM tool_call").as_dicts()
    assert rows == [{"id": "c9", "thread_id": "lg-7", "status": "done", "result": "6"}]


def test_a_call_cannot_be_started_twice_and_unknown_threads_are_refused(db: Database) -> None:
    connection = EmbeddedConnection(db)
    seed(connection)
    handler = CosmictronCallbackHandler(db, agent="researcher", thread_id="t1")
    config: Any = {"callbacks": [handler]}
    multiply.invoke(
        {"id": "once", "name": "multiply", "args": {"a": 1, "b": 1}, "type": "tool_call"}, config
    )
    with pytest.raises(ReducerFailed, match="tool_call 'once' is done .*cannot be started again"):
        multiply.invoke(
            {"id": "once", "name": "multiply", "args": {"a": 1, "b": 1}, "type": "tool_call"},
            config,
        )
    stranger = CosmictronCallbackHandler(db, agent="researcher", thread_id="nope")
    with pytest.raises(ReducerFailed, match="no agent_thread 'nope'"):
        multiply.invoke(
            {"id": "x", "name": "multiply", "args": {"a": 1, "b": 1}, "type": "tool_call"},
            {"callbacks": [stranger]},
        )
    nowhere = CosmictronCallbackHandler(db, agent="researcher")
    with pytest.raises(ValueError, match="needs a thread"):
        multiply.invoke({"a": 1, "b": 1}, {"callbacks": [nowhere]})
    assert db.sql("SELECT COUNT(*) AS n FROM tool_call").rows[0][0] == 1


# -- the chat message history shim -----------------------------------------------------


CONVERSATION = [
    SystemMessage("be brief"),
    HumanMessage("6 x 7?"),
    AIMessage("", tool_calls=[{"id": "m1", "name": "multiply", "args": {"a": 6, "b": 7}}]),
    ToolMessage("42", tool_call_id="m1"),
    AIMessage("42"),
]


def same(messages: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (
            type(m).__name__,
            m.content,
            getattr(m, "tool_calls", None),
            getattr(m, "tool_call_id", None),
        )
        for m in messages
    ]


def test_history_round_trips_a_conversation_embedded(db: Database) -> None:
    history = CosmictronChatMessageHistory(db, "session-1")
    assert history.messages == []
    history.add_messages(CONVERSATION[:2])
    history.add_messages(CONVERSATION[2:])
    assert same(history.messages) == same(CONVERSATION)
    assert same(asyncio.run(history.aget_messages())) == same(CONVERSATION)
    # the rows are the agent layer's: a thread, and messages in agent_message
    rows = db.sql("SELECT role FROM agent_message WHERE thread_id = 'session-1' ORDER BY id")
    assert [r[0] for r in rows] == ["system", "user", "assistant", "tool", "assistant"]
    assert CosmictronChatMessageHistory(db, "session-2").messages == []  # sessions apart
    with pytest.raises(AgentError, match="append-only event table"):
        history.clear()
    with pytest.raises(ValueError, match="stores text content"):
        history.add_messages([HumanMessage([{"type": "image_url", "image_url": "x"}])])
    assert len(history.messages) == len(CONVERSATION)  # nothing stored by the refusals


def test_history_over_a_real_server(server: Server) -> None:
    _, token = server.deployer()
    assert server.deploy(DB, APP, token).status == 201
    history = CosmictronChatMessageHistory.from_url(server.url, DB, "s", token=token)
    other = CosmictronChatMessageHistory.from_url(server.url, DB, "s", token=token)
    try:
        history.add_messages(CONVERSATION[:3])
        other.add_messages(CONVERSATION[3:])  # a second client joins the same session
        assert same(history.messages) == same(CONVERSATION)
    finally:
        history.close()
        other.close()
    _, stranger = server.identity()
    intruder = CosmictronChatMessageHistory.from_url(server.url, DB, "s", token=stranger)
    try:
        assert len(intruder.messages) == len(CONVERSATION)  # agent_message is public
        with pytest.raises(CosmictronError):
            intruder.clear()
    finally:
        intruder.close()


def test_the_core_needs_no_langchain_and_the_integration_says_what_to_install() -> None:
    import subprocess
    import sys

    script = (
        "import sys\n"
        "sys.modules['langchain_core'] = None  # as if not installed\n"
        "import cosmictron, cosmictron.agents, cosmictron.client\n"
        "try:\n"
        "    import cosmictron.integrations.langchain\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "needs LangChain" in out.stdout
    assert "pip install 'cosmictron[langchain]'" in out.stdout


# -- agent_state, live ---------------------------------------------------------------

STATUS, STEP, SUMMARY = 2, 3, 4
"""Positions in an ``agent_state`` row (thread_id, agent, status, step, summary, ...)."""


def tool_calling_graph(model: Any) -> Any:
    """A LangGraph agent: the model node, then the tool node while the model asks for
    tools, then the model again."""
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([multiply]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()


def test_a_subscriber_of_agent_state_sees_each_step_of_a_graph_run_live(db: Database) -> None:
    pytest.importorskip("langgraph.prebuilt", reason="needs the langgraph extra")
    connection = EmbeddedConnection(db)
    seed(connection)
    seen: list[tuple[str, int, str]] = []

    def on_update(update: dict[str, Any]) -> None:
        for table in update["tables"]:
            assert table["table_name"] == "agent_state"
            seen.extend((r[STATUS], r[STEP], r[SUMMARY]) for r in table["inserts"])

    subscription = db.subscribe(
        ["SELECT * FROM agent_state WHERE thread_id = 't1'"], on_update=on_update
    )
    assert [r[STATUS] for r in subscription.initial["tables"][0]["rows"]] == ["pending"]
    model = FakeMessagesListChatModel(
        responses=[
            AIMessage("", tool_calls=[{"id": "g-1", "name": "multiply", "args": {"a": 6, "b": 7}}]),
            AIMessage("6 x 7 = 42"),
        ]
    )
    handler = CosmictronCallbackHandler(db, agent="researcher")  # the thread from the config
    out = tool_calling_graph(model).invoke(
        {"messages": [HumanMessage("6 x 7?")]},
        {"callbacks": [handler], "configurable": {"thread_id": "t1"}},
    )
    assert out["messages"][-1].content == "6 x 7 = 42"
    statuses = [status for status, _, _ in seen]
    assert statuses[0] == "running" and statuses[-1] == "done"
    assert statuses.count("waiting_tool") == 1  # the tool call, then back to running
    assert statuses[statuses.index("waiting_tool") + 1] == "running"
    steps = [step for _, step, _ in seen]
    assert steps == list(range(steps[0], steps[0] + len(steps)))  # every step, one by one
    assert seen[0][2] == "run LangGraph" and seen[1][2] == "node agent"
    events = connection.sql(
        "SELECT kind, payload FROM agent_event WHERE thread_id = 't1' "
        "AND (kind LIKE 'run.%' OR kind = 'node.started') ORDER BY seq"
    )
    assert [(e["kind"], json.loads(e["payload"])["name"]) for e in events[1:-1]] == [
        ("node.started", "agent"),
        ("node.started", "tools"),
        ("node.started", "agent"),
    ]
    assert [e["kind"] for e in events[:: len(events) - 1]] == ["run.started", "run.finished"]


def test_a_failing_run_leaves_the_agent_in_error(db: Database) -> None:
    pytest.importorskip("langgraph.prebuilt", reason="needs the langgraph extra")
    connection = EmbeddedConnection(db)
    seed(connection)
    statuses: list[str] = []
    db.subscribe(
        ["SELECT * FROM agent_state WHERE thread_id = 't1'"],
        on_update=lambda u: statuses.extend(r[STATUS] for t in u["tables"] for r in t["inserts"]),
    )
    model = FakeMessagesListChatModel(responses=[])  # no answer left: the model fails
    handler = CosmictronCallbackHandler(db, agent="researcher", thread_id="t1")
    with pytest.raises(IndexError):
        tool_calling_graph(model).invoke(
            {"messages": [HumanMessage("hi")]}, {"callbacks": [handler]}
        )
    assert statuses[0] == "running" and statuses[-1] == "error"
    state = connection.sql("SELECT status, summary FROM agent_state WHERE thread_id = 't1'")
    assert state[0]["status"] == "error"


def test_an_sdk_subscriber_of_agent_state_sees_a_graph_run_over_a_real_server(
    server: Server,
) -> None:
    pytest.importorskip("langgraph.prebuilt", reason="needs the langgraph extra")
    _, token = server.deployer()
    assert server.deploy(DB, APP, token).status == 201
    watcher = RemoteConnection(server.url, DB, token)
    handler = CosmictronCallbackHandler.from_url(server.url, DB, agent="researcher", token=token)
    try:
        seed(watcher)
        seen: list[tuple[str, int]] = []
        watcher.client.on_update(lambda table, old, new: seen.append((new["status"], new["step"])))
        watcher.wait(watcher.client.subscribe("SELECT * FROM agent_state WHERE thread_id = 't1'"))
        model = FakeMessagesListChatModel(
            responses=[
                AIMessage(
                    "", tool_calls=[{"id": "s-1", "name": "multiply", "args": {"a": 2, "b": 3}}]
                ),
                AIMessage("6"),
            ]
        )
        tool_calling_graph(model).invoke(
            {"messages": [HumanMessage("2 x 3?")]},
            {"callbacks": [handler], "configurable": {"thread_id": "t1"}},
        )
        deadline = time.monotonic() + 10
        while (not seen or seen[-1][0] != "done") and time.monotonic() < deadline:
            time.sleep(0.05)
        statuses = [status for status, _ in seen]
        assert statuses[0] == "running" and statuses[-1] == "done", seen
        assert "waiting_tool" in statuses
        steps = [step for _, step in seen]
        assert steps == list(range(steps[0], steps[0] + len(steps)))  # no step missed
    finally:
        handler.close()
        watcher.close()
