"""Instructions per server call, counted by callgrind: the direction of a change, under load.

    .venv/bin/python bench/server_callgrind.py [--calls 300] [--transport ws-json|ws-msgpack|http]

Wall times on a shared machine move by tens of percent between runs; instruction counts
do not. This starts the server under ``valgrind --tool=callgrind`` twice, once making
``--calls`` calls (closed loop, one client, as ``server_trace.py``) and once making none
beyond the same set-up, and prints the difference divided by the calls: the server's
instructions per call, startup excluded. Run it on two trees (``PYTHONPATH``) to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import processes  # noqa: E402
from processes import CliServer  # noqa: E402
from server_bench.workload import JSON_PROTOCOL, MODULE_SOURCE, MSGPACK_PROTOCOL  # noqa: E402
from server_trace import http_calls, ws_calls  # noqa: E402


def instructions(parent: str, transport: str, calls: int) -> int:
    out = Path(parent) / f"callgrind-{transport}-{calls}.out"
    original = subprocess.Popen

    def under_valgrind(command: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        return original([*prefix, *command], **kwargs)  # type: ignore[call-overload]

    processes.subprocess.Popen = under_valgrind  # type: ignore[assignment]
    processes.LISTENING_TIMEOUT_S = 600
    try:
        server = CliServer(parent, "cosmictron-callgrind-")
    finally:
        processes.subprocess.Popen = original  # type: ignore[assignment]
    try:
        ws_url = server.deploy("bench", MODULE_SOURCE.encode())
        token = server.token
        if transport == "http":
            asyncio.run(http_calls(server.url, token, calls))
        else:
            protocol = JSON_PROTOCOL if transport == "ws-json" else MSGPACK_PROTOCOL
            asyncio.run(ws_calls(ws_url, protocol, calls))
    finally:
        server.stop()
    text = out.read_text(errors="replace")
    found = re.search(r"^summary:\s+(\d+)", text, re.MULTILINE) or re.search(
        r"^totals:\s+(\d+)", text, re.MULTILINE
    )
    if found is None:
        raise RuntimeError(f"no totals in {out}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--transport", default="ws-json", choices=("ws-json", "ws-msgpack", "http"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cosmictron-callgrind-") as parent:
        base = instructions(parent, args.transport, 1)
        loaded = instructions(parent, args.transport, args.calls + 1)
    per_call = (loaded - base) / args.calls
    print(f"{args.transport}: {per_call:,.0f} instructions per call ({args.calls} calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
