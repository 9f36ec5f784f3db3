"""``POST /v1/database/{name}/mcp``: the Model Context Protocol, streamable HTTP.

The route does what every route does before any MCP is spoken: finds the caller from
the bearer token (401 on a bad one), the database (404), and reads the body within
``limits.mcp_body_bytes_max`` (413) and the connection's body time limit (408, the
``guard_requests`` middleware), checking its JSON depth (400 ``too_deep``). Only then
is the body handed to the MCP SDK (``mcp_host``), imported on the first request so a
server without the ``mcp`` extra starts as fast as ever and answers this route with
501 ``mcp_unavailable``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from cosmictron import limits
from cosmictron.errors import McpUnavailable
from cosmictron.server import bodies
from cosmictron.server.routes import caller_of, hosted

if TYPE_CHECKING:
    from cosmictron.server.mcp_host import McpHost

HOST: web.AppKey[McpHost] = web.AppKey("mcp_host")
LOCK = web.AppKey("mcp_host_lock", asyncio.Lock)


def body_bytes_max() -> int:
    """``limits.mcp_body_bytes_max``, or ``COSMICTRON_MCP_BODY_BYTES_MAX`` when set."""
    return limits.from_environment("COSMICTRON_MCP_BODY_BYTES_MAX", limits.mcp_body_bytes_max)


def setup(app: web.Application) -> None:
    """Stop the MCP session manager with the app, if a request started it."""
    app[LOCK] = asyncio.Lock()
    app.on_cleanup.append(stop)


async def stop(app: web.Application) -> None:
    host = app.get(HOST)
    if host is not None:
        await host.stop()


async def host_of(app: web.Application) -> McpHost:
    host = app.get(HOST)
    if host is not None:
        return host
    async with app[LOCK]:
        host = app.get(HOST)
        if host is None:
            try:
                from cosmictron.server.mcp_host import McpHost
            except ImportError as exc:
                raise McpUnavailable(
                    "this server has no MCP support: install the mcp extra "
                    f"(pip install 'cosmictron[mcp]') and restart it ({exc})"
                ) from None
            host = McpHost(body_bytes_max())
            app[HOST] = host
    return host


async def mcp(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    database = hosted(request)
    body = await bodies.read_limited(request, body_bytes_max())
    # Not UTF-8, not JSON, or too deep: 400 before the SDK parses it (off the loop if large).
    if len(body) <= limits.json_inline_bytes_max:
        bodies.decode_json(body)
    else:
        await asyncio.to_thread(bodies.decode_json, body)
    host = await host_of(request.app)
    from cosmictron.server.mcp_tools import McpCaller

    return await host.serve(request, body, McpCaller(request, caller, database))
