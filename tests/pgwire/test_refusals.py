"""What the PostgreSQL port refuses, and that it keeps serving after each refusal: a
wrong token, an unknown database, a truncated or oversized startup packet, an HTTP
request, random bytes, SSL and GSSAPI requests, a slow authentication, oversized and
malformed messages, and the per-address connection cap."""

from __future__ import annotations

import random
import socket
import struct
import time

import psycopg
import pytest

from tests.pgwire.conftest import PG, start_pg_server
from tests.server.conftest import stop_server


def still_serving(pg: PG) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM item WHERE id = 1").fetchone() == (1,)


def raw(pg: PG, data: bytes, read: bool = True) -> bytes:
    with socket.create_connection((pg.host, pg.port), timeout=15) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # the peer sees the end: nothing more is coming
        if not read:
            return b""
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def startup(params: dict[str, str]) -> bytes:
    body = (
        struct.pack("!i", 196608)
        + b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items())
        + b"\0"
    )
    return struct.pack("!i", len(body) + 4) + body


def sqlstate_of(reply: bytes) -> str:
    assert reply[:1] == b"E", reply[:80]
    fields = reply[5:].split(b"\0")
    return next(f[1:].decode() for f in fields if f[:1] == b"C")


def test_wrong_token_is_28P01(pg: PG) -> None:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(pg.dsn("not-a-token"))
    assert "password authentication failed" in str(caught.value)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.dsn(""))
    reply = raw(pg, startup({"user": "x", "database": "shop"}) + b"p\0\0\0\x0dwrongtok\0")
    assert reply[:9] == b"R\0\0\0\x08\0\0\0\x03"  # asked for a cleartext password
    assert sqlstate_of(reply[9:]) == "28P01"
    still_serving(pg)


def test_unknown_database_is_3D000(pg: PG) -> None:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(pg.dsn(dbname="nowhere"))
    assert 'database "nowhere" does not exist' in str(caught.value)
    reply = raw(pg, startup({"user": "x", "database": "nowhere"}))
    assert sqlstate_of(reply) == "3D000"
    still_serving(pg)


def test_ssl_and_gssenc_requests_are_answered_no(pg: PG) -> None:
    for code in (80877103, 80877104):
        with socket.create_connection((pg.host, pg.port), timeout=10) as sock:
            sock.sendall(struct.pack("!ii", 8, code))
            assert sock.recv(1) == b"N"
    with psycopg.connect(pg.dsn(sslmode="prefer"), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.dsn(sslmode="require"))


def test_truncated_startup_http_and_random_bytes(pg: PG) -> None:
    # a truncated startup packet: the connection ends without a reply
    assert raw(pg, struct.pack("!i", 100) + b"\0\3\0\0user") == b""
    reply = raw(pg, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sqlstate_of(reply) == "08P01"  # 'GET ' read as a length: far over the cap
    generator = random.Random(22)
    for _ in range(30):
        raw(pg, bytes(generator.randrange(256) for _ in range(generator.randrange(1, 300))))
    # after a good startup too: garbage where messages belong
    reply = raw(pg, startup({"user": "x", "database": "shop"}) + b"p\0\0\0\x08ab\0" + b"\xff" * 64)
    assert b"28P01" in reply
    still_serving(pg)


def test_oversized_startup_and_unknown_protocol(pg: PG) -> None:
    reply = raw(pg, struct.pack("!ii", 20_000, 196608) + b"x" * 100)
    assert sqlstate_of(reply) == "08P01" and b"startup packet of 20000 bytes" in reply
    reply = raw(pg, struct.pack("!ii", 8, 2 << 16))
    assert sqlstate_of(reply) == "0A000"
    still_serving(pg)


def test_an_oversized_message_closes_only_its_connection(pg: PG) -> None:
    with (
        psycopg.connect(pg.dsn(), autocommit=True) as conn,
        pytest.raises(psycopg.OperationalError),
    ):
        conn.execute("SELECT '" + "x" * (5 * 1024 * 1024) + "'")
    still_serving(pg)


def test_a_cancel_request_for_no_running_query_is_harmless(pg: PG) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.cancel_safe()
        assert conn.execute("SELECT 3").fetchone() == (3,)
    raw(pg, struct.pack("!iiii", 16, 80877102, 12345, 678), read=False)
    still_serving(pg)


def test_slow_authentication_and_connection_cap(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"COSMICTRON_PG_AUTH_S_MAX": "0.5", "COSMICTRON_CONNECTIONS_PER_ADDRESS_MAX": "3"}
    server, host, port = start_pg_server(tmp_path / "data", env=env)
    try:
        with socket.create_connection((host, port), timeout=10) as slow:
            slow.sendall(struct.pack("!i", 50))  # a startup packet that never comes
            started = time.monotonic()
            reply = slow.recv(4096)
            assert b"pg_auth_s_max" in reply and time.monotonic() - started < 5
        held = [socket.create_connection((host, port), timeout=10) for _ in range(3)]
        try:
            with socket.create_connection((host, port), timeout=10) as fourth:
                assert sqlstate_of(fourth.recv(4096)) == "53300"
        finally:
            for sock in held:
                sock.close()
    finally:
        stop_server(server)
