"""Where one server call's time goes: timestamps along the path, one client, closed loop.

    .venv/bin/python bench/server_trace.py [--calls 2000] [--out bench/results/server_trace.json]

Starts a real server (``cosmictron-cli start --profile production``: fsync ``always``)
whose launcher records a timestamp at each point of a call's path
(``server_bench/trace.py`` lists them), deploys the server benchmark's module, and makes
``--calls`` calls of ``add_task`` one at a time from this process: over WebSocket with
each protocol the server speaks, then over HTTP ``POST /v1/database/bench/call/add_task``
(keep-alive, with a bearer token). Prints, per transport, the median and mean of every
segment of the path and the client's round trip, and writes them as JSON. The server's
CPU per call (from /proc over the whole run) is printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import text_table  # noqa: E402
from processes import CLI_PRELUDE, CliServer, cpu_delta, cpu_ticks  # noqa: E402
from server_bench.trace import TRACED_MAIN, segments, summary, table  # noqa: E402
from server_bench.workload import MODULE_SOURCE, PROTOCOLS, call_frame  # noqa: E402


async def ws_calls(url: str, protocol: str, calls: int) -> list[float]:
    import aiohttp

    rtts = []
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url, protocols=(protocol,), max_msg_size=0)
        await ws.receive(timeout=30)  # IdentityToken
        for n in range(calls):
            frame = call_frame(protocol, 0, n)
            sent = time.perf_counter()
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
            reply = await ws.receive(timeout=30)
            rtts.append((time.perf_counter() - sent) * 1e6)
            if reply.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                raise RuntimeError(f"connection ended: {reply.type}")
        await ws.close()
    return rtts


async def http_calls(base: str, token: str, calls: int) -> list[float]:
    import aiohttp

    rtts = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        url = f"{base}/v1/database/bench/call/add_task"
        for n in range(calls):
            body = f'["task {n}",{n % 100}]'.encode()
            sent = time.perf_counter()
            async with session.post(url, data=body) as reply:
                await reply.read()
                if reply.status != 200:
                    raise RuntimeError(f"HTTP {reply.status}")
            rtts.append((time.perf_counter() - sent) * 1e6)
    return rtts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated")
    parser.add_argument("--out", default=str(HERE / "results" / "server_trace.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cosmictron-trace-") as parent:
        marks_file = os.path.join(parent, "marks.json")
        runs: list[tuple[str, list[float], int, int, float]] = []
        server = CliServer(
            parent, "cosmictron-trace-", launcher=CLI_PRELUDE + TRACED_MAIN.format(out=marks_file)
        )
        try:
            ws_url = server.deploy("bench", MODULE_SOURCE.encode())
            for protocol in args.protocols.split(","):
                asyncio.run(ws_calls(ws_url, protocol, 200))  # warm-up
                t0, c0 = time.perf_counter_ns(), cpu_ticks(server.pids())
                rtts = asyncio.run(ws_calls(ws_url, protocol, args.calls))
                cpu = cpu_delta(c0, cpu_ticks(server.pids()))
                runs.append((f"websocket {protocol}", rtts, t0, time.perf_counter_ns(), cpu))
            asyncio.run(http_calls(server.url, server.token, 200))
            t0, c0 = time.perf_counter_ns(), cpu_ticks(server.pids())
            rtts = asyncio.run(http_calls(server.url, server.token, args.calls))
            cpu = cpu_delta(c0, cpu_ticks(server.pids()))
            runs.append(("http", rtts, t0, time.perf_counter_ns(), cpu))
        finally:
            server.stop()
        marks = [tuple(m) for m in json.loads(Path(marks_file).read_text())]
    rows = segments(marks)  # type: ignore[arg-type]
    for name, rtts, t0, t1, cpu in runs:
        # perf_counter is CLOCK_MONOTONIC, shared by both processes: keep the run's calls.
        measured = [row for row in rows if t0 <= row["start_ns"] <= t1]
        print(
            f"\n{name}: {len(measured)} calls traced; client round trip median "
            f"{statistics.median(rtts):.1f} µs, mean {statistics.fmean(rtts):.1f} µs; "
            f"server CPU {cpu / len(rtts) * 1e6:.1f} µs per call"
        )
        print(text_table(("segment", "what", "median µs", "mean µs"), table(measured)))
        results[name] = {
            "client_rtt_median_us": statistics.median(rtts),
            "client_rtt_mean_us": statistics.fmean(rtts),
            "server_cpu_us_per_call": cpu / len(rtts) * 1e6,
            "segments": [
                {"segment": k, "median_us": m, "mean_us": a} for k, m, a in summary(measured)
            ],
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
