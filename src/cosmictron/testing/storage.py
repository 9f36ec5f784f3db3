"""``MemoryStorage``: a ``Storage`` whose files live in memory, every change durable at once.

It is the fast, well-behaved disk, and the base of ``FaultyStorage`` (``faulty.py``),
which overrides the hooks marked below to remember what is not yet durable.

It keeps one lock around its state, because the durability layer calls its storage from
the writer, the group-commit leader and the snapshot thread.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from cosmictron.errors import DatabaseInUse

_normalize = os.path.normpath


@dataclass
class _File:
    """One file's bytes; ``durable`` and ``pending`` are only used by ``FaultyStorage``."""

    number: int
    content: bytearray = field(default_factory=bytearray)
    durable: bytearray = field(default_factory=bytearray)
    pending: list[tuple[int, bytes] | int] = field(default_factory=list)
    """Unsynced changes in order: ``(position, data)`` for a write, an int for a truncate."""


@dataclass
class _Handle:
    file: _File
    append: bool
    position: int = 0


class _MemoryLock:
    """A directory lock held in a ``MemoryStorage``; a crash releases it."""

    def __init__(self, storage: MemoryStorage, directory: str) -> None:
        self._storage = storage
        self._directory = directory
        self._generation = storage.generation

    def release(self) -> None:
        storage = self._storage
        with storage.mutex:
            if storage.generation == self._generation:
                storage.locked_directories.discard(self._directory)
            self._generation = -1


