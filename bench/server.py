"""Server benchmark: reducer calls over WebSocket against PostgreSQL, and subscription fan-out.

    .venv/bin/python bench/server.py [--quick] [--out bench/results/server.json] [--tmpdir DIR]

The benchmark starts everything it measures, on loopback, and stops it at the end (also
on an error or Ctrl-C):

- a Cosmictron server (``cosmictron-cli start --profile production``: fsync ``always``
  with group commit) hosting the module ``MODULE_SOURCE``: table ``task`` with a
  secondary btree index on ``priority`` and the reducer ``add_task(title, priority) ->
  int`` inserting one row and returning its id;
- a PostgreSQL 15 cluster (``initdb`` in a temp dir, ``pg_ctl start`` on 127.0.0.1 with
  ``fsync=on`` and ``synchronous_commit=on``) with the same table, the same index and a
  plpgsql function ``add_task(title text, priority int) returns bigint`` doing the same.
  If PostgreSQL or psycopg is missing, the PostgreSQL part is skipped with a line saying
  why (and how to install it); the Cosmictron figures are still measured.

The load generator always runs in its **own process** (this script with ``--client``),
never in the server's: asyncio (uvloop when installed) with aiohttp's WebSocket client
for Cosmictron and libpq in pipeline mode (psycopg's ``pq`` layer) for PostgreSQL, so the
client side costs about the same for both. On a 2-core machine the client and the
server share the cores; both processes' CPU time over the measured window is recorded,
which tells whether the server or the client was the limit.

Throughput scenarios (each a time-bounded loop after a warm-up, in ``rounds`` slices
alternating the two engines so drift hits both): 1 and 16 clients, **closed loop** (one
call in flight per client: latency p50/p99 is meaningful) and **pipelined** (16 calls in
flight per client). Every call is its own durable transaction on both sides: a
Cosmictron ``CallReducer`` is answered once its transaction is fsynced; each PostgreSQL
call is followed by its own Sync message, so it is its own implicit transaction and
commits (and flushes the WAL) before the next one starts on that connection.

Fan-out: one writer calls ``add_task`` at a fixed rate (200/s) while ``subscribers``
WebSocket connections (100) are subscribed to ``SELECT * FROM task`` in a database of
their own. The latency of a receipt is the subscriber's wall clock at receipt minus the
update's ``timestamp``: the transaction's own timestamp, taken by the server as the
transaction starts, just before it commits (same machine, same clock). That measures
commit (plus the fsync the server must wait for before sending) to receipt, without the
writer's own send path. The writer's send time keyed by ``tx_offset`` gives a second,
larger figure (call sent to update received), reported next to it.

Prints a table and writes JSON (settings, machine info, every figure and the ratios).
The issue's goals (>= 15k calls/s closed loop with 16 clients, >= 2x PostgreSQL, fan-out
p99 <= 20 ms) are printed as met or missed, never asserted. ``COSMICTRON_BENCH_PROFILE=
FILE`` runs the Cosmictron server under cProfile (event-loop thread only) and dumps the
stats to FILE at shutdown. See bench/README.md, "Server".
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    fmt,
    machine_info,
    parse_args,
    run_took,
    temp_parent,
    text_table,
    write_results,
)

PROTOCOL = "v1.json.cosmictron"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

MODULE_SOURCE = '''\
"""Written by bench/server.py: one table with a secondary btree index, one reducer."""

from cosmictron import ReducerContext, field, reducer, table


@table(name="task", public=True)
class Task:
    id: int = field(primary_key=True, auto_inc=True)
    title: str = ""
    priority: int = field(default=0, index="btree")
    done: bool = False


@reducer
def add_task(ctx: ReducerContext, title: str, priority: int) -> int:
    return ctx.db.task.insert(Task(title=title, priority=priority)).id
'''

PG_SCHEMA = (
    "CREATE TABLE task (id bigserial PRIMARY KEY, title text NOT NULL, "
    "priority integer NOT NULL DEFAULT 0, done boolean NOT NULL DEFAULT false)",
    "CREATE INDEX task_priority ON task USING btree (priority)",
    """CREATE FUNCTION add_task(title text, priority integer) RETURNS bigint
       LANGUAGE plpgsql AS $$
       DECLARE new_id bigint;
       BEGIN
         INSERT INTO task (title, priority) VALUES (add_task.title, add_task.priority)
         RETURNING id INTO new_id;
         RETURN new_id;
       END $$""",
)
PG_PREPARE = "PREPARE add_task_stmt (text, integer) AS SELECT add_task($1, $2)"
PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/local/bin")
PG_INSTALL_HINT = "apt-get install postgresql-15; .venv/bin/pip install -e '.[bench]'"

FANOUT_QUERY = "SELECT * FROM task"

# With COSMICTRON_BENCH_PROFILE set, the server runs under cProfile in every thread (the
# event loop and the database's worker threads, where reducers run and syncs wait), and
# the merged stats are dumped at shutdown.
PROFILED_MAIN = """
import cProfile, pstats, threading
profilers = []
thread_run = threading.Thread.run
def profiled_run(self):
    profiler = cProfile.Profile()
    profilers.append(profiler)
    profiler.enable()
    try:
        thread_run(self)
    finally:
        profiler.disable()
