"""Backup and restore of an embedded database (``Database.backup``, ``host.backup.restore``).

The module makes every offset's state easy to compute: ``put(n)`` is one transaction
that inserts item ``n`` and bumps one counter, and there is no ``@init``, so the state
at offset N is exactly the items of the first N calls and a counter of N. The concurrent
test records, in each writer thread, every acknowledged ``n`` with its offset; the state
a backup restores must be exactly the acknowledged writes at or below its cut.

Damage is applied to the archive's bytes where ``tarfile`` says a member's data lives,
so each case hits the member it names.
"""

from __future__ import annotations

import dataclasses
import tarfile
import threading
from pathlib import Path

import pytest

from cosmictron import Database, DurabilityConfig
from cosmictron.durability.backup import log_members, pinned_snapshot_at_or_before
from cosmictron.errors import BackupDamaged, Conflict, InvalidRequest
from cosmictron.host.backup import restore, verify_backup
from tests.host.counted_module import COUNTED_MODULE

MODULE = COUNTED_MODULE.replace("def append(", "def put(")

MODULE_V2 = MODULE.replace(
    "    id: int = field(primary_key=True)\n",
    '    id: int = field(primary_key=True)\n    label: str = "v2"\n',
    1,
)

SMALL = dict(segment_bytes_max=1024, snapshot_interval_tx=40)
"""Several segments and snapshots, so backups cross rollovers and pick among snapshots."""


def durability(profile: str = "development") -> DurabilityConfig:
    return dataclasses.replace(DurabilityConfig.from_profile(profile), **SMALL)


@pytest.fixture
def module_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(MODULE)
    return path


def state(db: Database) -> tuple[set[int], int]:
    counter = db.rows("counter")
    return {item.id for item in db.rows("item")}, counter[0].value if counter else 0


def open_restored(path: Path) -> Database:
    return Database.open(path, durability=durability())


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".restoring-" in p.name)


@pytest.mark.parametrize("profile", ["development", "production"])
def test_backup_under_concurrent_writes_restores_the_state_at_its_cut(
    tmp_path: Path, module_file: Path, profile: str
) -> None:
    db = Database.open(tmp_path / "source", module_file, durability=durability(profile))
    acknowledged: list[tuple[int, int]] = []
    lock = threading.Lock()
    stop = threading.Event()
    started = threading.Barrier(5)

    def write(worker: int) -> None:
        started.wait()
        n = worker * 1_000_000
        while not stop.is_set() and n < worker * 1_000_000 + 5_000:
            offset = db.execute_reducer("put", [n]).tx_offset
            with lock:
                acknowledged.append((offset, n))
            n += 1

    writers = [threading.Thread(target=write, args=(w,)) for w in range(1, 5)]
    for thread in writers:
        thread.start()
    started.wait()
    while len(acknowledged) < 300:
        stop.wait(0.001)
    manifest = db.backup(tmp_path / "backup.tar")
    stop.set()
    for thread in writers:
        thread.join()
    assert db.tx_offset > manifest.cut_offset, "writes continued during the backup"
    db.close()

    cut = manifest.cut_offset
    restored = restore(tmp_path / "backup.tar", tmp_path / "restored")
    assert restored.tx_offset == cut
    with open_restored(tmp_path / "restored") as copy:
        assert copy.tx_offset == cut
        assert state(copy) == ({n for offset, n in acknowledged if offset <= cut}, cut)
        copy.check_invariants()


