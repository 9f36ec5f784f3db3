"""Which web pages may talk to the server: CORS on the HTTP API, ``Origin`` on WebSockets.

A browser sends ``Origin`` with every cross-origin request and with every WebSocket
upgrade. Browsers enforce CORS for ``fetch`` but not for WebSockets, so a page from
anywhere could otherwise open a WebSocket with a token it holds (``?token=``) or, worse,
be any page the user happens to visit. The server therefore refuses, with ``403
origin_not_allowed`` and before any handler runs, every request whose ``Origin`` it does
not allow, and answers the allowed ones with ``Access-Control-Allow-Origin`` (the
origin itself, never ``*``, with ``Vary: Origin``). A request without ``Origin`` (curl,
the CLI, the SDKs outside a browser) is not a browser's cross-site request and passes.

Allowed by default: the server's own origin (the ``Origin``'s host and port are the
request's ``Host``) and loopback pages (``localhost``, ``127.0.0.0/8``, ``[::1]``, any
port: a developer's dev server). ``COSMICTRON_ALLOWED_ORIGINS`` adds origins, comma
separated (``https://app.example.com,https://admin.example.com``); ``*`` allows every
origin. Preflight (``OPTIONS`` with ``Access-Control-Request-Method``) of an allowed
origin is answered ``204`` with the methods and headers the API uses
(docs/reference/http.md, "Browsers and CORS").
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from aiohttp import web

from cosmictron.errors import OriginNotAllowed

ALLOWED_ORIGINS = web.AppKey("allowed_origins", frozenset)
"""The origins ``COSMICTRON_ALLOWED_ORIGINS`` names (``*`` among them: every origin)."""

ENVIRONMENT = "COSMICTRON_ALLOWED_ORIGINS"
PREFLIGHT_MAX_AGE_S = 600
"""How long a browser may cache a preflight answer."""
ALLOW_METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"
EXPOSE_HEADERS = "Retry-After, Content-Disposition"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_allowed(text: str | None) -> frozenset[str]:
    """The origins of a ``COSMICTRON_ALLOWED_ORIGINS`` value, normalised (lower case, no
    trailing slash), so they compare equal to what browsers send."""
    if not text:
        return frozenset()
    return frozenset(part.strip().rstrip("/").lower() for part in text.split(",") if part.strip())


def setup(app: web.Application, environ: Mapping[str, str] | None = None) -> None:
    """Read the allowed origins and add CORS headers to every answer of an allowed origin."""
    app[ALLOWED_ORIGINS] = parse_allowed((environ or os.environ).get(ENVIRONMENT))
    app.on_response_prepare.append(_add_headers)


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed(origin: str, request_host: str, extra: frozenset[str]) -> bool:
    """Whether a page from ``origin`` may use a server reached as ``request_host``."""
    origin = origin.rstrip("/").lower()
    if "*" in extra or origin in extra:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False  # "null" (a file, a sandboxed frame) and other schemes: only if named
    if is_loopback(parts.hostname):
        return True
    return parts.netloc == request_host.lower()


def _origin_ok(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return allowed(origin, request.host, request.app.get(ALLOWED_ORIGINS, frozenset()))


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a disallowed ``Origin`` (403) and answer an allowed origin's preflight."""
    if not _origin_ok(request):
        raise OriginNotAllowed(
            f"origin {request.headers['Origin']!r} may not use this server: allowed are "
            f"the server's own origin, loopback pages and those in {ENVIRONMENT}"
        )
    if (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    ):
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
            },
        )
    return await handler(request)


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    origin = request.headers.get("Origin")
    if origin is None or not _origin_ok(request):
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    vary = response.headers.get("Vary")
    response.headers["Vary"] = f"{vary}, Origin" if vary and "Origin" not in vary else "Origin"
