"""cProfile the Cosmictron side of one benchmark path, to see where the time goes.

    .venv/bin/python bench/profile_paths.py insert|update|bulk|replay|replay-small [--policy never]
        [--n N] [--top 25] [--sort tottime|cumulative]

Profiles only the Cosmictron calls (setup and data generation are outside the profile).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engines import MODULE_PATH, POLICIES, row_values

import cosmictron
from cosmictron import DurabilityConfig


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "path", choices=["insert", "update", "bulk", "replay", "replay-snapshot", "replay-small"]
    )
    parser.add_argument("--policy", default="never", choices=list(POLICIES))
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="tottime")
    args = parser.parse_args()
    profile_name = POLICIES[args.policy][0]
    if args.path in ("bulk", "replay", "replay-snapshot"):
        profile_name = "production"
    durability = DurabilityConfig.from_profile(profile_name)
    parent = tempfile.mkdtemp(prefix="cosmictron-profile-")
    data = os.path.join(parent, "db")
    profiler = cProfile.Profile()
    try:
        db = cosmictron.Database.open(data, module=str(MODULE_PATH), durability=durability)
        call = db.call
        if args.path == "insert":
            n = args.n or 100_000
            rows = [row_values(i) for i in range(n)]
            start = time.perf_counter()
            profiler.enable()
            for r in rows:
                call("insert_item", *r)
            profiler.disable()
        elif args.path == "update":
            n = args.n or 100_000
            db.bulk_insert("item", [row_values(i) for i in range(n)])
            start = time.perf_counter()
            profiler.enable()
            for k in range(n):
                call("set_qty", k, k + 1)
            profiler.disable()
        elif args.path == "bulk":
            n = args.n or 1_000_000
            rows = [row_values(i) for i in range(n)]
            start = time.perf_counter()
            profiler.enable()
            db.bulk_insert("item", rows)
            profiler.disable()
        else:
            n = args.n or (100_000 if args.path == "replay-small" else 1_000_000)
            if args.path != "replay-small":
                db.bulk_insert("item", [row_values(i) for i in range(n)])
                if args.path == "replay-snapshot":
                    db.snapshot()
            else:
                for i in range(n):
                    call("insert_item", *row_values(i))
            db.close()
            start = time.perf_counter()
            profiler.enable()
            db = cosmictron.Database.open(data)
            profiler.disable()
        elapsed = time.perf_counter() - start
        db.close()
        label = args.policy if args.path in ("insert", "update") else profile_name
        print(f"{args.path} ({label}), n={n}: {elapsed:.2f}s under the profiler")
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
        print(out.getvalue())
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
