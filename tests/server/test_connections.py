"""Every connection limit of issue 21 crossed over real sockets (server/connections.py).

A head sent byte by byte, a body sent slowly, an idle keep-alive connection, a WebSocket
client that answers no ping, connections past the caps per address and in all (with the
server's ``RLIMIT_NOFILE`` lowered, so the file-descriptor reserve is what keeps the
databases writing), metrics seen by each kind of caller, and identities minted too fast.
Each server runs with small limits from the environment, so crossing one takes about a
second; no test asserts how long anything took, only that the server cut the client off
long before the test would have given up.
"""

from __future__ import annotations

import http.client
import json
import resource
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cosmictron.errors import ConfigError
from cosmictron.server.connections import ConnectionLimits
from tests.server.conftest import Server, start_server, stop_server
from tests.server.rawws import CLOSE, PING, TEXT, RawWebSocket

MODULE = """
from cosmictron import *

@table(public=True)
class Item:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""

@table(name="secret")
class Secret:
    id: int = field(primary_key=True, auto_inc=True)

@reducer
def add(ctx: ReducerContext, text: str) -> int:
    return ctx.db.item.insert(Item(text=text)).id
"""

PONG = 0xA
GIVE_UP_S = 60.0
"""How long a test keeps trickling bytes before it fails: far above every limit here."""

SMALL = {
    "COSMICTRON_HTTP_HEAD_S_MAX": "1",
    "COSMICTRON_HTTP_BODY_S_MAX": "1",
    "COSMICTRON_HTTP_BODY_RATE_BYTES_PER_S_MIN": "1000",
    "COSMICTRON_HTTP_KEEPALIVE_IDLE_S_MAX": "2",  # above the head limit: it starts first
    "COSMICTRON_WEBSOCKET_PING_INTERVAL_S": "0.5",
    "COSMICTRON_WEBSOCKET_PONG_TIMEOUT_S": "0.5",
}


def started(
    tmp_path: Path, env: dict[str, str], profile: str | None = "development", **options: Any
) -> Server:
    flags = ("--profile", profile) if profile else ()
    return start_server(tmp_path / "server-data", *flags, env=env, **options)


def stopped_cleanly(server: Server) -> None:
    out = stop_server(server)
    assert server.process.returncode == 0, out
    assert "cosmictron stopped" in out, out


@pytest.fixture
def timed(tmp_path: Path) -> Iterator[Server]:
    """A server with second-long time limits and a database ``shop``."""
    server = started(tmp_path, SMALL)
    _, token = server.deployer()
    assert server.deploy("shop", MODULE, token).status == 201
    yield server
    stopped_cleanly(server)


OPENED: list[socket.socket] = []


@pytest.fixture(autouse=True)
def close_sockets() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def connect(server: Server, source: str = "127.0.0.1") -> socket.socket:
    """A TCP connection to ``server`` from ``source`` (any 127/8 address reaches it)."""
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    OPENED.append(sock)
    sock.settimeout(GIVE_UP_S)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response from ``sock``: status, headers (lower-case names), body."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    headers = {name.lower(): value for name, value in response.getheaders()}
    return response.status, headers, body


def request(sock: socket.socket, method: str, path: str, body: bytes = b"") -> None:
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n\r\n"
    sock.sendall(head.encode() + body)


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed ``sock`` (EOF or reset), False if it still sends."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def trickle(sock: socket.socket, byte: bytes, every_s: float = 0.1) -> float:
    """Send ``byte`` every ``every_s`` until the server stops the connection; the
    seconds it took. Fails the test after ``GIVE_UP_S``."""
    began = time.monotonic()
    sock.settimeout(every_s)
    while time.monotonic() - began < GIVE_UP_S:
        try:
            if sock.recv(1 << 16, socket.MSG_PEEK):
                break  # the server answered
        except TimeoutError:
            pass
        except ConnectionResetError:
            break
        try:
            sock.sendall(byte)
        except (BrokenPipeError, ConnectionResetError):
            break
    else:
        pytest.fail(f"the server kept the connection for {GIVE_UP_S} s")
    sock.settimeout(GIVE_UP_S)
    return time.monotonic() - began


def rows(server: Server) -> int:
    reply = server.request("POST", "/v1/database/shop/sql", "SELECT COUNT(*) AS n FROM item")
    assert reply.status == 200, reply
    return int(reply.body["rows"][0]["n"])


# -- time ------------------------------------------------------------------------------------


