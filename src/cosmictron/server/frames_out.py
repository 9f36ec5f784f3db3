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
"""

from __future__ import annotations

import asyncio
import struct

from aiohttp import web

BUFFERED_BYTES_MAX = 64 * 1024
"""Unsent bytes in the transport past which frames go through aiohttp, which waits for
the client to read them (its writer's own threshold, ``DEFAULT_CHUNK_SIZE``)."""
_TEXT = 0x81  # FIN + opcode 1 (text)
_BINARY = 0x82  # FIN + opcode 2 (binary)
_LENGTH_16 = struct.Struct("!BBH").pack
_LENGTH_64 = struct.Struct("!BBQ").pack


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
