"""The stdio MCP server of ``cosmictron-cli mcp``: the SDK's server on stdin/stdout, its
tools relayed to the database's streamable HTTP route with the SDK's client.

Imported only by the ``mcp`` command once the ``mcp`` extra is known to be installed.
Each relayed request is one POST with the SDK's client pinned to the 2026-07-28
protocol (no handshake, no session), over one HTTP connection pool kept for the whole
stdio session: a request that fails fails alone. A tool's own error (our
``code: message``) comes back from the server as an error result and is passed on
unchanged; losing the server mid-session is an error result too (``connection_lost``),
so the MCP client sees why and the relay keeps serving.

stdin's end does not cut off requests in flight: ``Drained`` holds the end back until
every request read has been answered, so ``printf '...' | cosmictron-cli mcp db`` gets
its answers (the SDK's stdio loop would cancel them at once).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from io import TextIOWrapper
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from cosmictron import __version__


class Drained:
    """stdin and stdout for the SDK's ``stdio_server``, counting requests in flight.

    Lines pass through unchanged; a line read that is a JSON-RPC request (it has an
    ``id`` and a ``method``) is in flight until a line written carries its ``id`` with no
    ``method`` (its response). At the end of stdin, iteration ends only once none is in
    flight, or after ``wait_s``.
    """

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self.pending: set[Any] = set()
        self.answered = anyio.Event()
        self.stdin = anyio.wrap_file(
            TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
        )
        self.stdout = anyio.wrap_file(TextIOWrapper(sys.stdout.buffer, encoding="utf-8"))

    def __aiter__(self) -> AsyncIterator[str]:
        return self.lines()

    async def lines(self) -> AsyncIterator[str]:
        async for line in self.stdin:
            request = message_of(line)
            if "id" in request and "method" in request:
                self.pending.add(json.dumps(request["id"]))
            yield line
        with anyio.move_on_after(self.wait_s):
            while self.pending:
                self.answered = anyio.Event()
                await self.answered.wait()

    async def write(self, text: str) -> int:
        written = await self.stdout.write(text)
        response = message_of(text)
        if "id" in response and "method" not in response:
            self.pending.discard(json.dumps(response["id"]))
            self.answered.set()
        return written

    async def flush(self) -> None:
        await self.stdout.flush()


def message_of(line: str) -> dict[str, Any]:
    """A JSON-RPC message as a dict; anything else (a batch, garbage) as an empty one."""
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def lost(code: str, error: BaseException) -> types.CallToolResult:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]  # the task groups' wrapping: the cause is inside
    message = f"the request to the server failed: {type(error).__name__}: {error}"
    return types.CallToolResult(
        content=[types.TextContent(text=f"{code}: {message}")],
        structured_content={"error": {"code": code, "message": message}},
        is_error=True,
    )


MODERN = "2026-07-28"
"""The protocol version the relay speaks upstream: each request is a whole exchange (no
handshake), so each relayed call is one POST and fails alone."""


async def relay(
    url: str, token: str | None, database: str, lost_code: str, timeout_s: float
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx2.Timeout(timeout_s, connect=10.0)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:

        def upstream(mode: str = MODERN) -> Client:
            """A client for one request: a connection lost fails that request only."""
            transport = streamable_http_client(url, http_client=http, terminate_on_close=False)
            return Client(transport, mode=mode, cache=None)

        async with upstream("legacy") as opening:  # the server's instructions, once
            instructions = opening.instructions

        async def list_tools(
            ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
        ) -> types.ListToolsResult:
            async with upstream() as client:
                listed = await client.list_tools()
            return listed.model_copy(update={"meta": None})

        async def call_tool(
            ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
        ) -> types.CallToolResult:
            try:
                async with upstream() as client:
                    result = await client.call_tool(params.name, params.arguments)
            except Exception as error:  # the server went away or answered garbage
                return lost(lost_code, error)
            assert isinstance(result, types.CallToolResult)
            return result.model_copy(update={"meta": None})  # the upstream's serverInfo

        server: Server[Any] = Server(
            f"cosmictron-{database}",
            version=__version__,
            instructions=instructions,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
        )
        streams = Drained(timeout_s)
        stdio = stdio_server(streams, streams)  # type: ignore[arg-type]
        async with stdio as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())


def serve_stdio(
    url: str, token: str | None, database: str, lost_code: str, timeout_s: float
) -> None:
    """Serve until stdin closes."""
    anyio.run(relay, url, token, database, lost_code, timeout_s)
