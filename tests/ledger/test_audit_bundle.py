"""Audit bundles and the anchors route, with the real openssl TSA and a real server.

``cosmictron-cli export-audit`` writes a bundle from a data directory or from a database
on a server; ``cosmictron-cli verify BUNDLE`` checks it offline, and every token in it
verifies with ``openssl ts -verify`` alone. The server serves the anchors
(``audit/anchors``) and the anchor lag on ``/metrics``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cosmictron.cli.settings import SavedIdentity, Settings
from cosmictron.ledger.verifier import verify
from tests.ledger.test_anchoring import MODULE, anchoring_config, open_db, roots
from tests.server.conftest import start_server, stop_server

from .conftest import LocalTsa

CLI = [sys.executable, "-c", "from cosmictron.cli.main import main; main()"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def openssl_checks_bundle(local_tsa: LocalTsa, bundle: Path, roots_file: Path) -> int:
    """Check every token of ``bundle`` with ``openssl ts -verify`` alone; how many."""
    manifest = json.loads((bundle / "bundle.json").read_text())
    for anchor in manifest["anchors"]:
        done = local_tsa.openssl(
            "ts", "-verify", "-data", str(bundle / anchor["checkpoint"]),
            "-in", str(bundle / anchor["token"]), "-CAfile", str(roots_file),
        )  # fmt: skip
        assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    return len(manifest["anchors"])


def anchored_data_dir(local_tsa: LocalTsa, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    db = open_db(data, anchoring_config(local_tsa, [local_tsa.url]))
    for round_ in range(3):
        for i in range(4):
            db.call("add", f"{round_}.{i}")
        assert db.anchor_now()
    db.close()
    return data


def test_a_bundle_from_a_data_directory_verifies_offline_and_with_openssl(
    local_tsa: LocalTsa, tmp_path: Path
) -> None:
    data = anchored_data_dir(local_tsa, tmp_path)
    bundle = tmp_path / "bundle"
    done = run_cli(
        "export-audit", str(data), str(bundle), "--tsa-root", str(local_tsa.path("ca.pem"))
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Audit bundle written to {bundle}: "), done.stdout
    assert "3 anchors" in done.stdout
    for name in ("README.md", "keys/public-keys.txt", "tsa/trust-roots.pem", "tsa/signers.pem"):
        assert (bundle / name).is_file(), name
    assert len(list((bundle / "anchors").glob("*.tsr"))) == 3
    assert openssl_checks_bundle(local_tsa, bundle, bundle / "tsa" / "trust-roots.pem") == 3

    key = (bundle / "keys" / "public-keys.txt").read_text().splitlines()[0]
    done = run_cli("verify", str(bundle), "--key", key, "--tsa-root", str(local_tsa.path("ca.pem")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: ") and "3 anchors verified" in done.stdout
    done = run_cli("verify", "--bundle", str(bundle), "--json")
    document = json.loads(done.stdout)
    assert done.returncode == 0 and document["anchors"] == 3 and document["anchors_rooted"]

    untrusted = run_cli("verify", str(bundle), "--tsa-root", str(local_tsa.path("other-ca.pem")))
    assert untrusted.returncode == 1
    first_anchor = json.loads((bundle / "bundle.json").read_text())["anchors"][0]["seq"]
    assert untrusted.stdout.startswith(f"anchor_untrusted at seq {first_anchor}: "), (
        untrusted.stdout
    )

    tsr = bundle / "anchors" / f"{first_anchor}.tsr"
    damaged = bytearray(tsr.read_bytes())
    damaged[-20] ^= 0x01
    tsr.write_bytes(bytes(damaged))
    done = run_cli("verify", str(bundle))
    assert done.returncode == 1
    assert done.stdout.startswith(f"bundle_file_changed at seq 0: anchors/{first_anchor}.tsr")
    assert f"anchor_invalid at seq {first_anchor}: " in done.stdout
    assert local_tsa.openssl(
        "ts", "-verify", "-data", str(bundle / f"checkpoints/{first_anchor - 1}.txt"),
        "-in", str(tsr), "-CAfile", str(local_tsa.path("ca.pem")),
    ).returncode != 0  # fmt: skip

    again = run_cli("export-audit", str(data), str(bundle))
    assert again.returncode != 0
    assert again.stderr.strip().count("\n") == 0 and "not an empty directory" in again.stderr
    assert run_cli("verify", str(data), "--bundle").returncode != 0


def test_verify_takes_the_trust_root_from_the_data_directory_s_config(
    local_tsa: LocalTsa, tmp_path: Path
) -> None:
    data = anchored_data_dir(local_tsa, tmp_path)
    unrooted = run_cli("verify", str(data))
    assert unrooted.returncode == 0 and "TSA chains not checked" in unrooted.stdout
    configured = {
        "COSMICTRON_SIGNING": "checkpoint",
        "COSMICTRON_ANCHOR_TSA_URLS": local_tsa.url,
        "COSMICTRON_ANCHOR_TRUST_ROOTS": str(local_tsa.path("ca.pem")),
    }
    rooted = run_cli("verify", str(data), env=configured)
    assert rooted.returncode == 0 and rooted.stdout.strip().endswith("3 anchors verified")
    other = run_cli("verify", str(data), "--tsa-root", str(local_tsa.path("other-ca.pem")))
    assert other.returncode == 1 and other.stdout.startswith("anchor_untrusted at seq ")


def test_the_anchors_route_the_lag_metric_and_a_bundle_from_the_server(
    local_tsa: LocalTsa, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server(
        tmp_path / "server-data",
        env={
            "COSMICTRON_SIGNING": "checkpoint",
            "COSMICTRON_FSYNC_POLICY": "never",
            "COSMICTRON_ANCHOR_TSA_URLS": local_tsa.url,
            "COSMICTRON_ANCHOR_TRUST_ROOTS": str(local_tsa.path("ca.pem")),
            "COSMICTRON_ANCHOR_INTERVAL_MS": "300",
        },
    )
    try:
        _, token = server.deployer()
        assert server.deploy("anchored", MODULE, token).status == 201
        for i in range(5):
            reply = server.request("POST", "/v1/database/anchored/call/add", [f"n {i}"], token)
            assert reply.status == 200, reply
        _, stranger = server.identity()
        deadline = time.monotonic() + 30
        while True:
            reply = server.request("GET", "/v1/database/anchored/audit/anchors", token=stranger)
            assert reply.status == 200, reply
            if reply.body["anchors"] and reply.body["lag_records"] == 0:
                break
            assert time.monotonic() < deadline, reply.body
            time.sleep(0.2)
        body: dict[str, Any] = reply.body
        assert body["trust_roots"] == local_tsa.path("ca.pem").read_text()
        assert body["tsa_urls"] == [local_tsa.url] and body["more"] is False
        anchor = body["anchors"][-1]
        assert set(anchor) == {"seq", "checkpoint_seq", "size", "tsa", "gen_time", "token", "note"}
        later = server.request("GET", f"/v1/database/anchored/audit/anchors?after={anchor['seq']}")
        assert later.status == 200 and later.body["anchors"] == []
        bad = server.request("GET", "/v1/database/anchored/audit/anchors?after=x")
        assert (bad.status, bad.body["error"]["code"]) == (400, "invalid_request")
        missing = server.request("GET", "/v1/database/nowhere/audit/anchors")
        assert (missing.status, missing.body["error"]["code"]) == (404, "not_found")

        with urllib.request.urlopen(server.metrics_request(), timeout=30) as scraped:
            text = scraped.read().decode()
        assert 'cosmictron_anchor_lag_seconds{database="anchored"} 0' in text, text
        assert 'cosmictron_anchor_lag_records{database="anchored"} 0' in text
        assert 'cosmictron_anchors_total{database="anchored"}' in text
        assert 'cosmictron_anchor_overdue{database="anchored"} 0' in text
        with urllib.request.urlopen(server.url + "/metrics", timeout=30) as scraped:
            assert "cosmictron_anchor_lag_seconds" not in scraped.read().decode()

        verified = server.request("GET", "/v1/database/anchored/audit/verify", token=token)
        assert verified.status == 200 and verified.body["ok"] is True, verified
        assert verified.body["anchors"] >= 1 and verified.body["anchors_rooted"] is True

        monkeypatch.setenv("COSMICTRON_CONFIG_DIR", str(tmp_path / "cli-config"))
        settings = Settings.load()
        settings.identities[server.url] = SavedIdentity("owner", token)
        settings.save()
        bundle = tmp_path / "bundle"
        done = run_cli("export-audit", "anchored", str(bundle), "--server", server.url, "--json")
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["anchors"] >= 1 and summary["trust_roots"] is True
        assert openssl_checks_bundle(local_tsa, bundle, bundle / "tsa" / "trust-roots.pem") >= 1
        done = run_cli("verify", str(bundle))
        assert done.returncode == 0 and "anchors verified" in done.stdout, done.stdout
        assert "TSA chains not checked" not in done.stdout
    finally:
        out = stop_server(server)
    assert server.process.returncode == 0, out
    result = verify(server.data_dir / "databases" / "anchored", tsa_roots=roots(local_tsa))
    assert result.ok and result.anchors >= 1, result.lines()
