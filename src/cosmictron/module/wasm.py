"""The wasmtime engine: a ``GuestEngine`` for WebAssembly modules.

Compiled once per distinct module: compiled code is kept in memory per process (keyed by
the module's sha256) and, when a cache directory is set (the server sets
``<data-dir>/cache/wasm``), on disk as wasmtime's serialized form, so a restart or a
replay does not compile again. One instance is reused across calls and replaced after any
trap. Each call gets ``GuestLimits.fuel`` afresh; the store caps linear memory at
``GuestLimits.memory_bytes``.

The sandbox: the only functions a guest can import are the ABI's (``cosmictron.ops`` and
``cosmictron.take``). Any other function import (WASI's files and clocks, say) is linked
to a stub that fails the call that reaches it with a message saying so, so a module built
with stray imports still loads and only that call fails; imported memories, tables and
globals are refused at deploy. There is no WASI: no files, network, clock or randomness
except through the ABI.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import wasmtime
from wasmtime import _bindings as _ffi

from cosmictron.errors import SchemaError
from cosmictron.module import abi
from cosmictron.module.guest import GuestFault, GuestLimits, HostCalls
from cosmictron.module.wasm_bytes import cache_directory

_enter_wasm: Any
try:
    from wasmtime._func import enter_wasm as _enter_wasm
except ImportError:  # a wasmtime-py without it: plain (slower) calls
    _enter_wasm = None

HOST_MODULE = "cosmictron"
REQUIRED_EXPORTS = ("memory", "cosmictron_alloc")
DESCRIBE_EXPORT = "cosmictron_describe"
DESCRIBE_SECTION = "cosmictron_describe"
CALL_EXPORT = "cosmictron_call"
REDUCER_EXPORT_PREFIX = "cosmictron_reducer_"
ABI_DOC = "docs/reference/module-abi.md"

_PAGE = 65536
_ENGINE_LOCK = threading.Lock()
_ENGINE: wasmtime.Engine | None = None
_COMPILED: dict[str, wasmtime.Module] = {}
WASMTIME_VERSION = importlib.metadata.version("wasmtime")
"""Compiled code is only valid for the wasmtime that made it: part of the cache key."""


def shared_engine() -> wasmtime.Engine:
    """The process's one wasmtime engine (fuel metering on); compiled code is per engine."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            config = wasmtime.Config()
            config.consume_fuel = True
            _ENGINE = wasmtime.Engine(config)
        return _ENGINE


def compiled_module(source: bytes, filename: str) -> wasmtime.Module:
    """The compiled module for ``source``: from memory, the disk cache, or compiled now.

    Raises:
        SchemaError: the bytes are not a valid WebAssembly module.
    """
    engine = shared_engine()
    digest = hashlib.sha256(source).hexdigest()
    with _ENGINE_LOCK:
        module = _COMPILED.get(digest)
    if module is not None:
        return module
    cached = _cache_path(digest)
    if cached is not None and cached.exists():
        try:
            module = wasmtime.Module.deserialize_file(engine, str(cached))
        except Exception:
            module = None  # stale or damaged: compile again and overwrite
    if module is None:
        try:
            module = wasmtime.Module(engine, source)
        except Exception as exc:
            raise SchemaError(f"module {filename} is not valid WebAssembly: {exc}") from None
        if cached is not None:
            _write_cache(cached, module)
    with _ENGINE_LOCK:
        _COMPILED[digest] = module
    return module


def _cache_path(digest: str) -> Path | None:
    directory = cache_directory()
    if directory is None:
        return None
    return directory / f"{digest}-wasmtime{WASMTIME_VERSION}.cwasm"


