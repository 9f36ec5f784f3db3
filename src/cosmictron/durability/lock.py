"""The data directory's lock: one process owns a database, because two writers would
interleave records and break the hash chain.

``<data_dir>/LOCK`` is held with ``flock(LOCK_EX | LOCK_NB)`` and holds the owner's pid, so
the error can say who has it. The kernel drops the lock when the process dies, so a crash
never leaves a stale lock; the file itself is never deleted (deleting it would let a second
process lock a new file while the first still holds the old one).
"""

from __future__ import annotations

import fcntl
import os

from cosmictron.errors import DatabaseInUse


class DirectoryLock:
    """An exclusive lock on a data directory, held from construction until :meth:`release`."""

    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, "LOCK")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DatabaseInUse(
                f"data directory {data_dir} is in use by process {owner}; stop that process "
                "or use another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Release the lock; idempotent."""
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
