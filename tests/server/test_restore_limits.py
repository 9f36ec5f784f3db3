"""Restore uploads crossing their limits, over real sockets: refused early, nothing left.

A 2 GiB upload is streamed from a generator that repeats one 1 MiB block (nothing of
2 GiB is ever allocated) while the socket is watched for the server's answer: the 413
must come before a small part of it was sent. After every refusal the data directory
holds no new database directory and no staging or upload file, and the registry lists
nothing new.
"""

from __future__ import annotations

import io
import itertools
import os
import select
import socket
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.server.conftest import EXAMPLE, Server, start_server, stop_server, strict_loads

UPLOAD_BYTES_MAX = 8 * 1024 * 1024
TWO_GIB = 2 * 1024**3
BLOCK = bytes(1024 * 1024)


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    env = {"COSMICTRON_RESTORE_UPLOAD_BYTES_MAX": str(UPLOAD_BYTES_MAX)}
    server = start_server(tmp_path / "server-data", "--profile", "development", env=env)
    try:
        _, token = server.deployer()
        assert server.deploy("qs", EXAMPLE.read_text(), token).status == 201
        yield server, token
    finally:
        out = stop_server(server)
        assert "Traceback" not in out, out


def two_gib_archive() -> tuple[bytes, Iterator[bytes]]:
    """A tar stream whose first member claims 2 GiB: it parses, so only the size limit can
    stop it. Returns its header and a generator of the 2 GiB of content."""
    info = tarfile.TarInfo("log/00000000000000000001.log")
    info.size = TWO_GIB
    return info.tobuf(tarfile.PAX_FORMAT), itertools.repeat(BLOCK, TWO_GIB // len(BLOCK))


def stream_upload(
    server: Server, path: str, token: str, head: bytes, blocks: Iterator[bytes], length: int | None
) -> tuple[int, Any, int]:
    """PUT ``head`` then ``blocks`` (chunked when ``length`` is None), stopping as soon as
    the server answers. Returns the status, the JSON body and how many bytes were sent."""
    parts = urlsplit(server.url)
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    request = (
        f"PUT {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/x-tar\r\n{framing}\r\n\r\n"
    ).encode()
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(request)
        pending = memoryview(b"")
        for block in itertools.chain([head], blocks):
            pending = memoryview(block if length is not None else _chunk(block))
            while pending:
                readable, writable, _ = select.select([sock], [sock], [], 30)
                if readable:
                    status, body = _read_reply(sock)
                    return status, body, sent
                if writable:
                    count = sock.send(pending)
                    pending = pending[count:]
                    sent += count
        status, body = _read_reply(sock)
        return status, body, sent


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _read_reply(sock: socket.socket) -> tuple[int, Any]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed without a reply: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), strict_loads(rest[:length])


def assert_nothing_left(server: Server, token: str, name: str) -> None:
    listed = [
        d["name"] for d in server.request("GET", "/v1/database", token=token).body["databases"]
    ]
    assert listed == ["qs"], listed
    databases = sorted(os.listdir(server.data_dir / "databases"))
    assert databases == ["qs"], databases
    uploads = server.data_dir / "uploads"
    left = sorted(str(p) for p in uploads.rglob("*")) if uploads.exists() else []
    assert left == [], left
    reply = server.request("POST", "/v1/database/qs/call/add_task", ["still serving"], token)
    assert reply.status == 200, reply


def test_a_declared_2gib_upload_is_413_before_a_byte_is_read(limited: tuple[Server, str]) -> None:
    server, token = limited
    head, blocks = two_gib_archive()
    status, body, sent = stream_upload(
        server, "/v1/database/big/restore", token, head, blocks, len(head) + TWO_GIB
    )
    assert status == 413 and body["error"]["code"] == "too_large", body
    assert str(UPLOAD_BYTES_MAX) in body["error"]["message"], body
    assert sent < 64 * 1024 * 1024, f"the refusal came after {sent} bytes"
    assert_nothing_left(server, token, "big")


def test_a_chunked_2gib_upload_is_413_once_it_passes_the_limit(
    limited: tuple[Server, str],
) -> None:
    server, token = limited
    head, blocks = two_gib_archive()
    status, body, sent = stream_upload(
        server, "/v1/database/big/restore", token, head, blocks, None
    )
    assert status == 413 and body["error"]["code"] == "too_large", body
    assert UPLOAD_BYTES_MAX < sent < 64 * 1024 * 1024, f"the refusal came after {sent} bytes"
    assert_nothing_left(server, token, "big")


@pytest.mark.parametrize("kind", ["random bytes", "damaged member", "truncated"])
def test_a_garbage_archive_is_4xx_and_leaves_nothing(
    limited: tuple[Server, str], kind: str
) -> None:
    server, token = limited
    backup = _download(server, token)
    with tarfile.open(fileobj=io.BytesIO(backup)) as tar:
        members = {member.name: member for member in tar.getmembers()}
    if kind == "random bytes":
        archive = os.urandom(1024 * 1024)
    elif kind == "damaged member":  # one byte of the log's content flipped
        log = next(m for name, m in members.items() if name.startswith("log/"))
        at = log.offset_data + log.size // 2
        archive = backup[:at] + bytes([backup[at] ^ 0xFF]) + backup[at + 1 :]
    else:  # cut inside the manifest, the last member but its checksum
        archive = backup[: members["manifest.json"].offset_data + 10]
    reply = server.request("PUT", "/v1/database/copy/restore", archive, token, "application/x-tar")
    assert reply.status in (400, 422), reply
    assert reply.body["error"]["code"] in ("backup_damaged", "invalid_request"), reply
    assert reply.body["error"]["message"], reply
    assert_nothing_left(server, token, "copy")
    whole = server.request("PUT", "/v1/database/copy/restore", backup, token, "application/x-tar")
    assert whole.status == 201, whole  # the same upload, undamaged, restores


def _download(server: Server, token: str) -> bytes:
    request = urllib.request.Request(f"{server.url}/v1/database/qs/backup")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers.get("Content-Length") is None  # streamed, not from a file
        return response.read()
