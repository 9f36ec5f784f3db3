"""WebSocket subscribers are told when their view goes stale, and when it is current again
(issue 19, part 6: "reads keep serving from the last applied offset and say so").

Three NATS servers and three nodes, real processes (``test_followers.three_nodes``): ``a``
leads ``app``, ``b`` and ``c`` follow it. With two of the three NATS servers killed no
stream or bucket has a quorum: a subscriber on a follower gets ``Staleness`` with
``stale: true``, the offset its rows are frozen at and since when, and keeps its rows; so
does a subscriber on the leader (its lease renewals and acks stop); a client that
connects meanwhile is told at once and its ``SubscribeApplied`` says ``stale: true``; a
call over a stale node's WebSocket (follower or leader) fails as HTTP's 503 does,
``cluster_unavailable`` with a retry hint. Once a NATS server is back, the follower's
subscribers are told ``stale: false`` and then get the next committed transaction at the
leader's offset, on both subprotocols (the Python SDK speaks msgpack, and its ``stale``
and ``on_staleness`` follow).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp

from cosmictron.client import Client, connect
from cosmictron.server.staleness import CLOSE_REOPENED
from cosmictron.testing.nats import NatsCluster
from cosmictron.values import Timestamp
from tests.cluster.test_followers import (
    _subscribe_on,
    call,
    select,
    stop_all,
    three_nodes,
    wait_for,
)
from tests.server.conftest import Server, strict_loads
from tests.server.test_websocket import Client as RawClient

ITEMS = "SELECT * FROM item"


class Frames:
    """A raw client's frames, read as they come (so the client answers the server's pings
    however long the test looks elsewhere); ``next(kind)`` takes the oldest not taken of
    that kind, and ``seen`` keeps every frame, in order."""

    def __init__(self, client: RawClient) -> None:
        self.ws = client.ws
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.closed: int | None = None
        self._taken: set[int] = set()
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:  # ends at the close
            assert frame.type is aiohttp.WSMsgType.TEXT, (frame.type, frame.data)
            ((got, body),) = strict_loads(frame.data).items()
            self.seen.append((got, body))
            self._arrived.set()
        self.closed = self.ws.close_code or 0
        self._arrived.set()

    async def next(self, kind: str, within_s: float = 30.0) -> dict[str, Any] | int:
        """The next frame of ``kind`` (its body), or the close code if the server closed."""
        deadline = time.monotonic() + within_s
        while True:
            self._arrived.clear()
            for at, (got, body) in enumerate(self.seen):
                if got == kind and at not in self._taken:
                    self._taken.add(at)
                    return body
            if self.closed is not None:
                return self.closed
            left = deadline - time.monotonic()
            assert left > 0, f"no {kind} within {within_s}s; seen {self.seen}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def updates_through(
        self, offset: int, within_s: float = 30.0
    ) -> list[dict[str, Any]] | None:
        """Every ``TransactionUpdate`` from here on up to the one at ``offset``; None when
        the server closed the socket for a role switch first (``CLOSE_REOPENED``)."""
        updates: list[dict[str, Any]] = []
        while not updates or updates[-1]["tx_offset"] < offset:
            update = await self.next("TransactionUpdate", within_s)
            if update == CLOSE_REOPENED:
                return None
            assert isinstance(update, dict), f"closed ({update}) before offset {offset}"
            updates.append(update)
        return updates


def last_placed_follower(leader: Server, nodes: list[Server]) -> Server:
    """The follower last in line to take the lead over (placement's grace: a node not
    placed at all waits longest, then the later placed ones): a failover as the quorum
    comes back, when the lease may look silent, is not what this test is about, so the
    subscribers here are on the node least likely to take it."""
    (database,) = leader.request("GET", "/v1/cluster").body["databases"]
    by_id = dict(zip(("a", "b", "c"), nodes, strict=True))
    placed = [node_id for node_id in database["placement"] if node_id in by_id]
    unplaced = [node_id for node_id in by_id if node_id not in placed]
    order = [*unplaced, *reversed(placed)]
    return by_id[next(node_id for node_id in order if node_id != database["leader"])]


async def _wait_until(what: str, check: Any, within_s: float = 30.0, about: Any = None) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {within_s}s ({about})"
        await asyncio.sleep(0.05)


def test_subscribers_are_told_their_view_is_stale_while_the_quorum_is_lost_and_current_after(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a, _b, _c = nodes = three_nodes(tmp_path, nats_cluster)
    try:
        status, body, _ = call(a, 1)
        assert status == 200, body
        offset = body["tx_offset"]
        follower = last_placed_follower(a, nodes)
        assert select(follower, {"Cosmictron-Min-Offset": str(offset)})[0] == [1]

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                on_follower, applied = await _subscribe_on(follower, session)
                assert applied["stale"] is False and applied["tx_offset"] == offset, applied
                on_leader, applied = await _subscribe_on(a, session)
                assert applied["stale"] is False, applied
                frames, leader_frames = Frames(on_follower), Frames(on_leader)
                sdk = await connect(
                    "app", ITEMS, server=follower.url, use_saved_token=False
                )  # msgpack
                heard: list[tuple[bool, int, Timestamp | None]] = []
                sdk.on_staleness(lambda *told: heard.append(told))
                try:
                    await lost_and_back(session, frames, leader_frames, sdk, heard)
                finally:
                    await sdk.close()

        async def lost_and_back(
            session: aiohttp.ClientSession,
            frames: Frames,
            leader_frames: Frames,
            sdk: Client,
            heard: list[tuple[bool, int, Timestamp | None]],
        ) -> None:
            assert not sdk.stale and [row.id for row in sdk.table("item").iter()] == [1]
            killed_at = time.time()
            await asyncio.to_thread(nats_cluster.kill, 1)
            await asyncio.to_thread(nats_cluster.kill, 2)  # one of three: no quorum
            told = await frames.next("Staleness")
            assert told == {"stale": True, "tx_offset": offset, "since": told["since"]}, told
            since = Timestamp.parse(str(told["since"])).micros_since_epoch / 1e6
            assert killed_at - 5.0 <= since <= time.time(), (killed_at, told)
            print(f"quorum lost: stale told after {time.time() - killed_at:.1f}s")
            # The leader's subscriber too (its lease renewals and acks stopped), unless
            # the leader was deposed meanwhile (its clients are closed, to resume): neither
            # an outage nor a renewal whose reply was lost moves the lease any more
            # (tests/cluster/test_leadership.py), but a leader that cannot renew for a
            # TTL while a replica's requests still reach a quorum does lose it.
            told = await leader_frames.next("Staleness")
            deposed = told == CLOSE_REOPENED
            assert deposed or (isinstance(told, dict) and told["stale"] is True), told
            assert deposed or told["tx_offset"] == offset, told  # type: ignore[index]
            # A client that connects meanwhile is told at once; its rows say stale too.
            ws = await session.ws_connect(
                f"{follower.url}/v1/database/app/subscribe", protocols=("v1.json.cosmictron",)
            )
            late = RawClient(ws)
            await late.expect("IdentityToken")
            assert (await late.expect("Staleness"))["stale"] is True
            applied = await late.subscribe(1, ITEMS)
            assert applied["stale"] is True and applied["tx_offset"] == offset, applied
            assert applied["tables"][0]["rows"] == [{"id": 1}]
            await ws.close()
            # A call over a stale node's WebSocket fails as HTTP's does, with a retry hint:
            # on the follower (forwarded to the leader) and on the leader itself (its
            # record is never acknowledged).
            for n, over in ((2, frames), (3, leader_frames)):
                if over.closed == CLOSE_REOPENED:
                    continue  # the leader was deposed (see above)
                with contextlib.suppress(ConnectionResetError):  # deposed as it is sent
                    request_id = await RawClient(over.ws).send(
                        "CallReducer", reducer="add", args=[n]
                    )
                result = await over.next("ReducerResult", 60.0)
                if over is leader_frames and result == CLOSE_REOPENED:
                    continue
                assert isinstance(result, dict) and result["request_id"] == request_id, result
                assert result["status"] == "failed", result
                assert result["error_code"] == "cluster_unavailable", result
                assert result["retry_after_s"] > 0, result
            # The SDK heard it too, and its rows stay those of the frozen offset.
            await _wait_until(
                "the SDK says stale", lambda: sdk.stale, about=(sdk.statistics(), heard)
            )
            assert [row.id for row in sdk.table("item").iter()] == [1]
            assert heard[0][:2] == (True, offset) and heard[0][2] is not None, heard

            await asyncio.to_thread(nats_cluster.restart, 1)  # a quorum again
            back_at = time.time()
            # The follower may take the lease over as the quorum comes back (one NATS
            # server still down leaves a bare quorum, and a leader whose renewals go
            # unanswered for a TTL loses the lease to a replica that reaches the quorum:
            # CI saw it under load). Its copy then reopens as the leader's and its clients
            # are closed with 1012, to resume: the SDK below, which resumes, checks the
            # rest. Any other close, or no word within the minute, fails.
            told = await frames.next("Staleness", 60.0)
            if told != CLOSE_REOPENED:
                assert isinstance(told, dict), f"closed ({told}) instead of told current"
                assert told["stale"] is False and told["since"] is None, told
                assert told["tx_offset"] >= offset, told
            print(f"quorum back: current told after {time.time() - back_at:.1f}s ({told})")
            # The leader's subscriber is told too, unless the lease moved as the quorum
            # came back (a silent lease may be taken over): then it is closed, to resume.
            told = await leader_frames.next("Staleness", 60.0)
            assert told == CLOSE_REOPENED or (isinstance(told, dict) and not told["stale"])

            # The next committed transaction reaches the subscribers at the leader's
            # offset (the calls refused above may land too: their outcome was unknown).
            attempts = iter(range(4, 10_000))  # each attempt a new item: none is unknown

            def committed() -> tuple[int, int] | None:
                n = next(attempts)
                status, body, _ = call(follower, n)
                return (n, body["tx_offset"]) if status == 200 else None

            n, last = await asyncio.to_thread(wait_for, "a call commits again", committed, 60.0)
            updates = await frames.updates_through(last)  # None: the follower took over
            if updates is not None:
                assert updates[-1]["tx_offset"] == last, updates
                assert updates[-1]["tables"][0]["inserts"] == [{"id": n}], updates
            await sdk.wait_applied(last)
            assert sdk.tx_offset == last, sdk.statistics()
            assert n in {row.id for row in sdk.table("item").iter()}
            # With one NATS server still down, the two left are a bare quorum: a Raft
            # hiccup as the restarted one catches up can take the stream's quorum away
            # again for a few seconds, and then the SDK is rightly told stale once more
            # (seen under load). Each word is a change, and the last one says current.
            await _wait_until(
                "the SDK says current", lambda: not sdk.stale, about=(sdk.statistics(), heard)
            )
            changes = [told[0] for told in heard]
            assert changes[:2] == [True, False] and changes[-1] is False, heard
            assert all(one != the_next for one, the_next in pairwise(changes)), heard
            assert heard[1][1] >= offset and heard[1][2] is None, heard

        asyncio.run(scenario())
    finally:
        stop_all(nodes)
