"""Retention that stays provable: event tables pruned in memory by a logged transaction,
log segments archived below a snapshot, and every record still verifiable and provable.

A real database on the real file system: prune, archive, restart, verify (the archived
range is reported, not called broken), and inclusion and consistency proofs across the
archived range checked against the signed checkpoint with the public key alone.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cosmictron import Database, DurabilityConfig
from cosmictron.errors import ConfigError
from cosmictron.ledger import leaf_hash, verify, verify_consistency, verify_inclusion
from cosmictron.ledger.archived import ARCHIVED_FILE
from cosmictron.ledger.checkpoint import open_checkpoint
from cosmictron.ledger.logread import LogReader, list_segments
from cosmictron.ledger.signing import VerifierKey
from cosmictron.ledger.verifier import read_side_checkpoints
from cosmictron.testing import ManualClock
from cosmictron.values import Timestamp

MODULE = textwrap.dedent(
    """
    from cosmictron import table, reducer, ReducerContext, field, Timestamp

    @table(name="event_log", public=True, event=True)
    class EventLog:
        id: int = field(primary_key=True, auto_inc=True)
        at: Timestamp = Timestamp(0)
        text: str = ""

    @table(name="note")
    class Note:
        id: int = field(primary_key=True, auto_inc=True)
        text: str = ""

    @reducer
    def log(ctx: ReducerContext, text: str) -> int:
        return EventLog.insert(EventLog(at=ctx.timestamp, text=text)).id

    @reducer
    def note(ctx: ReducerContext, text: str) -> int:
        return Note.insert(Note(text=text)).id
    """
)


NEVER = 10**9
"""A snapshot interval no test reaches: no snapshot, so no archiving, in that session."""


def config(**overrides: Any) -> DurabilityConfig:
    fields = {
        **vars(DurabilityConfig.from_profile("development")),
        "signing": "checkpoint",
        "checkpoint_interval_records": 20,
        "checkpoint_interval_ms": 3_600_000,
        "snapshot_interval_tx": 60,
        "segment_bytes_max": 4096,
        "log_retention": "archive",
        "event_retention": {"event_log": {"keep_rows": 10}},
        **overrides,
    }
    return DurabilityConfig(**fields)


@pytest.fixture
def module(tmp_path: Path) -> str:
    (tmp_path / "app.py").write_text(MODULE)
    return str(tmp_path / "app.py")


def event_ids(db: Database) -> list[int]:
    return sorted(row.id for row in db.table("event_log").iter())


def archived_payloads(archive: Path, scratch: Path) -> list[bytes]:
    """The archived records, read back from the archive directory's segments."""
    (scratch / "log").mkdir(parents=True)
    for name in os.listdir(archive):
        shutil.copy(archive / name, scratch / "log" / name)
    return [r.payload for r in LogReader(str(scratch))]


