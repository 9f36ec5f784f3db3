"""Embedded errors point at the user's code (issue 16): a module that fails to load names
its file as given and shows the line; a reducer's exception carries its module's frames,
never Cosmictron's, in ``traceback``, in a note under Python's own traceback, and in the
module log."""

from __future__ import annotations

import json
import os
import tarfile
import traceback
from pathlib import Path

import pytest

from cosmictron import Database
from cosmictron.durability.archive import MemberSource, write_archive
from cosmictron.errors import ReducerFailed, SchemaError
from cosmictron.host.backup import restore
from tests.conftest import FAST

APP = """\
import json

from cosmictron import ReducerContext, field, reducer, table


@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True, auto_inc=True)
    name: str = ""


def parse(text):
    return json.loads(text)


@reducer
def load(ctx: ReducerContext, text: str) -> None:
    Item.insert(Item(name=str(parse(text))))


@reducer
def dup(ctx: ReducerContext) -> None:
    ctx.db.item.insert(Item(id=1))
    ctx.db.item.insert(Item(id=1))
"""


def line_of(text: str, source: str = APP) -> int:
    """The 1-based line of ``source`` holding ``text`` (last occurrence)."""
    lines = source.splitlines()
    return max(i for i, line in enumerate(lines, 1) if text in line)


@pytest.fixture
def in_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def open_module(name: str) -> Database:
    return Database.open(f"data-{name}", name, durability=FAST)


def test_a_syntax_error_names_the_file_as_given_with_its_line_and_caret(in_work):
    Path("app.py").write_text("x = 1\nif x\n    pass\n")
    with pytest.raises(SchemaError) as caught:
        open_module("app.py")
    error = caught.value
    assert str(error).startswith("module app.py failed to load: SyntaxError: expected ':'")
    assert error.traceback == '  File "app.py", line 2\n    if x\n        ^'
    assert error.__notes__ == [error.traceback]


def test_a_mistaken_declaration_at_import_time_points_at_its_line(in_work):
    Path("app.py").write_text(
        "from cosmictron import table\n\n\n@table(nmae='item')\nclass T:\n    id: int = 0\n"
    )
    with pytest.raises(SchemaError) as caught:
        open_module("app.py")
    assert "TypeError" in str(caught.value)
    assert (
        caught.value.traceback == "  File \"app.py\", line 4, in <module>\n    @table(nmae='item')"
    )


def test_a_reducer_s_exception_carries_the_module_s_frames_and_the_stdlib_s(in_work):
    Path("app.py").write_text(APP)
    with open_module("app.py") as db:
        with pytest.raises(ReducerFailed) as caught:
            db.call("load", "{not json")
        frames = caught.value.traceback or ""
        lines = frames.splitlines()
        assert lines[:4] == [
            f'  File "app.py", line {line_of("Item.insert(Item(name=")}, in load',
            "    Item.insert(Item(name=str(parse(text))))",
            f'  File "app.py", line {line_of("return json.loads")}, in parse',
            "    return json.loads(text)",
        ]
        assert any(os.sep + "json" + os.sep in line for line in lines[4:])  # the stdlib's
        package = str(Path(__import__("cosmictron").__file__).parent)
        assert package not in frames
        shown = "".join(traceback.format_exception(caught.value))
        assert shown.rstrip().endswith(frames.splitlines()[-1].rstrip())
        logged = [line for line in db.logs() if line["level"] == "ERROR"][-1]
        assert logged["message"] == f"{caught.value}\n{frames}"


def test_an_error_raised_inside_cosmictron_points_at_the_user_s_call(in_work):
    Path("app.py").write_text(APP)
    with open_module("app.py") as db, pytest.raises(ReducerFailed) as caught:
        db.call("dup")
    assert caught.value.traceback == (
        f'  File "app.py", line {line_of("insert(Item(id=1))")}, in dup\n'
        "    ctx.db.item.insert(Item(id=1))"
    )


def test_the_module_s_lines_come_from_its_source_not_a_same_named_file(in_work, tmp_path):
    Path("app.py").write_text(APP)
    with open_module("app.py") as db:
        Path("app.py").write_text("# a different file now\n" * 40)
        with pytest.raises(ReducerFailed) as caught:
            db.call("dup")
    assert "ctx.db.item.insert(Item(id=1))" in (caught.value.traceback or "")
    assert json  # the module under test imports json; keep the import honest


