"""``import`` and ``export`` through the installed ``cosmictron-cli`` against a real server.

The CSV files are generated here in the shape of a SpacetimeDB CSV dump (a header of
column names; identities as ``0x`` hex; timestamps in RFC 3339; quoted text with commas,
quotes and line breaks). CI imports 200,000 rows; the 1,000,000-row import is the same
test under ``@pytest.mark.soak`` (``scripts/soak``), because it takes about half a
minute here. Interruptions are real: the CLI process is killed with SIGKILL after it
reports a committed batch; a lost reply is simulated by rolling the state file back one
batch, exactly what a crash between the server's commit and the state write leaves.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_server_commands import CLI, ok, one_line_error, run, source_path
from tests.server.conftest import Server

MODULE = """
from cosmictron import *

@table(name="event", public=True)
class Event:
    id: int = field(primary_key=True, auto_inc=True)
    seq: int = field(default=0, index="btree")
    owner: Identity = field(default=Identity.zero())
    title: str = ""
    price: float = 0.0
    at: Timestamp = field(default=Timestamp(0))

@table(name="secret")
class Secret:
    name: str = field(primary_key=True)
    note: str = ""
"""

HEADER = "seq,owner,title,price,at\n"


def write_dump(path: Path, rows: int, bad_row: int | None = None) -> Path:
    """A SpacetimeDB-style dump of ``rows`` events; ``bad_row`` gets a price of 'abc'."""
    owners = [f"0x{i:064x}" for i in range(50)]
    with path.open("w") as file:
        file.write(HEADER)
        for i in range(rows):
            title = f'"say ""hi"", {i}\nsecond line"' if i % 1000 == 7 else f"event {i}"
            price = "abc" if i == bad_row else f"{i % 1000 / 8}"
            stamp = f"2026-01-{1 + i % 28:02d}T10:00:{i % 60:02d}.{i % 1000000:06d}Z"
            file.write(f"{i},{owners[i % 50]},{title},{price},{stamp}\n")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config"


@pytest.fixture
def deployed(server: Server, config: Path, tmp_path: Path) -> Server:
    module = tmp_path / "events.py"
    module.write_text(MODULE)
    ok(run("deploy", "--server", server.url, "events", str(module), config=config))
    ok(run("deploy", "--server", server.url, "copy", str(module), config=config))
    return server


def count(server: Server, config: Path, database: str = "events") -> tuple[int, int]:
    """(rows, distinct seq values) of the event table."""
    query = "SELECT COUNT(*) AS n, COUNT(DISTINCT seq) AS d FROM event"
    reply = json.loads(
        ok(run("sql", "--server", server.url, database, query, "--json", config=config))
    )
    return reply["rows"][0]["n"], reply["rows"][0]["d"]


def import_file(server: Server, config: Path, path: Path, *extra: str, database: str = "events"):
    return run(
        "import", "--server", server.url, database, "event", str(path), *extra, config=config
    )


def check_import(server: Server, config: Path, rows: int, tmp_path: Path) -> None:
    dump = write_dump(tmp_path / "events.csv", rows)
    result = import_file(server, config, dump, "--json")
    summary = json.loads(ok(result))
    assert summary["rows_committed"] == rows
    assert summary["batches_sent"] == -(-rows // 100_000)
    # Without a terminal the progress is one line per committed batch on stderr.
    assert result.stderr.count("committed lines ") == summary["batches_sent"]
    assert "committed lines 2-" in result.stderr
    assert count(server, config) == (rows, rows)


def test_import_200k_rows_then_count(deployed, config, tmp_path):
    check_import(deployed, config, 200_000, tmp_path)


@pytest.mark.soak
def test_import_1m_rows_then_count(deployed, config, tmp_path):
    check_import(deployed, config, 1_000_000, tmp_path)


def test_sigkill_mid_import_then_resume_loads_every_row_once(deployed, config, tmp_path):
    rows = 100_000
    dump = write_dump(tmp_path / "events.csv", rows)
    command = [CLI, "import", "--server", deployed.url, "events", "event", str(dump)]
    environment = {"PATH": str(Path(sys.executable).parent), "COSMICTRON_CONFIG_DIR": str(config)}
    environment.update(source_path())
    with subprocess.Popen(
        [*command, "--batch-rows", "5000"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=environment,
    ) as process:
        assert process.stderr is not None
        for _ in range(3):  # three batches acknowledged and recorded
            assert "committed lines" in process.stderr.readline()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    loaded, _ = count(deployed, config)
    assert 15_000 <= loaded < rows
    result = import_file(deployed, config, dump, "--batch-rows", "5000")
    ok(result)
    assert "resuming after line" in result.stderr
    assert count(deployed, config) == (rows, rows)


def test_a_lost_reply_is_not_loaded_twice(deployed, config, tmp_path):
    rows = 30_000
    dump = write_dump(tmp_path / "events.csv", rows)
    ok(import_file(deployed, config, dump, "--batch-rows", "10000"))
    # Roll the state file back one batch: the server committed it, the CLI "never heard".
    state_file = tmp_path / "events.csv.cosmictron-import.json"
    state = json.loads(state_file.read_text())
    lost = state["batches"].pop()
    with dump.open("rb") as file:
        lines = file.read().splitlines(keepends=True)
    state["lines_committed"] = lost["start_line"] - 1
    state["bytes_committed"] = sum(map(len, lines[: lost["start_line"] - 1]))
    state["rows_committed"] -= lost["rows"]
    import hashlib

    state["prefix_sha256"] = hashlib.sha256(b"".join(lines[: lost["start_line"] - 1])).hexdigest()
    state["complete"] = False
    state_file.write_text(json.dumps(state))
    summary = json.loads(ok(import_file(deployed, config, dump, "--json")))
    assert summary["batches_sent"] == 1 and summary["batches_already_applied"] == 1
    assert summary["rows_committed"] == rows
    assert count(deployed, config) == (rows, rows)


def test_a_bad_row_refuses_the_file_naming_its_line(deployed, config, tmp_path):
    dump = write_dump(tmp_path / "bad.csv", 50_000, bad_row=25_000)
    result = import_file(deployed, config, dump)
    # Row 25,000 (0-based) is on line 25,002 plus the lines quoted titles add before it.
    line = 25_002 + len([i for i in range(25_000) if i % 1000 == 7])
    one_line_error(result, 1, f"line {line}, column 'price': expected f64, got 'abc'")
    assert count(deployed, config) == (0, 0)


def test_after_a_bad_row_fixing_the_file_and_rerunning_completes(deployed, config, tmp_path):
    dump = write_dump(tmp_path / "bad.csv", 30_000, bad_row=25_000)
    result = import_file(deployed, config, dump, "--batch-rows", "10000")
    assert result.returncode == 1 and "column 'price'" in result.stderr
    assert count(deployed, config) == (20_000, 20_000)  # the batches before it stay
    write_dump(dump, 30_000)  # fixed; the loaded part is unchanged
    ok(import_file(deployed, config, dump, "--batch-rows", "10000"))
    assert count(deployed, config) == (30_000, 30_000)


def test_a_changed_loaded_part_refuses_to_resume(deployed, config, tmp_path):
    dump = write_dump(tmp_path / "events.csv", 100)
    ok(import_file(deployed, config, dump))
    dump.write_text(dump.read_text().replace("event 3,", "event three,"))
    one_line_error(import_file(deployed, config, dump), 2, "changed since they were imported")


def test_export_then_import_into_another_database_is_equal(deployed, config, tmp_path):
    rows = 20_000
    ok(import_file(deployed, config, write_dump(tmp_path / "events.csv", rows)))
    exported = tmp_path / "exported.csv"
    ok(
        run(
            "export",
            "--server",
            deployed.url,
            "events",
            "event",
            "--out",
            str(exported),
            config=config,
        )
    )
    assert exported.read_text().startswith("id,seq,owner,title,price,at\n")
    ok(import_file(deployed, config, exported, database="copy"))
    assert count(deployed, config, "copy") == (rows, rows)
    for form in ("csv", "ndjson"):
        first, second = tmp_path / f"first-{form}", tmp_path / f"second-{form}"
        for database, out in (("events", first), ("copy", second)):
            ok(
                run(
                    "export", "--server", deployed.url, database,
                    "--format", form, "--out", str(out), config=config,
                )
            )  # fmt: skip
        assert (first / f"event.{form}").read_bytes() == (second / f"event.{form}").read_bytes()
        assert (first / f"secret.{form}").exists()


def test_exporting_a_private_table_needs_the_owner(deployed, config, tmp_path):
    stranger = tmp_path / "stranger"
    ok(run("identity", "new", "--server", deployed.url, config=stranger))
    result = run("export", "--server", deployed.url, "events", "secret", config=stranger)
    one_line_error(result, 1, "only the owner may export it")
    out = tmp_path / "all"
    result = run("export", "--server", deployed.url, "events", "--out", str(out), config=stranger)
    ok(result)
    assert "secret" not in result.stdout + result.stderr  # not even named to a stranger
    assert (out / "event.csv").exists() and not (out / "secret.csv").exists()
