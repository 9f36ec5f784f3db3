"""Tables, indexes and transactions, driven directly (no module, no log).

Every test ends with ``check_invariants``: indexes hold exactly the table's rows.
"""

import gc
import os
import subprocess
import sys

import pytest

from cosmictron import Conflict
from cosmictron.datastore import (
    ColumnSchema,
    IndexSchema,
    Table,
    TableSchema,
    Transaction,
)
from cosmictron.datastore import table as table_module
from cosmictron.datastore import types as t


def make_table(**overrides):
    schema = TableSchema(
        name="person",
        columns=(
            ColumnSchema("id", t.I64),
            ColumnSchema("email", t.STR),
            ColumnSchema("age", t.OptionalType(t.I64)),
            ColumnSchema("city", t.STR),
        ),
        primary_key=("id",),
        indexes=(
            IndexSchema("email", ("email",), "hash", unique=True),
            IndexSchema("age", ("age",), "btree"),
            IndexSchema("city_age", ("city", "age"), "btree"),
        ),
        **overrides,
    )
    return Table(schema)


ROWS = [
    (1, "a@x", 30, "Oslo"),
    (2, "b@x", None, "Oslo"),
    (3, "c@x", 25, "Rome"),
    (4, "d@x", 30, "Rome"),
]


def filled():
    table = make_table()
    for row in ROWS:
        table.insert(row)
    return table


def test_primary_key_and_unique_conflicts_leave_the_table_unchanged():
    table = filled()
    with pytest.raises(Conflict, match="primary key id=1"):
        table.insert((1, "new@x", 1, "Oslo"))
    with pytest.raises(Conflict, match="unique index email='a@x'"):
        table.insert((9, "a@x", 1, "Oslo"))
    assert len(table) == 4
    table.check_invariants()


def test_range_lookups_order_nulls_first():
    table = filled()
    age = table.index_named("age")
    assert [table.rows[k][0] for k in age.range_row_keys(None, None)] == [2, 3, 1, 4]
    assert sorted(age.range_row_keys(25, 30, inclusive=True)) == [1, 3, 4]
    assert sorted(age.range_row_keys(25, 30)) == [3]
    table.insert((5, "e@x", 27, "Oslo"))
    table.delete(3)
    assert sorted(age.range_row_keys(25, 30)) == [5]
    table.check_invariants()


def test_composite_prefix_lookup():
    table = filled()
    city_age = table.index_named("city_age")
    assert sorted(city_age.prefix_row_keys(("Rome",))) == [3, 4]
    assert list(city_age.row_keys(("Oslo", None))) == [2]
    table.check_invariants()


def test_replace_moves_index_entries():
    table = filled()
    table.replace(1, (1, "z@x", 31, "Rome"))
    assert list(table.index_named("email").row_keys("z@x")) == [1]
    assert list(table.index_named("email").row_keys("a@x")) == []
    with pytest.raises(Conflict):
        table.replace(1, (1, "b@x", 31, "Rome"))
    assert table.get(1) == (1, "z@x", 31, "Rome")
    table.check_invariants()


def test_keyless_table_is_a_set():
    schema = TableSchema("pair", (ColumnSchema("a", t.I64), ColumnSchema("b", t.I64)))
    table = Table(schema)
    assert table.insert((1, 2)) == (1, 2)
    assert table.insert((1, 2)) is None
    assert len(table) == 1


def test_rollback_restores_everything():
    table = filled()
    before = dict(table.rows)
    tx = Transaction()
    tx.insert(table, (7, "g@x", 40, "Oslo"))
    tx.delete(table, 2)
    tx.replace(table, 1, (1, "a2@x", 31, "Oslo"))
    tx.delete(table, 7)
    tx.rollback()
    assert table.rows == before
    table.check_invariants()


def test_savepoint_undoes_only_the_inner_part():
    table = filled()
    tx = Transaction()
    tx.insert(table, (7, "g@x", 40, "Oslo"))
    mark = tx.savepoint()
    tx.delete(table, 1)
    tx.insert(table, (8, "h@x", 41, "Oslo"))
    tx.rollback_to(mark)
    assert 7 in table.rows and 1 in table.rows and 8 not in table.rows
    [change] = tx.changes()
    assert change.inserts == [(7, "g@x", 40, "Oslo")] and change.deletes == []


def test_changes_are_the_net_effect():
    table = filled()
    tx = Transaction()
    tx.insert(table, (7, "g@x", 40, "Oslo"))
    tx.delete(table, 7)  # inserted then deleted: nothing
    tx.replace(table, 1, (1, "a2@x", 31, "Oslo"))
    tx.replace(table, 1, (1, "a3@x", 32, "Oslo"))  # two updates: one delete + one insert
    tx.delete(table, 2)
    tx.insert(table, (2, "b@x", None, "Oslo"))  # deleted then re-inserted unchanged: nothing
    [change] = tx.changes()
    assert change.deletes == [(1, "a@x", 30, "Oslo")]
    assert change.inserts == [(1, "a3@x", 32, "Oslo")]


