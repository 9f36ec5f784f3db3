"""The MCP SDK's server and its streamable HTTP session manager, run inside our event loop.

One low-level ``mcp`` ``Server`` serves every database: the route puts the database and
the caller (``mcp_tools.McpCaller``) in the ASGI scope, and the handlers read them back
from ``ctx.request.scope``. The session manager is *stateless* and answers in *JSON*: a
POST is a whole exchange, no ``Mcp-Session-Id`` is kept, and so no session can outlive
its token or be reused by another caller; every request proves its caller again
(docs/design/mcp.md).

The manager's task group must be entered and left by one task (anyio's cancel scopes
are bound to their task), so it runs in a task of its own, started by the first MCP
request and stopped with the app (``on_cleanup``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import mcp_types as types
from aiohttp import web
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from cosmictron import __version__
from cosmictron.errors import InternalError
from cosmictron.server import mcp_tools
from cosmictron.server.mcp_asgi import serve_asgi

CALLER = "cosmictron.mcp_caller"
"""The ASGI scope key of the request's ``McpCaller``."""

INSTRUCTIONS = (
    "Tools of one Cosmictron database, run as the identity of your token: "
    f"{mcp_tools.DESCRIBE_SCHEMA} first, then {mcp_tools.RUN_SQL} to read and "
    f"{mcp_tools.CALL_REDUCER} to change data (reducers are the database's transactions)."
)


def caller_of(ctx: ServerRequestContext[Any, Any]) -> mcp_tools.McpCaller:
    request = ctx.request
    who = getattr(request, "scope", {}).get(CALLER) if request is not None else None
    if not isinstance(who, mcp_tools.McpCaller):
        raise InternalError("an MCP request reached its handler without its caller")
    return who


async def list_tools(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=mcp_tools.tool_list(caller_of(ctx).database))


async def call_tool(
    ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    return await mcp_tools.call_tool(caller_of(ctx), params.name, dict(params.arguments or {}))


def build_server() -> Server[Any]:
    return Server(
        "cosmictron",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


class McpHost:
    """The SDK's server and session manager, and the task that keeps the manager running."""

    def __init__(self, body_bytes_max: int) -> None:
        self.manager = StreamableHTTPSessionManager(
            build_server(),
            json_response=True,
            stateless=True,
            max_request_body_size=body_bytes_max,
        )
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._ready.is_set():
            return
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mcp-session-manager")
        ready = asyncio.ensure_future(self._ready.wait())
        await asyncio.wait([ready, self._task], return_when=asyncio.FIRST_COMPLETED)
        if not self._ready.is_set():
            ready.cancel()
            self._task.result()  # raises what stopped it
            raise InternalError("the MCP session manager stopped before it started")

    async def _run(self) -> None:
        async with self.manager.run():
            self._ready.set()
            await self._stop.wait()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    async def serve(
        self, request: web.Request, body: bytes, who: mcp_tools.McpCaller
    ) -> web.StreamResponse:
        await self.start()
        return await serve_asgi(self.manager.handle_request, request, body, {CALLER: who})
