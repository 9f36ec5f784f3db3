"""``kv_bucket`` when JetStream's answers go missing: a create that times out may still
have made the stream (CI: the lease bucket's create unanswered for 5 s on a loaded
machine, and the test's first lease failed). The stand-in below is nats-py's JetStream
context, the library's side of the wire, answering as a slow server does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

errors = pytest.importorskip("nats.errors", reason="nats-py is not installed: the cluster extra")
js_errors = pytest.importorskip("nats.js.errors", reason="nats-py is not installed")

from cosmictron.cluster.connection import (  # noqa: E402
    NatsConnection,
    SteadyBucket,
    bucket_values,
    kv_bucket,
    once_heard,
)
from cosmictron.testing.nats import NatsCluster  # noqa: E402


class SlowJetStream:
    """Creates the bucket on the first create but lets that answer time out; lookups
    before then find nothing; ``lookup_timeouts`` lookups go unanswered first."""

    def __init__(self, lookup_timeouts: int = 0) -> None:
        self.made = False
        self.creates = 0
        self.lookups = 0
        self.lookup_timeouts = lookup_timeouts
        self.leader_asked = 0

    async def key_value(self, name: str) -> Any:
        self.lookups += 1
        if self.lookup_timeouts:
            self.lookup_timeouts -= 1
            raise errors.TimeoutError
        if not self.made:
            raise js_errors.BucketNotFoundError
        return SimpleNamespace(name=name)

    async def create_key_value(self, config: Any) -> Any:
        self.creates += 1
        self.made = True
        raise errors.TimeoutError

    async def stream_info(self, stream: str) -> Any:
        self.leader_asked += 1
        return SimpleNamespace(cluster=SimpleNamespace(leader="n1"))


def test_a_create_that_went_unanswered_is_found_and_waited_for() -> None:
    js = SlowJetStream()
    bucket = asyncio.run(kv_bucket(js, "LEASES", 3))
    assert isinstance(bucket, SteadyBucket) and bucket.name == "LEASES"
    assert js.creates == 1  # not made twice: the second look found it
    assert js.leader_asked >= 1  # and, made by this call, used once its stream has a leader


def test_an_unanswered_lookup_is_asked_again() -> None:
    js = SlowJetStream(lookup_timeouts=2)
    js.made = True
    bucket = asyncio.run(kv_bucket(js, "LEASES", 3))
    assert bucket.name == "LEASES" and js.lookups == 3 and js.creates == 0
    assert js.leader_asked == 0  # an existing bucket is used as it is


class RefusingJetStream(SlowJetStream):
    """Refuses the first create as a settling cluster does (a peer counted offline)."""

    async def create_key_value(self, config: Any) -> Any:
        self.creates += 1
        if self.creates == 1:
            raise js_errors.BadRequestError(
                code=400, err_code=10005, description="no suitable peers for placement"
            )
        self.made = True
        return SimpleNamespace(name=config.bucket)


def test_a_refused_create_is_tried_again_and_waited_for() -> None:
    js = RefusingJetStream()
    bucket = asyncio.run(kv_bucket(js, "LEASES", 3))
    assert bucket.name == "LEASES" and js.creates == 2 and js.leader_asked >= 1


def test_silence_that_lasts_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    import cosmictron.cluster.connection as connection

    monkeypatch.setattr(connection, "BUCKET_LEADER_WAIT_S", 0.3)
    js = SlowJetStream(lookup_timeouts=10**9)
    with pytest.raises(TimeoutError):
        asyncio.run(kv_bucket(js, "LEASES", 3))


def test_bucket_values_lists_every_live_key_right_after_its_write(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    """The listing the catalogue and the node list use: each write acknowledged before is
    in it at once (no watcher lag), a deleted or purged key is not, an empty bucket is
    an empty dict (not an error)."""
    connection = NatsConnection(nats_cluster.urls, "lister").connect()
    try:

        async def scenario() -> list[dict[str, bytes]]:
            js = connection.js
            kv = await kv_bucket(js, "LISTED", 3)
            seen = [await bucket_values(js, kv, "LISTED")]
            for n in range(12):
                await kv.put(f"k{n}", f"v{n}".encode())
                seen.append(await bucket_values(js, kv, "LISTED"))
            await kv.delete("k3")
            await kv.purge("k5")
            seen.append(await bucket_values(js, kv, "LISTED"))
            return seen

        seen = connection.run(scenario(), 60.0)
    finally:
        connection.close()
    assert seen[0] == {}
    for n in range(12):
        assert seen[n + 1] == {f"k{i}": f"v{i}".encode() for i in range(n + 1)}
    assert seen[-1] == {f"k{i}": f"v{i}".encode() for i in range(12) if i not in (3, 5)}


def test_a_write_that_found_no_responder_is_tried_again_until_heard() -> None:
    """A publish to a stream this connection's server does not know of yet (nats-py's
    ``NoStreamResponseError``: CI, a snapshot's first chunk right after the store was
    made) is tried again; another error is raised at once."""
    tries = []

    async def publish() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise js_errors.NoStreamResponseError
        return "stored"

    assert asyncio.run(once_heard(publish)) == "stored" and len(tries) == 3

    async def refused() -> str:
        tries.append(1)
        raise js_errors.BadRequestError

    tries.clear()
    with pytest.raises(js_errors.BadRequestError):
        asyncio.run(once_heard(refused))
    assert len(tries) == 1


def test_a_write_nobody_hears_for_long_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    from cosmictron.cluster import connection

    monkeypatch.setattr(connection, "INTEREST_WAIT_S", 0.3)

    async def publish() -> None:
        raise errors.NoRespondersError

    with pytest.raises(errors.NoRespondersError):
        asyncio.run(once_heard(publish))