def test_memory_estimate_tracks_rows():
    table = filled()
    estimated = table.estimated_bytes
    table.insert((9, "x" * 1000, 1, "Oslo"))
    assert table.estimated_bytes >= estimated + 1000
    table.delete(9)
    assert table.estimated_bytes == estimated
    table.check_invariants()


def test_prefix_bounds_on_composite_ranges():
    table = filled()
    city_age = table.index_named("city_age")
    everything = sorted(city_age.range_row_keys(("Oslo",), ("Rome",), inclusive=True))
    assert everything == [1, 2, 3, 4], "an inclusive prefix stop takes the whole prefix"
    assert sorted(city_age.range_row_keys(("Oslo",), ("Rome",))) == [1, 2]
    assert sorted(city_age.range_row_keys(("Oslo", 0), ("Rome", 26))) == [1, 3]


@pytest.mark.parametrize(
    "batch",
    [
        [(7, "g@x", 1, "Oslo"), (7, "h@x", 2, "Oslo")],  # duplicate within the batch
        [(7, "g@x", 1, "Oslo"), (2, "h@x", 2, "Oslo")],  # duplicate of a stored row
        [(7, "g@x", 1, "Oslo"), (8, "a@x", 2, "Oslo")],  # unique index violation
    ],
)
def test_insert_many_is_all_or_nothing(batch):
    table = filled()
    before = dict(table.rows)
    with pytest.raises(Conflict) as raised:
        table.insert_many(batch)
    assert raised.value.row_index == 1
    assert table.rows == before
    table.check_invariants()


def test_insert_many_fast_path_matches_one_by_one():
    schema = TableSchema(
        "item",
        (ColumnSchema("id", t.I64), ColumnSchema("owner", t.STR), ColumnSchema("n", t.I64)),
        primary_key=("id",),
        indexes=(IndexSchema("owner", ("owner",), "hash"), IndexSchema("n", ("n",))),
    )
    rows = [(i, f"o{i % 3}", i % 5) for i in range(50)]
    batched, single = Table(schema), Table(schema)
    batched.insert_many(rows)
    for row in rows:
        single.insert(row)
    assert batched.rows == single.rows
    assert batched.estimated_bytes == single.estimated_bytes
    for name in ("owner", "n"):
        assert sorted(batched.index_named(name).row_keys("o1" if name == "owner" else 2)) == sorted(
            single.index_named(name).row_keys("o1" if name == "owner" else 2)
        )
    batched.check_invariants()


def test_insert_many_into_an_empty_table_refuses_a_repeated_key_and_keeps_nothing():
    """Into an empty table the fast path builds no set of the keys: the dict's size tells a
    repeated key, and the rows go in one by one to name it (``row_index``)."""
    schema = TableSchema(
        "item",
        (ColumnSchema("id", t.I64), ColumnSchema("owner", t.STR)),
        primary_key=("id",),
        indexes=(IndexSchema("owner", ("owner",), "hash"),),
    )
    table = Table(schema)
    with pytest.raises(Conflict) as raised:
        table.insert_many([(1, "a"), (2, "b"), (1, "c")])
    assert raised.value.row_index == 2
    assert not table.rows and table.estimated_bytes == 0
    assert list(table.index_named("owner").row_keys("a")) == []
    table.check_invariants()
    assert table.insert_many([(1, "a"), (2, "b")]) == [1, 2]  # and it still loads
    table.check_invariants()


def test_delete_many_matches_one_by_one_and_refuses_a_key_not_held():
    """``delete_many`` (replay's overlay flush) leaves what ``delete`` one by one leaves,
    with the ordered views and a snapshot's shared structures in play."""
    schema = TableSchema(
        "item",
        (ColumnSchema("id", t.I64), ColumnSchema("owner", t.STR), ColumnSchema("n", t.I64)),
        primary_key=("id",),
        indexes=(IndexSchema("owner", ("owner",), "hash"), IndexSchema("n", ("n",))),
    )
    rows = [(i, f"o{i % 3}", i % 5) for i in range(60)]
    doomed = [k for k in range(60) if k % 4 != 1]
    batched, single = Table(schema), Table(schema)
    for table in (batched, single):
        table.insert_many(rows)
        list(table.index_named("n").range_row_keys(1, 3))  # builds the ordered views
        list(table.ordered_primary().range_row_keys(10, 20))
    assert batched.primary_order._ordered is not None
    assert batched.index_named("n")._ordered is not None
    view = batched.share()
    removed = batched.delete_many(doomed)
    assert removed == [rows[k] for k in doomed]
    for key in doomed:
        single.delete(key)
    assert list(batched.rows.items()) == list(single.rows.items())
    assert batched.estimated_bytes == single.estimated_bytes
    for name, probe in (("owner", "o1"), ("n", 1)):
        assert sorted(batched.index_named(name).row_keys(probe)) == sorted(
            single.index_named(name).row_keys(probe)
        )
    assert list(batched.ordered_primary().range_row_keys(0, 60)) == list(
        single.ordered_primary().range_row_keys(0, 60)
    )
    batched.check_invariants()
    assert len(view.rows) == 60  # the snapshot's view kept its rows
    view.check_invariants()
    before = dict(batched.rows)
    with pytest.raises(KeyError):
        batched.delete_many([1, 0])  # 0 is gone: nothing is removed
    assert batched.rows == before


