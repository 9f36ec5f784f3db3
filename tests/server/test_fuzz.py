"""Every route fuzzed over real sockets: a 4xx with a code and a message, never a 500.

For each route a valid request is mutated (its body, path, query string and headers)
and sent on a fresh socket, so framing lies (a ``Content-Length`` that says more or less
than is sent) reach the server as sent. The rule, per request:

- the reply is a 2xx (the mutation happened to be valid) or a 4xx whose JSON body is
  ``{"error": {"code", "message"}}`` with both non-empty; never a 5xx;
- a refused request changed nothing: the database list and every database's
  ``tx_offset`` (every commit moves it) are what they were before it; after a 2xx the
  new state is taken as the reference;
- the server serves throughout: at the end the health route and a real call succeed,
  and the server's log holds no traceback.

The mutations include issue 21's shapes: names with a trailing newline, Unicode
look-alikes or one character too many (``NAMES``), non-finite and odd floats
(``Infinity``, ``NaN``, ``1e400``, ``-0.0``: ``mutate_floats``) and other encodings
(UTF-16 with its BOM, invalid UTF-8: ``mutate_encoding``); every reply is read with a
strict JSON parser.

WebSocket frames are fuzzed the same way: after each mutated frame a ``OneOffQuery``
must still be answered, or the server must have closed with a code other than 1011.

``test_fuzz_routes`` and ``test_fuzz_websocket_frames`` run a fixed seed in CI;
their ``_soak`` versions (``scripts/soak``) run thousands per route from a seed they
print; replay one with ``COSMICTRON_FUZZ_SEED``.
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest

from tests.server.conftest import (
    EXAMPLE,
    Server,
    start_server,
    stop_read_server,
    strict_loads,
)
from tests.server.rawws import BINARY, CLOSE, PING, TEXT, RawWebSocket

FUZZ_REQUESTS = 200
SOAK_REQUESTS = 3000
WS_FRAMES = 300


@dataclass
class Request:
    method: str
    path: str
    query: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    length_lie: int = 0  # Content-Length minus the bytes actually sent


@dataclass
class Fuzzed:
    server: Server
    owner: str
    other: str
    operator: str
    other_identity: str
    owner_identity: str
    archive: bytes
    log: list[str]


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[Fuzzed]:
    env = {
        "COSMICTRON_CALL_BODY_BYTES_MAX": str(256 * 1024),
        "COSMICTRON_SQL_BODY_BYTES_MAX": str(256 * 1024),
        "COSMICTRON_RESTORE_UPLOAD_BYTES_MAX": str(4 * 1024 * 1024),
        "COSMICTRON_BULK_INSERT_BODY_BYTES_MAX": str(1024 * 1024),
    }
    server = start_server(tmp_path / "server-data", "--profile", "development", env=env)
    log: list[str] = []
    assert server.process.stdout is not None
    reader = threading.Thread(target=lambda: log.extend(server.process.stdout), daemon=True)
    reader.start()  # drain the log so the server never blocks on a full pipe
    try:
        owner_identity, owner = server.deployer()
        other_identity, other = server.identity()
        _, operator = server.operator()
        assert server.deploy("qs", EXAMPLE.read_text(), owner).status == 201
        request = urllib.request.Request(f"{server.url}/v1/database/qs/backup")
        request.add_header("Authorization", f"Bearer {owner}")
        with urllib.request.urlopen(request, timeout=30) as response:
            archive = response.read()
        yield Fuzzed(server, owner, other, operator, other_identity, owner_identity, archive, log)
    finally:
        stop_read_server(server, reader)
        problems = [line for line in log if "Traceback" in line or "internal error" in line]
        assert not problems, "".join(log)


def base_requests(f: Fuzzed) -> dict[str, Request]:
    """One request per route: valid, or (deleting a database, revoking a grant) made with
    a token that may not, so no mutation of it can succeed."""
    owner = {"Authorization": f"Bearer {f.owner}"}
    other = {"Authorization": f"Bearer {f.other}"}
    as_json = {**owner, "Content-Type": "application/json"}
    return {
        "health": Request("GET", "/v1/health"),
        "new identity": Request("POST", "/v1/identity"),
        "who am i": Request("GET", "/v1/identity", headers=owner),
        "list": Request("GET", "/v1/database", headers=owner),
        "deploy": Request("PUT", "/v1/database/qs", body=EXAMPLE.read_bytes(), headers=owner),
        "delete": Request("DELETE", "/v1/database/qs", headers=other),
        "schema": Request("GET", "/v1/database/qs/schema"),
        "call": Request(
            "POST", "/v1/database/qs/call/add_task", body=b'["fuzz", 1]', headers=as_json
        ),
        "sql text": Request(
            "POST",
            "/v1/database/qs/sql",
            body=b"SELECT * FROM task WHERE priority > 0",
            headers={**owner, "Content-Type": "text/plain"},
        ),
        "sql json": Request(
            "POST",
            "/v1/database/qs/sql",
            body=b'{"query": "SELECT * FROM task WHERE id = :id", "params": {"id": 1}}',
            headers=as_json,
        ),
        "logs": Request("GET", "/v1/database/qs/logs", "num_lines=5", headers=owner),
        "bulk insert": Request(
            "POST",
            "/v1/database/qs/bulk_insert/task",
            body=b'{"title": "bulk a"}\n{"title": "bulk b", "priority": 2}\n',
            headers={**owner, "Content-Type": "application/x-ndjson"},
        ),
        "export": Request("GET", "/v1/database/qs/export/task", "format=csv", headers=owner),
        "backup": Request("GET", "/v1/database/qs/backup", headers=owner),
        "restore": Request(
            "PUT",
            "/v1/database/copy/restore",
            body=f.archive,
            headers={**owner, "Content-Type": "application/x-tar"},
        ),
        "metrics": Request("GET", "/metrics"),
        "list grants": Request(
            "GET", "/v1/grants/deploy", headers={"Authorization": f"Bearer {f.operator}"}
        ),
        "grant": Request(
            "PUT",
            f"/v1/grants/deploy/{f.other_identity}",
            headers={"Authorization": f"Bearer {f.operator}"},
        ),
        "revoke (not the operator)": Request(
            "DELETE", f"/v1/grants/deploy/{f.owner_identity}", headers=other
        ),
    }


# -- mutations ------------------------------------------------------------------------------


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return rng.choice([0, -1, 2**63, -(2**64), 10**30])
    if pick == 1:
        return rng.choice([1e308, -0.0, 3.5])
    if pick == 2:
        return rng.choice([None, True, False])
    if pick == 3:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(12)))
    if pick == 4:
        return "a" * rng.choice([0, 1, 300, 70_000])
    if pick == 5:
        return rng.choice(["ff" * 32, "2026-03-02T12:00:00Z", "x\u0000y", "\ud7ff"])
    if pick == 6:
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if pick == 7:
        return {rng.choice(["id", "title", "query", "params", "x"]): _json_value(rng, depth + 1)}
    return {"query": _json_value(rng, depth + 1), "params": _json_value(rng, depth + 1)}


# Issue 21's shapes (bound-edge): non-finite and odd floats, and bodies in other encodings.
FLOATS = [b"Infinity", b"-Infinity", b"NaN", b"1e400", b"-1e400", b"-0.0", b"1e-400", b"5e-324"]
NAMES = [
    "qs%0A",  # a trailing newline
    "qs%0D",
    "qs%20",
    quote("q\u0455"),  # Cyrillic dze, a look-alike of s
    quote("\uff51s"),  # fullwidth q
    "q" * 64,  # one past the database name's length
    quote("add_task\n"),
    quote("\u0430dd_task"),  # Cyrillic a
    "a" * 256,  # one past identifier_bytes_max
    "ab" * 32 + "%0A",  # an identity with a newline
]


def mutate_floats(rng: random.Random, body: bytes) -> bytes:
    """Put a non-finite (or otherwise odd) float where the body has a number, or as a
    whole argument list, SQL parameter or NDJSON cell."""
    literal = rng.choice(FLOATS)
    digits = [i for i, byte in enumerate(body) if chr(byte).isdigit()]
    if digits and rng.random() < 0.5:
        at = rng.choice(digits)
        return body[:at] + literal + body[at + 1 :]
    return rng.choice(
        [
            b"[" + literal + b"]",
            b'["fuzz", ' + literal + b"]",
            b'{"query": "SELECT * FROM task WHERE id = :id", "params": {"id": ' + literal + b"}}",
            b'{"title": "f", "priority": ' + literal + b"}\n",
        ]
    )


def mutate_encoding(rng: random.Random, body: bytes) -> bytes:
    """The body in another encoding, with a byte-order mark, or with invalid UTF-8."""
    text = body.decode("utf-8", "replace")
    return rng.choice(
        [
            text.encode("utf-16"),  # with its BOM
            b"\xff\xfe" + text.encode("utf-16-le"),
            b"\xef\xbb\xbf" + body,  # a UTF-8 BOM
            body + b"\xc3\x28",  # an invalid continuation byte
            body[: len(body) // 2] + b"\xed\xa0\x80" + body[len(body) // 2 :],  # a surrogate
            text.encode("latin-1", "replace") + b"\xe9",
        ]
    )


def mutate_body(rng: random.Random, body: bytes) -> bytes:
    pick = rng.randrange(12)
    if pick == 10:
        return mutate_floats(rng, body)
    if pick == 11:
        return mutate_encoding(rng, body)
    if pick == 0:
        return os.urandom(rng.randrange(1, 4096))
    if pick == 1:
        return body[: rng.randrange(len(body) + 1)]
    if pick == 2:
        depth = rng.choice([65, 1000, 100_000])
        return ((rng.choice("[{") == "[" and "[" * depth + "]" * depth) or '{"a":' * depth).encode()
    if pick == 3:
        return b"[" + b"9" * rng.choice([20, 400, 5000]) + b"]"
    if pick == 4:
        return json.dumps(_json_value(rng)).encode()
    if pick == 5:
        text = "".join(chr(rng.randrange(0x80, 0x10FFFF)) for _ in range(rng.randrange(64)))
        return text.encode("utf-8", "surrogatepass")
    if pick == 6:
        return b""
    if pick == 7 and body:
        data = bytearray(body)
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if pick == 8:
        return body + os.urandom(rng.randrange(1, 64))
    return body * rng.randrange(2, 4)


def mutate_path(rng: random.Random, path: str) -> str:
    parts = path.split("/")
    index = rng.randrange(1, len(parts))
    parts[index] = rng.choice(
        [
            "",
            "..",
            "%2e%2e",
            "QS",
            "qs%0A",
            "x" * 300,
            quote("é\u0000☃"),
            quote(chr(rng.randrange(0x20, 0xD7FF))),
            "call",
            "%ff%fe",
            "-a",
            *rng.sample(NAMES, 2),
        ]
    )
    return "/".join(parts)


def mutate_query(rng: random.Random, query: str) -> str:
    key = rng.choice(
        ["clear", "to_offset", "to_time", "num_lines", "format", "token", "x", "params", ""]
    )
    value = rng.choice(["", "true", "-1", "1e9", "abc", "99999999999999999999", "%ff", "2026-13"])
    extra = f"{key}={value}"
    return f"{query}&{extra}" if query and rng.random() < 0.5 else extra


def mutate_headers(rng: random.Random, request: Request) -> Request:
    headers = dict(request.headers)
    pick = rng.randrange(6)
    if pick == 0:
        headers["Content-Type"] = rng.choice(
            [
                "application/json",
                "text/plain",
                "text/csv",
                "application/x-ndjson",
                "application/x-tar",
                "multipart/form-data; boundary=x",
                "application/json; charset=latin-1",
                "",
                "??",
            ]
        )
    elif pick == 1:
        return replace(request, headers=headers, length_lie=rng.choice([1, 100, 10**6]))
    elif pick == 2:
        headers["Authorization"] = rng.choice(
            ["Bearer", "Bearer ", "Basic abc", "Bearer x.y.z", "bearer  a", "Bearer " + "A" * 5000]
        )
    elif pick == 3 and len(headers.get("Authorization", "")) > 7:  # flip one char of a token
        token = headers["Authorization"][7:]
        at = rng.randrange(len(token))
        flipped = "A" if token[at] != "A" else "B"
        headers["Authorization"] = "Bearer " + token[:at] + flipped + token[at + 1 :]
    elif pick == 4:
        headers.pop("Authorization", None)
    else:
        headers["Idempotency-Key"] = rng.choice(["", "k" * 2000, "é"])
    return replace(request, headers=headers)


def mutate(rng: random.Random, request: Request) -> Request:
    for _ in range(rng.randrange(1, 3)):
        kind = rng.randrange(4)
        if kind == 0:
            request = replace(request, body=mutate_body(rng, request.body))
        elif kind == 1:
            request = replace(request, path=mutate_path(rng, request.path))
        elif kind == 2:
            request = replace(request, query=mutate_query(rng, request.query))
        else:
            request = mutate_headers(rng, request)
    return request


# -- sending and judging -------------------------------------------------------------------


def send(server: Server, request: Request) -> tuple[int, bytes] | None:
    """Send ``request`` as written (length lies included); None if no reply can come."""
    parts = urlsplit(server.url)
    target = request.path + (f"?{request.query}" if request.query else "")
    lines = [f"{request.method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    length = len(request.body) + request.length_lie
    if request.body or request.length_lie:
        lines.append(f"Content-Length: {max(length, 0)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        try:
            sock.sendall(head + request.body)
            if request.length_lie > 0:
                sock.shutdown(socket.SHUT_WR)  # the body ends before its declared length
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while chunk := sock.recv(1 << 16):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    if not data:
        assert request.length_lie > 0, f"no reply to {request}"
        return None
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head_bytes.lower():
        body = _unchunk(body)
    return int(head_bytes.split(b" ", 2)[1]), body


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def fingerprint(server: Server, operator: str) -> Any:
    """The database list, each database's tx_offset and tables, and the deploy grants."""
    grants = server.request("GET", "/v1/grants/deploy", token=operator).body["identities"]
    listed = server.request("GET", "/v1/database").body["databases"]
    offsets = {}
    for database in listed:
        schema = server.request("GET", f"/v1/database/{database['name']}/schema").body
        offsets[database["name"]] = (schema["tx_offset"], json.dumps(schema["tables"]))
    return sorted((d["name"], d["owner"]) for d in listed), offsets, sorted(grants)


