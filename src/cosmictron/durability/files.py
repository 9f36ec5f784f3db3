"""Small filesystem helpers whose point is crash safety: durable directories and renames.

A new file is only reachable after a crash if its directory entry was synced too, so every
helper that creates a name syncs the directory that holds it. Every helper takes the
``Storage`` to use; the default is the real disk (``host/`` calls them for its own files).
"""

from __future__ import annotations

import os

from cosmictron.durability.storage import FILE_STORAGE, Storage


def fsync_directory(path: str, storage: Storage = FILE_STORAGE) -> None:
    """Sync a directory so the names created or renamed in it survive a power cut."""
    storage.sync_directory(path)


def ensure_directory(path: str, storage: Storage = FILE_STORAGE) -> None:
    """Create ``path`` and any missing parents, syncing each parent that gained an entry."""
    path = os.path.abspath(path)
    if storage.is_directory(path):
        return
    parent = os.path.dirname(path)
    if parent != path:
        ensure_directory(parent, storage)
    try:
        storage.make_directory(path)
    except FileExistsError:
        return
    storage.sync_directory(parent)


def write_file_durably(path: str, parts: list[bytes], storage: Storage = FILE_STORAGE) -> None:
    """Write a whole file so that after a crash it exists complete or not at all.

    The bytes go to ``path + ".tmp"``, which is synced, renamed over ``path``, and the
    directory synced. Readers must delete or ignore leftover ``.tmp`` files.
    """
    temporary = path + ".tmp"
    handle = storage.open_overwrite(temporary)
    try:
        for part in parts:
            view = memoryview(part)
            while view:
                view = view[storage.write(handle, view) :]
        storage.sync(handle, "fsync")
    finally:
        storage.close(handle)
    storage.rename(temporary, path)
    storage.sync_directory(os.path.dirname(path))
