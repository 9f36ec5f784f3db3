"""Backup archives: a data directory's files at one log offset, checksummed, in one tar file.

An archive is an uncompressed POSIX tar (any ``tar`` can list and extract it). Members,
in this order::

    <host files>                 e.g. database.json, module/module.py (the host names them)
    snapshots/<offset:020d>.snap  at most one: the newest snapshot at or before the cut
    log/<base:020d>.log           every segment from offset 1, the one holding the cut
                                  cut right after the cut's record
    manifest.json                 {"format": "cosmictron-backup", "version": 1,
                                   "created_us", "cut_offset", "cut_hash" (hex),
                                   "snapshot_offset" (or null),
                                   "members": [{"name", "size_bytes", "sha256"}, ...]}
    manifest.sha256               "<sha256 of manifest.json>  manifest.json\\n"
                                  (``sha256sum -c`` reads it)

The *cut* is the last record the archive holds: its log replays exactly to
``cut_offset``, whose record hashes to ``cut_hash``.

An archive is *valid* when: it reads as a tar to its end; every member is a regular file
with a safe relative name (``SAFE_NAME``), present once; ``manifest.sha256`` matches
``manifest.json``, which parses and has this format and version; every other member is
listed in the manifest with its size and SHA-256, and every listed member is present;
the log's segments are contiguous from offset 1, every frame is valid (``segment.py``,
with no torn tail allowed anywhere), the chain is unbroken and ends at ``cut_offset``
with ``cut_hash``; and the snapshot, if any, is valid (``snapshot.py``), at or before the
cut, and hashes to the record at its offset. Anything else is ``BackupDamaged`` naming the
member and what is wrong.

Restoring to an offset N (at most the cut) keeps every segment up to N's record, cuts the
one holding it right after that record, and drops the snapshot when it is after N: the
result is an ordinary data directory whose log ends at N, so the database continues the
hash chain from there.

The whole log is kept (not only the records after the snapshot) because segments are
never deleted (the ledger's history, ``docs/design/commitlog-format.md``) and because
restoring to an offset before the snapshot needs the records before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from cosmictron.durability.record import FRAME_HEADER, Record
from cosmictron.durability.segment import (
    SEGMENT_HEADER_BYTES,
    SegmentReader,
    list_segments,
)
from cosmictron.durability.snapshot import list_snapshots, read_snapshot
from cosmictron.durability.storage import FILE_STORAGE, Storage
from cosmictron.errors import BackupDamaged, CorruptLog
from cosmictron.ledger import GENESIS_HASH

BACKUP_FORMAT = "cosmictron-backup"
BACKUP_VERSION = 1
MANIFEST_NAME = "manifest.json"
MANIFEST_CHECKSUM_NAME = "manifest.sha256"
SAFE_NAME = re.compile(r"^[a-z0-9_]+(/[a-z0-9_]+)*(\.[a-z0-9]+)?$")
"""Member names: lowercase relative paths, no ``..``, no leading ``/``, nothing odd."""
COPY_CHUNK_BYTES = 1 << 20
RECORD_BYTES_MAX = 1 << 40
"""Frames are checked against the file's length, not a configured limit: the archive may
come from a database with a larger ``record_bytes_max`` than the restoring one."""
MANIFEST_BYTES_MAX = 16 << 20
"""A manifest larger than this is refused before it is parsed."""


@dataclass(frozen=True)
class MemberSource:
    """One file to put in an archive: ``data``, or the first ``size_bytes`` of ``path``."""

    name: str
    size_bytes: int
    path: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class Manifest:
    """A verified archive's manifest; ``members`` maps each name to ``(size, sha256 hex)``."""

    cut_offset: int
    cut_hash: bytes
    snapshot_offset: int | None
    created_us: int
    members: dict[str, tuple[int, str]]

    def describe(self) -> dict[str, Any]:
        """The manifest as JSON-able fields (what the CLI and the server print)."""
        return {
            "cut_offset": self.cut_offset,
            "cut_hash": self.cut_hash.hex(),
            "snapshot_offset": self.snapshot_offset,
            "created_us": self.created_us,
            "member_count": len(self.members),
            "size_bytes": sum(size for size, _ in self.members.values()),
        }