threading.Thread.run = profiled_run
main_profiler = cProfile.Profile()
main_profiler.enable()
try:
    main()
finally:
    main_profiler.disable()
    stats = pstats.Stats(main_profiler)
    for profiler in profilers:
        try:
            stats.add(profiler)
        except (TypeError, ValueError):
            pass
    stats.dump_stats({out!r})
"""

# (key, label, clients, calls in flight per client); "depth" is filled from Settings.
SCENARIOS: list[tuple[str, str, bool, bool]] = [
    ("closed_1", "closed loop, 1 client", False, False),
    ("closed_16", "closed loop, 16 clients", True, False),
    ("pipelined_1", "pipelined, 1 client", False, True),
    ("pipelined_16", "pipelined, 16 clients", True, True),
]


@dataclasses.dataclass(frozen=True)
class Settings:
    slice_seconds: float  # measured time per engine per slice
    rounds: int  # slices per scenario per engine (engine order flips each round)
    warmup_seconds: float  # unmeasured load before each slice
    clients: int  # the "many clients" count
    pipeline_depth: int  # calls in flight per client when pipelined
    fanout_subscribers: int
    fanout_rate: float  # writer calls per second (the goal's figure)
    fanout_low_rate: float  # a second, lighter run: latency when the server keeps up
    fanout_seconds: float


FULL = Settings(
    slice_seconds=3.0,
    rounds=2,
    warmup_seconds=0.5,
    clients=16,
    pipeline_depth=16,
    fanout_subscribers=100,
    fanout_rate=200.0,
    fanout_low_rate=50.0,
    fanout_seconds=5.0,
)
QUICK = Settings(
    slice_seconds=0.4,
    rounds=1,
    warmup_seconds=0.1,
    clients=16,
    pipeline_depth=16,
    fanout_subscribers=20,
    fanout_rate=200.0,
    fanout_low_rate=50.0,
    fanout_seconds=0.5,
)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of ``values`` (any order); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# -- the load generator (runs in its own process: --client SPEC) ------------------------


def call_message(index: int, n: int) -> str:
    """One ``CallReducer`` frame; built by hand because it is on the client's hot path."""
    return (
        f'{{"CallReducer":{{"request_id":{n},"reducer":"add_task",'
        f'"args":["task {index}-{n}",{n % 100}]}}}}'
    )


class Tally:
    """One connection's counts inside the measured window ``[start, end]``."""

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = end
        self.calls = 0
        self.errors = 0
        self.error: str | None = None
        self.latencies: list[float] = []

    def complete(self, sent: float, now: float, ok: bool, error: str | None = None) -> None:
        if not ok:
            self.errors += 1
            self.error = self.error or error
            return
        if self.start <= now <= self.end:
            self.calls += 1
            if sent >= self.start:
                self.latencies.append(now - sent)


async def window_markers(start: float, end: float) -> float:
    """Tell the parent (on stdout) when the window starts and ends; return client CPU s."""
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    cpu = time.process_time()
    print("window-start", flush=True)
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    print("window-end", flush=True)
    return time.process_time() - cpu


