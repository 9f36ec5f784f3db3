"""The Storage contract on the real disk and the fakes, and FaultyStorage's crash model.

``check_storage`` runs the same checks on ``FileStorage`` (in a temporary directory),
``MemoryStorage`` and a ``FaultyStorage`` with no faults. The rest pins what a crash of
``FaultyStorage`` may and may not do, and each injected fault.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cosmictron.durability import FileStorage, Storage
from cosmictron.testing import FaultyStorage, MemoryStorage, check_storage


def test_file_storage_passes_the_contract(tmp_path: Path) -> None:
    counter = iter(range(1000))

    def make() -> tuple[Storage, str]:
        root = tmp_path / str(next(counter))
        root.mkdir()
        return FileStorage(), os.fspath(root)

    assert len(check_storage(make)) >= 6


@pytest.mark.parametrize("kind", ["memory", "faulty"])
def test_memory_storages_pass_the_contract(kind: str) -> None:
    def make() -> tuple[Storage, str]:
        storage = MemoryStorage() if kind == "memory" else FaultyStorage(0)
        storage.make_directory("/root")
        return storage, "/root"

    assert len(check_storage(make)) >= 6


def write_file(storage: FaultyStorage, path: str, data: bytes, sync: bool) -> int:
    handle = storage.open_overwrite(path)
    storage.write(handle, data)
    if sync:
        storage.sync(handle, "fsync")
        storage.sync_directory(os.path.dirname(path))
    return handle


def test_a_crash_never_touches_synced_data() -> None:
    for seed in range(50):
        storage = FaultyStorage(seed)
        storage.make_directory("/d")
        handle = write_file(storage, "/d/log", b"synced", sync=True)
        storage.close(handle)
        handle = storage.open_append("/d/log")
        storage.write(handle, b"-unsynced-tail")
        storage.crash()
        data = storage.read_file("/d/log")
        assert data.startswith(b"synced"), (seed, data)
        assert len(data) <= len(b"synced-unsynced-tail")


def test_crash_outcomes_cover_apply_drop_and_tear() -> None:
    outcomes = set()
    for seed in range(100):
        storage = FaultyStorage(seed)
        storage.make_directory("/d")
        storage.close(write_file(storage, "/d/log", b"", sync=True))
        handle = storage.open_append("/d/log")
        storage.write(handle, b"x" * 100)
        storage.crash()
        data = storage.read_file("/d/log")
        if data == b"x" * 100:
            outcomes.add("applied")
        elif data == b"":
            outcomes.add("dropped or torn to nothing")
        elif set(data) == {ord("x")}:
            outcomes.add("torn")
        else:
            outcomes.add("garbage")
    assert outcomes == {"applied", "dropped or torn to nothing", "torn", "garbage"}


def test_unsynced_names_may_be_lost_and_handles_die() -> None:
    lost = kept = 0
    for seed in range(50):
        storage = FaultyStorage(seed)
        storage.make_directory("/d")
        storage.sync_directory("/")
        handle = write_file(storage, "/d/new", b"data", sync=False)
        lock = storage.lock("/d")
        storage.crash()
        if "new" in storage.list_directory("/d"):
            kept += 1
        else:
            lost += 1
        with pytest.raises(OSError) as raised:
            storage.write(handle, b"after")
        assert raised.value.errno == errno.EBADF
        lock.release()  # a no-op: the crash released it
        storage.lock("/d").release()
    assert lost and kept


def test_rename_survives_a_crash_as_one_name_or_the_other() -> None:
    for seed in range(50):
        storage = FaultyStorage(seed)
        storage.make_directory("/d")
        storage.sync_directory("/")
        storage.close(write_file(storage, "/d/file.tmp", b"new", sync=False))
        handle = storage.open_append("/d/file.tmp")
        storage.sync(handle, "fsync")
        storage.rename("/d/file.tmp", "/d/file")
        storage.crash()
        names = storage.list_directory("/d")
        assert names in (["file"], ["file.tmp"], []), names
        if names == ["file"]:
            assert storage.read_file("/d/file") == b"new"


def test_injected_faults() -> None:
    storage = FaultyStorage(1, read_corruption=1.0, write_failure=1.0, sync_failure=1.0)
    storage.make_directory("/d")
    storage.faults_enabled = False
    handle = write_file(storage, "/d/file", b"abcdef", sync=True)
    storage.faults_enabled = True
    assert storage.read_file("/d/file") != b"abcdef"
    with pytest.raises(OSError) as raised:
        storage.write(handle, b"0123456789")
    assert raised.value.errno == errno.ENOSPC
    storage.faults_enabled = False
    data = storage.read_file("/d/file")
    assert data.startswith(b"abcdef") and len(data) < len(b"abcdef0123456789")  # partial
    storage.faults_enabled = True
    with pytest.raises(OSError) as raised:
        storage.sync(handle, "fdatasync")
    assert raised.value.errno == errno.EIO
    assert storage.faults_injected == 3
