"""The attack suite of issue 21: one attack per class of finding, over real sockets.

Each case starts a real server (``attack_harness.launch``: ``attack_app.py`` deployed as
``atk``, attacked, and as ``bystander``), attacks it with inputs it makes itself, and
holds the rule ``attack_harness.Attack`` measures throughout (read its docstring):

- the server's RSS rises at most 100 MiB (``RSS_GROWTH_BYTES_MAX``) and comes back within
  ``RSS_SETTLED_BYTES_MAX`` (24 MiB) of its baseline within 5 s after the attack: not
  zero, because glibc keeps a few MiB of freed heap (``malloc_trim`` returns it; the
  server does not need to call it) and the last large body stays referenced until the
  next request (16 MiB at the call route's limit); anything a request pins for good (a
  cache, a queue) pins at least what it brought, far more (the constant's docstring has
  the measurements);
- ``/v1/health``, asked every 20 ms from a process of its own, never waits behind more
  than 50 ms of the server's CPU spent on other work (CPU, so a loaded machine does not
  move it; the worst of each case is printed with ``pytest -s``);
- every reply to a bad request is a 4xx with ``{"error": {"code", "message"}}``, never a
  500, and every JSON the server sends parses with a strict parser (no ``Infinity``);
- a reducer call in the other database completes meanwhile.

Every case was first shown to fail on the code without its fix, for the reason its
docstring gives, and passes with it. Small limits are set through the server's
environment only where the attack stays meaningful at that size (the WebSocket queue,
the connection timeouts); memory and body attacks use the defaults, which are what an
attacker meets. The whole file runs in about a minute.
"""

from __future__ import annotations

import json
import re
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.server.attack_harness import (
    Attack,
    AttackFailed,
    HttpReply,
    MiB,
    Target,
    connection_from,
    launch,
    shut,
)
from tests.server.rawws import CLOSE, TEXT, RawWebSocket

ATTACKER = "127.0.0.2"
"""The address attacks on connections come from; the probes use 127.0.0.1, so a cap per
address does not cut the server's health off from the harness (a real attacker's
address is not the monitoring's either)."""

CONNECTION_LIMITS = {
    "COSMICTRON_HTTP_HEAD_S_MAX": "1",
    "COSMICTRON_HTTP_BODY_S_MAX": "1",
    "COSMICTRON_HTTP_KEEPALIVE_IDLE_S_MAX": "1",
    "COSMICTRON_CONNECTIONS_PER_ADDRESS_MAX": "50",
}
"""Small connection limits for the time cases (bound-conn's names in ``limits.py``: an
unknown variable would be ignored, so a rename must be followed here)."""

CLOSED_WITHIN_S = 4.0
"""How long the server may take to drop a connection whose limit (1 s above) ran out."""


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[Callable[..., Target]]:
    """Start a server for the case (``launched(env)``); stopped at teardown."""
    targets: list[Target] = []

    def start(env: dict[str, str] | None = None) -> Target:
        target = launch(tmp_path / f"server-{len(targets)}", env)
        targets.append(target)
        return target

    yield start
    for target in targets:
        shut(target)


# -- memory amplification through SQL -----------------------------------------------------

PARAM_BYTES = 1_000_000  # just under sql_params_bytes_max (1 MiB), so the value budget decides
COPIES = 128


def test_sql_string_operators_cannot_amplify_a_parameter(launched: Callable[..., Target]) -> None:
    """A 1 KB anonymous query joining one parameter of just under 1 MiB (the most a request
    may carry) with itself 128 times asks for a 128 MB value. Before the byte budgets it
    was answered 200 with it (RSS up by several hundred MiB); now the first ``||`` past
    the anonymous value budget refuses it before allocating."""
    target = launched()
    query = "SELECT " + " || ".join([":p"] * COPIES) + " FROM reading WHERE id = 1"
    assert len(query) < 2048
    body = json.dumps({"query": query, "params": {"p": "x" * PARAM_BYTES}})
    with Attack(target, "sql amplification") as attack:
        reply = target.http(
            "POST", "/v1/database/atk/sql", body, {"Content-Type": "application/json"}
        )
        attack.reply(reply, f"{COPIES} copies of a 1 MiB parameter", code="resource_exhausted")


# -- caches that keep what a request brought ------------------------------------------------

CACHE_REQUESTS = 150
UNUSED_NAMES = 240


