"""Getting a ``Client``: which server, which token, which schema, then connect.

Everything here happens before (or beside) the WebSocket connection: choosing the
server URL (argument, ``$COSMICTRON_SERVER``, the CLI's saved default), the token saved
for it and the database's schema over HTTP (the cache and ``call`` decode by it;
``transport.fetch_schema``). A refused handshake
becomes the error class its HTTP status means, so ``connect`` raises the same classes
as an embedded ``Database`` would.

Not named ``connect.py``: the package exports ``connect`` on first use
(``cosmictron.lazy``), and a submodule of that name, once imported, would stand in the
package in place of the function.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import aiohttp

from cosmictron import names
from cosmictron.client.cache import RowFactory
from cosmictron.client.connection import Client
from cosmictron.client.replies import error_from_reply
from cosmictron.client.settings import Settings, normalise_server_url
from cosmictron.client.transport import cannot_connect, fetch_schema, wire_format


def resolve_server(url: str | None) -> str:
    """``url``, else ``$COSMICTRON_SERVER``, else the saved default, else the local default."""
    chosen = Settings.load().server_url(url, os.environ.get("COSMICTRON_SERVER"))
    return normalise_server_url(chosen)


def saved_token(url: str) -> str | None:
    """The token ``cosmictron-cli`` (or ``save_identity``) saved for the server ``url``."""
    saved = Settings.load().identities.get(url)
    return saved.token if saved else None


async def connect(
    database: str,
    *queries: str,
    server: str | None = None,
    token: str | None = None,
    use_saved_token: bool = True,
    row_types: Mapping[str, RowFactory] | None = None,
    protocol: str = "msgpack",
    ledger_key: str | None = None,
) -> Client:
    """Connect to ``database`` and, given ``queries``, subscribe to them.

    Args:
        database: the database's name.
        queries: SQL queries to subscribe to (``SELECT * FROM message``); more later with
            ``Client.subscribe``.
        server: the server URL (default: ``$COSMICTRON_SERVER``, the CLI's saved default,
            ``http://127.0.0.1:3000``).
        token: connect as this token's identity.
        use_saved_token: without ``token``, use the one saved for this server (by
            ``cosmictron-cli identity new`` or ``Client.save_identity``); if there is none,
            or this is False, the server makes a new identity (``client.token``).
        row_types: per table, a class (or function) the cache builds rows with, called
            with the columns as keywords: the dataclasses ``cosmictron-cli generate``
            writes. By default rows are ``Row`` objects.
        protocol: ``"msgpack"`` (``v1.msgpack.cosmictron``, the default) or ``"json"``
            (``v1.json.cosmictron``): the same messages; the client's API is the same.
        ledger_key: the database's public key (``name+id+base64``, as ``cosmictron-cli
            verify --json`` and the audit checkpoint route list it): subscribe with the
            ledger opt-in and verify every update and checkpoint as it arrives
            (``client.ledger``; a failure goes to ``on_error`` and ``client.ledger_failure``).

    Raises:
        InvalidRequest: a name no database could have (``cosmictron.names``).
        NotFound: no such database. ConnectionLost: no server answered.
        SubscriptionError: a query is bad.
    """
    names.check_database(database)  # InvalidRequest before anything is sent
    wire = wire_format(protocol)
    url = resolve_server(server)
    if token is None and use_saved_token:
        token = saved_token(url)
    async with aiohttp.ClientSession() as http:
        schema = await fetch_schema(http, url, database, token)
    client = Client(url, database, schema, token, row_types, wire, ledger_key)
    try:
        await client.start()
    except aiohttp.WSServerHandshakeError as exc:
        raise error_from_reply(_code_for_status(exc.status), exc.message) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise cannot_connect(url, exc) from None
    if queries:
        try:
            await client.subscribe(*queries)
        except BaseException:
            await client.close()
            raise
    return client


def _code_for_status(status: int) -> str:
    return {401: "unauthenticated", 403: "permission_denied", 404: "not_found"}.get(
        status, "invalid_request"
    )
