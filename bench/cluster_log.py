"""Cluster-mode benchmark: reducer calls/s through the replicated commit log (issue 19).

    .venv/bin/python bench/cluster_log.py [--quick] [--out FILE.json] [--tmpdir DIR]

Three ``nats-server`` (the ``cluster`` extra) on loopback, JetStream file storage with
``sync_interval: always``. One embedded ``Database`` per way, the one-row reducer of the
crash tests, closed-loop callers through ``Database.call``:

- ``local always``: the peer, the single-node durable point (fsync, group commit);
- ``replicated R3``: the same calls acknowledged only once JetStream stored the record on
  a quorum (``cosmictron.cluster.JetStreamLog``; the local log ``periodic``).

Each way with 1 and with 16 callers. Prints calls/s and the ratio of replicated to local;
writes JSON (bench/common.py). Needs the ``cluster`` extra. Failover time is measured by
``tests/cluster/test_nodes.py`` (it prints it); ``bench/cluster.py`` (issue 19 part 5) is
the full three-node figure set.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from cluster_setup import item_module, nats_connection, nats_servers  # noqa: E402
from common import (  # noqa: E402
    machine_info,
    parse_args,
    run_took,
    temp_parent,
    text_table,
    write_results,
)

WAYS = ("local always", "replicated R3")
CALLERS = (1, 16)


def calls_per_second(db: Any, callers: int, per_caller: int, base: int) -> float:
    def work(first: int) -> None:
        for i in range(per_caller):
            db.call("add", first + i)

    threads = [threading.Thread(target=work, args=(base + t * 1_000_000,)) for t in range(callers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return callers * per_caller / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__ or "", "cluster_log.json", argv)
    import cosmictron
    from cosmictron.cluster.jetstream_log import JetStreamLog
    from cosmictron.durability import DurabilityConfig

    per_caller = {1: 100, 16: 20} if args.mode == "quick" else {1: 500, 16: 150}
    started = time.perf_counter()
    results: dict[str, Any] = {way: {} for way in WAYS}
    with temp_parent(args.tmpdir, "cosmictron-bench-cluster-") as parent:
        machine = machine_info(parent)
        root = Path(parent)
        (root / "module.py").write_text(item_module())
        with nats_servers(root) as nats, nats_connection(nats.urls, "bench") as connection:
            for callers in CALLERS:
                for way in WAYS:
                    name = f"{way.split()[0]}{callers}"
                    if way == "local always":
                        db = cosmictron.Database.open(
                            root / name,
                            str(root / "module.py"),
                            durability=DurabilityConfig.from_profile("production"),
                        )
                    else:
                        db = cosmictron.Database.open(
                            root / name,
                            str(root / "module.py"),
                            durability=DurabilityConfig.from_profile("balanced"),
                            replicator=JetStreamLog(connection, name),
                        )
                    try:
                        calls_per_second(db, 1, 20, 900_000_000)  # warm up
                        rate = calls_per_second(db, callers, per_caller[callers], 0)
                    finally:
                        db.close()
                    results[way][str(callers)] = rate
    summary = [
        {
            "key": f"replicated_over_local_{callers}_callers",
            "ratio": results["replicated R3"][str(callers)] / results["local always"][str(callers)],
        }
        for callers in CALLERS
    ]
    rows = [[way, *(f"{results[way][str(c)]:.0f}" for c in CALLERS)] for way in WAYS]
    rows.append(["replicated / local", *(f"{row['ratio']:.2f}x" for row in summary)])
    print("reducer calls/s, closed loop, Database.call (3 nats-server on loopback)")
    print(text_table(["way", *(f"{c} caller{'s' if c > 1 else ''}" for c in CALLERS)], rows))
    print(run_took(started, args.mode))
    write_results(
        args.out,
        "cluster_log",
        args.mode,
        {"per_caller": per_caller, "callers": list(CALLERS)},
        machine,
        started,
        results,
        summary=summary,
    )


if __name__ == "__main__":
    main()