def backups_beside_snapshots(tmp_path: Path, module_file: Path, seconds: float) -> int:
    """Writers, a snapshot every few transactions, and backups in a loop on another thread.

    Every backup must succeed and restore to exactly the acknowledged writes at or below
    its cut, and every snapshot the database asked for must be written. Returns how many
    backups were checked.
    """
    tight = dataclasses.replace(durability(), snapshot_interval_tx=3)
    db = Database.open(tmp_path / "source", module_file, durability=tight)
    acknowledged: list[tuple[int, int]] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    manifests = []

    def write(worker: int) -> None:
        n = worker * 1_000_000
        try:
            while not stop.is_set():
                offset = db.execute_reducer("put", [n]).tx_offset
                with lock:
                    acknowledged.append((offset, n))
                n += 1
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    def back_up() -> None:
        try:
            while not stop.is_set():
                archive = tmp_path / f"backup-{len(manifests)}.tar"
                manifests.append((archive, db.backup(archive)))
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=write, args=(w,)) for w in (1, 2)]
    threads.append(threading.Thread(target=back_up))
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    db.core.persistence.wait_snapshots()
    statistics = db.core.persistence.statistics()
    db.close()
    if errors:
        raise errors[0]
    assert statistics.snapshot_count >= 2
    assert statistics.snapshots_failed == 0, "a snapshot was lost"
    for number, (archive, manifest) in enumerate(manifests):
        target = tmp_path / f"restored-{number}"
        restore(archive, target)
        with open_restored(target) as copy:
            cut = manifest.cut_offset
            assert state(copy) == ({n for offset, n in acknowledged if offset <= cut}, cut)
        archive.unlink()
    return len(manifests)


def test_backups_in_a_loop_beside_forced_snapshots_restore_their_cuts(
    tmp_path: Path, module_file: Path
) -> None:
    assert backups_beside_snapshots(tmp_path, module_file, 3.0) >= 3


@pytest.mark.soak
@pytest.mark.parametrize("run", range(20))
def test_backups_beside_forced_snapshots_soak(tmp_path: Path, module_file: Path, run: int) -> None:
    backups_beside_snapshots(tmp_path, module_file, 3.0)


def test_point_in_time_restore_to_several_offsets(tmp_path: Path, module_file: Path) -> None:
    with Database.open(tmp_path / "source", module_file, durability=durability()) as db:
        times = {}
        for n in range(1, 101):
            times[n] = db.execute_reducer("put", [n]).timestamp
        db.backup(tmp_path / "backup.tar")
    for offset in (0, 1, 39, 40, 41, 77, 100):
        target = tmp_path / f"at-{offset}"
        report = restore(tmp_path / "backup.tar", target, to_offset=offset)
        assert report.cut_offset == 100
        with open_restored(target) as copy:
            assert state(copy) == (set(range(1, offset + 1)), offset)
    for offset in (1, 55, 100):
        target = tmp_path / f"time-{offset}"
        report = restore(tmp_path / "backup.tar", target, to_time=times[offset])
        assert report.tx_offset == offset
        with open_restored(target) as copy:
            assert state(copy) == (set(range(1, offset + 1)), offset)


def test_a_point_past_the_cut_is_refused_and_creates_nothing(
    tmp_path: Path, module_file: Path
) -> None:
    with Database.open(tmp_path / "source", module_file, durability=durability()) as db:
        db.call("put", 1)
        db.backup(tmp_path / "backup.tar")
    with pytest.raises(InvalidRequest, match="holds offsets 0 to 1"):
        restore(tmp_path / "backup.tar", tmp_path / "restored", to_offset=2)
    assert not (tmp_path / "restored").exists()
    assert leftovers(tmp_path) == []


def test_restore_refuses_an_existing_directory(tmp_path: Path, module_file: Path) -> None:
    with Database.open(tmp_path / "source", module_file, durability=durability()) as db:
        db.call("put", 1)
        db.backup(tmp_path / "backup.tar")
    with pytest.raises(Conflict, match="already exists"):
        restore(tmp_path / "backup.tar", tmp_path / "source")
    with Database.open(tmp_path / "source", durability=durability()) as db:
        assert db.tx_offset == 1


