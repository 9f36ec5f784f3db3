"""JavaScript guest modules: two ``GuestEngine`` s, V8 (``mini-racer``) and QuickJS.

A JavaScript module is a script written against the SDK in ``cosmictron.js`` (this
directory; ``guest/js/cosmictron.js`` in the repository), which implements the guest side
of the module ABI in JavaScript: the description, msgpack frames, buffered writes. The
host evaluates the SDK, a *lockdown* that removes the clock and randomness, then the
module, in a fresh context of the module's engine, and calls ``__cosmictron_call`` once
per reducer call. Two engines:

- **QuickJS** (``quickjs`` package, interpreted; a call costs about a microsecond). Its
  strings cross as C strings, so frames are byte stuffed (``\\x01`` -> ``\\x01\\x01``,
  ``\\x00`` -> ``\\x01\\x02``).
- **V8** (``mini-racer``; a call costs hundreds of microseconds, through an asyncio loop).

Neither calls back into Python mid-run: mini-racer's Python callbacks are async only,
and the quickjs binding refuses callbacks while a time limit is set. So a reducer that
needs a read stops with the batch it needs answered; the host applies it and runs the
reducer again from the start with the answers so far, which the SDK hands back in order
instead of crossing. Reducers are deterministic (fixed timestamp, seeded randomness, no
clock), so the next run issues the same operations; a reducer with *n* reads costs
*n + 1* runs, and one that only writes costs one. A module's globals are a cache, as in
WASM: a context that faulted is replaced.

Which engine runs a module is part of its recorded bytes: ``stamp`` puts a first line
``// cosmictron-js engine=<name>`` on the source, so a module record, ``module.py`` on
disk and a backup all say how to run it again (docs/design/guest-modules.md).
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cosmictron import limits
from cosmictron.errors import SchemaError
from cosmictron.module.guest import GuestFault, GuestLimits, HostCalls

ENGINES = ("quickjs", "v8")
DEFAULT_ENGINE = "quickjs"
"""Picked on measured speed (bench/modules.py, docs/benchmarks.md): QuickJS's calls are
so much cheaper than mini-racer's that it wins for every reducer we measured."""

PRAGMA = b"// cosmictron-js engine="
_PRAGMA_LINE = re.compile(rb"\A// cosmictron-js engine=([a-z0-9]+)[ \t]*\r?\n")
JS_SUFFIXES = (".js", ".mjs", ".cjs")
ABI_DOC = "docs/reference/module-abi.md"


@dataclass(frozen=True)
class JsLimits:
    """Per-call CPU time and per-context heap of a JavaScript guest (``limits.py``)."""

    seconds: float
    heap_bytes: int

    @staticmethod
    def current() -> JsLimits:
        seconds = os.environ.get("COSMICTRON_JS_CALL_SECONDS_MAX")
        return JsLimits(
            float(seconds) if seconds else limits.js_call_seconds_max,
            limits.from_environment("COSMICTRON_JS_HEAP_BYTES_MAX", limits.js_heap_bytes_max),
        )


def engine_of(source: bytes) -> str | None:
    """The engine a stamped JavaScript module names, or None for unstamped bytes."""
    found = _PRAGMA_LINE.match(source)
    return None if found is None else found.group(1).decode()


def is_js(source: bytes, filename: str = "") -> bool:
    """A stamped JavaScript module, or unstamped bytes under a ``.js`` file name."""
    if source.startswith(PRAGMA):
        return True
    return filename.lower().endswith(JS_SUFFIXES) and source[:4] != b"\0asm"


def stamp(source: bytes, engine: str | None = None) -> bytes:
    """The module's recorded form: the engine's line, then the source (without any earlier
    line of ours). ``engine`` None keeps the one the source names, else the default.

    Raises:
        SchemaError: ``engine`` is not one of ``ENGINES``.
    """
    named = engine_of(source)
    chosen = engine or named or DEFAULT_ENGINE
    if chosen not in ENGINES:
        raise SchemaError(
            f"JavaScript engine {chosen!r} is not one of {', '.join(ENGINES)} "
            f"(docs/guide/javascript-modules.md)"
        )
    body = source if named is None else source[_PRAGMA_LINE.match(source).end() :]  # type: ignore[union-attr]
    return PRAGMA + chosen.encode() + b"\n" + body


def sdk_source() -> str:
    return resources.files("cosmictron.module").joinpath("cosmictron.js").read_text("utf-8")


