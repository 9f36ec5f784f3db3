"""Server WebSocket frames written straight to the connection's transport, many at once.

aiohttp's ``send_str``/``send_bytes`` is a coroutine per message that writes one frame
with one ``write`` (one ``send`` system call, made holding the GIL). A client's replies
come in batches (the results of one group commit, the updates of one hand-off), so
``FrameWriter.write`` frames a batch of messages (RFC 6455 §5.2: FIN, the opcode, the
length; a server's frames are not masked) and writes them in one ``transport.write``.

It only writes when that is exactly what aiohttp would write: no compression was
negotiated (compressed frames carry compressor state; aiohttp keeps it), the WebSocket
is not closed (nothing may follow a close frame), and the transport is open and holds at
most ``BUFFERED_BYTES_MAX`` unsent (past it aiohttp waits for the client to read: flow
control). Otherwise ``usable`` is False and the caller sends through aiohttp. A frame is
always written whole, by either, so frames never interleave.

``FrameWriter.write_now`` writes one frame from **another thread** (the thread that
waited for a lone call's sync, ``calls.CallWorker``), so that its reply does not wait for
a hop back to the event loop (docs/design/server.md, "Where database work runs"). It is
uvloop's own fast path made from that thread by the compiled ``_direct.send_frame``:
uvloop writes a frame with one ``write`` system call made holding the GIL when nothing is
buffered, and touches nothing of the event loop unless the call sends less than all.
``send_frame`` checks the transport and makes the same call with no point between them
where the loop's thread could take the GIL, and only when a partial write cannot happen
(uvloop and libuv hold nothing unsent for the socket, and the kernel's send queue is
empty). Otherwise, and always without the compiled module or off uvloop, it writes
nothing and the reply goes the loop's way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import Callable
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

BUFFERED_BYTES_MAX = 64 * 1024
"""Unsent bytes in the transport past which frames go through aiohttp, which waits for
the client to read them (its writer's own threshold, ``DEFAULT_CHUNK_SIZE``)."""
_TEXT = 0x81  # FIN + opcode 1 (text)
_BINARY = 0x82  # FIN + opcode 2 (binary)
_LENGTH_16 = struct.Struct("!BBH").pack
_LENGTH_64 = struct.Struct("!BBQ").pack
_UVLOOP_TCP = ("uvloop.loop", "TCPTransport")
DIRECT_FRAME_BYTES_MAX = 4096
"""Largest frame ``write_now`` writes (a reply of a scalar is under 100 bytes)."""
_send_frame: Callable[[Any, Any, int, bytes], bool | int] | None = None
"""The compiled ``_direct.send_frame``, or None: not built, or ``COSMICTRON_PURE`` set
(then ``write_now`` always declines)."""
if not os.environ.get("COSMICTRON_PURE"):
    try:
        from cosmictron.server._direct import send_frame as _send_frame
    except ImportError:  # built without a compiler: every reply goes the loop's way
        pass
DIRECT_WRITES = _send_frame is not None
"""Whether ``write_now`` can write at all (the compiled module is there)."""


def frame(payload: bytes, first: int) -> bytes:
    """One unmasked, unfragmented frame whose first byte is ``first``."""
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return _LENGTH_16(first, 126, size) + payload
    return _LENGTH_64(first, 127, size) + payload


class FrameWriter:
    """Writes a connection's data frames to its transport (see the module docstring)."""

    def __init__(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport | None, binary: bool
    ) -> None:
        self.ws = ws
        # Compressed frames go through aiohttp (its compressor's state), always.
        self.transport = None if ws.compress else transport
        self.binary = binary
        self.busy = False
        """Set by the loop while it takes messages from its queue and writes them: a
        ``write_now`` meanwhile could overtake them."""
        self.direct_writes = 0
        """Frames ``write_now`` wrote (tests, metrics)."""
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        if self.transport is not None and _send_frame is not None:
            sock = self.transport.get_extra_info("socket")
            # uvloop's plain TCP transport only: asyncio's own writes with the GIL
            # released, and a TLS transport (a proxy's, or one added later) must never
            # have plaintext written under it to its socket.
            kind = type(self.transport)
            if sock is not None and (kind.__module__, kind.__name__) == _UVLOOP_TCP:
                self._fd = sock.fileno()
                self._loop = asyncio.get_running_loop()

    @property
    def usable(self) -> bool:
        """Whether ``write`` may be called now (else send through aiohttp)."""
        transport = self.transport
        return (
            transport is not None
            and not self.ws.closed
            and not transport.is_closing()
            and transport.get_write_buffer_size() <= BUFFERED_BYTES_MAX
        )

    def write(self, messages: list[str | bytes]) -> None:
        """Frame ``messages`` (``bytes`` on a binary protocol, else ``str``, as aiohttp's
        ``send_bytes``/``send_str`` take them) and write them in one go; only when
        ``usable``."""
        assert self.transport is not None
        first = _BINARY if self.binary else _TEXT
        if len(messages) == 1:  # the usual case: one reply
            message = messages[0]
            payload = message.encode("utf-8") if type(message) is str else message
            self.transport.write(frame(payload, first))  # type: ignore[arg-type]
            return
        if self.binary:
            parts = [frame(m, first) for m in messages]  # type: ignore[arg-type]
        else:
            parts = [frame(m.encode("utf-8"), first) for m in messages]  # type: ignore[union-attr]
        self.transport.write(b"".join(parts))

    def write_now(self, message: str | bytes) -> bool:
        """Write one frame holding ``message`` from a thread other than the loop's: True
        once it is dealt with (written whole; or, never expected, written in part and the
        connection aborted), False if nothing was written (send it the loop's way).

        The caller holds the ordering rules (nothing else of this client may be due
        before it); this checks that the socket may take it now (module docstring).
        """
        if self._fd < 0 or self.busy or self.ws.closed:
            return False
        payload = message.encode("utf-8") if type(message) is str else message
        data = frame(payload, _BINARY if self.binary else _TEXT)  # type: ignore[arg-type]
        if len(data) > DIRECT_FRAME_BYTES_MAX:
            return False
        assert _send_frame is not None  # ``_fd`` is only set with it
        sent = _send_frame(self.ws, self.transport, self._fd, data)
        if sent is True:
            self.direct_writes += 1
            return True
        if sent is False:
            return False
        # Part of a frame went: the stream cannot be continued (anything the loop wrote
        # next would land inside the frame). Not expected (``_direct.pyx``); end it.
        logger.error("a direct write sent %d of %d bytes; aborting the connection", sent, len(data))
        if self._loop is not None and self.transport is not None:
            self._loop.call_soon_threadsafe(self.transport.abort)
        return True
