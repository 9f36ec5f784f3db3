"""``Database.update_module``: migrations, refusals, subscriptions and restarts.

Every test runs real modules written to files, a real datastore and a real commit log
on disk. A refused update must leave everything as it was: the rows, the running
module, ``module/module.py``, ``module/schema.json`` and the log offset (``state_of``
captures all of them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cosmictron import Database
from cosmictron.errors import InvalidRequest, ReducerFailed, SchemaError, SubscriptionError
from tests.conftest import FAST

V1 = """
@table(name="task", public=True)
class Task:
    id: int = field(primary_key=True, auto_inc=True)
    title: str = ""

@table(name="note", public=True)
class Note:
    id: int = field(primary_key=True)
    text: str = ""

@init
def setup(ctx: ReducerContext) -> None:
    ctx.db.note.insert(Note(id=0, text="init v1"))

@reducer
def add(ctx: ReducerContext, title: str) -> int:
    return ctx.db.task.insert(Task(title=title)).id

@reducer
def write_note(ctx: ReducerContext, id: int, text: str) -> None:
    ctx.db.note.insert(Note(id=id, text=text))

@reducer
def version(ctx: ReducerContext) -> int:
    return 1
"""

V2 = """
@table(name="task", public=True)
class Task:
    id: int = field(primary_key=True, auto_inc=True)
    title: str = field(default="", index="btree")
    priority: int = 3

@table(name="note", public=True)
class Note:
    id: int = field(primary_key=True)
    text: str = ""

@table(name="tag", public=True)
class Tag:
    name: str = field(primary_key=True)

@init
def setup(ctx: ReducerContext) -> None:
    ctx.db.note.insert(Note(id=0, text="init v2"))

@reducer
def add(ctx: ReducerContext, title: str, priority: int = 3) -> int:
    return ctx.db.task.insert(Task(title=title, priority=priority)).id

@reducer
def write_note(ctx: ReducerContext, id: int, text: str) -> None:
    ctx.db.note.insert(Note(id=id, text=text))

@reducer
def tag(ctx: ReducerContext, name: str) -> None:
    ctx.db.tag.insert(Tag(name=name))

@reducer
def version(ctx: ReducerContext) -> int:
    return 2
"""

INCOMPATIBLE = """
@table(name="task", public=True)
class Task:
    id: int = field(primary_key=True, auto_inc=True)
    title: int = 0
    owner: str

@init
def setup(ctx: ReducerContext) -> None:
    ctx.db.task.insert(Task(title=99, owner="init v3"))

@reducer
def version(ctx: ReducerContext) -> int:
    return 3
"""

UNIQUE_TITLES = V1.replace('title: str = ""', 'title: str = field(default="", unique=True)')

QUIET = FAST.__class__(**{**vars(FAST), "snapshot_interval_tx": 1_000_000})
"""Snapshots only when a test asks for one."""


def state_of(db: Database) -> dict[str, Any]:
    module_dir = db.path / "module"
    return {
        "tasks": db.sql("SELECT * FROM task ORDER BY id").rows,
        "notes": db.sql("SELECT * FROM note ORDER BY id").rows,
        "version": db.call("version") if "version" in db.module.reducers else None,
        "files": {p.name: p.read_bytes() for p in sorted(module_dir.iterdir())},
        "offset": db.tx_offset,
        "schema": db.schema,
    }


def unchanged(db: Database, before: dict[str, Any]) -> None:
    """The state is ``before``, but for the offset of ``version``'s own call."""
    after = state_of(db)
    assert after["offset"] == before["offset"] + 1  # state_of's call to version()
    after["offset"] = before["offset"]
    before = {**before, "offset": before["offset"]}
    assert after == before


@pytest.fixture
def v1(open_db) -> Database:
    db = open_db(V1, durability=QUIET)
    for title in ("write", "read", "write"):
        db.call("add", title)
    return db


def test_allowed_changes_keep_the_data(v1: Database, write_module) -> None:
    offset = v1.tx_offset
    report = v1.update_module(write_module(V2))
    assert report.tx_offset == offset + 1 == v1.tx_offset
    assert report.describe() == {
        "tx_offset": offset + 1,
        "cleared": False,
        "tables_added": ["tag"],
        "tables_changed": ["task"],
        "columns_added": ["task.priority"],
        "indexes_added": ["task.title"],
        "indexes_removed": [],
        "reducers_added": ["tag"],
        "reducers_removed": [],
        "reducers_changed": ["add"],
    }
    assert v1.sql("SELECT id, title, priority FROM task ORDER BY id").rows == [
        (1, "write", 3),
        (2, "read", 3),
        (3, "write", 3),
    ]
    assert v1.call("add", "new", priority=9) == 4
    v1.call("tag", "urgent")
    assert v1.call("version") == 2
    assert [t.priority for t in v1.rows("task")] == [3, 3, 3, 9]
    assert v1.table("task").title.filter("write")[0].priority == 3
    plan = v1.sql("EXPLAIN SELECT * FROM task WHERE title = 'write'").rows
    assert "USING title" in plan[0][0], plan
    assert v1.sql("SELECT name FROM tag").rows == [("urgent",)]
    assert [n.text for n in v1.rows("note")] == ["init v1"], "init runs only on a clear"
    assert json.loads((v1.path / "module" / "schema.json").read_text()) == json.loads(
        json.dumps(v1.schema.describe())
    )
    v1.check_invariants()


