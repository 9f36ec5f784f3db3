"""What every benchmark command shares: its options, temp directory, table, and JSON file.

The commands (``run.py``, ``sql.py``, ``subscriptions.py``, ``server.py``,
``bulk_http.py``) measure different things but present them the same way, so that their
figures can be read and compared alike: ``--quick`` / ``--out`` / ``--tmpdir``, data
under one temp parent removed afterwards, an aligned text table, and a JSON document
with the suite, mode, settings, machine, duration and results. Keeping that here means
a change to the shape (a new machine field, say) reaches every suite at once.

Only the standard library is imported at module level: ``server.py`` imports this
module in its load-generator process too, which must not pay for importing Cosmictron.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def parse_args(
    description: str,
    default_out: str,
    argv: list[str] | None = None,
    *,
    quick_help: str = "small N, a few seconds",
    hidden: Sequence[str] = (),
) -> argparse.Namespace:
    """The options every command takes, plus ``mode`` (``"smoke"``, ``"quick"`` or
    ``"full"``).

    ``--smoke`` is ``--quick`` for the test suite, which checks that a command runs and
    writes its figures, not what they are: a command that can do less than its quick
    run and still take every path does so when ``args.smoke`` is set (``modules.py``:
    200 calls, one run each); the others run their quick sizes.

    ``default_out`` is a file name under ``bench/results``. ``hidden`` names extra
    string options that default to None and are left out of ``--help``, for a command's
    internal use (``server.py`` re-runs itself with ``--client``).
    """
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--smoke", action="store_true", help="--quick, smaller still: for the test suite"
    )
    parser.add_argument("--out", default=str(RESULTS / default_out), help="JSON path")
    parser.add_argument("--tmpdir", default=None, help="parent of the temp data dirs")
    for option in hidden:
        parser.add_argument(option, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.quick = args.quick or args.smoke
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    return args


@contextlib.contextmanager
def temp_parent(tmpdir: str | None, prefix: str) -> Iterator[str]:
    """One parent directory for all of a run's data, removed afterwards even on error.

    Every engine's data goes under it, so all of them are on the same filesystem
    (``--tmpdir`` chooses which), and nothing is left behind.
    """
    parent = tempfile.mkdtemp(prefix=prefix, dir=tmpdir)
    try:
        yield parent
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def fmt(value: float | None, unit: str = "") -> str:
    """A figure for a table: thousands separated from 100 up, else two decimals."""
    if value is None:
        return "n/a"
    if unit.startswith("s per"):
        return f"{value:.2f}"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def text_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], left: Collection[int] = (0,)
) -> str:
    """Columns two spaces apart, a dashed rule under the header, trailing blanks cut.

    Columns whose index is in ``left`` (labels) are left-aligned, the others (figures)
    right-aligned, so that digits line up.
    """
    lines = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [
            cell.ljust(w) if i in left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def run_took(started: float, mode: str) -> str:
    """The closing line's ``run took Ns (mode)``, from ``time.perf_counter()`` at start."""
    return f"run took {time.perf_counter() - started:.0f}s ({mode})"


def machine_info(parent: str) -> dict[str, Any]:
    """What the figures depend on besides the code: CPU, versions, platform, date, disk."""
    import cosmictron  # here, not above: server.py's load generator never needs it

    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "cosmictron": cosmictron.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "tmpdir": parent,
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def write_results(
    path: str,
    suite: str,
    mode: str,
    settings: Any,
    machine: dict[str, Any],
    started: float | None,
    results: dict[str, Any] | None,
    **extra: Any,
) -> None:
    """Write the suite's JSON document to ``path`` and say so on stdout.

    The keys are ``suite``, ``mode``, ``settings`` (a dataclass is converted),
    ``machine``, ``duration_seconds`` (since ``started``, a ``time.perf_counter()``
    reading), then ``extra`` in the order given, then ``results`` last, as it is the
    largest. ``settings``, ``started`` or ``results`` given as None leave their key out:
    ``bulk_http.py`` keeps its figures at the top level, where its readers look.
    """
    document: dict[str, Any] = {"suite": suite, "mode": mode}
    if settings is not None:
        if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
            settings = dataclasses.asdict(settings)
        document["settings"] = settings
    document["machine"] = machine
    if started is not None:
        document["duration_seconds"] = time.perf_counter() - started
    document.update(extra)
    if results is not None:
        document["results"] = results
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out}")
