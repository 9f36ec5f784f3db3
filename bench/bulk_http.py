"""Bulk load through the server: ``POST .../bulk_insert/item`` against SQLite, in one run.

    .venv/bin/python bench/bulk_http.py [--quick] [--out FILE.json] [--tmpdir DIR]

Cosmictron: a real server process (``cosmictron-cli start --profile production``, so the
load's one transaction is fsynced before the reply) with ``bench_module.py`` deployed: the
``item`` table with its primary key and one secondary index (on ``owner``). The body is a
CSV of 1,000,000 rows (``--quick``: 50,000) built beforehand; the clock runs from sending
the request to reading the reply, so it includes the upload over loopback, parsing,
conversion, checks, the insert, the log record and its fsync.

SQLite, in this process, same table and index, WAL with ``synchronous=FULL``:

- ``sqlite``: ``executemany`` of the prebuilt row tuples in one transaction, the peer
  named by the targets (rows/s through the endpoint >= 300k and >= 3x this);
- ``sqlite_from_csv``: the same, starting from the same CSV bytes (``csv.reader`` and
  per-column conversion), which is the work the endpoint does; printed for context.

Targets are printed, never asserted (bench/README.md).
"""

from __future__ import annotations

import csv
import gc
import io
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine_info, parse_args, temp_parent, write_results  # noqa: E402
from engines import MODULE_PATH, SQLITE_SCHEMA, row_values  # noqa: E402
from processes import CliServer  # noqa: E402

FULL_ROWS = 1_000_000
QUICK_ROWS = 50_000
TARGET_ROWS_PER_S = 300_000
TARGET_RATIO = 3.0


def csv_body(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "name", "qty", "price", "owner"])
    writer.writerows(row_values(i) for i in range(rows))
    return out.getvalue().encode()


def measure_endpoint(parent: str, body: bytes, rows: int) -> dict[str, Any]:
    server = CliServer(parent, "server-")
    try:
        status, reply = server.request(
            "PUT", "/v1/database/bench", MODULE_PATH.read_bytes(), content_type="text/x-python"
        )
        if status >= 400:
            raise SystemExit(f"PUT /v1/database/bench failed: {reply}")
        gc.collect()
        cpu_before = process_cpu_seconds(server.proc.pid)
        start = time.perf_counter()
        status, reply = server.request(
            "POST",
            "/v1/database/bench/bulk_insert/item",
            body,
            content_type="text/csv",
            timeout_s=600,
        )
        seconds = time.perf_counter() - start
        cpu_seconds = process_cpu_seconds(server.proc.pid) - cpu_before
        if status >= 400:
            raise SystemExit(f"POST /v1/database/bench/bulk_insert/item failed: {reply}")
        assert reply["rows_inserted"] == rows, reply
    finally:
        server.stop()
    return {
        "rows_per_s": rows / seconds,
        "seconds": seconds,
        "body_bytes": len(body),
        "server_cpu_seconds": cpu_seconds,
        "rows_per_server_cpu_s": rows / cpu_seconds if cpu_seconds > 0 else None,
    }


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` (Linux ``/proc``), so far.

    On a machine shared with other work the wall-clock rate moves with the load; the
    server's CPU for the request does not (much), so before/after comparisons use it.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sqlite_connection(parent: str) -> sqlite3.Connection:
    directory = tempfile.mkdtemp(prefix="sqlite-", dir=parent)
    conn = sqlite3.connect(os.path.join(directory, "db.sqlite"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    for statement in SQLITE_SCHEMA:
        conn.execute(statement)
    return conn


def measure_sqlite(parent: str, rows: int, body: bytes) -> dict[str, Any]:
    insert = "INSERT INTO item VALUES (?, ?, ?, ?, ?)"
    tuples = [row_values(i) for i in range(rows)]
    conn = sqlite_connection(parent)
    gc.collect()
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(insert, tuples)
    conn.execute("COMMIT")
    tuples_seconds = time.perf_counter() - start
    conn.close()
    del tuples
    conn = sqlite_connection(parent)
    gc.collect()
    start = time.perf_counter()
    reader = csv.reader(io.StringIO(body.decode()))
    next(reader)
    ids, names, qtys, prices, owners = zip(*reader, strict=True)
    converted = zip(map(int, ids), names, map(int, qtys), map(float, prices), owners, strict=True)
    conn.execute("BEGIN")
    conn.executemany(insert, converted)
    conn.execute("COMMIT")
    csv_seconds = time.perf_counter() - start
    conn.close()
    return {
        "sqlite": {"rows_per_s": rows / tuples_seconds, "seconds": tuples_seconds},
        "sqlite_from_csv": {"rows_per_s": rows / csv_seconds, "seconds": csv_seconds},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, "bulk_http.json", argv, quick_help=f"{QUICK_ROWS:,} rows")
    rows = QUICK_ROWS if args.quick else FULL_ROWS
    with temp_parent(args.tmpdir, "cosmictron-bench-") as parent:
        body = csv_body(rows)
        endpoint = measure_endpoint(parent, body, rows)
        peers = measure_sqlite(parent, rows, body)
        info = machine_info(parent)
    ratio = endpoint["rows_per_s"] / peers["sqlite"]["rows_per_s"]
    ratio_csv = endpoint["rows_per_s"] / peers["sqlite_from_csv"]["rows_per_s"]
    met_rate = endpoint["rows_per_s"] >= TARGET_ROWS_PER_S
    met_ratio = ratio >= TARGET_RATIO
    print(f"bulk load of {rows:,} rows, one secondary index, fsync on commit")
    print(f"  cosmictron POST bulk_insert (CSV) {endpoint['rows_per_s']:>12,.0f} rows/s")
    cpu = endpoint["server_cpu_seconds"]
    print(f"  (server CPU for the request {cpu:.2f} s, user + system)")
    print(f"  sqlite executemany (tuples)       {peers['sqlite']['rows_per_s']:>12,.0f} rows/s")
    from_csv = peers["sqlite_from_csv"]["rows_per_s"]
    print(f"  sqlite from the same CSV          {from_csv:>12,.0f} rows/s")
    print(f"  ratio vs sqlite executemany {ratio:.2f}x (target >= {TARGET_RATIO}x: "
          f"{'met' if met_ratio else 'MISSED'})")  # fmt: skip
    print(f"  ratio vs sqlite from CSV    {ratio_csv:.2f}x")
    print(f"  rows/s target >= {TARGET_ROWS_PER_S:,}: {'met' if met_rate else 'MISSED'}")
    # No settings, duration or results keys: this suite's figures are at the top level.
    write_results(
        args.out,
        "bulk_http",
        args.mode,
        None,
        info,
        None,
        None,
        rows=rows,
        cosmictron_endpoint={**endpoint, "profile": "production"},
        **peers,
        sqlite_synchronous="FULL",
        ratio_vs_sqlite=ratio,
        ratio_vs_sqlite_from_csv=ratio_csv,
        targets={
            "rows_per_s": {"target": TARGET_ROWS_PER_S, "met": met_rate},
            "ratio_vs_sqlite": {"target": TARGET_RATIO, "met": met_ratio},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
