"""The client's table of requests awaiting their reply, bounded.

Every request the client sends (a reducer call, a one-off query, a subscribe) gets a
``request_id`` and a future here; the reply with that id resolves it. The table holds at
most ``limits.sdk_requests_in_flight_max`` entries: a request past it waits (without
sending anything) until a reply frees a slot, so a program that fires requests faster
than the server answers them is slowed down rather than growing the table without bound.
Nothing is refused and nothing is sent twice.

When the connection drops, ``fail_all`` fails every entry with ``ConnectionLost`` and
frees its slot: the replies will never come (a reducer call is never resent).
"""

from __future__ import annotations

import asyncio
from typing import Any

from cosmictron import limits
from cosmictron.errors import ConnectionLost

Reply = dict[str, Any]


class RepliesInFlight:
    """Request ids mapped to the futures their replies resolve, at most ``capacity``."""

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = limits.sdk_requests_in_flight_max if capacity is None else capacity
        assert self.capacity >= 1, "a client must be able to await one reply"
        self._room = asyncio.Semaphore(self.capacity)
        self._waiters: dict[int, asyncio.Future[Reply]] = {}
        self._last_id = 0
        self.peak = 0
        """The most entries the table has held at once (for tests and statistics)."""

    def __len__(self) -> int:
        return len(self._waiters)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._waiters

    def next_id(self) -> int:
        """A fresh request id (also for requests whose reply nobody awaits)."""
        self._last_id += 1
        return self._last_id

    async def reserve(self) -> None:
        """Wait for a free slot; the caller must ``open`` or ``release`` it next, without
        awaiting anything in between (or a dropped connection could strand it)."""
        await self._room.acquire()

    def release(self) -> None:
        """Give back a slot reserved but not opened (the request could not be sent)."""
        self._room.release()

    def open(self) -> tuple[int, asyncio.Future[Reply]]:
        """Record a new request in a reserved slot: its id and the future its reply sets."""
        request_id = self.next_id()
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = waiter
        assert len(self._waiters) <= self.capacity, "more replies in flight than reserved"
        self.peak = max(self.peak, len(self._waiters))
        return request_id, waiter

    def discard(self, request_id: int) -> asyncio.Future[Reply] | None:
        """Forget a request (sent or not) and free its slot; its future, if it was here."""
        waiter = self._waiters.pop(request_id, None)
        if waiter is not None:
            self._room.release()
        return waiter

    def resolve(self, request_id: Any, reply: Reply) -> None:
        """Hand ``reply`` to whoever awaits ``request_id`` (a reply to nobody is dropped)."""
        waiter = self.discard(request_id) if isinstance(request_id, int) else None
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    def fail(self, request_id: int, error: BaseException) -> None:
        """Fail the request ``request_id`` with ``error``."""
        waiter = self.discard(request_id)
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def fail_all(self, reason: str) -> None:
        """Fail every request with ``ConnectionLost``: their replies will never come."""
        for request_id in list(self._waiters):
            waiter = self.discard(request_id)
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionLost(f"{reason}; the request may not have run"))
                waiter.add_done_callback(_retrieved)  # nobody may be waiting any more
        assert not self._waiters


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