def test_statement_cache_keeps_nothing_a_request_brought(launched: Callable[..., Target]) -> None:
    """150 valid queries, each carrying about 1 MB of parameter names it never uses (as
    many as a request may carry). Before the fix each name became part of a cache key and
    about 150 MB stayed pinned; now unused parameters are never keyed or kept."""
    target = launched()
    pad = "p" * 4000
    with Attack(target, "statement cache") as attack:
        for n in range(CACHE_REQUESTS):
            params: dict[str, object] = {"id": 1}
            params.update({f"unused-{n}-{k}-{pad}": 0 for k in range(UNUSED_NAMES)})
            reply = target.sql("atk", "SELECT * FROM reading WHERE id = :id", params)
            body = attack.reply(reply, f"query {n} with unused parameters", valid=True)
            if reply.status != 200:
                break
            assert body["rows"] == [{"id": 1, "value": 1.5}], body


# -- a client that never reads ---------------------------------------------------------------

QUEUE_BYTES_MAX = 16 * MiB


def test_a_websocket_client_that_never_reads_is_cut_off(launched: Callable[..., Target]) -> None:
    """An anonymous client asks for 200 results of 1 MiB each and reads nothing: it is
    closed with 1008 once 16 MiB (``client_queue_bytes_max``, set small) are queued."""
    target = launched({"COSMICTRON_CLIENT_QUEUE_BYTES_MAX": str(QUEUE_BYTES_MAX)})
    assert target.call("atk", "fill", [16, 64 * 1024]).status == 200  # 1 MiB per result
    ws = RawWebSocket(target.server.url, "atk", receive_buffer_bytes=4096)
    try:
        assert ws.status == 101
        assert "IdentityToken" in ws.receive_json()
        with Attack(target, "client never reads") as attack:
            for request_id in range(200):
                query = "SELECT * FROM page"
                ws.send_json({"OneOffQuery": {"request_id": request_id, "query_string": query}})
            wait_until_no_clients(target, "atk")
            frames = 0
            while (frame := ws.receive()) is not None and frame.opcode != CLOSE:
                assert frame.opcode == TEXT
                attack.json(frame.payload, "a queued OneOffQueryResult")
                frames += 1
            if frame is None or frame.close_code != 1008:
                attack.problem(f"not closed with 1008 after {frames} results: {frame}")
            elif "bytes queued" not in frame.close_reason:
                attack.problem(f"the close reason does not name the limit: {frame.close_reason}")
            if frames >= 200:
                attack.problem("the client was never cut off")
    finally:
        ws.close()


def wait_until_no_clients(target: Target, database: str, timeout_s: float = 30.0) -> None:
    """Until the operator's ``/metrics`` shows no WebSocket session on ``database``."""
    _, operator = target.server.operator()
    deadline = time.monotonic() + timeout_s
    pattern = f'cosmictron_connected_clients{{database="{database}"}} 0'
    while time.monotonic() < deadline:
        if pattern in target.http("GET", "/metrics", token=operator).body.decode():
            return
        time.sleep(0.05)
    raise AssertionError(f"{database} still had a client after {timeout_s} s")


# -- large bodies ------------------------------------------------------------------------------


