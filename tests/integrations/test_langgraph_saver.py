"""CosmictronSaver against LangGraph's own checkpointer conformance suite, embedded and
over a real server, and a real StateGraph interrupted and resumed from its stored
checkpoint, including after the server is SIGKILLed and restarted."""

from __future__ import annotations

import asyncio
import operator
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip(
    "langgraph.checkpoint.conformance",
    reason="needs the langgraph extra: pip install -e '.[langgraph]' (scripts/test installs it)",
)

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import CapabilityReport
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from cosmictron import CosmictronError, Database, DurabilityConfig, PermissionDenied, ReducerFailed
from cosmictron.integrations.langgraph import CosmictronSaver
from tests.server.conftest import Server, server, start_server, stop_server

__all__ = ["server"]  # the fixture, shared with tests/server

APP = "from cosmictron import *\nfrom cosmictron.agents import *\n"
DB = "graphs"


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


def deploy(server: Server) -> str:
    _, token = server.deployer()
    reply = server.deploy(DB, APP, token)
    assert reply.status == 201, reply
    return token


def conformance(make_saver: Any) -> CapabilityReport:
    @checkpointer_test(name="CosmictronSaver")
    async def saver() -> Any:
        yield make_saver()

    return asyncio.run(validate(saver))


def assert_conformant(report: CapabilityReport) -> None:
    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert failures == {}
    # every capability was detected (its async method overridden) and ran
    assert {name: r.detected for name, r in report.results.items()} == dict.fromkeys(
        report.results, True
    )
    assert report.passed_all_base()
    assert report.passed_all()
    assert report.conformance_level() == "FULL"


def test_conformance_embedded(db: Database) -> None:
    assert_conformant(conformance(lambda: CosmictronSaver(db)))


def test_conformance_over_a_real_server(server: Server) -> None:
    token = deploy(server)
    savers: list[CosmictronSaver] = []

    def make() -> CosmictronSaver:
        savers.append(CosmictronSaver.from_url(server.url, DB, token=token))
        return savers[-1]

    try:
        assert_conformant(conformance(make))
    finally:
        for saver in savers:
            saver.close()


# -- a real graph: interrupt, then resume from the stored checkpoint -------------------


class State(TypedDict):
    request: str
    steps: Annotated[list[str], operator.add]
    approved: str


def draft(state: State) -> dict[str, Any]:
    return {"steps": [f"drafted reply to {state['request']}"]}


def approve(state: State) -> dict[str, Any]:
    answer = interrupt({"question": "send this reply?", "draft": state["steps"][-1]})
    return {"approved": answer, "steps": [f"approval: {answer}"]}


def send(state: State) -> dict[str, Any]:
    return {"steps": ["sent" if state["approved"] == "yes" else "discarded"]}


def build(saver: CosmictronSaver) -> Any:
    graph = StateGraph(State)
    graph.add_node("draft", draft)
    graph.add_node("approve", approve)
    graph.add_node("send", send)
    graph.add_edge(START, "draft")
    graph.add_edge("draft", "approve")
    graph.add_edge("approve", "send")
    graph.add_edge("send", END)
    return graph.compile(checkpointer=saver)


CONFIG = {"configurable": {"thread_id": "ticket-7"}}
DONE = ["drafted reply to refund", "approval: yes", "sent"]


def run_until_interrupt(saver: CosmictronSaver) -> None:
    result = build(saver).invoke({"request": "refund", "steps": [], "approved": ""}, CONFIG)
    assert result["__interrupt__"][0].value["question"] == "send this reply?"
    state = build(saver).get_state(CONFIG)
    assert state.next == ("approve",)
    assert state.values["steps"] == ["drafted reply to refund"]


