"""A SELECT's rows are sent as the plan produces them (``Session._stream``), in
batches of ``results.BATCH_ROWS``: every row arrives once and in order, in text and
binary, the row budget still stops a result too large (after the rows before it), a
portal read in parts still works, and a client that goes away mid-stream leaves the
server serving."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator

import asyncpg
import psycopg
import pytest

from cosmictron.server.pgwire import results
from tests.pgwire.conftest import MODULE, PG, start_pg_server
from tests.server.conftest import STARTED, stop_server

ROWS = 5_000
ROWS_MAX = 4_500
"""``limits.query_rows_max`` of this server: ``SELECT *`` of ``ROWS`` crosses it."""
WITHIN = 4_400
"""Rows of a result within the budget: over two batches."""

assert WITHIN > 2 * results.BATCH_ROWS


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PG]:
    env = {"COSMICTRON_QUERY_ROWS_MAX": str(ROWS_MAX)}
    server, host, port = start_pg_server(tmp_path_factory.mktemp("pgstream") / "data", env=env)
    STARTED.remove(server.process)
    try:
        _, owner = server.deployer()
        assert server.deploy("shop", MODULE, owner).status == 201
        assert server.request("POST", "/v1/database/shop/call/seed", [ROWS], owner).status == 200
        _, reader = server.identity()
        yield PG(server, host, port, owner, reader)
    finally:
        out = stop_server(server)
        assert "Traceback" not in out, out  # a client gone mid-stream is no server error


def expected(count: int) -> list[tuple[object, ...]]:
    return [(i, f"item{i}", i * 1.5, i % 7, i % 2 == 0, None) for i in range(1, count + 1)]


QUERY = f"SELECT * FROM item WHERE id <= {WITHIN} ORDER BY id"


def test_every_row_arrives_once_in_text_and_binary(many: PG) -> None:
    with psycopg.connect(many.dsn(many.reader_token), autocommit=True) as conn:
        for binary in (False, True):
            cursor = conn.execute(QUERY, binary=binary)
            assert cursor.fetchall() == expected(WITHIN)
            assert cursor.statusmessage == f"SELECT {WITHIN}"
            names = [c.name for c in cursor.description]
            assert names == ["id", "name", "price", "qty", "active", "note"]

    async def run() -> None:
        conn = await asyncpg.connect(many.url(many.reader_token))
        try:
            got = await conn.fetch(QUERY)
            assert [tuple(row) for row in got] == expected(WITHIN)
        finally:
            await conn.close()

    asyncio.run(run())


def test_the_row_budget_stops_a_streamed_result_and_the_session_goes_on(many: PG) -> None:
    with psycopg.connect(many.dsn(), autocommit=True) as conn:
        for binary in (False, True):
            with pytest.raises(psycopg.errors.ConfigurationLimitExceeded) as caught:
                conn.execute("SELECT * FROM item", binary=binary).fetchall()
            assert str(ROWS_MAX) in str(caught.value)
            assert conn.execute("SELECT count(*) FROM item").fetchone() == (ROWS,)


def test_a_private_table_is_refused_before_any_row(many: PG) -> None:
    with psycopg.connect(many.dsn(many.reader_token), autocommit=True) as conn:
        for _ in range(2):  # the second run finds the statement cached
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM secret WHERE id > 0")


def test_a_portal_read_in_parts(many: PG) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(many.url())
        try:
            async with conn.transaction():
                got = [tuple(row) async for row in conn.cursor(QUERY, prefetch=1500)]
            assert got == expected(WITHIN)
        finally:
            await conn.close()

    asyncio.run(run())


def test_a_client_gone_mid_stream_leaves_the_server_serving(many: PG) -> None:
    for _ in range(3):
        with socket.socket() as raw:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the server blocks
            raw.settimeout(10)
            raw.connect((many.host, many.port))
            raw.sendall(startup(many))
            reply = b""
            while b"Z\x00\x00\x00\x05I" not in reply:
                reply += raw.recv(65536)
            body = QUERY.encode() + b"\x00"
            raw.sendall(b"Q" + struct.pack("!i", len(body) + 4) + body)
            raw.recv(4096)  # the first rows; then the client is gone
    with psycopg.connect(many.dsn(), autocommit=True) as conn:
        assert len(conn.execute(QUERY).fetchall()) == WITHIN


def startup(pg: PG) -> bytes:
    pairs = [("user", "someone"), ("database", pg.database)]
    body = struct.pack("!i", 196608)
    body += b"".join(k.encode() + b"\x00" + v.encode() + b"\x00" for k, v in pairs) + b"\x00"
    packet = struct.pack("!i", len(body) + 4) + body
    password = pg.owner_token.encode() + b"\x00"
    return packet + b"p" + struct.pack("!i", len(password) + 4) + password
