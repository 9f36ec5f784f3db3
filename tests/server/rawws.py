"""A WebSocket client over a plain socket, for tests that must control every byte.

aiohttp's client reads frames in the background and refuses to send malformed ones;
these tests need a client that does not read (to fill the server's queue) and that can
send any frame (fuzzing). ``RawWebSocket`` does the RFC 6455 handshake, sends masked
frames of any opcode and payload, and reads the server's frames when asked.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.server.conftest import strict_loads

PROTOCOL = "v1.json.cosmictron"
TEXT, BINARY, CLOSE, PING = 0x1, 0x2, 0x8, 0x9


@dataclass
class Frame:
    opcode: int
    payload: bytes

    @property
    def json(self) -> Any:
        return strict_loads(self.payload)

    @property
    def close_code(self) -> int | None:
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8", "replace")


class RawWebSocket:
    """One connection; ``status`` is the handshake's HTTP status (101 when upgraded)."""

    def __init__(
        self,
        url: str,
        database: str,
        token: str | None = None,
        receive_buffer_bytes: int | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        parts = urlsplit(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer_bytes is not None:  # before connecting, so the window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
        self.sock.settimeout(timeout_s)
        self.sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET /v1/database/{database}/subscribe HTTP/1.1",
            f"Host: {parts.netloc}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            f"Sec-WebSocket-Protocol: {PROTOCOL}",
        ]
        if token is not None:
            lines.append(f"Authorization: Bearer {token}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._buffer = b""
        head = self._read_until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.head = head

    def send(self, payload: bytes | str, opcode: int = TEXT, fin: bool = True) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        first = (0x80 if fin else 0) | opcode
        mask = os.urandom(4)
        length = len(data)
        if length < 126:
            header = struct.pack("!BB", first, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", first, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)

    def send_json(self, message: Any) -> None:
        self.send(json.dumps(message))

    def receive(self) -> Frame | None:
        """The next frame, or None once the server closed the connection."""
        try:
            head = self._read(2)
        except ConnectionError:
            return None
        if head is None:
            return None
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read_exact(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read_exact(8))[0]
        return Frame(opcode, self._read_exact(length))

    def receive_json(self) -> Any:
        """The next text frame's JSON (skipping nothing: a close frame is an error)."""
        frame = self.receive()
        assert frame is not None and frame.opcode == TEXT, frame
        return frame.json

    def close(self) -> None:
        self.sock.close()

    def _read(self, count: int) -> bytes | None:
        while len(self._buffer) < count:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _read_exact(self, count: int) -> bytes:
        data = self._read(count)
        if data is None:
            raise ConnectionError("the server closed the connection mid-frame")
        return data

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError(f"the server closed the connection: {self._buffer!r}")
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(marker)
        return head