def _write_cache(path: Path, module: wasmtime.Module) -> None:
    """Best effort: a cache that cannot be written only costs a compile next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(module.serialize())
        os.replace(temporary, path)
    except OSError:
        pass


class WasmtimeEngine:
    """One WebAssembly guest on wasmtime (``guest.GuestEngine``)."""

    kind = "wasmtime"

    def __init__(self, source: bytes, filename: str, limits: GuestLimits) -> None:
        self.filename = filename
        self.limits = limits
        self.module = compiled_module(source, filename)
        self.sections = custom_sections(source, DESCRIBE_SECTION)
        self._lock = threading.Lock()
        self._store: wasmtime.Store | None = None
        self._exports: dict[str, Any] = {}
        self._input: tuple[int, int] = (0, 0)  # the frame buffer: (pointer, capacity)
        self._host: HostCalls | None = None
        self._pending: bytes | None = None  # results too large for the guest's buffer
        self._error: BaseException | None = None
        self._linker = self._link()
        exports = {export.name for export in self.module.exports}
        self.export_names = exports
        missing = [name for name in REQUIRED_EXPORTS if name not in exports]
        if DESCRIBE_EXPORT not in exports and not self.sections:
            missing.append(f"{DESCRIBE_EXPORT} (or a {DESCRIBE_SECTION} custom section)")
        if missing:
            raise SchemaError(
                f"module {filename} does not export {', '.join(missing)}: it was not built "
                f"with a Cosmictron guest SDK ({ABI_DOC})"
            )

    # -- GuestEngine -------------------------------------------------------------

    def describe(self) -> bytes:
        """The ``cosmictron_describe`` export's document or, without that export, the
        ``cosmictron_describe`` custom sections: msgpack fragments, one after another
        (an SDK's macros emit one per item; wasm-ld concatenates them), merged."""
        if DESCRIBE_EXPORT not in self.export_names:
            try:
                unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
                unpacker.feed(b"".join(self.sections))
                fragments = list(unpacker)
            except Exception as exc:
                raise GuestFault("abi", f"has a malformed description section: {exc}") from None
            return abi.pack(abi.merge_fragments(fragments))
        with self._lock:
            store, exports = self._instance()
            try:
                packed = exports[DESCRIBE_EXPORT](store)
                return self._read_packed(store, exports, packed)
            except wasmtime.Trap as trap:
                self._discard()
                raise _fault(trap) from None

    def call(self, reducer: str, frame: bytes, host: HostCalls) -> bytes:
        with self._lock:
            store, exports = self._instance()
            entry = exports.get(REDUCER_EXPORT_PREFIX + reducer) or exports.get(CALL_EXPORT)
            if entry is None:
                raise GuestFault(
                    "abi",
                    f"exports neither {REDUCER_EXPORT_PREFIX}{reducer} nor {CALL_EXPORT} "
                    f"({ABI_DOC})",
                )
            self._host = host
            self._error = None
            self._pending = None
            try:
                store.set_fuel(self.limits.fuel)
                pointer = self._frame_buffer(store, exports, len(frame))
                _write(store, exports["memory"], pointer, frame)
                packed = entry(store, pointer, len(frame))
                return self._read_packed(store, exports, packed)
            except wasmtime.Trap as trap:
                self._discard()
                if self._error is not None:
                    raise self._error from None
                raise _fault(trap) from None
            except wasmtime.WasmtimeError as exc:
                self._discard()
                raise GuestFault("trap", f"failed: {exc}") from None
            finally:
                self._host = None
                self._pending = None

    def close(self) -> None:
        with self._lock:
            self._discard()

    # -- the instance --------------------------------------------------------------

    def _instance(self) -> tuple[wasmtime.Store, dict[str, Any]]:
        if self._store is None:
            store = wasmtime.Store(shared_engine())
            store.set_limits(memory_size=self.limits.memory_bytes, instances=1, memories=1)
            store.set_fuel(self.limits.fuel)  # a start function runs on instantiation
            try:
                instance = self._linker.instantiate(store, self.module)
            except wasmtime.Trap as trap:
                raise _fault(trap) from None
            except wasmtime.WasmtimeError as exc:
                raise GuestFault("trap", f"could not be instantiated: {exc}") from None
            found = instance.exports(store)
            self._exports = {
                name: found[name]
                for name in self.export_names
                if name in REQUIRED_EXPORTS
                or name in (DESCRIBE_EXPORT, CALL_EXPORT)
                or name.startswith(REDUCER_EXPORT_PREFIX)
            }
            for name in self._exports:
                if name == CALL_EXPORT or name.startswith(REDUCER_EXPORT_PREFIX):
                    self._exports[name] = _RawEntry.make(store, self._exports[name])
            self._store = store
            self._input = (0, 0)
        return self._store, self._exports

    def _discard(self) -> None:
        """Forget the instance: a trapped guest's memory and globals are not to be trusted."""
        self._store = None
        self._exports = {}
        self._input = (0, 0)

    def _frame_buffer(self, store: wasmtime.Store, exports: dict[str, Any], size: int) -> int:
        pointer, capacity = self._input
        if size > capacity or pointer == 0:
            capacity = max(size, 4096)
            pointer = exports["cosmictron_alloc"](store, capacity)
            if pointer == 0:
                raise GuestFault("memory", f"could not allocate {capacity} bytes for a call frame")
            self._input = (pointer, capacity)
        return pointer

    def _read_packed(self, store: wasmtime.Store, exports: dict[str, Any], packed: int) -> bytes:
        pointer, length = (packed >> 32) & 0xFFFF_FFFF, packed & 0xFFFF_FFFF
        data = _read(store, exports["memory"], pointer, length)
        if data is None:
            self._discard()
            raise GuestFault(
                "abi", f"returned a buffer [{pointer}, +{length}) outside its memory ({ABI_DOC})"
            )
        return data

    # -- host functions --------------------------------------------------------------

    def _link(self) -> wasmtime.Linker:
        linker = wasmtime.Linker(shared_engine())
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
        host_functions: dict[str, tuple[wasmtime.FuncType, Callable[..., int]]] = {
            "ops": (wasmtime.FuncType([i32, i32, i32, i32], [i64]), self._ops),
            "take": (wasmtime.FuncType([i32, i32], [i64]), self._take),
        }
        for imported in self.module.imports:
            where = f"{imported.module}.{imported.name}"
            kind = imported.type
            if not isinstance(kind, wasmtime.FuncType):
                raise SchemaError(
                    f"module {self.filename} imports {where}, which is not a function; a "
                    f"guest exports its own memory and imports only the ABI's functions"
                )
            if imported.module == HOST_MODULE:
                known = host_functions.get(imported.name or "")
                if known is None:
                    raise SchemaError(
                        f"module {self.filename} imports {where}, which the module ABI does "
                        f"not have (it has ops and take; {ABI_DOC})"
                    )
                if _signature(kind) != _signature(known[0]):
                    raise SchemaError(
                        f"module {self.filename} imports {where} with the wrong signature"
                    )
                linker.define_func(
                    HOST_MODULE, str(imported.name), known[0], known[1], access_caller=True
                )
            else:
                stub = self._refusal(where)
                linker.define_func(imported.module, str(imported.name), kind, stub)
        return linker

    def _refusal(self, where: str) -> Any:
        def refuse(*_: Any) -> Any:
            self._error = GuestFault(
                "trap",
                f"called {where}: WASM modules have no files, network, clock or randomness "
                f"beyond the module ABI ({ABI_DOC})",
            )
            raise wasmtime.Trap(str(self._error))

        return refuse

    def _ops(self, caller: wasmtime.Caller, pointer: int, length: int, out: int, cap: int) -> int:
        try:
            memory = caller["memory"]
            assert isinstance(memory, wasmtime.Memory)
            request = _read(caller, memory, pointer, length)
            if request is None:
                raise GuestFault(
                    "abi", f"called ops with a request [{pointer}, +{length}) outside its memory"
                )
            assert self._host is not None, "ops outside a call"
            result = self._host.ops(request)
            return self._deliver(caller, memory, result, out, cap)
        except BaseException as exc:
            self._error = exc
            raise wasmtime.Trap(f"host function failed: {exc}") from None

    def _take(self, caller: wasmtime.Caller, out: int, cap: int) -> int:
        try:
            memory = caller["memory"]
            assert isinstance(memory, wasmtime.Memory)
            if self._pending is None:
                raise GuestFault("abi", "called take with no results waiting")
            result, self._pending = self._pending, None
            if len(result) > cap:
                raise GuestFault("abi", f"called take with {cap} bytes for {len(result)}")
            return self._deliver(caller, memory, result, out, cap)
        except BaseException as exc:
            self._error = exc
            raise wasmtime.Trap(f"host function failed: {exc}") from None

    def _deliver(
        self, caller: wasmtime.Caller, memory: wasmtime.Memory, result: bytes, out: int, cap: int
    ) -> int:
        if len(result) > cap:
            self._pending = result
            return -len(result)
        if not _write(caller, memory, out, result):
            raise GuestFault("abi", f"gave a result buffer [{out}, +{cap}) outside its memory")
        return len(result)


class _RawEntry:
    """Calls an exported ``(i32, i32) -> i64`` function through wasmtime's unchecked call.

    wasmtime-py's ``Func.__call__`` rebuilds the function's type and converts every value
    on each call, about two thirds of a guest call's cost here; the entry points' type is
    checked once instead (``make``). It reaches into wasmtime-py's private
    ``_func``/``_context``/``enter_wasm`` (pinned by ``wasmtime>=51``); if they are not
    there, ``make`` returns the plain ``Func`` and calls stay correct, only slower.
    """

    __slots__ = ("_args", "_func")

    def __init__(self, func: wasmtime.Func) -> None:
        self._func = ctypes.byref(func._func)
        self._args = (_ffi.wasmtime_val_raw * 2)()

    @staticmethod
    def make(store: wasmtime.Store, func: Any) -> Any:
        try:
            kind = func.type(store)
            if _signature(kind) != (["i32", "i32"], ["i64"]) or _enter_wasm is None:
                return func
            return _RawEntry(func)
        except AttributeError:
            return func

    def __call__(self, store: wasmtime.Store, first: int, second: int) -> int:
        args = self._args
        args[0].i32 = first
        args[1].i32 = second
        with _enter_wasm(store) as trap:
            error = _ffi.wasmtime_func_call_unchecked(store._context(), self._func, args, 2, trap)
            if error:
                raise wasmtime.WasmtimeError._from_ptr(error)
        return int(args[0].i64)


def _bounds(store: Any, memory: wasmtime.Memory, pointer: int, length: int) -> int | None:
    """The host address of guest bytes [pointer, pointer+length), or None if outside."""
    size = memory.data_len(store)
    if pointer < 0 or length < 0 or pointer + length > size:
        return None
    return ctypes.addressof(memory.data_ptr(store).contents) + pointer


def _read(store: Any, memory: wasmtime.Memory, pointer: int, length: int) -> bytes | None:
    address = _bounds(store, memory, pointer, length)
    return None if address is None else ctypes.string_at(address, length)


def _write(store: Any, memory: wasmtime.Memory, pointer: int, data: bytes) -> bool:
    address = _bounds(store, memory, pointer, len(data))
    if address is None:
        return False
    ctypes.memmove(address, data, len(data))
    return True


def _signature(kind: wasmtime.FuncType) -> tuple[list[str], list[str]]:
    return [str(p) for p in kind.params], [str(r) for r in kind.results]


def _fault(trap: wasmtime.Trap) -> GuestFault:
    text = str(trap.message if hasattr(trap, "message") else trap)
    first = text.strip().splitlines()[0] if text.strip() else "trap"
    if "all fuel consumed" in text:
        return GuestFault(
            "fuel",
            "ran out of fuel (limits.guest_call_fuel_max): it ran too long, or forever",
        )
    return GuestFault("trap", f"trapped: {_trap_reason(text) or first}")


def _trap_reason(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("wasm trap:"):
            return line
    return ""


def custom_sections(source: bytes, wanted: str) -> list[bytes]:
    """The payloads of the custom sections called ``wanted``, in order.

    The binary format: magic, version, then sections of ``id (byte), size (LEB128),
    payload``; a custom section (id 0) starts its payload with its name (LEB128 length,
    UTF-8). ``source`` was validated by wasmtime first, so a malformed one is not expected;
    reading stops at anything that does not fit.
    """
    found = []
    position = 8
    end = len(source)
    while position < end:
        section_id = source[position]
        size, position = _leb128(source, position + 1)
        payload_end = position + size
        if payload_end > end:
            break
        if section_id == 0:
            name_length, name_start = _leb128(source, position)
            name = source[name_start : name_start + name_length]
            if name == wanted.encode():
                found.append(source[name_start + name_length : payload_end])
        position = payload_end
    return found


def _leb128(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while position < len(data):
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return result, position


def load_wasm(source: bytes, filename: str, limits: GuestLimits | None = None) -> WasmtimeEngine:
    """A loaded wasmtime engine for ``source`` (``guest.EngineFactory``)."""
    return WasmtimeEngine(source, filename, limits or GuestLimits())
