"""JavaScript modules embedded (no server): the recorded form, crossings, threads, limits.

The server tests (test_js_server.py) and the conformance suite cover behaviour seen by
clients; these pin what the design promises underneath: the engine is part of the
recorded bytes, a reducer that only writes crosses into the host once, reads cost one
run each, QuickJS's stack bound holds on any thread, and the round-trip bound holds.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import cosmictron
from cosmictron import limits
from cosmictron.errors import ReducerFailed, SchemaError
from cosmictron.module import js

ENGINES = ("quickjs", "v8")

MODULE = b"""
const { table, reducer, t, log } = cosmictron;
table({ name: "item", public: true }, { id: t.i64.primaryKey().autoInc(), qty: t.i64 });
reducer("add", { qty: t.i64 }, (ctx, qty) => { ctx.db.item.insert({ qty }); log.info("added"); });
reducer("add_id", { qty: t.i64 }, t.i64, (ctx, qty) => ctx.db.item.insert({ qty }).id);
reducer("reads", { n: t.i64 }, t.i64, (ctx, n) => {
  let total = 0;
  for (let i = 0; i < n; i++) total += ctx.db.item.count();
  return total;
});
const { msgpack } = cosmictron;
const none = new Uint8Array(0);
const echoed = { data: t.bytes, text: t.str, big: t.u64 };
reducer("echo", echoed, t.list(t.bytes), (ctx, data, text, big) =>
  [data, msgpack.decode(msgpack.encode(text)) === text ? data : none,
   big === 18446744073709551615n ? data : none]);
reducer("deep", { n: t.i64 }, t.i64, (ctx, n) => {
  const f = (k) => (k === 0 ? 0 : 1 + f(k - 1));
  return f(n);
});
"""


def test_stamping_names_the_engine_once() -> None:
    stamped = js.stamp(b"let x = 1;\n", "v8")
    assert stamped == b"// cosmictron-js engine=v8\nlet x = 1;\n"
    assert js.engine_of(stamped) == "v8" and js.is_js(stamped)
    assert js.stamp(stamped, "quickjs") == b"// cosmictron-js engine=quickjs\nlet x = 1;\n"
    assert js.stamp(stamped) == stamped  # no engine asked: keep the recorded one
    assert js.engine_of(js.stamp(b"x")) == js.DEFAULT_ENGINE
    assert js.is_js(b"let x;", "app.js") and not js.is_js(b"let x;", "app.py")
    with pytest.raises(SchemaError, match="not one of quickjs, v8"):
        js.stamp(b"x", "rhino")


@pytest.mark.parametrize("engine", ENGINES)
def test_the_recorded_module_reopens_on_its_engine(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(js.stamp(MODULE, engine))
    db = cosmictron.Database.open(tmp_path / "data", module=str(path))
    try:
        assert db.call("add_id", 5) == 1
    finally:
        db.close()
    recorded = (tmp_path / "data" / "module" / "module.py").read_bytes()
    assert js.engine_of(recorded) == engine
    db = cosmictron.Database.open(tmp_path / "data")
    try:
        assert runs(db, lambda: db.call("add_id", 6))[0] == 2
        assert engine_of(db).kind == engine
    finally:
        db.close()


def engine_of(db: Any) -> Any:
    return db.core.module.namespace.__cosmictron_runtime__.engine


def runs(db: Any, action: Any) -> tuple[Any, int]:
    """``action()``'s value and how many times it ran a guest reducer (host crossings)."""
    engine = engine_of(db)
    original = engine._run
    count = [0]

    def counted(*args: Any) -> Any:
        count[0] += 1
        return original(*args)

    engine._run = counted
    try:
        return action(), count[0]
    finally:
        del engine._run


@pytest.mark.parametrize("engine", ENGINES)
def test_writes_cross_once_and_each_read_adds_one_run(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(js.stamp(MODULE, engine))
    db = cosmictron.Database.open(tmp_path / "data", module=str(path))
    try:
        assert runs(db, lambda: db.call("add", 1)) == (None, 1)  # buffered insert and log
        assert runs(db, lambda: db.call("add_id", 1)) == (2, 2)  # reading the id: one more
        assert runs(db, lambda: db.call("reads", 3)) == (6, 4)
        assert [r[1] for r in db.sql("SELECT * FROM item").rows] == [1, 1]
    finally:
        db.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_round_trips_are_bounded(
    tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "js_host_round_trips_max", 3)
    path = tmp_path / "app.js"
    path.write_bytes(js.stamp(MODULE, engine))
    db = cosmictron.Database.open(tmp_path / "data", module=str(path))
    try:
        assert db.call("reads", 3) == 0
        with pytest.raises(ReducerFailed, match=r"more than 3 host round trips") as failed:
            db.call("reads", 4)
        assert failed.value.cause_type == "GuestAbiError"
    finally:
        db.close()


def test_quickjs_runs_calls_from_any_thread_with_its_stack_bound(tmp_path: Path) -> None:
    """The server calls reducers from its call workers and deploys from a thread pool:
    QuickJS's stack bound must follow the calling thread (a bound measured against
    another thread's stack would overflow at once, or never)."""
    path = tmp_path / "app.js"
    path.write_bytes(js.stamp(MODULE, "quickjs"))
    db = cosmictron.Database.open(tmp_path / "data", module=str(path))
    results: list[Any] = []
    try:
        results.append(db.call("deep", 500))
        worker = threading.Thread(target=lambda: results.append(db.call("deep", 500)))
        worker.start()
        worker.join()
        assert results == [500, 500]
        with pytest.raises(ReducerFailed, match="stack overflow"):  # js_stack_bytes_max
            db.call("deep", 10_000_000)
        assert db.call("deep", 10) == 10
    finally:
        db.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_every_byte_and_character_crosses_intact(tmp_path: Path, engine: str) -> None:
    """QuickJS's strings cross as C strings, so frames are byte-stuffed around NUL and
    \\x01; V8's carry lengths. Either way every byte value and any text must survive."""
    path = tmp_path / "app.js"
    path.write_bytes(js.stamp(MODULE, engine))
    db = cosmictron.Database.open(tmp_path / "data", module=str(path))
    try:
        every = bytes(range(256)) + b"\x01\x01\x02\x00\x01\x00\x02\x01"
        text = "nul \x00 one \x01 two \x02 é 漢字 🎉"
        assert db.call("echo", every, text, 2**64 - 1) == [every, every, every]
        assert db.call("echo", b"", "", 2**64 - 1) == [b"", b"", b""]
    finally:
        db.close()


BUNDLED = b"""
"use strict";
var import_cosmictron = require("cosmictron");
const { table, reducer, t } = import_cosmictron;
table({ name: "x", public: true }, { id: t.i64.primaryKey() });
reducer("put", { id: t.i64 }, t.i64, (ctx, id) => {
  ctx.db.x.insert({ id });
  return ctx.db.x.count();
});
module.exports = { ignored: true };
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bundlers_commonjs_output_loads(tmp_path: Path, engine: str) -> None:
    """The TypeScript path's output (esbuild --format=cjs, cosmictron external): it
    requires "cosmictron" and assigns module.exports."""
    path = tmp_path / "bundle.js"
    path.write_bytes(js.stamp(BUNDLED, engine))
    db = cosmictron.Database.open(tmp_path / "data", module=str(path))
    try:
        assert db.call("put", 3) == 1
    finally:
        db.close()
