"""Instructions per PostgreSQL-port operation, counted by valgrind (issue 22).

    .venv/bin/python bench/pgwire_instructions.py point-asyncpg|point-psycopg|scan-text|scan-binary
        [--calls 2000] [--base 200] [--rows 20000] [--profile | --cpu N]

A loaded machine moves wall-clock rates by 2x between runs; instruction counts do not.
One ``Session`` of the port (``server/pgwire/session.py``) is fed the bytes a client
sends, through its real ``Inbound`` protocol, on uvloop, with a transport that keeps
what the session writes instead of a socket: no client, no kernel. The table and rows
are ``bench/pgwire.py``'s. Paths:

- ``point-asyncpg``: Bind (one binary int8), Execute, Sync of a prepared
  ``SELECT * FROM reading WHERE id = $1``, binary results, as asyncpg sends them;
- ``point-psycopg``: Bind (the key as text), Describe portal, Execute, Sync, text
  results, as psycopg sends a prepared statement's;
- ``scan-text``: the simple query ``SELECT * FROM reading`` (psycopg's default);
- ``scan-binary``: Parse, Bind (binary results), Describe, Execute, Sync of the same
  unnamed statement (psycopg ``binary=True``).

The program runs under ``valgrind --tool=callgrind`` twice, with ``base`` and ``base +
calls`` operations, and prints the difference divided by ``calls``: start-up, loading
and the harness's set-up cancel out (a scan's ``calls`` are scans). ``--profile`` runs
``calls`` operations under cProfile instead and prints the top functions; ``--cpu N``
times ``calls`` operations N times with ``time.process_time`` (no profiler, no
valgrind) and prints the best, in µs per operation: quick, but it moves with the load
where the counts do not. Needs valgrind on PATH for counting.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import shutil
import struct
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from callgrind import per_operation, program_instructions, require_valgrind

PATHS = ("point-asyncpg", "point-psycopg", "scan-text", "scan-binary")
POINT = "SELECT * FROM reading WHERE id = $1"
SCAN = "SELECT * FROM reading"
INT8 = 20


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


def parse(name: str, text: str, oids: tuple[int, ...]) -> bytes:
    body = cstr(name) + cstr(text) + struct.pack("!h", len(oids))
    return message(b"P", body + b"".join(struct.pack("!i", o) for o in oids))


def bind(statement: str, values: list[tuple[int, bytes]], results: tuple[int, ...]) -> bytes:
    body = cstr("") + cstr(statement)
    body += struct.pack("!h", len(values)) + b"".join(struct.pack("!h", f) for f, _ in values)
    body += struct.pack("!h", len(values))
    body += b"".join(struct.pack("!i", len(v)) + v for _, v in values)
    body += struct.pack("!h", len(results)) + b"".join(struct.pack("!h", f) for f in results)
    return message(b"B", body)


DESCRIBE_PORTAL = message(b"D", b"P\x00")
EXECUTE = message(b"E", b"\x00" + struct.pack("!i", 0))
SYNC = message(b"S", b"")


def operation(path: str, key: int) -> bytes:
    """The bytes a client sends for one operation of ``path``."""
    if path == "point-asyncpg":
        return bind("s1", [(1, struct.pack("!q", key))], (1,)) + EXECUTE + SYNC
    if path == "point-psycopg":
        return bind("s1", [(0, str(key).encode())], (0,)) + DESCRIBE_PORTAL + EXECUTE + SYNC
    if path == "scan-text":
        return message(b"Q", cstr(SCAN))
    return parse("", SCAN, ()) + bind("", [], (1,)) + DESCRIBE_PORTAL + EXECUTE + SYNC


class Transport:
    """What the session writes to, kept in memory; ``ready`` is set at each
    ReadyForQuery (the end of a reply)."""

    def __init__(self) -> None:
        self.written = 0
        self.tail = b""
        self.ready: asyncio.Future[None] | None = None
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.tail = data[-6:]
        ready = self.ready
        if data[-6:-1] == b"Z\x00\x00\x00\x05" and ready is not None and not ready.done():
            ready.set_result(None)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Hosted:
    """The part of ``registry.HostedDatabase`` a session uses."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.executor = ThreadPoolExecutor(2)

    async def run(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)


