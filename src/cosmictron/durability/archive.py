"""The backup archive container: checksummed files in one tar, with a manifest.

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
``cut_offset``, whose record hashes to ``cut_hash``. The manifest comes last so members
are hashed while they are copied and the archive can be streamed.

The container is *valid* when: it reads as a tar to its end; every member is a regular
file with a safe relative name (``names.is_backup_member``, matched whole), present
once; ``manifest.sha256`` matches
``manifest.json``, which parses and has this format and version; every other member is
listed in the manifest with its size and SHA-256, and every listed member is present.
What the log and snapshot inside must satisfy is in ``backup.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import time
from dataclasses import dataclass
from typing import IO, Any

from cosmictron import bounded_json, names
from cosmictron.errors import BackupDamaged, InvalidRequest

BACKUP_FORMAT = "cosmictron-backup"
BACKUP_VERSION = 1
MANIFEST_NAME = "manifest.json"
MANIFEST_CHECKSUM_NAME = "manifest.sha256"
COPY_CHUNK_BYTES = 1 << 20
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
            assert names.is_backup_member(member.name), member.name
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
                if not info.isfile() or not names.is_backup_member(name):
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
        document = bounded_json.loads(text, "manifest.json")
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
    except InvalidRequest as exc:  # not UTF-8, not JSON, or nested too deeply
        raise BackupDamaged(str(exc)) from None
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
