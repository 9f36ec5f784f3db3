"""Small filesystem helpers whose point is crash safety: durable directories and renames.

A new file is only reachable after a crash if its directory entry was synced too, so every
helper that creates a name syncs the directory that holds it.
"""

from __future__ import annotations

import os

_OPEN_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)


def fsync_directory(path: str) -> None:
    """Sync a directory so the names created or renamed in it survive a power cut."""
    fd = os.open(path, _OPEN_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_directory(path: str) -> None:
    """Create ``path`` and any missing parents, syncing each parent that gained an entry."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent != path:
        ensure_directory(parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    fsync_directory(parent)


def write_file_durably(path: str, parts: list[bytes]) -> None:
    """Write a whole file so that after a crash it exists complete or not at all.

    The bytes go to ``path + ".tmp"``, which is synced, renamed over ``path``, and the
    directory synced. Readers must delete or ignore leftover ``.tmp`` files.
    """
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for part in parts:
            view = memoryview(part)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_directory(os.path.dirname(path))