def check(f: Fuzzed, name: str, request: Request, reply: tuple[int, bytes] | None) -> bool:
    """Apply the rule to one reply; True when it was a 2xx (the state may have moved)."""
    if reply is None:
        return False
    status, body = reply
    assert status < 500, f"{name}: {status} for {request}: {body[:300]!r}"
    if status < 300:
        return True
    assert 400 <= status < 500, f"{name}: {status} for {request}"
    try:
        error = strict_loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        pytest.fail(f"{name}: {status} without a JSON error for {request}: {body[:300]!r}")
    assert error["code"] and error["message"], f"{name}: {error} for {request}"
    return False


def fuzz(f: Fuzzed, seed: int, per_route: int) -> dict[str, dict[int, int]]:
    rng = random.Random(seed)
    statuses: dict[str, dict[int, int]] = {}
    reference = fingerprint(f.server, f.operator)
    for name, base in base_requests(f).items():
        counts = statuses.setdefault(name, {})
        for _ in range(per_route):
            request = mutate(rng, base)
            reply = send(f.server, request)
            if reply is not None:
                counts[reply[0]] = counts.get(reply[0], 0) + 1
            moved = check(f, name, request, reply)
            now = fingerprint(f.server, f.operator)
            if not moved:
                assert now == reference, f"{name}: refused {request} but the state changed"
            reference = now
    return statuses


