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


@pytest.mark.parametrize("loop", ["compiled", "python"])
def test_a_record_inserting_a_held_key_is_refused(
    tmp_path: Path, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By ``add``, and by ``take`` with the same error. ``take`` passes ledger records
    over and stops at a record it does not handle (the table's first, a bulk load);
    without the compiled loop it takes nothing and the caller's loop applies each."""
    use_loop(loop, monkeypatch)
    path = tmp_path / "db"
    write_history(path, 4)
    with cosmictron.Database.open(path) as db:
        datastore = db.core.datastore
        held = list(next(iter(datastore.tables["item"].rows.values())))
        overlay = ReplayOverlay(datastore)

        def record(offset: int, row: list, reducer: str = "put") -> Record:
            body = [0, b"", None, reducer, [], [["item", [row], []]], []]
            return Record(offset, TX_RECORD_KIND, b"", body, b"")

        with pytest.raises(CorruptLog, match="already holds"):
            overlay.add(record(1, held).body)
        fresh = [[10_000 + i, "x", i] for i in range(4)]
        ledger = Record(3, min(LEDGER_KINDS), b"", [], b"")
        batch = [record(1, fresh[0]), record(2, fresh[1]), ledger, record(4, fresh[2])]
        batch.append(record(5, fresh[3], reducer="__bulk_insert__"))
        overlay = ReplayOverlay(datastore)
        assert overlay.take(batch, 0, LEDGER_KINDS, _APART) == (0, None)  # not started
        overlay.add(batch[0].body)
        stop, last = overlay.take(batch, 1, LEDGER_KINDS, _APART)
        assert (stop, last) == ((4, batch[3]) if loop == "compiled" else (1, None))
        for row in (held, fresh[0]):  # held by the table; inserted by the run
            with pytest.raises(CorruptLog, match="already holds"):
                if loop == "compiled":
                    overlay.take([record(6, row)], 0, LEDGER_KINDS, _APART)
                else:
                    assert overlay.take([record(6, row)], 0, LEDGER_KINDS, _APART) == (0, None)
                    overlay.add(record(6, row).body)


def test_a_record_naming_an_unknown_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    write_history(path, 5)
    with cosmictron.Database.open(path) as db:
        overlay = ReplayOverlay(db.core.datastore)
        with pytest.raises(CorruptLog, match="lacks"):
            overlay.add([0, b"", None, "put", [], [["nope", [[1]], []]], []])
