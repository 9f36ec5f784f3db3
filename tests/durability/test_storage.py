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
from cosmictron.durability.storage import MAPPED_WRITES
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


@pytest.mark.skipif(
    not MAPPED_WRITES, reason="mapped writes are Linux only, off when COSMICTRON_PURE=1"
)
def test_file_storage_writes_into_allocated_zeros_through_a_map(tmp_path: Path) -> None:
    """Writes inside what ``allocate`` zero-filled go through a shared map: a reader sees
    them at once, a write reaching past the allocation still goes to the file (the gap
    stays zeros), and a truncate or close drops the map so it is never written again."""
    storage = FileStorage()
    path = os.fspath(tmp_path / "segment")
    handle = storage.open_overwrite(path)
    storage.write(handle, b"H" * 10)
    storage.close(handle)
    handle = storage.open_write(path)
    assert storage.allocate(handle, 10, 8192) == 8192
    assert storage.writev_at(handle, 10, (b"ab", b"cde")) == 5
    assert handle in storage._windows, "the write went through the map"
    assert storage.read_file(path) == b"H" * 10 + b"abcde" + bytes(8187)
    # Past the allocation: the file grows, as with pwritev.
    assert storage.writev_at(handle, 8200, (b"xyz", b"!")) == 4
    data = storage.read_file(path)
    assert len(data) == 8204 and data[8200:] == b"xyz!" and data[15:8200] == bytes(8185)
    storage.truncate(handle, 12)
    assert handle not in storage._windows
    assert storage.writev_at(handle, 12, (b"Z",)) == 1
    assert storage.read_file(path) == b"H" * 10 + b"abZ"
    storage.allocate(handle, 13, 100)
    storage.writev_at(handle, 13, (b"after",))
    storage.close(handle)
    assert not storage._windows
    assert storage.read_file(path) == b"H" * 10 + b"abZafter" + bytes(95)


def test_a_write_through_the_map_survives_sigkill(tmp_path: Path) -> None:
    """Bytes copied into the map are in the page cache: a process killed right after
    writing them (no sync, no close) leaves them in the file."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "segment"
    path.write_bytes(b"")
    code = (
        "import os, sys\n"
        "from cosmictron.durability import FileStorage\n"
        "s = FileStorage(); h = s.open_write(sys.argv[1])\n"
        "s.allocate(h, 0, 1 << 20)\n"
        "s.writev_at(h, 0, (b'frame-', b'payload'))\n"
        "print(bool(s._windows), flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, os.fspath(path)], capture_output=True, text=True
    )
    assert out.returncode == -signal.SIGKILL
    assert out.stdout.strip() == str(MAPPED_WRITES)
    assert path.read_bytes()[:13] == b"frame-payload"
