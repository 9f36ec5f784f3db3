"""Connection caps, at accept time: ``ConnectionGuard`` (see ``connections.py`` for the whole).

The guard counts open connections in all and per remote address and says why a new one
is refused (``admit``); a refused one gets a canned ``503 too_many_connections``, its
write side shut, and is closed once the client hung up or
``connection_refusal_linger_s_max`` passed (``RefusedConnection``). The total cap is
sized from the file-descriptor limit once the server listens. The guard also keeps each
admitted ``TcpConnection`` by its aiohttp handler, so a request finds the connection it
came on (``connection_of``), and the counters ``/metrics`` shows. Event loop only.
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web

from cosmictron.errors import ConfigError, TooManyConnections
from cosmictron.server.connection_deadlines import TcpConnection
from cosmictron.server.connections import RETRY_AFTER_S, ConnectionLimits, canned_response

logger = logging.getLogger(__name__)


class RefusedConnection:
    """A connection over a cap: answered, its write side shut, closed soon after."""

    def __init__(self, guard: ConnectionGuard, transport: asyncio.Transport, message: str) -> None:
        self.guard = guard
        self.transport = transport
        headers = f"Retry-After: {RETRY_AFTER_S}"
        transport.write(
            canned_response(TooManyConnections, "Service Unavailable", message, headers)
        )
        if transport.can_write_eof():
            transport.write_eof()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(guard.limits.connection_refusal_linger_s_max, transport.close)

    def lost(self) -> None:
        self._timer.cancel()


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

    def count_timeout(self) -> None:
        """A connection missed a deadline (for ``/metrics``)."""
        self.timed_out += 1

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
