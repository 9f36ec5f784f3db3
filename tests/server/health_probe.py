"""Ask a server's ``/v1/health`` every ``period`` seconds, in a process of its own, and
measure how much of the server's work each answer waited behind.

Run by ``attack_harness.Attack`` as ``python health_probe.py URL PID PERIOD_S HELD_S``: it
keeps one keep-alive connection, prints ``ready`` after the first answer, and probes
until its standard input is closed; then it prints one JSON line: the number of
answers, the worst answer time and the most CPU an answer waited behind (both
seconds), every answer held up longer than ``HELD_S`` (seconds since start, seconds
of CPU held up) and every failure.

*Held up* is CPU time, not wall time, so that a loaded machine does not move it. While
an answer was awaited:

- the CPU of the event loop's thread (the main thread of ``PID``): its own work came
  before the answer;
- plus the CPU the server's other threads spent while the loop's thread slept, neither
  running nor waiting for a processor: the loop could not go on because another thread
  held the interpreter lock, which only a long call into C keeps (a thread running
  Python hands it over within 5 ms). Counted as the smaller of the two (the other
  threads' CPU, the loop's sleep), less the time this probe waited for a processor
  (after the answer was sent the loop may sleep, idle, while the others work).

A loaded machine makes the loop and the probe wait for a processor, which counts for
nothing, and a thread preempted while it holds the lock burns no CPU meanwhile. Read
from ``/proc/<pid>/task/*/schedstat``: nanoseconds on a processor, then waiting for one.

A process of its own so that the test's own work (building a large body, reading a
large reply) cannot hold the probe back and be blamed on the server. Standard library
only: it runs outside the test's import path.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from urllib.parse import urlsplit

ANSWER_TIMEOUT_S = 30.0


def schedstat(path: str) -> tuple[int, int]:
    """(nanoseconds on a processor, nanoseconds waiting for one) of one thread."""
    with open(path) as file:
        on_cpu, waiting, _ = file.read().split()
    return int(on_cpu), int(waiting)


class ServerClock:
    """The server's threads' CPU and the waits for a processor that do not count."""

    def __init__(self, pid: int) -> None:
        self.tasks = f"/proc/{pid}/task"
        self.loop = f"/proc/{pid}/task/{pid}/schedstat"  # asyncio.run on the main thread

    def read(self) -> tuple[int, int, int, int]:
        """(the loop's CPU, the loop's wait for a processor, the other threads' CPU, this
        probe's wait for a processor), in nanoseconds."""
        every = 0
        for tid in os.listdir(self.tasks):
            try:
                every += schedstat(f"{self.tasks}/{tid}/schedstat")[0]
            except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
                pass
        loop_cpu, loop_waiting = schedstat(self.loop)
        probe_waiting = schedstat("/proc/thread-self/schedstat")[1]
        return loop_cpu, loop_waiting, every - loop_cpu, probe_waiting


def held_up_s(
    before: tuple[int, int, int, int], after: tuple[int, int, int, int], wall_ns: int
) -> float:
    """The server's CPU an answer waited behind (seconds; see the module docstring), from
    ``ServerClock.read`` before and after ``wall_ns`` nanoseconds of waiting."""
    loop_cpu, loop_waiting, others_cpu, probe_waiting = (
        a - b for a, b in zip(after, before, strict=True)
    )
    loop_sleeping = wall_ns - loop_cpu - loop_waiting
    return (loop_cpu + max(0, min(others_cpu, loop_sleeping) - probe_waiting)) / 1e9


def main(url: str, pid: int, period_s: float, held_s: float) -> None:
    parts = urlsplit(url)
    clock = ServerClock(pid)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=ANSWER_TIMEOUT_S
    )
    answers, worst, worst_held, held, failures = 0, 0.0, 0.0, [], []
    start = time.perf_counter_ns()
    ready = False
    while not stop.is_set():
        before = clock.read()
        sent = time.perf_counter_ns()
        try:
            connection.request("GET", "/v1/health")
            response = connection.getresponse()
            body = response.read()
            wall_ns = time.perf_counter_ns() - sent
            if response.status != 200 or b'"ok"' not in body:
                failures.append(f"{(sent - start) / 1e9:.3f}s: {response.status} {body[:200]!r}")
        except (OSError, http.client.HTTPException) as error:
            wall_ns = time.perf_counter_ns() - sent
            failures.append(f"{(sent - start) / 1e9:.3f}s: {type(error).__name__}: {error}")
            connection.close()  # the next request opens a new connection
        else:
            held_up = held_up_s(before, clock.read(), wall_ns)
            answers += 1
            if ready:  # the first answer includes connecting; it is not measured
                worst, worst_held = max(worst, wall_ns / 1e9), max(worst_held, held_up)
                if held_up > held_s:
                    held.append([round((sent - start) / 1e9, 3), round(held_up, 4)])
            else:
                ready = True
                print("ready", flush=True)
        stop.wait(max(0.0, period_s - wall_ns / 1e9))
    connection.close()
    summary = {
        "answers": answers,
        "worst_s": worst,
        "worst_held_s": worst_held,
        "held": held,
        "failures": failures,
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