def resume(saver: CosmictronSaver) -> None:
    graph = build(saver)
    assert graph.get_state(CONFIG).next == ("approve",)  # read back from the tables
    result = graph.invoke(Command(resume="yes"), CONFIG)
    assert result["steps"] == DONE
    assert graph.get_state(CONFIG).next == ()
    history = list(graph.get_state_history(CONFIG))
    assert len(history) >= 4
    assert [h.config["configurable"]["checkpoint_id"] for h in history] == sorted(
        (h.config["configurable"]["checkpoint_id"] for h in history), reverse=True
    )


def test_graph_resumes_after_the_database_is_reopened(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    production = DurabilityConfig.from_profile("production")
    with Database.open(tmp_path / "data", tmp_path / "app.py", durability=production) as db:
        run_until_interrupt(CosmictronSaver(db))
    with Database.open(tmp_path / "data", durability=production) as db:
        resume(CosmictronSaver(db))
        rows = db.sql("SELECT COUNT(*) AS n FROM graph_checkpoint").rows
        assert rows[0][0] >= 4


def test_async_graph_over_the_sdk(server: Server) -> None:
    token = deploy(server)

    async def run() -> list[str]:
        async with CosmictronSaver.from_url(server.url, DB, token=token) as saver:
            graph = build(saver)
            config = {"configurable": {"thread_id": "async-1"}}
            await graph.ainvoke({"request": "refund", "steps": [], "approved": ""}, config)
            assert (await graph.aget_state(config)).next == ("approve",)
            result = await graph.ainvoke(Command(resume="no"), config)
            return list(result["steps"])

    assert asyncio.run(run()) == ["drafted reply to refund", "approval: no", "discarded"]


@pytest.mark.slow
def test_graph_resumes_after_the_server_is_sigkilled(tmp_path: Path) -> None:
    data_dir = tmp_path / "server-data"
    running = start_server(data_dir, "--profile", "production")
    try:
        token = deploy(running)
        with CosmictronSaver.from_url(running.url, DB, token=token) as saver:
            run_until_interrupt(saver)
        running.process.send_signal(signal.SIGKILL)
        stop_server(running, signal.SIGKILL)
        assert running.process.returncode == -signal.SIGKILL

        running = start_server(data_dir, "--profile", "production")
        with CosmictronSaver.from_url(running.url, DB, token=token) as saver:
            resume(saver)
    finally:
        stop_server(running)


# -- refusals ---------------------------------------------------------------------------


def test_bad_requests_are_refused_and_change_nothing(db: Database) -> None:
    saver = CosmictronSaver(db)
    run_until_interrupt(saver)
    before = list(saver.list(CONFIG))
    with pytest.raises(ReducerFailed, match="prune strategy must be one of keep_latest, delete"):
        saver.prune(["ticket-7"], strategy="keep_oldest")
    with pytest.raises(ReducerFailed, match="source and target are the same thread"):
        saver.copy_thread("ticket-7", "ticket-7")
    writes = db.sql("SELECT COUNT(*) AS n FROM graph_checkpoint_write").rows
    newest = before[0].config["configurable"]["checkpoint_id"]
    with pytest.raises(ReducerFailed, match=r"2 idxs, 1 channels.*\(parallel lists\)"):
        db.call("put_graph_writes", "ticket-7", "", newest, "t", "", [0, 1], ["a"], ["j"], [b""])
    assert db.sql("SELECT COUNT(*) AS n FROM graph_checkpoint_write").rows == writes
    assert [t.config for t in saver.list(CONFIG)] == [t.config for t in before]


def test_only_the_owner_reads_or_writes_checkpoints_over_a_server(server: Server) -> None:
    owner_token = deploy(server)
    with CosmictronSaver.from_url(server.url, DB, token=owner_token) as saver:
        run_until_interrupt(saver)
    _, stranger_token = server.identity()
    with CosmictronSaver.from_url(server.url, DB, token=stranger_token) as stranger:
        with pytest.raises(CosmictronError, match="belong to the database's owner"):
            stranger.delete_thread("ticket-7")
        with pytest.raises(PermissionDenied):
            stranger.get_tuple(CONFIG)
    with CosmictronSaver.from_url(server.url, DB, token=owner_token) as saver:
        assert saver.get_tuple(CONFIG) is not None  # the stranger deleted nothing


def test_the_latest_checkpoint_follows_deletions_copies_and_prunes(db: Database) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    saver = CosmictronSaver(db)
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    ids = []
    for run in ("run-a", "run-b", "run-c"):
        checkpoint = empty_checkpoint()
        config = saver.put(config, checkpoint, {"run_id": run, "step": len(ids)}, {})
        ids.append(checkpoint["id"])
    latest = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}

    def head(thread: str = "t") -> str | None:
        found = saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
        return None if found is None else found.checkpoint["id"]

    assert head() == ids[2]
    saver.delete_for_runs(["run-c"])
    assert head() == ids[1]  # the newest left, not the deleted one
    saver.copy_thread("t", "t2")
    assert head("t2") == ids[1]
    saver.prune(["t"], strategy="keep_latest")
    assert [c.checkpoint["id"] for c in saver.list(latest)] == [ids[1]]
    saver.prune(["t2"], strategy="delete")
    assert head("t2") is None
    saver.delete_thread("t")
    assert head() is None
    assert db.sql("SELECT COUNT(*) AS n FROM graph_thread_head").rows[0][0] == 0


