"""What the host knows of WebAssembly modules without importing wasmtime.

Recognising a module's bytes and setting where compiled modules are kept happen in every
server and every ``Database.open``; running one happens only for WASM modules. Keeping
the first two here lets ``module/wasm.py`` (and wasmtime, ~35 ms to import) load on the
first WASM module instead of at every start.
"""

from __future__ import annotations

import os
from pathlib import Path

WASM_MAGIC = b"\0asm"

_cache_dir: Path | None = None


def is_wasm(source: bytes) -> bool:
    return source[:4] == WASM_MAGIC


def set_cache_directory(path: str | os.PathLike[str] | None) -> None:
    """Keep compiled modules under ``path`` (the server: ``<data-dir>/cache/wasm``)."""
    global _cache_dir
    _cache_dir = None if path is None else Path(path)


def cache_directory() -> Path | None:
    """Where compiled modules are kept (None: in memory only)."""
    return _cache_dir
