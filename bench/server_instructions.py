"""Instructions the server executes per WebSocket reducer call, counted by valgrind.

    .venv/bin/python bench/server_instructions.py [--calls 2000] [--shapes closed1,closed16,piped16]
        [--protocols json,msgpack] [--annotate DIR]

Wall-clock rates of ``bench/server.py`` on a shared machine move by 2x between runs and
its fsyncs by 10x; the instructions the server process executes per call do not depend
on the load. This starts ``cosmictron-cli start --profile production`` (fsync ``always``)
under ``valgrind --tool=callgrind`` with instrumentation off (start-up runs about ten
times faster so), deploys the benchmark's module, and for each protocol and load shape:
warms up, turns instrumentation on (``callgrind_control --instr=on``), warms up a little
more, zeroes the counters (``--zero``), makes ``--calls`` calls from a client process
outside valgrind, dumps (``--dump``) and turns instrumentation off: the dump holds
exactly that window's instructions, every thread of the server included (the event
loop, the call thread, the sync). Printed: instructions per call, and calls per fsync
(group commit makes batches; under valgrind the server is ~50x slower, so batches differ
from a real run's).

Load shapes: ``closed1`` one client, one call in flight (every wake-up and hand-off paid
per call); ``closed16`` 16 clients, one call in flight each; ``piped16`` 16 clients, 16
in flight each (``bench/server.py``'s scenarios). ``--annotate DIR`` keeps the dumps
there for ``callgrind_annotate`` (``--threads``: a file per thread).

The server's GIL switch interval is scaled by valgrind's slow-down (50x: whatever the
server sets with ``sys.setswitchinterval`` is multiplied by 50), so that a thread holding
the GIL is preempted about as often per unit of work as it is at full speed; otherwise
the timer preempts the loop and the call thread 50x more often per call than in a real
run, and the counts grow with it.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from processes import CLI_PRELUDE, CliServer  # noqa: E402
from server_bench.peers import CosmictronServer  # noqa: E402
from server_bench.workload import (  # noqa: E402
    JSON_PROTOCOL,
    MODULE_SOURCE,
    MSGPACK_PROTOCOL,
    call_frame,
    decode_frame,
)

SHAPES = {"closed1": (1, 1), "closed16": (16, 1), "piped16": (16, 16)}
PROTOCOL_NAMES = {"json": JSON_PROTOCOL, "msgpack": MSGPACK_PROTOCOL}
SLOWDOWN = 50
LAUNCHER = (
    CLI_PRELUDE
    + f"; scaled = sys.setswitchinterval; sys.setswitchinterval = lambda s: scaled(s * {SLOWDOWN})"
    + "; sys.setswitchinterval(0.005); main()"
)


async def _client(
    session: Any, url: str, protocol: str, index: int, calls: int, depth: int
) -> None:
    import aiohttp

    ws = await session.ws_connect(url, protocols=(protocol,), max_msg_size=0)
    await ws.receive(timeout=600)  # IdentityToken
    binary = protocol != JSON_PROTOCOL
    send = ws.send_bytes if binary else ws.send_str
    sent = answered = 0
    while sent < min(depth, calls):
        await send(call_frame(protocol, index, sent))
        sent += 1
    while answered < calls:
        frame = await ws.receive(timeout=600)
        if frame.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            raise RuntimeError(f"connection {index} ended: {frame.type} {frame.data!r}")
        result = decode_frame(frame.data).get("ReducerResult")
        if result is None:
            continue
        if result["status"] != "committed":
            raise RuntimeError(f"call failed: {result}")
        answered += 1
        if sent < calls:
            await send(call_frame(protocol, index, sent))
            sent += 1
    await ws.close()


async def load(url: str, protocol: str, calls: int, clients: int, depth: int) -> None:
    """``calls`` calls in all, spread over ``clients`` connections, ``depth`` in flight."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        per_client = calls // clients
        await asyncio.gather(
            *(_client(session, url, protocol, i, per_client, depth) for i in range(clients))
        )


def callgrind_control(pid: int, *options: str) -> None:
    subprocess.run(["callgrind_control", *options, str(pid)], check=True, capture_output=True)


def dumped_instructions(out_dir: str, before: set[str]) -> tuple[int, str]:
    """The instructions of the newest dump (every thread's file of it summed)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        new = sorted(set(glob.glob(os.path.join(out_dir, "callgrind.out.*"))) - before)
        if new:
            time.sleep(1.0)  # let every thread's part be written
            total = 0
            for path in new:
                text = Path(path).read_text(errors="replace")
                found = re.search(r"^summary: (\d+)", text, re.M) or re.search(
                    r"^totals: (\d+)", text, re.M
                )
                if found:
                    total += int(found[1])
            return total, new[0]
        time.sleep(0.5)
    raise RuntimeError("callgrind wrote no dump")


class ValgrindServer(CliServer):
    """The CLI server run under callgrind, collection zeroed and dumped on demand."""

    counters = CosmictronServer.counters

    def __init__(self, parent: str, out_dir: str, threads: bool = False) -> None:
        wrapper = (
            "valgrind",
            "--tool=callgrind",
            "--fair-sched=yes",
            "--instr-atstart=no",
            f"--separate-threads={'yes' if threads else 'no'}",
            f"--callgrind-out-file={out_dir}/callgrind.out.%p",
        )
        super().__init__(
            parent,
            "cosmictron-instructions-",
            launcher=LAUNCHER,
            wrapper=wrapper,
            listening_timeout_s=600.0,
        )


def fsyncs_of(server: ValgrindServer) -> float:
    return server.counters("bench").get("fsyncs", 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls counted per shape")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--protocols", default="json,msgpack")
    parser.add_argument("--annotate", help="keep the callgrind dumps in this directory")
    parser.add_argument(
        "--threads", action="store_true", help="one dump file per thread (with --annotate)"
    )
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="cosmictron-srv-instr-") as parent:
        out_dir = args.annotate or os.path.join(parent, "dumps")
        os.makedirs(out_dir, exist_ok=True)
        server = ValgrindServer(parent, out_dir, args.threads)
        try:
            ws_url = server.deploy("bench", MODULE_SOURCE.encode())
            pid = server.proc.pid
            for name in args.protocols.split(","):
                protocol = PROTOCOL_NAMES[name]
                for shape in args.shapes.split(","):
                    clients, depth = SHAPES[shape]
                    asyncio.run(load(ws_url, protocol, args.warmup, clients, depth))
                    callgrind_control(pid, "--instr=on")
                    asyncio.run(load(ws_url, protocol, 4 * clients, clients, depth))
                    before = set(glob.glob(os.path.join(out_dir, "callgrind.out.*")))
                    fsyncs = fsyncs_of(server)
                    callgrind_control(pid, "--zero")
                    asyncio.run(load(ws_url, protocol, args.calls, clients, depth))
                    callgrind_control(pid, "--dump")
                    callgrind_control(pid, "--instr=off")
                    total, dump = dumped_instructions(out_dir, before)
                    calls = args.calls // clients * clients
                    per_sync = calls / max(fsyncs_of(server) - fsyncs, 1)
                    print(
                        f"{name:8} {shape:9} {total / calls:>10,.0f} instructions per call "
                        f"({calls} calls, {per_sync:.1f} calls per fsync; "
                        f"{os.path.basename(dump)})",
                        flush=True,
                    )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
