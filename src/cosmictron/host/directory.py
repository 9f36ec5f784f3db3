"""The files the host keeps in a data directory beside the durability layer's.

``module/module.py`` is the running module's source, so ``Database.open(path)`` needs no
module argument; ``module/schema.json`` is the schema it declared (for people and tools).
``module/genesis.py`` is the first module, kept from the first module update on, because
replay from offset 0 starts under it (``docs/design/hot-swap.md``); the log's module
records hold every later one, so after a crash between a module record and the rewrite of
``module.py`` the log wins. ``database.json`` holds the database's identity and owner,
fixed at creation. All are written atomically and the directory is synced
(``durability.files``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cosmictron.durability.files import ensure_directory, write_file_durably
from cosmictron.module import LoadedModule, load_module, load_source
from cosmictron.query.visibility import check_visibility_filters
from cosmictron.values import Identity


def load_new_module(module: Any, filename: str | None = None) -> LoadedModule:
    """Load a module given as a path, a module object or source bytes, and validate it.

    Loading runs the module's top-level code and resolves its schema; the visibility
    filters are parsed too, so every mistake a module can declare is found here, before
    anything of the running database is touched.

    Raises:
        SchemaError: the module does not import or declares an invalid schema; the
            message carries the Python error.
    """
    if isinstance(module, LoadedModule):  # already loaded (and checked) by Database.open
        return module
    if isinstance(module, bytes | bytearray):
        loaded = load_source(bytes(module), filename or "module.py")
    else:
        loaded = load_module(module)
    check_visibility_filters(loaded.schema)
    return loaded


def stored_module(directory: Path, given: LoadedModule | None) -> LoadedModule | None:
    """The module in effect at offset 0: the first one deployed, if it is stored.

    That is ``module/genesis.py`` once the module has been updated through the log, and
    ``module/module.py`` before (then the two are the same module). ``given`` (the
    module ``open`` was given) is returned instead of loading the same source twice.
    """
    for name in ("genesis.py", "module.py"):
        path = directory / "module" / name
        if path.exists():
            source = path.read_bytes()
            if given is not None and given.source == source:
                return given
            return load_source(source, _shown_name(path))
    return given


def _shown_name(path: Path) -> str:
    """The name ``module.py``'s module was given by its user (``module/filename``, so
    its errors name ``app.py`` after a restart too); the path itself otherwise."""
    named = path.parent / FILENAME
    if path.name == "module.py" and named.exists():
        return named.read_text(encoding="utf-8").strip() or str(path)
    return str(path)


FILENAME = "filename"
"""Beside ``module.py``: the file name its module was loaded under (issue 16)."""


def save_genesis(directory: Path, loaded: LoadedModule) -> None:
    """Keep the first module as ``module/genesis.py`` before the log first updates it.

    Replay from offset 0 (no snapshot) starts under the first module; ``module.py`` only
    holds the latest one. Called while no module record exists yet, so ``loaded`` (the
    running module) is the first one.
    """
    path = directory / "module" / "genesis.py"
    if not path.exists():
        ensure_directory(str(path.parent))
        write_file_durably(str(path), [loaded.source])


def store_module(directory: Path, loaded: LoadedModule) -> None:
    """Write the running module's source and schema, so ``open(path)`` needs no module."""
    module_dir = directory / "module"
    source_path = module_dir / "module.py"
    schema_path = module_dir / "schema.json"
    ensure_directory(str(module_dir))
    if not source_path.exists() or source_path.read_bytes() != loaded.source:
        write_file_durably(str(source_path), [loaded.source])
    name_path = module_dir / FILENAME
    if not name_path.exists() or name_path.read_text(encoding="utf-8") != loaded.filename:
        write_file_durably(str(name_path), [loaded.filename.encode()])
    described = json.dumps(loaded.schema.describe(), indent=1, sort_keys=True).encode()
    if not schema_path.exists() or schema_path.read_bytes() != described:
        write_file_durably(str(schema_path), [described])


def identities(directory: Path, owner: Identity | None) -> tuple[Identity, Identity]:
    info_path = directory / "database.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        return Identity.from_hex(info["identity"]), Identity.from_hex(info["owner"])
    identity = Identity.random()
    owner = owner or Identity.random()
    info = {"identity": identity.hex(), "owner": owner.hex(), "created_us": time.time_ns() // 1000}
    write_file_durably(str(info_path), [json.dumps(info, indent=1).encode()])
    return identity, owner
