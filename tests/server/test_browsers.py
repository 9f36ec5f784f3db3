"""What a browser needs from the server (issue 20): exact 64-bit integers in JSON, CORS
and the WebSocket ``Origin`` check (``server/origins.py``, docs/design/big-integers.md).

Every test talks to a real server over real sockets; the Python SDK's side of big
integers (decoding the JSON strings back to ``int``) is checked over its JSON protocol.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from cosmictron.client import connect
from tests.server.conftest import Server, fresh_database, start_server, stop_server, strict_loads

MODULE = """
from cosmictron import table, reducer, ReducerContext, field, u64, i128

@table(name="num", public=True)
class Num:
    id: int = field(primary_key=True)
    small: int = 0
    big: u64 = 0
    huge: i128 = 0

@reducer
def put(ctx: ReducerContext, id: int, small: int, big: u64, huge: i128) -> int:
    ctx.db.num.insert(Num(id=id, small=small, big=big, huge=huge))
    return small
"""

I64_MIN, I64_MAX, U64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
SAFE = 2**53 - 1


@pytest.fixture
def nums(module_server: Server) -> Iterator[Server]:
    """The module's one server with a new ``nums`` database for this test."""
    with fresh_database(module_server, "nums", MODULE):
        yield module_server


def test_integers_past_2_53_travel_as_strings_and_come_back_exact(nums: Server) -> None:
    # A big integer may be sent as a JSON number (parsed exactly) or as a decimal string.
    reply = nums.request("POST", "/v1/database/nums/call/put", [1, I64_MAX, U64_MAX, -(2**100)])
    assert reply.status == 200 and reply.body["return_value"] == str(I64_MAX), reply
    args = {"id": 2, "small": str(I64_MIN), "big": "0", "huge": str(2**120)}
    reply = nums.request("POST", "/v1/database/nums/call/put", args)
    assert reply.status == 200 and reply.body["return_value"] == str(I64_MIN), reply
    reply = nums.request("POST", "/v1/database/nums/call/put", [3, SAFE, SAFE + 1, -SAFE])
    assert reply.status == 200, reply
    rows = nums.request("POST", "/v1/database/nums/sql", "SELECT * FROM num ORDER BY id").body
    assert rows["rows"] == [
        {"id": 1, "small": str(I64_MAX), "big": str(U64_MAX), "huge": str(-(2**100))},
        {"id": 2, "small": str(I64_MIN), "big": 0, "huge": str(2**120)},
        {"id": 3, "small": SAFE, "big": str(SAFE + 1), "huge": -SAFE},  # the edge: a number
    ]


def test_a_string_that_is_not_an_integer_is_refused_by_name(nums: Server) -> None:
    for bad in ("12a", " 1", "+1", "1_000", "", "١٢"):
        reply = nums.request("POST", "/v1/database/nums/call/put", [9, bad, 0, 0])
        assert reply.status == 400, (bad, reply)
        assert reply.body["error"]["code"] == "invalid_request"
        assert "argument 'small'" in reply.body["error"]["message"], reply
    assert nums.request("POST", "/v1/database/nums/sql", "SELECT * FROM num").body["rows"] == []


@pytest.mark.parametrize("protocol", ["json", "msgpack"])
def test_the_python_sdk_decodes_big_integers_to_int(nums: Server, protocol: str) -> None:
    async def scenario() -> tuple[object, list[tuple[int, int, int, int]]]:
        async with await connect(
            "nums", "SELECT * FROM num", server=nums.url, protocol=protocol
        ) as client:
            returned = await client.call("put", 7, I64_MIN, U64_MAX, 2**127 - 1)
            cached = [(r.id, r.small, r.big, r.huge) for r in client.table("num").iter()]
            return returned, cached

    returned, cached = asyncio.run(scenario())
    assert returned == I64_MIN and type(returned) is int
    assert cached == [(7, I64_MIN, U64_MAX, 2**127 - 1)]


def _raw(server: Server, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict, str]:
    request = urllib.request.Request(server.url + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


LOCAL_PAGE = "http://localhost:5173"
EVIL = "https://evil.example"


def test_a_loopback_page_gets_cors_headers_and_its_preflight_answered(server: Server) -> None:
    preflight = {
        "Origin": LOCAL_PAGE,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    status, headers, _ = _raw(server, "OPTIONS", "/v1/database/x/call/y", preflight)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == LOCAL_PAGE
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    assert headers["Vary"] == "Origin"
    status, headers, body = _raw(server, "GET", "/v1/health", {"Origin": LOCAL_PAGE})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == LOCAL_PAGE
    # Errors carry the headers too, so the page can read the code.
    status, headers, body = _raw(server, "GET", "/v1/database/none/schema", {"Origin": LOCAL_PAGE})
    assert status == 404 and headers["Access-Control-Allow-Origin"] == LOCAL_PAGE
    assert strict_loads(body)["error"]["code"] == "not_found"
    # The server's own origin (its Host) is allowed as well.
    own = server.url.replace("127.0.0.1", "localhost")
    assert _raw(server, "GET", "/v1/health", {"Origin": own})[0] == 200


def test_another_origin_is_refused_before_anything_runs(server: Server) -> None:
    for method, headers in (
        ("OPTIONS", {"Origin": EVIL, "Access-Control-Request-Method": "POST"}),
        ("POST", {"Origin": EVIL}),
        ("GET", {"Origin": "null"}),
    ):
        status, got, body = _raw(server, method, "/v1/identity", headers)
        assert status == 403, (method, headers, status)
        assert "Access-Control-Allow-Origin" not in got
        error = strict_loads(body)["error"]
        assert error["code"] == "origin_not_allowed" and repr(headers["Origin"]) in error["message"]
    # Without Origin (curl, the CLI, the SDKs outside a browser) nothing changes.
    assert _raw(server, "POST", "/v1/identity", {})[0] == 200


def _upgrade(url: str, origin: str) -> int | str:
    async def attempt() -> int | str:
        async with aiohttp.ClientSession() as http:
            try:
                ws = await http.ws_connect(
                    url, protocols=("v1.json.cosmictron",), headers={"Origin": origin}
                )
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status
            first = await ws.receive(timeout=30)
            await ws.close()
            return str(next(iter(json.loads(first.data))))

    return asyncio.run(attempt())


def test_a_websocket_from_another_origin_is_refused(nums: Server) -> None:
    url = f"{nums.url}/v1/database/nums/subscribe"
    assert _upgrade(url, EVIL) == 403
    assert _upgrade(url, "http://127.0.0.1:8080") == "IdentityToken"


def test_allowed_origins_setting_admits_a_named_origin(tmp_path: Path) -> None:
    env = {"COSMICTRON_ALLOWED_ORIGINS": "https://app.example.com/, https://admin.example.com"}
    running = start_server(tmp_path / "data", "--profile", "development", env=env)
    try:
        for origin, expected in (
            ("https://app.example.com", 200),
            ("https://ADMIN.example.com", 200),
            (EVIL, 403),
        ):
            status, headers, _ = _raw(running, "GET", "/v1/health", {"Origin": origin})
            assert status == expected, origin
            if expected == 200:
                assert headers["Access-Control-Allow-Origin"] == origin
        assert _upgrade(f"{running.url}/v1/database/x/subscribe", EVIL) == 403
    finally:
        stop_server(running)
    everyone = start_server(
        tmp_path / "data2", "--profile", "development", env={"COSMICTRON_ALLOWED_ORIGINS": "*"}
    )
    try:
        assert _raw(everyone, "GET", "/v1/health", {"Origin": EVIL})[0] == 200
    finally:
        stop_server(everyone)
