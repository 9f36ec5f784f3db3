"""The files the host keeps in a data directory beside the durability layer's.

``module/module.py`` is the module's source, so ``Database.open(path)`` needs no module
argument; ``module/schema.json`` is the schema it declared, compared on every open so a
module that would misread the stored data is refused; ``database.json`` holds the
database's identity and owner, fixed at creation. All are written atomically and the
directory is synced (``durability.files``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cosmictron.durability.files import ensure_directory, write_file_durably
from cosmictron.errors import NotFound, SchemaError
from cosmictron.module import LoadedModule, load_module, load_source
from cosmictron.query.visibility import check_visibility_filters
from cosmictron.values import Identity


def load_and_store_module(directory: Path, module: Any) -> LoadedModule:
    module_dir = directory / "module"
    source_path = module_dir / "module.py"
    schema_path = module_dir / "schema.json"
    stored_schema = json.loads(schema_path.read_text()) if schema_path.exists() else None
    if module is None:
        if not source_path.exists():
            raise NotFound(f"{str(directory)!r} holds no database yet; give a module to create one")
        return load_source(source_path.read_bytes(), str(source_path))
    loaded = load_module(module)
    check_visibility_filters(loaded.schema)
    if stored_schema is not None:
        problems = schema_problems(stored_schema, loaded.schema.describe())
        if problems:
            raise SchemaError(
                f"the module does not match the data in {str(directory)!r}: "
                f"{'; '.join(problems)} (migrations arrive with hot-swap deploys)"
            )
    ensure_directory(str(module_dir))
    if not source_path.exists() or source_path.read_bytes() != loaded.source:
        write_file_durably(str(source_path), [loaded.source])
    described = json.dumps(loaded.schema.describe(), indent=1, sort_keys=True).encode()
    if not schema_path.exists() or schema_path.read_bytes() != described:
        write_file_durably(str(schema_path), [described])
    return loaded


def schema_problems(stored: dict[str, Any], new: dict[str, Any]) -> list[str]:
    new_tables = {table["name"]: table for table in new["tables"]}
    problems = []
    for table in stored["tables"]:
        replacement = new_tables.get(table["name"])
        if replacement is None:
            problems.append(f"table {table['name']!r} was removed")
        elif replacement != table:
            problems.append(f"table {table['name']!r} changed its columns, keys or indexes")
    return problems


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