def log_members(
    data_dir: str,
    cut_offset: int,
    segment_base_offset: int,
    segment_bytes: int,
    storage: Storage = FILE_STORAGE,
) -> list[MemberSource]:
    """The snapshot and log segments of ``data_dir`` that hold its state at ``cut_offset``.

    Args:
        data_dir: the database's data directory (``log/``, ``snapshots/``).
        cut_offset: the last record to include (``PersistenceLayer.cut``).
        segment_base_offset: the segment the cut's record is in (or the empty segment
            after it); only its first ``segment_bytes`` are taken.
        segment_bytes: where the cut's record ends in that segment.

    Every byte named here is immutable: segments before the cut's are sealed, the cut's
    record ends at ``segment_bytes`` in an append-only file, and snapshot files are
    written once (a newer one may delete them, so the chosen one is read now, whole).
    """
    members = []
    snapshot = newest_snapshot_at_or_before(data_dir, cut_offset, storage)
    if snapshot is not None:
        offset, data = snapshot
        members.append(MemberSource(f"snapshots/{offset:020d}.snap", len(data), data=data))
    for base, path in list_segments(storage, os.path.join(data_dir, "log")):
        if base > cut_offset:
            break
        size = segment_bytes if base == segment_base_offset else os.path.getsize(path)
        members.append(MemberSource(f"log/{base:020d}.log", size, path=path))
    return members


def newest_snapshot_at_or_before(
    data_dir: str, offset: int, storage: Storage = FILE_STORAGE
) -> tuple[int, bytes] | None:
    """The bytes of the newest valid snapshot at or before ``offset``, or ``None``.

    A snapshot deleted between listing and reading (a newer one replaced it) or damaged
    is skipped: an older one, or the whole log, still gives the same state.
    """
    snapshot_dir = os.path.join(data_dir, "snapshots")
    for snapshot_offset, path in list_snapshots(storage, snapshot_dir):
        if snapshot_offset > offset:
            continue
        try:
            data = storage.read_file(path)
            read_snapshot(storage, path, snapshot_offset)
        except (ValueError, OSError):
            continue
        return snapshot_offset, data
    return None


