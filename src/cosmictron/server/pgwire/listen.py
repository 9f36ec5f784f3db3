"""The PostgreSQL port: the listening socket, the sessions, their caps and cancels.

``listen_pg`` starts it beside the HTTP server (``app.serve``, when ``--pg-listen`` or
``COSMICTRON_PG_LISTEN`` is given). Connections count against the same per-address
and total caps as HTTP's (the ``ConnectionGuard``), and statements against the same
per-identity query rate and budgets (``Throttle``, ``ServerLimits``). A connection
over a cap gets a FATAL 53300 and is closed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cosmictron import limits
from cosmictron.errors import ConfigError
from cosmictron.server.auth import TokenAuthority
from cosmictron.server.connection_caps import ConnectionGuard
from cosmictron.server.pgwire import messages
from cosmictron.server.pgwire.session import Session
from cosmictron.server.pgwire.sqlstate import TOO_MANY_CONNECTIONS
from cosmictron.server.registry import DatabaseRegistry
from cosmictron.server.throttle import ServerLimits, Throttle

logger = logging.getLogger(__name__)

_NAMES = (
    "pg_startup_bytes_max",
    "pg_message_bytes_max",
    "pg_auth_s_max",
    "pg_idle_s_max",
    "pg_statements_prepared_max",
    "pg_portals_max",
    "pg_block_statements_max",
)


@dataclass(frozen=True)
class PgSettings:
    """The port's own limits (``limits.pg_*``), each overridden by ``COSMICTRON_<NAME>``."""

    startup_bytes_max: int = limits.pg_startup_bytes_max
    message_bytes_max: int = limits.pg_message_bytes_max
    auth_s_max: float = limits.pg_auth_s_max
    idle_s_max: float = limits.pg_idle_s_max
    statements_max: int = limits.pg_statements_prepared_max
    portals_max: int = limits.pg_portals_max
    block_statements_max: int = limits.pg_block_statements_max

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> PgSettings:
        """Raises ConfigError: an override is not a positive number."""
        values = {}
        for name, attribute in zip(
            _NAMES, [f.name for f in cls.__dataclass_fields__.values()], strict=True
        ):
            text = environ.get(f"COSMICTRON_{name.upper()}")
            if not text:
                continue
            default = getattr(limits, name)
            try:
                value = type(default)(text)
            except ValueError:
                raise ConfigError(
                    f"COSMICTRON_{name.upper()}={text!r} is not a {type(default).__name__}"
                ) from None
            if value <= 0:
                raise ConfigError(f"COSMICTRON_{name.upper()} must be positive")
            values[attribute] = value
        return cls(**values)


@dataclass
class PgContext:
    """What every session of the port shares."""

    registry: DatabaseRegistry
    authority: TokenAuthority
    throttle: Throttle
    guard: ConnectionGuard | None
    settings: PgSettings
    sessions: dict[int, Session] = field(default_factory=dict)
    pids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(os.getpid() * 1000 % 2**30 + 1)
    )

    @property
    def limits(self) -> ServerLimits:
        return self.throttle.settings

    def register(self, session: Session) -> int:
        pid = next(self.pids) % 2**31
        self.sessions[pid] = session
        return pid

    def forget(self, session: Session) -> None:
        if self.sessions.get(session.pid) is session:
            del self.sessions[session.pid]

    async def reap_idle(self) -> None:
        """Close every session idle past ``idle_s_max`` (FATAL 57P05), checking a few
        times per period: one timer for all sessions, none per message."""
        limit = self.settings.idle_s_max
        period = max(0.05, min(limit / 4, 5.0))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for session in list(self.sessions.values()):
                since = session.idle_since
                if since is not None and now - since > limit:
                    session.close_idle(limit)

    def cancel(self, pid: int, secret: int) -> None:
        """A CancelRequest: cancel the running statement of session ``pid`` if the
        secret matches (a wrong secret is ignored, as PostgreSQL does)."""
        session = self.sessions.get(pid)
        if session is not None and session.secret == secret and session.running:
            session.cancelled = True


async def listen_pg(
    host: str,
    port: int,
    registry: DatabaseRegistry,
    authority: TokenAuthority,
    throttle: Throttle,
    guard: ConnectionGuard | None,
    settings: PgSettings | None = None,
) -> PgListener:
    """Listen for PostgreSQL clients on ``host:port`` until the server is closed."""
    context = PgContext(
        registry, authority, throttle, guard, settings or PgSettings.from_environ(os.environ)
    )

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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

    server = await asyncio.start_server(connected, host, port, limit=1 << 16)
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
