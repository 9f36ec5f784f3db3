"""The state file that lets ``cosmictron-cli import`` resume without duplicating rows.

An import sends a CSV file in batches; each batch is its own transaction on the server.
After each acknowledged batch the CLI rewrites ``<file>.cosmictron-import.json`` (through
a temporary file, fsync and rename, so a crash leaves the old or the new file, never
half of one)::

    {"version": 1, "server": "http://…", "database": "shop", "table": "item",
     "file": "/abs/path/items.csv", "batch_rows": 100000, "header_bytes": 27,
     "lines_committed": 200001, "bytes_committed": 7340021, "rows_committed": 200000,
     "prefix_sha256": "…", "complete": false,
     "batches": [{"start_line": 2, "end_line": 100001, "rows": 100000,
                  "tx_offset": 7, "key": "<sha256 of the batch, 32 hex>:2"}, …]}

``lines_committed``/``bytes_committed`` mark where the next batch starts (line 1 and the
first ``header_bytes`` are the header). ``prefix_sha256`` is the hash of the file's
first ``bytes_committed`` bytes: a resume checks it, so the part already loaded cannot
have changed, while the rest may (fixing a bad row and resuming is allowed).

The gap a state file alone leaves: a batch the server committed but whose reply never
reached the CLI (a crash or a lost connection between commit and the state write) would
be sent again. Each batch therefore carries ``Idempotency-Key: <batch hash>:<first
line>``; the server records the key in the batch's own transaction and answers a repeat
with ``"already_applied": true`` and the earlier offset (``host/imports.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cosmictron.errors import ConfigError

VERSION = 1
SUFFIX = ".cosmictron-import.json"


def state_path(csv_file: Path) -> Path:
    """Where the state of importing ``csv_file`` lives: beside it."""
    return csv_file.with_name(csv_file.name + SUFFIX)


@dataclass
class ImportState:
    server: str
    database: str
    table: str
    file: str
    batch_rows: int
    header_bytes: int
    lines_committed: int = 1
    bytes_committed: int = 0
    rows_committed: int = 0
    prefix_sha256: str = ""
    complete: bool = False
    batches: list[dict[str, Any]] = field(default_factory=list)
    version: int = VERSION

    @classmethod
    def load(cls, path: Path) -> ImportState:
        """Read a state file.

        Raises:
            ConfigError: it is not a state file this version wrote.
        """
        try:
            data = json.loads(path.read_text())
            if data.get("version") != VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{path} is not a cosmictron-cli import state file ({exc}); delete it or "
                f"pass --restart"
            ) from None

    def save(self, path: Path) -> None:
        """Replace the state file atomically and durably."""
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".import-")
        try:
            with os.fdopen(descriptor, "w") as file:
                json.dump(asdict(self), file, indent=1)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def commit(self, batch: dict[str, Any], end_bytes: int, prefix_sha256: str) -> None:
        """Record an acknowledged batch; the next one starts after it."""
        self.batches.append(batch)
        self.lines_committed = batch["end_line"]
        self.bytes_committed = end_bytes
        self.rows_committed += batch["rows"]
        self.prefix_sha256 = prefix_sha256


def prefix_digest(path: Path, size_bytes: int) -> Any:
    """A running sha256 of the first ``size_bytes`` bytes of ``path``."""
    digest = hashlib.sha256()
    remaining = size_bytes
    with path.open("rb") as file:
        while remaining > 0:
            chunk = file.read(min(remaining, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    return digest
