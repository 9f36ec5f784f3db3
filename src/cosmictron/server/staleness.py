"""Cluster mode: a database's WebSocket clients are told when what this node serves of it
goes stale, and when it is current again.

Issue 19, part 6: with NATS's quorum lost, reads keep serving the last applied offset and
say so. Each SQL reply over HTTP says it (``Cosmictron-Stale``, ``server/forwarding.py``);
a WebSocket client, whose view is pushed rather than asked for, gets a ``Staleness``
message (docs/reference/websocket.md): ``stale: true`` with the offset its view is frozen
at and since when, then ``stale: false`` once the node is in touch again. What "stale"
means is the cluster layer's rule (``DatabaseRegistry.stale_since``): a replica whose
stream has not answered with a quorum for ``follower.STALE_AFTER_S``, a leader whose
lease renewals have not gone through, nor its log been acknowledged, for as long. Going
stale is an absence of news, so nothing announces it: a task polls, every ``POLL_S``,
each database that has WebSocket clients here (its ``DatabaseFeed``) and tells its
clients of each change.

The same round closes (``CLOSE_REOPENED``) the clients of a copy this node no longer
serves: when a node takes the lead of a database it followed, or follows one it led, it
closes that copy and opens the database again, and the clients of the closed copy would
otherwise wait for updates that never come. They reconnect and resume from their last
offset, as after any dropped connection.

Order. A change is made under the database's writer lock (``DatabaseFeed.stale``, which
every ``SubscribeApplied`` reads there) and handed to the event loop from there, as a
transaction's updates are: a client gets it after every update up to the offset it
names, and its ``SubscribeApplied``s agree with the ``Staleness`` messages around them.
The offset is the last one whose messages may be sent (confirmed reads: the applied one
on a replica, the acknowledged one on a leader), and the message goes ahead of any queued
one of a later transaction (``WebSocketClient.deliver_ahead``): on a leader without a
quorum those wait for acknowledgements that may come only when the outage ends. A client
that connects while its database is stale is told right after its ``IdentityToken``
(``server/websocket.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import Any

from aiohttp import web

from cosmictron.datastore import Datastore
from cosmictron.server.feed import DatabaseFeed
from cosmictron.server.protocol import staleness
from cosmictron.server.routes import REGISTRY
from cosmictron.server.websocket import CLIENTS
from cosmictron.server.websocket_client import WebSocketClient

logger = logging.getLogger(__name__)

POLL_S = 0.25
"""How often each database with WebSocket clients here is checked for a change."""

CLOSE_REOPENED = 1012
"""Close code (RFC 6455's "service restart") of a client whose database this node closed
and opened again in another role: it took the lead, or follows the new leader."""
REOPENED = "this node reopened the database (its leader changed): reconnect to resume"
"""The close reason that goes with it: a client resumes from its last offset."""

WATCH: web.AppKey[list[asyncio.Task[None]]] = web.AppKey("staleness_watch", list)


def setup(app: web.Application) -> None:
    """In cluster mode, watch the databases' staleness while the server runs."""
    if app[REGISTRY].cluster is None:
        return
    app[WATCH] = []

    async def start(app: web.Application) -> None:
        app[WATCH].append(asyncio.create_task(_watch(app), name="staleness watch"))

    async def stop(app: web.Application) -> None:
        for task in app[WATCH]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


async def _watch(app: web.Application) -> None:
    registry = app[REGISTRY]
    clients: set[WebSocketClient] = app[CLIENTS]
    while True:
        await asyncio.sleep(POLL_S)
        feeds: dict[DatabaseFeed, list[WebSocketClient]] = {}
        for client in clients:
            feeds.setdefault(client.feed, []).append(client)
        for feed, its_clients in feeds.items():
            hosted = feed.hosted
            if registry.current(hosted.name) is not hosted:
                for client in its_clients:  # the copy they read is closed: no word would come
                    client.drop(CLOSE_REOPENED, REOPENED)
                continue
            since = registry.stale_since(hosted)
            if (since is not None) == feed.stale:
                continue
            try:
                await hosted.run(hosted.db.read, partial(_turn, app, feed, since))
            except Exception as exc:  # closed meanwhile: the next round drops its clients
                logger.debug("staleness of %r not announced: %r", hosted.name, exc)


def _turn(app: web.Application, feed: DatabaseFeed, since: float | None, _: Datastore) -> None:
    """Under the writer lock: record the change and hand its message to the loop."""
    db = feed.hosted.db
    feed.stale = since is not None
    offset = min(db.tx_offset, db.durable_offset)
    message = staleness(feed.stale, offset, since)
    feed.loop.call_soon_threadsafe(_tell, app, feed, message)


def _tell(app: web.Application, feed: DatabaseFeed, message: dict[str, Any]) -> None:
    """On the loop: every client of the feed's database here gets ``message``."""
    feed.stale_notice = message if message["Staleness"]["stale"] else None
    clients: set[WebSocketClient] = app[CLIENTS]
    for client in list(clients):
        if client.feed is feed:
            client.deliver_ahead(message)  # not behind updates the quorum never acked