def test_removing_an_index_and_a_reducer(open_db, write_module) -> None:
    db = open_db(V2, durability=QUIET)
    db.call("add", "a")
    report = db.update_module(write_module(V2.replace('field(default="", index="btree")', '""')))
    assert report.indexes_removed == ("task.title",)
    assert "USING" not in db.sql("EXPLAIN SELECT * FROM task WHERE title = 'a'").rows[0][0]
    report = db.update_module(write_module(V2.replace("def tag(", "def label(")))
    assert report.reducers_added == ("label",) and report.reducers_removed == ("tag",)
    with pytest.raises(Exception, match="no reducer named 'tag'"):
        db.call("tag", "x")


def test_a_unique_index_over_duplicates_is_refused(v1: Database, write_module) -> None:
    before = state_of(v1)
    with pytest.raises(SchemaError) as error:
        v1.update_module(write_module(UNIQUE_TITLES))
    message = str(error.value)
    assert "table 'task': unique index 'title'" in message and "'write', by 2 rows" in message
    unchanged(v1, before)
    v1.call("add", "write")  # the old module still runs: duplicates are fine
    v1.sql("DELETE FROM task WHERE title = 'write'")
    assert v1.update_module(write_module(UNIQUE_TITLES)).indexes_added == ("task.title",)


def test_incompatible_changes_are_all_listed_and_nothing_changes(
    v1: Database, write_module
) -> None:
    before = state_of(v1)
    with pytest.raises(SchemaError) as error:
        v1.update_module(write_module(INCOMPATIBLE))
    message = str(error.value)
    assert "table 'note' was dropped" in message
    assert "table 'task': column 'title' changed type from str to i64" in message
    assert "table 'task': new column 'owner' has no default" in message
    assert message.count("\n- ") == 3
    unchanged(v1, before)


def test_clear_wipes_the_data_and_runs_init(v1: Database, write_module) -> None:
    report = v1.update_module(write_module(INCOMPATIBLE), clear=True)
    assert report.cleared and report.tx_offset == v1.tx_offset - 1  # then init's
    assert v1.sql("SELECT title, owner FROM task").rows == [(99, "init v3")]
    assert v1.call("version") == 3
    v1.close()
    with Database.open(v1.path, durability=QUIET) as again:
        assert again.sql("SELECT title, owner FROM task").rows == [(99, "init v3")]
        assert "note" not in again.module.rows


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import no_such_module_anywhere\n", "No module named 'no_such_module_anywhere'"),
        ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
        (
            V2 + '\nRULE = visibility_filter("SELECT * FROM nowhere")\n',
            "nowhere",
        ),
        (
            V2.replace("priority: int = 3", "priority: int = field(primary_key=True)"),
            "marks several columns primary_key",
        ),
    ],
    ids=["import-error", "raises", "bad-visibility-filter", "invalid-schema"],
)
def test_a_module_that_does_not_load_changes_nothing(
    v1: Database, write_module, source: str, expected: str
) -> None:
    before = state_of(v1)
    with pytest.raises(SchemaError, match=expected):
        v1.update_module(write_module(source))
    unchanged(v1, before)


def test_source_bytes_are_accepted(v1: Database) -> None:
    header = "from __future__ import annotations\nfrom cosmictron import *\n"
    report = v1.update_module((header + V2).encode(), filename="app.py")
    assert report.columns_added == ("task.priority",)
    assert v1.module.filename == "app.py"


def test_subscriptions_across_a_swap(v1: Database, write_module) -> None:
    notes: list[dict[str, Any]] = []
    task_errors: list[SubscriptionError] = []
    note_errors: list[SubscriptionError] = []
    v1.subscribe(["SELECT * FROM note"], notes.append, on_error=note_errors.append)
    tasks = v1.subscribe(["SELECT * FROM task"], lambda u: None, on_error=task_errors.append)
    v1.update_module(write_module(V2))
    assert len(task_errors) == 1 and "'task' was changed" in str(task_errors[0])
    assert not tasks.active
    v1.call("write_note", 5, "after the swap")
    assert note_errors == []
    assert notes[-1]["tables"][0]["inserts"] == [(5, "after the swap")]


