"""``Storage``: everything the durability layer does to a disk, behind one interface.

The commit log, snapshots and recovery never call ``os`` directly; they call a ``Storage``.
``FileStorage`` is the real disk. ``cosmictron.testing.MemoryStorage`` keeps files in
memory and ``cosmictron.testing.FaultyStorage`` builds on it to lose unsynced writes at a
simulated crash, so the same durability code can be run against power cuts, torn writes
and full disks from a seed (the design follows SpacetimeDB's ``Repo`` trait and SQLite's
``test6.c``; see STYLE.md, "Deterministic simulation of the commit log").

Files are named by path strings and, once opened, by integer *handles* (for
``FileStorage``, the file descriptors themselves, so the append path costs no extra call).

The contract every implementation must keep, and ``cosmictron.testing.check_storage``
checks:

- ``open_append(path)`` must open an existing file so that every write goes to its end,
  and must raise ``FileNotFoundError`` if it does not exist.
- ``open_overwrite(path)`` must create the file, or empty an existing one, and open it
  for writing at the start.
- ``open_write(path)`` must open an existing file for ``writev_at``, changing nothing,
  and must raise ``FileNotFoundError`` if it does not exist.
- ``writev_at(handle, position, parts)`` must write the parts, in order, starting at byte
  ``position`` (past the end, the gap reads as zeros) and return the number of bytes
  written; short and failed writes are as for ``write``.
- ``write`` and ``writev`` must write at the end of what the handle has written so far
  (the end of the file for an append handle) and return the number of bytes written;
  fewer than given is a short write, which the caller must handle. A failed write must
  raise ``OSError``, and may leave a prefix of the bytes in the file.
- ``read_file(path)`` must return every byte written to the file so far, synced or not,
  and must raise ``FileNotFoundError`` if it does not exist.
- ``size(handle)`` must return the file's current length in bytes.
- ``truncate(handle, size_bytes)`` must cut the file to ``size_bytes``; later writes to
  an append handle must go to the new end.
- ``sync(handle, method)`` must make the file's content and length durable: after it
  returns, no crash may change what ``read_file`` returns for the bytes written before
  it. ``method`` is ``"fsync"`` or ``"fdatasync"``. A failed sync must raise ``OSError``,
  and the caller must assume unsynced data is lost (it never retries).
- ``close(handle)`` must release the handle; it does not sync.
- ``allocate(handle, position, size_bytes)`` is optional: it must write ``size_bytes``
  zeros at ``position`` (through ``writev_at``, so it fails as a write fails) and return
  the bytes written. ``FileStorage`` then writes into that range through a shared memory
  map (a copy into the page cache, no system call); a storage without it gets the zeros
  written with ``writev_at``.
- ``rename(source, target)`` must replace ``target`` atomically: at any crash, ``target``
  is the old file or the new one, never a mix.
- ``unlink(path)`` must remove the name; ``list_directory(path)`` must return the names
  in a directory (in no particular order); ``make_directory(path)`` must create one
  directory and raise ``FileExistsError`` if the name exists; ``is_directory(path)`` must
  say whether a directory exists.
- A name created, renamed or removed must survive a crash only once ``sync_directory`` of
  the directory holding it has returned.
- ``lock(directory)`` must return an object whose ``release()`` gives the lock up, and
  must raise ``DatabaseInUse`` while another holder has it.
"""

from __future__ import annotations

import mmap
import os
import sys
from collections.abc import Sequence
from typing import Protocol

from cosmictron.durability.lock import DirectoryLock

_OPEN_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)

MAPPED_WRITES = sys.platform.startswith("linux") and not os.environ.get("COSMICTRON_PURE")
"""Whether ``FileStorage.allocate`` maps what it allocates (docs/design/hot-path.md,
"Fifth round"). Linux only: there ``fsync``/``fdatasync`` of the file
write back pages dirtied through a shared map as they do pages dirtied by ``write``, and
a killed process's dirty pages stay in the page cache; other systems keep ``pwritev``.
``COSMICTRON_PURE=1`` turns it off with the compiled kernels, so the suite runs both."""


class Lock(Protocol):
    """A held lock on a data directory."""

    def release(self) -> None:
        """Give the lock up; idempotent."""


