"""A checkpoint falling due on the rotation record itself is signed by the new key.

It used to be made inside the rotation record's append, before the writer took the new
key, so it was signed by the old one, whose range the rotation ends: the history no
longer verified (``checkpoint_invalid``). Found by rotating twice over HTTP with an idle
checkpoint in between (tests/server/test_audit_keys.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cosmictron import Database, DurabilityConfig
from cosmictron.ledger import verify

from .test_tamper import MODULE


@pytest.mark.parametrize("signing", ["checkpoint", "event"])
def test_rotations_with_a_checkpoint_due_verify(signing: str, tmp_path: Path) -> None:
    module = tmp_path / "app.py"
    module.write_text(MODULE)
    config = DurabilityConfig(
        **{
            **vars(DurabilityConfig.from_profile("development")),
            "signing": signing,
            "checkpoint_interval_ms": 1,  # due at every record, the rotation's included
        }
    )
    db = Database.open(tmp_path / "db", module=str(module), durability=config)
    for round_ in range(3):
        db.call("add", f"before rotation {round_}")
        time.sleep(0.005)  # past checkpoint_interval_ms: the rotation record finds it due
        db.rotate_signing_key()
        db.call("add", f"after rotation {round_}")
    db.close()
    result = verify(tmp_path / "db")
    assert result.ok, result.lines()
    assert result.checkpoints >= 6
