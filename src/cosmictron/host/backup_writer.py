"""Writing a backup of an open database, and verifying one: below the façade.

A backup is taken while writes continue (``docs/design/backup.md``). Under the writer
lock, for as long as it takes to read a few attributes and small files, it fixes the
*cut*: the last committed offset, its hash and where its record ends in its segment,
and reads the host's files as they are at that offset (``database.json``, the running
module's source and schema, ``module/genesis.py`` once the module was updated,
``config.toml``). Everything else it copies after releasing the lock, because nothing it
copies can change: segments are append-only and only the cut's prefix of the last one
is taken, and the chosen snapshot is read whole at once. The archive format and its
checks are in ``durability/archive.py`` and ``durability/backup.py``.

This half of backups takes the ``DatabaseCore`` (the lock, the persistence layer, the
running module); restoring, which opens a ``Database`` to prove the result replays, is
``backup.py``, above the façade, and that is the module the server, CLI and docs name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from cosmictron.durability import Record
from cosmictron.durability.archive import (
    Manifest,
    MemberSource,
    extract_archive,
    write_archive,
)
from cosmictron.durability.backup import (
    ledger_members,
    log_members,
    pinned_snapshot_at_or_before,
    verify_log,
)
from cosmictron.errors import BackupDamaged, InvalidRequest
from cosmictron.host.core import DatabaseCore
from cosmictron.host.directory import FILENAME
from cosmictron.values import Timestamp

REQUIRED_MEMBERS = ("database.json", "module/module.py")


def write_backup(
    core: DatabaseCore, out: BinaryIO, on_cut: Callable[[int], None] | None = None
) -> Manifest:
    """Write a consistent backup of the open database to ``out``, while writes go on.

    ``out`` may be a pipe or socket; nothing is read back. ``on_cut``, if given, is called
    with the cut's offset once it is fixed and before anything is written (a server sends
    it in a header, then streams the archive at the client's pace). ``backup_to_file``
    also verifies what it wrote.
    """
    with core.lock:  # the writer lock: no transaction commits while the cut is read
        cut = core.persistence.cut()
        host_files = _host_files(core) + ledger_members(str(core.path), cut.offset)
    # Under ``always`` the cut's bytes may still wait in the writer's buffer.
    core.persistence.sync_now()
    snapshots = core.persistence.snapshots
    with pinned_snapshot_at_or_before(snapshots, cut.offset) as snapshot:
        members = host_files + log_members(
            str(core.path), cut.offset, cut.segment_base_offset, cut.segment_bytes, snapshot
        )
        if on_cut is not None:
            on_cut(cut.offset)
        return write_archive(out, members, cut.offset, cut.last_hash)


def backup_to_file(core: DatabaseCore, path: str | os.PathLike[str]) -> Manifest:
    """Back the database up into the file ``path``, verified; see ``Database.backup``."""
    target = Path(path)
    # A name of its own per call: two backups to one path must not share a partial file.
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    partial = Path(name)
    try:
        with open(handle, "wb") as out:
            write_backup(core, out)
            out.flush()
            os.fsync(out.fileno())
        manifest = verify_backup(partial)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return manifest


def verify_backup(path: str | os.PathLike[str]) -> Manifest:
    """Check every checksum of the backup in ``path`` and that its log replays to the cut.

    Raises:
        BackupDamaged: what is wrong, naming the member.
    """
    with tempfile.TemporaryDirectory(prefix="cosmictron-verify-") as scratch:
        return extract_verified(path, Path(scratch), None)[0]


def _host_files(core: DatabaseCore) -> list[MemberSource]:
    """The host's files as of the cut; called under the writer lock, so they match it."""
    members = []
    directory = core.path
    for name in ("database.json", "config.toml", "module/genesis.py"):
        file = directory / name
        if file.exists():
            data = file.read_bytes()
            members.append(MemberSource(name, len(data), data=data))
    loaded = core.module
    schema = json.dumps(loaded.schema.describe(), indent=1, sort_keys=True).encode()
    members.append(MemberSource("module/module.py", len(loaded.source), data=loaded.source))
    # The name its user gave it, so a restored database's errors say `app.py` (issue 16).
    filename = loaded.filename.encode()
    members.append(MemberSource(f"module/{FILENAME}", len(filename), data=filename))
    members.append(MemberSource("module/schema.json", len(schema), data=schema))
    return members


def extract_verified(
    archive: str | os.PathLike[str] | BinaryIO, directory: Path, to_time: Timestamp | None
) -> tuple[Manifest, int]:
    """Extract ``archive`` into ``directory`` and verify it (``verify_backup``, and
    ``backup.stage_restore`` before it opens the result); with ``to_time``, also find
    the last offset at or before it.

    Raises:
        BackupDamaged: what is wrong, naming the member.
        InvalidRequest: there is no file ``archive``.
    """
    if isinstance(archive, str | os.PathLike):
        try:
            source = open(archive, "rb")  # noqa: SIM115 - closed below, errors named first
        except FileNotFoundError:
            raise InvalidRequest(f"no backup file {str(archive)!r}") from None
        with source:
            manifest = extract_archive(source, str(directory))
    else:
        manifest = extract_archive(archive, str(directory))
    for name in REQUIRED_MEMBERS:
        if name not in manifest.members:
            raise BackupDamaged(f"the backup lacks {name}; it is not a database backup")
    point = 0
    visit = None
    if to_time is not None:
        limit_us = to_time.micros_since_epoch

        def visit(record: Record) -> None:
            nonlocal point
            if record.body[0] <= limit_us:
                point = record.offset

    verify_log(str(directory), manifest, visit)
    return manifest, point
