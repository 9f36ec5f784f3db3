"""``check_storage``: the ``Storage`` contract (``durability/storage.py``) as executable checks.

Each check states one "must" sentence of the contract. The real disk and every fake run
the same checks (``tests/durability/test_storage.py``), which is what lets the crash
simulation trust a fake. Checks raise ``AssertionError`` explicitly rather than using
``assert``, so they still check under ``python -O``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cosmictron.durability import Storage
from cosmictron.errors import DatabaseInUse

MakeStorage = Callable[[], tuple[Storage, str]]
"""Returns a fresh storage and an existing, empty directory in it."""


def check_storage(make: MakeStorage) -> list[str]:
    """Run every check on fresh storages from ``make``; return the names of those run.

    Raises:
        AssertionError: a check failed; the message names it and what went wrong.
    """
    for check in CHECKS:
        storage, root = make()
        try:
            check(storage, root)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc
    return [check.__name__ for check in CHECKS]


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _expect_raises(error: type[BaseException], call: Callable[[], object], what: str) -> None:
    try:
        call()
    except error:
        return
    raise AssertionError(f"{what} must raise {error.__name__}")


def overwrite_creates_or_empties(storage: Storage, root: str) -> None:
    path = os.path.join(root, "file")
    handle = storage.open_overwrite(path)
    _expect(storage.write(handle, b"hello world") == 11, "write returns the byte count")
    storage.close(handle)
    handle = storage.open_overwrite(path)
    _expect(storage.size(handle) == 0, "open_overwrite empties an existing file")
    storage.write(handle, b"new")
    storage.write(handle, memoryview(b"er"))
    storage.close(handle)
    _expect(storage.read_file(path) == b"newer", "writes land one after another")


def append_writes_at_the_end(storage: Storage, root: str) -> None:
    path = os.path.join(root, "log")
    _expect_raises(FileNotFoundError, lambda: storage.open_append(path), "open_append(missing)")
    handle = storage.open_overwrite(path)
    storage.write(handle, b"head")
    storage.close(handle)
    handle = storage.open_append(path)
    _expect(storage.writev(handle, [b"ab", b"", b"cde"]) == 5, "writev returns the total")
    _expect(storage.size(handle) == 9, "size counts every byte written")
    storage.sync(handle, "fdatasync")
    storage.sync(handle, "fsync")
    storage.close(handle)
    _expect(storage.read_file(path) == b"headabcde", "append handles write at the end")


def truncate_moves_the_end(storage: Storage, root: str) -> None:
    path = os.path.join(root, "log")
    storage.close(storage.open_overwrite(path))
    handle = storage.open_append(path)
    storage.write(handle, b"0123456789")
    storage.truncate(handle, 4)
    _expect(storage.size(handle) == 4, "truncate cuts the file")
    storage.write(handle, b"xy")
    storage.close(handle)
    _expect(storage.read_file(path) == b"0123xy", "appends continue at the new end")


def names_can_be_renamed_listed_and_removed(storage: Storage, root: str) -> None:
    first, second = os.path.join(root, "a.tmp"), os.path.join(root, "b")
    for path, data in ((first, b"new"), (second, b"old")):
        handle = storage.open_overwrite(path)
        storage.write(handle, data)
        storage.close(handle)
    _expect(sorted(storage.list_directory(root)) == ["a.tmp", "b"], "list_directory")
    storage.rename(first, second)
    storage.sync_directory(root)
    _expect(storage.read_file(second) == b"new", "rename replaces the target")
    _expect(storage.list_directory(root) == ["b"], "rename removes the old name")
    storage.unlink(second)
    _expect(storage.list_directory(root) == [], "unlink removes the name")
    _expect_raises(FileNotFoundError, lambda: storage.read_file(second), "read_file(missing)")


def directories_are_made_once(storage: Storage, root: str) -> None:
    path = os.path.join(root, "sub")
    _expect(not storage.is_directory(path), "is_directory(missing) is false")
    storage.make_directory(path)
    _expect(storage.is_directory(path), "make_directory creates it")
    _expect_raises(FileExistsError, lambda: storage.make_directory(path), "make_directory twice")
    storage.sync_directory(root)
    _expect(storage.list_directory(root) == ["sub"], "a directory is listed in its parent")
    _expect(storage.list_directory(path) == [], "a new directory is empty")


def lock_excludes_a_second_holder(storage: Storage, root: str) -> None:
    lock = storage.lock(root)
    _expect_raises(DatabaseInUse, lambda: storage.lock(root), "a second lock")
    lock.release()
    lock.release()  # idempotent
    storage.lock(root).release()


def positional_writes_overwrite_in_place(storage: Storage, root: str) -> None:
    path = os.path.join(root, "file")
    handle = storage.open_overwrite(path)
    storage.write(handle, b"abcdef")
    storage.close(handle)
    _expect_raises(FileNotFoundError, lambda: storage.open_write(path + ".missing"), "open_write")
    handle = storage.open_write(path)
    _expect(storage.read_file(path) == b"abcdef", "open_write must change nothing")
    _expect(storage.writev_at(handle, 2, [b"X", b"Y"]) == 2, "writev_at returns bytes written")
    _expect(storage.read_file(path) == b"abXYef", f"in place, got {storage.read_file(path)!r}")
    storage.writev_at(handle, 8, [b"Z"])
    _expect(storage.read_file(path) == b"abXYef\0\0Z", "a gap past the end reads as zeros")
    _expect(storage.size(handle) == 9, "size counts the gap")
    storage.close(handle)


CHECKS = [
    overwrite_creates_or_empties,
    positional_writes_overwrite_in_place,
    append_writes_at_the_end,
    truncate_moves_the_end,
    names_can_be_renamed_listed_and_removed,
    directories_are_made_once,
    lock_excludes_a_second_holder,
]