# Evaluated after the SDK and before the module: no clock, no randomness, no timers, no
# WebAssembly (V8 would give a guest a second, unmetered memory).
LOCKDOWN = r"""
(function (g) {
  "use strict";
  const refuse = (what, instead) => function () {
    throw new Error(what + ": JavaScript modules have no clock, randomness, files or network " +
      "beyond the module ABI (" + instead + ")");
  };
  const RealDate = g.Date;
  function Date(...args) {
    if (!new.target || args.length === 0) refuse("Date()", "use ctx.timestamp")();
    return new RealDate(...args);
  }
  Date.prototype = RealDate.prototype;
  Date.UTC = RealDate.UTC;
  Date.parse = RealDate.parse;
  Date.now = refuse("Date.now()", "use ctx.timestamp");
  Object.defineProperty(g, "Date", { value: Date, writable: false, configurable: false });
  Object.defineProperty(Math, "random", { value: refuse("Math.random()", "use ctx.random()"),
    writable: false, configurable: false });
  for (const name of ["setTimeout", "clearTimeout", "setInterval", "clearInterval",
                      "queueMicrotask", "performance", "WebAssembly", "fetch", "os", "std",
                      "SharedArrayBuffer", "Atomics"]) {
    try { delete g[name]; } catch (e) {}
    if (name in g) {
      Object.defineProperty(g, name, { value: undefined, writable: false, configurable: false });
    }
  }
})(globalThis);
"""

# The engine side of a call, shared by both engines. A reducer never calls Python
# mid-run (mini-racer's callbacks are async only; the quickjs binding refuses callbacks
# while a time limit is set): a read it needs answered stops the run with the batch (N),
# and the host runs it again with the answers so far, which the SDK gets back in order.
_BRIDGE = r"""
(function (g) {
  "use strict";
  const STOP = Object.freeze({ __cosmictron_stop: true, message: "stopped for the host" });
  const state = { answers: [], next: 0, need: null };
  // split/join: QuickJS runs a replace with a callback ten times slower. Every \x01 of
  // stuffed text starts a pair, so splitting on \x01\x01 first finds the right pairs.
  const stuff = (s) => s.split("\x01").join("\x01\x01").split("\x00").join("\x01\x02");
  const unstuff = (s) =>
    s.split("\x01\x01").map((p) => p.split("\x01\x02").join("\x00")).join("\x01");
  const run = g.__cosmictron_call;
  const describe = g.__cosmictron_describe;

  g.__cosmictron_host = function (batch) {
    if (state.need !== null) throw STOP;
    if (state.next < state.answers.length) return state.answers[state.next++];
    state.need = batch;
    throw STOP;
  };

  function call(position, frame, answers) {
    state.answers = [];
    for (let i = 0; i < answers.length;) {
      const colon = answers.indexOf(":", i);
      const n = Number(answers.slice(i, colon));
      state.answers.push(answers.substr(colon + 1, n));
      i = colon + 1 + n;
    }
    state.next = 0;
    state.need = null;
    let result = null;
    try {
      result = run(position, frame);
    } catch (error) {
      if (!(error && error.__cosmictron_stop)) throw error;
    }
    if (state.need !== null) return "N" + state.need;  // even if the module caught STOP
    if (result === null) throw new Error("the module swallowed the host's stop signal");
    return "R" + result;
  }

  const bridge = {
    v8_call: call,
    v8_describe: describe,
    quickjs_call: (position, frame, answers) =>
      stuff(call(position, unstuff(frame), unstuff(answers))),
    quickjs_describe: () => stuff(describe()),
  };
  Object.defineProperty(g, "__cosmictron_bridge", { value: Object.freeze(bridge) });
})(globalThis);
"""


def _stuff(data: bytes) -> str:
    return data.replace(b"\x01", b"\x01\x01").replace(b"\x00", b"\x01\x02").decode("latin-1")


def _unstuff(text: str) -> bytes:
    data = text.encode("latin-1")
    if b"\x01" not in data:
        return data
    # Every \x01 starts a pair, so splitting on \x01\x01 first finds the right pairs.
    return b"\x01".join(part.replace(b"\x01\x02", b"\x00") for part in data.split(b"\x01\x01"))


def _user_source(source: bytes, filename: str) -> str:
    try:
        return source.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(f"module {filename} is not UTF-8 JavaScript: {exc}") from None