async def drive(path: str, count: int, row_count: int, profile: bool, repeats: int = 0) -> None:
    import cosmictron
    from cosmictron import DurabilityConfig
    from cosmictron.server.pgwire.context import PgContext, PgSettings
    from cosmictron.server.pgwire.inbound import Inbound
    from cosmictron.server.pgwire.session import Session
    from cosmictron.server.throttle import ServerLimits, Throttle
    from pgwire import MODULE, rows

    parent = tempfile.mkdtemp(prefix="pgwire-instructions-")
    try:
        module = Path(parent) / "bench.py"
        module.write_text(MODULE)
        db = cosmictron.Database.open(
            os.path.join(parent, "db"),
            module=str(module),
            durability=DurabilityConfig.from_profile("development"),
        )
        db.bulk_insert("reading", rows(row_count))
        hosted = Hosted(db)
        limits = ServerLimits(
            {
                "COSMICTRON_RATE_QUERIES_PER_S": "1000000000",
                "COSMICTRON_RATE_QUERIES_BURST": "1000000000",
            }
        )
        context = PgContext(None, None, Throttle(limits), None, PgSettings())  # type: ignore[arg-type]
        transport = Transport()
        loop = asyncio.get_running_loop()

        async def accept(reader: Inbound, writer: asyncio.StreamWriter) -> None:
            session = Session(context, reader, writer, "127.0.0.1")
            session.database = hosted  # type: ignore[assignment]
            session.database_name = "bench"
            session.caller = db.owner
            session.caller_hex = db.owner.hex()
            session.pid = context.register(session)
            try:
                await session._loop()
            except asyncio.IncompleteReadError:  # the harness closed the connection
                pass

        inbound = Inbound(accept, PgSettings().message_bytes_max)
        inbound.connection_made(transport)  # type: ignore[arg-type]

        async def send(data: bytes) -> None:
            transport.ready = loop.create_future()
            inbound.data_received(data)
            await transport.ready

        if path.startswith("point"):
            await send(parse("s1", POINT, (INT8,)) + SYNC)
        generator = random.Random(7)
        operations = [operation(path, generator.randrange(1, row_count + 1)) for _ in range(count)]
        for data in operations[:3]:  # warm: the statement cache, the shapes, the writers
            await send(data)
        if repeats:
            best = min([await timed(send, operations) for _ in range(repeats)])
            print(f"{path}: {best / count * 1e6:,.2f} us CPU per operation (best of {repeats})")
        profiler = cProfile.Profile() if profile else None
        started = time.process_time()
        if profiler is not None:
            profiler.enable()
        for data in operations:
            await send(data)
        if profiler is not None:
            profiler.disable()
            took = time.process_time() - started
            print(f"{path}: {took / count * 1e6:,.1f} us CPU per operation (profiled)")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        inbound.connection_lost(None)
        await asyncio.sleep(0)
        db.close()
        hosted.executor.shutdown()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


async def timed(send: Any, operations: list[bytes]) -> float:
    """CPU seconds to send every operation and wait for its reply."""
    started = time.process_time()
    for data in operations:
        await send(data)
    return time.process_time() - started


def instructions(path: str, row_count: int, n: int) -> int:
    """Instructions valgrind counts for the whole program making ``n`` operations."""
    return program_instructions(__file__, [path, "--rows", str(row_count), "--make-calls", str(n)])


def run(path: str, count: int, row_count: int, profile: bool, repeats: int = 0) -> None:
    try:
        import uvloop
    except ImportError:  # the server runs on uvloop where it is installed
        asyncio.run(drive(path, count, row_count, profile, repeats))
    else:
        uvloop.run(drive(path, count, row_count, profile, repeats))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("path", choices=PATHS)
    parser.add_argument("--calls", type=int, default=2_000, help="operations counted (2000)")
    parser.add_argument("--base", type=int, default=200, help="operations subtracted (200)")
    parser.add_argument("--rows", type=int, default=20_000, help="rows in the table (20000)")
    parser.add_argument("--profile", action="store_true", help="cProfile instead of valgrind")
    parser.add_argument(
        "--cpu", type=int, default=0, metavar="N", help="best of N timed runs, no valgrind"
    )
    parser.add_argument("--make-calls", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make_calls is not None:
        run(args.path, args.make_calls, args.rows, False)
        return 0
    if args.profile or args.cpu:
        run(args.path, args.calls, args.rows, args.profile, args.cpu)
        return 0
    require_valgrind()
    each = per_operation(partial(instructions, args.path, args.rows), args.base, args.calls)
    print(f"{args.path}: {each:,.0f} instructions per operation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