def test_clear_ends_every_subscription(v1: Database, write_module) -> None:
    errors: list[SubscriptionError] = []
    v1.subscribe(["SELECT * FROM task"], None, on_error=errors.append)
    v1.update_module(write_module(V1.replace("return 1", "return 11")), clear=True)
    assert len(errors) == 1 and "clear" in str(errors[0])
    assert v1.sql("SELECT * FROM task").rows == []
    assert v1.sql("SELECT text FROM note").rows == [("init v1",)]


def test_update_module_inside_a_reducer_is_refused(open_db, write_module) -> None:
    path = write_module(V2)
    db = open_db(
        V1 + f"\n@reducer\ndef swap(ctx: ReducerContext) -> None:\n"
        f"    import cosmictron.module\n"
        f"    cosmictron.module.CURRENT_DB.get().update_module({str(path)!r})\n"
    )
    with pytest.raises(ReducerFailed, match="from inside a reducer"):
        db.call("swap")
    assert db.call("version") == 1


def reopen(db: Database) -> Database:
    db.close()
    return Database.open(db.path, durability=QUIET)


def check_v2(db: Database, tasks: list[tuple[Any, ...]]) -> None:
    assert db.call("version") == 2
    assert db.sql("SELECT id, title, priority FROM task ORDER BY id").rows == tasks
    db.check_invariants()


AFTER = [(1, "write", 3), (2, "read", 3), (3, "write", 3), (4, "later", 7)]


def test_restart_after_a_swap_replays_the_whole_log(v1: Database, write_module) -> None:
    v1.update_module(write_module(V2))
    v1.call("add", "later", 7)
    again = reopen(v1)
    try:
        check_v2(again, AFTER)
        assert (again.path / "module" / "genesis.py").read_bytes() != again.module.source
        assert list((again.path / "snapshots").iterdir()) == []
    finally:
        again.close()


def test_restart_from_a_snapshot_taken_before_the_swap(v1: Database, write_module) -> None:
    v1.snapshot()
    report = v1.update_module(write_module(V2))
    v1.call("add", "later", 7)
    snapshots = list((v1.path / "snapshots").iterdir())
    assert [int(p.stem) for p in snapshots] == [report.tx_offset - 1]
    with reopen(v1) as again:
        check_v2(again, AFTER)


def test_restart_from_a_snapshot_taken_after_the_swap(v1: Database, write_module) -> None:
    v1.update_module(write_module(V2))
    v1.call("add", "later", 7)
    v1.snapshot()
    v1.call("tag", "x")
    with reopen(v1) as again:
        check_v2(again, AFTER)
        assert again.sql("SELECT name FROM tag").rows == [("x",)]


def test_the_log_wins_over_a_stale_module_file(v1: Database, write_module) -> None:
    """A crash between the module record and rewriting module.py leaves the old files."""
    module_dir = v1.path / "module"
    old_files = {p.name: p.read_bytes() for p in module_dir.iterdir()}
    v1.update_module(write_module(V2))
    v1.call("add", "later", 7)
    v1.close()
    for name, data in old_files.items():
        (module_dir / name).write_bytes(data)
    with Database.open(v1.path, durability=QUIET) as again:
        check_v2(again, AFTER)
        assert (module_dir / "module.py").read_bytes() == again.module.source


def test_open_with_a_module_checks_it_against_the_replayed_tables(
    v1: Database, write_module
) -> None:
    v1.update_module(write_module(V2))
    v1.close()
    with pytest.raises(SchemaError, match="table 'task' changed its columns"):
        Database.open(v1.path, write_module(V1), durability=QUIET)
    changed = V2.replace("return 2", "return 22")
    with Database.open(v1.path, write_module(changed), durability=QUIET) as db:
        assert db.call("version") == 22
        offset = db.tx_offset
    with Database.open(v1.path, durability=QUIET) as db:
        assert db.call("version") == 22, "a reducer-only change at open is logged too"
        assert db.tx_offset == offset + 1


def test_writes_after_a_closed_database_are_refused(v1: Database, write_module) -> None:
    v1.close()
    with pytest.raises(InvalidRequest, match="closed"):
        v1.update_module(write_module(V2))


def test_reopen_keeps_only_what_each_version_wrote(tmp_path: Path, write_module) -> None:
    """Three versions, snapshots between them: a restart rebuilds the same state."""
    durability = FAST.__class__(**{**vars(FAST), "snapshot_interval_tx": 2})
    with Database.open(tmp_path / "db", write_module(V1), durability=durability) as db:
        for n in range(5):
            db.call("add", f"t{n}")
        db.update_module(write_module(V2))
        for n in range(5):
            db.call("add", f"u{n}", n)
        db.update_module(write_module(V2.replace("return 2", "return 4")))
        db.call("tag", "last")
        expected = db.sql("SELECT * FROM task ORDER BY id").rows
        offset = db.tx_offset
    with Database.open(tmp_path / "db", durability=durability) as again:
        assert again.sql("SELECT * FROM task ORDER BY id").rows == expected
        assert again.tx_offset == offset and again.call("version") == 4
