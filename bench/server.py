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
never in the server's: asyncio (uvloop when installed), each client driven from event-loop
callbacks with no task per message: a hand-written RFC 6455 client for Cosmictron
(``server_bench/lean_ws.py``; ``COSMICTRON_BENCH_WS_CLIENT=aiohttp`` runs aiohttp's client
instead, the benchmark's client before issue 11's srv7 round) and libpq in pipeline mode
(psycopg's ``pq`` layer) for PostgreSQL, so the client side costs about the same for both.
On a 2-core machine the client and the server share the cores; both processes' CPU time
over the measured window is recorded, which tells whether the server or the client was
the limit.

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
FILE`` runs the Cosmictron server under cProfile (every thread) and dumps the merged
stats to FILE at shutdown.

The parts live in the ``server_bench`` package next to this file (one module per job:
workload, scenarios, peers, the load generator, measurement, report); this file is the
command. See bench/README.md, "Server".
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import machine_info, parse_args, run_took, temp_parent, write_results  # noqa: E402
from server_bench.client import client_main  # noqa: E402
from server_bench.load import WS_CLIENT_ENV  # noqa: E402
from server_bench.measure import goals, measure  # noqa: E402
from server_bench.report import table_text  # noqa: E402
from server_bench.scenarios import FULL, QUICK  # noqa: E402
from server_bench.workload import FANOUT_QUERY, MODULE_SOURCE, PG_PREPARE, PG_SCHEMA  # noqa: E402


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
        "websocket_client": os.environ.get(WS_CLIENT_ENV, "lean"),
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