def assert_serving(f: Fuzzed) -> None:
    assert f.server.request("GET", "/v1/health").status == 200
    reply = f.server.request("POST", "/v1/database/qs/call/add_task", ["after fuzz"], f.owner)
    assert reply.status == 200, reply


def test_fuzz_routes(fuzzed: Fuzzed) -> None:
    statuses = fuzz(fuzzed, seed=10, per_route=FUZZ_REQUESTS)
    assert_serving(fuzzed)
    refused = sum(n for counts in statuses.values() for s, n in counts.items() if s >= 400)
    assert refused > FUZZ_REQUESTS * len(statuses) // 2, statuses  # the mutations bite


@pytest.mark.soak
def test_fuzz_routes_soak(fuzzed: Fuzzed) -> None:
    seed = int(os.environ.get("COSMICTRON_FUZZ_SEED") or random.randrange(1 << 32))
    print(f"fuzz seed {seed} (replay with COSMICTRON_FUZZ_SEED={seed})")
    fuzz(fuzzed, seed=seed, per_route=SOAK_REQUESTS)
    assert_serving(fuzzed)


# -- WebSocket frames ------------------------------------------------------------------------


VALID_FRAMES: list[Callable[[int], Any]] = [
    lambda n: {"CallReducer": {"request_id": n, "reducer": "add_task", "args": [f"ws {n}", 1]}},
    lambda n: {"OneOffQuery": {"request_id": n, "query_string": "SELECT * FROM task"}},
    lambda n: {
        "Subscribe": {"request_id": n, "query_id": n, "query_strings": ["SELECT * FROM task"]}
    },
    lambda n: {"Unsubscribe": {"request_id": n, "query_id": n - 1}},
]


