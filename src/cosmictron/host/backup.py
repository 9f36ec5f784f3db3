"""Backup and restore of a whole database: the one implementation the server and CLI carry.

Taking a backup (``write_backup``, ``Database.backup``) and checking one
(``verify_backup``) are done below the façade, over the database's core, in
``backup_writer.py`` (which describes the cut); this module gives them the form the
server and CLI use.

A restore reads the archive once, start to end (a file, or a server's upload as it
arrives), extracting each member into a staging directory while hashing it; checks every
checksum against the manifest (which comes last), cuts the log at the requested offset,
opens the result once as a ``Database`` (so what is restored is proven to replay) and
only then renames it into place: a damaged archive or a failed replay leaves nothing
behind, and a garbage upload is refused at its first tar header.

Restoring opens a ``Database``, so this module sits above the façade: it imports
``cosmictron.host`` as the server and CLI do, and no module of ``host/`` imports it
(``tests/test_layers.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cosmictron.durability import DurabilityConfig
from cosmictron.durability.archive import Manifest
from cosmictron.durability.backup import first_restorable, truncate_log
from cosmictron.durability.files import fsync_directory, write_file_durably
from cosmictron.errors import BackupDamaged, Conflict, InvalidRequest
from cosmictron.host import Database, backup_writer
from cosmictron.host.backup_writer import backup_to_file, extract_verified, verify_backup
from cosmictron.host.directory import FILENAME
from cosmictron.values import Identity, Timestamp

__all__ = [
    "RestoreReport",
    "StagedRestore",
    "backup_to_file",
    "restore",
    "stage_restore",
    "verify_backup",
    "write_backup",
]


@dataclass(frozen=True)
class RestoreReport:
    """What ``restore`` did: the archive's cut and the offset the database now ends at."""

    path: str
    cut_offset: int
    tx_offset: int
    identity: str
    owner: str

    def describe(self) -> dict[str, Any]:
        return {
            "cut_offset": self.cut_offset,
            "tx_offset": self.tx_offset,
            "identity": self.identity,
            "owner": self.owner,
        }


def write_backup(
    database: Database, out: BinaryIO, on_cut: Callable[[int], None] | None = None
) -> Manifest:
    """Write a consistent backup of the open ``database`` to ``out``, while writes go on.

    ``out`` may be a pipe or socket; nothing is read back. ``on_cut``, if given, is called
    with the cut's offset once it is fixed and before anything is written (a server sends
    it in a header, then streams the archive at the client's pace). ``Database.backup``
    also verifies what it wrote. See ``backup_writer.write_backup``.
    """
    return backup_writer.write_backup(database.core, out, on_cut)


def restore(
    archive: str | os.PathLike[str] | BinaryIO,
    path: str | os.PathLike[str],
    *,
    to_offset: int | None = None,
    to_time: Timestamp | None = None,
    owner: Identity | None = None,
    durability: DurabilityConfig | None = None,
) -> RestoreReport:
    """Create the database in ``path`` from a backup, as of its cut or an earlier point.

    Args:
        archive: the backup file, or a stream of it (read once, start to end: a server
            restores an upload as it arrives).
        path: the new data directory; it must not exist (or be empty).
        to_offset: restore the state after this transaction (at most the cut; 0 is the
            empty database, whose ``@init`` then runs as on creation).
        to_time: restore the state after the last transaction at or before this time.
        owner: make this identity the owner (the server sets the caller); by default the
            backed-up database's owner is kept. Its identity is always kept.
        durability: the settings to open it with (to check that it replays).

    Raises:
        BackupDamaged: the archive is damaged; nothing was created.
        Conflict: ``path`` already holds something.
        InvalidRequest: ``to_offset`` is past the backup's cut, or both points were given.
    """
    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise Conflict(f"{str(target)!r} already exists; restore into a new directory")
    if to_offset is not None and to_time is not None:
        raise InvalidRequest("give to_offset or to_time, not both")
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = stage_restore(
        archive,
        target.parent,
        target.name,
        to_offset=to_offset,
        to_time=to_time,
        owner=owner,
        durability=durability,
    )
    try:
        if target.exists():
            target.rmdir()
        os.replace(staged.directory, target)
        fsync_directory(str(target.parent))
    except BaseException:
        shutil.rmtree(staged.directory, ignore_errors=True)
        raise
    return RestoreReport(str(target), *staged.report)


@dataclass(frozen=True)
class StagedRestore:
    """A restored, verified data directory waiting to be renamed into place."""

    directory: Path
    report: tuple[int, int, str, str]


def stage_restore(
    archive: str | os.PathLike[str] | BinaryIO,
    staging: Path,
    name: str,
    *,
    to_offset: int | None = None,
    to_time: Timestamp | None = None,
    owner: Identity | None = None,
    durability: DurabilityConfig | None = None,
) -> StagedRestore:
    """Everything ``restore`` does but the final rename, in a new directory of ``staging``
    (on the target's file system). A server stages without holding its registry lock, so
    a slow upload delays no other deploy; the caller renames it or removes it.

    Raises:
        As ``restore``; a failure leaves nothing in ``staging``.
    """
    if to_offset is not None and to_time is not None:
        raise InvalidRequest("give to_offset or to_time, not both")
    staging.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.restoring-", dir=staging))
    scratch.chmod(0o755)  # mkdtemp makes it private; a data directory is not
    try:
        manifest, point = extract_verified(archive, scratch, to_time)
        _name_the_module(scratch)
        offset = _restore_offset(manifest, to_offset if to_time is None else point)
        archived, first = first_restorable(str(scratch), manifest)
        if offset < first:
            raise InvalidRequest(
                f"cannot restore to offset {offset}: records 1..{archived} are archived (not "
                f"in the backup); restore to an offset from {first} to {manifest.cut_offset}"
            )
        truncate_log(str(scratch), offset, manifest.snapshot_offset)
        if owner is not None:
            _set_owner(scratch, owner)
        return StagedRestore(scratch, _open_once(scratch, manifest, offset, durability))
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _name_the_module(directory: Path) -> None:
    """A backup taken before archives carried ``module/filename`` names its module
    ``module.py``, never the staging directory it is opened in (which would then be kept
    as its name, and shown in every traceback)."""
    named = directory / "module" / FILENAME
    if not named.exists():
        write_file_durably(str(named), [b"module.py"])


def _restore_offset(manifest: Manifest, to_offset: int | None) -> int:
    if to_offset is None:
        return manifest.cut_offset
    if not 0 <= to_offset <= manifest.cut_offset:
        raise InvalidRequest(
            f"cannot restore to offset {to_offset}: the backup holds offsets 0 to "
            f"{manifest.cut_offset}"
        )
    return to_offset


def _set_owner(directory: Path, owner: Identity) -> None:
    info_path = directory / "database.json"
    try:
        info = json.loads(info_path.read_text())
        info["owner"] = owner.hex()
    except (ValueError, TypeError) as exc:
        raise BackupDamaged(f"the backup's database.json is not valid: {exc}") from None
    write_file_durably(str(info_path), [json.dumps(info, indent=1).encode()])


def _open_once(
    directory: Path, manifest: Manifest, offset: int, durability: DurabilityConfig | None
) -> tuple[int, int, str, str]:
    """Open the restored directory as a database (it must replay), then close it."""
    with Database.open(directory, durability=durability) as database:
        assert offset == 0 or database.tx_offset == offset, (database.tx_offset, offset)
        return (
            manifest.cut_offset,
            database.tx_offset,
            database.identity.hex(),
            database.owner.hex(),
        )
