"""The SDK's cache of subscribed queries whose rows are not one table's, on a real server.

Such a result is cached under the query's text (``client.table(query)``), keyless, its
values decoded with the column types ``SubscribeApplied`` gives; it follows every
transaction, and it is dropped when a new subscription no longer has it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from cosmictron.client import connect
from cosmictron.errors import NotFound
from cosmictron.values import Identity
from tests.client.conftest import Server

PER_OWNER = "SELECT owner, SUM(qty) AS total, COUNT(*) FROM item GROUP BY owner"
NAMES = "SELECT name FROM item WHERE qty > 2 UNION SELECT kind FROM log"


def rows(cache: Any) -> Counter[tuple[tuple[str, Any], ...]]:
    return Counter(tuple(sorted(dict(row).items())) for row in cache.iter())


def test_the_cache_holds_query_results_under_their_text(app: Server) -> None:
    async def scenario() -> None:
        async with await connect("shop", PER_OWNER, NAMES, server=app.url) as client:
            inserted: list[tuple[str, Any]] = []
            client.on_insert(lambda table, row: inserted.append((table, dict(row))))
            assert client.table(PER_OWNER).count() == 0
            await client.call("put", 1, "one", 4)
            await client.call("put", 2, "two", 1)
            await client.call("log", "seen", 1)
            per_owner = client.table(PER_OWNER)
            [row] = per_owner.iter()
            assert isinstance(row.owner, Identity) and row.owner == client.identity
            assert (row.total, row["COUNT(*)"]) == (5, 2)
            assert rows(client.table(NAMES)) == Counter([(("name", "one"),), (("name", "seen"),)])
            assert (PER_OWNER, {"owner": client.identity, "total": 4, "COUNT(*)": 1}) in inserted
            await client.call("remove", 1)
            assert rows(client.table(NAMES)) == Counter([(("name", "seen"),)])
            assert [r.total for r in client.table(PER_OWNER).iter()] == [1]
            # The cache equals a fresh query of each.
            for query in (PER_OWNER, NAMES):
                fresh = await client.sql(query)
                cached = [
                    {k: v.hex() if isinstance(v, Identity) else v for k, v in dict(r).items()}
                    for r in client.table(query).iter()
                ]
                assert Counter(map(repr, map(sorted, map(dict.items, fresh)))) == Counter(
                    map(repr, map(sorted, map(dict.items, cached)))
                )
            # A new subscription without it drops its cache.
            await client.subscribe("SELECT * FROM item")
            with pytest.raises(NotFound):
                client.table(PER_OWNER)

    asyncio.run(scenario())
