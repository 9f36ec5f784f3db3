"""The PostgreSQL port: the listening socket, the sessions, their caps and cancels.

``listen_pg`` starts it beside the HTTP server (``app.serve``, when ``--pg-listen`` or
``COSMICTRON_PG_LISTEN`` is given). Connections count against the same per-address
and total caps as HTTP's (the ``ConnectionGuard``), and statements against the same
per-identity query rate and budgets (``Throttle``, ``ServerLimits``). A connection
over a cap gets a FATAL 53300 and is closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cosmictron.server.auth import TokenAuthority
from cosmictron.server.connection_caps import ConnectionGuard
from cosmictron.server.pgwire import messages
from cosmictron.server.pgwire.context import PgContext, PgSettings
from cosmictron.server.pgwire.inbound import Inbound, serve_inbound
from cosmictron.server.pgwire.session import Session
from cosmictron.server.pgwire.sqlstate import TOO_MANY_CONNECTIONS
from cosmictron.server.registry import DatabaseRegistry
from cosmictron.server.throttle import Throttle

logger = logging.getLogger(__name__)


async def listen_pg(
    host: str,
    port: int,
    registry: DatabaseRegistry,
    authority: TokenAuthority,
    throttle: Throttle,
    guard: ConnectionGuard | None,
    settings: PgSettings | None = None,
    app: web.Application | None = None,
) -> PgListener:
    """Listen for PostgreSQL clients on ``host:port`` until the server is closed; ``app``
    is the HTTP server's application, through which a follower's sessions send their
    writes to the leader (``leader_writes.py``)."""
    context = PgContext(
        registry,
        authority,
        throttle,
        guard,
        settings or PgSettings.from_environ(os.environ),
        app=app,
    )

    async def connected(reader: Inbound, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        refusal = guard.admit(address) if guard is not None else None
        if refusal is not None:
            writer.write(messages.error_response("FATAL", TOO_MANY_CONNECTIONS, refusal))
            try:
                await asyncio.wait_for(writer.drain(), 5)
            except (ConnectionError, TimeoutError):
                pass
            writer.close()
            return
        try:
            await Session(context, reader, writer, address).serve()
        finally:
            if guard is not None:
                guard.release(address)

    loop = asyncio.get_running_loop()
    factory = serve_inbound(connected, context.settings.message_bytes_max)
    server = await loop.create_server(factory, host, port)
    return PgListener(server, asyncio.ensure_future(context.reap_idle()))


@dataclass
class PgListener:
    """The listening socket and the idle reaper, closed together."""

    server: asyncio.Server
    reaper: asyncio.Future[None]

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self.server.sockets)

    def close(self) -> None:
        self.reaper.cancel()
        self.server.close()