def test_a_head_sent_byte_by_byte_gets_408_and_is_closed(timed: Server) -> None:
    sock = connect(timed)
    sock.sendall(b"POST /v1/database/shop/call/add HTTP/1.1\r\nHost: test\r\nX-Slow: ")
    trickle(sock, b"a")
    status, headers, body = read_response(sock)
    assert status == 408, body
    error = json.loads(body)["error"]
    assert error["code"] == "request_timeout"
    assert "http_head_s_max" in error["message"]
    assert headers["connection"] == "close"
    assert closed_by_server(sock)
    assert rows(timed) == 0
    assert timed.request("GET", "/v1/health").status == 200


def test_a_body_sent_too_slowly_gets_408_and_nothing_is_done(timed: Server) -> None:
    sock = connect(timed)
    body = json.dumps(["x" * 10_000]).encode()
    head = (
        "POST /v1/database/shop/call/add HTTP/1.1\r\nHost: test\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body[:2])
    trickle(sock, b"x")
    status, _, reply = read_response(sock)
    assert status == 408, reply
    error = json.loads(reply)["error"]
    assert error["code"] == "request_timeout"
    assert "http_body_rate_bytes_per_s_min" in error["message"]
    assert closed_by_server(sock)
    assert rows(timed) == 0
    assert timed.request("GET", "/v1/health").status == 200


def test_a_body_slower_than_the_first_allowance_but_above_the_rate_is_served(
    timed: Server,
) -> None:
    # 8 kB over about 2 s: past http_body_s_max (1 s), but at 4 kB/s, above the 1 kB/s
    # minimum, so each kilobyte received extends the deadline by a second.
    body = json.dumps(["y" * 8_000]).encode()
    sock = connect(timed)
    head = (
        "POST /v1/database/shop/call/add HTTP/1.1\r\nHost: test\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode())
    for start in range(0, len(body), 400):
        sock.sendall(body[start : start + 400])
        time.sleep(0.1)
    status, _, reply = read_response(sock)
    assert status == 200, reply
    assert rows(timed) == 1


def test_idle_keep_alive_connections_are_closed(timed: Server) -> None:
    used = connect(timed)
    request(used, "GET", "/v1/health")
    status, headers, _ = read_response(used)
    assert status == 200 and headers.get("connection", "keep-alive").lower() != "close"
    assert closed_by_server(used)  # blocks until the idle limit closed it
    silent = connect(timed)  # never sends a byte
    assert closed_by_server(silent)
    assert timed.request("GET", "/v1/health").status == 200


def test_a_websocket_client_that_answers_no_ping_is_closed_with_4408(timed: Server) -> None:
    ws = RawWebSocket(timed.url, "shop", timeout_s=GIVE_UP_S)
    assert ws.status == 101
    assert "IdentityToken" in ws.receive_json()
    pinged = False
    while True:  # read, never answer
        frame = ws.receive()
        assert frame is not None, "closed without a close frame"
        if frame.opcode == PING:
            pinged = True
            continue
        assert frame.opcode == CLOSE, frame
        break
    assert pinged
    assert frame.close_code == 4408
    assert "websocket_pong_timeout_s" in frame.close_reason
    ws.close()


def test_a_websocket_client_that_answers_pings_stays_connected(timed: Server) -> None:
    ws = RawWebSocket(timed.url, "shop", timeout_s=GIVE_UP_S)
    assert "IdentityToken" in ws.receive_json()
    pings = 0
    while pings < 4:  # four rounds of ping interval + pong timeout: 4 s with no request
        frame = ws.receive()
        assert frame is not None and frame.opcode == PING, frame
        ws.send(frame.payload, opcode=PONG)
        pings += 1
    ws.send_json({"OneOffQuery": {"request_id": 1, "query_string": "SELECT * FROM item"}})
    while True:
        frame = ws.receive()
        assert frame is not None and frame.opcode in (TEXT, PING), frame
        if frame.opcode == TEXT:
            assert frame.json["OneOffQueryResult"]["request_id"] == 1
            break
        ws.send(frame.payload, opcode=PONG)
    ws.close()


# -- caps ------------------------------------------------------------------------------------


def assert_refused(sock: socket.socket) -> None:
    request(sock, "GET", "/v1/health")
    status, headers, body = read_response(sock)
    assert status == 503, body
    assert headers["retry-after"] == "1"
    error = json.loads(body)["error"]
    assert error["code"] == "too_many_connections"
    assert "limits.connections" in error["message"]
    assert closed_by_server(sock)


def health_on(sock: socket.socket) -> None:
    request(sock, "GET", "/v1/health")
    status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["status"] == "ok", body


def test_connections_past_the_cap_per_address_are_refused_with_503(tmp_path: Path) -> None:
    server = started(tmp_path, {"COSMICTRON_CONNECTIONS_PER_ADDRESS_MAX": "4"})
    held = [connect(server) for _ in range(4)]
    for sock in held:
        health_on(sock)  # each is admitted and kept alive
    assert_refused(connect(server))
    health_on(connect(server, "127.0.0.2"))  # another address has a count of its own
    for sock in held:
        health_on(sock)  # the connections already open are served
    held.pop().close()
    for _ in range(100):  # the server counts the close when it sees it
        sock = connect(server)
        request(sock, "GET", "/v1/health")
        status, _, _ = read_response(sock)
        if status == 200:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a connection closed under the cap did not free its place")
    stopped_cleanly(server)


def answered(sock: socket.socket) -> bool:
    """Whether the server answered anything on ``sock`` before it closed or reset it."""
    try:
        return sock.recv(1 << 16) != b""
    except ConnectionResetError:
        return False


def test_refusals_in_flight_are_bounded_and_an_explicit_cap_holds(tmp_path: Path) -> None:
    env = {
        "COSMICTRON_CONNECTIONS_MAX": "2",
        "COSMICTRON_CONNECTIONS_REFUSED_LINGERING_MAX": "1",
        "COSMICTRON_CONNECTION_REFUSAL_LINGER_S_MAX": "60",
    }
    server = started(tmp_path, env)
    held = [admitted(server) for _ in range(2)]
    lingering = connect(server)  # refused, answered, held open by the server for 60 s
    request(lingering, "GET", "/v1/health")
    status, _, _ = read_response(lingering)
    assert status == 503
    reset = connect(server)  # a second refusal in flight: reset without an answer
    request(reset, "GET", "/v1/health")
    assert not answered(reset)
    lingering.close()  # the client hung up: its refusal is over
    for _ in range(100):
        sock = connect(server)
        request(sock, "GET", "/v1/health")
        if answered(sock):
            break
        time.sleep(0.05)
    else:
        pytest.fail("a refusal that ended did not free its place")
    for sock in held:
        health_on(sock)
    stopped_cleanly(server)


def test_a_refused_client_that_never_hangs_up_is_closed_after_the_linger(
    tmp_path: Path,
) -> None:
    env = {
        "COSMICTRON_CONNECTIONS_PER_ADDRESS_MAX": "1",
        "COSMICTRON_CONNECTION_REFUSAL_LINGER_S_MAX": "0.5",
    }
    server = started(tmp_path, env)
    held = admitted(server)
    refused = connect(server)
    request(refused, "GET", "/v1/health")
    status, headers, _ = read_response(refused)
    assert status == 503 and headers["retry-after"] == "1"
    assert closed_by_server(refused)  # we never close it: the linger did
    health_on(held)
    stopped_cleanly(server)


def admitted(server: Server) -> socket.socket:
    """A connection the server admitted, retrying while an earlier client's close (the
    metrics scrape's) is still counted."""
    for _ in range(100):
        sock = connect(server)
        request(sock, "GET", "/v1/health")
        status, _, _ = read_response(sock)
        if status == 200:
            return sock
        sock.close()
        time.sleep(0.05)
    pytest.fail("the server refused a connection under its cap")


def low_descriptor_limit(limit: int) -> Callable[[], None]:
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return lower


def metric(server: Server, name: str, token: str | None = None) -> float:
    samples = scrape(server, token)
    return samples[name]


def scrape(server: Server, token: str | None = None) -> dict[str, float]:
    req = urllib.request.Request(server.url + "/metrics")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_at_the_total_cap_the_server_serves_and_its_databases_write_files(
    tmp_path: Path,
) -> None:
    """The total cap comes from RLIMIT_NOFILE (256 here) minus a reserve (64): with every
    allowed connection open, a further one is refused, and through a connection already
    open the server answers, a database writes snapshots and a deploy creates files."""
    env = {
        "COSMICTRON_CONNECTION_FD_RESERVE_FILES": "64",
        "COSMICTRON_CONNECTIONS_PER_ADDRESS_MAX": "100000",
    }
    # No --profile flag: a profile given as a flag outranks the database's config.toml.
    options = {"preexec_fn": low_descriptor_limit(256), "profile": None}
    server = started(tmp_path, env, **options)
    _, token = server.operator()
    assert server.deploy("shop", MODULE, token).status == 201
    stopped_cleanly(server)
    database_dir = server.data_dir / "databases" / "shop"
    config = 'profile = "development"\nsnapshot_interval_tx = 5\n'
    (database_dir / "config.toml").write_text(config)
    server = started(tmp_path, env, **options)

    cap = int(metric(server, "cosmictron_connections_max"))
    assert 0 < cap < 256 - 64
    control = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=60)
    control.request("GET", "/v1/health")
    assert control.getresponse().read()
    held = [admitted(server) for _ in range(cap - 1)]
    assert_refused(connect(server))

    def call(method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        control.request(method, path, body=body, headers=headers)
        response = control.getresponse()
        return response.status, json.loads(response.read())

    assert call("GET", "/v1/health")[0] == 200
    snapshots = database_dir / "snapshots"
    before = set(snapshots.glob("*.snap"))
    for n in range(12):
        status, reply = call("POST", "/v1/database/shop/call/add", json.dumps([f"r{n}"]).encode())
        assert status == 200, reply
    for _ in range(200):  # snapshots are written off the commit path
        if set(snapshots.glob("*.snap")) - before:
            break
        time.sleep(0.05)
    else:
        pytest.fail("no snapshot was written at the connection cap")
    status, reply = call("PUT", "/v1/database/other", MODULE.encode())
    assert status == 201, reply
    assert (server.data_dir / "databases" / "other").is_dir()
    assert call("POST", "/v1/database/other/call/add", b'["x"]')[0] == 200
    assert_refused(connect(server))  # still at the cap
    for sock in held:
        sock.close()
    control.close()
    stopped_cleanly(server)


def test_a_descriptor_limit_that_leaves_no_room_stops_the_server(tmp_path: Path) -> None:
    env = {"COSMICTRON_CONNECTION_FD_RESERVE_FILES": "500"}
    with pytest.raises(AssertionError, match="RLIMIT_NOFILE"):
        started(tmp_path, env, preexec_fn=low_descriptor_limit(256))


def test_bad_connection_limits_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="COSMICTRON_HTTP_HEAD_S_MAX"):
        ConnectionLimits.from_environ({"COSMICTRON_HTTP_HEAD_S_MAX": "soon"})
    with pytest.raises(ConfigError, match="must be positive"):
        ConnectionLimits.from_environ({"COSMICTRON_CONNECTIONS_PER_ADDRESS_MAX": "0"})
    limits = ConnectionLimits.from_environ({"COSMICTRON_CONNECTIONS_MAX": "0"})
    assert limits.connections_max == 0  # 0: sized from the descriptor limit


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_show_per_database_series_only_to_whom_may_see_them(tmp_path: Path) -> None:
    server = started(tmp_path, {})
    _, operator = server.operator()
    _, owner = server.deployer()
    assert server.deploy("mine", MODULE, owner).status == 201
    assert server.deploy("theirs", MODULE, operator).status == 201
    scrape_file = server.data_dir / "server" / "metrics.token"
    assert scrape_file.stat().st_mode & 0o777 == 0o600
    scrape_token = scrape_file.read_text().strip()
    _, stranger = server.identity()

    def databases_in(samples: dict[str, float]) -> set[str]:
        return {
            name.split('database="', 1)[1].split('"', 1)[0]
            for name in samples
            if 'database="' in name
        }

    for token in (None, stranger):
        samples = scrape(server, token)
        assert databases_in(samples) == set()
        assert samples["cosmictron_databases"] == 2
        assert samples["cosmictron_connections_open"] >= 1
        assert not any(name.startswith("cosmictron_rows") for name in samples)
    assert databases_in(scrape(server, owner)) == {"mine"}
    assert databases_in(scrape(server, operator)) == {"mine", "theirs"}
    everything = scrape(server, scrape_token)
    assert databases_in(everything) == {"mine", "theirs"}
    assert 'cosmictron_rows{database="theirs"}' in everything
    req = urllib.request.Request(server.url + "/metrics")
    req.add_header("Authorization", "Bearer not-a-token")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=30)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["error"]["code"] == "unauthenticated"
    stopped_cleanly(server)


# -- identities ------------------------------------------------------------------------------


def test_identity_creation_is_rate_limited_per_address(tmp_path: Path) -> None:
    env = {"COSMICTRON_RATE_IDENTITIES_BURST": "3", "COSMICTRON_RATE_IDENTITIES_PER_S": "0.01"}
    server = started(tmp_path, env)
    for _ in range(3):
        assert server.request("POST", "/v1/identity").status == 200
    sock = connect(server)
    request(sock, "POST", "/v1/identity")
    status, headers, body = read_response(sock)
    assert status == 429, body
    assert int(headers["retry-after"]) >= 1
    error = json.loads(body)["error"]
    assert error["code"] == "rate_limited" and "rate_identities_per_s" in error["message"]
    other = connect(server, "127.0.0.2")  # another address, another bucket
    request(other, "POST", "/v1/identity")
    status, _, body = read_response(other)
    assert status == 200 and "token" in json.loads(body)
    stopped_cleanly(server)