def route_limit(target: Target, path: str) -> int:
    """The body limit of ``POST path``, read from the server's own 413 to a declared 1 TiB."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {1 << 40}\r\nConnection: close\r\n\r\n"
    )
    reply = raw_exchange(target, head.encode(), [])
    assert reply is not None and reply.status == 413, reply
    found = re.findall(r"([0-9]+) bytes", reply.body.decode())
    assert len(found) == 2, reply.body  # what the request declared, then the limit
    return int(found[-1])


def raw_exchange(
    target: Target, head: bytes, chunks: list[bytes], source: str = "127.0.0.1"
) -> HttpReply | None:
    """Send ``head`` and ``chunks`` as written, then read the reply (None: none came).

    The server may answer and close before the body is all sent (a 413): sending then
    fails, and the reply is read all the same.
    """
    with connection_from(source, target, timeout_s=60) as sock:
        try:
            sock.sendall(head)
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while chunk := sock.recv(1 << 16):
                data += chunk
        except ConnectionResetError:
            pass
    if not data:
        return None
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    headers = dict(
        line.split(": ", 1)
        for line in head_bytes.decode("latin-1").split("\r\n")[1:]
        if ": " in line
    )
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        body = unchunk(body)
    return HttpReply(int(head_bytes.split(b" ", 2)[1]), headers, body)


def unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def numbers_exactly(size: int) -> bytes:
    """A JSON array of small numbers exactly ``size`` bytes long: the slowest shape to
    parse per byte (one object per three bytes), padded with spaces to the byte."""
    count = (size - 2) // 3
    body = b"[" + b"10," * (count - 1) + b"10]"
    return body + b" " * (size - len(body))


def test_a_body_at_and_over_its_route_limit(launched: Callable[..., Target]) -> None:
    """A call body exactly at its route's limit (an array of millions of numbers: a 400,
    the reducer takes one float) and bodies one byte over it, declared and chunked (413).
    The body at the limit (1 MiB, ``call_body_bytes_max``) is parsed on a worker thread
    (``json_inline_bytes_max``), so no database's health route waits for it."""
    target = launched()
    path = "/v1/database/atk/call/record"
    limit = route_limit(target, path)
    at_limit = numbers_exactly(limit)
    over = numbers_exactly(limit + 1)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Connection: close\r\n"
    )
    with Attack(target, f"body of {limit} bytes") as attack:
        reply = raw_exchange(target, f"{head}Content-Length: {limit}\r\n\r\n".encode(), [at_limit])
        assert reply is not None
        attack.reply(reply, f"a {limit}-byte call body", code="invalid_request")
        reply = raw_exchange(target, f"{head}Content-Length: {limit + 1}\r\n\r\n".encode(), [over])
        assert reply is not None
        attack.reply(reply, "a call body one byte over its limit", code="too_large")
        chunked = f"{head}Transfer-Encoding: chunked\r\n\r\n".encode()
        pieces = [b"%x\r\n%s\r\n" % (len(c), c) for c in split(over, 1 << 20)] + [b"0\r\n\r\n"]
        reply = raw_exchange(target, chunked, pieces)
        assert reply is not None
        attack.reply(reply, "a chunked call body one byte over its limit", code="too_large")


def split(data: bytes, size: int) -> list[bytes]:
    return [data[at : at + size] for at in range(0, len(data), size)]


# -- names -------------------------------------------------------------------------------------

LOOK_ALIKES = [
    "atk\n",
    "atk\r\n",
    "atk ",
    "atk\t",
    "atk\x00",
    "ATK",
    "\uff41tk",  # fullwidth a
    "\u0430tk",  # Cyrillic a
    "atk\u200b",  # zero-width space
    "atk\u0301",  # a combining accent
    "-atk",
    "a" * 64,
    "atk.",
    "..",
]


def test_names_with_a_trailing_newline_or_look_alikes_are_refused_everywhere(
    launched: Callable[..., Target],
) -> None:
    """Deploying, restoring, backing up, deleting and calling a database whose name looks
    like ``atk`` but is not a valid name is a 4xx and creates nothing; so are table and
    reducer names with a trailing newline."""
    target = launched()
    owner = target.owner
    archive = target.http("GET", "/v1/database/atk/backup", token=owner)
    assert archive.status == 200
    module = Path(__file__).with_name("attack_app.py").read_bytes()
    tar = {"Content-Type": "application/x-tar"}
    with Attack(target, "look-alike names") as attack:
        for name in LOOK_ALIKES:
            at = f"/v1/database/{quote(name, safe='')}"
            attempts = [
                ("deploy", target.http("PUT", at, module, token=owner)),
                ("restore", target.http("PUT", f"{at}/restore", archive.body, tar, owner)),
                ("backup", target.http("GET", f"{at}/backup", token=owner)),
                ("schema", target.http("GET", f"{at}/schema")),
                ("call", target.http("POST", f"{at}/call/record", "[1.0]")),
                ("delete", target.http("DELETE", at, token=owner)),
            ]
            for what, reply in attempts:
                attack.reply(reply, f"{what} of database {name!r}")
        for what, path in [
            ("call", "/v1/database/atk/call/record%0A"),
            ("bulk insert", "/v1/database/atk/bulk_insert/reading%0A"),
        ]:
            reply = target.http("POST", path, b'{"value": 1}\n', token=owner)
            attack.reply(reply, f"{what} of a name with a trailing newline")
        reply = target.http("GET", "/v1/database/atk/export/reading%0A", token=owner)
        attack.reply(reply, "export of a table name with a trailing newline")
        listed = attack.reply(target.http("GET", "/v1/database"), "list", valid=True)
        names = sorted(database["name"] for database in listed["databases"])
        if names != ["atk", "bystander"]:
            attack.problem(f"a refused name left a database behind: {names}")


