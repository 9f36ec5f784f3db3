"""A data directory rolled back to before an anchor is refused at open: the anchors side
file (``ledger/anchors``) outlived the rollback, and the log no longer reaches the anchor
record it names. The error names the first missing sequence number, as for checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cosmictron.errors import CorruptLog
from cosmictron.ledger.anchor import read_side_anchors
from cosmictron.ledger.verifier import read_side_checkpoints, verify

from .conftest import LocalTsa
from .test_anchoring import anchoring_config, open_db, roots


def test_a_log_rolled_back_below_an_anchor_is_refused_at_open(
    local_tsa: LocalTsa, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    config = anchoring_config(local_tsa, [local_tsa.url])
    db = open_db(data, config)
    for i in range(30):
        db.call("add", f"before {i}")
    db.close()  # a checkpoint at close covers them
    before = tmp_path / "before-anchor"
    shutil.copytree(data, before)
    last_before = read_side_checkpoints(str(before))[-1]["seq"]

    db = open_db(data, config)
    anchored = db.anchor_now()
    assert anchored, "the local TSA gave no token"
    db.close()
    anchor = read_side_anchors(data)[-1]
    assert anchor["seq"] == anchored[-1] > last_before

    # Roll the log and the checkpoints side file back; the anchors side file survives.
    shutil.rmtree(data / "log")
    shutil.copytree(before / "log", data / "log")
    shutil.rmtree(data / "snapshots", ignore_errors=True)
    if (before / "snapshots").exists():
        shutil.copytree(before / "snapshots", data / "snapshots")
    shutil.copy(before / "ledger" / "checkpoints", data / "ledger" / "checkpoints")

    with pytest.raises(CorruptLog, match="rollback") as refused:
        open_db(data, config)
    assert refused.value.tx_offset == last_before + 1
    assert f"anchor record {anchor['seq']}" in str(refused.value)
    # verify says the same of the rolled-back directory ...
    result = verify(data, tsa_roots=roots(local_tsa))
    assert not result.ok and result.code == "truncated", result.lines()
    # ... and the copy from before the anchor, with its own side files, opens and verifies.
    db = open_db(before, config)
    db.close()
    assert verify(before, tsa_roots=roots(local_tsa)).ok
