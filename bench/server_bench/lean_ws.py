"""A lean WebSocket client for the load generator: RFC 6455 written and read by hand.

The PostgreSQL side of the benchmark drives libpq's pipeline mode from event-loop
callbacks (``load_postgres.py``): per call a few calls into C and no task wake-up. The
Cosmictron side used aiohttp's WebSocket client, whose every frame goes through a
reader queue, a future, a task step and ``ws.receive``'s checks on the way in and a
coroutine with a lock on the way out: 85 µs of client CPU per call against libpq's 43
(docs/benchmarks.md, issue 11 srvspeed). On a 2-core machine in a closed loop that CPU
sits in every round trip. ``LeanWebSocket`` is the same shape as the PostgreSQL client:
an ``asyncio.Protocol`` whose ``data_received`` parses the server's frames and calls
back, and whose ``send`` writes one masked frame (a random key per frame, as RFC 6455
§5.3 requires of a client; the XOR is aiohttp's compiled mask). It implements what the
benchmark needs: the upgrade with a subprotocol, unfragmented text and binary frames,
pings answered, a close; anything else (a fragment, a server frame with a mask, an
upgrade refused) raises.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp._websocket.mask import _websocket_mask_cython as _mask

_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA
_HEAD_16 = struct.Struct("!BBH")
_HEAD_64 = struct.Struct("!BBQ")

OnMessage = Callable[[str | bytes], None]


class LeanWebSocket(asyncio.Protocol):
    """One client connection (see the module docstring). ``on_message`` is called with
    each text (``str``) or binary (``bytes``) message, on the loop, from ``data_received``."""

    def __init__(self, host: str, path: str, protocol: str) -> None:
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.on_message: OnMessage | None = None
        self._upgraded = False
        self._close_sent = False
        self._buffer = bytearray()
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[str | bytes] = loop.create_future()
        """Resolves with the server's first message (``IdentityToken``)."""
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        error = exc or ConnectionResetError("the server closed the connection")
        if not self.opened.done():
            self.opened.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            if b" 101 " not in status:
                raise ConnectionError(f"the upgrade was refused: {bytes(buffer[:end])!r}")
            del buffer[: end + 4]
            self._upgraded = True
        at = 0
        size = len(buffer)
        while size - at >= 2:
            first, second = buffer[at], buffer[at + 1]
            length = second & 0x7F
            start = at + 2
            if second & 0x80 or not first & 0x80:
                raise ConnectionError("a masked or fragmented server frame")
            if length == 126:
                if size - at < 4:
                    break
                length = _HEAD_16.unpack_from(buffer, at)[2]
                start = at + 4
            elif length == 127:
                if size - at < 10:
                    break
                length = _HEAD_64.unpack_from(buffer, at)[2]
                start = at + 10
            end = start + length
            if end > size:
                break
            opcode = first & 0x0F
            payload = bytes(buffer[start:end])
            at = end
            if opcode == _TEXT:
                self._message(payload.decode())
            elif opcode == _BINARY:
                self._message(payload)
            elif opcode == _PING:
                self.send(payload, _PONG)
            elif opcode == _CLOSE:
                if not self._close_sent:  # the server's close: answer it
                    self.send(payload[:2], _CLOSE)
                assert self.transport is not None
                self.transport.close()
                return
        del buffer[:at]

    def _message(self, message: str | bytes) -> None:
        if not self.opened.done():
            self.opened.set_result(message)
        elif self.on_message is not None:
            self.on_message(message)

    def send(self, payload: bytes, opcode: int) -> None:
        """Write one masked frame holding ``payload``."""
        size = len(payload)
        first = 0x80 | opcode
        if size < 126:
            head = bytes((first, 0x80 | size))
        elif size < 65536:
            head = _HEAD_16.pack(first, 0xFE, size)
        else:
            head = _HEAD_64.pack(first, 0xFF, size)
        key = os.urandom(4)
        body = bytearray(payload)
        _mask(key, body)
        assert self.transport is not None
        self.transport.write(head + key + body)

    def send_message(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message."""
        if isinstance(message, str):
            self.send(message.encode(), _TEXT)
        else:
            self.send(message, _BINARY)

    async def close(self) -> None:
        """Send a close frame (1000) and wait for the server to end the connection."""
        if self.transport is not None and not self.transport.is_closing():
            self.send(struct.pack("!H", 1000), _CLOSE)
            self._close_sent = True
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), 10)
        except TimeoutError:
            if self.transport is not None:
                self.transport.close()


async def connect_lean(url: str, protocol: str) -> tuple[LeanWebSocket, str | bytes]:
    """Open ``url`` (``ws://host:port/path``) speaking ``protocol``; the connection and
    its first message (the server's ``IdentityToken``)."""
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    _, client = await loop.create_connection(
        lambda: LeanWebSocket(parts.netloc, path, protocol), parts.hostname, parts.port
    )
    first = await asyncio.wait_for(client.opened, 30)
    return client, first
