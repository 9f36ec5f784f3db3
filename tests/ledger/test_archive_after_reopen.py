"""Archiving again after a restart keeps the archived range's keys.

After an open, the ledger's key ring starts from the side file's last checkpoint, so it
knows the signing key only from there; an archive written then listed no key for the
records below it, and ``verify`` refused every archived side-file checkpoint ("no
signature by a trusted key"). Seen as a rare failure of test_retention.py's restart
step, whenever a snapshot after the restart archived more segments."""

from __future__ import annotations

from pathlib import Path

from cosmictron import Database
from cosmictron.ledger import verify
from cosmictron.ledger.archived import read_archived

from .test_retention import MODULE, config


def test_an_archive_after_a_restart_still_names_the_keys(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(MODULE)
    module = str(tmp_path / "app.py")
    path = tmp_path / "data"
    db = Database.open(path, module=module, durability=config())
    for i in range(300):
        db.call("log", f"event {i}")
    db.core.persistence.wait_snapshots()
    first = db.core.persistence.archived_through
    assert first > 0
    db.close()

    db = Database.open(path, module=module, durability=config())
    for i in range(300):
        db.call("note", f"after the restart {i}")
    db.core.persistence.wait_snapshots()
    again = db.core.persistence.archived_through
    db.close()
    assert again > first, "no archive after the restart: the test proves nothing"
    archived = read_archived(str(path))
    assert archived is not None and archived.keys, "the archive names no key"
    result = verify(path)
    assert result.ok, result.lines()
    assert result.archived_through == again


def test_a_first_archive_after_a_restart_names_the_keys(tmp_path: Path) -> None:
    """Nothing archived before the restart: the key's start comes from the side file."""
    (tmp_path / "app.py").write_text(MODULE)
    module = str(tmp_path / "app.py")
    path = tmp_path / "data"
    db = Database.open(path, module=module, durability=config())
    for i in range(40):
        db.call("log", f"event {i}")
    assert db.core.persistence.archived_through == 0
    db.close()
    db = Database.open(path, module=module, durability=config())
    for i in range(300):
        db.call("note", f"after the restart {i}")
    db.core.persistence.wait_snapshots()
    through = db.core.persistence.archived_through
    db.close()
    assert through > 40, "the archive does not reach below the restart"
    result = verify(path)
    assert result.ok, result.lines()
    assert result.archived_through == through