class Storage(Protocol):
    """What the durability layer needs from a disk; the contract is the module docstring."""

    def open_append(self, path: str) -> int: ...
    def open_overwrite(self, path: str) -> int: ...
    def open_write(self, path: str) -> int: ...
    def writev_at(self, handle: int, position: int, parts: Sequence[bytes]) -> int: ...
    def write(self, handle: int, data: bytes | memoryview) -> int: ...
    def writev(self, handle: int, parts: Sequence[bytes]) -> int: ...
    def read_file(self, path: str) -> bytes: ...
    def size(self, handle: int) -> int: ...
    def truncate(self, handle: int, size_bytes: int) -> None: ...
    def sync(self, handle: int, method: str) -> None: ...
    def close(self, handle: int) -> None: ...
    def rename(self, source: str, target: str) -> None: ...
    def unlink(self, path: str) -> None: ...
    def list_directory(self, path: str) -> list[str]: ...
    def make_directory(self, path: str) -> None: ...
    def is_directory(self, path: str) -> bool: ...
    def sync_directory(self, path: str) -> None: ...
    def lock(self, directory: str) -> Lock: ...


class _Window:
    """A shared map of ``[start, end)`` of one file: zeros ``allocate`` wrote."""

    __slots__ = ("end", "map", "size", "start")

    def __init__(self, handle: int, position: int, end: int) -> None:
        self.start = position - position % mmap.ALLOCATIONGRANULARITY
        self.end = end
        self.size = end - self.start
        self.map = mmap.mmap(handle, self.size, offset=self.start)


class FileStorage:
    """The real disk: each method is one ``os`` call (or a few), handles are descriptors.

    ``write`` and ``writev`` are the ``os`` functions themselves, so appending through a
    ``FileStorage`` costs exactly what calling ``os.writev`` did.

    A write into a range ``allocate`` zero-filled is a copy into a shared map of it, not
    a ``pwritev``: a system call and ext4's buffered-write path cost about 5 µs here, a
    third of an in-process reducer call under ``never`` (docs/design/hot-path.md). The
    bytes land in the same page cache either way: a reader, a sync and a killed process
    see them exactly as they see written ones. Only the commit log allocates, and only
    when it writes per record (not under ``always``, whose one write per batch follows a
    sync, where a copy into a just-cleaned page costs what ``pwritev`` does).
    """

    write = staticmethod(os.write)
    writev = staticmethod(os.writev)

    def __init__(self) -> None:
        self._windows: dict[int, _Window] = {}
        """The mapped range of each handle that has one (only the commit log's segment)."""

    def allocate(self, handle: int, position: int, size_bytes: int) -> int:
        written = self.writev_at(handle, position, (bytes(size_bytes),))
        old = self._windows.pop(handle, None)
        if old is not None:
            old.map.close()
        if MAPPED_WRITES and written == size_bytes:
            try:
                self._windows[handle] = _Window(handle, position, position + size_bytes)
            except (OSError, ValueError):  # not mappable (say, opened write-only): pwritev
                pass
        return written

    def close(self, handle: int) -> None:
        window = self._windows.pop(handle, None)
        if window is not None:
            window.map.close()
        os.close(handle)

    def truncate(self, handle: int, size_bytes: int) -> None:
        window = self._windows.get(handle)
        if window is not None and size_bytes < window.end:  # never touch past the end
            del self._windows[handle]
            window.map.close()
        os.ftruncate(handle, size_bytes)

    rename = staticmethod(os.replace)
    unlink = staticmethod(os.unlink)
    list_directory = staticmethod(os.listdir)
    make_directory = staticmethod(os.mkdir)
    is_directory = staticmethod(os.path.isdir)

    def open_append(self, path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_APPEND)

    def open_overwrite(self, path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def open_write(self, path: str) -> int:
        return os.open(path, os.O_RDWR)  # read too: a shared map needs it (``allocate``)

    def writev_at(self, handle: int, position: int, parts: Sequence[bytes]) -> int:
        window = self._windows.get(handle)
        if window is not None:
            at = position - window.start
            if at >= 0:
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                end = at + len(data)
                if end <= window.size:
                    window.map[at:end] = data
                    return end - at
        return os.pwritev(handle, parts, position)

    def read_file(self, path: str) -> bytes:
        with open(path, "rb") as file:
            return file.read()

    def size(self, handle: int) -> int:
        return os.fstat(handle).st_size

    def sync(self, handle: int, method: str) -> None:
        # Looked up per call (syncs are rare next to appends) so tests can inject failures
        # with monkeypatch; platforms without fdatasync (macOS) fall back to fsync.
        getattr(os, method, os.fsync)(handle)

    def sync_directory(self, path: str) -> None:
        fd = os.open(path, _OPEN_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, directory: str) -> Lock:
        return DirectoryLock(directory)


FILE_STORAGE = FileStorage()
"""The shared real disk. Its only state is the mapped windows, keyed by descriptor: a
descriptor is the process's own while open, and ``close`` drops its window first."""