def fuzz_websocket(f: Fuzzed, seed: int, frames: int) -> int:
    rng = random.Random(seed)
    ws = RawWebSocket(f.server.url, "qs", f.owner)
    closes = 0
    try:
        for n in range(frames):
            if ws.status != 101 or ws.sock.fileno() < 0:
                ws = RawWebSocket(f.server.url, "qs", f.owner)
            valid = json.dumps(rng.choice(VALID_FRAMES)(n)).encode()
            opcode = TEXT
            pick = rng.randrange(7)
            if pick == 0:
                payload = mutate_body(rng, valid)
            elif pick == 1:
                payload = os.urandom(rng.randrange(1, 200))  # often not UTF-8
            elif pick == 2:
                payload, opcode = valid, rng.choice([BINARY, 0x3, 0xB, PING])
            elif pick == 3:
                payload = json.dumps({"CallReducer": _json_value(rng)}).encode()
            elif pick == 4:
                payload = b'{"OneOffQuery": {"request_id": 1, "query_string": ' + b"[" * 100_000
            elif pick == 5:  # issue 21: names, non-finite floats and encodings in a frame
                name = json.dumps(unquote(rng.choice(NAMES))).encode()
                payload = rng.choice(
                    [
                        b'{"CallReducer": {"request_id": 1, "reducer": ' + name + b', "args": []}}',
                        mutate_floats(rng, valid),
                        mutate_encoding(rng, valid),
                    ]
                )
            else:
                payload = valid
            ws.send(payload, opcode)
            barrier = {"OneOffQuery": {"request_id": "barrier", "query_string": "SELECT 1"}}
            try:
                ws.send_json(barrier)
            except (BrokenPipeError, ConnectionResetError):
                pass
            while True:
                frame = ws.receive()
                if frame is None or frame.opcode == CLOSE:
                    code = frame.close_code if frame is not None else None
                    assert code != 1011, f"internal error closing after {payload[:200]!r}"
                    closes += 1
                    ws.close()
                    ws = RawWebSocket(f.server.url, "qs", f.owner)
                    break
                if frame.opcode != TEXT:
                    continue
                message = frame.json
                assert "internal error" not in json.dumps(message), (payload[:200], message)
                result = message.get("OneOffQueryResult")
                if result is not None and result.get("request_id") == "barrier":
                    break
    finally:
        ws.close()
    return closes


