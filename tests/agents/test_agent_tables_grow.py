"""A database written before the agent tables grew opens with the current code.

``data/agents-ee63d5a`` was written by the code at commit ee63d5a
(``data/make_agents_ee63d5a.py``): ``agent_thread`` had 7 columns (no ``owner``) and
``tool_call`` no status indexes. It holds a snapshot of the old rows, records after it, a
module record of the old tables and records after that. Reopening it reads the old rows
with ``owner``'s default and builds the new indexes; a table of the module's own that
changes under a stored module is refused with a ``SchemaError`` naming it and its columns.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from cosmictron import Database, DurabilityConfig, Identity
from cosmictron.agents.tables import AgentThread
from cosmictron.errors import SchemaError
from cosmictron.module import load_source

OLD_DATA = Path(__file__).parent / "data" / "agents-ee63d5a"
DEV = DurabilityConfig.from_profile("development")

COLUMN_HISTORY = {
    "agent_thread": [
        (
            "id",
            "active_agent",
            "supervisor",
            "status",
            "handoff_count",
            "created_at",
            "updated_at",
        ),
    ],
}
"""Every earlier column list of an agent table that has grown (the releases' rows)."""


@pytest.fixture
def old_data(tmp_path: Path) -> Path:
    copy = tmp_path / "agents-ee63d5a"
    shutil.copytree(OLD_DATA, copy)
    return copy


def test_agent_tables_only_grow_at_the_end_and_list_their_older_widths():
    schema = load_source(b"from cosmictron.agents import *\n", "app.py").schema
    for table in schema.tables:
        history = COLUMN_HISTORY.get(table.name, [])
        assert table.older_widths == tuple(len(columns) for columns in history), table.name
        for columns in history:
            assert table.column_names[: len(columns)] == columns, table.name


def test_a_database_from_before_the_agent_tables_grew_opens_and_migrates(old_data: Path):
    db = Database.open(old_data, durability=DEV)
    try:
        threads = {t.id: t for t in db.rows("agent_thread")}
        assert sorted(threads) == ["t1", "t2", "t3"]
        assert all(t.owner == Identity.zero() for t in threads.values())
        assert [t.active_agent for t in threads.values()] == ["solo"] * 3
        assert sorted((c.id, c.status) for c in db.rows("tool_call")) == [
            ("c1", "pending"),
            ("c2", "pending"),
            ("c3", "pending"),
        ]
        assert db.call("ping") == "pong"  # the module the old code deployed runs
        # The indexes added since exist over the old rows: claims use status_seq.
        plan = db.sql("EXPLAIN SELECT * FROM tool_call WHERE status = 'pending'").rows
        assert "USING status_seq" in plan[0][0]
        zero = "x'" + "00" * 32 + "'"
        plan = db.sql(f"EXPLAIN SELECT id FROM agent_thread WHERE owner = {zero}").rows
        assert "USING owner" in plan[0][0]
        found = db.sql(f"SELECT id FROM agent_thread WHERE owner = {zero} ORDER BY id").rows
        assert found == [("t1",), ("t2",), ("t3",)]
        claimed = db.call("claim_tool_call", "w1", ["fetch"], 30.0)
        assert (claimed.call_id, claimed.attempt) == ("c3", 1)
        db.call("start_thread", "t4", "solo", "")  # a new row, with its owner
        owner = next(t.owner for t in db.rows("agent_thread") if t.id == "t4")
        assert owner != Identity.zero()
    finally:
        db.close()
    # The log now holds rows of both widths: every open reads both.
    with Database.open(old_data, durability=DEV) as again:
        assert sorted(t.id for t in again.rows("agent_thread")) == ["t1", "t2", "t3", "t4"]
        assert {c.id: c.status for c in again.rows("tool_call")}["c3"] == "running"
        again.snapshot()
    with Database.open(old_data, durability=DEV) as third:  # from the new snapshot
        assert len(third.rows("agent_thread")) == 4


def test_a_table_the_stored_module_imports_that_changed_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A module's own table, declared in code the stored source imports, gains a column:
    the reopen names the table and the columns and says how to migrate."""
    library = tmp_path / "lib"
    library.mkdir()
    monkeypatch.syspath_prepend(str(library))
    shared = library / "shared_notes.py"
    shared.write_text(
        "from cosmictron import field, table\n\n"
        "@table(name='note', public=True)\n"
        "class Note:\n"
        "    id: int = field(primary_key=True)\n"
        "    text: str = ''\n"
    )
    app = tmp_path / "app.py"
    app.write_text(
        "from cosmictron import ReducerContext, reducer\n"
        "from shared_notes import Note\n\n"
        "@reducer\n"
        "def add(ctx: ReducerContext, id: int, text: str) -> None:\n"
        "    ctx.db.note.insert(Note(id=id, text=text))\n"
    )
    with Database.open(tmp_path / "d", app, durability=DEV) as db:
        db.call("add", 1, "one")
    shared.write_text(shared.read_text() + "    owner: str = ''\n")
    monkeypatch.delitem(sys.modules, "shared_notes")
    with pytest.raises(SchemaError) as refused:
        Database.open(tmp_path / "d", durability=DEV)
    message = str(refused.value)
    assert "table 'note'" in message
    assert "stored rows have 2 columns but the module declares 3 (id, text, owner)" in message
    assert "'owner'" in message
    assert "Database.update_module" in message and "snapshot" in message
    # Nothing was lost: with the code that wrote it, the data opens as before.
    shared.write_text(shared.read_text().replace("    owner: str = ''\n", ""))
    monkeypatch.delitem(sys.modules, "shared_notes")
    with Database.open(tmp_path / "d", durability=DEV) as db:
        assert [(n.id, n.text) for n in db.rows("note")] == [(1, "one")]
        # The migration the message advises: the module declares the table itself,
        # with the new column at the end.
        report = db.update_module(
            b"from cosmictron import ReducerContext, field, reducer, table\n\n"
            b"@table(name='note', public=True)\n"
            b"class Note:\n"
            b"    id: int = field(primary_key=True)\n"
            b"    text: str = ''\n"
            b"    owner: str = ''\n",
            filename="app.py",
        )
        assert report.columns_added == ("note.owner",)
        db.snapshot()  # so that opening replays from here, not from the first module
    # The library changes again: the data no longer depends on it.
    shared.write_text(shared.read_text() + "    owner: str = ''\n")
    monkeypatch.delitem(sys.modules, "shared_notes")
    with Database.open(tmp_path / "d", durability=DEV) as db:
        assert [(n.id, n.text, n.owner) for n in db.rows("note")] == [(1, "one", "")]


def test_a_stored_row_wider_than_a_reserved_table_is_refused():
    """Only the older widths listed are widened: any other width is a schema change."""
    from cosmictron.datastore.codec import RowCodec

    schema = load_source(b"from cosmictron.agents import *\n", "app.py").schema
    codec = RowCodec(schema.table("agent_thread"))
    assert AgentThread.__cosmictron_older_widths__ == (7,)  # type: ignore[attr-defined]
    with pytest.raises(SchemaError, match="stored rows have 5 columns"):
        codec.decode(["t", "a", "", "pending", 0])
