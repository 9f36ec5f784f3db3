"""The process ``test_crash.py`` kills: writer threads that report each acknowledged call.

Usage: ``python crash_writer.py DATA_DIR MODULE_PATH BASE THREADS SEGMENT_BYTES SNAPSHOT_TX``

It opens the database under the ``production`` profile (``fsync_policy = "always"``; the
log segment size and snapshot interval are shrunk so kills land around segment rollovers
and snapshots too). Thread ``t`` calls ``append(n)`` for ``n = BASE + t, BASE + t + THREADS,
...`` and, only after the call has returned, writes ``n`` and a newline to stdout in one
flushed write. Every line the parent reads is therefore a transaction the database
acknowledged as durable. The writer runs until it is killed (or hits a safety cap).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading

import cosmictron
from cosmictron import DurabilityConfig

CALLS_PER_THREAD_MAX = 100_000
"""A safety cap so a writer whose parent died does not run forever."""


def main(argv: list[str]) -> int:
    data_dir, module_path = argv[1], argv[2]
    base, threads, segment_bytes, snapshot_tx = (int(value) for value in argv[3:7])
    durability = dataclasses.replace(
        DurabilityConfig.from_profile("production"),
        segment_bytes_max=segment_bytes,
        snapshot_interval_tx=snapshot_tx,
    )
    database = cosmictron.Database.open(data_dir, module=module_path, durability=durability)
    out_lock = threading.Lock()
    stdout = sys.stdout.fileno()

    def acknowledge(n: int) -> None:
        line = f"{n}\n".encode()
        with out_lock:
            os.write(stdout, line)  # one unbuffered write: a line is whole or absent

    def work(thread: int) -> None:
        for k in range(CALLS_PER_THREAD_MAX):
            n = base + thread + k * threads
            database.call("append", n)
            acknowledge(n)

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    database.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
