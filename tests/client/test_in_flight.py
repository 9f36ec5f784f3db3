"""The SDK's table of replies in flight is bounded by ``limits.sdk_requests_in_flight_max``.

Past the bound a request waits, unsent, for a reply to free a slot: nothing is refused,
nothing is sent twice, and every slot comes back when replies arrive, when a request is
discarded, and when the connection drops (``fail_all``).
"""

from __future__ import annotations

import asyncio

import pytest

from cosmictron import limits
from cosmictron.client import connect
from cosmictron.client.in_flight import RepliesInFlight
from cosmictron.errors import ConnectionLost
from tests.client.conftest import QUERIES, Server


def test_a_request_past_the_bound_waits_for_a_reply() -> None:
    async def scenario() -> None:
        table = RepliesInFlight(capacity=2)
        opened = []
        for _ in range(2):
            await table.reserve()
            opened.append(table.open())
        third = asyncio.create_task(table.reserve())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not third.done(), "a third request got a slot in a table of two"
        assert len(table) == 2
        (first_id, first_waiter), _ = opened
        table.resolve(first_id, {"request_id": first_id})
        assert first_waiter.result() == {"request_id": first_id}
        await asyncio.wait_for(third, 5)  # the reply freed its slot
        request_id, _ = table.open()
        assert request_id not in (first_id, opened[1][0]) and len(table) == 2
        assert table.peak == 2

    asyncio.run(scenario())


def test_dropping_the_connection_frees_every_slot() -> None:
    async def scenario() -> None:
        table = RepliesInFlight(capacity=1)
        await table.reserve()
        request_id, waiter = table.open()
        table.fail_all("the connection to the server was lost")
        with pytest.raises(ConnectionLost, match="may not have run"):
            await waiter
        assert len(table) == 0 and request_id not in table
        await asyncio.wait_for(table.reserve(), 5)  # the slot came back
        table.release()
        table.resolve(request_id, {})  # a late reply to nobody is dropped
        assert len(table) == 0

    asyncio.run(scenario())


def test_the_client_crosses_its_bound_and_every_call_completes(
    app: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty calls at once through a table of three: all answer, at most three wait."""
    monkeypatch.setattr(limits, "sdk_requests_in_flight_max", 3)

    async def scenario() -> None:
        async with await connect("shop", *QUERIES, server=app.url) as client:
            results = await asyncio.gather(
                *(client.call("put", n, f"item {n}", n) for n in range(1, 41))
            )
            assert results == list(range(1, 41))
            assert client.table("item").count() == 40
            in_flight = client._in_flight
            assert in_flight.capacity == 3
            assert in_flight.peak == 3, "forty calls at once never filled a table of three"
            assert len(in_flight) == 0

    asyncio.run(scenario())
