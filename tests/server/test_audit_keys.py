"""Operators and owners rotate and revoke a database's ledger signing keys over HTTP and
the CLI (``/v1/database/{name}/audit/keys``, ``cosmictron-cli keys``), against a real
server whose databases keep a ledger; anyone else is refused; the history still verifies,
each key signing only inside its range."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cosmictron.ledger.signing import SigningKey
from tests.cli.test_server_commands import CLI, source_path
from tests.ledger.test_tamper import MODULE
from tests.server.conftest import Server, start_server, stop_server

ENV = {"COSMICTRON_SIGNING": "checkpoint", "COSMICTRON_FSYNC_POLICY": "never"}
KEYS = "/v1/database/audited/audit/keys"


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, as the server's operator (whose token ``start`` saved)."""
    env = {
        "PATH": str(Path(sys.executable).parent),
        "COSMICTRON_CONFIG_DIR": str(server.data_dir.parent / "config"),
        "COSMICTRON_SERVER": server.url,
        **source_path(),
    }
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=60)


def cli_json(server: Server, *args: str) -> Any:
    done = cli(server, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def keys_of(server: Server, token: str) -> list[dict[str, Any]]:
    reply = server.request("GET", KEYS, token=token)
    assert reply.status == 200, reply
    return list(reply.body["keys"])


def add_some(server: Server, token: str, count: int) -> None:
    for i in range(count):
        reply = server.request("POST", "/v1/database/audited/call/add", [f"row {i}"], token)
        assert reply.status == 200, reply


def test_owner_and_operator_rotate_and_revoke_keys_and_others_may_not(tmp_path: Path) -> None:
    data = tmp_path / "server-data"
    server = start_server(data, env=ENV)
    try:
        _, owner = server.deployer()
        assert server.deploy("audited", MODULE, owner).status == 201
        add_some(server, owner, 3)
        [first] = keys_of(server, owner)
        assert first["current"] and first["active"] and first["last"] is None

        # Neither a stranger nor an anonymous caller may list, rotate or revoke.
        _, stranger = server.identity()
        for method, path in (
            ("GET", KEYS),
            ("POST", KEYS + "/rotate"),
            ("DELETE", f"{KEYS}/{first['fingerprint']}"),
        ):
            for token in (stranger, None):
                refused = server.request(method, path, token=token)
                assert refused.status == 403, refused
                assert refused.body["error"]["code"] == "permission_denied"
        assert keys_of(server, owner) == [first]

        # The owner rotates over HTTP: the old key's range ends at the rotation record.
        rotated = server.request("POST", KEYS + "/rotate", token=owner)
        assert rotated.status == 200, rotated
        assert rotated.body["old"] == first["key"] and rotated.body["key"] != first["key"]
        listed = {k["fingerprint"]: k for k in keys_of(server, owner)}
        assert listed[first["fingerprint"]]["last"] == rotated.body["seq"]
        assert not listed[first["fingerprint"]]["active"]
        assert listed[rotated.body["fingerprint"]]["current"]

        # The operator rotates with the CLI.
        by_cli = cli_json(server, "keys", "rotate", "audited")
        assert by_cli["rotated"] is True and by_cli["old"] == rotated.body["key"]
        assert by_cli["seq"] > rotated.body["seq"]
        human = cli(server, "keys", "list", "audited")
        assert human.returncode == 0, human.stderr
        assert "current" in human.stdout and human.stdout.count("retired") == 2, human.stdout
        add_some(server, owner, 2)

        # Bad revocations: the current key, a retired key, not a fingerprint, unknown.
        current = by_cli["fingerprint"]
        for key, status, code, words in (
            (current, 400, "invalid_request", "rotate it out instead"),
            (first["fingerprint"], 400, "invalid_request", "not active"),
            ("xyz", 400, "invalid_request", "not a key fingerprint"),
            ("00000000deadbeef", 404, "not_found", "no signing key"),
        ):
            reply = server.request("DELETE", f"{KEYS}/{key}", token=owner)
            assert reply.status == status, reply
            assert reply.body["error"]["code"] == code and words in reply.body["error"]["message"]
        failed = cli(server, "keys", "revoke", "audited", current[:12])
        assert failed.returncode != 0 and "rotate it out instead" in failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    finally:
        stop_server(server)

    # Restarted with a key from outside: it is added, the one before stays active until
    # revoked; the operator revokes it by a fingerprint prefix.
    outside = SigningKey.generate("outside")
    server = start_server(data, env={**ENV, "COSMICTRON_SIGNING_KEY": outside.to_text()})
    try:
        listed = {k["fingerprint"]: k for k in cli_json(server, "keys", "list", "audited")["keys"]}
        assert listed[outside.fingerprint.hex()]["current"]
        assert listed[current]["active"] and not listed[current]["current"]
        revoked = cli_json(server, "keys", "revoke", "audited", current[:16])
        assert revoked["revoked"] is True and revoked["fingerprint"] == current
        after = {k["fingerprint"]: k for k in keys_of(server, owner)}
        assert after[current]["last"] == revoked["seq"] - 1 and not after[current]["active"]
        add_some(server, owner, 2)
        verified = server.request("GET", "/v1/database/audited/audit/verify", token=owner)
        assert verified.status == 200 and verified.body["ok"] is True, verified
    finally:
        stop_server(server)


def test_a_database_without_a_ledger_lists_no_keys_and_cannot_rotate(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server-data", env={"COSMICTRON_FSYNC_POLICY": "never"})
    try:
        _, owner = server.deployer()
        assert server.deploy("audited", MODULE, owner).status == 201
        listed = server.request("GET", KEYS, token=owner)
        assert listed.status == 200 and listed.body["keys"] == [], listed
        assert listed.body["signing"] == "off"
        refused = server.request("POST", KEYS + "/rotate", token=owner)
        assert refused.status == 409 and refused.body["error"]["code"] == "ledger_off"
        human = cli(server, "keys", "list", "audited")
        assert human.returncode == 0 and "keeps no ledger" in human.stdout, human
    finally:
        stop_server(server)