def _first_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else "error"


def _position(frame: bytes) -> int:
    """The call frame's first element, the reducer's position (a fixint below 128)."""
    if frame[1] < 0x80:
        return frame[1]
    import msgpack

    return int(msgpack.unpackb(frame, raw=False)[0])


class _JsEngine:
    """What both engines share: the run-until-answered loop of one reducer call."""

    kind = "js"

    def __init__(self, source: bytes, filename: str) -> None:
        self.filename = filename
        self.code = _user_source(source, filename)
        self.limits = JsLimits.current()
        self._lock = threading.RLock()

    def _run(self, position: int, frame: bytes, answers: bytes, seconds: float) -> bytes:
        """One run of at most ``seconds``: ``R`` + the result frame, or ``N`` + the batch
        the run needs answered."""
        raise NotImplementedError

    def _discard(self) -> None:
        raise NotImplementedError

    def call(self, reducer: str, frame: bytes, host: HostCalls) -> bytes:
        with self._lock:
            position = _position(frame)
            answers = b""
            runs = 0
            # The runs of one call (and the host work between them) share its time limit.
            deadline = time.monotonic() + self.limits.seconds
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._discard()
                    raise _timeout(self.limits)
                result = self._run(position, frame, answers, left)
                if result[:1] == b"R":
                    return result[1:]
                if result[:1] != b"N":
                    self._discard()
                    raise GuestFault("abi", f"returned {result[:80]!r}, not a result frame")
                runs += 1
                if runs > limits.js_host_round_trips_max:
                    raise GuestFault(
                        "abi",
                        f"needed more than {limits.js_host_round_trips_max} host round trips "
                        f"in one call (limits.js_host_round_trips_max)",
                    )
                answer = host.ops(result[1:])
                answers += str(len(answer)).encode() + b":" + answer

    def close(self) -> None:
        with self._lock:
            self._discard()


class _Slot:
    """The loaded context and its entry points (empty after a fault)."""


class QuickJsEngine(_JsEngine):
    """A JavaScript guest on QuickJS (``guest.GuestEngine``): one context, any thread
    (the binding moves QuickJS's stack bound to the calling thread on every call)."""

    kind = "quickjs"

    def __init__(self, source: bytes, filename: str, limits_: GuestLimits | None = None) -> None:
        import quickjs

        super().__init__(source, filename)
        self._quickjs = quickjs
        self._local: Any = _Slot()
        self._context()  # evaluate now: a syntax error fails the deploy

    def _context(self) -> Any:
        context = getattr(self._local, "context", None)
        if context is not None:
            return context
        quickjs = self._quickjs
        context = quickjs.Context()
        context.set_memory_limit(self.limits.heap_bytes)
        context.set_max_stack_size(limits.js_stack_bytes_max)
        context.eval(sdk_source())
        context.eval(LOCKDOWN)
        context.eval(_BRIDGE)
        context.set_time_limit(self.limits.seconds)
        try:
            context.eval(self.code)
        except Exception as exc:
            raise SchemaError(
                f"module {self.filename} failed to load: {_first_line(str(exc))}"
            ) from None
        self._local.context = context
        self._local.call = context.eval("__cosmictron_bridge.quickjs_call")
        self._local.describe = context.eval("__cosmictron_bridge.quickjs_describe")
        return context

    def describe(self) -> bytes:
        with self._lock:
            self._context()
            try:
                return _unstuff(self._local.describe())
            except Exception as exc:
                self._discard()
                raise GuestFault(
                    "trap", f"failed to describe itself: {_first_line(str(exc))}"
                ) from None

    def _run(self, position: int, frame: bytes, answers: bytes, seconds: float) -> bytes:
        self._context().set_time_limit(seconds)
        try:
            result = self._local.call(position, _stuff(frame), _stuff(answers))
        except Exception as exc:  # JSException, StackOverflow
            self._discard()
            raise _fault(str(exc), self.limits) from None
        if not isinstance(result, str):
            self._discard()
            raise GuestFault("abi", f"returned {str(result)[:80]!r}, not a result frame")
        return _unstuff(result)

    def _discard(self) -> None:
        for name in ("context", "call", "describe"):
            if hasattr(self._local, name):
                delattr(self._local, name)