async def cosmictron_worker(ws: Any, index: int, tally: Tally, depth: int) -> None:
    """Keep ``depth`` calls in flight on one WebSocket until the window ends, then drain."""
    import aiohttp

    clock = time.perf_counter
    sent_at: deque[float] = deque()
    n = 0
    for _ in range(depth):
        sent_at.append(clock())
        await ws.send_str(call_message(index, n))
        n += 1
    while sent_at:
        frame = await ws.receive(timeout=30)
        now = clock()
        if frame.type is not aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"connection {index} ended: {frame.type} {frame.data!r}")
        result = json.loads(frame.data).get("ReducerResult")
        if result is None:
            continue
        sent = sent_at.popleft()
        tally.complete(sent, now, result["status"] == "committed", result.get("error"))
        if now < tally.end:
            sent_at.append(clock())
            await ws.send_str(call_message(index, n))
            n += 1


async def connect_ws(session: Any, url: str) -> Any:
    """Open one WebSocket and read its ``IdentityToken``."""
    ws = await session.ws_connect(url, protocols=(PROTOCOL,), max_msg_size=0)
    first = await ws.receive_json(timeout=30)
    if "IdentityToken" not in first:
        raise RuntimeError(f"expected IdentityToken first, got {first}")
    return ws


async def cosmictron_load(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = await asyncio.gather(
            *(connect_ws(session, spec["ws_url"]) for _ in range(spec["clients"]))
        )
        start = time.perf_counter() + spec["warmup"]
        end = start + spec["seconds"]
        tallies = [Tally(start, end) for _ in sockets]
        marker = asyncio.create_task(window_markers(start, end))
        await asyncio.gather(
            *(
                cosmictron_worker(ws, i, tally, spec["depth"])
                for i, (ws, tally) in enumerate(zip(sockets, tallies, strict=True))
            )
        )
        client_cpu = await marker
        await asyncio.gather(*(ws.close() for ws in sockets))
    return summarize(tallies, spec["seconds"], client_cpu)


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


def summarize(tallies: list[Tally], seconds: float, client_cpu: float) -> dict[str, Any]:
    latencies = [x for t in tallies for x in t.latencies]
    return {
        "calls": sum(t.calls for t in tallies),
        "errors": sum(t.errors for t in tallies),
        "first_error": next((t.error for t in tallies if t.error), None),
        "seconds": seconds,
        "client_cpu_seconds": client_cpu,
        "latencies_ms": [x * 1000 for x in latencies],
    }


def parse_rfc3339(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


async def fanout_load(spec: dict[str, Any]) -> dict[str, Any]:
    """One writer at a fixed rate, ``subscribers`` connections receiving every update."""
    import aiohttp

    async def subscriber(ws: Any, log: list[tuple[float, float, str]]) -> None:
        # Keep the receive path minimal: timestamp and keep the text, parse afterwards.
        async for frame in ws:
            if frame.type is aiohttp.WSMsgType.TEXT:
                log.append((time.time(), time.perf_counter(), frame.data))
            else:
                break

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        subs = []
        for batch in range(0, spec["subscribers"], 25):
            count = min(25, spec["subscribers"] - batch)
            subs += await asyncio.gather(
                *(connect_ws(session, spec["ws_url"]) for _ in range(count))
            )
        for i, ws in enumerate(subs):
            query = {"request_id": i, "query_id": 1, "query_strings": [FANOUT_QUERY]}
            await ws.send_str(json.dumps({"Subscribe": query}))
        for ws in subs:
            reply = await ws.receive_json(timeout=30)
            if "SubscribeApplied" not in reply:
                raise RuntimeError(f"subscribe failed: {reply}")
        logs: list[list[tuple[float, float, str]]] = [[] for _ in subs]
        readers = [
            asyncio.create_task(subscriber(ws, log)) for ws, log in zip(subs, logs, strict=True)
        ]
        writer = await connect_ws(session, spec["ws_url"])
        sent: dict[int, float] = {}
        results: dict[int, tuple[int | None, float]] = {}
        calls = int(spec["rate"] * spec["seconds"])

        async def read_results() -> None:
            while len(results) < calls:
                frame = await writer.receive(timeout=30)
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"writer connection ended: {frame.type}")
                result = json.loads(frame.data).get("ReducerResult")
                if result is not None:
                    results[result["request_id"]] = (result["tx_offset"], time.perf_counter())

        reader = asyncio.create_task(read_results())
        cpu = time.process_time()
        start = time.perf_counter() + 0.05
        print("window-start", flush=True)
        for n in range(calls):
            delay = start + n / spec["rate"] - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[n] = time.perf_counter()
            await writer.send_str(call_message(0, n))
        await asyncio.wait_for(reader, timeout=30)
        offsets = {offset for offset, _ in results.values() if offset is not None}
        last = max(offsets) if offsets else 0
        # Wait until every subscriber has its update for the last transaction (bounded).
        deadline = time.perf_counter() + 10
        needle = f'"tx_offset": {last},'
        while time.perf_counter() < deadline and not all(
            log and needle in log[-1][2] for log in logs
        ):
            await asyncio.sleep(0.05)
        client_cpu = time.process_time() - cpu
        elapsed = time.perf_counter() - start
        print("window-end", flush=True)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(writer.close(), *(ws.close() for ws in subs))

    send_by_offset = {
        offset: sent[request] for request, (offset, _) in results.items() if offset is not None
    }
    commit_to_receipt: list[float] = []
    send_to_receipt: list[float] = []
    other = 0
    for log in logs:
        for wall, perf, text in log:
            update = json.loads(text).get("TransactionUpdate")
            if update is None:
                other += 1
                continue
            commit_to_receipt.append((wall - parse_rfc3339(update["timestamp"])) * 1000)
            if update["tx_offset"] in send_by_offset:
                send_to_receipt.append((perf - send_by_offset[update["tx_offset"]]) * 1000)
    call_latency = [(t - sent[r]) * 1000 for r, (_, t) in results.items()]
    return {
        "subscribers": len(logs),
        "writer_calls": calls,
        "transactions": len(offsets),
        "expected_receipts": len(offsets) * len(logs),
        "receipts": len(commit_to_receipt),
        "other_messages": other,
        "rate_per_s": spec["rate"],
        "seconds": elapsed,
        "client_cpu_seconds": client_cpu,
        "commit_to_receipt_ms": stats(commit_to_receipt),
        "send_to_receipt_ms": stats(send_to_receipt),
        "writer_call_latency_ms": stats(call_latency),
    }


def stats(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": sum(values) / len(values) if values else None,
    }


def client_main(spec_text: str) -> int:
    """``--client SPEC``: run one load and print its figures as the last stdout line."""
    spec = json.loads(spec_text)
    runner = {"cosmictron": cosmictron_load, "postgresql": pg_load, "fanout": fanout_load}
    coroutine = runner[spec["kind"]](spec)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(coroutine)
    else:
        result = uvloop.run(coroutine)
    # A file, not stdout: the figures can be large, and a pipe may take a partial write.
    Path(spec["out"]).write_text(json.dumps(result))
    return 0


# -- the parent: servers, client processes, CPU accounting --------------------------------


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """User + system CPU clock ticks of each of ``pids`` (all its threads), from /proc."""
    ticks = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks


def cpu_delta(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds spent between two samples by the processes alive at the second one.

    A process that ended in between is left out (its last ticks are unknown); one that
    started in between counts from zero.
    """
    return sum(t - before.get(pid, 0) for pid, t in after.items()) / CLOCK_TICKS


def run_client(
    spec: dict[str, Any],
    server_pids: Callable[[], list[int]],
    timeout: float,
    counters: Callable[[], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Run one load in a child process; add the server's CPU over the measured window.

    ``server_pids`` returns the pids to account (PostgreSQL's backends come and go with
    the connections); ``counters``, if given, is sampled at both ends of the window too
    and the differences are stored as ``server_counters``.
    """
    with (
        tempfile.NamedTemporaryFile(prefix="cosmictron-bench-client-", suffix=".json") as out,
        tempfile.TemporaryFile("w+") as errors,
    ):
        spec = {**spec, "out": out.name}
        command = [sys.executable, str(Path(__file__).resolve()), "--client", json.dumps(spec)]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            before: dict[int, int] = {}
            after: dict[int, int] = {}
            marks: list[dict[str, float]] = []
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.strip()
                if line == "window-start":
                    before = cpu_ticks(server_pids())
                    marks.append(counters() if counters else {})
                elif line == "window-end":
                    after = cpu_ticks(server_pids())
                    marks.append(counters() if counters else {})
            code = proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if code != 0:
            errors.seek(0)
            raise RuntimeError(f"load generator {spec['kind']} failed ({code}):\n{errors.read()}")
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
    result["server_cpu_seconds"] = cpu_delta(before, after)
    if counters is not None and len(marks) == 2:
        result["server_counters"] = {k: v - marks[0].get(k, 0) for k, v in marks[1].items()}
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class CosmictronServer:
    """``cosmictron-cli start`` in a child process, with the bench module deployed."""

    def __init__(self, parent: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="cosmictron-server-", dir=parent)
        self.log_path = Path(self.dir) / "server.log"
        code = "import sys; from cosmictron.cli.main import main; sys.argv[0] = 'cosmictron-cli'"
        profile = os.environ.get("COSMICTRON_BENCH_PROFILE")
        if profile:
            code += PROFILED_MAIN.format(out=str(Path(profile).resolve()))
        else:
            code += "; main()"
        command = [sys.executable, "-c", code, "start", "--listen", "127.0.0.1:0"]
        command += ["--data-dir", str(Path(self.dir) / "data"), "--profile", "production"]
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        # start saves the operator's token in the CLI settings: keep them in the bench's dir
        env = {**os.environ, "COSMICTRON_CONFIG_DIR": str(Path(self.dir) / "config")}
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.url = self._wait_listening(30)
        # Deploying needs the right to deploy: act as the operator the server made.
        self.token = (Path(self.dir) / "data" / "server" / "operator.token").read_text().strip()

    def _wait_listening(self, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_path.read_text()[-2000:]}")
            for line in self.log_path.read_text().splitlines():
                if line.startswith("cosmictron listening on "):
                    return line.split()[3]
            time.sleep(0.05)
        raise RuntimeError("the server did not print its address within 30 s")

    def _post(self, path: str, body: bytes, method: str = "POST") -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if getattr(self, "token", None):
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=30) as reply:
            document: dict[str, Any] = json.loads(reply.read())
            return document

    def deploy(self, name: str) -> str:
        self._post(f"/v1/database/{name}", MODULE_SOURCE.encode(), method="PUT")
        return self.url.replace("http://", "ws://") + f"/v1/database/{name}/subscribe"

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def counters(self, database: str) -> dict[str, float]:
        """Transactions and commit-log syncs of ``database`` so far, from ``/metrics``."""
        wanted = {
            "cosmictron_transactions_total": "transactions",
            "cosmictron_fsync_total": "fsyncs",
            "cosmictron_fsync_seconds_total": "fsync_seconds",
        }
        request = urllib.request.Request(self.url + "/metrics")
        request.add_header("Authorization", f"Bearer {self.token}")  # the operator sees all
        with urllib.request.urlopen(request, timeout=30) as reply:
            text = reply.read().decode()
        found: dict[str, float] = {}
        label = f'{{database="{database}"}}'
        for line in text.splitlines():
            name, _, value = line.partition(label + " ")
            if value and name in wanted:
                found[wanted[name]] = float(value)
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresUnavailable(Exception):
    """PostgreSQL or psycopg is not installed, or the cluster could not start."""


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1, run as ``postgres`` when we are root."""

    def __init__(self, parent: str) -> None:
        self.dir: str | None = None
        self.started = False
        try:
            import psycopg
        except ImportError:
            raise PostgresUnavailable(
                f"psycopg is not installed (install: {PG_INSTALL_HINT})"
            ) from None
        self.bin = self._find_bin()
        self.prefix: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as ``postgres``
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root and there is no 'postgres' user"
                ) from None
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.dir = tempfile.mkdtemp(prefix="cosmictron-bench-pg-", dir=parent)
        if owner is not None:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            if self._run(["test", "-w", self.dir], check=False).returncode != 0:
                # The parent is not reachable by ``postgres`` (e.g. a 0700 pytest dir):
                # fall back to the system temp dir (same filesystem in our setup).
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = tempfile.mkdtemp(prefix="cosmictron-bench-pg-", dir="/tmp")
                os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        initdb = [f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust"]
        self._run([*initdb, "--no-instructions", "-E", "UTF8"])
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=on -c synchronous_commit=on -c max_connections=100"
        )
        log = os.path.join(self.dir, "postgres.log")
        self._run([f"{self.bin}/pg_ctl", "-D", self.data, "-l", log, "-w", "-t", "60",
                   "-o", options, "start"])  # fmt: skip
        self.started = True
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for statement in PG_SCHEMA:
                conn.execute(statement)
            self.settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in (
                    "server_version",
                    "fsync",
                    "synchronous_commit",
                    "wal_sync_method",
                    "commit_delay",
                    "shared_buffers",
                    "full_page_writes",
                )
            }
        self.settings["data_dir"] = self.data

    def _find_bin(self) -> str:
        candidates = [os.environ.get("PG_BIN", ""), *PG_BIN_CANDIDATES]
        found = shutil.which("pg_ctl")
        if found:
            candidates.append(os.path.dirname(found))
        for directory in candidates:
            if directory and all(
                os.access(os.path.join(directory, tool), os.X_OK) for tool in ("initdb", "pg_ctl")
            ):
                return directory
        raise PostgresUnavailable(f"PostgreSQL is not installed (install: {PG_INSTALL_HINT})")

    def _run(self, command: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.prefix, *command], capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise PostgresUnavailable(
                f"{os.path.basename(command[0])} failed: {(result.stderr or result.stdout)[-800:]}"
            )
        return result

    def pids(self) -> list[int]:
        """The postmaster and every process it forked (backends, WAL writer, ...)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                master = int(f.readline())
        except (OSError, ValueError):
            return []
        pids = [master]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rpartition(")")[2].split()
                    if int(fields[1]) == master:
                        pids.append(int(entry))
                except (OSError, IndexError, ValueError):
                    pass
        return pids

    def stop(self) -> None:
        if self.started:
            try:
                self._run([f"{self.bin}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"],
                          check=False)  # fmt: skip
            except subprocess.TimeoutExpired:
                pids = self.pids()
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
            self.started = False
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


# -- measurement --------------------------------------------------------------------------


def scenario_shape(settings: Settings, many: bool, pipelined: bool) -> tuple[int, int]:
    return (settings.clients if many else 1), (settings.pipeline_depth if pipelined else 1)


def combine(slices: list[dict[str, Any]], clients: int, depth: int) -> dict[str, Any]:
    """Merge a scenario's slices of one engine: totals, rates and latency percentiles."""
    calls = sum(s["calls"] for s in slices)
    seconds = sum(s["seconds"] for s in slices)
    latencies = [x for s in slices for x in s["latencies_ms"]]
    server_cpu = sum(s["server_cpu_seconds"] for s in slices)
    client_cpu = sum(s["client_cpu_seconds"] for s in slices)
    counted = [s["server_counters"] for s in slices if "server_counters" in s]
    transactions = sum(c.get("transactions", 0) for c in counted)
    fsyncs = sum(c.get("fsyncs", 0) for c in counted)
    sync_seconds = sum(c.get("fsync_seconds", 0) for c in counted)
    return {
        "clients": clients,
        "in_flight_per_client": depth,
        "transactions_per_fsync": transactions / fsyncs if fsyncs else None,
        "fsync_ms_mean": sync_seconds / fsyncs * 1000 if fsyncs else None,
        "calls": calls,
        "errors": sum(s["errors"] for s in slices),
        "first_error": next((s["first_error"] for s in slices if s["first_error"]), None),
        "seconds": seconds,
        "calls_per_s": calls / seconds if seconds else 0.0,
        "latency_ms": stats(latencies),
        "server_cpu_fraction": server_cpu / seconds if seconds else None,
        "client_cpu_fraction": client_cpu / seconds if seconds else None,
        "slices_calls_per_s": [s["calls"] / s["seconds"] for s in slices],
    }


def measure(settings: Settings, parent: str) -> dict[str, Any]:
    results: dict[str, Any] = {"cosmictron": {}, "postgresql": {}}
    cosmo: CosmictronServer | None = None
    pg: PostgresServer | None = None
    timeout = settings.warmup_seconds + settings.slice_seconds + 120
    try:
        cosmo = CosmictronServer(parent)
        ws_url = cosmo.deploy("bench")
        fanout_urls = {
            "fanout": cosmo.deploy("fanout"),
            "fanout_low_rate": cosmo.deploy("fanout-low"),
        }
        try:
            pg = PostgresServer(parent)
            results["postgresql_settings"] = pg.settings
        except PostgresUnavailable as exc:
            reason = str(exc)
            print(f"[bench] PostgreSQL part skipped: {reason}", flush=True)
            results["postgresql"] = {"skipped": reason}
            if pg is not None:
                pg.stop()
            pg = None
        for key, label, many, pipelined in SCENARIOS:
            clients, depth = scenario_shape(settings, many, pipelined)
            print(f"[bench] {label} ({depth} in flight per client) ...", file=sys.stderr)
            slices: dict[str, list[dict[str, Any]]] = {"cosmictron": [], "postgresql": []}
            base = {
                "clients": clients,
                "depth": depth,
                "seconds": settings.slice_seconds,
                "warmup": settings.warmup_seconds,
            }
            for r in range(settings.rounds):
                engines = (
                    ["cosmictron", "postgresql"] if r % 2 == 0 else ["postgresql", "cosmictron"]
                )
                for engine in engines:
                    if engine == "cosmictron":
                        spec = {**base, "kind": "cosmictron", "ws_url": ws_url}
                        slices[engine].append(
                            run_client(spec, cosmo.pids, timeout, partial(cosmo.counters, "bench"))
                        )
                    elif pg is not None:
                        spec = {**base, "kind": "postgresql", "dsn": pg.dsn}
                        slices[engine].append(run_client(spec, pg.pids, timeout))
            results["cosmictron"][key] = combine(slices["cosmictron"], clients, depth)
            results["cosmictron"][key]["label"] = label
            if pg is not None:
                results["postgresql"][key] = combine(slices["postgresql"], clients, depth)
                results["postgresql"][key]["label"] = label
        for key, rate in (
            ("fanout", settings.fanout_rate),
            ("fanout_low_rate", settings.fanout_low_rate),
        ):
            print(f"[bench] subscription fan-out, {rate:.0f} calls/s ...", file=sys.stderr)
            spec = {
                "kind": "fanout",
                "ws_url": fanout_urls[key],
                "subscribers": settings.fanout_subscribers,
                "rate": rate,
                "seconds": settings.fanout_seconds,
            }
            database = "fanout" if key == "fanout" else "fanout-low"
            fanout = run_client(
                spec,
                cosmo.pids,
                settings.fanout_seconds + 120,
                partial(cosmo.counters, database),
            )
            fanout["server_cpu_fraction"] = fanout["server_cpu_seconds"] / fanout["seconds"]
            results[key] = fanout
    finally:
        if pg is not None:
            pg.stop()
        if cosmo is not None:
            cosmo.stop()
    ratios: dict[str, float | None] = {}
    for key, _, _, _ in SCENARIOS:
        peer = results["postgresql"].get(key)
        mine = results["cosmictron"][key]["calls_per_s"]
        ratios[key] = mine / peer["calls_per_s"] if peer and peer["calls_per_s"] else None
    results["ratios"] = ratios
    return results


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals, each met / missed / unknown (None when PostgreSQL was skipped)."""
    closed = results["cosmictron"]["closed_16"]["calls_per_s"]
    ratio = results["ratios"]["closed_16"]
    p99 = results["fanout"]["commit_to_receipt_ms"]["p99"]
    return [
        {
            "goal": ">= 15,000 calls/s, closed loop, 16 clients",
            "value": closed,
            "met": closed >= 15_000,
        },
        {
            "goal": ">= 2x PostgreSQL, closed loop, 16 clients",
            "value": ratio,
            "met": None if ratio is None else ratio >= 2,
        },
        {
            "goal": "fan-out p99 <= 20 ms (commit to receipt)",
            "value": p99,
            "met": p99 is not None and p99 <= 20,
        },
    ]


# -- report -------------------------------------------------------------------------------


def table_text(results: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    header = (
        "scenario",
        "in flight",
        "cosmictron calls/s",
        "p50 ms",
        "p99 ms",
        "postgresql calls/s",
        "p50 ms",
        "p99 ms",
        "ratio",
    )
    lines = []
    for key, label, _, _ in SCENARIOS:
        mine = results["cosmictron"][key]
        peer = results["postgresql"].get(key)
        ratio = results["ratios"][key]
        lines.append(
            (
                label,
                str(mine["in_flight_per_client"]),
                fmt(mine["calls_per_s"]),
                ms(mine["latency_ms"]["p50"]),
                ms(mine["latency_ms"]["p99"]),
                fmt(peer["calls_per_s"]) if peer else "skipped",
                ms(peer["latency_ms"]["p50"]) if peer else "-",
                ms(peer["latency_ms"]["p99"]) if peer else "-",
                "n/a" if ratio is None else f"{ratio:.2f}x",
            )
        )
    out = [text_table(header, lines)]
    out.append("")
    for key, _, _, _ in SCENARIOS:
        mine = results["cosmictron"][key]
        peer = results["postgresql"].get(key)
        cpu = f"{key}: CPU cores busy, cosmictron server {mine['server_cpu_fraction']:.2f}"
        cpu += f" + client {mine['client_cpu_fraction']:.2f}"
        if mine["transactions_per_fsync"] is not None:
            cpu += f" ({mine['transactions_per_fsync']:.1f} tx per fsync"
            cpu += f" of {mine['fsync_ms_mean']:.2f} ms)"
        if peer:
            cpu += f"; postgresql server {peer['server_cpu_fraction']:.2f}"
            cpu += f" + client {peer['client_cpu_fraction']:.2f}"
        out.append(cpu)
    if "skipped" in results["postgresql"]:
        out.append(f"PostgreSQL skipped: {results['postgresql']['skipped']}")
    out.append("")
    for key in ("fanout", "fanout_low_rate"):
        f = results[key]
        c, s = f["commit_to_receipt_ms"], f["send_to_receipt_ms"]
        out.append(
            f"fan-out at {f['rate_per_s']:.0f} calls/s: {f['subscribers']} subscribers, "
            f"{f['transactions']} transactions, {f['receipts']:,} of "
            f"{f['expected_receipts']:,} updates received; commit to receipt p50 "
            f"{ms(c['p50'])} ms, p99 {ms(c['p99'])} ms, max {ms(c['max'])} ms; call sent to "
            f"receipt p50 {ms(s['p50'])}, p99 {ms(s['p99'])}, max {ms(s['max'])} ms; "
            f"server CPU {f['server_cpu_fraction']:.2f} cores"
        )
    out.append("")
    for row in rows:
        verdict = {True: "met", False: "MISSED", None: "unknown"}[row["met"]]
        value = row["value"]
        shown = "n/a" if value is None else (f"{value:.2f}" if value < 100 else fmt(value))
        out.append(f"goal {row['goal']}: {shown} -> {verdict}")
    return "\n".join(out)


def load_average() -> list[float]:
    return list(os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(
        __doc__, "server.json", argv, quick_help="short loops, a few seconds", hidden=("--client",)
    )
    if args.client is not None:
        return client_main(args.client)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # clean up on SIGTERM as on Ctrl-C
    settings = QUICK if args.quick else FULL
    load_before = load_average()
    started = time.perf_counter()
    with temp_parent(args.tmpdir, "cosmictron-bench-server-") as parent:
        results = measure(settings, parent)
        machine = machine_info(parent)
    load_after = load_average()
    rows = goals(results)
    print(table_text(results, rows))
    print(
        f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"(1 min; {os.cpu_count()} cores); {run_took(started, args.mode)}"
    )
    machine["load_average_before"] = load_before
    machine["load_average_after"] = load_after
    for engine in ("cosmictron", "postgresql"):  # keep the JSON small: no raw samples
        for figures in results[engine].values():
            if isinstance(figures, dict):
                figures.pop("latencies_ms", None)
    workload = {
        "cosmictron_module": MODULE_SOURCE,
        "cosmictron_profile": "production",
        "postgresql_schema": list(PG_SCHEMA),
        "postgresql_call": PG_PREPARE,
        "fanout_query": FANOUT_QUERY,
        "fanout_latency": "subscriber wall clock at receipt minus the update's timestamp",
    }
    write_results(
        args.out,
        "server",
        args.mode,
        settings,
        machine,
        started,
        results,
        workload=workload,
        goals=rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
