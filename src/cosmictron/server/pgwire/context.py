"""What every session of the PostgreSQL port shares: the registry, the token
authority, the throttle and connection guard, the port's limits, and the live sessions
by process id (for CancelRequest and the idle reaper)."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from cosmictron import limits
from cosmictron.errors import ConfigError
from cosmictron.server.auth import TokenAuthority
from cosmictron.server.connection_caps import ConnectionGuard
from cosmictron.server.registry import DatabaseRegistry
from cosmictron.server.throttle import ServerLimits, Throttle


class SessionLike(Protocol):
    """What the context needs of a session (``session.Session``)."""

    pid: int
    secret: int
    running: bool
    cancelled: bool
    idle_since: float | None

    def close_idle(self, limit: float) -> None: ...


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
    app: web.Application | None = None
    """The HTTP server's application: a follower's writes go to the leader through it."""
    sessions: dict[int, SessionLike] = field(default_factory=dict)
    pids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(os.getpid() * 1000 % 2**30 + 1)
    )

    @property
    def limits(self) -> ServerLimits:
        return self.throttle.settings

    def register(self, session: SessionLike) -> int:
        pid = next(self.pids) % 2**31
        self.sessions[pid] = session
        return pid

    def forget(self, session: SessionLike) -> None:
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
