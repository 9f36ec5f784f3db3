"""Backup and restore of a database whose oldest log segments were archived
(``log_retention = "archive"``): the backup carries what ``verify`` and the open check
need in place of the archived records (``ledger/archived.json``, the tree's hashes below
them, the side files), so the restored copy opens, replays and verifies as ok, with the
archived range reported rather than a broken log; a point in time inside what the backup
cannot replay is refused, naming the first offset it can restore to."""

from __future__ import annotations

from pathlib import Path

import pytest

import cosmictron
from cosmictron import Database
from cosmictron.errors import InvalidRequest
from cosmictron.ledger import verify
from cosmictron.ledger.logread import list_segments

from .test_retention import MODULE, config, event_ids


@pytest.fixture
def module(tmp_path: Path) -> str:
    (tmp_path / "app.py").write_text(MODULE)
    return str(tmp_path / "app.py")


def archived_database(tmp_path: Path, module: str) -> tuple[Path, int]:
    path = tmp_path / "data"
    db = Database.open(path, module=module, durability=config())
    for i in range(300):
        db.call("log", f"event {i}")
        if i % 3 == 0:
            db.call("note", f"note {i}")
    db.core.persistence.wait_snapshots()
    db.prune_events()
    through = db.core.persistence.archived_through
    assert through > 0
    for i in range(5):
        db.call("note", f"after archiving {i}")
    db.backup(tmp_path / "db.backup")
    db.close()
    return path, through


def test_a_backup_of_an_archived_database_restores_and_verifies(
    tmp_path: Path, module: str
) -> None:
    _, through = archived_database(tmp_path, module)
    restored = tmp_path / "restored"
    report = cosmictron.restore(tmp_path / "db.backup", restored, durability=config())
    assert report.tx_offset == report.cut_offset
    assert list_segments(str(restored / "log"))[0][0] == through + 1
    result = verify(restored)
    assert result.ok, result.lines()
    assert result.archived_through == through
    assert f"records 1..{through} are archived" in result.lines()[0]
    db = Database.open(restored, module=module, durability=config())
    try:
        assert event_ids(db) == list(range(291, 301))
        assert db.table("note").count() == 105
        db.call("note", "after the restore")
    finally:
        db.close()
    assert verify(restored).ok


def test_a_point_in_time_inside_the_archived_range_is_refused(tmp_path: Path, module: str) -> None:
    _, through = archived_database(tmp_path, module)
    with pytest.raises(InvalidRequest, match=f"records 1..{through} are archived") as refused:
        cosmictron.restore(
            tmp_path / "db.backup", tmp_path / "restored", to_offset=through, durability=config()
        )
    assert "restore to an offset from" in str(refused.value)
    assert not (tmp_path / "restored").exists() or not any((tmp_path / "restored").iterdir())
