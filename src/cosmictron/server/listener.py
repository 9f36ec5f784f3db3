"""The server's listening socket, with every connection guarded (see ``connections.py``).

The server does not use aiohttp's ``TCPSite``: ``listen`` calls ``loop.create_server``
with a protocol factory that wraps each aiohttp ``RequestHandler`` (made by
``runner.server``, public API) in a ``GuardedProtocol``. The wrapper admits or refuses
the connection at accept time (``ConnectionGuard``) and notes every byte received
before aiohttp parses it (``TcpConnection``); the ``guard_requests`` middleware tells
the connection when a request's handler starts and returns. ``setup`` reads the limits
and keeps the guard on the app; ``runner_options`` gives aiohttp its keep-alive limit.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from aiohttp import web

from cosmictron.errors import ConfigError, RequestTimedOut
from cosmictron.server.connection_caps import GUARD, ConnectionGuard, RefusedConnection
from cosmictron.server.connection_deadlines import BodyTimedOut, TcpConnection
from cosmictron.server.connections import ConnectionLimits

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GuardedProtocol(asyncio.Protocol):
    """Wraps aiohttp's ``RequestHandler``: admits or refuses the connection, and notes
    every byte received before the handler parses it."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.connection: TcpConnection | None = None
        self.refused: RefusedConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        refusal = self.guard.admit(address)
        if refusal is None:
            self.connection = TcpConnection(
                self.guard.limits, address, transport, self.guard.count_timeout
            )
            self.guard.by_handler[self.inner] = self.connection
            self.inner.connection_made(transport)
            return
        self.guard.refused_total += 1
        if self.guard.refusing >= self.guard.limits.connections_refused_lingering_max:
            transport.abort()  # too many answers in flight already: reset, answer nothing
            return
        self.guard.refusing += 1
        self.refused = RefusedConnection(self.guard, transport, refusal)

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        if connection is None:
            return  # a refused connection: its request is read and dropped
        connection.received()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.connection is None:
            return None  # the refused client hung up: close now
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        if self.connection is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.connection is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.refused is not None:
            self.refused.lost()
            self.refused = None
            self.guard.refusing -= 1
            return
        connection = self.connection
        if connection is None:
            return  # reset at once, never admitted
        connection.lost()
        self.guard.release(connection.address)
        self.guard.by_handler.pop(self.inner, None)
        self.inner.connection_lost(exc)


def protocol_factory(
    guard: ConnectionGuard, server: Callable[[], asyncio.Protocol]
) -> Callable[[], Any]:
    """What ``loop.create_server`` calls per accepted connection."""
    return lambda: GuardedProtocol(guard, server())


def setup(app: web.Application, environ: Mapping[str, str] | None = None) -> ConnectionGuard:
    """Read the limits (environment over ``limits.py``) and keep the guard on the app."""
    guard = ConnectionGuard(
        ConnectionLimits.from_environ(os.environ if environ is None else environ)
    )
    app[GUARD] = guard
    return guard


def runner_options(app: web.Application) -> dict[str, Any]:
    """``web.AppRunner`` options the limits set: aiohttp closes idle keep-alive
    connections itself."""
    return {"keepalive_timeout": app[GUARD].limits.http_keepalive_idle_s_max}


async def listen(runner: web.AppRunner, host: str, port: int) -> asyncio.Server:
    """Listen on ``host:port`` with every connection guarded; the caps are sized from the
    descriptor limit once the socket is open. ``runner.setup()`` must have run."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    guard = runner.app[GUARD]
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        protocol_factory(guard, server), host, port, backlog=128, reuse_address=True
    )
    try:
        guard.size_from_descriptors()
    except ConfigError:
        listener.close()
        raise
    return listener


@web.middleware
async def guard_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the request's connection its handler runs (the body's deadline starts) and
    when it returned; a body that timed out becomes ``408 request_timeout``, whatever the
    handler made of the failed read."""
    connection = request.app[GUARD].connection_of(request) if GUARD in request.app else None
    if connection is None:
        return await handler(request)
    connection.request_started(request)
    try:
        response = await handler(request)
    except BodyTimedOut as exc:
        raise RequestTimedOut(str(exc)) from None
    except Exception:
        if connection.body_timed_out:
            raise RequestTimedOut(_body_message(request)) from None
        raise
    finally:
        connection.request_finished()
    return response


def _body_message(request: web.Request) -> str:
    exc = request.content.exception()
    return str(exc) if exc is not None else "the request body arrived too slowly"
