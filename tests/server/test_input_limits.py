"""Every input limit of issue 10 crossed over real sockets: a 4xx naming it, never a 500.

One server per test (tests/conftest.py stops every server when its test ends), started
with small overrides of the byte limits so crossing them is cheap. Each test checks the
reply's status and its ``{"error": {"code", "message"}}``, that nothing changed, and
that the server still serves.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from cosmictron import limits
from tests.server.conftest import (
    Server,
    fresh_database,
    shared_server,
    strict_loads,
)
from tests.server.rawws import CLOSE, TEXT, RawWebSocket

MODULE = """
from cosmictron import *

@table(public=True)
class Item:
    id: int = field(primary_key=True, auto_inc=True)
    tags: list[str] = field(default=[])
    text: str = ""

@reducer
def add(ctx: ReducerContext, tags: list[str], text: str = "") -> int:
    return ctx.db.item.insert(Item(tags=tags, text=text)).id

@reducer
def fill(ctx: ReducerContext, count: int, size: int) -> None:
    for _ in range(count):
        ctx.db.item.insert(Item(tags=[], text="x" * size))
"""

JSON_BODY_BYTES_MAX = 512 * 1024  # above the 200 kB of a 100k-deep array
QUEUE_BYTES_MAX = 1_000_000
DEEP = 100_000


def deep_array(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with the small limits for the module; no test may make it print a
    traceback."""
    env = {
        "COSMICTRON_CALL_BODY_BYTES_MAX": str(JSON_BODY_BYTES_MAX),
        "COSMICTRON_SQL_BODY_BYTES_MAX": str(JSON_BODY_BYTES_MAX),
        "COSMICTRON_CLIENT_QUEUE_BYTES_MAX": str(QUEUE_BYTES_MAX),
    }
    with shared_server(tmp_path_factory, env, refuse_tracebacks=True) as server:
        yield server


@pytest.fixture
def limited(limited_server: Server) -> Iterator[tuple[Server, str]]:
    """A new ``shop`` database for this test."""
    with fresh_database(limited_server, "shop", MODULE) as token:
        yield limited_server, token


def state(server: Server, token: str) -> Any:
    reply = server.request("POST", "/v1/database/shop/sql", "SELECT * FROM item", token)
    assert reply.status == 200, reply
    listed = server.request("GET", "/v1/database").body
    return reply.body["rows"], listed


def assert_error(reply: Any, status: int, code: str, *words: str) -> None:
    assert reply.status == status, reply
    error = reply.body["error"]
    assert error["code"] == code, reply
    for word in words:
        assert word in error["message"], reply


def assert_serving(server: Server, token: str) -> None:
    assert server.request("GET", "/v1/health").status == 200
    reply = server.request("POST", "/v1/database/shop/call/add", [["ok"]], token)
    assert reply.status == 200, reply


def test_a_100k_deep_call_body_is_400_too_deep(limited: tuple[Server, str]) -> None:
    server, token = limited
    before = state(server, token)
    reply = server.request(
        "POST", "/v1/database/shop/call/add", deep_array(DEEP), token, "application/json"
    )
    assert_error(reply, 400, "too_deep", str(limits.json_depth_max))
    assert state(server, token) == before
    assert_serving(server, token)


def test_depth_at_the_limit_is_decoded_one_past_it_is_refused(
    limited: tuple[Server, str],
) -> None:
    server, token = limited
    at_limit = "[" + deep_array(limits.json_depth_max - 1) + "]"
    reply = server.request(
        "POST", "/v1/database/shop/call/add", at_limit, token, "application/json"
    )
    # Decoded (depth 64): the reducer's argument check names the wrong type, no depth error.
    assert_error(reply, 400, "invalid_request", "expected str")
    past = "[" + deep_array(limits.json_depth_max) + "]"
    reply = server.request("POST", "/v1/database/shop/call/add", past, token, "application/json")
    assert_error(reply, 400, "too_deep")


def test_a_100k_deep_sql_parameter_is_400_too_deep(limited: tuple[Server, str]) -> None:
    server, token = limited
    body = '{"query": "SELECT * FROM item WHERE text = :t", "params": {"t": ' + deep_array(DEEP)
    body += "}}"
    reply = server.request("POST", "/v1/database/shop/sql", body, token, "application/json")
    assert_error(reply, 400, "too_deep")
    assert_serving(server, token)


def test_a_100k_deep_websocket_message_gets_an_error_reply_and_the_session_goes_on(
    limited: tuple[Server, str],
) -> None:
    server, token = limited
    ws = RawWebSocket(server.url, "shop", token)
    try:
        assert ws.status == 101
        assert "IdentityToken" in ws.receive_json()
        ws.send('{"CallReducer": {"request_id": 1, "reducer": "add", "args": ' + deep_array(DEEP))
        error = ws.receive_json()["SubscriptionError"]
        assert "more than 64 deep" in error["error"], error
        ws.send_json({"CallReducer": {"request_id": 2, "reducer": "add", "args": [["ws"]]}})
        result = ws.receive_json()
        while "ReducerResult" not in result:  # its own TransactionUpdate goes first, if any
            result = ws.receive_json()
        assert result["ReducerResult"]["status"] == "committed", result
    finally:
        ws.close()