class MemoryStorage:
    """A ``Storage`` whose files live in memory; every change is durable immediately.

    Paths are normalized with ``os.path.normpath``; ``/`` always exists.
    """

    def __init__(self) -> None:
        self.mutex = threading.RLock()
        self.files: dict[str, _File] = {}
        self.directories: set[str] = {"/"}
        self.locked_directories: set[str] = set()
        self.generation = 0
        """Bumped by a crash: handles and locks from an older generation are dead."""
        self._handles: dict[int, _Handle] = {}
        self._next_handle = 3
        self._next_file_number = 1

    # -- files -------------------------------------------------------------------------

    def open_append(self, path: str) -> int:
        with self.mutex:
            return self._new_handle(self._existing(path), append=True)

    def open_overwrite(self, path: str) -> int:
        path = _normalize(path)
        with self.mutex:
            self._require_directory(os.path.dirname(path))
            file = self.files.get(path)
            if file is None:
                file = _File(self._next_file_number)
                self._next_file_number += 1
                self._link(path, file)
            else:
                self._truncate(file, 0)
            return self._new_handle(file, append=False)

    def open_write(self, path: str) -> int:
        with self.mutex:
            return self._new_handle(self._existing(path), append=False)

    def writev_at(self, handle: int, position: int, parts: Sequence[bytes]) -> int:
        with self.mutex:
            target = self._handle(handle)
            if target.append:
                raise OSError(errno.EINVAL, "positional write on an append handle")
            target.position = position
            return self._write(target, b"".join(parts))

    def write(self, handle: int, data: bytes | memoryview) -> int:
        with self.mutex:
            return self._write(self._handle(handle), bytes(data))

    def writev(self, handle: int, parts: Sequence[bytes]) -> int:
        with self.mutex:
            return self._write(self._handle(handle), b"".join(parts))

    def read_file(self, path: str) -> bytes:
        with self.mutex:
            return bytes(self._existing(path).content)

    def size(self, handle: int) -> int:
        with self.mutex:
            return len(self._handle(handle).file.content)

    def truncate(self, handle: int, size_bytes: int) -> None:
        with self.mutex:
            self._truncate(self._handle(handle).file, size_bytes)

    def sync(self, handle: int, method: str) -> None:
        assert method in ("fsync", "fdatasync"), method
        with self.mutex:
            self._sync_file(self._handle(handle).file)

    def close(self, handle: int) -> None:
        with self.mutex:
            self._handle(handle)
            del self._handles[handle]

    # -- names -------------------------------------------------------------------------

    def rename(self, source: str, target: str) -> None:
        source, target = _normalize(source), _normalize(target)
        with self.mutex:
            file = self._existing(source)
            self._require_directory(os.path.dirname(target))
            self._rename(source, target, file)

    def unlink(self, path: str) -> None:
        with self.mutex:
            self._existing(path)
            self._unlink(_normalize(path))

    def list_directory(self, path: str) -> list[str]:
        path = _normalize(path)
        with self.mutex:
            self._require_directory(path)
            names = self.files.keys() | self.directories
            return sorted(os.path.basename(p) for p in names if p != "/" and _parent(p) == path)

    def make_directory(self, path: str) -> None:
        path = _normalize(path)
        with self.mutex:
            if path in self.directories or path in self.files:
                raise FileExistsError(errno.EEXIST, "File exists", path)
            self._require_directory(os.path.dirname(path))
            self._make_directory(path)

    def is_directory(self, path: str) -> bool:
        with self.mutex:
            return _normalize(path) in self.directories

    def sync_directory(self, path: str) -> None:
        with self.mutex:
            self._require_directory(_normalize(path))
            self._sync_names(_normalize(path))

    def lock(self, directory: str) -> _MemoryLock:
        directory = _normalize(directory)
        with self.mutex:
            if directory in self.locked_directories:
                raise DatabaseInUse(
                    f"data directory {directory} is in use in this MemoryStorage; close the "
                    "other PersistenceLayer first"
                )
            self.locked_directories.add(directory)
            return _MemoryLock(self, directory)

    # -- hooks that FaultyStorage extends to remember what is not yet durable ------------

    def _write_at(self, file: _File, position: int, data: bytes) -> None:
        _overwrite(file.content, position, data)

    def _truncate(self, file: _File, size_bytes: int) -> None:
        _resize(file.content, size_bytes)

    def _sync_file(self, file: _File) -> None:
        """Every change is durable already."""

    def _link(self, path: str, file: _File) -> None:
        self.files[path] = file

    def _unlink(self, path: str) -> None:
        del self.files[path]

    def _rename(self, source: str, target: str, file: _File) -> None:
        del self.files[source]
        self.files[target] = file

    def _make_directory(self, path: str) -> None:
        self.directories.add(path)

    def _sync_names(self, directory: str) -> None:
        """Every name is durable already."""

    # -- helpers -----------------------------------------------------------------------

    def _write(self, handle: _Handle, data: bytes) -> int:
        file = handle.file
        position = len(file.content) if handle.append else handle.position
        self._write_at(file, position, data)
        handle.position = position + len(data)
        return len(data)

    def _new_handle(self, file: _File, append: bool) -> int:
        number = self._next_handle
        self._next_handle += 1
        self._handles[number] = _Handle(file, append)
        return number

    def _handle(self, handle: int) -> _Handle:
        try:
            return self._handles[handle]
        except KeyError:
            raise OSError(errno.EBADF, "Bad file descriptor (closed, or before a crash)") from None

    def _existing(self, path: str) -> _File:
        try:
            return self.files[_normalize(path)]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "No such file", path) from None

    def _require_directory(self, path: str) -> None:
        if path not in self.directories:
            raise FileNotFoundError(errno.ENOENT, "No such directory", path)


def _parent(path: str) -> str:
    return os.path.dirname(path)


def _overwrite(content: bytearray, position: int, data: bytes) -> None:
    """Write ``data`` at ``position``, filling any gap with zeros (a sparse file's hole)."""
    if position > len(content):
        content.extend(bytes(position - len(content)))
    content[position : position + len(data)] = data


def _resize(content: bytearray, size_bytes: int) -> None:
    if size_bytes < len(content):
        del content[size_bytes:]
    else:
        content.extend(bytes(size_bytes - len(content)))
