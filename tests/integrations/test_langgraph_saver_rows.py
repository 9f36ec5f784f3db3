"""The embedded saver's direct writes (``integrations/langgraph_rows.py``) leave exactly
what the agent layer's reducers leave, log each serialized checkpoint once, and reach
commit listeners like any transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph.checkpoint.base", reason="needs the langgraph extra")

from langgraph.checkpoint.base import empty_checkpoint

from cosmictron import Database, DurabilityConfig
from cosmictron.integrations.langgraph import CosmictronSaver, _Embedded

APP = "from cosmictron import *\nfrom cosmictron.agents import *\n"
TABLES = ("graph_checkpoint", "graph_checkpoint_write", "graph_thread_head")


class _ThroughReducers(_Embedded):
    """The same embedded saver, writing through the reducers (as over the SDK)."""

    def put_checkpoint(self, *args: Any) -> None:
        self.call("put_graph_checkpoint", *args)

    def put_writes(self, *args: Any) -> None:
        self.call("put_graph_writes", *args)


def open_db(path: Path) -> Database:
    path.mkdir()
    (path / "app.py").write_text(APP)
    return Database.open(
        path / "data", path / "app.py", durability=DurabilityConfig.from_profile("development")
    )


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    direct, reducers = open_db(tmp_path / "direct"), open_db(tmp_path / "reducers")
    yield direct, reducers
    direct.close()
    reducers.close()


def contents(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    return {name: sorted(tuple(r) for r in db.sql(f"SELECT * FROM {name}").rows) for name in TABLES}


def checkpoint_with(step: int, checkpoint_id: str | None = None) -> Any:
    checkpoint = empty_checkpoint()
    if checkpoint_id is not None:
        checkpoint["id"] = checkpoint_id
    checkpoint["ts"] = "2026-12-07T00:00:00+00:00"  # the same bytes on both databases
    checkpoint["channel_values"] = {"step": step}
    return checkpoint


def workload(saver: CosmictronSaver, older_id: str) -> None:
    """Every case the reducers decide: new ids, a stored id put again (replaced), an
    older id put after a newer one (the head stays), a regular write repeated (the
    first kept) and a special one repeated (replaced)."""
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    first = saver.put(config, checkpoint_with(0, "1f0-b"), {"step": 0}, {})
    second = saver.put(first, checkpoint_with(1, "1f0-c"), {"step": 1}, {})
    saver.put(first, checkpoint_with(1, "1f0-c"), {"step": 1, "source": "update"}, {})
    saver.put(config, checkpoint_with(9, older_id), {"step": 9}, {})
    saver.put(
        {"configurable": {"thread_id": "t", "checkpoint_ns": "sub"}},
        checkpoint_with(2, "1f0-d"),
        {"step": 2},
        {},
    )
    saver.put_writes(second, [("a", 1), ("b", "x")], "task-1", "path")
    saver.put_writes(second, [("a", 2), ("b", "y")], "task-1", "path")
    saver.put_writes(second, [("__error__", "boom")], "task-2")
    saver.put_writes(second, [("__error__", "boom again")], "task-2")


def test_direct_writes_leave_what_the_reducers_leave(two: tuple[Database, Database]) -> None:
    direct, reducers = two
    workload(CosmictronSaver(direct), "1f0-a")
    workload(CosmictronSaver(_ThroughReducers(reducers)), "1f0-a")
    assert contents(direct) == contents(reducers)
    got = contents(direct)
    assert ("t", "", "1f0-c") in got["graph_thread_head"]  # not moved back to 1f0-a
    values = {(r[3], r[4]): r[8] for r in got["graph_checkpoint_write"]}
    saver = CosmictronSaver(direct)
    assert saver.serde.loads_typed(("msgpack", values[("task-1", 0)])) == 1  # first kept
    error = next(v for (task, idx), v in values.items() if task == "task-2")
    assert saver.serde.loads_typed(("msgpack", error)) == "boom again"  # replaced


def test_a_put_logs_its_serialized_checkpoint_once(two: tuple[Database, Database]) -> None:
    direct, reducers = two
    big = checkpoint_with(0)
    big["channel_values"] = {"text": "x" * 50_000}
    size = len(CosmictronSaver(direct).serde.dumps_typed(big)[1])
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    logged = {}
    for name, saver in (
        ("direct", CosmictronSaver(direct)),
        ("reducers", CosmictronSaver(_ThroughReducers(reducers))),
    ):
        db = direct if name == "direct" else reducers
        before = db.persistence_statistics().bytes_written
        saver.put(config, big, {}, {})
        logged[name] = db.persistence_statistics().bytes_written - before
    assert size < logged["direct"] < 1.2 * size  # the row's copy only
    assert logged["reducers"] > 2 * size  # the call's arguments and the row


def test_commit_listeners_see_direct_writes(two: tuple[Database, Database]) -> None:
    direct, _ = two
    seen: list[tuple[str, int]] = []
    direct.add_commit_listener(
        lambda offset, timestamp, changes: seen.extend(
            (change.table.name, len(change.inserts)) for change in changes
        )
    )
    saver = CosmictronSaver(direct)
    config = saver.put(
        {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}, checkpoint_with(0), {}, {}
    )
    saver.put_writes(config, [("a", 1), ("b", 2)], "task")
    assert seen == [
        ("graph_checkpoint", 1),
        ("graph_thread_head", 1),
        ("graph_checkpoint_write", 2),
    ]