def write_archive(
    out: IO[bytes], members: list[MemberSource], cut_offset: int, cut_hash: bytes
) -> Manifest:
    """Write ``members`` and the manifest to ``out`` as a tar stream; return the manifest.

    ``out`` need not be seekable (the server may stream it). Each member is hashed as it
    is copied, so a file is read once.
    """
    listed: dict[str, tuple[int, str]] = {}
    snapshot_offset = None
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for member in members:
            assert SAFE_NAME.match(member.name), member.name
            digest = hashlib.sha256()
            if member.data is not None:
                source = _HashingReader(_BytesReader(member.data), digest)
                archive.addfile(_info(member.name, member.size_bytes), source)
            else:
                assert member.path is not None
                with open(member.path, "rb") as file:
                    archive.addfile(
                        _info(member.name, member.size_bytes), _HashingReader(file, digest)
                    )
            listed[member.name] = (member.size_bytes, digest.hexdigest())
            if member.name.startswith("snapshots/"):
                snapshot_offset = int(member.name[len("snapshots/") :].split(".")[0])
        manifest = Manifest(cut_offset, cut_hash, snapshot_offset, time.time_ns() // 1000, listed)
        text = _manifest_json(manifest)
        checksum = f"{hashlib.sha256(text).hexdigest()}  {MANIFEST_NAME}\n".encode()
        archive.addfile(_info(MANIFEST_NAME, len(text)), _BytesReader(text))
        archive.addfile(_info(MANIFEST_CHECKSUM_NAME, len(checksum)), _BytesReader(checksum))
    return manifest


def extract_archive(source: IO[bytes], directory: str) -> Manifest:
    """Extract an archive into the empty ``directory`` and check every checksum.

    The log and snapshot are not checked here; ``verify_log`` does that next.

    Raises:
        BackupDamaged: the archive is truncated, not a tar, has an unexpected member, or
            a member does not match the manifest (the message names it).
    """
    found: dict[str, tuple[int, str]] = {}
    manifest_text = checksum_text = None
    for subdirectory in ("log", "snapshots"):  # present even when empty (offset 0)
        os.makedirs(os.path.join(directory, subdirectory), exist_ok=True)
    try:
        with tarfile.open(fileobj=source, mode="r|") as archive:
            for info in archive:
                name = info.name
                if not info.isfile() or not SAFE_NAME.match(name):
                    raise BackupDamaged(f"the backup holds an unexpected member {name!r}")
                if name in found:
                    raise BackupDamaged(f"the backup holds member {name!r} twice")
                stream = archive.extractfile(info)
                assert stream is not None, "a regular file always has content"
                if name in (MANIFEST_NAME, MANIFEST_CHECKSUM_NAME):
                    if info.size > MANIFEST_BYTES_MAX:
                        raise BackupDamaged(f"the backup's {name} is {info.size} bytes")
                    data = stream.read()
                    if name == MANIFEST_NAME:
                        manifest_text = data
                    else:
                        checksum_text = data
                    found[name] = (len(data), hashlib.sha256(data).hexdigest())
                    continue
                found[name] = _extract_member(stream, os.path.join(directory, name))
    except (tarfile.TarError, EOFError) as exc:
        raise BackupDamaged(
            f"the backup is not a complete archive ({exc}); it may be truncated"
        ) from None
    if manifest_text is None or checksum_text is None:
        raise BackupDamaged(
            "the backup has no manifest.json and manifest.sha256; it may be truncated"
        )
    expected = checksum_text.decode("ascii", "replace").split(" ", 1)[0]
    if hashlib.sha256(manifest_text).hexdigest() != expected:
        raise BackupDamaged("manifest.json does not match its checksum in manifest.sha256")
    manifest = _parse_manifest(manifest_text)
    _check_members(manifest, found)
    return manifest


def verify_log(
    directory: str,
    manifest: Manifest,
    visit: Callable[[Record], None] | None = None,
    storage: Storage = FILE_STORAGE,
) -> None:
    """Check that the extracted log replays from offset 1 exactly to the cut.

    Args:
        visit: called with every record in order; without it, the records the snapshot
            covers are checked (frames and chain) but their bodies are not decoded.

    Raises:
        BackupDamaged: a frame, the chain, the cut or the snapshot does not check.
    """
    snapshot_offset = manifest.snapshot_offset or 0
    snapshot_hash = GENESIS_HASH
    if manifest.snapshot_offset is not None:
        name = f"snapshots/{snapshot_offset:020d}.snap"
        try:
            snapshot = read_snapshot(storage, os.path.join(directory, name), snapshot_offset)
        except ValueError as exc:
            raise BackupDamaged(f"the backup's snapshot {name} is not valid: {exc}") from None
        snapshot_hash = snapshot.last_hash
    if snapshot_offset > manifest.cut_offset:
        raise BackupDamaged(
            f"the backup's snapshot at {snapshot_offset} is after its cut {manifest.cut_offset}"
        )
    skip_through = 0 if visit is not None else snapshot_offset
    walk = _LogWalk(directory, skip_through, snapshot_hash, storage)
    try:
        for record in walk:
            if record.offset == snapshot_offset and record.hash != snapshot_hash:
                raise BackupDamaged(
                    f"the backup's snapshot does not belong to its log: the record at "
                    f"{snapshot_offset} does not hash to the snapshot's last_hash"
                )
            if visit is not None:
                visit(record)
    except CorruptLog as exc:
        raise BackupDamaged(f"the backup's log is damaged: {exc}") from None
    if walk.last_offset != manifest.cut_offset or walk.last_hash != manifest.cut_hash:
        raise BackupDamaged(
            f"the backup's log ends at offset {walk.last_offset}, but its manifest says the cut is "
            f"offset {manifest.cut_offset} with hash {manifest.cut_hash.hex()[:16]}…"
        )


def truncate_log(directory: str, offset: int, snapshot_offset: int | None) -> None:
    """Cut a verified extracted log right after the record at ``offset`` (point in time).

    Segments after it are removed, as is the snapshot if it is after ``offset``, so the
    directory holds the database exactly as of ``offset``.
    """
    if snapshot_offset is not None and snapshot_offset > offset:
        os.unlink(os.path.join(directory, "snapshots", f"{snapshot_offset:020d}.snap"))
    log_dir = os.path.join(directory, "log")
    for base, path in list_segments(FILE_STORAGE, log_dir):
        if base > offset:
            os.unlink(path)
            continue
        end = _frame_end(path, base, offset)
        if end is not None:
            os.truncate(path, end)


class _LogWalk:
    """Every record of an extracted log, no torn tail allowed (each segment whole).

    Afterwards ``last_offset`` and ``last_hash`` are where the chain ended, counting the
    records the snapshot covers, which are checked but not yielded.
    """

    def __init__(
        self, directory: str, skip_through: int, skip_hash: bytes, storage: Storage
    ) -> None:
        self.log_dir = os.path.join(directory, "log")
        self.skip_through = skip_through
        self.skip_hash = skip_hash
        self.storage = storage
        self.last_offset = 0
        self.last_hash = GENESIS_HASH

    def __iter__(self) -> Iterator[Record]:
        for base, path in list_segments(self.storage, self.log_dir):
            expected = self.last_offset + 1
            if base != expected:
                raise CorruptLog(path, 0, f"expected a segment starting at offset {expected}", base)
            reader = SegmentReader(
                self.storage,
                path,
                base,
                self.last_hash,
                RECORD_BYTES_MAX,
                is_last=False,
                skip_through=self.skip_through,
                skip_hash=self.skip_hash,
            )
            yield from reader
            assert reader.last_hash is not None, "the chain starts at GENESIS_HASH"
            self.last_offset, self.last_hash = reader.next_offset - 1, reader.last_hash


def _frame_end(path: str, base: int, offset: int) -> int | None:
    """Where the frame of record ``offset`` ends in a verified segment, or None if past it."""
    with open(path, "rb") as file:
        data = file.read()
    position, current = SEGMENT_HEADER_BYTES, base
    while position < len(data):
        length = FRAME_HEADER.unpack_from(data, position)[0]
        position += FRAME_HEADER.size + length
        if current == offset:
            return position
        current += 1
    return None


def _extract_member(stream: IO[bytes], path: str) -> tuple[int, str]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with open(path, "wb") as file:
        while chunk := stream.read(COPY_CHUNK_BYTES):
            digest.update(chunk)
            file.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _manifest_json(manifest: Manifest) -> bytes:
    document = {
        "format": BACKUP_FORMAT,
        "version": BACKUP_VERSION,
        "created_us": manifest.created_us,
        "cut_offset": manifest.cut_offset,
        "cut_hash": manifest.cut_hash.hex(),
        "snapshot_offset": manifest.snapshot_offset,
        "members": [
            {"name": name, "size_bytes": size, "sha256": sha}
            for name, (size, sha) in manifest.members.items()
        ],
    }
    return json.dumps(document, indent=1).encode()


def _parse_manifest(text: bytes) -> Manifest:
    try:
        document = json.loads(text)
        if document.get("format") != BACKUP_FORMAT:
            raise BackupDamaged(f"manifest.json is not a {BACKUP_FORMAT} manifest")
        if document.get("version") != BACKUP_VERSION:
            raise BackupDamaged(
                f"the backup is format version {document.get('version')!r}; this version of "
                f"Cosmictron reads version {BACKUP_VERSION}"
            )
        members = {
            str(entry["name"]): (int(entry["size_bytes"]), str(entry["sha256"]))
            for entry in document["members"]
        }
        snapshot_offset = document["snapshot_offset"]
        return Manifest(
            int(document["cut_offset"]),
            bytes.fromhex(document["cut_hash"]),
            None if snapshot_offset is None else int(snapshot_offset),
            int(document["created_us"]),
            members,
        )
    except BackupDamaged:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackupDamaged(f"manifest.json is not valid ({type(exc).__name__}: {exc})") from None


def _check_members(manifest: Manifest, found: dict[str, tuple[int, str]]) -> None:
    for name, (size, sha) in manifest.members.items():
        if name not in found:
            raise BackupDamaged(f"the backup lacks {name}, which its manifest lists")
        found_size, found_sha = found[name]
        if found_size != size:
            raise BackupDamaged(f"{name} is {found_size} bytes, the manifest says {size}")
        if found_sha != sha:
            raise BackupDamaged(f"{name} does not match its SHA-256 in the manifest")
    extra = sorted(set(found) - set(manifest.members) - {MANIFEST_NAME, MANIFEST_CHECKSUM_NAME})
    if extra:
        raise BackupDamaged(f"the backup holds {extra[0]}, which its manifest does not list")


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = int(time.time())
    return info


class _BytesReader:
    """A minimal readable view of bytes (``io.BytesIO`` would copy them)."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else self._position + size
        chunk = bytes(self._view[self._position : end])
        self._position += len(chunk)
        return chunk


class _HashingReader:
    """Hashes what ``tarfile`` reads from the wrapped file, so each file is read once."""

    def __init__(self, inner: Any, digest: Any) -> None:
        self._inner = inner
        self._digest = digest

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self._inner.read(size)
        self._digest.update(chunk)
        return chunk
