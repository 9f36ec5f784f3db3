"""The ledger wired into a database: settings, keys, a 0.8 log's migration, the CLI, the server."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest

from cosmictron import Database, DurabilityConfig
from cosmictron.cli.settings import SavedIdentity, Settings
from cosmictron.errors import ConfigError
from cosmictron.ledger import leaf_hash, verify, verify_consistency, verify_inclusion
from cosmictron.ledger.checkpoint import open_checkpoint
from cosmictron.ledger.errors import KeyUnavailable
from cosmictron.ledger.logread import LogReader
from cosmictron.ledger.record_format import (
    BODY,
    KEY_ADDED_KIND,
    KEY_FP,
    KIND,
    MIGRATED_KIND,
    PREV_HASH,
    SEQ,
    SIGNATURE,
)
from cosmictron.ledger.signing import SigningKey, VerifierKey, save_key
from tests.ledger.test_tamper import MODULE, payloads, rewrite
from tests.server.conftest import start_server, stop_server

CLI = [sys.executable, "-c", "from cosmictron.cli.main import main; main()"]


def config(signing: str, **overrides: Any) -> DurabilityConfig:
    fields = {**vars(DurabilityConfig.from_profile("development")), "signing": signing}
    return DurabilityConfig(**{**fields, **overrides})


@pytest.fixture
def module(tmp_path: Path) -> str:
    (tmp_path / "app.py").write_text(MODULE)
    return str(tmp_path / "app.py")


def fill(path: Path, module: str, signing: str, count: int, **overrides: Any) -> None:
    db = Database.open(path, module=module, durability=config(signing, **overrides))
    for i in range(count):
        db.call("add", f"n {i}")
    db.close()


# -- settings --------------------------------------------------------------------------------


def test_signing_comes_from_the_environment_and_config_toml(tmp_path: Path) -> None:
    assert DurabilityConfig.from_profile("maximum_safety").signing == "event"
    assert DurabilityConfig.default().signing == "off"
    resolved = DurabilityConfig.resolve(environ={"COSMICTRON_SIGNING": "checkpoint"})
    assert resolved.signing == "checkpoint"
    toml = tmp_path / "config.toml"
    toml.write_text('signing = "event"\ncheckpoint_interval_records = 10\n')
    from_file = DurabilityConfig.resolve(environ={}, config_file=toml)
    assert (from_file.signing, from_file.checkpoint_interval_records) == ("event", 10)
    with pytest.raises(ConfigError, match="unknown signing 'sha1'; valid values: off, checkpoint"):
        DurabilityConfig.resolve(environ={"COSMICTRON_SIGNING": "sha1"})
    with pytest.raises(ConfigError, match="checkpoint_interval_records must be a positive"):
        config("checkpoint", checkpoint_interval_records=0)


def test_off_writes_no_ledger_files_but_the_chain_verifies(tmp_path: Path, module: str) -> None:
    fill(tmp_path / "data", module, "off", 20)
    assert not (tmp_path / "data" / "ledger").exists()
    result = verify(tmp_path / "data")
    assert result.ok and result.checkpoints == 0 and result.records == 20


def test_the_data_directory_key_is_0600_and_named_by_the_log(tmp_path: Path, module: str) -> None:
    fill(tmp_path / "data", module, "checkpoint", 5)
    key_file = tmp_path / "data" / "ledger" / "signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = msgpack.unpackb(payloads(tmp_path / "data")[0], raw=False)
    assert first[KIND] == KEY_ADDED_KIND
    key = VerifierKey.from_text(first[BODY][1])
    assert result_keys(tmp_path / "data") == [key.to_text()]


def result_keys(path: Path) -> list[str]:
    result = verify(path)
    assert result.ok, result.lines()
    return result.keys


def test_a_key_from_a_path_and_from_the_environment(
    tmp_path: Path, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = SigningKey.generate("operator")
    key_path = tmp_path / "outside.key"
    save_key(outside, key_path)
    fill(tmp_path / "data", module, "event", 3, signing_key_path=str(key_path))
    assert not (tmp_path / "data" / "ledger" / "signing.key").exists()
    first = msgpack.unpackb(payloads(tmp_path / "data")[0], raw=False)
    assert first[KEY_FP] == outside.fingerprint
    os.chmod(key_path, 0o644)
    with pytest.raises(KeyUnavailable, match="readable by others"):
        Database.open(
            tmp_path / "data",
            module=module,
            durability=config("event", signing_key_path=str(key_path)),
        )
    from_env = SigningKey.generate("env")
    monkeypatch.setenv("COSMICTRON_SIGNING_KEY", from_env.to_text())
    fill(tmp_path / "env-data", module, "event", 3)
    first = msgpack.unpackb(payloads(tmp_path / "env-data")[0], raw=False)
    assert first[KEY_FP] == from_env.fingerprint
    assert not (tmp_path / "env-data" / "ledger" / "signing.key").exists()


def test_event_signing_signs_every_record(tmp_path: Path, module: str) -> None:
    fill(tmp_path / "data", module, "event", 10)
    records = [msgpack.unpackb(p, raw=False) for p in payloads(tmp_path / "data")]
    assert all(type(r[SIGNATURE]) is bytes and r[KEY_FP] for r in records)
    fill(tmp_path / "cp", module, "checkpoint", 10)
    records = [msgpack.unpackb(p, raw=False) for p in payloads(tmp_path / "cp")]
    assert [r[KIND] for r in records if r[SIGNATURE] is not None] == [KEY_ADDED_KIND]


def test_a_checkpoint_every_n_records_and_at_close(tmp_path: Path, module: str) -> None:
    fill(tmp_path / "data", module, "checkpoint", 25, checkpoint_interval_records=10)
    result = verify(tmp_path / "data")
    # key (1), 9 tx -> checkpoint at 11, 10 tx -> 21, ... and the close's.
    assert result.ok and result.checkpoints == 3, result.lines()


# -- a 0.8 log --------------------------------------------------------------------------------


def to_version_1(path: Path) -> int:
    """Rewrite a log written with the ledger off as Cosmictron 0.8 wrote it."""
    records = []
    previous = bytes(32)
    for payload in payloads(path):
        fields = msgpack.unpackb(payload, raw=False)
        legacy = msgpack.packb([1, fields[KIND], fields[SEQ], previous, fields[BODY]])
        previous = hashlib.sha256(legacy).digest()
        records.append(legacy)
    rewrite(path, records)
    for snapshot in (path / "snapshots").glob("*"):
        snapshot.unlink()
    return len(records)


@pytest.mark.parametrize("signing", ["off", "checkpoint"])
def test_a_0_8_log_opens_migrated_with_a_marker(tmp_path: Path, module: str, signing: str) -> None:
    data = tmp_path / "data"
    fill(data, module, "off", 12)
    legacy = to_version_1(data)
    db = Database.open(data, module=module, durability=config(signing))
    assert db.sql("SELECT COUNT(*) AS n FROM item").rows == [(12,)]
    db.call("add", "after the migration")
    db.close()
    records = [msgpack.unpackb(p, raw=False) for p in payloads(data)]
    assert records[legacy][KIND] == MIGRATED_KIND and records[legacy][BODY][1] == legacy
    result = verify(data)
    assert result.ok and result.legacy_through == legacy, result.lines()
    assert "0.8 records (hash chain only)" in result.lines()[0]


def test_a_0_8_record_after_the_migration_is_refused(tmp_path: Path, module: str) -> None:
    data = tmp_path / "data"
    fill(data, module, "off", 5)
    to_version_1(data)
    fill(data, module, "off", 2)
    records = payloads(data)
    last = msgpack.unpackb(records[-1], raw=False)
    records[-1] = msgpack.packb([1, last[KIND], last[SEQ], last[PREV_HASH], last[BODY]])
    rewrite(data, records)
    result = verify(data)
    assert (result.code, result.first_bad_seq) == ("legacy_record", len(records))


# -- the CLI -------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def test_cli_verify_a_data_directory(tmp_path: Path, module: str) -> None:
    data = tmp_path / "data"
    fill(data, module, "event", 30, checkpoint_interval_records=10)
    done = run_cli("verify", str(data))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: ") and "checkpoints verified" in done.stdout
    records = payloads(data)
    del records[14]
    rewrite(data, records)
    done = run_cli("verify", str(data))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("seq_mismatch at seq 15: "), done.stdout
    assert all(" at seq " in line for line in lines)
    done = run_cli("verify", str(data), "--json")
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert (document["ok"], document["code"], document["first_bad_seq"]) == (
        False,
        "seq_mismatch",
        15,
    )


def test_cli_verify_with_a_pinned_key(tmp_path: Path, module: str) -> None:
    data = tmp_path / "data"
    fill(data, module, "checkpoint", 5)
    stranger = SigningKey.generate(verify(data).origin or "x").verifier.to_text()
    done = run_cli("verify", str(data), "--key", stranger)
    assert done.returncode == 1 and done.stdout.startswith("untrusted_key at seq 1: ")
    own = verify(data).keys[0]
    assert run_cli("verify", str(data), "--key", own).returncode == 0


# -- the server -------------------------------------------------------------------------------


def test_audit_routes_serve_checkpoints_and_proofs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server(
        tmp_path / "server-data",
        env={
            "COSMICTRON_SIGNING": "checkpoint",
            "COSMICTRON_FSYNC_POLICY": "never",
        },
    )
    try:
        _, token = server.deployer()
        assert server.deploy("audited", MODULE, token).status == 201
        for i in range(40):
            reply = server.request("POST", "/v1/database/audited/call/add", [f"n {i}"], token)
            assert reply.status == 200, reply
        db_dir = server.data_dir / "databases" / "audited"
        # The server checkpoints every 1000 records or 1 s: the next call after a second.
        time.sleep(1.1)
        server.request("POST", "/v1/database/audited/call/add", ["tick"], token)
        server.request("POST", "/v1/database/audited/call/add", ["tock"], token)
        _, stranger = server.identity()
        latest = server.request("GET", "/v1/database/audited/audit/checkpoint", token=stranger)
        assert latest.status == 200, latest
        keys = [VerifierKey.from_text(k) for k in latest.body["keys"]]
        checkpoint = open_checkpoint(latest.body["note"], keys, origin=latest.body["origin"])
        size = checkpoint.size
        assert size == latest.body["size"] >= 40
        proof = server.request("GET", f"/v1/database/audited/audit/inclusion?seq=3&size={size}")
        assert proof.status == 200, proof
        record = [r.payload for r in LogReader(str(db_dir))][2]
        assert proof.body["leaf_hash"] == leaf_hash(record).hex()
        verify_inclusion(
            leaf_hash(record),
            2,
            size,
            [bytes.fromhex(h) for h in proof.body["proof"]],
            checkpoint.root_hash,
        )
        consistency = server.request(
            "GET", f"/v1/database/audited/audit/consistency?old=5&new={size}"
        )
        assert consistency.status == 200, consistency
        verify_consistency(
            5,
            size,
            bytes.fromhex(consistency.body["old_root"]),
            checkpoint.root_hash,
            [bytes.fromhex(h) for h in consistency.body["proof"]],
        )
        bad = server.request("GET", "/v1/database/audited/audit/inclusion?seq=x")
        assert (bad.status, bad.body["error"]["code"]) == (400, "invalid_request")
        beyond = server.request(
            "GET", f"/v1/database/audited/audit/inclusion?seq=1&size={size + 1000}"
        )
        assert beyond.status == 400 and "proofs cover" in beyond.body["error"]["message"]
        denied = server.request("GET", "/v1/database/audited/audit/verify", token=stranger)
        assert denied.status == 403, denied
        verified = server.request("GET", "/v1/database/audited/audit/verify", token=token)
        assert verified.status == 200 and verified.body["ok"] is True, verified
        monkeypatch.setenv("COSMICTRON_CONFIG_DIR", str(tmp_path / "cli-config"))
        settings = Settings.load()
        settings.identities[server.url] = SavedIdentity("owner", token)
        settings.save()
        done = run_cli("verify", "audited", "--server", server.url)
        assert done.returncode == 0 and done.stdout.startswith("ok: "), done.stderr
    finally:
        out = stop_server(server)
    assert server.process.returncode == 0, out
    result = verify(server.data_dir / "databases" / "audited")
    assert result.ok, result.lines()


def test_a_database_with_the_ledger_off_answers_ledger_off(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server-data", "--profile", "development")
    try:
        _, token = server.deployer()
        assert server.deploy("plain", MODULE, token).status == 201
        reply = server.request("GET", "/v1/database/plain/audit/checkpoint")
        assert (reply.status, reply.body["error"]["code"]) == (409, "ledger_off"), reply
    finally:
        stop_server(server)
