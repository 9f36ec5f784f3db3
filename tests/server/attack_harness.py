"""Measuring a real server while it is attacked: the rule every case of test_attacks.py holds.

``Target`` is a server process started for one case, with ``attack_app.py`` deployed as
database ``atk`` (the one attacked) and again as ``bystander`` (another database, which
must keep working). ``Attack`` is a context manager around one attack; while it runs:

- **memory**: a thread samples the server's resident set (``VmRSS`` in
  ``/proc/<pid>/status``) every ``RSS_SAMPLE_S``. Its peak may exceed the baseline taken
  on entry by at most ``rss_growth_bytes_max`` (``RSS_GROWTH_BYTES_MAX``, 100 MiB, by
  default), and within ``RSS_SETTLE_S`` after the attack it must come back within
  ``RSS_SETTLED_BYTES_MAX`` of that baseline (see ``RSS_SETTLED_BYTES_MAX`` for why the
  tolerance is not zero);
- **the event loop**: a process of its own (``health_probe.py``) asks ``/v1/health`` every
  ``HEALTH_PERIOD_S`` on a keep-alive connection; no answer may wait behind more than
  ``HEALTH_HELD_CPU_S_MAX`` (50 ms) of the server's CPU, and none may fail. CPU, not
  wall time: a loaded machine slows every answer, but only an attack that blocks the loop
  (its work on the loop, or a thread holding the interpreter lock) makes an answer wait
  behind the server's own work (the probe's docstring says how it is counted);
- **other databases**: a thread calls a reducer of ``bystander`` over and over; at least
  one call must complete during the attack, and every one must succeed;
- **replies**: the case passes each reply to ``Attack.reply``: a reply to a request that
  was not valid must be a 4xx with ``{"error": {"code", "message"}}`` (the code checked
  when the case names it), never a 5xx; every JSON body, valid or not, is parsed with
  ``strict_loads`` (no ``NaN``, ``Infinity``), which browsers, serde and Go all require;
- **the log**: no traceback and no ``internal error`` line while the attack ran.

Every breach is collected, and ``Attack`` raises ``AttackFailed`` listing them all on exit
with the measurement (``Measurement``), which is also printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from tests.server.conftest import Server, start_server, stop_read_server

MiB = 1024 * 1024
APP = Path(__file__).with_name("attack_app.py")
PROBE = Path(__file__).with_name("health_probe.py")

RSS_GROWTH_BYTES_MAX = 100 * MiB
"""How far the server's resident set may rise above its baseline during one attack."""

RSS_SETTLED_BYTES_MAX = 24 * MiB
"""How far above its baseline the resident set may stay once an attack is over.

Not zero, and measured rather than assumed (docs/guide/security.md has the figures):

- glibc keeps some freed heap: after a 32 MiB SQL value was built and freed, the RSS
  stayed 3 MiB above its baseline; ``malloc_trim(0)`` called into the server with gdb
  brought it back to the baseline, so it is retained, not leaked. The server does not
  call ``malloc_trim``, and does not need to: glibc hands large blocks back by itself;
- the last large request body stays referenced until the server reads the next request
  (+16 MiB after one 16 MiB call body, +0.1 MiB once another request came).

24 MiB covers one body at the call route's default limit plus that noise, while
anything a request pins for good (a cache entry, a queue) pins at least what it brought,
and the attacks bring far more (the statement-cache attack pins 157 MiB today)."""

RSS_SETTLE_S = 5.0
"""How long after an attack the resident set has to come back near its baseline."""

RSS_SAMPLE_S = 0.005
HEALTH_PERIOD_S = 0.02
HEALTH_HELD_CPU_S_MAX = 0.05
"""Most CPU (seconds) the server may spend on other work while a ``/v1/health`` answer
waits, during an attack: answering takes well under a millisecond of it, and one
request's slice of the loop a few; an attack's work done on the loop, or a call holding
the interpreter lock, takes hundreds (``test_the_harness_catches_a_held_up_health_answer``)."""

BYSTANDER_PAUSE_S = 0.05

ATTACK_S_MIN = 0.5
"""Measuring goes on at least this long after an attack began, however quickly its
requests were answered: work a request leaves behind (a thread still building a value
after the reply) is measured too, and the health probe gets 25 answers at least."""


class AttackFailed(AssertionError):
    """The server did not hold the rule during an attack; the message lists every breach."""


