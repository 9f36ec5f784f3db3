"""``GET /v1/database/{name}/subscribe``: the WebSocket route (docs/reference/websocket.md).

The handshake refuses before the upgrade, as an HTTP error: no subprotocol we speak (400),
a bad token (401), an unknown database (404), too many connections of this caller (429),
a ``client_connected`` reducer that raises (403, with its reason). Then one
``WebSocketClient`` (``server/websocket_client.py``) serves the client until it closes,
and ``client_disconnected`` runs. This module owns what is shared by the clients of a
server: the set of open clients (closed with 1001 when the server shuts down), each
database's ``DatabaseFeed`` (made on first use) and the outgoing queue limits read from
the environment (``setup``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from functools import partial
from typing import Any

from aiohttp import WSCloseCode, web

from cosmictron import limits
from cosmictron.errors import CosmictronError, InvalidRequest, PermissionDenied
from cosmictron.server.auth import ANONYMOUS
from cosmictron.server.connection_caps import GUARD
from cosmictron.server.feed import DatabaseFeed
from cosmictron.server.forwarded_calls import CallForwarder
from cosmictron.server.protocol import CODECS, PROTOCOLS
from cosmictron.server.registry import HostedDatabase
from cosmictron.server.routes import (
    AUTHORITY,
    MODULE_UPDATE_HOOKS,
    REGISTRY,
    ModuleUpdateHook,
    caller_of,
)
from cosmictron.server.throttle import caller_key, throttle_of
from cosmictron.server.websocket_client import WebSocketClient
from cosmictron.values import ConnectionId, Identity

logger = logging.getLogger(__name__)

CLIENTS: web.AppKey[set[WebSocketClient]] = web.AppKey("websocket_clients")
FEEDS: web.AppKey[dict[str, DatabaseFeed]] = web.AppKey("websocket_feeds")
FEEDS_LOCK = web.AppKey("websocket_feeds_lock", asyncio.Lock)
QUEUE_MAX = web.AppKey("client_queue_messages_max", int)
QUEUE_BYTES_MAX = web.AppKey("client_queue_bytes_max", int)


def setup(app: web.Application) -> None:
    """Keep the clients' shared state on the app, and close every client (1001) when the
    server shuts down. The route itself is in ``app.ROUTES``."""
    clients: set[WebSocketClient] = set()
    app[CLIENTS] = clients
    app[FEEDS] = {}
    app[FEEDS_LOCK] = asyncio.Lock()
    override = os.environ.get("COSMICTRON_CLIENT_QUEUE_MESSAGES_MAX")
    app[QUEUE_MAX] = int(override) if override else limits.client_queue_messages_max
    app[QUEUE_BYTES_MAX] = limits.from_environment(
        "COSMICTRON_CLIENT_QUEUE_BYTES_MAX", limits.client_queue_bytes_max
    )
    app.on_shutdown.append(_close_clients)
    hooks: list[ModuleUpdateHook] = [*app.get(MODULE_UPDATE_HOOKS, [])]
    hooks.append(partial(announce_update, app))
    app[MODULE_UPDATE_HOOKS] = hooks


def announce_update(
    app: web.Application, hosted: HostedDatabase, migration: dict[str, Any]
) -> None:
    """Send ``ModuleUpdated`` to every client of ``hosted`` (on the loop, after a deploy).

    The subscriptions the update ended were told so (``SubscriptionError``) while it ran,
    under the writer lock, and those messages were handed to the loop before the deploy
    returned; this one follows them, so a client that refetches the schema on it knows
    which of its subscriptions are gone.
    """
    offset = int(migration["tx_offset"])
    message = {"ModuleUpdated": {"tx_offset": offset, "cleared": bool(migration["cleared"])}}
    clients: set[WebSocketClient] = app[CLIENTS]
    for client in list(clients):
        if client.hosted is hosted:
            client.deliver(message, offset)


async def _close_clients(app: web.Application) -> None:
    open_clients = app[CLIENTS]
    clients = list(open_clients)
    for client in clients:
        client.drop(WSCloseCode.GOING_AWAY, "the server is shutting down")
    await asyncio.gather(*(client.wait_closed() for client in clients))


class _WebSocket(web.WebSocketResponse):
    """aiohttp's response, naming the size limit when it closes with 1009."""

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True
    ) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG and not message:
            limit = limits.client_message_bytes_max
            message = f"a message is larger than the limit ({limit} bytes)".encode()
        return await super().close(code=code, message=message, drain=drain)


