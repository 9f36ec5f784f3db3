"""Core benchmark: Cosmictron against SQLite at matching durability, in one run.

    .venv/bin/python bench/run.py [--quick] [--out bench/results/core.json] [--tmpdir DIR]

Prints one table (metric, Cosmictron figure, SQLite figure, ratio, target, met/missed)
and writes every figure plus machine information as JSON. Targets are printed, never
asserted: the exit status is 0 whenever the run completes. See bench/README.md.

Fairness rules:
- both engines run in this process, on temp directories under the same parent (same
  filesystem), removed afterwards;
- the SQLite table has the same five columns and the same secondary index on ``owner``,
  and every SQLite operation is its own ``BEGIN; stmt; COMMIT`` in WAL mode;
- durability is matched: never <-> synchronous=OFF, periodic <-> NORMAL,
  always <-> FULL;
- time-bounded measurements are split into slices and the two engines alternate slices,
  the order flipping each round, so drift in the machine (page cache, CPU frequency,
  other tenants) hits both equally.
"""

import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import machine_info, parse_args, run_took, temp_parent, write_results  # noqa: E402
from core_metrics import (  # noqa: E402
    FULL,
    QUICK,
    measure_bulk_and_replay,
    measure_concurrency,
    measure_memory,
    measure_single_row,
)
from core_report import evaluate, table_text  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, "core.json", argv, quick_help="small N, whole run < 60 s")
    settings = QUICK if args.quick else FULL
    results: dict[str, Any] = {}
    started = time.perf_counter()
    steps = (
        ("single-row insert/update", measure_single_row),
        ("concurrent callers", measure_concurrency),
        ("bulk load and replay", measure_bulk_and_replay),
        ("memory per row", measure_memory),
    )
    with temp_parent(args.tmpdir, "cosmictron-bench-") as parent:
        for label, step in steps:
            t = time.perf_counter()
            print(f"[bench] {label} ...", file=sys.stderr, flush=True)
            step(settings, parent, results)
            print(
                f"[bench] {label} done in {time.perf_counter() - t:.1f}s",
                file=sys.stderr,
                flush=True,
            )
        machine = machine_info(parent)
    rows = evaluate(results, settings.threads)
    print(table_text(rows))
    print(
        f"\n{sum(r['met'] is True for r in rows)} met, "
        f"{sum(r['met'] is False for r in rows)} missed; {run_took(started, args.mode)}"
    )
    write_results(args.out, "core", args.mode, settings, machine, started, results, summary=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