def test_frames_name_the_user_s_file_after_a_reopen(in_work):
    Path("app.py").write_text(APP)
    open_module("app.py").close()
    with (
        Database.open("data-app.py", durability=FAST) as db,  # no module given
        pytest.raises(ReducerFailed) as caught,
    ):
        db.call("dup")
    assert (caught.value.traceback or "").startswith('  File "app.py", line ')


def test_frames_name_the_user_s_file_in_a_restored_database(in_work):
    """The backup carries the file name beside the module (``module/filename``)."""
    Path("app.py").write_text(APP)
    with open_module("app.py") as db:
        db.backup("app.backup")
    restore("app.backup", "restored", durability=FAST)
    for _ in range(2):  # the restored directory keeps it, across reopens
        with (
            Database.open("restored", durability=FAST) as db,
            pytest.raises(ReducerFailed) as caught,
        ):
            db.call("dup")
        assert (caught.value.traceback or "").startswith('  File "app.py", line ')


def test_a_backup_without_the_file_name_restores_as_module_py(in_work):
    """An archive written before backups carried ``module/filename`` (rebuilt here from a
    real one without that member) names the module ``module.py``, never the directory
    the restore staged it in."""
    Path("app.py").write_text(APP)
    with open_module("app.py") as db:
        manifest = db.backup("new.backup")
    with tarfile.open("new.backup") as archive:
        members = [
            MemberSource(m.name, m.size, data=archive.extractfile(m).read())  # type: ignore[union-attr]
            for m in archive.getmembers()
            if m.name not in ("module/filename", "manifest.json", "manifest.sha256")
        ]
    with open("old.backup", "wb") as out:
        write_archive(out, members, manifest.cut_offset, manifest.cut_hash)
    restore("old.backup", "restored", durability=FAST)
    with Database.open("restored", durability=FAST) as db, pytest.raises(ReducerFailed) as caught:
        db.call("dup")
    assert (caught.value.traceback or "").startswith('  File "module.py", line ')


# -- schema mistakes found after the module ran point at the declaration (issue 16) ------

AFTER_IMPORT = [
    (  # a table name the datastore refuses: the @table line
        "from cosmictron import field, table\n\n\n@table(name='Bad Name!')\n"
        "class T:\n    id: int = field(primary_key=True)\n",
        "table name 'Bad Name!' is not valid",
        "  File \"app.py\", line 4, in <module>\n    @table(name='Bad Name!')",
    ),
    (  # a scheduled table naming a reducer that is never declared: the @table line
        "from cosmictron import ScheduleAt, field, table\n\n\n@table(scheduled='tick')\n"
        "class Timer:\n    id: int = field(primary_key=True, auto_inc=True)\n"
        "    scheduled_at: ScheduleAt = field(default=ScheduleAt.interval(1_000_000))\n",
        "table 'timer' is scheduled to run reducer 'tick', which the module does not declare",
        "  File \"app.py\", line 4, in <module>\n    @table(scheduled='tick')",
    ),
    (  # a column of a type that is no column type: the column's line
        "from cosmictron import field, table\n\n\n@table\nclass T:\n"
        "    id: int = field(primary_key=True)\n    tags: set = 0\n",
        "table 't' column 'tags'",
        '  File "app.py", line 7, in <module>\n    tags: set = 0',
    ),
    (  # a reducer argument without a type: the @reducer line
        "from cosmictron import ReducerContext, reducer\n\n\n@reducer\n"
        "def f(ctx: ReducerContext, x) -> None:\n    pass\n",
        "reducer 'f': argument 'x' needs a type annotation",
        '  File "app.py", line 4, in <module>\n    @reducer',
    ),
]


@pytest.mark.parametrize(("source", "message", "frame"), AFTER_IMPORT)
def test_a_schema_mistake_found_after_import_points_at_its_declaration(
    in_work, source, message, frame
):
    Path("app.py").write_text(source)
    with pytest.raises(SchemaError) as caught:
        open_module("app.py")
    assert message in str(caught.value)
    assert caught.value.traceback == frame
    assert caught.value.__notes__ == [frame]