def test_a_backup_without_a_snapshot_holds_the_whole_log(tmp_path: Path, module_file: Path) -> None:
    with Database.open(tmp_path / "source", module_file, durability=durability()) as db:
        for n in range(1, 31):
            db.call("put", n)
        manifest = db.backup(tmp_path / "backup.tar")
    assert manifest.snapshot_offset is None
    assert sum(name.startswith("log/") for name in manifest.members) > 1
    restore(tmp_path / "backup.tar", tmp_path / "restored")
    with open_restored(tmp_path / "restored") as copy:
        assert state(copy) == (set(range(1, 31)), 30)


def test_the_newest_snapshot_at_or_before_the_cut_is_chosen(
    tmp_path: Path, module_file: Path
) -> None:
    source = tmp_path / "source"
    with Database.open(source, module_file, durability=durability()) as db:
        for n in range(1, 131):
            db.call("put", n)  # snapshots at 40, 80 and 120; the newest two are kept
        db.wait_durable(db.tx_offset)
        db.core.persistence.wait_snapshots()
        manifest = db.backup(tmp_path / "backup.tar")
        assert manifest.snapshot_offset == 120
        cut = db.core.persistence.cut()
        # Cut at an earlier offset: the snapshot at 120 is after it, the one at 80 is not.
        with pinned_snapshot_at_or_before(db.core.persistence.snapshots, 100) as chosen:
            members = log_members(
                str(source), 100, cut.segment_base_offset, cut.segment_bytes, chosen
            )
    snapshots = [m.name for m in members if m.name.startswith("snapshots/")]
    assert snapshots == [f"snapshots/{80:020d}.snap"]
    restore(tmp_path / "backup.tar", tmp_path / "restored")
    with open_restored(tmp_path / "restored") as copy:
        assert state(copy) == (set(range(1, 131)), 130)


def member_data_offset(archive: Path, prefix: str) -> tuple[int, int]:
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            if info.name.startswith(prefix):
                return info.offset_data, info.size
    raise AssertionError(f"no member {prefix} in {archive}")


