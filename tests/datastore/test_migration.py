"""The migration planner and stager: pure schema comparisons, then tables built aside.

Schemas are built directly from schema objects (no module), and staging runs on a real
``Datastore``; a refused stage must leave the datastore exactly as it was.
"""

from __future__ import annotations

import pytest

from cosmictron.datastore import (
    ColumnSchema,
    Datastore,
    IndexSchema,
    ModuleSchema,
    ReducerSchema,
    TableSchema,
)
from cosmictron.datastore.migration import plan_migration, reset_datastore, stage_migration
from cosmictron.datastore.types import I64, STR
from cosmictron.errors import SchemaError

ID = ColumnSchema("id", I64)
NAME = ColumnSchema("name", STR, default="")
TASK = TableSchema("task", (ID, NAME), primary_key=("id",))


def module(*tables: TableSchema, reducers: tuple[ReducerSchema, ...] = ()) -> ModuleSchema:
    return ModuleSchema(tables=tables, reducers=reducers)


def with_(table: TableSchema, **changes: object) -> TableSchema:
    fields = {
        "name": table.name,
        "columns": table.columns,
        "primary_key": table.primary_key,
        "indexes": table.indexes,
        "public": table.public,
        "event": table.event,
        "scheduled": table.scheduled,
    }
    fields.update(changes)
    return TableSchema(**fields)  # type: ignore[arg-type]


def test_identical_schemas_change_nothing():
    plan = plan_migration(module(TASK), module(TASK))
    assert plan.incompatibilities == ()
    assert plan.tables_added == plan.columns_added == plan.tables_changed == ()


def test_additions_are_planned():
    old = module(TASK, reducers=(ReducerSchema("a"), ReducerSchema("b")))
    wider = with_(
        TASK,
        columns=(ID, NAME, ColumnSchema("done", I64, default=0)),
        indexes=(IndexSchema("name", ("name",), unique=True),),
    )
    tag = TableSchema("tag", (ColumnSchema("label", STR),))
    new = module(
        wider,
        tag,
        reducers=(ReducerSchema("a", return_type=I64), ReducerSchema("c")),
    )
    plan = plan_migration(old, new)
    assert plan.incompatibilities == ()
    assert plan.tables_added == ("tag",)
    assert plan.tables_changed == ("task",)
    assert plan.columns_added == ("task.done",)
    assert plan.indexes_added == ("task.name",)
    assert plan.reducers_added == ("c",)
    assert plan.reducers_removed == ("b",)
    assert plan.reducers_changed == ("a",)


def test_every_incompatibility_is_listed_once():
    other = TableSchema("other", (ID,))
    old = module(TASK, other)
    new_task = with_(
        TASK,
        columns=(
            ColumnSchema("id", STR),  # retyped
            ColumnSchema("title", STR, default=""),  # "name" renamed
            ColumnSchema("due", I64),  # no default
        ),
        primary_key=(),
        event=True,
    )
    plan = plan_migration(old, module(new_task))
    problems = plan.incompatibilities
    assert "table 'other' was dropped" in problems
    assert "table 'task': column 'id' changed type from i64 to str" in problems
    assert "table 'task': column 'name' was dropped or renamed" in problems
    assert any("'title' is at position 2" in p for p in problems)
    assert any("'due' has no default" in p for p in problems)
    assert any("primary key changed" in p for p in problems)
    assert any("event changed" in p for p in problems)
    assert len(problems) == 7
    with pytest.raises(SchemaError) as error:
        plan.check()
    assert str(error.value).count("\n- ") == 7


def test_reordered_columns_are_refused():
    swapped = with_(TASK, columns=(NAME, ID))
    problems = plan_migration(module(TASK), module(swapped)).incompatibilities
    assert any("'id' moved from position 1 to 2" in p for p in problems)


def test_public_and_index_changes_are_compatible():
    new = with_(TASK, public=True, indexes=(IndexSchema("name", ("name",)),))
    plan = plan_migration(module(TASK), module(new))
    assert plan.incompatibilities == ()
    old_indexed = with_(TASK, indexes=(IndexSchema("name", ("name",), kind="hash"),))
    plan = plan_migration(module(old_indexed), module(new))
    assert plan.indexes_removed == ("task.name",) and plan.indexes_added == ("task.name",)


def filled() -> Datastore:
    datastore = Datastore(module(TASK))
    table = datastore.tables["task"]
    for n in range(5):
        table.insert((n, "same" if n < 3 else f"n{n}"))
    table.sequences[0] = 9
    return datastore


def test_staging_adds_defaults_and_keeps_counters():
    datastore = filled()
    new_task = with_(TASK, columns=(ID, NAME, ColumnSchema("done", I64, default=7)))
    staged = stage_migration(datastore, plan_migration(datastore.schema, module(new_task)))
    assert len(datastore.tables["task"].rows[0]) == 2, "staging changes nothing"
    staged.commit()
    table = datastore.tables["task"]
    assert table.rows[0] == (0, "same", 7)
    assert table.sequences[0] == 9
    assert datastore.codecs["task"].decode([1, "a", 2]) == (1, "a", 2)
    datastore.check_invariants()


def test_a_unique_index_over_duplicates_is_refused_and_nothing_changes():
    datastore = filled()
    before = dict(datastore.tables["task"].rows)
    unique = with_(TASK, indexes=(IndexSchema("name", ("name",), unique=True),))
    with pytest.raises(SchemaError) as error:
        stage_migration(datastore, plan_migration(datastore.schema, module(unique)))
    assert "table 'task': unique index 'name'" in str(error.value)
    assert "'same', by 3 rows" in str(error.value)
    assert datastore.tables["task"].rows == before
    assert datastore.tables["task"].schema is TASK


def test_unchanged_tables_are_kept_and_reset_empties():
    datastore = filled()
    kept = datastore.tables["task"]
    public = with_(TASK, public=True)
    stage_migration(datastore, plan_migration(datastore.schema, module(public))).commit()
    assert datastore.tables["task"] is kept and kept.schema is public
    reset_datastore(datastore, module(public))
    assert len(datastore.tables["task"]) == 0