def strict_loads(data: bytes | str) -> Any:
    """JSON parsed as strict parsers do: ``NaN``, ``Infinity`` and ``-Infinity`` refused."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON (strict parsers reject the whole message)")

    return json.loads(data, parse_constant=refuse)


def rss_bytes(pid: int) -> int:
    """The process's resident set size, from ``/proc/<pid>/status``."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@dataclass
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class Target:
    """A server started for one case, its two databases deployed, its log drained."""

    server: Server
    owner: str
    log: list[str]
    reader: threading.Thread

    @property
    def pid(self) -> int:
        return self.server.process.pid

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.server.url)
        return parts.hostname or "127.0.0.1", parts.port or 80

    def http(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
        timeout_s: float = 60.0,
    ) -> HttpReply:
        """One request on a connection of its own, closed after the reply."""
        host, port = self.address
        connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
        try:
            all_headers = {"Connection": "close", **(headers or {})}
            if token is not None:
                all_headers["Authorization"] = f"Bearer {token}"
            data = body.encode() if isinstance(body, str) else body
            connection.request(method, path, data, all_headers)
            response = connection.getresponse()
            return HttpReply(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def call(self, database: str, reducer: str, args: Any, token: str | None = None) -> HttpReply:
        return self.http(
            "POST",
            f"/v1/database/{database}/call/{reducer}",
            json.dumps(args),
            {"Content-Type": "application/json"},
            token,
        )

    def sql(
        self, database: str, query: str, params: Any = None, token: str | None = None
    ) -> HttpReply:
        if params is None:
            return self.http("POST", f"/v1/database/{database}/sql", query, token=token)
        body = json.dumps({"query": query, "params": params})
        headers = {"Content-Type": "application/json"}
        return self.http("POST", f"/v1/database/{database}/sql", body, headers, token)


def launch(data_dir: Path, env: Mapping[str, str] | None = None) -> Target:
    """Start a server with ``env`` overrides; deploy ``atk`` and ``bystander``; warm it up.

    Warming up runs each kind of request once, so the baseline an ``Attack`` takes
    already holds what the first request of a kind loads for good (imports, plans).
    """
    server = start_server(data_dir, "--profile", "development", env=dict(env or {}))
    log: list[str] = []
    assert server.process.stdout is not None
    reader = threading.Thread(target=lambda: log.extend(server.process.stdout), daemon=True)
    reader.start()  # a full pipe would block the server's logging: always drain it
    try:
        _, owner = server.deployer()
        target = Target(server, owner, log, reader)
        for name in ("atk", "bystander"):
            assert server.deploy(name, APP.read_text(), owner).status == 201
        for database in ("atk", "bystander"):
            assert target.call(database, "record", [1.5]).status == 200
            assert (
                target.sql(database, "SELECT * FROM reading WHERE id = :id", {"id": 1}).status
                == 200
            )
        assert target.http("GET", "/metrics").status in (200, 401, 403)
        assert target.http("GET", "/v1/database/atk/export/reading", token=owner).status == 200
    except BaseException:
        shut(Target(server, "", log, reader))
        raise
    return target


def shut(target: Target) -> str:
    """Stop the server; its whole log."""
    stop_read_server(target.server, target.reader)
    return "".join(target.log)


@dataclass
class Measurement:
    """What one attack did to the server; printed after every case."""

    name: str
    baseline_rss: int = 0
    peak_rss: int = 0
    settled_rss: int = 0
    settle_s: float = 0.0
    health_answers: int = 0
    health_worst_s: float = 0.0
    health_worst_held_s: float = 0.0
    health_held: list[list[float]] = field(default_factory=list)
    bystander_calls: int = 0
    bystander_worst_s: float = 0.0
    duration_s: float = 0.0

    def summary(self) -> str:
        peak = (self.peak_rss - self.baseline_rss) / MiB
        after = (self.settled_rss - self.baseline_rss) / MiB
        return (
            f"[attack {self.name}] {self.duration_s:.2f} s; RSS baseline "
            f"{self.baseline_rss / MiB:.1f} MiB, peak +{peak:.1f} MiB, after +{after:.1f} MiB "
            f"(settled in {self.settle_s:.2f} s); health: {self.health_answers} answers, worst "
            f"{self.health_worst_s * 1000:.1f} ms, held up by at most "
            f"{self.health_worst_held_s * 1000:.1f} ms of CPU, {len(self.health_held)} over "
            f"{HEALTH_HELD_CPU_S_MAX * 1000:.0f} ms; bystander: {self.bystander_calls} calls, "
            f"worst {self.bystander_worst_s * 1000:.1f} ms"
        )


MEASUREMENTS: list[Measurement] = []
"""Every attack measured in this process (the suite prints them)."""


class Attack:
    """Measures ``target`` while the ``with`` block attacks it; see the module docstring."""

    def __init__(
        self,
        target: Target,
        name: str,
        rss_growth_bytes_max: int = RSS_GROWTH_BYTES_MAX,
        rss_settled_bytes_max: int = RSS_SETTLED_BYTES_MAX,
        health_held_cpu_s_max: float = HEALTH_HELD_CPU_S_MAX,
    ) -> None:
        self.target = target
        self.rss_growth_bytes_max = rss_growth_bytes_max
        self.rss_settled_bytes_max = rss_settled_bytes_max
        self.health_held_cpu_s_max = health_held_cpu_s_max
        self.measurement = Measurement(name)
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._bystander_failures: list[str] = []
        self._probe: subprocess.Popen[str] | None = None
        self._log_mark = 0
        self._started = 0.0

    # -- what a case reports --------------------------------------------------------------

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def reply(
        self, reply: HttpReply, what: str, valid: bool = False, code: str | None = None
    ) -> Any:
        """Check one HTTP reply against the rule; its JSON body (None if it has none).

        Args:
            what: names the request in a breach.
            valid: the request was valid, so a 2xx is right; otherwise only a 4xx is.
            code: the error code an invalid request must get (any code if None).
        """
        body = self.json(reply.body, what) if reply.body else None
        if reply.status >= 500:
            self.problem(f"{what}: {reply.status} {reply.body[:300]!r}")
        elif valid:
            if not 200 <= reply.status < 300:
                self.problem(f"{what}: a valid request got {reply.status} {reply.body[:300]!r}")
        elif not 400 <= reply.status < 500:
            self.problem(f"{what}: expected a 4xx, got {reply.status} {reply.body[:200]!r}")
        else:
            error = body.get("error") if isinstance(body, dict) else None
            if not (isinstance(error, dict) and error.get("code") and error.get("message")):
                self.problem(f"{what}: {reply.status} without an error code and message: {body!r}")
            elif code is not None and error["code"] != code:
                self.problem(f"{what}: expected code {code!r}, got {reply.status} {error!r}")
        return body

    def json(self, data: bytes | str, what: str) -> Any:
        """``data`` parsed strictly; a breach (and None) if a strict parser refuses it."""
        try:
            return strict_loads(data)
        except ValueError as error:
            self.problem(f"{what}: not strict JSON ({error}): {data[:200]!r}")
            return None

    # -- measuring ------------------------------------------------------------------------

    def __enter__(self) -> Attack:
        self._log_mark = len(self.target.log)
        self.measurement.baseline_rss = self.measurement.peak_rss = rss_bytes(self.target.pid)
        self._probe = start_health_probe(self.target.server, self.health_held_cpu_s_max)
        for work in (self._sample_rss, self._bystander):
            thread = threading.Thread(target=work, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._started = time.perf_counter()
        return self

    def _sample_rss(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, AssertionError):  # the process may have died
                rss = rss_bytes(self.target.pid)
                self.measurement.peak_rss = max(self.measurement.peak_rss, rss)
            self._stop.wait(RSS_SAMPLE_S)

    def _bystander(self) -> None:
        while not self._stop.is_set():
            sent = time.perf_counter()
            try:
                reply = self.target.call("bystander", "record", [2.5])
            except OSError as error:
                self._bystander_failures.append(f"{type(error).__name__}: {error}")
            else:
                if reply.status != 200:
                    self._bystander_failures.append(f"{reply.status} {reply.body[:200]!r}")
                else:
                    self.measurement.bystander_calls += 1
                    took = time.perf_counter() - sent
                    self.measurement.bystander_worst_s = max(
                        self.measurement.bystander_worst_s, took
                    )
            self._stop.wait(BYSTANDER_PAUSE_S)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        m = self.measurement
        time.sleep(max(0.0, ATTACK_S_MIN - (time.perf_counter() - self._started)))
        m.duration_s = time.perf_counter() - self._started
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)
        summary = self._stop_probe()
        self._settle()
        MEASUREMENTS.append(m)
        print(m.summary())
        if kind is not None:
            return  # the case's own error says more than the measurement
        self._judge(summary)
        if self.problems:
            raise AttackFailed(
                f"{m.name}: {len(self.problems)} breach(es)\n  - "
                + "\n  - ".join(self.problems)
                + f"\n{m.summary()}"
            )

    def _stop_probe(self) -> dict[str, Any]:
        assert self._probe is not None
        summary = stop_health_probe(self._probe)
        self.measurement.health_answers = summary["answers"]
        self.measurement.health_worst_s = summary["worst_s"]
        self.measurement.health_worst_held_s = summary["worst_held_s"]
        self.measurement.health_held = summary["held"]
        return summary

    def _settle(self) -> None:
        m = self.measurement
        started = time.perf_counter()
        while True:
            try:
                m.settled_rss = rss_bytes(self.target.pid)
            except (OSError, AssertionError):
                m.settled_rss = 0
                break
            m.settle_s = time.perf_counter() - started
            if m.settled_rss - m.baseline_rss <= self.rss_settled_bytes_max:
                break
            if m.settle_s > RSS_SETTLE_S:
                break
            time.sleep(0.05)

    def _judge(self, probe: dict[str, Any]) -> None:
        m = self.measurement
        if self.target.server.process.poll() is not None:
            self.problem(f"the server exited with {self.target.server.process.returncode}")
        growth = m.peak_rss - m.baseline_rss
        if growth > self.rss_growth_bytes_max:
            self.problem(
                f"RSS grew by {growth / MiB:.1f} MiB during the attack "
                f"(bound {self.rss_growth_bytes_max / MiB:.0f} MiB)"
            )
        left = m.settled_rss - m.baseline_rss
        if left > self.rss_settled_bytes_max:
            self.problem(
                f"RSS still {left / MiB:.1f} MiB above its baseline {RSS_SETTLE_S:.0f} s after "
                f"the attack (tolerance {self.rss_settled_bytes_max / MiB:.0f} MiB)"
            )
        if probe["held"]:
            self.problem(
                f"/v1/health answered {len(probe['held'])} time(s) after more than "
                f"{self.health_held_cpu_s_max * 1000:.0f} ms of the server's CPU on other work, "
                f"worst {m.health_worst_held_s * 1000:.0f} ms "
                f"([seconds in, seconds of CPU]: {probe['held'][:5]})"
            )
        for failure in probe["failures"]:
            self.problem(f"/v1/health failed: {failure}")
        if m.bystander_calls == 0:
            self.problem("no reducer call in the other database completed during the attack")
        for failure in self._bystander_failures:
            self.problem(f"a reducer call in the other database failed: {failure}")
        for line in self.target.log[self._log_mark :]:
            if "Traceback" in line or "internal error" in line:
                self.problem(f"the server logged: {line.strip()[:300]}")


def start_health_probe(server: Server, held_cpu_s_max: float) -> subprocess.Popen[str]:
    """``health_probe.py`` asking ``server``'s health every ``HEALTH_PERIOD_S``, counting
    the answers held up by more than ``held_cpu_s_max`` of its CPU; started once it has
    had its first answer."""
    probe = subprocess.Popen(
        [
            sys.executable,
            str(PROBE),
            server.url,
            str(server.process.pid),
            str(HEALTH_PERIOD_S),
            str(held_cpu_s_max),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert probe.stdout is not None
    ready = probe.stdout.readline()
    assert ready.strip() == "ready", f"the health probe did not start: {ready!r}"
    return probe


def stop_health_probe(probe: subprocess.Popen[str]) -> dict[str, Any]:
    """Stop the probe (closing its stdin stops it); its summary (see ``health_probe.py``)."""
    out, _ = probe.communicate(timeout=60)
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


@contextlib.contextmanager
def connection_from(
    address: str, target: Target, timeout_s: float = 10.0
) -> Iterator[socket.socket]:
    """A TCP connection to ``target`` from local address ``address`` (any 127.x.y.z works on
    Linux), so an attack's connections come from an address other than the probes'."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout_s)
        sock.bind((address, 0))
        sock.connect(target.address)
        yield sock
    finally:
        sock.close()
