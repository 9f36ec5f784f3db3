"""Anchoring and retention together: anchors in an archived range, and audit bundles of
an archived database.

A real database anchoring to the local TSA (``conftest.local_tsa``) with
``log_retention = "archive"``: ``verify`` still checks the anchors whose records were
archived (from ``ledger/anchors``), and ``export-audit`` either puts the archived
segments in the bundle or says which records it lacks.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

from cosmictron.ledger.anchor import ANCHORS_FILE, read_side_anchors
from cosmictron.ledger.bundle import export_bundle, verify_bundle
from cosmictron.ledger.logread import list_segments
from cosmictron.ledger.verifier import verify
from tests.ledger.test_anchoring import anchoring_config, open_db, roots

from .conftest import LocalTsa


def archived_and_anchored(local_tsa: LocalTsa, tmp_path: Path) -> tuple[Path, int, int]:
    """A data directory whose first segments (some anchor records among them) were
    archived; returns it, the last archived seq and the number of anchors."""
    data = tmp_path / "data"
    config = anchoring_config(
        local_tsa,
        [local_tsa.url],
        checkpoint_interval_records=20,
        snapshot_interval_tx=60,
        segment_bytes_max=4096,
        log_retention="archive",
    )
    db = open_db(data, config)
    anchors = 0
    for i in range(300):
        db.call("add", f"item {i}")
        if i % 40 == 39:
            anchors += len(db.anchor_now())
    db.core.persistence.wait_snapshots()
    db.call("add", "after the snapshots")
    anchors += len(db.anchor_now())
    through = db.core.persistence.archived_through
    db.close()
    assert through > 0, "segments were archived"
    assert list_segments(str(data / "log"))[0][0] == through + 1
    assert any(int(e["seq"]) <= through for e in read_side_anchors(data)), (
        "an anchor record is in the archived range"
    )
    return data, through, anchors


def test_anchors_in_the_archived_range_still_verify(local_tsa: LocalTsa, tmp_path: Path) -> None:
    data, through, anchors = archived_and_anchored(local_tsa, tmp_path)
    result = verify(data, tsa_roots=roots(local_tsa))
    assert result.ok, result.lines()
    assert result.archived_through == through
    assert result.anchors == anchors and result.anchors_rooted
    assert f"{anchors} anchors verified; records 1..{through} are archived" in result.lines()[0]

    # An archived anchor's side-file entry with another anchor's token: the token does
    # not stamp the entry's checkpoint.
    side = read_side_anchors(data)
    archived = [i for i, e in enumerate(side) if int(e["seq"]) <= through]
    changed = [dict(e) for e in side]
    victim = archived[0]
    changed[victim]["token"] = side[-1]["token"]
    (data / ANCHORS_FILE).write_text("".join(json.dumps(e) + "\n" for e in changed))
    result = verify(data, tsa_roots=roots(local_tsa))
    assert result.code == "anchor_mismatch" and result.first_bad_seq == side[victim]["seq"]

    # A corrupted token in it.
    token = bytearray(base64.b64decode(side[victim]["token"]))
    token[len(token) // 2] ^= 0x01
    changed[victim]["token"] = base64.b64encode(bytes(token)).decode()
    (data / ANCHORS_FILE).write_text("".join(json.dumps(e) + "\n" for e in changed))
    result = verify(data, tsa_roots=roots(local_tsa))
    assert not result.ok and result.first_bad_seq == side[victim]["seq"], result.lines()
    assert result.code in ("anchor_invalid", "anchor_mismatch"), result.lines()


def manifest(bundle: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((bundle / "bundle.json").read_text())
    return loaded


def test_a_bundle_of_an_archived_database_holds_the_archive_or_says_what_it_lacks(
    local_tsa: LocalTsa, tmp_path: Path
) -> None:
    data, through, anchors = archived_and_anchored(local_tsa, tmp_path)
    pem = local_tsa.path("ca.pem").read_text()

    # The archived segments are still in the archive directory: the bundle is whole.
    whole = export_bundle(data, tmp_path / "whole", pem)
    assert whole.archive_included == through and whole.archived_through == 0
    assert list_segments(str(tmp_path / "whole" / "log"))[0][0] == 1
    assert manifest(tmp_path / "whole")["archived_through"] == 0
    result = verify_bundle(tmp_path / "whole")
    assert result.ok, result.lines()
    assert result.archived_through == 0 and result.anchors == anchors

    # They were moved off the machine: the bundle says which records it lacks, and
    # verifies from ledger/archived.json.
    shutil.rmtree(data / "archive")
    partial = export_bundle(data, tmp_path / "partial", pem)
    assert partial.archived_through == through and partial.archive_included == 0
    assert manifest(tmp_path / "partial")["archived_through"] == through
    readme = (tmp_path / "partial" / "README.md").read_text()
    assert f"Records 1..{through} are not in this bundle" in readme
    result = verify_bundle(tmp_path / "partial")
    assert result.ok, result.lines()
    assert result.archived_through == through and result.anchors == anchors
    assert f"records 1..{through} are archived" in result.lines()[0]