@pytest.mark.parametrize("loop", ["compiled", "python"])
@pytest.mark.parametrize("ordered", [False, True])
def test_apply_net_effect_matches_delete_then_insert_one_by_one(ordered, loop, monkeypatch):
    """``apply_net_effect`` (replay's overlay flush) leaves the rows, their order, the
    indexes and the text bytes that deleting the touched keys and inserting the newest
    rows one by one leave: rows replaced with their indexed columns unchanged and changed,
    rows deleted, rows new, an optional text column, a snapshot's view sharing the
    structures; with an ordered view built (``ordered``), by the general path. Both with
    its loop compiled (``_rows.net_effect_pass``) and in Python."""
    if loop == "compiled" and table_module._net_effect_pass is None:
        pytest.skip(
            "the compiled row helper (datastore/_rows.pyx) is not built here (no Cython or "
            "C compiler at install time, or COSMICTRON_PURE=1); the Python loop is tested"
        )
    if loop == "python":
        monkeypatch.setattr(table_module, "_net_effect_pass", None)
    schema = TableSchema(
        "item",
        (
            ColumnSchema("id", t.I64),
            ColumnSchema("owner", t.STR),
            ColumnSchema("n", t.I64),
            ColumnSchema("note", t.OptionalType(t.STR)),
        ),
        primary_key=("id",),
        indexes=(IndexSchema("owner", ("owner",), "hash"), IndexSchema("n", ("n",))),
    )
    rows = [(i, f"o{i % 3}", i % 5, None if i % 2 else "x" * i) for i in range(60)]
    deleted = object()
    changes: dict = {}
    for i in range(0, 60, 3):  # same indexed values, another note
        changes[i] = (i, f"o{i % 3}", i % 5, "changed")
    for i in range(1, 60, 6):  # the owner index's key changes
        changes[i] = (i, "moved", i % 5, None)
    for i in range(2, 60, 5):  # deleted (some of them replaced above: the last word counts)
        changes[i] = deleted
    for i in range(100, 110):  # new keys, one of them deleted again in the run
        changes[i] = (i, "new", i % 5, "n")
    changes[105] = deleted
    batched, single = Table(schema), Table(schema)
    for table in (batched, single):
        table.insert_many(rows)
        if ordered:
            list(table.index_named("n").range_row_keys(1, 3))
    view = batched.share()
    batched.apply_net_effect(changes, deleted)
    for key in changes:
        if key in single.rows:
            single.delete(key)
    for row in changes.values():
        if row is not deleted:
            single.insert(row)
    assert list(batched.rows.items()) == list(single.rows.items())
    assert batched.estimated_bytes == single.estimated_bytes
    for name, probes in (("owner", ("o0", "o1", "o2", "moved", "new")), ("n", range(5))):
        for probe in probes:
            assert sorted(batched.index_named(name).row_keys(probe)) == sorted(
                single.index_named(name).row_keys(probe)
            )
    batched.check_invariants()
    assert list(view.rows.items()) == [(row[0], row) for row in rows]  # the view kept its own
    view.check_invariants()


needs_rows_helper = pytest.mark.skipif(
    table_module._untrack_atomic is None,
    reason="the compiled row helper (datastore/_rows.pyx) is not built here (no Cython or "
    "C compiler at install time, or COSMICTRON_PURE=1); the collector untracks rows itself",
)


@needs_rows_helper
def test_a_bulk_insert_leaves_atomic_rows_and_the_table_dict_to_reference_counting():
    """The rule is CPython's own (``_PyTuple_MaybeUntrack``): a row that holds a list, or a
    tracked tuple, stays tracked, and so does the dict that holds it."""
    schema = TableSchema(
        "item",
        (ColumnSchema("id", t.I64), ColumnSchema("tags", t.ListType(t.STR))),
        primary_key=("id",),
    )
    atomic, nested = Table(schema), Table(schema)
    atomic.insert_many([(i, f"t{i}") for i in range(100)])
    assert not any(gc.is_tracked(row) for row in atomic.rows.values())
    assert not gc.is_tracked(atomic.rows)
    inner = tuple([[1]])  # a tracked tuple (it holds a list)
    nested.insert_many([(1, ["a"]), (2, inner), (3, "plain")])
    assert gc.is_tracked(nested.rows[1]) and gc.is_tracked(nested.rows[2])
    assert not gc.is_tracked(nested.rows[3])
    assert gc.is_tracked(nested.rows)


def test_cosmictron_pure_turns_the_row_helper_off():
    code = (
        "from cosmictron.datastore import table; "
        "print(table._untrack_atomic is None and table._net_effect_pass is None)"
    )
    env = {**os.environ, "COSMICTRON_PURE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True"
