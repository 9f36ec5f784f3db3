"""A small synchronous HTTP client for the server's JSON API (DESIGN.md §5).

Why ``urllib`` and not aiohttp, which is already a dependency: each CLI command makes one
or two requests and exits, so an event loop, a session and their teardown would be pure
overhead, and a blocking call reads top to bottom. ``urllib`` also streams a response
line by line (``stream_lines``, for NDJSON logs) and an upload chunk by chunk (for the
deploy progress bar). The one thing it cannot do is WebSocket; ``cli/websocket.py`` uses
aiohttp for that.

Errors, as a tree (each carries the CLI exit code it becomes, see ``cli/main.py``)::

    ClientError                 exit_code
    ├── ServerError         1   the server replied {"error": {"code", "message"}}
    │   └── HandshakeRefused    a WebSocket upgrade was refused (a status, no message)
    └── CannotConnect       3   no server at the URL, a dropped connection, a timeout, or
                                a reply that is not a Cosmictron reply
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from cosmictron import __version__
from cosmictron.client.settings import DEFAULT_SERVER, normalise_server_url

__all__ = [
    "DEFAULT_SERVER",
    "CannotConnect",
    "ClientError",
    "HandshakeRefused",
    "ServerClient",
    "ServerError",
    "normalise_server_url",
    "quote",
]

TIMEOUT_S = 60.0
"""How long one request may wait for the server; a deploy loads the module first."""

UPLOAD_CHUNK_BYTES = 64 * 1024
"""Upload granularity, so the deploy progress bar moves smoothly."""


class ClientError(Exception):
    """Base class of what talking to a server can raise; ``exit_code`` is the CLI's."""

    exit_code = 1


class ServerError(ClientError):
    """The server answered with an error document; ``code`` is its stable error code."""

    exit_code = 1

    def __init__(self, status: int, code: str, message: str, traceback: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.traceback = traceback
        """The frames of the module's code, when the server sent them (to the owner)."""


class HandshakeRefused(ServerError):
    """The server answered a WebSocket upgrade with an HTTP error (status, no body)."""


class CannotConnect(ClientError):
    """No Cosmictron server answered at the URL (refused, unknown host, timeout, other)."""

    exit_code = 3


class ServerClient:
    """One server, one optional token; each method is one HTTP request."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        progress: Callable[[int], None] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON reply.

        Args:
            method: the HTTP method.
            path: the path under the server URL, already quoted, with any query string.
            body: the request body, if any.
            content_type: its media type.
            progress: called with the byte count of each uploaded chunk.
            headers: more request headers (``Idempotency-Key``).

        Raises:
            ServerError: the server replied with an error document.
            CannotConnect: no reply, or a reply that is not JSON from a Cosmictron server.
        """
        with self._open(method, path, body, content_type, progress, headers=headers) as response:
            return self._decode(response.status, response.read(), response)

    def download(self, path: str, destination: BinaryIO) -> dict[str, str]:
        """GET ``path`` and copy its body into ``destination`` chunk by chunk.

        Returns:
            The reply's headers (``X-Cosmictron-Tx-Offset`` for exports).

        Raises:
            As ``open_download``.
        """
        with self.open_download(path) as (headers, chunks):
            for chunk in chunks:
                destination.write(chunk)
        return headers

    def stream_lines(self, path: str) -> Iterator[Any]:
        """GET ``path`` and yield each line of its NDJSON reply as soon as it arrives.

        Raises:
            ServerError: the server replied with an error document.
            CannotConnect: as ``request``, or the connection dropped mid-stream.
        """
        with self._open("GET", path, None, None, None, timeout_s=None) as response:
            while True:
                try:
                    line = response.readline()
                except (OSError, http.client.HTTPException) as exc:
                    raise CannotConnect(f"the connection to {self.url} broke: {exc}") from None
                if not line:
                    return
                if line.strip():
                    yield self._decode(response.status, line, response)

    @contextlib.contextmanager
    def open_download(self, path: str) -> Iterator[tuple[dict[str, str], Iterator[bytes]]]:
        """GET ``path`` for a binary reply: yield its headers and an iterator of chunks.

        Raises:
            ServerError: the server replied with an error document.
            CannotConnect: no reply, or the connection dropped mid-reply.
        """
        with self._open("GET", path, None, None, None, timeout_s=None) as response:
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            if media_type == "application/json":  # an error document, not the file
                self._decode(response.status, response.read(), response)
                raise CannotConnect(f"{self.url} sent JSON where a file was expected")

            def chunks() -> Iterator[bytes]:
                try:
                    while chunk := response.read(UPLOAD_CHUNK_BYTES * 16):
                        yield chunk
                except (OSError, http.client.HTTPException) as exc:
                    raise CannotConnect(f"the connection to {self.url} broke: {exc}") from None

            yield dict(response.headers), chunks()

    def _open(
        self,
        method: str,
        path: str,
        body: bytes | None,
        content_type: str | None,
        progress: Callable[[int], None] | None,
        timeout_s: float | None = TIMEOUT_S,
        headers: dict[str, str] | None = None,
    ) -> Any:
        data: Any = body
        if body is not None and progress is not None:
            data = _chunks(body, progress)
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("User-Agent", f"cosmictron-cli/{__version__}")
        if body is not None:
            request.add_header("Content-Length", str(len(body)))
        if content_type is not None:
            request.add_header("Content-Type", content_type)
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            return urllib.request.urlopen(request, timeout=timeout_s)
        except urllib.error.HTTPError as error:
            with error:
                self._decode(error.code, error.read(), error)
            raise CannotConnect(f"{self.url} replied HTTP {error.code} without an error") from None
        except urllib.error.URLError as error:
            raise CannotConnect(f"cannot connect to {self.url}: {_reason(error.reason)}") from None
        except (OSError, http.client.HTTPException) as error:
            raise CannotConnect(f"cannot connect to {self.url}: {_reason(error)}") from None

    def _decode(self, status: int, raw: bytes, response: Any) -> Any:
        try:
            document = json.loads(raw or b"null")
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise CannotConnect(
                f"{self.url} is not a Cosmictron server (HTTP {status}, {kind})"
            ) from None
        if status >= 400 or (isinstance(document, dict) and "error" in document):
            error = document.get("error") if isinstance(document, dict) else None
            if not isinstance(error, dict):
                raise CannotConnect(f"{self.url} is not a Cosmictron server (HTTP {status})")
            trace = error.get("traceback")
            raise ServerError(
                status,
                str(error.get("code")),
                str(error.get("message")),
                trace if isinstance(trace, str) else None,
            )
        return document


def _chunks(body: bytes, progress: Callable[[int], None]) -> Iterator[bytes]:
    for start in range(0, len(body), UPLOAD_CHUNK_BYTES):
        chunk = body[start : start + UPLOAD_CHUNK_BYTES]
        yield chunk
        progress(len(chunk))


def _reason(reason: object) -> str:
    """A short human reason for a socket-level failure."""
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the server running? start it with cosmictron-cli start)"
    if isinstance(reason, socket.gaierror):
        return f"unknown host ({reason.strerror})"
    if isinstance(reason, TimeoutError | socket.timeout):
        return "timed out"
    return str(getattr(reason, "strerror", None) or reason)


def quote(name: str) -> str:
    """A path segment (database, reducer) quoted for a URL."""
    return urllib.parse.quote(name, safe="")