def test_fuzz_websocket_frames(fuzzed: Fuzzed) -> None:
    before = fingerprint(fuzzed.server, fuzzed.operator)
    closes = fuzz_websocket(fuzzed, seed=10, frames=WS_FRAMES)
    assert closes < WS_FRAMES
    assert fingerprint(fuzzed.server, fuzzed.operator)[0] == before[0]  # no database made or lost
    assert_serving(fuzzed)


@pytest.mark.soak
def test_fuzz_websocket_frames_soak(fuzzed: Fuzzed) -> None:
    seed = int(os.environ.get("COSMICTRON_FUZZ_SEED") or random.randrange(1 << 32))
    print(f"fuzz seed {seed} (replay with COSMICTRON_FUZZ_SEED={seed})")
    before = fingerprint(fuzzed.server, fuzzed.operator)
    fuzz_websocket(fuzzed, seed=seed, frames=SOAK_REQUESTS)
    assert fingerprint(fuzzed.server, fuzzed.operator)[0] == before[0]
    assert_serving(fuzzed)


# -- issue 21 shapes: size, depth, encoding, names, floats (bound-attack) ----------------------
#
# Each request is a valid one with one shape of issue 21 applied, judged by the rule above
# plus one more: every JSON reply parses with a strict parser (no NaN, no Infinity). The
# server's log is checked inside the test (``shaped``), not in a fixture's teardown.

