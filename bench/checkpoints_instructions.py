"""Instructions per checkpoint get or put, CosmictronSaver and SqliteSaver, by valgrind.

    .venv/bin/python bench/checkpoints_instructions.py get|put [--ops 200] [--saver S]

Wall-clock rates on the shared machine move by 4x between runs (fsync latency most of
all); instruction counts do not. This runs the workload of ``bench/checkpoints.py``
under ``valgrind --tool=callgrind`` with 0 and with ``ops`` operations and prints the
difference divided by the operations: start-up, imports and set-up cancel out. A get is
one ``get_tuple`` (half of the newest, half by id, on a thread of 50 checkpoints); a put
is one ``put`` and one ``put_writes`` of two writes. Cosmictron runs with the
``production`` profile. Only user space is counted: fsyncs and the kernel's page-cache
reads are not, so this is each saver's CPU, not its durable rate. Needs valgrind.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SAVERS = ("sqlite", "production")


def run_ops(saver_kind: str, what: str, n: int) -> None:
    """The measured program: ``n`` gets or puts on a fresh saver."""
    import checkpoints as bench

    parent = Path(tempfile.mkdtemp(prefix="cosmictron-cp-instructions-"))
    try:
        maker = (
            bench.sqlite_saver
            if saver_kind == "sqlite"
            else (lambda p: bench.cosmictron_saver(p, saver_kind))
        )
        values = bench.states(max(n, 50))
        with maker(parent / "db") as saver:
            if what == "put":
                bench.put_loop(saver, "warm", values[:5])
                bench.put_loop(saver, "t", values[:n])
                return
            ids = bench.put_loop(saver, "t", values[:50])
            rng = random.Random(3)
            latest = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
            for _ in range(n // 2):
                assert saver.get_tuple(latest) is not None
                at = {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": rng.choice(ids)}
                assert saver.get_tuple({"configurable": at}) is not None
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def instructions(saver_kind: str, what: str, n: int) -> int:
    """Instructions valgrind counts for the whole program making ``n`` operations."""
    valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    done = subprocess.run(
        [*valgrind, sys.executable, __file__, what, "--saver", saver_kind, "--run-ops", str(n)],
        capture_output=True,
        text=True,
        check=False,
        # one hash seed for every run: dict and set layouts, so the counts, repeat
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    collected = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or collected is None:
        raise SystemExit(f"valgrind failed:\n{done.stderr[-2000:]}")
    return int(collected[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("what", choices=("get", "put"))
    parser.add_argument("--ops", type=int, default=200, help="operations counted (200)")
    parser.add_argument("--saver", choices=SAVERS, help="one saver (default: both)")
    parser.add_argument("--run-ops", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_ops is not None:
        run_ops(args.saver, args.what, args.run_ops)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not on PATH (apt-get install valgrind)")
    for saver_kind in [args.saver] if args.saver else SAVERS:
        low = instructions(saver_kind, args.what, 0)
        high = instructions(saver_kind, args.what, args.ops)
        print(f"{saver_kind} {args.what}: {(high - low) / args.ops:,.0f} instructions each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