# -- values that break strict clients ---------------------------------------------------------


def test_non_finite_floats_never_reach_a_client(launched: Callable[..., Target]) -> None:
    """``Infinity`` and ``1e400`` (which Python reads as infinity) as float arguments are a
    400; a reader's SQL reply, a subscriber's updates and an export all stay strict JSON.
    A product that overflows in SQL must not send one either (it is a 400
    ``not_finite``): the datastore refuses non-finite floats and the server encodes with
    ``allow_nan=False``."""
    target = launched()
    ws = RawWebSocket(target.server.url, "atk")
    try:
        assert "IdentityToken" in ws.receive_json()
        subscribe = {"query_id": 1, "request_id": 1, "query_strings": ["SELECT * FROM reading"]}
        ws.send_json({"Subscribe": subscribe})
        with Attack(target, "non-finite floats") as attack:
            for text in ["Infinity", "-Infinity", "1e400", "-1e400", "NaN"]:
                reply = target.http(
                    "POST",
                    "/v1/database/atk/call/record",
                    f"[{text}]",
                    {"Content-Type": "application/json"},
                )
                attack.reply(reply, f"record({text})", code="invalid_request")
            largest = target.call("atk", "record", [1.7976931348623157e308])
            attack.reply(largest, "record(the largest finite float)", valid=True)
            attack.reply(target.sql("atk", "SELECT * FROM reading"), "SELECT read back", valid=True)
            # a 2xx carrying no bare Infinity, or a 4xx saying why: either is right
            overflow = target.sql("atk", "SELECT value * 1e308 * 10 AS x FROM reading")
            what = "a product that overflows (no non-finite input)"
            attack.reply(overflow, what, valid=overflow.status < 300)
            ws.send_json({"OneOffQuery": {"request_id": "barrier", "query_string": "SELECT 1"}})
            while True:  # every frame up to the barrier's answer: the updates included
                frame = ws.receive()
                assert frame is not None and frame.opcode == TEXT, frame
                message = attack.json(frame.payload, "a subscription frame")
                if message is None:
                    message = json.loads(frame.payload)
                if message.get("OneOffQueryResult", {}).get("request_id") == "barrier":
                    break
            export = target.http(
                "GET", "/v1/database/atk/export/reading?format=ndjson", token=target.owner
            )
            if export.status != 200:
                attack.problem(f"export: {export.status} {export.body[:200]!r}")
            for line in export.body.splitlines():
                attack.json(line, "an exported NDJSON line")
    finally:
        ws.close()


# -- errors of the wrong class -----------------------------------------------------------------


def test_deep_sql_bad_encoding_and_deep_ndjson_are_4xx(launched: Callable[..., Target]) -> None:
    """SQL nested a few hundred deep (parentheses, NOT, and chains of AND, OR and ||, which
    the parser nests too), bodies that are not UTF-8, and an NDJSON line nested 5,000 deep
    in a bulk insert: each a 4xx naming what was wrong. Today a chain of 400 ANDs (4 KB,
    anonymous) is a 500 (RecursionError); the rest already are 4xx."""
    target = launched()
    owner = target.owner
    deep_sql = {
        "parentheses": "SELECT " + "(" * 300 + "1" + ")" * 300 + " FROM reading",
        "NOT": "SELECT * FROM reading WHERE " + "NOT " * 500 + "id = 1",
        "AND": "SELECT * FROM reading WHERE " + "id = 1 AND " * 400 + "id = 1",
        "OR": "SELECT * FROM reading WHERE " + "id = 1 OR " * 400 + "id = 1",
        "||": "SELECT " + " || ".join(["'a'"] * 1000) + " FROM reading",
        "unary minus": "SELECT * FROM reading WHERE id = " + "- " * 2000 + "1",
    }
    ndjson = {"Content-Type": "application/x-ndjson"}
    as_json = {"Content-Type": "application/json"}
    with Attack(target, "errors of the wrong class") as attack:
        for shape, query in deep_sql.items():
            attack.reply(target.sql("atk", query), f"SQL nested by {shape}")
        not_utf8 = [
            ("call", "POST", "/v1/database/atk/call/record", b'["\xff\xfe"]', as_json),
            ("sql text", "POST", "/v1/database/atk/sql", b"SELECT \xff FROM reading", {}),
            ("sql json", "POST", "/v1/database/atk/sql", b'{"query": "\xc3("}', as_json),
            (
                "bulk",
                "POST",
                "/v1/database/atk/bulk_insert/reading",
                b'{"value": "\xff"}\n',
                ndjson,
            ),
            ("deploy", "PUT", "/v1/database/atk2", b"x = '\xff'\n", {}),
        ]
        for what, method, path, body, headers in not_utf8:
            reply = target.http(method, path, body, headers, owner)
            attack.reply(reply, f"{what} body that is not UTF-8")
        deep = b'{"value": ' + b"[" * 5000 + b"]" * 5000 + b"}\n"
        reply = target.http(
            "POST", "/v1/database/atk/bulk_insert/reading", b'{"value": 2}\n' + deep, ndjson, owner
        )
        attack.reply(reply, "an NDJSON line nested 5000 deep", code="too_deep")
        count = target.sql("atk", "SELECT COUNT(*) AS n FROM reading")
        rows = attack.reply(count, "count", valid=True)["rows"]
        if rows != [{"n": 1}]:
            attack.problem(f"a refused bulk insert changed the table: {rows}")


