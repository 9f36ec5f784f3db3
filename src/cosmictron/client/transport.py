"""The client's wire: opening the WebSocket and the one HTTP request made beside it.

The protocol's constants live here, where the socket is opened: the subprotocol names
and their encodings (``WireFormat``: msgpack by default, JSON selectable), the
heartbeat, the reply timeout and the reconnect backoff (``connection.py`` runs the
loop that uses it). ``fetch_schema`` is the one HTTP request made beside the socket (at
connect, after a module update, after a reconnect). Both turn a server's error document
into the error class its ``code`` names (``replies.py``), so a network client raises what
an embedded one does.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp

from cosmictron import bounded_msgpack
from cosmictron.client.replies import error_from_reply
from cosmictron.client.schema import DatabaseSchema
from cosmictron.errors import ConnectionLost, InvalidRequest
from cosmictron.values import json_form

PROTOCOL = "v1.json.cosmictron"
"""The JSON WebSocket subprotocol (docs/reference/websocket.md): the CLI's, and the SDK's
with ``protocol="json"``."""
MSGPACK_PROTOCOL = "v1.msgpack.cosmictron"
"""The msgpack WebSocket subprotocol: the SDK's default (smaller frames, cheaper to encode
and decode on both sides, bytes as ``bin``)."""


@dataclass(frozen=True)
class WireFormat:
    """How the SDK encodes what it sends and decodes what it receives on one subprotocol."""

    protocol: str
    binary: bool
    form: Callable[[Any], Any]
    encode: Callable[[Any], str | bytes]
    decode: Callable[[str | bytes], Any]


def _msgpack_decode(data: str | bytes) -> Any:
    return bounded_msgpack.loads(data if isinstance(data, bytes) else data.encode(), "a message")


WIRE_FORMATS = {
    # Integers go out exactly (the server parses JSON numbers exactly; an SQL parameter
    # has no column type that would read a decimal string back as an integer).
    "json": WireFormat(
        PROTOCOL, False, partial(json_form, exact_ints=True), json.dumps, json.loads
    ),
    "msgpack": WireFormat(
        MSGPACK_PROTOCOL, True, bounded_msgpack.form, bounded_msgpack.dumps, _msgpack_decode
    ),
}
"""The SDK's ``protocol=`` choices."""


def wire_format(protocol: str) -> WireFormat:
    """The ``WireFormat`` named ``"msgpack"`` or ``"json"`` (or by its subprotocol)."""
    for name, chosen in WIRE_FORMATS.items():
        if protocol in (name, chosen.protocol):
            return chosen
    raise InvalidRequest(f"unknown protocol {protocol!r}: use 'msgpack' (the default) or 'json'")


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
    http: aiohttp.ClientSession,
    url: str,
    database: str,
    token: str | None,
    wire: WireFormat = WIRE_FORMATS["json"],
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """Open the subscribe socket of ``database`` and read its ``IdentityToken`` message."""
    scheme = "wss" if url.startswith("https:") else "ws"
    address = scheme + url.removeprefix("https").removeprefix("http")
    address += f"/v1/database/{database}/subscribe"
    ws = await http.ws_connect(
        address, protocols=(wire.protocol,), headers=bearer(token), heartbeat=HEARTBEAT_S
    )
    frame = await ws.receive(timeout=REPLY_TIMEOUT_S)
    if frame.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
        raise ConnectionLost(f"the server closed the connection first: {frame.data!r}")
    return ws, wire.decode(frame.data)["IdentityToken"]


async def fetch_schema(
    http: aiohttp.ClientSession, url: str, database: str, token: str | None
) -> DatabaseSchema:
    """The database's schema, from ``GET /v1/database/{name}/schema``, as ``token``'s
    identity sees it (private tables are listed to their owner only).

    Raises:
        NotFound: no such database. ConnectionLost: no server answered.
    """
    try:
        schema_url = f"{url}/v1/database/{database}/schema"
        async with http.get(schema_url, headers=bearer(token)) as response:
            document = await response.json(content_type=None)
    except (aiohttp.ClientError, OSError) as exc:
        raise cannot_connect(url, exc) from None
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        error = document["error"]
        raise error_from_reply(
            error.get("code"), str(error.get("message")), None, error.get("traceback")
        )
    return DatabaseSchema.from_json(document)


def cannot_connect(url: str, exc: BaseException) -> ConnectionLost:
    """A failed connection in words with a next step, not aiohttp's text (issue 16): the
    same reasons and hint as the CLI's (``cli/client.py``)."""
    cause = getattr(exc, "os_error", None) or exc
    if isinstance(cause, ConnectionRefusedError):
        reason = (
            "connection refused (is the server running? start it with `cosmictron-cli start`, "
            "or pass server=URL or set COSMICTRON_SERVER)"
        )
    elif isinstance(cause, socket.gaierror):
        reason = f"unknown host ({cause.strerror}); check the server URL"
    elif isinstance(cause, TimeoutError):
        reason = "timed out"
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        reason = "the server closed the connection (is it a Cosmictron server?)"
    else:
        reason = str(getattr(cause, "strerror", None) or cause) or type(cause).__name__
    return ConnectionLost(f"cannot connect to {url}: {reason}")