async def subscribe(request: web.Request) -> web.StreamResponse:
    """Upgrade to a WebSocket client, after every check that can refuse it."""
    check_upgrade(request)
    identity, token = identify(request)
    hosted = request.app[REGISTRY].get(request.match_info["name"])
    anonymous = not (request.headers.get("Authorization") or "token" in request.query)
    rate_key = caller_key(request, anonymous, identity.hex())
    throttle = throttle_of(request)
    throttle.take("connections", anonymous, rate_key)  # RateLimited: 429 before upgrading
    connection_id = ConnectionId.random()
    try:
        await hosted.run(hosted.db.run_lifecycle, "client_connected", identity, connection_id)
    except CosmictronError as exc:
        raise PermissionDenied(f"client_connected refused the connection: {exc}") from None
    # aiohttp picks the first protocol the client offered that we speak: its preference.
    ws = _WebSocket(protocols=PROTOCOLS, max_msg_size=limits.client_message_bytes_max)
    client: WebSocketClient | None = None
    try:
        await ws.prepare(request)
        feed = await feed_for(request.app, hosted)
        client = WebSocketClient(
            ws,
            feed,
            identity,
            connection_id,
            request.app[QUEUE_MAX],
            request.app[QUEUE_BYTES_MAX],
            CODECS[ws.ws_protocol or PROTOCOLS[0]],
            request.transport,
        )
        client.limit_as(anonymous, rate_key, throttle)
        if request.app[REGISTRY].cluster is not None:
            client.forwarder = CallForwarder(request.app, hosted.name, token)
        guard = request.app.get(GUARD)
        connection = guard.connection_of(request) if guard is not None else None
        if connection is not None and guard is not None:
            client.watch_liveness(connection, guard.limits)
        request.app[CLIENTS].add(client)
        client.deliver(
            {
                "IdentityToken": {
                    "identity": identity.hex(),
                    "token": token,
                    "connection_id": connection_id.hex(),
                }
            },
            0,
        )
        if feed.stale_notice is not None:  # cluster mode: connected to a stale copy
            client.deliver(feed.stale_notice, 0)
        # In a task of its own: each frame then resumes only the client's coroutines, not
        # also the six of aiohttp's handler and the middlewares awaiting this one.
        await asyncio.create_task(client.run(), name=f"websocket {connection_id.hex()}")
    finally:
        if client is not None:
            request.app[CLIENTS].discard(client)
            await client.finish()
        try:
            await hosted.run(
                hosted.db.run_lifecycle, "client_disconnected", identity, connection_id
            )
        except (CosmictronError, RuntimeError) as exc:  # it raised; the database closed
            logger.warning("client_disconnected for %s failed: %s", identity.hex(), exc)
    return ws


def check_upgrade(request: web.Request) -> None:
    """Refuse (400) a request that is not a WebSocket upgrade offering a subprotocol of ours."""
    spoken = " or ".join(repr(p) for p in PROTOCOLS)
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise InvalidRequest(
            f"this route is a WebSocket: connect with a WebSocket client and the "
            f"subprotocol {spoken}"
        )
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    protocols = [p.strip() for p in offered.split(",") if p.strip()]
    if not any(p in PROTOCOLS for p in protocols):
        raise InvalidRequest(
            f"the WebSocket subprotocol must be {spoken} "
            f"(offered: {', '.join(protocols) or 'none'})"
        )


def identify(request: web.Request) -> tuple[Identity, str]:
    """The caller's identity and token; a client without a token gets a fresh pair.

    Raises:
        Unauthenticated: the token is malformed, not ours, or expired (401).
    """
    caller = caller_of(request)
    if caller == ANONYMOUS:
        identity = Identity.random()
        return identity, request.app[AUTHORITY].issue(identity)
    header = request.headers.get("Authorization")
    token = header.partition(" ")[2].strip() if header else request.query["token"]
    return caller, token


async def feed_for(app: web.Application, hosted: HostedDatabase) -> DatabaseFeed:
    """The database's feed, made on first use (it registers a commit listener)."""
    async with app[FEEDS_LOCK]:
        feed: DatabaseFeed | None = app[FEEDS].get(hosted.name)
        if feed is None or feed.hosted is not hosted:  # new, or deleted and re-created
            feed = await hosted.run(DatabaseFeed, hosted, asyncio.get_running_loop())
            if app[REGISTRY].cluster is not None:
                feed.stale = False  # until server/staleness.py finds otherwise
            app[FEEDS][hosted.name] = feed
        return feed