def flip_byte(archive: Path, prefix: str) -> None:
    start, size = member_data_offset(archive, prefix)
    data = bytearray(archive.read_bytes())
    data[start + size // 2] ^= 0x20
    archive.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda a: flip_byte(a, "snapshots/"), r"snapshots/0+40\.snap does not match its SHA-256"),
        (lambda a: flip_byte(a, "log/"), r"log/0+1\.log does not match its SHA-256"),
        (lambda a: flip_byte(a, "module/module.py"), r"module/module\.py does not match"),
        (lambda a: flip_byte(a, "manifest.json"), r"manifest\.json does not match its checksum"),
        (lambda a: a.write_bytes(a.read_bytes()[: len(a.read_bytes()) // 2]), "truncated"),
        (
            lambda a: a.write_bytes(a.read_bytes()[: member_data_offset(a, "manifest.json")[0]]),
            "truncated",
        ),
        (lambda a: a.write_bytes(b"not a backup at all" * 100), "truncated"),
    ],
    ids=["snapshot", "segment", "module", "manifest", "half", "before-manifest", "garbage"],
)
def test_a_damaged_backup_is_refused_naming_the_problem_and_nothing_is_created(
    tmp_path: Path, module_file: Path, damage, message: str
) -> None:
    with Database.open(tmp_path / "source", module_file, durability=durability()) as db:
        for n in range(1, 51):
            db.call("put", n)
        db.core.persistence.wait_snapshots()
        db.backup(tmp_path / "backup.tar")
    archive = tmp_path / "backup.tar"
    damage(archive)
    with pytest.raises(BackupDamaged, match=message):
        verify_backup(archive)
    with pytest.raises(BackupDamaged, match=message):
        restore(archive, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
    assert leftovers(tmp_path) == []


def test_a_consistent_archive_whose_log_does_not_chain_is_refused(
    tmp_path: Path, module_file: Path
) -> None:
    """Checksums only prove the archive is what was written; the log is checked too."""
    from cosmictron.durability.archive import MemberSource, write_archive

    source = tmp_path / "source"
    with Database.open(source, module_file, durability=durability()) as db:
        for n in range(1, 11):
            db.call("put", n)
        cut = db.core.persistence.cut()
    members = [
        MemberSource(name, path.stat().st_size, path=str(path))
        for name, path in [
            ("database.json", source / "database.json"),
            ("module/module.py", source / "module" / "module.py"),
            ("log/00000000000000000001.log", source / "log" / "00000000000000000001.log"),
        ]
    ]
    with open(tmp_path / "forged.tar", "wb") as out:
        write_archive(out, members, cut.offset + 1, cut.last_hash)  # claims one more record
    with pytest.raises(
        BackupDamaged, match=r"log ends at offset \d+, but its manifest says the cut is offset 11"
    ):
        restore(tmp_path / "forged.tar", tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_backup_across_a_module_update_restores_each_offsets_module(
    tmp_path: Path, module_file: Path
) -> None:
    with Database.open(tmp_path / "source", module_file, durability=durability()) as db:
        for n in range(1, 51):
            db.call("put", n)  # a snapshot at 40 is taken under the first module
        update_offset = db.update_module(MODULE_V2.encode(), filename="app.py").tx_offset
        for n in range(51, 61):
            db.call("put", n)
        db.backup(tmp_path / "backup.tar")
    restore(tmp_path / "backup.tar", tmp_path / "latest")
    with open_restored(tmp_path / "latest") as copy:
        assert copy.module.source == MODULE_V2.encode()
        assert {item.label for item in copy.rows("item")} == {"v2"}
        assert copy.tx_offset == 61
    for offset in (update_offset - 1, 20):
        target = tmp_path / f"before-{offset}"
        restore(tmp_path / "backup.tar", target, to_offset=offset)
        assert (target / "module" / "module.py").read_text() == MODULE
        with open_restored(target) as copy:
            assert copy.module.source == MODULE.encode()
            assert state(copy) == (set(range(1, offset + 1)), offset)


def test_a_restored_database_continues_its_hash_chain(tmp_path: Path, module_file: Path) -> None:
    with Database.open(tmp_path / "source", module_file, durability=durability()) as db:
        for n in range(1, 61):
            db.call("put", n)
        db.backup(tmp_path / "backup.tar")
    restore(tmp_path / "backup.tar", tmp_path / "restored", to_offset=45)
    with open_restored(tmp_path / "restored") as copy:
        for n in range(1000, 1030):
            copy.call("put", n)
    with open_restored(tmp_path / "restored") as copy:
        assert state(copy) == (set(range(1, 46)) | set(range(1000, 1030)), 75)
        # A backup verifies the whole chain from offset 1 through the new records.
        manifest = copy.backup(tmp_path / "again.tar")
    assert manifest.cut_offset == 75
    restore(tmp_path / "again.tar", tmp_path / "again")
    with open_restored(tmp_path / "again") as copy:
        assert copy.tx_offset == 75


def test_restore_can_give_the_database_a_new_owner(tmp_path: Path, module_file: Path) -> None:
    from cosmictron.values import Identity

    with Database.open(tmp_path / "source", module_file, durability=durability()) as db:
        db.call("put", 1)
        identity = db.identity
        db.backup(tmp_path / "backup.tar")
    owner = Identity.random()
    report = restore(tmp_path / "backup.tar", tmp_path / "restored", owner=owner)
    assert report.owner == owner.hex()
    with open_restored(tmp_path / "restored") as copy:
        assert copy.owner == owner
        assert copy.identity == identity


def test_an_empty_database_backs_up_and_restores(tmp_path: Path, module_file: Path) -> None:
    with Database.open(tmp_path / "source", module_file, durability=durability()) as db:
        manifest = db.backup(tmp_path / "backup.tar")
    assert manifest.cut_offset == 0 and manifest.snapshot_offset is None
    restore(tmp_path / "backup.tar", tmp_path / "restored")
    with open_restored(tmp_path / "restored") as copy:
        assert state(copy) == (set(), 0)
        copy.call("put", 1)
