"""The WebSocket side of ``subscribe``: DESIGN.md §5's ``v1.json.cosmictron`` protocol.

aiohttp is the client here because it is already a dependency (the server runs on it)
and the standard library has no WebSocket client. The CLI needs only one direction of
the protocol: send one ``Subscribe`` and yield every message the server sends, each a
JSON object with a single key naming its kind (``IdentityToken``, ``SubscribeApplied``,
``TransactionUpdate``, ``SubscriptionError``, …).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import aiohttp

from cosmictron.cli.client import CannotConnect, HandshakeRefused, quote
from cosmictron.client import HEARTBEAT_S, PROTOCOL

# The subprotocol and the heartbeat are the SDK's (``client/transport.py``): one
# protocol, one ping interval (this module used its own 30 s until issue 17).

REQUEST_ID = 1
QUERY_ID = 1


async def subscribe_messages(
    url: str, database: str, token: str | None, queries: Sequence[str]
) -> AsyncGenerator[dict[str, Any], None]:
    """Subscribe to ``queries`` in ``database`` and yield every server message.

    Raises:
        HandshakeRefused: the server refused the upgrade (no route, no database, 401).
        CannotConnect: no server, or the connection dropped or was closed by the server.
    """
    scheme = "wss" if url.startswith("https:") else "ws"
    address = scheme + url.removeprefix("https").removeprefix("http")
    address += f"/v1/database/{quote(database)}/subscribe"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    subscribe = {
        "Subscribe": {
            "request_id": REQUEST_ID,
            "query_id": QUERY_ID,
            "query_strings": list(queries),
        }
    }
    async with aiohttp.ClientSession() as http:
        try:
            socket = await http.ws_connect(
                address, protocols=(PROTOCOL,), headers=headers, heartbeat=HEARTBEAT_S
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise HandshakeRefused(exc.status, "handshake_refused", exc.message) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise CannotConnect(f"cannot connect to {url}: {exc}") from None
        async with socket:
            await socket.send_json(subscribe)
            async for message in socket:
                if message.type == aiohttp.WSMsgType.TEXT:
                    yield _decode(message.data, url)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    raise CannotConnect(f"the connection to {url} broke: {socket.exception()}")
            reason = f"code {socket.close_code}" if socket.close_code is not None else "no code"
            raise CannotConnect(f"the server at {url} closed the subscription ({reason})")


def _decode(text: str, url: str) -> dict[str, Any]:
    try:
        message = json.loads(text)
    except ValueError:
        raise CannotConnect(f"{url} sent a frame that is not JSON: {text[:80]!r}") from None
    if not isinstance(message, dict) or len(message) != 1:
        raise CannotConnect(f"{url} sent a message without a single kind: {text[:80]!r}")
    return message
