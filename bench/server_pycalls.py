"""Python function calls the server makes per reducer call: a repeatable measure of work.

    .venv/bin/python bench/server_pycalls.py [--calls 500]

Wall and CPU times on a shared machine move by tens of percent between runs, and
callgrind's instruction counts of this server are not repeatable either (two threads
hand the GIL to each other on a timer, and under valgrind that timer fires in proportion
to the slowed-down run). The number of Python function calls is: this runs the server
under cProfile (every thread: ``COSMICTRON_BENCH_PROFILE``, as ``bench/server.py``
offers), makes 10 and then ``10 + --calls`` calls (closed loop, one client) over each
transport, and prints the difference per call: the server's Python calls per reducer
call, set-up excluded. Compare two trees by running it with each on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from server_bench.peers import CosmictronServer  # noqa: E402
from server_bench.workload import JSON_PROTOCOL, MSGPACK_PROTOCOL  # noqa: E402
from server_trace import http_calls, ws_calls  # noqa: E402

TRANSPORTS = ("ws-json", "ws-msgpack", "http")


def python_calls(parent: str, transport: str, calls: int) -> int:
    out = Path(parent) / f"profile-{transport}-{calls}.out"
    os.environ["COSMICTRON_BENCH_PROFILE"] = str(out)
    try:
        server = CosmictronServer(parent)
    finally:
        del os.environ["COSMICTRON_BENCH_PROFILE"]
    try:
        ws_url = server.deploy("bench")
        if transport == "http":
            asyncio.run(http_calls(server.url, server.new_identity_token(), calls))
        else:
            protocol = JSON_PROTOCOL if transport == "ws-json" else MSGPACK_PROTOCOL
            asyncio.run(ws_calls(ws_url, protocol, calls))
    finally:
        server.stop()
    return int(pstats.Stats(str(out)).total_calls)  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cosmictron-pycalls-") as parent:
        for transport in args.transports.split(","):
            try:
                base = python_calls(parent, transport, 10)
                loaded = python_calls(parent, transport, 10 + args.calls)
            except Exception as exc:  # e.g. a tree that does not speak msgpack (400)
                print(f"{transport}: not measured ({str(exc).splitlines()[0]})")
                continue
            per_call = (loaded - base) / args.calls
            print(f"{transport}: {per_call:.1f} Python function calls per reducer call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