SHAPE_REQUESTS = 25
SHAPED_JSON_BODY_BYTES_MAX = 256 * 1024
LOOK_ALIKE_SEGMENTS = [
    "qs%0A",
    "qs%0D%0A",
    "qs%20",
    "qs%00",
    quote("\uff51s"),  # fullwidth q
    quote("q\u0455"),  # Cyrillic dze, looks like s
    quote("qs\u200b"),  # zero-width space
    quote("qs\u0301"),  # combining accent
    "task%0A",
    "add_task%0A",
]
NON_FINITE = [b"Infinity", b"-Infinity", b"NaN", b"1e400", b"-1e400", b"1E999"]


@pytest.fixture
def shaped(tmp_path: Path) -> Iterator[Fuzzed]:
    """The ``fuzzed`` server, but its log is left for the test to check, so a traceback
    fails the test itself rather than a fixture's teardown."""
    env = {
        "COSMICTRON_CALL_BODY_BYTES_MAX": str(SHAPED_JSON_BODY_BYTES_MAX),
        "COSMICTRON_SQL_BODY_BYTES_MAX": str(SHAPED_JSON_BODY_BYTES_MAX),
    }
    server = start_server(tmp_path / "server-data", "--profile", "development", env=env)
    log: list[str] = []
    assert server.process.stdout is not None
    reader = threading.Thread(target=lambda: log.extend(server.process.stdout), daemon=True)
    reader.start()
    try:
        owner_identity, owner = server.deployer()
        other_identity, other = server.identity()
        _, operator = server.operator()
        assert server.deploy("qs", EXAMPLE.read_text(), owner).status == 201
        yield Fuzzed(server, owner, other, operator, other_identity, owner_identity, b"", log)
    finally:
        stop_read_server(server, reader)


def strict_json(data: bytes) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"bare {constant}: strict parsers reject the message")

    return json.loads(data, parse_constant=refuse)


