"""Instructions per in-process reducer call, counted by valgrind (docs/design/hot-path.md).

    .venv/bin/python bench/count_instructions.py insert|update|empty [--calls 10000] [--base 2000]
        [--profile development|production]

Wall-clock rates on a shared, loaded machine move by 2x between runs; instruction counts
do not. This runs the calls under ``valgrind --tool=callgrind`` twice, with ``base`` and
with ``base + calls`` calls of ``insert_item`` (insert one row, one secondary index) or
``set_qty`` (find by primary key, update one column) of ``bench/bench_module.py``, or an
empty ``Database.run_transaction`` (``empty``: no rows, so what is left is the engine's
per-transaction cost: lock, record, append, listeners, durability wait) under
the ``development`` profile (fsync ``never``), as ``bench/run.py`` does, and prints the
difference divided by ``calls``: start-up and set-up cancel out. ``update`` bulk-loads the
same ``base + calls`` rows in both runs (``--rows``) and updates the first ``n`` of them, so
its figure is the update alone; before 2026-12-07 (inproc7) each run loaded only the rows
it updated, and the figure included each row's share of the bulk load (about 9k
instructions: 94,524 against 85,450 on main at b301e3b). ``--profile production``
adds the ``always`` policy's work per commit (the group-commit handshake, the write and
the ``fdatasync`` call; valgrind counts user space only, so not the kernel's share).
Needs valgrind on PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from callgrind import per_operation, program_instructions, require_valgrind

PATHS = ("insert", "update", "empty")


def _no_rows(tx: object, datastore: object) -> None:
    """An empty transaction's body: it writes nothing."""


def _no_args(_: None) -> list[object]:
    return []


def make_calls(path: str, n: int, profile: str = "development", rows: int = 0) -> None:
    """The measured program: open the bench module's database and make ``n`` calls.

    ``update`` first bulk-loads ``max(rows, n)`` rows: both runs of a measurement pass the
    same ``rows``, so the load cancels out of the difference with the rest of the set-up.
    """
    from engines import MODULE_PATH, row_values

    import cosmictron
    from cosmictron import DurabilityConfig

    parent = tempfile.mkdtemp(prefix="cosmictron-instructions-")
    try:
        durability = DurabilityConfig.from_profile(profile)
        db = cosmictron.Database.open(
            os.path.join(parent, "db"), module=str(MODULE_PATH), durability=durability
        )
        call = db.call
        if path == "empty":
            for _ in range(n):
                db.run_transaction("__empty__", _no_rows, _no_args)
        elif path == "insert":
            for i in range(n):
                call("insert_item", *row_values(i))
        else:
            db.bulk_insert("item", [row_values(i) for i in range(max(rows, n))])
            for k in range(n):
                call("set_qty", k, k + 1)
        db.close()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def instructions(path: str, n: int, profile: str = "development", rows: int = 0) -> int:
    """Instructions valgrind counts for the whole program making ``n`` calls."""
    return program_instructions(
        __file__, [path, "--make-calls", str(n), "--profile", profile, "--rows", str(rows)]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", choices=PATHS)
    parser.add_argument("--calls", type=int, default=10_000, help="calls counted (10000)")
    parser.add_argument("--base", type=int, default=2_000, help="calls subtracted (2000)")
    parser.add_argument(
        "--profile",
        choices=("development", "production"),
        default="development",
        help="durability profile (development: no fsync)",
    )
    parser.add_argument("--make-calls", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make_calls is not None:
        make_calls(args.path, args.make_calls, args.profile, args.rows)
        return 0
    require_valgrind()
    each = per_operation(
        partial(instructions, args.path, profile=args.profile, rows=args.base + args.calls),
        args.base,
        args.calls,
    )
    print(f"{args.path} ({args.profile}): {each:,.0f} instructions per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