class V8Engine(_JsEngine):
    """A JavaScript guest on V8 through mini-racer (``guest.GuestEngine``)."""

    kind = "v8"

    def __init__(self, source: bytes, filename: str, limits_: GuestLimits | None = None) -> None:
        super().__init__(source, filename)
        self._racer: Any = None
        self._call: Any = None
        self._describe: Any = None
        self._instance()

    def _instance(self) -> Any:
        if self._racer is not None:
            return self._racer
        from py_mini_racer import MiniRacer

        racer = MiniRacer()
        racer.set_hard_memory_limit(self.limits.heap_bytes)
        racer.eval(sdk_source())
        racer.eval(LOCKDOWN)
        racer.eval(_BRIDGE)
        try:
            racer.eval(self.code, timeout_sec=self.limits.seconds)
        except Exception as exc:
            racer.close()
            raise SchemaError(
                f"module {self.filename} failed to load: {_first_line(str(exc))}"
            ) from None
        self._call = racer.eval("__cosmictron_bridge.v8_call")
        self._describe = racer.eval("__cosmictron_bridge.v8_describe")
        self._racer = racer
        return racer

    def describe(self) -> bytes:
        with self._lock:
            self._instance()
            try:
                return str(self._describe(timeout_sec=self.limits.seconds)).encode("latin-1")
            except Exception as exc:
                self._discard()
                raise GuestFault(
                    "trap", f"failed to describe itself: {_first_line(str(exc))}"
                ) from None

    def _run(self, position: int, frame: bytes, answers: bytes, seconds: float) -> bytes:
        from py_mini_racer import JSOOMException, JSTimeoutException

        self._instance()
        try:
            result = self._call(
                position,
                frame.decode("latin-1"),
                answers.decode("latin-1"),
                timeout_sec=seconds,
            )
        except JSTimeoutException:
            self._discard()
            raise _timeout(self.limits) from None
        except JSOOMException:
            self._discard()
            raise _out_of_memory(self.limits) from None
        except Exception as exc:
            over = self._racer is not None and self._racer.was_hard_memory_limit_reached()
            self._discard()
            if over:  # V8 stops a script at its hard limit with a bare "null" error
                raise _out_of_memory(self.limits) from None
            raise _fault(str(exc), self.limits) from None
        if not isinstance(result, str):
            self._discard()
            raise GuestFault("abi", f"returned {str(result)[:80]!r}, not a result frame")
        return result.encode("latin-1")

    def _discard(self) -> None:
        racer, self._racer = self._racer, None
        self._call = self._describe = None
        if racer is not None:
            # Closed a little later: a stopped run's cancellation still reaches the
            # racer's event loop after the call returned, and must find it open.
            timer = threading.Timer(2.0, _close_quietly, (racer,))
            timer.daemon = True
            timer.start()


def _close_quietly(racer: Any) -> None:
    try:
        racer.close()
    except Exception:
        pass


def _fault(text: str, js_limits: JsLimits) -> GuestFault:
    first = _first_line(text)
    if "interrupted" in first:
        return _timeout(js_limits)
    if "out of memory" in first:  # QuickJS's InternalError
        return _out_of_memory(js_limits)
    return GuestFault("trap", f"threw: {first}")


def _timeout(js_limits: JsLimits) -> GuestFault:
    return GuestFault(
        "fuel",
        f"ran longer than {js_limits.seconds:g} s (limits.js_call_seconds_max): it ran too "
        f"long, or forever",
    )


def _out_of_memory(js_limits: JsLimits) -> GuestFault:
    return GuestFault(
        "memory",
        f"ran out of memory: its heap reached {js_limits.heap_bytes} bytes "
        f"(limits.js_heap_bytes_max)",
    )


def detect(source: bytes, filename: str) -> bool:
    return is_js(source, filename)


def load_js(source: bytes, filename: str, limits_: GuestLimits | None = None) -> Any:
    """A loaded engine for a JavaScript module (``guest.EngineFactory``): the engine its
    first line names, else the default."""
    engine = engine_of(source) or DEFAULT_ENGINE
    code = source if engine_of(source) is None else source[_PRAGMA_LINE.match(source).end() :]  # type: ignore[union-attr]
    if engine == "v8":
        return V8Engine(code, filename, limits_)
    if engine == "quickjs":
        return QuickJsEngine(code, filename, limits_)
    raise SchemaError(f"JavaScript engine {engine!r} is not one of {', '.join(ENGINES)}")
