"""One aiohttp request handed to an ASGI application, and its answer written back.

The MCP SDK's streamable HTTP transport is an ASGI application (Starlette); our server
is aiohttp (docs/design/mcp.md says why the SDK's transport is bridged, not rewritten).
``serve_asgi`` gives the application a scope built from the aiohttp request, a
``receive`` that yields the body already read (within our limits) and then waits for
the client to go away, and a ``send`` that streams what the application answers into an
aiohttp ``StreamResponse``: one JSON body, or an SSE stream chunk by chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web

AsgiMessage = MutableMapping[str, Any]
AsgiApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[AsgiMessage]],
        Callable[[AsgiMessage], Awaitable[None]],
    ],
    Awaitable[None],
]


def scope_of(request: web.Request, extra: dict[str, Any]) -> dict[str, Any]:
    """The ASGI HTTP scope of ``request``, with ``extra`` keys (what our handlers need)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0].encode("latin-1"),
        "query_string": request.query_string.encode("latin-1"),
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in request.raw_headers],
        "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
        "server": tuple(sock[:2]) if isinstance(sock, tuple) else None,
        "state": {},
        **extra,
    }


async def serve_asgi(
    app: AsgiApp, request: web.Request, body: bytes, extra: dict[str, Any]
) -> web.StreamResponse:
    """Run ``app`` for ``request`` whose body is ``body``; return the response it wrote."""
    delivered = False
    gone = asyncio.Event()

    async def receive() -> AsgiMessage:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    response: web.StreamResponse | None = None
    status = 500
    headers: list[tuple[str, str]] = []

    async def send(message: AsgiMessage) -> None:
        nonlocal response, status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = [
                (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
                for name, value in message.get("headers", ())
                if bytes(name).lower() != b"content-length"  # aiohttp frames the body
            ]
            return
        if message["type"] != "http.response.body":
            return
        chunk = bytes(message.get("body", b""))
        if response is None and not message.get("more_body", False):
            response = web.Response(status=status, body=chunk)  # the whole answer at once
            response.headers.extend(headers)
            return
        if response is None:  # a stream (SSE): headers now, then each chunk as it comes
            response = web.StreamResponse(status=status)
            response.headers.extend(headers)
            await response.prepare(request)
        if chunk:
            await response.write(chunk)
        if not message.get("more_body", False):
            await response.write_eof()

    try:
        await app(scope_of(request, extra), receive, send)
    finally:
        gone.set()
    if response is None:  # the application answered with headers only
        response = web.Response(status=status)
        response.headers.extend(headers)
    return response
