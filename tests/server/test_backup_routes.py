"""``GET /v1/database/{name}/backup`` and ``PUT /v1/database/{name}/restore`` on a real server.

The archive a server sends is checked with the same ``verify_backup`` the CLI runs, and
restored through the route; permissions and refusals are checked by status and error code.
"""

from __future__ import annotations

import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from cosmictron.host.backup import verify_backup
from tests.server.conftest import EXAMPLE, Reply, Server, strict_loads


def download(server: Server, name: str, token: str | None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(f"{server.url}/v1/database/{name}/backup")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def upload(server: Server, name: str, archive: bytes, token: str | None, query: str = "") -> Reply:
    return server.request(
        "PUT", f"/v1/database/{name}/restore{query}", archive, token, "application/x-tar"
    )


def deployed_with_tasks(server: Server, count: int) -> tuple[str, str]:
    identity, token = server.deployer()
    assert server.deploy("qs", EXAMPLE.read_text(), token).status == 201  # offset 1: init
    for n in range(count):
        reply = server.request("POST", "/v1/database/qs/call/add_task", [f"task {n}", n], token)
        assert reply.status == 200, reply
    return identity, token


def test_the_owner_backs_up_and_restores_under_a_new_name(server: Server, tmp_path: Path) -> None:
    identity, token = deployed_with_tasks(server, 5)
    status, archive, headers = download(server, "qs", token)
    assert status == 200 and headers["Content-Type"] == "application/x-tar"
    assert headers["X-Cosmictron-Cut-Offset"] == "6"
    (tmp_path / "qs.backup").write_bytes(archive)
    assert verify_backup(tmp_path / "qs.backup").cut_offset == 6

    reply = upload(server, "copy", archive, token)
    assert reply.status == 201, reply
    assert reply.body["owner"] == identity and reply.body["tx_offset"] == 6
    rows = server.request("POST", "/v1/database/copy/sql", "SELECT * FROM task", token)
    assert len(rows.body["rows"]) == 6  # the init task and five more
    call = server.request("POST", "/v1/database/copy/call/add_task", ["after", 1], token)
    assert call.body["tx_offset"] == 7

    earlier = upload(server, "earlier", archive, token, "?to_offset=3")
    assert earlier.status == 201 and earlier.body["tx_offset"] == 3
    assert server.request("GET", "/v1/database/earlier/schema").body["tx_offset"] == 3


def test_restore_makes_the_caller_the_owner(server: Server) -> None:
    _, token = deployed_with_tasks(server, 1)
    _, archive, _ = download(server, "qs", token)
    other, other_token = server.deployer()
    reply = upload(server, "theirs", archive, other_token)
    assert reply.status == 201 and reply.body["owner"] == other
    listed = server.request("GET", "/v1/database", token=other_token).body["databases"]
    assert {"name": "theirs", "owner": other, "mine": True} in listed


def test_only_the_owner_may_back_up(server: Server) -> None:
    deployed_with_tasks(server, 1)
    _, stranger = server.identity()
    for token in (stranger, None):
        status, body, _ = download(server, "qs", token)
        assert status == 403, body
        assert strict_loads(body)["error"]["code"] == "permission_denied"
    status, body, _ = download(server, "missing", stranger)
    assert status == 404


def test_restore_refusals_create_nothing(server: Server, tmp_path: Path) -> None:
    _, token = deployed_with_tasks(server, 2)
    _, archive, _ = download(server, "qs", token)
    anonymous = upload(server, "copy", archive, None)
    assert anonymous.status == 401
    taken = upload(server, "qs", archive, token)
    assert taken.status == 409 and "already exists" in taken.body["error"]["message"]
    past = upload(server, "copy", archive, token, "?to_offset=99")
    assert past.status == 400 and "holds offsets 0 to 3" in past.body["error"]["message"]
    bad_time = upload(server, "copy", archive, token, "?to_time=yesterday")
    assert bad_time.status == 400 and "RFC 3339" in bad_time.body["error"]["message"]

    (tmp_path / "a.tar").write_bytes(archive)
    with tarfile.open(tmp_path / "a.tar") as tar:
        start = next(m for m in tar.getmembers() if m.name.startswith("log/")).offset_data
    damaged = bytearray(archive)
    damaged[start + 40] ^= 0xFF
    refused = upload(server, "copy", bytes(damaged), token)
    assert refused.status == 422, refused
    assert refused.body["error"]["code"] == "backup_damaged"
    assert "does not match its SHA-256" in refused.body["error"]["message"]
    names = [d["name"] for d in server.request("GET", "/v1/database").body["databases"]]
    assert names == ["qs"]
    assert sorted(p.name for p in (server.data_dir / "databases").iterdir()) == ["qs"]
