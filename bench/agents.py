"""Agent-layer benchmark: ``claim_tool_call`` as the queue of pending calls grows.

    .venv/bin/python bench/agents.py [--quick] [--out bench/results/agents.json] [--tmpdir DIR]

For 1,000, 10,000 and 50,000 pending tool calls (``--quick``: 1,000 and 10,000), embedded
(``development`` profile: no fsync, so the reducer's own cost shows), in one process:

- ``claim (index)``: ``claim_tool_call`` as shipped: the head of the ``(status,
  event_seq)`` index (any tool) or of ``(status, tool_name, event_seq)`` (named tools);
- ``claim (scan)``: the peer, the same claim written as it was before the index, a
  reducer of this benchmark's module that filters every pending call and takes the
  oldest (what a hand-written queue table without an ordered index does).

Each claim is one reducer call (a transaction) taking the oldest pending call; p50/p99
over ``claims`` claims. Prints each p50's ratio to the peer and writes JSON; nothing is
asserted. Goal: the indexed claim stays flat (O(log n)) while the scan grows with n.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from common import (  # noqa: E402
    fmt,
    machine_info,
    parse_args,
    run_took,
    temp_parent,
    text_table,
    write_results,
)

from cosmictron import Database, DurabilityConfig  # noqa: E402

APP = '''
from cosmictron import *
from cosmictron.agents import *
from cosmictron.agents.leases import describe


@reducer
def claim_by_scan(
    ctx: ReducerContext, worker: str, tool_names: list[str]
) -> ClaimedToolCall | None:
    """The peer: every pending call listed, the oldest taken (the pre-index claim)."""
    wanted = set(tool_names)
    pending = [
        c for c in ctx.db.tool_call.status_seq.filter(("pending",))
        if not wanted or c.tool_name in wanted
    ]
    if not pending:
        return None
    call = min(pending, key=lambda c: c.event_seq)
    call.status = "running"
    call.attempt += 1
    call.worker = worker
    ctx.db.tool_call.id.update(call)
    return describe(call)
'''


@dataclasses.dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...]
    claims: int = 300


def fill(db: Database, n: int) -> None:
    db.call("register_agent", "a", "worker", "", [])
    db.call("start_thread", "t", "a", "")
    for i in range(n):  # recorded as a model's calls are: each with its agent_event
        db.call("record_tool_call", f"call-{i}", "t", "a", ("search", "fetch")[i % 2], "{}")


def claim_times(db: Database, reducer: str, claims: int, tools: list[str]) -> list[float]:
    times = []
    for _ in range(claims):
        started = time.perf_counter()
        claimed = (
            db.call(reducer, "w", tools)
            if reducer == "claim_by_scan"
            else db.call(reducer, "w", tools, 30.0)
        )
        times.append((time.perf_counter() - started) * 1000)
        assert claimed is not None
    return times


def measure(n: int, settings: Settings, parent: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, reducer in (("claim_index", "claim_tool_call"), ("claim_scan", "claim_by_scan")):
        for label, tools in (("any", []), ("named", ["fetch"])):
            app = Path(parent) / "agents_app.py"
            app.write_text(APP)
            db = Database.open(
                Path(parent) / f"data-{n}-{name}-{label}",
                app,
                durability=DurabilityConfig.from_profile("development"),
            )
            try:
                fill(db, n)
                times = claim_times(db, reducer, settings.claims, tools)
            finally:
                db.close()
            out[f"{name}_{label}"] = {
                "p50_ms": float(np.percentile(times, 50)),
                "p99_ms": float(np.percentile(times, 99)),
            }
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__ or "", "agents.json", argv, quick_help="1k and 10k, seconds")
    started = time.perf_counter()
    settings = Settings(sizes=(1_000, 10_000) if args.quick else (1_000, 10_000, 50_000))
    results: dict[str, Any] = {}
    with temp_parent(args.tmpdir, "cosmictron-bench-agents-") as parent:
        machine = machine_info(parent)
        for n in settings.sizes:
            results[str(n)] = measure(n, settings, parent)
    rows = []
    for n, figures in results.items():
        for label in ("any", "named"):
            peer = figures[f"claim_scan_{label}"]["p50_ms"]
            for name in ("claim_index", "claim_scan"):
                f = figures[f"{name}_{label}"]
                f["p50_over_peer"] = f["p50_ms"] / peer
                rows.append([f"{int(n):,}", f"{name} ({label} tool)", fmt(f["p50_ms"]),
                             fmt(f["p99_ms"]), f"{f['p50_over_peer']:.2f}x"])  # fmt: skip
    print(text_table(["pending", "claim", "p50 ms", "p99 ms", "p50 / scan"], rows, left=(0, 1)))
    print(run_took(started, args.mode))
    write_results(args.out, "agents", args.mode, settings, machine, started, results)


if __name__ == "__main__":
    main()