def test_a_deep_ndjson_row_is_400_naming_its_line(limited: tuple[Server, str]) -> None:
    server, token = limited
    before = state(server, token)
    body = '{"text": "fine"}\n{"tags": ' + deep_array(DEEP) + "}\n"
    reply = server.request(
        "POST", "/v1/database/shop/bulk_insert/item", body, token, "application/x-ndjson"
    )
    assert_error(reply, 400, "too_deep", "line 2")
    assert state(server, token) == before


def test_a_call_body_over_its_limit_is_413_declared_or_chunked(
    limited: tuple[Server, str],
) -> None:
    server, token = limited
    big = json.dumps([["x" * (JSON_BODY_BYTES_MAX + 1)]])
    reply = server.request("POST", "/v1/database/shop/call/add", big, token, "application/json")
    assert_error(reply, 413, "too_large", str(JSON_BODY_BYTES_MAX))
    status, body = chunked_post(server, "/v1/database/shop/call/add", token, big.encode())
    assert status == 413 and body["error"]["code"] == "too_large", body
    assert_serving(server, token)


def test_a_body_that_is_not_utf8_is_400(limited: tuple[Server, str]) -> None:
    server, token = limited
    for path, kind in (
        ("/v1/database/shop/call/add", "application/json"),
        ("/v1/database/shop/sql", "text/plain"),
    ):
        reply = server.request("POST", path, b'["\xff\xfe"]', token, kind)
        assert_error(reply, 400, "invalid_request", "not UTF-8")


def test_a_websocket_client_that_does_not_read_is_cut_off_by_bytes(
    limited: tuple[Server, str],
) -> None:
    server, token = limited
    reply = server.request("POST", "/v1/database/shop/call/fill", [200, 1000], token)
    assert reply.status == 200, reply
    ws = RawWebSocket(server.url, "shop", token, receive_buffer_bytes=4096)
    try:
        assert ws.status == 101
        assert "IdentityToken" in ws.receive_json()  # sent once the session is counted
        # Each result is about 220 kB; 100 of them far outrun the socket buffers, while
        # staying far under the message budget (client_queue_messages_max = 4096).
        query = "SELECT * FROM item"
        for request_id in range(100):
            ws.send_json({"OneOffQuery": {"request_id": request_id, "query_string": query}})
        # Read nothing until the server has dropped the session: a client reading while
        # the server still answers would drain the queue it is meant to fill.
        wait_until_no_clients(server, "shop")
        results = 0
        try:
            while (frame := ws.receive()) is not None and frame.opcode != CLOSE:
                assert frame.opcode == TEXT
                results += "OneOffQueryResult" in frame.json
        except TimeoutError:
            pytest.fail(f"no close frame within 30 s, after {results} of 100 results")
        assert frame is not None, f"closed without a close frame after {results} results"
        assert frame.close_code == 1008, frame
        assert f"more than {QUEUE_BYTES_MAX} bytes queued" in frame.close_reason, frame
        assert results < 100, "the client was never cut off"
    finally:
        ws.close()
    assert_serving(server, token)


def wait_until_no_clients(server: Server, database: str) -> None:
    """Poll ``/metrics`` until ``database`` has no open WebSocket session (60 s at most)."""
    gauge = f'cosmictron_connected_clients{{database="{database}"}} '
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(server.metrics_request(), timeout=30) as response:
            text = response.read().decode()
        line = next(line for line in text.splitlines() if line.startswith(gauge))
        if line == gauge + "0":
            return
        assert time.monotonic() < deadline, f"the session was never dropped: {line}"
        time.sleep(0.02)


def chunked_post(server: Server, path: str, token: str, body: bytes) -> tuple[int, Any]:
    """POST ``body`` with chunked transfer encoding (no Content-Length to refuse early)."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode())
        try:
            for start in range(0, len(body), 16384):
                chunk = body[start : start + 16384]
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the end: read its answer
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, Any]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"no response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, strict_loads(rest[:length]) if length else None


def test_what_the_fuzzer_found_is_a_400(limited: tuple[Server, str]) -> None:
    """SQL nested past the parser's recursion, and a name with a trailing newline (which
    created a look-alike database), each answered 500 or worse before."""
    server, token = limited
    reply = server.request("POST", "/v1/database/shop/sql", "SELECT " + "(" * 5000, token)
    assert_error(reply, 400, "too_deep", "limits.sql_depth_max")
    reply = server.deploy("shop%0A", MODULE, token)
    assert_error(reply, 400, "invalid_request", "not valid")
    assert [d["name"] for d in server.request("GET", "/v1/database").body["databases"]] == ["shop"]
