"""Every client connection, bounded in number and in time (docs/guide/security.md#connections).

Without this module only the file-descriptor limit bounded connections: a client that
sent its headers a byte at a time, or opened connections and sent nothing, held them
forever, and past ``RLIMIT_NOFILE`` no client could connect and no database could open
a file. Here:

* **Caps, at accept time.** ``ConnectionGuard.admit`` counts open connections in all and
  per remote address (the TCP peer) when the kernel hands one over, before a byte is
  parsed. Over a cap, the connection is answered with a canned
  ``503 too_many_connections`` and ``Retry-After: 1``, its write side is shut, and it is
  closed once the client hung up or ``connection_refusal_linger_s_max`` passed (so the
  client reads the answer instead of a reset). The total cap is sized from the
  descriptor limit, keeping ``connection_fd_reserve_files`` descriptors for the
  databases, deploys and these answers (``ConnectionGuard.size_from_descriptors``).
* **Time.** A request's head must arrive within ``http_head_s_max`` of its first byte
  (else ``408 request_timeout`` and close); its body within ``http_body_s_max`` plus one
  second per ``http_body_rate_bytes_per_s_min`` bytes received (else the handler's read
  fails, the client gets ``408 request_timeout`` and the connection closes); an idle
  keep-alive connection is closed after ``http_keepalive_idle_s_max`` (aiohttp's own
  ``keepalive_timeout``, which also starts when a connection opens). WebSocket liveness
  (pings, close code 4408) is ``websocket_client.WebSocketClient.watch_liveness``, which reads
  ``TcpConnection.last_received`` from here.

How it hooks into aiohttp with public API only: the server listens itself
(``listen``: ``loop.create_server`` with a protocol factory that wraps the aiohttp
``RequestHandler`` made by ``runner.server``), so every accepted connection and every
byte received passes through ``_GuardedProtocol`` first; the ``guard_requests``
middleware tells a connection when a request's head was parsed and when its handler
returned. All state lives on the event loop, the only thread that touches it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, cast

from aiohttp import web

from cosmictron import limits
from cosmictron.errors import ConfigError, CosmictronError, RequestTimedOut, TooManyConnections

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 1
"""``Retry-After`` of a refused connection: connections free up as clients finish."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ConnectionLimits:
    """The connection limits this server runs with: ``limits.py`` overridden by the
    ``COSMICTRON_<NAME>`` environment variables, read once at start."""

    http_head_s_max: float = limits.http_head_s_max
    http_body_s_max: float = limits.http_body_s_max
    http_body_rate_bytes_per_s_min: int = limits.http_body_rate_bytes_per_s_min
    http_keepalive_idle_s_max: float = limits.http_keepalive_idle_s_max
    websocket_ping_interval_s: float = limits.websocket_ping_interval_s
    websocket_pong_timeout_s: float = limits.websocket_pong_timeout_s
    connections_max: int = limits.connections_max
    connections_per_address_max: int = limits.connections_per_address_max
    connection_fd_reserve_files: int = limits.connection_fd_reserve_files
    connections_refused_lingering_max: int = limits.connections_refused_lingering_max
    connection_refusal_linger_s_max: float = limits.connection_refusal_linger_s_max

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ConnectionLimits:
        """Read every override.

        Raises:
            ConfigError: a value is not a number of the limit's type, or not positive
                (``connections_max`` and the reserve may be 0).
        """
        values: dict[str, Any] = {}
        for spec in fields(cls):
            variable = f"COSMICTRON_{spec.name.upper()}"
            text = environ.get(variable)
            if not text:
                continue
            default = getattr(limits, spec.name)
            try:
                value = type(default)(text)
            except ValueError:
                raise ConfigError(
                    f"{variable}={text!r} is not a {type(default).__name__}"
                ) from None
            zero_allowed = spec.name in ("connections_max", "connection_fd_reserve_files")
            if value < 0 or (value == 0 and not zero_allowed):
                raise ConfigError(f"{variable} must be positive")
            values[spec.name] = value
        return cls(**values)