def test_prune_archive_restart_verify_and_prove_across_the_archived_range(
    tmp_path: Path, module: str
) -> None:
    path = tmp_path / "data"
    db = Database.open(path, module=module, durability=config())
    for i in range(300):
        db.call("log", f"event {i}")
        if i % 3 == 0:
            db.call("note", f"note {i}")
    pruned = db.prune_events()
    # Its transaction may request a snapshot (when the last ones were skipped because the
    # snapshot thread was behind, as under load), which archives more: wait for it.
    db.core.persistence.wait_snapshots()
    assert len(event_ids(db)) == 10 and event_ids(db) == list(range(291, 301)), pruned
    assert db.table("note").count() == 100  # other tables are not touched
    through = db.core.persistence.archived_through
    assert through > 0
    db.close()

    # The archived segments left log/; the live log starts right after them.
    assert list_segments(str(path / "log"))[0][0] == through + 1
    archive = path / "archive" / "log"
    assert list_segments(str(archive))[0][0] == 1

    # verify says which range is archived instead of calling the log broken.
    result = verify(path)
    assert result.ok, result.lines()
    assert result.archived_through == through
    assert f"records 1..{through} are archived" in result.lines()[0]
    assert result.to_document()["archived_through"] == through

    # Restart: the state (pruned rows gone) comes back from the snapshot and the log.
    # No snapshot from here on (nor the archiving after it): the archived range stays the
    # one checked above. A snapshot that lagged behind the log would otherwise fall due at
    # the first call and archive more.
    db = Database.open(path, module=module, durability=config(snapshot_interval_tx=NEVER))
    try:
        assert event_ids(db) == list(range(291, 301))
        assert db.table("note").count() == 100
        db.call("log", "after restart")
        tree = db.core.persistence.ledger.tree  # type: ignore[union-attr]
        assert tree is not None
        # A checkpoint signed after the restart is what the auditor holds.
        db.core.persistence.checkpoint_now()
    finally:
        db.close()
    result = verify(path)
    assert result.ok and result.archived_through == through, result.lines()
    side = read_side_checkpoints(str(path))[-1]
    keys = [VerifierKey.from_text(k) for k in side["keys"]]
    checkpoint = open_checkpoint(side["note"], keys, origin=result.origin)

    # Proofs for archived records (their leaves recomputed from the archived segment
    # files) and for live ones, against the signed root, after another restart.
    records = archived_payloads(archive, tmp_path / "scratch")
    assert len(records) == through
    db = Database.open(path, module=module, durability=config(snapshot_interval_tx=NEVER))
    try:
        tree = db.core.persistence.ledger.tree  # type: ignore[union-attr]
        size, root = checkpoint.size, checkpoint.root_hash
        assert tree.root(size) == root
        for seq in (1, through // 2, through):
            leaf = leaf_hash(records[seq - 1])
            assert tree.leaf(seq - 1) == leaf
            verify_inclusion(leaf, seq - 1, size, tree.inclusion_proof(seq - 1, size), root)
        live = next(iter(LogReader(str(path), through + 1)))
        verify_inclusion(
            leaf_hash(live.payload), through, size, tree.inclusion_proof(through, size), root
        )
        for old in (1, through // 3, through, through + 1):
            verify_consistency(old, size, tree.root(old), root, tree.consistency_proof(old, size))
    finally:
        db.close()


def test_a_changed_archive_manifest_is_caught_by_the_chain_and_the_next_checkpoint(
    tmp_path: Path, module: str
) -> None:
    path = tmp_path / "data"
    db = Database.open(path, module=module, durability=config())
    for i in range(300):
        db.call("log", f"event {i}")
    db.core.persistence.wait_snapshots()
    through = db.core.persistence.archived_through
    db.close()
    assert through > 0 and verify(path).ok
    manifest = json.loads((path / ARCHIVED_FILE).read_text())

    forged = tmp_path / "forged-frontier"
    shutil.copytree(path, forged)
    changed = dict(manifest, frontier=["00" * 32, *manifest["frontier"][1:]])
    (forged / ARCHIVED_FILE).write_text(json.dumps(changed))
    result = verify(forged)
    codes = {p.code for p in result.problems}
    assert "checkpoint_mismatch" in codes and result.first_bad_seq > through, result.lines()

    forged = tmp_path / "forged-hash"
    shutil.copytree(path, forged)
    (forged / ARCHIVED_FILE).write_text(json.dumps(dict(manifest, last_hash="11" * 32)))
    result = verify(forged)
    assert (result.code, result.first_bad_seq) == ("chain_broken", through + 1), result.lines()

    forged = tmp_path / "no-manifest"
    shutil.copytree(path, forged)
    os.unlink(forged / ARCHIVED_FILE)
    result = verify(forged)
    assert (result.code, result.first_bad_seq) == ("log_damaged", 1), result.lines()


def test_keep_days_prunes_by_the_timestamp_column(tmp_path: Path, module: str) -> None:
    clock = ManualClock()
    policy = {"event_log": {"keep_days": 1}}
    durability = config(event_retention=policy, log_retention="keep")
    db = Database.open(tmp_path / "data", module=module, durability=durability, clock=clock)
    try:
        for i in range(5):
            db.call("log", f"old {i}")
        clock.advance(2 * 86_400)
        db.call("log", "new")
        assert db.prune_events() == {"event_log": 5}
        assert [r.text for r in db.table("event_log").iter()] == ["new"]
        assert db.prune_events() == {}  # nothing over its bound: nothing logged
        assert all(isinstance(r.at, Timestamp) for r in db.table("event_log").iter())
    finally:
        db.close()
    db = Database.open(tmp_path / "data", module=module, durability=durability, clock=clock)
    try:
        assert [r.text for r in db.table("event_log").iter()] == ["new"]
    finally:
        db.close()
    assert verify(tmp_path / "data").ok


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"note": {"keep_rows": 1}}, "not an event table"),
        ({"nothing": {"keep_rows": 1}}, "does not exist"),
        ({"event_log": {"keep_days": 1, "time_column": "text"}}, "is not a Timestamp column"),
    ],
)
def test_a_bad_retention_policy_is_refused_on_open(
    tmp_path: Path, module: str, policy: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Database.open(tmp_path / "data", module=module, durability=config(event_retention=policy))
    # The refused open released the directory: a good policy opens it.
    Database.open(tmp_path / "data", module=module, durability=config()).close()


def test_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ConfigError, match="needs the ledger"):
        config(signing="off")
    with pytest.raises(ConfigError, match="needs keep_rows, keep_days or both"):
        config(event_retention={"event_log": {}})
    with pytest.raises(ConfigError, match="must be a positive integer"):
        config(event_retention={"event_log": {"keep_rows": 0}})
    with pytest.raises(ConfigError, match="unknown log_retention"):
        config(log_retention="delete")
