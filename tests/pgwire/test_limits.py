"""Each ``limits.pg_*`` crossed on a real server started with small overrides (the
startup, message and authentication caps are crossed in test_refusals.py)."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.pgwire.conftest import PG, shop_server


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PG]:
    env = {
        "COSMICTRON_PG_IDLE_S_MAX": "1",
        "COSMICTRON_PG_STATEMENTS_PREPARED_MAX": "2",
        "COSMICTRON_PG_PORTALS_MAX": "2",
        "COSMICTRON_PG_BLOCK_STATEMENTS_MAX": "2",
    }
    with shop_server(tmp_path_factory.mktemp("pglimits") / "data", env) as pg:
        yield pg


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def test_idle_connections_are_closed(small: PG) -> None:
    conn = psycopg.connect(small.dsn(), autocommit=True)
    try:
        time.sleep(1.6)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    finally:
        conn.close()


def test_a_message_trickling_in_does_not_keep_a_session_alive(small: PG) -> None:
    """Idle means no message answered: bytes of an unfinished one, a few at a time,
    do not reset the idle clock (the synchronous path sees every read)."""
    with socket.create_connection((small.host, small.port), timeout=10) as sock:
        body = struct.pack("!i", 196608) + b"user\0x\0database\0shop\0\0"
        sock.sendall(struct.pack("!i", len(body) + 4) + body)
        assert sock.recv(9)[:1] == b"R"
        sock.sendall(message(b"p", small.owner_token.encode() + b"\0"))
        time.sleep(0.3)
        sock.recv(65536)
        query = message(b"Q", b"SELECT 1\0" + b" " * 64)
        reply = b""
        started = time.monotonic()
        for at in range(len(query) - 1):  # never the last byte: never a whole message
            try:
                sock.sendall(query[at : at + 1])
            except OSError:  # closed by the server
                break
            time.sleep(0.1)
            sock.setblocking(False)
            try:
                reply += sock.recv(65536)
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
            if b"57P05" in reply:
                break
        assert b"57P05" in reply, reply
        assert time.monotonic() - started < 4  # idle limit 1 s, checked every 0.25 s


def test_prepared_statements_are_capped(small: PG) -> None:
    with psycopg.connect(small.dsn(), autocommit=True, prepare_threshold=0) as conn:
        conn.execute("SELECT id FROM item WHERE id = %s", (1,))
        conn.execute("SELECT name FROM item WHERE id = %s", (1,))
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded) as caught:
            conn.execute("SELECT price FROM item WHERE id = %s", (1,))
        assert "pg_statements_prepared_max" in str(caught.value)


def test_portals_are_capped(small: PG) -> None:
    # named portals through the raw protocol: Parse once, Bind three portals, Sync
    with socket.create_connection((small.host, small.port), timeout=10) as sock:
        body = struct.pack("!i", 196608) + b"user\0x\0database\0shop\0\0"
        sock.sendall(struct.pack("!i", len(body) + 4) + body)
        assert sock.recv(9)[:1] == b"R"
        token = small.owner_token.encode() + b"\0"
        sock.sendall(message(b"p", token))
        time.sleep(0.3)
        sock.recv(65536)
        out = message(b"P", b"\0SELECT id FROM item\0\0\0")
        for name in (b"a", b"b", b"c"):
            out += message(b"B", name + b"\0\0" + b"\0\0" + b"\0\0" + b"\0\0")
        out += message(b"S", b"")
        sock.sendall(out)
        time.sleep(0.5)
        reply = sock.recv(65536)
        assert b"pg_portals_max" in reply and b"53400" in reply


def test_writes_per_block_are_capped(small: PG) -> None:
    with psycopg.connect(small.dsn()) as conn:
        conn.execute("UPDATE item SET qty = 1 WHERE id = 1")
        conn.execute("UPDATE item SET qty = 1 WHERE id = 2")
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded) as caught:
            conn.execute("UPDATE item SET qty = 1 WHERE id = 3")
        assert "pg_block_statements_max" in str(caught.value)
        conn.rollback()
