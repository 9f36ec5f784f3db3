"""The receiving side of one PostgreSQL connection: an ``asyncio.Protocol`` that keeps
what arrives in one buffer and cuts frontend messages out of it in place.

Why not ``asyncio.StreamReader``: a point query is one small packet in (Bind, Execute,
Sync) and one small packet out, and what the event loop does around it was most of
the server's CPU per query. A StreamReader copies every chunk into a bytearray, makes
a future per ``read`` and wakes the session's task through ``call_soon`` each round
trip. Here ``data_received`` appends to a ``bytes`` buffer; ``next`` returns a
buffered frame without suspending and waits only when no whole frame is there. And a
session may take whole frames straight from ``data_received`` (``on_data``, the
session's synchronous path for cached point reads), so a round trip whose messages
need no awaiting wakes no task at all.

Bounds: a header is checked against the cap before its body is waited for
(``FrameTooLarge``), and reading pauses while more than ``PAUSE_BYTES`` are buffered
beyond what the session is waiting for, so a peer cannot make the server hold more
than one message plus one read. Writing goes through an ``asyncio.StreamWriter`` on
the same protocol (its ``drain`` is the back pressure on replies).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Coroutine
from typing import Any

from cosmictron.server.pgwire.messages import FrameTooLarge

_LENGTH = struct.Struct("!i")

Accept = Callable[["Inbound", asyncio.StreamWriter], Coroutine[Any, Any, None]]


class Inbound(asyncio.streams.FlowControlMixin, asyncio.Protocol):
    """One connection's bytes in; ``accept(inbound, writer)`` runs as its task."""

    PAUSE_BYTES = 1 << 16

    def __init__(self, accept: Accept, bytes_max: int) -> None:
        super().__init__()
        self.loop = asyncio.get_running_loop()
        self.accept = accept
        self.bytes_max = bytes_max
        self.data = b""
        self.at = 0
        self.eof = False
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.on_data: Callable[[], None] | None = None
        """Called from ``data_received`` while the session waits in ``next``: it takes
        the whole frames it can answer without awaiting and leaves the rest (the task
        is woken for them)."""

    # --- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not asserted to be an asyncio.Transport: uvloop's are not subclasses of it.
        self.transport = transport  # type: ignore[assignment]
        self.writer = asyncio.StreamWriter(transport, self, None, self.loop)  # type: ignore[arg-type]
        self.task = self.loop.create_task(self.accept(self, self.writer))

    def data_received(self, chunk: bytes) -> None:
        data = self.data
        if self.at >= len(data):
            self.data = chunk
        else:
            self.data = data[self.at :] + chunk
        self.at = 0
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            on_data = self.on_data
            if on_data is not None:
                on_data()  # answers what it can (nothing while no message is whole)
                if self.at >= len(self.data):
                    return  # the usual: all of it answered, nothing to wake or pause for
            if self.waiter is waiter and not waiter.done() and self._wanted():
                waiter.set_result(None)
        # Pause only while the task is busy: when it waits, it waits for these bytes.
        busy = self.waiter is None or self.waiter.done()
        if busy and not self.paused and len(self.data) - self.at > self.PAUSE_BYTES:
            self.paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return True  # half-closed: the session still answers (a FATAL), then closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake()
        super().connection_lost(exc)

    # --- reading ----------------------------------------------------------------

    def frame(self) -> tuple[bytes, bytes] | None:
        """The next buffered (type byte, body), taken out of the buffer; None if no
        whole frame is buffered yet.

        Raises:
            FrameTooLarge: the declared length is over the cap or under 4.
        """
        data = self.data
        at = self.at
        if len(data) - at < 5:
            return None
        (length,) = _LENGTH.unpack_from(data, at + 1)
        if length < 4 or length > self.bytes_max:
            raise FrameTooLarge(
                f"a message of {length} bytes (at most {self.bytes_max}, "
                "limits.pg_message_bytes_max)"
            )
        end = at + 1 + length
        if len(data) < end:
            return None
        self.at = end
        return data[at : at + 1], data[at + 5 : end]

    async def next(self) -> tuple[bytes, bytes]:
        """The next frontend message after startup.

        Raises:
            FrameTooLarge: the declared length is over the cap or under 4.
            asyncio.IncompleteReadError: the peer closed the connection.
        """
        while True:
            got = self.frame()
            if got is not None:
                return got
            if self.eof:
                raise asyncio.IncompleteReadError(self.data[self.at :], None)
            await self._wait()

    async def readexactly(self, count: int) -> bytes:
        """``count`` bytes (the startup phase, whose packets have no type byte).

        Raises:
            asyncio.IncompleteReadError: the peer closed the connection first.
        """
        while len(self.data) - self.at < count:
            if self.eof:
                raise asyncio.IncompleteReadError(self.data[self.at :], count)
            await self._wait()
        at = self.at
        self.at = at + count
        return self.data[at : at + count]

    # --- internals --------------------------------------------------------------

    def _whole_frame(self) -> bool:
        data = self.data
        at = self.at
        if len(data) - at < 5:
            return False
        (length,) = _LENGTH.unpack_from(data, at + 1)
        return length < 4 or length > self.bytes_max or len(data) - at >= 1 + length

    def _wanted(self) -> bool:
        """Whether the waiting task has something to do: a whole frame (or a bad
        header) in frame mode; any bytes for ``readexactly``."""
        if self.on_data is None:
            return len(self.data) > self.at
        return self._whole_frame()

    async def _wait(self) -> None:
        if self.paused:
            self.paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def serve_inbound(accept: Accept, bytes_max: int) -> Callable[[], Any]:
    """The protocol factory for ``loop.create_server``."""
    return lambda: Inbound(accept, bytes_max)
