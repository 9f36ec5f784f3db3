"""Ask a server's ``/v1/health`` every ``period`` seconds, in a process of its own.

Run by ``attack_harness.Attack`` as ``python health_probe.py URL PERIOD_S SLOW_S``: it keeps one
keep-alive connection, prints ``ready`` after the first answer, and probes until its
standard input is closed; then it prints one JSON line: the number of answers, the
worst answer time, every answer slower than ``SLOW_S`` (seconds since start, time taken)
and every failure. A process of its own so that the test's own work (building a large
body, reading a large reply) cannot hold the probe back and be blamed on the server.
Standard library only: it runs outside the test's import path.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

ANSWER_TIMEOUT_S = 30.0


def main(url: str, period_s: float, slow_s: float) -> None:
    parts = urlsplit(url)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=ANSWER_TIMEOUT_S
    )
    answers, worst, slow, failures = 0, 0.0, [], []
    start = time.perf_counter()
    ready = False
    while not stop.is_set():
        sent = time.perf_counter()
        try:
            connection.request("GET", "/v1/health")
            response = connection.getresponse()
            body = response.read()
            took = time.perf_counter() - sent
            if response.status != 200 or b'"ok"' not in body:
                failures.append(f"{sent - start:.3f}s: {response.status} {body[:200]!r}")
        except (OSError, http.client.HTTPException) as error:
            took = time.perf_counter() - sent
            failures.append(f"{sent - start:.3f}s: {type(error).__name__}: {error}")
            connection.close()  # the next request opens a new connection
        else:
            answers += 1
            if ready:  # the first answer includes connecting; it is not measured
                worst = max(worst, took)
                if took > slow_s:
                    slow.append([round(sent - start, 3), round(took, 4)])
            else:
                ready = True
                print("ready", flush=True)
        stop.wait(max(0.0, period_s - took))
    connection.close()
    summary = {"answers": answers, "worst_s": worst, "slow": slow, "failures": failures}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))
