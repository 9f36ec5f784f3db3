"""``connect_nats``'s transport fix, on nats-py's own ``TcpTransport`` and real sockets:
connecting again (a reconnect's next try) closes the writer it replaces instead of
leaving its socket to the collector (an unclosed ``StreamWriter``: CI failed a cluster
test on it after killing two NATS servers)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import pytest

transport = pytest.importorskip("nats.aio.transport", reason="nats-py is not installed")

from cosmictron.nats_client import close_replaced_writers  # noqa: E402


def test_connecting_again_closes_the_writer_it_replaces() -> None:
    async def scenario() -> tuple[bool, bool]:
        accepted: list[asyncio.StreamWriter] = []

        async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        close_replaced_writers()
        close_replaced_writers()  # once is enough; twice changes nothing
        tcp = transport.TcpTransport()
        uri = urlparse(f"nats://127.0.0.1:{port}")
        await tcp.connect(uri, 4096, 1)
        first = tcp._io_writer
        await tcp.connect(uri, 4096, 1)
        replaced_closed = first.is_closing()
        current_open = not tcp._io_writer.is_closing()
        tcp.close()
        await tcp.wait_closed()
        first.close()  # (already, with the fix: the test must end either way)
        await first.wait_closed()
        for writer in accepted:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return replaced_closed, current_open

    assert asyncio.run(scenario()) == (True, True)
