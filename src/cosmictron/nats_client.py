"""``connect_nats``: nats-py's ``nats.connect`` with the client's sockets closed when a
reconnect replaces them.

nats-py keeps one ``TcpTransport`` per client and, while reconnecting, calls its
``connect`` for each server it tries. When a TCP connection opens but its handshake then
fails (a server killed or restarting as the client reaches it), the next try's
``connect`` replaces the transport's open ``StreamWriter`` without closing it: the
socket stays open until the collector finds it and asyncio reports an unclosed
``StreamWriter`` (a ``ResourceWarning``, an error in the test suite: CI failed a
cluster test on it after killing two NATS servers). ``connect_nats`` makes the
transport close the writer it replaces, once per process, before any client connects.

Imports nothing of Cosmictron's (a root module: the host's remote-call transport and the
cluster layer both connect to NATS).
"""

from __future__ import annotations

from typing import Any

_CLOSES_REPLACED = "_cosmictron_closes_replaced_writer"


def connect_nats(**options: Any) -> Any:
    """``nats.connect(**options)`` (a coroutine), the transport's fix in place first."""
    import nats

    close_replaced_writers()
    return nats.connect(**options)


def close_replaced_writers() -> None:
    """Make ``TcpTransport.connect`` close the writer it replaces (idempotent)."""
    from nats.aio.transport import TcpTransport

    original = TcpTransport.connect
    if getattr(original, _CLOSES_REPLACED, False):
        return

    async def connect(self: Any, *args: Any, **kwargs: Any) -> None:
        for writer in {id(w): w for w in (self._io_writer, self._bare_io_writer) if w}.values():
            writer.close()
        self._io_writer = self._bare_io_writer = None
        self._io_reader = self._bare_io_reader = None
        await original(self, *args, **kwargs)

    setattr(connect, _CLOSES_REPLACED, True)
    TcpTransport.connect = connect  # type: ignore[method-assign]
