"""One validator per kind of name (``cosmictron.names``), over real sockets at every edge.

A name with a trailing newline, a Unicode look-alike or one character too many is a 400
``invalid_request`` naming the rule at each HTTP route, a failed ``ReducerResult`` on
the WebSocket, a one-line usage error (exit 2) in the CLI and an ``InvalidRequest`` in
the SDK before anything is sent; nothing is created and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import quote

import pytest

from cosmictron import limits
from cosmictron.client import connect
from cosmictron.errors import InvalidRequest
from tests.server.conftest import CLI, EXAMPLE, Server
from tests.server.rawws import RawWebSocket

BAD_DATABASES = ["quickstart\n", "qu\u0456ckstart", "quickstart ", "q" * 64, "Quickstart"]
BAD_IDENTIFIERS = [
    "add_task\n",
    "\u0430dd_task",
    "add-task",
    "a" * (limits.identifier_bytes_max + 1),
]


def path_of(name: str) -> str:
    return quote(name, safe="")


def refused(reply: object, rule: str) -> None:
    status, body = reply.status, reply.body  # type: ignore[attr-defined]
    assert status == 400, (status, body)
    assert body["error"]["code"] == "invalid_request", body
    assert rule in body["error"]["message"], body


@pytest.fixture
def deployed(server: Server) -> tuple[Server, str]:
    _, token = server.deployer()
    assert server.deploy("quickstart", EXAMPLE.read_text(), token).status == 201
    return server, token


def test_database_names_at_every_http_route(deployed: tuple[Server, str]) -> None:
    server, token = deployed
    rule = "lowercase letters"
    for name in BAD_DATABASES:
        where = path_of(name)
        refused(server.request("PUT", f"/v1/database/{where}", EXAMPLE.read_text(), token), rule)
        refused(server.request("GET", f"/v1/database/{where}/schema"), rule)
        refused(server.request("POST", f"/v1/database/{where}/call/add_task", ["x"]), rule)
        refused(server.request("POST", f"/v1/database/{where}/sql", "SELECT 1"), rule)
        refused(server.request("DELETE", f"/v1/database/{where}", token=token), rule)
        refused(server.request("PUT", f"/v1/database/{where}/restore", b"x", token), rule)
    listed = server.request("GET", "/v1/database").body["databases"]
    assert [entry["name"] for entry in listed] == ["quickstart"]
    # An unknown but valid name is still a 404.
    assert server.request("GET", "/v1/database/nothere/schema").status == 404


def test_reducer_table_and_identity_names(deployed: tuple[Server, str]) -> None:
    server, token = deployed
    for name in BAD_IDENTIFIERS:
        where = path_of(name)
        refused(server.request("POST", f"/v1/database/quickstart/call/{where}", ["x"]), "ASCII")
        refused(
            server.request(
                "POST",
                f"/v1/database/quickstart/bulk_insert/{where}",
                b'{"a": 1}\n',
                token,
                "application/x-ndjson",
            ),
            "ASCII",
        )
        refused(server.request("GET", f"/v1/database/quickstart/export/{where}"), "ASCII")
    _, operator = server.operator()
    for text in ["ab" * 32 + "\n", "ab cd" * 13, "\u0430b" * 32]:
        reply = server.request("PUT", f"/v1/grants/deploy/{path_of(text)}", token=operator)
        refused(reply, "64 hexadecimal digits")
    assert server.request("GET", "/v1/health").status == 200


def test_websocket_call_with_a_bad_reducer_name(deployed: tuple[Server, str]) -> None:
    server, _ = deployed
    ws = RawWebSocket(server.url, "quickstart")
    assert ws.status == 101
    ws.receive_json()  # IdentityToken
    for number, name in enumerate(BAD_IDENTIFIERS):
        ws.send_json({"CallReducer": {"request_id": number, "reducer": name, "args": ["x"]}})
        result = ws.receive_json()["ReducerResult"]
        assert result["request_id"] == number and result["status"] == "failed", result
        assert result["error_code"] == "protocol_error", result
        assert "not a valid reducer name" in result["error"], result
    ws.send_json({"CallReducer": {"request_id": "ok", "reducer": "add_task", "args": ["x"]}})
    while "ReducerResult" not in (message := ws.receive_json()):
        pass
    assert message["ReducerResult"]["status"] == "committed", message
    ws.close()


def test_cli_refuses_bad_names_in_one_line(tmp_path: Path) -> None:
    cases = [
        ["call", "quickstart\n", "add_task", "x"],
        ["call", "quickstart", "\u0430dd_task", "x"],
        ["sql", "q" * 64, "SELECT 1"],
        ["export", "quickstart", "task\n"],
        ["grant", "deploy", "ab" * 31],
    ]
    for args in cases:
        result = subprocess.run(
            [CLI, *args, "--server", "http://127.0.0.1:9"],  # nothing listens: never sent
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COSMICTRON_CONFIG_DIR": str(tmp_path)},
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "is not valid: use" in lines[0], lines[0]


def test_sdk_refuses_bad_names_before_connecting() -> None:
    async def attempt() -> None:
        for name in BAD_DATABASES:
            with pytest.raises(InvalidRequest, match="lowercase letters"):
                await connect(name, server="http://127.0.0.1:9")

    asyncio.run(attempt())


def test_restore_refuses_an_archive_member_with_a_trailing_newline(
    deployed: tuple[Server, str],
) -> None:
    server, token = deployed
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = b"{}"
        info = tarfile.TarInfo("database.json\n")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    reply = server.request(
        "PUT", "/v1/database/copy/restore", buffer.getvalue(), token, "application/x-tar"
    )
    assert reply.status == 422 and reply.body["error"]["code"] == "backup_damaged", reply
    assert "unexpected member 'database.json\\n'" in reply.body["error"]["message"], reply
    assert server.request("GET", "/v1/database/copy/schema").status == 404
