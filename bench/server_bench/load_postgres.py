"""The load generator's PostgreSQL side: libpq in pipeline mode from the event loop.

psycopg's ``pq`` layer is driven directly (``add_reader``/``add_writer``) so that the
client costs about what the WebSocket client costs for Cosmictron; each call is its own
implicit transaction. psycopg is imported inside the functions: without it, only the
PostgreSQL part of the run is skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from .load import Tally, summarize, window_markers
from .workload import PG_PREPARE


async def pg_worker(conn: Any, index: int, tally: Tally, depth: int) -> None:
    """Keep ``depth`` calls in flight on one libpq connection in pipeline mode.

    Each call is ``EXECUTE add_task_stmt`` followed by its own Sync, so each is its own
    implicit transaction, committed (WAL flushed, synchronous_commit=on) before the
    backend starts the next. Driven from the event loop with add_reader/add_writer.
    """
    from psycopg import pq

    pg = conn.pgconn
    loop = asyncio.get_running_loop()
    clock = time.perf_counter
    sock = pg.socket
    sent_at: deque[float] = deque()
    finished: asyncio.Future[None] = loop.create_future()
    state = {"n": 0, "expect_null": False, "writing": False, "failed": False}
    name = b"add_task_stmt"

    def on_writable() -> None:
        if pg.flush() == 0:
            loop.remove_writer(sock)
            state["writing"] = False

    def send() -> None:
        n = state["n"]
        values = [f"task {index}-{n}".encode(), str(n % 100).encode()]
        pg.send_query_prepared(name, values)
        pg.pipeline_sync()
        sent_at.append(clock())
        state["n"] = n + 1
        if not state["writing"] and pg.flush() == 1:
            state["writing"] = True
            loop.add_writer(sock, on_writable)

    def on_readable() -> None:
        try:
            pg.consume_input()
            while not pg.is_busy():
                result = pg.get_result()
                if result is None:
                    if state["expect_null"]:  # the end of one query's results
                        state["expect_null"] = False
                        continue
                    break  # nothing more queued
                status = result.status
                if status == pq.ExecStatus.PIPELINE_SYNC:  # one call done
                    now = clock()
                    tally.complete(sent_at.popleft(), now, not state["failed"], state.get("err"))
                    state["failed"] = False
                    if now < tally.end:
                        send()
                else:
                    state["expect_null"] = True
                    if status != pq.ExecStatus.TUPLES_OK:
                        state["failed"] = True
                        state["err"] = result.error_message.decode(errors="replace")
            if not sent_at and not finished.done():
                finished.set_result(None)
        except Exception as exc:
            if not finished.done():
                finished.set_exception(exc)

    pg.enter_pipeline_mode()
    try:
        loop.add_reader(sock, on_readable)
        for _ in range(depth):
            send()
        await asyncio.wait_for(finished, timeout=tally.end - clock() + 30)
    finally:
        loop.remove_reader(sock)
        loop.remove_writer(sock)
    pg.exit_pipeline_mode()


async def pg_load(spec: dict[str, Any]) -> dict[str, Any]:
    import psycopg

    conns = [
        await psycopg.AsyncConnection.connect(spec["dsn"], autocommit=True)
        for _ in range(spec["clients"])
    ]
    try:
        for conn in conns:
            await conn.execute(PG_PREPARE)
        start = time.perf_counter() + spec["warmup"]
        end = start + spec["seconds"]
        tallies = [Tally(start, end) for _ in conns]
        marker = asyncio.create_task(window_markers(start, end))
        await asyncio.gather(
            *(
                pg_worker(conn, i, tally, spec["depth"])
                for i, (conn, tally) in enumerate(zip(conns, tallies, strict=True))
            )
        )
        client_cpu = await marker
    finally:
        for conn in conns:
            await conn.close()
    return summarize(tallies, spec["seconds"], client_cpu)
