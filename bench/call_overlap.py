"""A database's call thread under a slow disk: calls per second and calls per sync.

    .venv/bin/python bench/call_overlap.py [--sync-ms 2] [--clients 32] [--depth 16]
        [--seconds 2]

``bench/server.py`` measures the whole server over loopback, where the machine's load
moves every figure; this measures the one thing ``server/calls.py`` decides: how calls
share syncs. It opens the server benchmark's module under ``production`` (fsync
``always``) in a temp dir, makes a ``CallWorker`` as the server does, and has
``--clients`` coroutines keep ``--depth`` calls of ``add_task`` each in flight for
``--seconds`` (after 0.3 s of warm-up). Every sync is the real ``fdatasync`` followed by
a sleep of ``--sync-ms`` (a slow disk: the sleep releases the GIL as an fsync does), so
whether the call thread runs calls while a sync is in flight shows in calls per second
and in calls per sync. Prints both, and the process's CPU time per call. With more
calls in flight than one batch takes (``calls.BATCH_CALLS_MAX``), batches queue behind
each other, as many clients' calls do in a server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from server_bench.workload import MODULE_SOURCE  # noqa: E402

import cosmictron  # noqa: E402
from cosmictron import DurabilityConfig  # noqa: E402
from cosmictron.durability import storage  # noqa: E402
from cosmictron.server.calls import CallWorker  # noqa: E402
from cosmictron.values import Identity  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sync-ms", type=float, default=2.0, help="added to every sync")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--depth", type=int, default=16, help="calls in flight per client")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    real_sync = storage.FileStorage.sync

    def slow_sync(self: storage.FileStorage, handle: int, method: str) -> None:
        real_sync(self, handle, method)
        time.sleep(args.sync_ms / 1000)

    storage.FileStorage.sync = slow_sync  # type: ignore[method-assign]
    parent = tempfile.mkdtemp(prefix="cosmictron-call-overlap-")
    try:
        module = os.path.join(parent, "bench_server_module.py")
        Path(module).write_text(MODULE_SOURCE)
        db = cosmictron.Database.open(
            os.path.join(parent, "db"),
            module=module,
            durability=DurabilityConfig.from_profile("production"),
        )
        worker = CallWorker(db, "bench")
        try:
            calls, seconds, cpu, syncs = asyncio.run(_load(worker, db, args))
        finally:
            worker.close()
            db.close()
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    print(
        f"{calls / seconds:,.0f} calls/s, {calls / max(syncs, 1):.1f} calls per sync, "
        f"{cpu / calls * 1e6:.1f} CPU µs per call ({args.clients} clients x {args.depth} "
        f"in flight, sync = fdatasync + {args.sync_ms:g} ms, {seconds:.1f} s)"
    )
    return 0


async def _load(
    worker: CallWorker, db: cosmictron.Database, args: argparse.Namespace
) -> tuple[int, float, float, int]:
    caller = Identity.random()

    async def client(deadline: float, counts: list[int]) -> None:
        done = 0

        async def one() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await worker.submit("add_task", ["a task", 1], {}, caller)
                done += 1

        await asyncio.gather(*(one() for _ in range(args.depth)))
        counts.append(done)

    warm = time.perf_counter() + 0.3
    await asyncio.gather(*(client(warm, []) for _ in range(args.clients)))
    syncs_before = db.persistence_statistics().syncs
    counts: list[int] = []
    cpu, start = time.process_time(), time.perf_counter()
    deadline = start + args.seconds
    await asyncio.gather(*(client(deadline, counts) for _ in range(args.clients)))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    syncs = db.persistence_statistics().syncs - syncs_before
    return sum(counts), seconds, cpu, syncs


if __name__ == "__main__":
    sys.exit(main())
