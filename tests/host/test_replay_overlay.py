"""Replay applies runs of small transactions by net effect (``records.ReplayOverlay``).

The state it rebuilds, down to the order of each table's rows and its indexes, must be
what applying the same records one at a time gives; a record that inserts a key the
table already holds is refused, as it was one at a time.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import cosmictron
from cosmictron import DurabilityConfig
from cosmictron.datastore import Datastore
from cosmictron.durability import TX_RECORD_KIND, PersistenceConfig, PersistenceLayer
from cosmictron.durability.record import Record
from cosmictron.errors import CorruptLog
from cosmictron.host import records as records_module
from cosmictron.host import recovery as recovery_module
from cosmictron.host.records import ReplayOverlay, apply_record_body
from cosmictron.host.recovery import _APART
from cosmictron.ledger.record_format import LEDGER_KINDS

MODULE = """
from cosmictron import ReducerContext, field, reducer, table

@table(name="item", indexes=[])
class Item:
    id: int = field(primary_key=True)
    owner: str = field(default="", index="hash")
    qty: int = 0

@table(name="tag")
class Tag:
    word: str = ""

@reducer
def put(ctx: ReducerContext, id: int, owner: str, qty: int) -> None:
    row = ctx.db.item.id.find(id)
    if row is None:
        ctx.db.item.insert(Item(id=id, owner=owner, qty=qty))
    else:
        row.owner, row.qty = owner, qty
        ctx.db.item.id.update(row)

@reducer
def drop(ctx: ReducerContext, id: int) -> None:
    ctx.db.item.id.delete(id)

@reducer
def tag(ctx: ReducerContext, word: str, keep: bool) -> None:
    if keep:
        ctx.db.tag.insert(Tag(word=word))
    else:
        ctx.db.tag.delete(Tag(word=word))
"""

NEVER = DurabilityConfig.from_profile("development")


def write_history(path: Path, seed: int) -> None:
    module = path.parent / "module.py"
    module.write_text(MODULE)
    rng = random.Random(seed)
    with cosmictron.Database.open(path, module=str(module), durability=NEVER) as db:
        for _ in range(600):
            choice = rng.random()
            key = rng.randrange(60)
            if choice < 0.6:
                db.call("put", key, f"owner-{rng.randrange(5)}", rng.randrange(100))
            elif choice < 0.8:
                db.call("drop", key)
            else:
                db.call("tag", f"w{rng.randrange(8)}", rng.random() < 0.6)


def records_of(path: Path) -> list:
    layer = PersistenceLayer(PersistenceConfig(data_dir=str(path)), NEVER)
    try:
        return list(layer.recover().records)
    finally:
        layer.close()


def use_loop(loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replay with the compiled loop (``host/_replay.pyx``) or the Python one."""
    if loop == "compiled" and not records_module.REPLAY_COMPILED:
        pytest.skip(
            "the compiled replay loop (host/_replay.pyx) is not built here (no Cython or C "
            "compiler at install time, or COSMICTRON_PURE=1); the Python loop is tested"
        )
    if loop == "python":
        monkeypatch.setattr(recovery_module, "REPLAY_COMPILED", False)
        monkeypatch.setattr(records_module, "_take", None)


@pytest.mark.parametrize("loop", ["compiled", "python"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_overlay_rebuilds_what_one_record_at_a_time_does(
    tmp_path: Path, seed: int, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_loop(loop, monkeypatch)
    path = tmp_path / "db"
    write_history(path, seed)
    with cosmictron.Database.open(path) as db:
        schema = db.core.datastore.schema
        replayed = {t.name: list(t.rows.items()) for t in db.core.datastore}
        for table in db.core.datastore:
            table.check_invariants()
    one_by_one = Datastore(schema)
    for record in records_of(path):
        if record.kind == TX_RECORD_KIND:
            apply_record_body(one_by_one, record.body)
    assert replayed == {t.name: list(t.rows.items()) for t in one_by_one}
    assert replayed["item"] and replayed["tag"]  # the history left rows in both


def test_a_record_inserting_a_held_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    write_history(path, 4)
    with cosmictron.Database.open(path) as db:
        datastore = db.core.datastore
        row = next(iter(datastore.tables["item"].rows.values()))
        overlay = ReplayOverlay(datastore)
        body = [0, b"", None, "put", [], [["item", [list(row)], []]], []]
        with pytest.raises(CorruptLog, match="already holds"):
            overlay.add(body)
        fresh = [10_000, "x", 1]
        overlay.add([0, b"", None, "put", [], [["item", [fresh], []]], []])
        with pytest.raises(CorruptLog, match="already holds"):
            overlay.add([0, b"", None, "put", [], [["item", [fresh], []]], []])


@pytest.mark.parametrize("loop", ["compiled", "python"])
def test_a_run_inserting_a_held_key_is_refused_by_take_as_by_add(
    tmp_path: Path, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``take`` stops at a record it does not handle (the table's first, a schedule, a
    bulk load) and refuses a held key with ``add``'s error; without the compiled loop it
    takes nothing and the caller's loop applies each record."""
    use_loop(loop, monkeypatch)
    path = tmp_path / "db"
    write_history(path, 6)
    with cosmictron.Database.open(path) as db:
        datastore = db.core.datastore
        held = next(iter(datastore.tables["item"].rows.values()))
        overlay = ReplayOverlay(datastore)

        def record(offset: int, rows: list, reducer: str = "put") -> Record:
            body = [0, b"", None, reducer, [], [["item", rows, []]], []]
            return Record(offset, TX_RECORD_KIND, b"", body, b"")

        fresh = [[10_000 + i, "x", i] for i in range(4)]
        batch = [record(1, [fresh[0]]), record(2, [fresh[1]]), record(3, [fresh[2]])]
        batch.append(record(4, [fresh[3]], reducer="__bulk_insert__"))
        assert overlay.take(batch, 0, LEDGER_KINDS, _APART) == (0, None)  # not started
        overlay.add(batch[0].body)
        stop, last = overlay.take(batch, 1, LEDGER_KINDS, _APART)
        if loop == "compiled":
            assert (stop, last) == (3, batch[2])  # stops at the bulk load
        else:
            assert (stop, last) == (1, None)
        with pytest.raises(CorruptLog, match="already holds"):
            overlay.take([record(5, [list(held)])], 0, LEDGER_KINDS, _APART)
            overlay.add([0, b"", None, "put", [], [["item", [list(held)], []]], []])
        with pytest.raises(CorruptLog, match="already holds"):
            overlay.take([record(6, [fresh[0]])], 0, LEDGER_KINDS, _APART)
            overlay.add([0, b"", None, "put", [], [["item", [fresh[0]], []]], []])


def test_a_record_naming_an_unknown_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    write_history(path, 5)
    with cosmictron.Database.open(path) as db:
        overlay = ReplayOverlay(db.core.datastore)
        with pytest.raises(CorruptLog, match="lacks"):
            overlay.add([0, b"", None, "put", [], [["nope", [[1]], []]], []])
