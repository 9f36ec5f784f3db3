"""Module languages benchmark: the same insert reducer in Python, WASM (Rust) and JavaScript.

    .venv/bin/python bench/modules.py [--quick] [--out bench/results/modules.json] [--tmpdir DIR]

Each language's module (``MODULES``: bench/modules_app.py and its Rust twin
guest/rust/examples/bench_insert, built by scripts/build-guests) is opened in an
embedded ``Database`` under the ``development`` profile (no fsync: the figures are the
module's cost, not the disk's), and ``calls`` calls are made, one transaction each:

- ``insert``: ``add_item(id, name, qty)``, one row into a three-column table;
- ``noop``: a reducer that does nothing (what a call costs before any work).

Rates are the best of three runs, in transactions per second, with each one's ratio to
Python's insert (the peer, measured in the same run). The per-call overhead of a WASM
call is then broken down, in microseconds, by timing its parts alone:

- ``host_transaction``: Python's noop call (binding, lock, transaction, commit record);
- ``guest_call``: WASM noop minus Python noop (what calling into the guest adds), of which
  ``engine_call`` (``WasmtimeEngine.call``: the whole trip, guest work included), and
  inside it ``reducer_export_call`` (the reducer's export called the way the engine calls
  it, through wasmtime's unchecked call: the crossing plus the guest reading its frame),
  ``set_fuel`` (refilling the call's fuel), ``frame_io`` (writing the call frame into
  guest memory and reading the result frame); outside it ``msgpack`` (encoding the frame,
  decoding the result) and the rest of ``module/guest.py``'s bridge. For comparison,
  ``wasmtime_py_checked_call`` is one call of a trivial export through wasmtime-py's
  ordinary ``Func.__call__``, which the engine avoids;
- ``insert_work``: each language's insert minus its noop (the row's way into the table:
  in WASM, encoding it in the guest, the result frame, decoding and checking it).

JavaScript runs bench/modules_app.js on QuickJS (``js_quickjs``) and V8 (``js_v8``; a
tenth of the calls, it is that much slower). Its call is broken down the same way
(``js_breakdown_us``, per engine): ``guest_call`` (the JS noop minus Python's),
``engine_call`` (the whole ``engine.call``), ``run`` (one run of the reducer in the
engine: the crossing, the SDK decoding the frame and encoding the result), of which
``bare_call`` (calling a trivial JS function through the binding: the crossing alone);
``stuffing`` (QuickJS: the NUL-free byte stuffing of frames both ways); ``msgpack``
(as for WASM); ``insert_work`` (insert minus noop).

Prints a table and writes JSON; nothing is asserted. See bench/README.md, "Module
languages".
"""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    fmt,
    machine_info,
    parse_args,
    run_took,
    temp_parent,
    text_table,
    write_results,
)

import cosmictron  # noqa: E402
from cosmictron.module import abi, js  # noqa: E402
from cosmictron.module.guest import GuestLimits  # noqa: E402
from cosmictron.module.wasm import WasmtimeEngine  # noqa: E402

WASM = ROOT / "guest" / "rust" / "target" / "wasm32-unknown-unknown" / "release"


def js_module(engine: str) -> Path:
    """bench/modules_app.js stamped with ``engine``, as a deploy would record it."""
    directory = Path(tempfile.mkdtemp(prefix="cosmictron-bench-js-"))
    atexit.register(shutil.rmtree, directory, True)
    path = directory / f"modules_app_{engine}.js"
    path.write_bytes(js.stamp((HERE / "modules_app.js").read_bytes(), engine))
    return path