# -- time ---------------------------------------------------------------------------------------


def closed_by_server(sock: socket.socket, received: bytearray) -> bool:
    """Whether the server closed ``sock`` (perhaps after answering: the answer is added
    to ``received``), without waiting."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        while chunk := sock.recv(1 << 16):
            received += chunk
    except (BlockingIOError, TimeoutError):
        return False
    except ConnectionResetError:
        pass
    return True


REFUSAL_STATUSES = (408, 429, 503)
"""What a connection cut off for time or refused for a cap may be answered: 408 (too
slow), 429 (too many from one address) or 503 (the server's own capacity; not the
request's fault, so the one 5xx allowed, with ``Retry-After``). Each with a JSON error."""


def check_refusal(attack: Attack, data: bytes, what: str) -> None:
    """The answer a dropped connection got, if any: a status of ``REFUSAL_STATUSES`` with
    ``{"error": {"code", "message"}}``."""
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        attack.problem(f"{what}: not an HTTP answer: {data[:200]!r}")
        return
    if status not in REFUSAL_STATUSES:
        attack.problem(f"{what}: answered {status}: {data[:300]!r}")
        return
    error = (attack.json(body, what) or {}).get("error")
    if not (isinstance(error, dict) and error.get("code") and error.get("message")):
        attack.problem(f"{what}: {status} without an error code and message: {body[:200]!r}")


def open_from_attacker(target: Target, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((ATTACKER, 0))
        try:
            sock.connect(target.address)
        except OSError:  # refused at the door is as good as closed
            sock.close()
            continue
        sock.setblocking(False)
        socks.append(sock)
    return socks


def drip_until_closed(
    attack: Attack, socks: list[socket.socket], drip: bytes | None, what: str
) -> None:
    """Send one byte of ``drip`` on each socket every 0.2 s (None: send nothing) until the
    server closed them all, or ``CLOSED_WITHIN_S`` passed (a breach)."""
    started = time.monotonic()
    open_socks = list(socks)
    received = {sock: bytearray() for sock in socks}
    while open_socks and time.monotonic() - started < CLOSED_WITHIN_S:
        for sock in list(open_socks):
            if closed_by_server(sock, received[sock]):
                open_socks.remove(sock)
                if received[sock]:
                    check_refusal(attack, received[sock], what)
            elif drip is not None:
                try:
                    sock.send(drip)
                except OSError:
                    open_socks.remove(sock)
        time.sleep(0.2)
    if open_socks:
        attack.problem(
            f"{len(open_socks)} of {len(socks)} {what} still open after {CLOSED_WITHIN_S} s"
        )


def test_slowloris_headers_are_cut_off(launched: Callable[..., Target]) -> None:
    """Twenty connections send a request's headers one byte every 0.2 s, forever. Today
    none is ever closed."""
    target = launched(CONNECTION_LIMITS)
    socks = open_from_attacker(target, 20)
    try:
        with Attack(target, "slowloris headers") as attack:
            for sock in socks:
                sock.send(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            drip_until_closed(attack, socks, b"a", "connections dripping headers")
    finally:
        for sock in socks:
            sock.close()


def test_a_half_sent_body_is_cut_off(launched: Callable[..., Target]) -> None:
    """Twenty call requests declare 1,000 body bytes and send two. Today they wait forever."""
    target = launched(CONNECTION_LIMITS)
    socks = open_from_attacker(target, 20)
    try:
        with Attack(target, "half-sent bodies") as attack:
            for sock in socks:
                sock.send(
                    b"POST /v1/database/atk/call/record HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[1"
                )
            drip_until_closed(attack, socks, None, "half-sent bodies")
    finally:
        for sock in socks:
            sock.close()


def test_idle_connections_do_not_pile_up(launched: Callable[..., Target]) -> None:
    """300 connections from one address send nothing: past the cap per address they are
    refused, the rest are closed when idle; meanwhile other clients connect and the
    database still opens files (a backup). Today all 300 stay open."""
    target = launched(CONNECTION_LIMITS)
    socks: list[socket.socket] = []
    try:
        with Attack(target, "idle connections") as attack:
            socks = open_from_attacker(target, 300)
            backup = target.http("GET", "/v1/database/atk/backup", token=target.owner)
            if backup.status != 200:
                attack.problem(f"a backup while the connections idle: {backup.status}")
            drip_until_closed(attack, socks, None, "idle connections")
    finally:
        for sock in socks:
            sock.close()


# -- metrics -------------------------------------------------------------------------------------


def samples(text: str) -> dict[str, str]:
    """Prometheus samples by series (name and labels) -> value."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = value
    return out


def test_anonymous_metrics_describe_no_private_table_or_hidden_row(
    launched: Callable[..., Target],
) -> None:
    """A reducer adds 500 rows to a private table and 500 rows no non-owner may see; an
    anonymous scrape of /metrics before and after must not tell (no row or memory gauge
    moves, the private table is not named), while the operator's still does. Today the
    anonymous ``cosmictron_rows`` and ``cosmictron_memory_bytes`` count them."""
    target = launched()
    _, operator = target.server.operator()
    with Attack(target, "metrics") as attack:
        before = target.http("GET", "/metrics")
        operator_before = samples(target.http("GET", "/metrics", token=operator).body.decode())
        attack.reply(target.call("atk", "hide", [500], target.owner), "hide(500)", valid=True)
        after = target.http("GET", "/metrics")
        operator_after = samples(target.http("GET", "/metrics", token=operator).body.decode())
        rows = 'cosmictron_rows{database="atk"}'
        if int(operator_after[rows]) - int(operator_before[rows]) < 1000:
            attack.problem("the operator's scrape does not count the rows (the attack is moot)")
        if before.status != 200 or after.status != 200:
            attack.reply(after, "an anonymous scrape refused")
            return
        text = after.body.decode()
        if "secret_ledger" in text:
            attack.problem("an anonymous scrape names the private table")
        old, new = samples(before.body.decode()), samples(text)
        for series, value in new.items():
            name = series.split("{", 1)[0]
            telling = ("rows" in name or "bytes" in name) and not name.endswith("_total")
            if telling and 'database="atk"' in series and old.get(series) != value:
                attack.problem(f"anonymous {series} moved {old.get(series)} -> {value}")


# -- the harness catches what it is for -----------------------------------------------------------


def test_the_harness_catches_a_500(launched: Callable[..., Target]) -> None:
    target = launched()
    with pytest.raises(AttackFailed, match="500"), Attack(target, "a 500") as attack:
        reply = target.call("atk", "deep_return", [100_000])
        attack.reply(reply, "a reducer whose return value cannot be encoded", valid=True)


def test_the_harness_catches_memory_that_is_not_returned(launched: Callable[..., Target]) -> None:
    target = launched()
    with pytest.raises(AttackFailed) as failed, Attack(target, "hoarding") as attack:
        attack.reply(target.call("atk", "hoard", [150]), "hoard(150)", valid=True)
    assert "RSS grew by" in str(failed.value) and "still" in str(failed.value), failed.value


def test_the_harness_catches_a_held_up_health_answer(launched: Callable[..., Target]) -> None:
    """``hog`` holds the interpreter lock in one call into C for a few hundred ms of CPU:
    the loop's thread sleeps meanwhile, so only counting the server's CPU catches it."""
    target = launched()
    with pytest.raises(AttackFailed, match="/v1/health answered"), Attack(target, "hog") as attack:
        attack.reply(target.call("atk", "hog", [2_000_000]), "hog", valid=True)


def test_the_harness_catches_json_a_strict_parser_refuses(launched: Callable[..., Target]) -> None:
    target = launched()
    with pytest.raises(AttackFailed, match="not strict JSON"), Attack(target, "strict") as attack:
        attack.json(b'{"value": Infinity}', "a bare Infinity")
