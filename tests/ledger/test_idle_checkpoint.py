"""An idle database signs its pending records within the checkpoint interval, not at its
next write, and then its ledger thread sleeps; and the side file is written off the
commit thread yet complete at close."""

from __future__ import annotations

import time
from pathlib import Path

import msgpack

from cosmictron import Database
from cosmictron.ledger import verify
from cosmictron.ledger.record_format import CHECKPOINT_KIND, KIND, SEQ
from cosmictron.ledger.verifier import read_side_checkpoints
from tests.ledger.test_tamper import MODULE, payloads
from tests.ledger.test_wiring import config


def checkpoint_seqs(path: Path) -> list[int]:
    records = [msgpack.unpackb(p, raw=False) for p in payloads(path)]
    return [r[SEQ] for r in records if r[KIND] == CHECKPOINT_KIND]


def wait_for(condition, timeout_s: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def open_with_ledger(tmp_path: Path, path: Path, checkpoint_interval_ms: int) -> Database:
    """A database at ``path`` signing checkpoints every ``checkpoint_interval_ms`` (or
    1000 records), fsync ``always``."""
    (tmp_path / "app.py").write_text(MODULE)
    durability = config(
        "checkpoint",
        fsync_policy="always",
        checkpoint_interval_records=1000,
        checkpoint_interval_ms=checkpoint_interval_ms,
    )
    return Database.open(path, module=str(tmp_path / "app.py"), durability=durability)


def test_an_idle_log_is_checkpointed_without_a_next_write(tmp_path: Path) -> None:
    path = tmp_path / "data"
    db = open_with_ledger(tmp_path, path, checkpoint_interval_ms=300)
    try:
        for i in range(3):
            db.call("add", f"n {i}")
        last = db.core.persistence.next_offset - 1
        # No further call: the ledger thread must write the checkpoint over 1..last.
        assert wait_for(lambda: last + 1 in checkpoint_seqs(path)), checkpoint_seqs(path)
        assert wait_for(lambda: any(e["seq"] == last + 1 for e in read_side_checkpoints(str(path))))
        # Once written, an idle log stays quiet: no checkpoint over nothing new.
        time.sleep(0.8)
        assert checkpoint_seqs(path)[-1] == last + 1
        assert db.core.persistence.next_offset == last + 2
        db.call("add", "later")
    finally:
        db.close()
    result = verify(path)
    assert result.ok, result.lines()
    side = read_side_checkpoints(str(path))
    assert [e["seq"] for e in side] == checkpoint_seqs(path)  # every one, close included


def test_a_checkpoint_interval_longer_than_the_test_writes_none_while_idle(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(MODULE)
    path = tmp_path / "data"
    durability = config("checkpoint", checkpoint_interval_ms=3_600_000)
    db = Database.open(path, module=str(tmp_path / "app.py"), durability=durability)
    try:
        db.call("add", "one")
        time.sleep(0.5)
        assert checkpoint_seqs(path) == []
    finally:
        db.close()
    assert len(checkpoint_seqs(path)) == 1  # the close's


def last_signed_in_side_file(db: Database, path: Path) -> bool:
    """Whether the log's last record is a checkpoint whose side-file entry is written."""
    last = db.core.persistence.next_offset - 1
    side = read_side_checkpoints(str(path))
    return checkpoint_seqs(path)[-1:] == [last] and any(e["seq"] == last for e in side)


def test_an_idle_ledger_thread_sleeps_until_the_next_record(tmp_path: Path) -> None:
    """Once an idle log's checkpoint is written, nothing wakes the ledger thread until
    the next record. It used to wake every millisecond once the checkpoint's due time had
    passed with nothing new to sign: about 2% of a core per idle database."""
    path = tmp_path / "data"
    db = open_with_ledger(tmp_path, path, checkpoint_interval_ms=50)
    try:
        thread = db.core.persistence.ledger_thread
        assert thread is not None
        db.call("add", "one")
        # Signed (by the thread, or by that commit if it came past due) and in the side file.
        assert wait_for(lambda: last_signed_in_side_file(db, path))
        assert thread.idle_checkpoints >= 1
        time.sleep(0.1)  # the wake-ups the checkpoint's own sync and side file set
        woken = thread.wakeups
        time.sleep(0.5)  # ten checkpoint intervals past due, nothing to sign
        assert thread.wakeups - woken <= 1, thread.wakeups - woken
        # A record still wakes it, to sign that record within the interval.
        db.call("add", "two")  # overdue: this commit writes the checkpoint itself
        db.call("add", "three")  # the first record after it: the thread signs it when due
        last = db.core.persistence.next_offset - 1
        assert wait_for(lambda: checkpoint_seqs(path)[-1] > last), checkpoint_seqs(path)
    finally:
        db.close()
    assert verify(path).ok