def mutate_shape(rng: random.Random, request: Request) -> Request:
    """``request`` with one issue-21 shape: size, depth, encoding, a name or a float."""
    shape = rng.randrange(5)
    if shape == 0:  # size: exactly at the JSON body limit, or one byte over
        size = SHAPED_JSON_BODY_BYTES_MAX + rng.choice([0, 1])
        body = b"[" + b"1," * ((size - 2) // 2 - 1) + b"1]"
        return replace(request, body=body + b" " * (size - len(body)))
    if shape == 1:  # depth, in SQL (chains nest in the parser too) and JSON
        n = rng.choice([64, 400, 2000])
        body = rng.choice(
            [
                b"SELECT * FROM task WHERE " + b"priority = 1 AND " * n + b"priority = 1",
                b"SELECT * FROM task WHERE " + b"NOT " * n + b"done",
                b"SELECT " + b" || ".join([b"title"] * n) + b" FROM task",
                b'{"query": "SELECT 1", "params": {"p": ' + b"[" * n + b"]" * n + b"}}",
            ]
        )
        return replace(request, body=body)
    if shape == 2:  # encoding: bytes that are not UTF-8 where text is expected
        bad = rng.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"])
        at = rng.randrange(len(request.body) + 1)
        return replace(request, body=request.body[:at] + bad + request.body[at:])
    if shape == 3:  # names: a look-alike in one segment of the path
        parts = request.path.split("/")
        parts[rng.randrange(1, len(parts))] = rng.choice(LOOK_ALIKE_SEGMENTS)
        return replace(request, path="/".join(parts))
    number = rng.choice(NON_FINITE)  # floats: a non-finite number where a number goes
    body = rng.choice(
        [
            b'["shape", ' + number + b"]",
            b'{"query": "SELECT * FROM task WHERE priority > :p", "params": {"p": '
            + number
            + b"}}",
            b'{"title": "shape", "priority": ' + number + b"}\n",
            b'{"query": "SELECT priority * :p AS x FROM task", "params": {"p": ' + number + b"}}",
            b"SELECT priority * 1e308 * 10 AS x FROM task",  # overflow, no non-finite input
        ]
    )
    return replace(request, body=body)


def fuzz_shapes(f: Fuzzed, seed: int, per_route: int) -> int:
    """Send ``per_route`` shaped requests per route; the number refused."""
    rng = random.Random(seed)
    refused = 0
    reference = fingerprint(f.server, f.operator)
    for name, base in base_requests(f).items():
        if name == "restore":
            continue  # its archive is binary; restores are fuzzed above
        for _ in range(per_route):
            request = mutate_shape(rng, base)
            reply = send(f.server, request)
            moved = check(f, name, request, reply)
            if reply is not None and reply[1][:1] in (b"{", b"["):
                try:
                    strict_json(reply[1])
                except ValueError as error:
                    pytest.fail(f"{name}: {error}: {request} -> {reply[1][:300]!r}")
            refused += not moved
            now = fingerprint(f.server, f.operator)
            if not moved:
                assert now == reference, f"{name}: refused {request} but the state changed"
            reference = now
        # what a reader gets back must stay strict too (a stored Infinity shows here)
        for path in ("/v1/database/qs/sql",):
            read = send(f.server, Request("POST", path, body=b"SELECT * FROM task"))
            assert read is not None and read[0] == 200, read
            strict_json(read[1])
    problems = [line for line in f.log if "Traceback" in line or "internal error" in line]
    assert not problems, "".join(f.log)
    return refused


def test_fuzz_issue21_shapes(shaped: Fuzzed) -> None:
    refused = fuzz_shapes(shaped, seed=21, per_route=SHAPE_REQUESTS)
    assert refused > SHAPE_REQUESTS * 8, refused  # the shapes bite
    assert_serving(shaped)


@pytest.mark.soak
def test_fuzz_issue21_shapes_soak(shaped: Fuzzed) -> None:
    seed = int(os.environ.get("COSMICTRON_FUZZ_SEED") or random.randrange(1 << 32))
    print(f"fuzz seed {seed} (replay with COSMICTRON_FUZZ_SEED={seed})")
    fuzz_shapes(shaped, seed=seed, per_route=SOAK_REQUESTS // 10)
    assert_serving(shaped)
