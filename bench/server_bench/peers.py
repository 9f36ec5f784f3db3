"""The servers the benchmark measures, run by the parent process: Cosmictron and PostgreSQL.

Both are started fresh under the run's temp parent and stopped at the end (also on an
error, Ctrl-C or SIGTERM): Cosmictron as ``cosmictron-cli start --profile production``
(fsync ``always``, group commit), PostgreSQL as a throwaway cluster (``initdb`` and
``pg_ctl start`` on 127.0.0.1 with ``fsync=on`` and ``synchronous_commit=on``). Each
offers ``pids()``, the processes whose CPU time counts as the server's.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from processes import CLI_PRELUDE, CliServer, free_port

from .workload import MODULE_SOURCE, PG_SCHEMA

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/local/bin")
PG_INSTALL_HINT = "apt-get install postgresql-15; .venv/bin/pip install -e '.[bench]'"

# With COSMICTRON_BENCH_PROFILE set, the server runs under cProfile in every thread (the
# event loop and the database's worker threads, where reducers run and syncs wait), and
# the merged stats are dumped at shutdown.
PROFILED_MAIN = """
import cProfile, pstats, threading
profilers = []
thread_run = threading.Thread.run
def profiled_run(self):
    profiler = cProfile.Profile()
    profilers.append(profiler)
    profiler.enable()
    try:
        thread_run(self)
    finally:
        profiler.disable()
threading.Thread.run = profiled_run
main_profiler = cProfile.Profile()
main_profiler.enable()
try:
    main()
finally:
    main_profiler.disable()
    stats = pstats.Stats(main_profiler)
    for profiler in profilers:
        try:
            stats.add(profiler)
        except (TypeError, ValueError):
            pass
    stats.dump_stats({out!r})
"""


class CosmictronServer(CliServer):
    """``cosmictron-cli start --profile production``, deploying the benchmark's module.

    With ``COSMICTRON_BENCH_PROFILE=FILE`` set, the server runs under cProfile.
    """

    def __init__(self, parent: str) -> None:
        launcher = CLI_PRELUDE + "; main()"
        profile = os.environ.get("COSMICTRON_BENCH_PROFILE")
        if profile:
            launcher = CLI_PRELUDE + PROFILED_MAIN.format(out=str(Path(profile).resolve()))
        super().__init__(parent, "cosmictron-server-", launcher=launcher)

    @property
    def durability(self) -> dict[str, object]:
        """The fsync policy and sync method the server runs with (its ``production``
        profile), as ``DurabilityConfig`` defines them."""
        from cosmictron import DurabilityConfig  # the parent only: clients never import it

        config = DurabilityConfig.from_profile("production")
        return {
            "profile": "production",
            "fsync_policy": config.fsync_policy,
            "sync_method": config.sync_method,
            "group_commit": config.fsync_policy == "always",
        }

    def new_identity_token(self) -> str:
        """A token from ``POST /v1/identity``: a caller with no rights, as HTTP clients are."""
        status, reply = self.request("POST", "/v1/identity", b"", authorized=False)
        if status != 200:
            raise RuntimeError(f"POST /v1/identity failed: {status} {reply}")
        return str(reply["token"])

    def deploy(self, name: str, source: bytes = MODULE_SOURCE.encode()) -> str:
        """Publish the benchmark's module as database ``name``; return its WebSocket URL."""
        return super().deploy(name, source)

    def counters(self, database: str) -> dict[str, float]:
        """Transactions and commit-log syncs of ``database`` so far, from ``/metrics``."""
        wanted = {
            "cosmictron_transactions_total": "transactions",
            "cosmictron_fsync_total": "fsyncs",
            "cosmictron_fsync_seconds_total": "fsync_seconds",
        }
        request = urllib.request.Request(self.url + "/metrics")
        request.add_header("Authorization", f"Bearer {self.token}")  # the operator sees all
        with urllib.request.urlopen(request, timeout=30) as reply:
            text = reply.read().decode()
        found: dict[str, float] = {}
        label = f'{{database="{database}"}}'
        for line in text.splitlines():
            name, _, value = line.partition(label + " ")
            if value and name in wanted:
                found[wanted[name]] = float(value)
        return found


class PostgresUnavailable(Exception):
    """PostgreSQL or psycopg is not installed, or the cluster could not start."""


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1, run as ``postgres`` when we are root."""

    def __init__(self, parent: str) -> None:
        self.dir: str | None = None
        self.started = False
        try:
            import psycopg
        except ImportError:
            raise PostgresUnavailable(
                f"psycopg is not installed (install: {PG_INSTALL_HINT})"
            ) from None
        self.bin = self._find_bin()
        self.prefix: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as ``postgres``
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root and there is no 'postgres' user"
                ) from None
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.dir = tempfile.mkdtemp(prefix="cosmictron-bench-pg-", dir=parent)
        if owner is not None:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            if self._run(["test", "-w", self.dir], check=False).returncode != 0:
                # The parent is not reachable by ``postgres`` (e.g. a 0700 pytest dir):
                # fall back to the system temp dir (same filesystem in our setup).
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = tempfile.mkdtemp(prefix="cosmictron-bench-pg-", dir="/tmp")
                os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        initdb = [f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust"]
        self._run([*initdb, "--no-instructions", "-E", "UTF8"])
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=on -c synchronous_commit=on -c max_connections=100"
        )
        log = os.path.join(self.dir, "postgres.log")
        self._run([f"{self.bin}/pg_ctl", "-D", self.data, "-l", log, "-w", "-t", "60",
                   "-o", options, "start"])  # fmt: skip
        self.started = True
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for statement in PG_SCHEMA:
                conn.execute(statement)
            self.settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in (
                    "server_version",
                    "fsync",
                    "synchronous_commit",
                    "wal_sync_method",
                    "commit_delay",
                    "shared_buffers",
                    "full_page_writes",
                )
            }
        self.settings["data_dir"] = self.data

    def _find_bin(self) -> str:
        candidates = [os.environ.get("PG_BIN", ""), *PG_BIN_CANDIDATES]
        found = shutil.which("pg_ctl")
        if found:
            candidates.append(os.path.dirname(found))
        for directory in candidates:
            if directory and all(
                os.access(os.path.join(directory, tool), os.X_OK) for tool in ("initdb", "pg_ctl")
            ):
                return directory
        raise PostgresUnavailable(f"PostgreSQL is not installed (install: {PG_INSTALL_HINT})")

    def _run(self, command: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.prefix, *command], capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise PostgresUnavailable(
                f"{os.path.basename(command[0])} failed: {(result.stderr or result.stdout)[-800:]}"
            )
        return result

    def pids(self) -> list[int]:
        """The postmaster and every process it forked (backends, WAL writer, ...)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                master = int(f.readline())
        except (OSError, ValueError):
            return []
        pids = [master]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rpartition(")")[2].split()
                    if int(fields[1]) == master:
                        pids.append(int(entry))
                except (OSError, IndexError, ValueError):
                    pass
        return pids

    def stop(self) -> None:
        if self.started:
            try:
                self._run([f"{self.bin}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"],
                          check=False)  # fmt: skip
            except subprocess.TimeoutExpired:
                pids = self.pids()
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
            self.started = False
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
