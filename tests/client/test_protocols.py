"""The SDK on both WebSocket protocols: msgpack by default, JSON when asked; same API.

The same calls over each protocol leave the same rows in the cache (bytes, identities,
timestamps decoded alike) and give the same ``sql`` rows, in their JSON forms.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cosmictron.client import MSGPACK_PROTOCOL, PROTOCOL, connect
from cosmictron.errors import InvalidRequest
from tests.client.conftest import QUERIES, Server


def test_both_protocols_give_the_same_cache_and_rows(app: Server) -> None:
    async def session(protocol: str, first_id: int) -> tuple[list[Any], list[Any], str]:
        async with await connect("shop", *QUERIES, server=app.url, protocol=protocol) as client:
            assert await client.call("put", first_id, f"p{first_id}", 7) == 7
            item = client.table("item").find(first_id)
            assert item.blob == b"\x07" and item.owner == client.identity
            rows = await client.sql(f"SELECT id, blob, qty FROM item WHERE id = {first_id}")
            cached = sorted(
                (row.id, row.name, row.blob, row.qty, row.note)
                for row in client.table("item").iter()
            )
            return cached, rows, client.wire.protocol

    msgpack_cache, msgpack_rows, spoken = asyncio.run(session("msgpack", 1))
    assert spoken == MSGPACK_PROTOCOL
    json_cache, json_rows, spoken = asyncio.run(session("json", 2))
    assert spoken == PROTOCOL
    assert msgpack_rows == [{"id": 1, "blob": "07", "qty": 7}]  # JSON forms either way
    assert json_rows == [{"id": 2, "blob": "07", "qty": 7}]
    assert json_cache == [*msgpack_cache, (2, "p2", b"\x07", 7, None)]


def test_the_default_is_msgpack_and_an_unknown_protocol_is_refused(app: Server) -> None:
    async def scenario() -> str:
        async with await connect("shop", server=app.url) as client:
            return client.wire.protocol

    assert asyncio.run(scenario()) == MSGPACK_PROTOCOL
    with pytest.raises(InvalidRequest, match="unknown protocol 'bson'"):
        asyncio.run(connect("shop", server=app.url, protocol="bson"))
