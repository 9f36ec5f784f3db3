"""Who may run code on a real server: the right to deploy, the operator, grants.

Every module here appends a line to a marker file when it is imported, so "its import
code never ran" is checked by the file, and each test first shows the marker does grow
when an allowed caller deploys (a refusal that only came after importing would fail).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.server.conftest import Reply, Server, start_server, stop_server
from tests.server.test_backup_routes import download, upload

MODULE = """
import pathlib

pathlib.Path({marker!r}).open("a").write("imported\\n")

from cosmictron import ReducerContext, field, reducer, table


@table(public=True)
class Item:
    id: int = field(primary_key=True)


@reducer
def add(ctx: ReducerContext, id: int) -> None:
    ctx.db.item.insert(Item(id=id))


@reducer
def open_secrets(ctx: ReducerContext) -> list[str]:
    import os
    opened = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{{fd}}")
        except OSError:
            continue
        if "jwt_ed25519" in target or "operator.token" in target:
            opened.append(target)
    return opened
"""


def module(marker: Path) -> str:
    return MODULE.format(marker=str(marker))


def imports(marker: Path) -> int:
    """How many times a module writing ``marker`` was imported."""
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def refused(reply: Reply, status: int, code: str, *texts: str) -> None:
    assert reply.status == status, reply
    assert reply.body["error"]["code"] == code, reply
    for text in texts:
        assert text in reply.body["error"]["message"], reply


def nothing_written(server: Server, name: str) -> None:
    """No database directory and no upload left for ``name``."""
    assert not (server.data_dir / "databases" / name).exists()
    uploads = server.data_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []
    assert server.request("GET", f"/v1/database/{name}/schema").status == 404


def test_a_fresh_token_may_not_create_and_its_module_is_never_imported(
    server: Server, tmp_path: Path
) -> None:
    marker = tmp_path / "imported"
    identity, token = server.identity()
    reply = server.deploy("evil", module(marker), token)
    refused(
        reply,
        403,
        "permission_denied",
        f"identity {identity} may not deploy database 'evil'",
        "right to deploy",
        f"cosmictron-cli grant deploy {identity}",
    )
    assert imports(marker) == 0
    nothing_written(server, "evil")
    anonymous = server.request("PUT", "/v1/database/evil", module(marker))
    refused(anonymous, 401, "unauthenticated", "right to deploy")
    assert imports(marker) == 0
    # The same module deployed by the operator is imported: the marker can fail.
    _, operator_token = server.operator()
    assert server.deploy("evil", module(marker), operator_token).status == 201
    assert imports(marker) >= 1
    # A fresh token may still call reducers and read public tables.
    assert server.request("POST", "/v1/database/evil/call/add", [1], token).status == 200
    rows = server.request("POST", "/v1/database/evil/sql", "SELECT id FROM item", token)
    assert rows.body["rows"] == [{"id": 1}]


def test_a_fresh_token_may_not_deploy_over_or_restore(server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    _, operator_token = server.operator()
    assert server.deploy("shop", module(marker), operator_token).status == 201
    status, archive, _ = download(server, "shop", operator_token)
    assert status == 200
    before = imports(marker)
    _, token = server.identity()
    over = server.deploy("shop", module(marker) + "\n# v2\n", token)
    refused(over, 403, "permission_denied", "may not deploy database 'shop'")
    restore = upload(server, "copy", archive, token)
    refused(restore, 403, "permission_denied", "may not restore an archive as database 'copy'")
    refused(upload(server, "copy", archive, None), 401, "unauthenticated")
    assert imports(marker) == before
    nothing_written(server, "copy")
    # The operator's restore of the same archive imports its module: the check can fail.
    assert upload(server, "copy", archive, operator_token).status == 201
    assert imports(marker) > before


def test_granted_identities_deploy_until_revoked_and_may_still_delete(
    server: Server, tmp_path: Path
) -> None:
    marker = tmp_path / "imported"
    identity, token = server.identity()
    _, operator_token = server.operator()
    me = server.request("GET", "/v1/identity", token=operator_token).body
    assert me["operator"] is True and me["rights"] == ["deploy"]
    grant = server.request("PUT", f"/v1/grants/deploy/{identity}", token=operator_token)
    assert grant.body == {"right": "deploy", "identity": identity, "granted": True, "changed": True}
    again = server.request("PUT", f"/v1/grants/deploy/{identity}", token=operator_token)
    assert again.status == 200 and again.body["changed"] is False
    assert server.request("GET", "/v1/identity", token=token).body["rights"] == ["deploy"]
    assert server.deploy("mine", module(marker), token).status == 201
    assert server.deploy("mine", module(marker) + "\n# v2\n", token).status == 200
    status, archive, _ = download(server, "mine", token)
    assert status == 200
    assert upload(server, "mine-copy", archive, token).status == 201
    listed = server.request("GET", "/v1/grants/deploy", token=operator_token).body
    assert listed == {"right": "deploy", "operator": me["identity"], "identities": [identity]}

    revoke = server.request("DELETE", f"/v1/grants/deploy/{identity}", token=operator_token)
    assert revoke.body == {
        "right": "deploy",
        "identity": identity,
        "granted": False,
        "changed": True,
    }
    before = imports(marker)
    # Deploying over its own database runs new code: that needs the right too.
    over = server.deploy("mine", module(marker) + "\n# v3\n", token)
    refused(over, 403, "permission_denied", "may not deploy database 'mine'")
    refused(server.deploy("other", module(marker), token), 403, "permission_denied")
    assert imports(marker) == before
    # Deleting its own database runs no code and stays allowed.
    assert server.request("DELETE", "/v1/database/mine", token=token).status == 200
    assert server.request("GET", "/v1/grants/deploy", token=operator_token).body["identities"] == []


def test_only_the_operator_grants_and_bad_requests_name_the_problem(server: Server) -> None:
    operator, operator_token = server.operator()
    granted, granted_token = server.deployer()
    _, fresh_token = server.identity()
    target, _ = server.identity()
    for token in (fresh_token, granted_token, None):
        for method, path in (
            ("PUT", f"/v1/grants/deploy/{target}"),
            ("DELETE", f"/v1/grants/deploy/{granted}"),
            ("GET", "/v1/grants/deploy"),
        ):
            reply = server.request(method, path, token=token)
            refused(reply, 403, "permission_denied", "only the server's operator may")
    listed = server.request("GET", "/v1/grants/deploy", token=operator_token).body
    assert listed["identities"] == [granted]  # the refusals changed nothing
    cases = [
        ("PUT", "/v1/grants/deploy/xyz", 400, "64 hexadecimal digits"),
        ("PUT", "/v1/grants/root/" + target, 400, "no right called 'root' (rights: deploy)"),
        ("GET", "/v1/grants/root", 400, "no right called 'root'"),
        ("PUT", "/v1/grants/deploy/" + "0" * 64, 400, "anonymous identity"),
        ("DELETE", f"/v1/grants/deploy/{operator}", 400, "cannot be revoked"),
    ]
    for method, path, status, text in cases:
        refused(server.request(method, path, token=operator_token), status, "invalid_request", text)
    granting_self = server.request("PUT", f"/v1/grants/deploy/{operator}", token=operator_token)
    assert granting_self.status == 200 and granting_self.body["changed"] is False
    absent = server.request("DELETE", f"/v1/grants/deploy/{target}", token=operator_token)
    assert absent.status == 200 and absent.body["changed"] is False


def secret_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_grants_and_the_operator_survive_a_restart_and_secrets_stay_0600(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data, "--profile", "development")
    try:
        operator, operator_token = first.operator()
        kept, kept_token = first.deployer()
        dropped, dropped_token = first.deployer()
        assert first.request("DELETE", f"/v1/grants/deploy/{dropped}", token=operator_token).body[
            "changed"
        ]
    finally:
        stop_server(first)
    server_dir = data / "server"
    for name in ("operator.token", "grants.json", "jwt_ed25519.pem"):
        assert secret_mode(server_dir / name) == 0o600, name
    assert secret_mode(server_dir) == 0o700
    grants = json.loads((server_dir / "grants.json").read_text())
    assert grants == {"version": 1, "grants": {"deploy": [kept]}}
    assert not (server_dir / "grants.json.tmp").exists()
    # Loosened by hand: the next start tightens them again before loading any module.
    os.chmod(server_dir / "operator.token", 0o644)
    os.chmod(server_dir / "jwt_ed25519.pem", 0o644)

    second = start_server(data, "--profile", "development")
    try:
        assert second.operator() == (operator, operator_token)
        assert second.deploy("kept", module(tmp_path / "m"), kept_token).status == 201
        refused(
            second.deploy("dropped", module(tmp_path / "m"), dropped_token),
            403,
            "permission_denied",
        )
        assert secret_mode(server_dir / "operator.token") == 0o600
        assert secret_mode(server_dir / "jwt_ed25519.pem") == 0o600
    finally:
        stop_server(second)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc/self/fd")
def test_module_code_finds_no_open_descriptor_to_the_key(server: Server, tmp_path: Path) -> None:
    _, operator_token = server.operator()
    assert server.deploy("probe", module(tmp_path / "m"), operator_token).status == 201
    reply = server.request("POST", "/v1/database/probe/call/open_secrets", [], operator_token)
    assert reply.status == 200 and reply.body["return_value"] == []


def test_a_broken_grants_file_or_a_foreign_operator_token_stops_the_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stop_server(start_server(data, "--profile", "development"))
    (data / "server" / "grants.json").write_text('{"version": 1, "grants": {"root": []}}')
    with pytest.raises(AssertionError, match=r"grants\.json is not a grants file"):
        start_server(data, "--profile", "development")
    (data / "server" / "grants.json").unlink()
    # A replaced key: the old operator token no longer proves anything; say which file.
    (data / "server" / "jwt_ed25519.pem").unlink()
    with pytest.raises(AssertionError, match=r"operator\.token does not hold a token of this"):
        start_server(data, "--profile", "development")
    (data / "server" / "operator.token").unlink()
    stop_server(start_server(data, "--profile", "development"))  # a new key, a new operator
