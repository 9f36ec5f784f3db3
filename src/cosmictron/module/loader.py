"""Which language a module is in, and loading it: Python, or a guest through its engine.

``load_source`` and ``load_module`` are what the host calls (deploys, replay of module
records, reopening): they look at the bytes (and the file name) and hand them to the
Python loader or to a guest engine. Engines register here (``register_engine``): WASM by
its magic bytes, JavaScript by its engine line or a ``.js`` name, so a database records
and replays a module's bytes without caring which language they are in.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cosmictron.errors import SchemaError
from cosmictron.module import js, python, wasm_bytes
from cosmictron.module.guest import EngineFactory, GuestLimits, load_guest
from cosmictron.module.python import LoadedModule

if TYPE_CHECKING:
    from cosmictron.module.guest import GuestEngine


@dataclass(frozen=True)
class EngineEntry:
    """A guest language: how to recognise its modules, and the engine that runs them."""

    name: str
    detect: Callable[[bytes, str], bool]
    factory: EngineFactory
    sandboxed: bool = True
    canonical: Callable[[bytes], bytes] | None = None
    """The form of the bytes to record, when it is not the bytes given (JavaScript: the
    source stamped with its engine, so replay and reopening run it on the same one)."""


def _load_wasm(source: bytes, filename: str, limits: GuestLimits) -> GuestEngine:
    """wasmtime is imported with the first WASM module (``module/wasm_bytes.py``)."""
    from cosmictron.module import wasm

    return wasm.load_wasm(source, filename, limits)


_ENGINES: list[EngineEntry] = [
    EngineEntry("wasm", lambda source, filename: wasm_bytes.is_wasm(source), _load_wasm),
    EngineEntry("javascript", js.detect, js.load_js, canonical=js.stamp),
]


def register_engine(entry: EngineEntry) -> None:
    """Add a guest language (the JavaScript engines register here); first match wins."""
    _ENGINES[:] = [e for e in _ENGINES if e.name != entry.name] + [entry]


def engine_for(source: bytes, filename: str) -> EngineEntry | None:
    """The guest engine for these bytes, or None for a Python module."""
    for entry in _ENGINES:
        if entry.detect(source, filename):
            return entry
    return None


def is_sandboxed(source: bytes, filename: str = "") -> bool:
    """Whether these module bytes run in a sandbox (a guest engine), not as Python."""
    entry = engine_for(source, filename)
    return entry is not None and entry.sandboxed


def load_source(source: bytes, filename: str) -> LoadedModule:
    """Load module bytes in whichever language they are (``python.load_source`` if none)."""
    entry = engine_for(source, filename)
    if entry is None:
        return python.load_source(source, filename)
    if entry.canonical is not None:
        source = entry.canonical(source)
    engine = entry.factory(source, filename, GuestLimits())
    return load_guest(engine, source, filename)


def load_module(module: str | os.PathLike[str] | types.ModuleType) -> LoadedModule:
    """``python.load_module``, except that a path to a guest module loads that guest."""
    if isinstance(module, types.ModuleType):
        return python.load_module(module)
    path = Path(module)
    try:
        head = path.read_bytes()
    except OSError as exc:
        raise SchemaError(f"cannot read module {str(path)!r}: {exc.strerror}") from None
    if engine_for(head, str(path)) is None:
        return python.load_module(module)
    return load_source(head, str(path))
