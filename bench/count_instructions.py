"""Instructions per in-process reducer call, counted by valgrind (docs/design/hot-path.md).

    .venv/bin/python bench/count_instructions.py insert|update [--calls 10000] [--base 2000]

Wall-clock rates on a shared, loaded machine move by 2x between runs; instruction counts
do not. This runs the calls under ``valgrind --tool=callgrind`` twice, with ``base`` and
with ``base + calls`` calls of ``insert_item`` (insert one row, one secondary index) or
``set_qty`` (find by primary key, update one column) of ``bench/bench_module.py`` under
the ``development`` profile (fsync ``never``), as ``bench/run.py`` does, and prints the
difference divided by ``calls``: start-up and set-up cancel out. Needs valgrind on PATH.
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

PATHS = ("insert", "update")


def make_calls(path: str, n: int) -> None:
    """The measured program: open the bench module's database and make ``n`` calls."""
    from engines import MODULE_PATH, row_values

    import cosmictron
    from cosmictron import DurabilityConfig

    parent = tempfile.mkdtemp(prefix="cosmictron-instructions-")
    try:
        durability = DurabilityConfig.from_profile("development")
        db = cosmictron.Database.open(
            os.path.join(parent, "db"), module=str(MODULE_PATH), durability=durability
        )
        call = db.call
        if path == "insert":
            for i in range(n):
                call("insert_item", *row_values(i))
        else:
            db.bulk_insert("item", [row_values(i) for i in range(n)])
            for k in range(n):
                call("set_qty", k, k + 1)
        db.close()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def instructions(path: str, n: int) -> int:
    """Instructions valgrind counts for the whole program making ``n`` calls."""
    return program_instructions(__file__, [path, "--make-calls", str(n)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", choices=PATHS)
    parser.add_argument("--calls", type=int, default=10_000, help="calls counted (10000)")
    parser.add_argument("--base", type=int, default=2_000, help="calls subtracted (2000)")
    parser.add_argument("--make-calls", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make_calls is not None:
        make_calls(args.path, args.make_calls)
        return 0
    require_valgrind()
    each = per_operation(partial(instructions, args.path), args.base, args.calls)
    print(f"{args.path}: {each:,.0f} instructions per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
