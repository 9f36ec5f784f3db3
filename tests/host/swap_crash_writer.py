"""The process ``test_hot_swap_crash.py`` kills: writers, and one module update among them.

Usage: ``python swap_crash_writer.py DATA_DIR V1_PATH V2_PATH THREADS SWAP_AFTER``

It opens the database with module ``V1_PATH`` under the ``production`` profile
(``fsync_policy = "always"``). Writer threads call ``append(n)`` and, once a call has
returned, write ``n`` and a newline to stdout in one write: an acknowledged transaction.
After ``SWAP_AFTER`` acknowledgements the main thread calls ``update_module(V2_PATH)``
while the writers carry on, and prints ``swapped`` once it has returned. The writers run
until the process is killed (or hit a safety cap).
"""

from __future__ import annotations

import os
import sys
import threading

import cosmictron
from cosmictron import DurabilityConfig

CALLS_PER_THREAD_MAX = 100_000
"""A safety cap so a writer whose parent died does not run forever."""


def main(argv: list[str]) -> int:
    data_dir, v1_path, v2_path = argv[1:4]
    threads, swap_after = int(argv[4]), int(argv[5])
    durability = DurabilityConfig.from_profile("production")
    database = cosmictron.Database.open(data_dir, module=v1_path, durability=durability)
    out_lock = threading.Lock()
    acknowledged = threading.Semaphore(0)
    stdout = sys.stdout.fileno()

    def say(line: str) -> None:
        with out_lock:
            os.write(stdout, line.encode())  # one unbuffered write: whole or absent

    def work(thread: int) -> None:
        for k in range(CALLS_PER_THREAD_MAX):
            n = thread + k * threads
            database.call("append", n)
            say(f"{n}\n")
            acknowledged.release()

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    for _ in range(swap_after):
        acknowledged.acquire()
    database.update_module(v2_path)
    say("swapped\n")
    for worker in workers:
        worker.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
