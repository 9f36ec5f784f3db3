"""A transaction whose own commit writes a checkpoint: its update is still proven.

The commit path appends a checkpoint right after the record that makes one due, before
the transaction's updates are collected; so a ledger subscriber gets that
``LedgerCheckpoint`` first and the update it covers after. If no record follows (an idle
database), no later checkpoint proves the update: the feed must prove it against the
checkpoint it already sent. (Under load, ``test_ledger_stream.py`` timed out on this
when the last call of a batch happened to make the checkpoint due.)
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cosmictron import Database
from cosmictron.client.ledger import LedgerVerifier
from cosmictron.server.feed import DatabaseFeed
from cosmictron.server.protocol import JSON
from tests.ledger.test_tamper import MODULE, config


class _Loop:
    def call_soon_threadsafe(self, fn: Any, *args: Any) -> None:
        fn(*args)  # delivered at once, in the feed's order


class _Subscriber:
    closed = False
    ledger = True
    ledger_from_size = None
    codec = JSON

    def __init__(self, identity: Any) -> None:
        self.identity = identity
        self.messages: list[dict[str, Any]] = []

    def deliver(self, message: Any, offset: int) -> None:
        self.messages.append(json.loads(message) if isinstance(message, str | bytes) else message)

    def drop(self, code: int, reason: str) -> None:
        raise AssertionError(f"dropped: {code} {reason}")


def test_an_update_after_the_checkpoint_its_commit_wrote_is_proven(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(MODULE)
    # Checkpoints only by record count: the ledger thread writes no idle one.
    durability = config(signing="checkpoint", checkpoint_interval_records=5)
    db = Database.open(tmp_path / "data", module=str(tmp_path / "app.py"), durability=durability)
    try:
        ledger = db.core.persistence.ledger
        assert ledger is not None
        feed = DatabaseFeed(SimpleNamespace(db=db), _Loop())  # type: ignore[arg-type]
        subscriber = _Subscriber(db.owner)
        feed.subscribe(subscriber, 1, 1, ["SELECT * FROM item"], None)
        verifier = LedgerVerifier.for_key(ledger.key.verifier.to_text())
        for i in range(20):
            before = ledger.checkpoint_count
            db.call("add", f"n {i}")
            if ledger.checkpoint_count > before:
                break
        else:
            raise AssertionError("no checkpoint was written")
        assert ledger.last_checkpoint_seq == db.tx_offset + 1  # made due by this call
        kinds = []
        for message in subscriber.messages:
            ((kind, body),) = message.items()
            kinds.append(kind)
            if kind == "TransactionUpdate":
                verifier.on_update(body)
            elif kind == "LedgerCheckpoint":
                verifier.on_checkpoint(body)
        # The checkpoint went out before the update of the call that made it due.
        assert kinds.index("LedgerCheckpoint") < len(kinds) - 1 - kinds[::-1].index(
            "TransactionUpdate"
        )
        assert verifier.size == db.tx_offset
        assert not verifier.pending, verifier.pending  # no later checkpoint will come
        assert db.tx_offset in verifier.verified_seqs
    finally:
        db.close()