def test_the_core_needs_no_langgraph_and_the_integration_says_what_to_install() -> None:
    script = (
        "import sys\n"
        "for name in ('langgraph', 'langchain_core'):\n"
        "    sys.modules[name] = None  # as if not installed\n"
        "import cosmictron, cosmictron.agents, cosmictron.client\n"
        "try:\n"
        "    import cosmictron.integrations.langgraph\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "needs LangGraph" in out.stdout
    assert "pip install 'cosmictron[langgraph]'" in out.stdout


class Counter(TypedDict):
    count: int
    log: Annotated[list[int], operator.add]


@pytest.mark.slow
def test_a_run_killed_mid_step_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    """SIGKILL while a node runs; after the restart the run continues from the last
    committed checkpoint: every step's effect is in the state exactly once."""
    killed_at = threading.Event()

    def step(state: Counter) -> dict[str, Any]:
        count = state["count"] + 1
        if count == 4:
            killed_at.set()  # the test kills the server while this step runs
            time.sleep(1.0)
        return {"count": count, "log": [count]}

    def build_counter(saver: CosmictronSaver) -> Any:
        graph = StateGraph(Counter)
        graph.add_node("step", step)
        graph.add_edge(START, "step")
        graph.add_conditional_edges("step", lambda s: END if s["count"] >= 10 else "step")
        return graph.compile(checkpointer=saver)

    config = {"configurable": {"thread_id": "counter"}}
    data_dir = tmp_path / "server-data"
    running = start_server(data_dir, "--profile", "production")
    try:
        token = deploy(running)
        failure: list[BaseException] = []
        first = CosmictronSaver.from_url(running.url, DB, token=token)

        def run() -> None:
            try:
                build_counter(first).invoke({"count": 0, "log": []}, config, durability="sync")
            except BaseException as exc:  # the connection is cut under it
                failure.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        assert killed_at.wait(60)
        running.process.send_signal(signal.SIGKILL)
        stop_server(running, signal.SIGKILL)
        first.close()  # the SDK would wait for the server to come back; give up instead
        worker.join(60)
        assert not worker.is_alive() and failure, "the run must be cut off mid-step"

        running = start_server(data_dir, "--profile", "production")
        with CosmictronSaver.from_url(running.url, DB, token=token) as saver:
            graph = build_counter(saver)
            stored = graph.get_state(config).values
            assert stored["count"] == 3 and stored["log"] == [1, 2, 3]  # step 4 never committed
            final = graph.invoke(None, config)  # resume from the stored checkpoint
        assert final["count"] == 10
        assert final["log"] == list(range(1, 11))  # nothing lost, nothing twice
    finally:
        stop_server(running)
