"""The client's wire: opening the WebSocket and the one HTTP request made beside it.

The protocol's constants live here, where the socket is opened: the subprotocol name,
the heartbeat, the reply timeout and the reconnect backoff (``connection.py`` runs the
loop that uses it). ``fetch_schema`` is the one HTTP request made beside the socket (at
connect, after a module update, after a reconnect). Both turn a server's error document
into the error class its ``code`` names (``replies.py``), so a network client raises what
an embedded one does.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from cosmictron.client.replies import error_from_reply
from cosmictron.client.schema import DatabaseSchema
from cosmictron.errors import ConnectionLost

PROTOCOL = "v1.json.cosmictron"
"""The WebSocket subprotocol spoken (docs/reference/websocket.md); the CLI's too."""
HEARTBEAT_S = 15.0
"""Ping interval, so a dead connection is noticed while no transaction arrives (the
SDK's and the CLI's ``subscribe``: one idea, one value)."""
RECONNECT_DELAY_S_MIN = 0.05
RECONNECT_DELAY_S_MAX = 2.0
"""Backoff between reconnect attempts: doubling from the minimum up to the maximum."""
REPLY_TIMEOUT_S = 60.0
"""How long ``call`` and ``sql`` wait for their reply before giving up."""


def bearer(token: str | None) -> dict[str, str]:
    """The ``Authorization`` header for ``token`` (none without one: a new identity)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


async def open_socket(
    http: aiohttp.ClientSession, url: str, database: str, token: str | None
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """Open the subscribe socket of ``database`` and read its ``IdentityToken`` message."""
    scheme = "wss" if url.startswith("https:") else "ws"
    address = scheme + url.removeprefix("https").removeprefix("http")
    address += f"/v1/database/{database}/subscribe"
    ws = await http.ws_connect(
        address, protocols=(PROTOCOL,), headers=bearer(token), heartbeat=HEARTBEAT_S
    )
    first = await ws.receive_json(timeout=REPLY_TIMEOUT_S)
    return ws, first["IdentityToken"]


async def fetch_schema(http: aiohttp.ClientSession, url: str, database: str) -> DatabaseSchema:
    """The database's schema, from ``GET /v1/database/{name}/schema``.

    Raises:
        NotFound: no such database. ConnectionLost: no server answered.
    """
    try:
        async with http.get(f"{url}/v1/database/{database}/schema") as response:
            document = await response.json(content_type=None)
    except (aiohttp.ClientError, OSError) as exc:
        raise ConnectionLost(f"cannot connect to {url}: {exc}") from None
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        error = document["error"]
        raise error_from_reply(error.get("code"), str(error.get("message")))
    return DatabaseSchema.from_json(document)