MODULES: dict[str, Callable[[], Path]] = {
    "python": lambda: HERE / "modules_app.py",
    "wasm": lambda: built(WASM / "bench_insert.wasm"),
    "js_quickjs": lambda: js_module("quickjs"),
    "js_v8": lambda: js_module("v8"),
}
CALL_SHARE = {"js_v8": 0.1}
"""Languages measured on fewer calls than the rest (rates stay comparable)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    calls: int = 20_000
    repeats: int = 3
    profile: str = "development"


def built(path: Path) -> Path:
    """The guest, built first by scripts/build-guests (a no-op when it is current)."""
    subprocess.run([str(ROOT / "scripts" / "build-guests")], check=True)
    return path


def best_rate(n: int, run: Callable[[], None], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return n / best


def per_call_us(n: int, run: Callable[[], None], repeats: int) -> float:
    return 1e6 / best_rate(n, run, repeats)


def measure_language(
    path: Path, directory: Path, settings: Settings, share: float = 1.0
) -> dict[str, float]:
    durability = cosmictron.DurabilityConfig.from_profile(settings.profile)
    db = cosmictron.Database.open(directory, module=str(path), durability=durability)
    n, repeats = max(1, int(settings.calls * share)), settings.repeats
    next_id = [0]
    try:

        def inserts() -> None:
            start = next_id[0]
            for i in range(start, start + n):
                db.call("add_item", i, "widget", i)
            next_id[0] = start + n

        def noops() -> None:
            for _ in range(n):
                db.call("noop")

        db.call("noop")  # warm: the first call instantiates a guest
        return {"insert": best_rate(n, inserts, repeats), "noop": best_rate(n, noops, repeats)}
    finally:
        db.close()


class _NoHost:
    def ops(self, request: bytes) -> bytes:
        raise AssertionError("the noop reducer calls no host function")


def wasm_parts(path: Path, settings: Settings) -> dict[str, float]:
    """The pieces of one WASM call, each timed alone (microseconds per call)."""
    source = path.read_bytes()
    engine = WasmtimeEngine(source, str(path), GuestLimits())
    n, repeats = settings.calls, settings.repeats
    frame_values = [0, [], bytes(32), None, 1_700_000_000_000_000, bytes(32), 12345]
    frame = abi.pack(frame_values)
    host = _NoHost()
    engine.call("noop", frame, host)  # instantiate
    store, exports = engine._instance()
    alloc = exports["cosmictron_alloc"]
    entry = exports["cosmictron_reducer_noop"]
    memory = exports["memory"]
    result = engine.call("noop", frame, host)
    pointer, _ = engine._input

    from cosmictron.module import wasm as wasm_module

    def bare_calls() -> None:
        for _ in range(n):
            alloc(store, 0)

    def raw_calls() -> None:
        for _ in range(n):
            entry(store, pointer, len(frame))

    def fuel() -> None:
        for _ in range(n):
            store.set_fuel(1_000_000)

    def frame_io() -> None:
        for _ in range(n):
            wasm_module._write(store, memory, pointer, frame)
            wasm_module._read(store, memory, pointer, len(result))

    def codec() -> None:
        for _ in range(n):
            abi.pack(frame_values)
            abi.unpack(result, "result frame")

    def whole() -> None:
        for _ in range(n):
            engine.call("noop", frame, host)

    parts = {
        "wasmtime_py_checked_call": per_call_us(n, bare_calls, repeats),
        "reducer_export_call": per_call_us(n, raw_calls, repeats),
        "set_fuel": per_call_us(n, fuel, repeats),
        "frame_io": per_call_us(n, frame_io, repeats),
        "msgpack": per_call_us(n, codec, repeats),
        "engine_call": per_call_us(n, whole, repeats),
    }
    engine.close()
    return parts


def js_parts(engine_name: str, settings: Settings, share: float) -> dict[str, float]:
    """The pieces of one JavaScript call, each timed alone (microseconds per call)."""
    source = (HERE / "modules_app.js").read_bytes()
    engine = js.load_js(js.stamp(source, engine_name), "modules_app.js")
    n, repeats = max(1, int(settings.calls * share)), settings.repeats
    frame_values = [1, [], bytes(32), None, 1_700_000_000_000_000, bytes(32), 12345]
    frame = abi.pack(frame_values)
    host = _NoHost()
    result = engine.call("noop", frame, host)
    if engine_name == "quickjs":
        engine._context()
        bare = engine._local.context.eval("(function () { return 0; })")
    else:
        engine._instance()
        bare = engine._racer.eval("(function () { return 0; })")

    def bare_calls() -> None:
        for _ in range(n):
            bare()

    def runs() -> None:
        for _ in range(n):
            engine._run(1, frame, b"", 10.0)

    def stuffing() -> None:
        for _ in range(n):
            js._unstuff(js._stuff(frame))
            js._unstuff(js._stuff(result))

    def codec() -> None:
        for _ in range(n):
            abi.pack(frame_values)
            abi.unpack(result, "result frame")

    def whole() -> None:
        for _ in range(n):
            engine.call("noop", frame, host)

    parts = {
        "engine_call": per_call_us(n, whole, repeats),
        "run": per_call_us(n, runs, repeats),
        "bare_call": per_call_us(n, bare_calls, repeats),
        "msgpack": per_call_us(n, codec, repeats),
    }
    if engine_name == "quickjs":
        parts["stuffing"] = per_call_us(n, stuffing, repeats)
    engine.close()
    return parts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__ or "", "modules.json", argv, quick_help="2,000 calls, seconds")
    started = time.perf_counter()
    if args.smoke:  # every path once, figures meaningless (the test suite's run)
        settings = Settings(calls=200, repeats=1)
    else:
        settings = Settings(calls=2_000 if args.quick else 20_000)
    rates: dict[str, dict[str, float]] = {}
    with temp_parent(args.tmpdir, "cosmictron-bench-modules-") as parent:
        machine = machine_info(parent)
        for language, module in MODULES.items():
            share = CALL_SHARE.get(language, 1.0)
            rates[language] = measure_language(module(), Path(parent) / language, settings, share)
        parts = wasm_parts(MODULES["wasm"](), settings)
        js_breakdown = {
            engine: js_parts(engine, settings, CALL_SHARE.get(f"js_{engine}", 1.0))
            for engine in js.ENGINES
        }
    peer = rates["python"]["insert"]
    python_noop_us = 1e6 / rates["python"]["noop"]
    breakdown = {
        "host_transaction": python_noop_us,
        "guest_call": 1e6 / rates["wasm"]["noop"] - python_noop_us,
        **parts,
        "insert_work_python": 1e6 / rates["python"]["insert"] - python_noop_us,
        "insert_work_wasm": 1e6 / rates["wasm"]["insert"] - 1e6 / rates["wasm"]["noop"],
    }
    results: dict[str, Any] = {
        language: {
            "insert_tx_per_s": figures["insert"],
            "noop_tx_per_s": figures["noop"],
            "insert_over_python": figures["insert"] / peer,
        }
        for language, figures in rates.items()
    }
    results["wasm_breakdown_us"] = breakdown
    for engine, engine_parts in js_breakdown.items():
        figures = rates[f"js_{engine}"]
        engine_parts["guest_call"] = 1e6 / figures["noop"] - python_noop_us
        engine_parts["insert_work"] = 1e6 / figures["insert"] - 1e6 / figures["noop"]
    results["js_breakdown_us"] = js_breakdown
    rows = [
        [language, fmt(f["insert"]), fmt(f["noop"]), f"{f['insert'] / peer:.2f}x"]
        for language, f in rates.items()
    ]
    print(text_table(["module", "insert tx/s", "noop tx/s", "insert vs python"], rows))
    print()
    print(
        text_table(
            ["WASM call, part", "µs per call"], [[k, f"{v:.1f}"] for k, v in breakdown.items()]
        )
    )
    for engine, engine_parts in js_breakdown.items():
        print()
        print(
            text_table(
                [f"JS call on {engine}, part", "µs per call"],
                [[k, f"{v:.1f}"] for k, v in engine_parts.items()],
            )
        )
    print(run_took(started, args.mode))
    write_results(args.out, "modules", args.mode, settings, machine, started, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