def _canned(error: type[CosmictronError], reason: str, message: str, *headers: str) -> bytes:
    """A whole HTTP/1.1 response with the JSON error body, to write straight to a socket."""
    body = json.dumps({"error": {"code": error.code, "message": message}}).encode()
    head = [
        f"HTTP/1.1 {error.http_status} {reason}",
        "Content-Type: application/json; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class BodyTimedOut(TimeoutError):
    """Set on a request's body stream when its deadline passes: the handler's next read
    raises it and ``guard_requests`` turns it into ``RequestTimedOut``. A ``TimeoutError``
    so aiohttp's lingering read after the response treats it as the end of the body."""


class TcpConnection:
    """One admitted client connection: its address, when it last sent a byte, and the
    deadline it runs against (a request head's, a body's, or none)."""

    IDLE, HEAD, BUSY = "idle", "head", "busy"

    def __init__(self, guard: ConnectionGuard, address: str, transport: asyncio.Transport) -> None:
        self.guard = guard
        self.address = address
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.last_received = self.loop.time()
        """Loop time of the latest bytes received (WebSocket liveness reads it)."""
        self.state = TcpConnection.IDLE
        self._timer: asyncio.TimerHandle | None = None
        self._body: Any = None
        self._body_started = 0.0
        self.body_timed_out = False

    def received(self) -> None:
        """Bytes arrived: the first after a response starts the head's deadline."""
        self.last_received = now = self.loop.time()
        if self.state == TcpConnection.IDLE:
            self.state = TcpConnection.HEAD
            self._arm(now + self.guard.limits.http_head_s_max, self._head_expired)

    def _arm(self, when: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_at(when, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_expired(self) -> None:
        self._timer = None
        if self.state != TcpConnection.HEAD or self.transport.is_closing():
            return
        seconds = self.guard.limits.http_head_s_max
        message = (
            f"the request's head (request line and headers) did not arrive within {seconds:g} s "
            "of its first byte (limits.http_head_s_max; server env COSMICTRON_HTTP_HEAD_S_MAX)"
        )
        self.guard.timed_out += 1
        self.transport.write(_canned(RequestTimedOut, "Request Timeout", message))
        self.transport.close()

    def request_started(self, request: web.BaseRequest) -> None:
        """The head was parsed and the handler starts: watch the body if it is still
        arriving."""
        self.state = TcpConnection.BUSY
        self._disarm()
        self.body_timed_out = False
        content = request.content
        if content.is_eof():
            return
        self._body = content
        self._body_started = self.loop.time()
        self._arm(self._body_started + self.guard.limits.http_body_s_max, self._check_body)

    def _check_body(self) -> None:
        self._timer = None
        content = self._body
        if content is None or content.is_eof() or self.state != TcpConnection.BUSY:
            return
        settings = self.guard.limits
        rate = settings.http_body_rate_bytes_per_s_min
        deadline = self._body_started + settings.http_body_s_max + content.total_bytes / rate
        if self.loop.time() < deadline:
            self._arm(deadline, self._check_body)
            return
        self.body_timed_out = True
        self.guard.timed_out += 1
        content.set_exception(
            BodyTimedOut(
                f"the request body arrived too slowly: {content.total_bytes} bytes in "
                f"{self.loop.time() - self._body_started:.1f} s; a body must be whole within "
                f"{settings.http_body_s_max:g} s plus 1 s per {rate} bytes "
                "(limits.http_body_s_max, http_body_rate_bytes_per_s_min; server env "
                "COSMICTRON_HTTP_BODY_S_MAX, COSMICTRON_HTTP_BODY_RATE_BYTES_PER_S_MIN)"
            )
        )

    def request_finished(self) -> None:
        """The handler returned: the connection waits for its next request, unless the
        handler left part of the body unread: aiohttp then reads and drops the rest for
        at most its ``lingering_time`` (10 s) before closing, and no new head starts."""
        unread = self._body is not None and not self._body.is_eof()
        self.state = TcpConnection.BUSY if unread else TcpConnection.IDLE
        self._body = None
        self._disarm()

    def lost(self) -> None:
        self._disarm()
        self._body = None


class _Refused:
    """A connection over a cap: answered, its write side shut, closed soon after."""

    def __init__(self, guard: ConnectionGuard, transport: asyncio.Transport, message: str) -> None:
        self.guard = guard
        self.transport = transport
        headers = f"Retry-After: {RETRY_AFTER_S}"
        transport.write(_canned(TooManyConnections, "Service Unavailable", message, headers))
        if transport.can_write_eof():
            transport.write_eof()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(guard.limits.connection_refusal_linger_s_max, transport.close)

    def lost(self) -> None:
        self._timer.cancel()


class _GuardedProtocol(asyncio.Protocol):
    """Wraps aiohttp's ``RequestHandler``: admits or refuses the connection, and notes
    every byte received before the handler parses it."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.connection: TcpConnection | None = None
        self.refused: _Refused | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        refusal = self.guard.admit(address)
        if refusal is None:
            self.connection = TcpConnection(self.guard, address, transport)
            self.guard.by_handler[self.inner] = self.connection
            self.inner.connection_made(transport)
            return
        self.guard.refused_total += 1
        if self.guard.refusing >= self.guard.limits.connections_refused_lingering_max:
            transport.abort()  # too many answers in flight already: reset, answer nothing
            return
        self.guard.refusing += 1
        self.refused = _Refused(self.guard, transport, refusal)

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


class ConnectionGuard:
    """The server's connection counts and caps, and every admitted ``TcpConnection``."""

    def __init__(self, settings: ConnectionLimits) -> None:
        self.limits = settings
        self.open = 0
        self.per_address: dict[str, int] = {}
        self.refusing = 0
        self.refused_total = 0
        self.timed_out = 0
        self.total_max: int | None = settings.connections_max or None
        """The cap in all; None until sized (``size_from_descriptors``) when 0 was set."""
        self.by_handler: dict[asyncio.Protocol, TcpConnection] = {}

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address``; or why it is refused (over a cap)."""
        if self.total_max is not None and self.open >= self.total_max:
            return (
                f"the server holds as many connections as it allows ({self.total_max}, "
                "limits.connections_max, sized from the file-descriptor limit); retry later"
            )
        held = self.per_address.get(address, 0)
        if held >= self.limits.connections_per_address_max:
            return (
                f"address {address} holds as many connections as one address may "
                f"({self.limits.connections_per_address_max}, "
                "limits.connections_per_address_max); close one or retry later"
            )
        self.open += 1
        self.per_address[address] = held + 1
        return None

    def release(self, address: str) -> None:
        self.open -= 1
        held = self.per_address.get(address, 1) - 1
        if held > 0:
            self.per_address[address] = held
        else:
            self.per_address.pop(address, None)

    def size_from_descriptors(self) -> None:
        """Cap the connections so ``connection_fd_reserve_files`` descriptors stay free.

        Called once the server listens and its databases are open: the room is the soft
        ``RLIMIT_NOFILE`` minus the descriptors open now minus the reserve. An explicit
        ``connections_max`` above the room is lowered to it (and logged).

        Raises:
            ConfigError: the limit leaves no room for a single connection.
        """
        soft = _descriptor_limit()
        if soft is None:
            return  # no such limit on this platform: only an explicit cap applies
        in_use = _descriptors_open()
        reserve = self.limits.connection_fd_reserve_files
        room = soft - in_use - reserve
        if room < 1:
            raise ConfigError(
                f"the file-descriptor limit ({soft}, RLIMIT_NOFILE) leaves no room for client "
                f"connections: {in_use} are open and {reserve} are kept in reserve "
                "(limits.connection_fd_reserve_files); raise `ulimit -n` or lower "
                "COSMICTRON_CONNECTION_FD_RESERVE_FILES"
            )
        if self.total_max is not None and self.total_max > room:
            logger.warning(
                "connections_max %d is above what the file-descriptor limit allows; using %d",
                self.total_max,
                room,
            )
        self.total_max = room if self.total_max is None else min(self.total_max, room)

    def protocol_factory(self, server: Callable[[], asyncio.Protocol]) -> Callable[[], Any]:
        """What ``loop.create_server`` calls per accepted connection."""
        return lambda: _GuardedProtocol(self, server())

    def connection_of(self, request: web.BaseRequest) -> TcpConnection | None:
        """The guarded connection a request came on (None where the server does not
        listen through ``listen``, e.g. aiohttp's test client)."""
        return self.by_handler.get(request.protocol)


def _descriptor_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE``; None where there is none (or it is unlimited)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _descriptors_open() -> int:
    """File descriptors this process holds now (0 where the platform cannot tell)."""
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(directory))
        except OSError:
            continue
    return 0  # pragma: no cover


GUARD = web.AppKey("connection_guard", ConnectionGuard)


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
        guard.protocol_factory(server), host, port, backlog=128, reuse_address=True
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
