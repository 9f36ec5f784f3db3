"""Each TCP connection's deadlines: ``TcpConnection`` (see ``connections.py`` for the whole).

A request's head must arrive within ``http_head_s_max`` of its first byte: past it the
connection gets a canned ``408 request_timeout`` and is closed. Its body must be whole
within ``http_body_s_max`` plus one second per ``http_body_rate_bytes_per_s_min`` bytes
received: past that the body stream is failed with ``BodyTimedOut``, which the
handler's next read raises and ``listener.guard_requests`` turns into a 408. One timer
per connection, re-armed as its state moves (idle, head, busy); ``listener.py`` tells it
when bytes arrive and when a handler starts and returns. Event loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from cosmictron.errors import RequestTimedOut
from cosmictron.server.connections import ConnectionLimits, canned_response


class BodyTimedOut(TimeoutError):
    """Set on a request's body stream when its deadline passes: the handler's next read
    raises it and ``listener.guard_requests`` turns it into ``RequestTimedOut``. A ``TimeoutError``
    so aiohttp's lingering read after the response treats it as the end of the body."""


class TcpConnection:
    """One admitted TCP connection (HTTP or WebSocket): its address, when it last sent a
    byte, and the deadline it runs against (a request head's, a body's, or none)."""

    IDLE, HEAD, BUSY = "idle", "head", "busy"

    def __init__(
        self,
        settings: ConnectionLimits,
        address: str,
        transport: asyncio.Transport,
        on_timed_out: Callable[[], None],
    ) -> None:
        self.limits = settings
        self.on_timed_out = on_timed_out
        """Called once per deadline missed (``ConnectionGuard`` counts them)."""
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
            self._arm(now + self.limits.http_head_s_max, self._head_expired)

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
        seconds = self.limits.http_head_s_max
        message = (
            f"the request's head (request line and headers) did not arrive within {seconds:g} s "
            "of its first byte (limits.http_head_s_max; server env COSMICTRON_HTTP_HEAD_S_MAX)"
        )
        self.on_timed_out()
        self.transport.write(canned_response(RequestTimedOut, "Request Timeout", message))
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
        self._arm(self._body_started + self.limits.http_body_s_max, self._check_body)

    def _check_body(self) -> None:
        self._timer = None
        content = self._body
        if content is None or content.is_eof() or self.state != TcpConnection.BUSY:
            return
        settings = self.limits
        rate = settings.http_body_rate_bytes_per_s_min
        deadline = self._body_started + settings.http_body_s_max + content.total_bytes / rate
        if self.loop.time() < deadline:
            self._arm(deadline, self._check_body)
            return
        self.body_timed_out = True
        self.on_timed_out()
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
