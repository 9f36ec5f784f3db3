"""Every client connection, bounded in number and in time (docs/guide/security.md#connections).

Without these bounds only the file-descriptor limit bounded connections: a client that
sent its headers a byte at a time, or opened connections and sent nothing, held them
forever, and past ``RLIMIT_NOFILE`` no client could connect and no database could open
a file. This module holds the limits the server runs with (``ConnectionLimits``:
``limits.py`` overridden by the environment) and the canned answers written straight to
a socket; the work is in three modules, each one job, importing downward:

* **Caps, at accept time** (``connection_caps.py``, ``ConnectionGuard``). Open
  connections are counted in all and per remote address (the TCP peer) when the kernel
  hands one over, before a byte is parsed. Over a cap, the connection is answered with a
  canned ``503 too_many_connections`` and ``Retry-After: 1``, its write side is shut, and
  it is closed once the client hung up or ``connection_refusal_linger_s_max`` passed (so
  the client reads the answer instead of a reset). The total cap is sized from the
  descriptor limit, keeping ``connection_fd_reserve_files`` descriptors for the
  databases, deploys and these answers (``ConnectionGuard.size_from_descriptors``).
* **Time** (``connection_deadlines.py``, ``TcpConnection``). A request's head must
  arrive within ``http_head_s_max`` of its first byte (else ``408 request_timeout`` and
  close); its body within ``http_body_s_max`` plus one second per
  ``http_body_rate_bytes_per_s_min`` bytes received (else the handler's read fails, the
  client gets ``408 request_timeout`` and the connection closes); an idle keep-alive
  connection is closed after ``http_keepalive_idle_s_max`` (aiohttp's own
  ``keepalive_timeout``, which also starts when a connection opens). WebSocket liveness
  (pings, close code 4408) is ``websocket_client.WebSocketClient.watch_liveness``, which
  reads ``TcpConnection.last_received``.
* **The hook into aiohttp, public API only** (``listener.py``). The server listens
  itself (``listen``: ``loop.create_server`` with a protocol factory that wraps the
  aiohttp ``RequestHandler`` made by ``runner.server``), so every accepted connection
  and every byte received passes through ``GuardedProtocol`` first; the
  ``guard_requests`` middleware tells a connection when a request's head was parsed and
  when its handler returned.

All state lives on the event loop, the only thread that touches it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from cosmictron import limits
from cosmictron.errors import ConfigError, CosmictronError

RETRY_AFTER_S = 1
"""``Retry-After`` of a refused connection: connections free up as clients finish."""


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


def canned_response(
    error: type[CosmictronError], reason: str, message: str, *headers: str
) -> bytes:
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
