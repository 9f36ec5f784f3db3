"""A real server in the test's own process, for tests that reach into it.

Most server tests start ``cosmictron-cli start`` in a process of its own
(``conftest.start_server``). A few must reach inside: hold a commit log's sync token so
that nothing becomes durable, or read a ``WebSocketClient``'s counters. ``running``
serves the real app (``build_app``, the real listener) on a loopback port of the current
event loop (asyncio's, or uvloop's under ``uvloop.run``), fsync ``always``, with one
database deployed over HTTP; ``holding_syncs`` keeps its sync token on another thread.
The frame helpers speak either WebSocket protocol.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
from aiohttp import web

from cosmictron.host import Database
from cosmictron.server import listener
from cosmictron.server.app import build_app
from cosmictron.server.auth import TokenAuthority
from cosmictron.server.registry import DatabaseRegistry
from cosmictron.server.rights import Rights
from cosmictron.server.websocket import CLIENTS
from cosmictron.server.websocket_client import WebSocketClient

JSON = "v1.json.cosmictron"
MSGPACK = "v1.msgpack.cosmictron"

TASKS_MODULE = """
from cosmictron import *

@table(public=True)
class Task:
    id: int = field(primary_key=True, auto_inc=True)
    title: str = ""

@reducer
def add(ctx: ReducerContext, title: str) -> int:
    return ctx.db.task.insert(Task(title=title)).id
"""
"""A table of tasks and a reducer adding one; tests append reducers of their own."""


class InProcessServer:
    def __init__(self, registry: DatabaseRegistry, app: web.Application, base: str) -> None:
        self.registry = registry
        self.app = app
        self.base = base

    def ws_url(self, database: str) -> str:
        return f"{self.base}/v1/database/{database}/subscribe"

    def db(self, database: str) -> Database:
        return self.registry.get(database).db

    def client_of(self, identity_token: str) -> WebSocketClient:
        """The server's ``WebSocketClient`` of the connection that was sent this token."""
        payload = identity_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        for client in self.app[CLIENTS]:
            if client.identity.hex() == claims["sub"]:
                return client
        raise AssertionError("no client was sent this token")


@asynccontextmanager
async def running(data: Path, database: str, module: str) -> AsyncIterator[InProcessServer]:
    """Serve ``data`` (profile ``production``: fsync ``always``) with ``module`` deployed
    as ``database``, on the running event loop."""
    registry = DatabaseRegistry(data, "production")
    await asyncio.to_thread(registry.open_all)
    authority = TokenAuthority.load_or_create(data / "server")
    rights = Rights.load_or_create(data / "server", authority)
    app = build_app(registry, authority, rights)
    runner = web.AppRunner(app, **listener.runner_options(app))
    await runner.setup()
    listening = await listener.listen(runner, "127.0.0.1", 0)
    host, port = listening.sockets[0].getsockname()[:2]
    base = f"http://{host}:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {rights.operator_token}"}
            url = f"{base}/v1/database/{database}"
            async with http.put(url, data=module, headers=headers) as reply:
                assert reply.status == 201, await reply.text()
        yield InProcessServer(registry, app, base)
    finally:
        listening.close()
        await runner.cleanup()
        await asyncio.to_thread(registry.close_all)


@contextmanager
def holding_syncs(db: Database) -> Iterator[None]:
    """Hold ``db``'s commit-log sync token on another thread: inside, transactions
    commit but none becomes durable."""
    sync = db.core.persistence._sync
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with sync.exclusive():  # no sync can run: nothing new becomes durable
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30)
        yield
    finally:
        release.set()
        holder.join()


def encode(protocol: str, message: dict[str, Any]) -> str | bytes:
    return json.dumps(message) if protocol == JSON else msgpack.packb(message)


def decode(protocol: str, frame: aiohttp.WSMessage) -> Any:
    expected = aiohttp.WSMsgType.TEXT if protocol == JSON else aiohttp.WSMsgType.BINARY
    assert frame.type is expected, (frame.type, frame.data)
    return json.loads(frame.data) if protocol == JSON else msgpack.unpackb(frame.data)


async def send(ws: aiohttp.ClientWebSocketResponse, protocol: str, message: Any) -> None:
    data = encode(protocol, message)
    if isinstance(data, str):
        await ws.send_str(data)
    else:
        await ws.send_bytes(data)
