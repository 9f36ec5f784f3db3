"""Every server command, run through the installed ``cosmictron-cli`` against a real server.

Each test starts a server (``tests/server/conftest.py``), points the CLI at it with
``--server``, ``COSMICTRON_SERVER`` or the saved default, and keeps the CLI's settings in
a temporary ``COSMICTRON_CONFIG_DIR``. It checks what a user sees: stdout, the one-line
error on stderr and the exit code (1 the request failed, 2 usage, 3 cannot connect).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.conftest import EXAMPLE, Server, shared_server

CLI = shutil.which("cosmictron-cli", path=str(Path(sys.executable).parent))


def source_path() -> dict[str, str]:
    """``PYTHONPATH`` if the tests run with one (a worktree's ``src``), so the CLI under
    test is the code under test rather than whichever copy is installed."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join(map(os.path.abspath, paths))} if paths else {}


def run(
    *args: str, config: Path, server: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI with its settings in ``config``; ``server`` sets COSMICTRON_SERVER."""
    assert CLI, "cosmictron-cli is installed beside the test interpreter"
    environment = {"PATH": str(Path(sys.executable).parent), "COSMICTRON_CONFIG_DIR": str(config)}
    environment.update(source_path())
    if server is not None:
        environment["COSMICTRON_SERVER"] = server
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        input=stdin if stdin is not None else "",
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], exit_code: int, text: str) -> None:
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert text in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config"


@pytest.fixture
def deployed(server: Server, config: Path) -> Server:
    """The quickstart module deployed as ``qs`` by the identity saved in ``config``."""
    ok(run("deploy", "--server", server.url, "qs", str(EXAMPLE), config=config))
    return server


@pytest.fixture(scope="module")
def deployed_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """One server with the quickstart deployed as ``qs``, and the settings directory of
    its operator, for the cases that only read: a server each would cost a start (about
    a second of CPU) and a deploy apiece, for nothing they check."""
    with shared_server(tmp_path_factory) as running:
        config = running.data_dir.parent / "config"  # where `start` saved the operator
        ok(run("deploy", "--server", running.url, "qs", str(EXAMPLE), config=config))
        yield running, config


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def granted(server: Server, config: Path) -> str:
    """A second user: a new identity saved in ``config``, granted deploy by the operator."""
    identity = json.loads(
        ok(run("identity", "new", "--server", server.url, "--json", config=config))
    )
    assert server.grant_deploy(identity["identity"]).status == 200
    return str(identity["identity"])


def test_start_saved_the_operator_token_0600_and_deploy_uses_it(server, config):
    settings_file = config / "cli.toml"
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600
    saved = tomllib.loads(settings_file.read_text())["servers"][server.url]
    operator, token = server.operator()
    assert saved == {"identity": operator, "token": token}
    assert f"operator {operator}: token saved for {server.url}" in server.process.stdout.readline()
    result = run("deploy", "--server", server.url, "qs", str(EXAMPLE), config=config)
    assert "Created database 'qs' (tx_offset 1)." in ok(result)
    assert f"owner     {operator}" in result.stdout and result.stderr == ""
    shown = json.loads(ok(run("identity", "show", "--server", server.url, "--json", config=config)))
    assert shown["identity"] == operator
    listed = run("list", "--server", server.url, config=config)
    assert "yes" in ok(listed) and "1 database" in listed.stdout


def test_deploy_without_identity_obtains_one_then_needs_the_right(server, tmp_path):
    stranger = tmp_path / "stranger"
    result = run("deploy", "--server", server.url, "qs", str(EXAMPLE), config=stranger)
    saved = tomllib.loads((stranger / "cli.toml").read_text())["servers"][server.url]
    assert stat.S_IMODE((stranger / "cli.toml").stat().st_mode) == 0o600
    assert result.returncode == 1, result.stderr
    note, error = result.stderr.strip().splitlines()
    assert note.startswith(f"No saved identity for {server.url}: obtained")
    assert error.startswith("error: ") and "may not deploy database 'qs'" in error
    assert f"cosmictron-cli grant deploy {saved['identity']}" in error
    assert server.request("GET", "/v1/database/qs/schema").status == 404


def test_identity_new_saves_the_token_and_the_first_default_server(server, config):
    created = json.loads(
        ok(run("identity", "new", "--server", server.url, "--json", config=config))
    )
    assert created["default_server"] == server.url
    settings = tomllib.loads((config / "cli.toml").read_text())
    assert settings["default_server"] == server.url
    assert settings["servers"][server.url]["identity"] == created["identity"]
    assert server.grant_deploy(created["identity"]).status == 200  # it replaced the operator
    # No --server and no COSMICTRON_SERVER: the saved default server is used.
    human = ok(run("identity", "show", config=config))
    assert f"identity  {created['identity']}" in human and "verified  yes" in human
    # deploy reuses the saved token: no new identity, and the database is ours.
    deploy = run("deploy", "qs", str(EXAMPLE), "--json", config=config)
    assert json.loads(ok(deploy))["owner"] == created["identity"]
    assert deploy.stderr == ""
    renewed = ok(run("identity", "new", config=config))
    assert f"It replaces {created['identity']}" in renewed


def test_cosmictron_server_sets_the_server_and_server_flag_wins(server, config):
    listed = run("list", "--json", config=config, server=server.url)
    assert json.loads(ok(listed)) == {"databases": []}
    # --server beats the environment, after the arguments too (DESIGN.md §6).
    dead = closed_port_url()
    assert ok(run("list", "--server", server.url, config=config, server=dead))
    one_line_error(run("list", config=config, server=dead), 3, f"cannot connect to {dead}")


def test_call_parses_json_arguments_and_prints_the_return_value(deployed, config):
    human = ok(run("call", "qs", "add_task", "Write docs", "3", config=config, server=deployed.url))
    assert human.splitlines() == [
        'return_value: {"id": 2, "title": "Write docs", "done": false, "priority": 3}',
        "tx_offset: 2",
    ]
    # Options may also come after the arguments.
    reply = run("call", "qs", "run_agent", "[1]", "--json", "--server", deployed.url, config=config)
    one_line_error(reply, 1, "argument 'prompt': expected str")
    reply = run("call", "qs", "run_agent", '"5"', "--server", deployed.url, "--json", config=config)
    assert json.loads(ok(reply)) == {
        "return_value": 1,
        "tx_offset": 3,
        "timestamp": json.loads(reply.stdout)["timestamp"],
    }


def test_sql_select_with_parameters_and_owner_dml(deployed, config, tmp_path):
    url = deployed.url
    ok(run("call", "qs", "add_task", "Write docs", "3", config=config, server=url))
    query = "SELECT title, priority FROM task WHERE priority > :p"
    human = ok(run("sql", "qs", query, "--param", "p=1", config=config, server=url))
    assert "Write docs" in human and "Read the Cosmictron tutorial" not in human
    assert human.rstrip().endswith("1 row")
    document = json.loads(
        ok(run("sql", "qs", query, "--param", "p=0", "--json", config=config, server=url))
    )
    assert document["columns"] == ["title", "priority"]
    assert {"title": "Write docs", "priority": 3} in document["rows"]
    update = "UPDATE task SET done = true WHERE id = 1"
    assert "1 row affected (tx_offset 3)." in ok(
        run("sql", "qs", update, config=config, server=url)
    )
    returning = "UPDATE task SET priority = 7 WHERE id = 1 RETURNING UPPER(title) AS loud"
    shown = ok(run("sql", "qs", returning, config=config, server=url))
    assert "LOUD" in shown.upper() and "READ THE COSMICTRON TUTORIAL" in shown
    assert "1 row affected (tx_offset 4)." in shown
    stranger = tmp_path / "stranger"
    one_line_error(
        run("sql", "qs", update, config=stranger, server=url),
        1,
        "only the database owner may change data through SQL",
    )


def test_describe_and_list(deployed, config):
    url = deployed.url
    human = ok(run("describe", "qs", config=config, server=url))
    for text in ("table task (public)", "table agent_message (public, event)", "add_task"):
        assert text in human
    assert "title: str, priority: i64 (optional)" in human
    schema = json.loads(ok(run("describe", "qs", "--json", config=config, server=url)))
    assert [t["name"] for t in schema["tables"]] == ["agent_message", "task"]
    listed = json.loads(ok(run("list", "--json", config=config, server=url)))
    assert [(d["name"], d["mine"]) for d in listed["databases"]] == [("qs", True)]


def test_delete_asks_is_owner_only_and_deletes(deployed, config, tmp_path):
    url = deployed.url
    one_line_error(run("delete", "qs", config=config, server=url), 2, "needs --yes")
    stranger = tmp_path / "stranger"
    one_line_error(
        run("delete", "qs", "--yes", config=stranger, server=url),
        1,
        "only the owner of database 'qs' may delete it",
    )
    assert "Deleted database 'qs'" in ok(run("delete", "qs", "--yes", config=config, server=url))
    one_line_error(
        run("describe", "qs", config=config, server=url), 1, "database 'qs' does not exist"
    )


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["describe", "nope"], 1, "database 'nope' does not exist"),
        (["call", "qs", "nope"], 1, "no reducer named 'nope' (reducers: add_task"),
        (["call", "qs", "add_task", "x", "high"], 1, "argument 'priority': expected i64"),
        (["sql", "qs", "SELEC 1"], 1, "syntax error near 'SELEC 1': unexpected text"),
        (["sql", "qs", "SELECT 1", "--param", "p"], 2, "expected NAME=VALUE"),
        (["call", "qs"], 2, "Missing argument 'REDUCER'"),
        (["list", "--server", "localhost:3000"], 2, "expected a URL like http://127.0.0.1:3000"),
        (["list", "--server", "http://127.0.0.1:3000/v1"], 2, "without a path"),
        (["list", "--server", "http://no-such-host.invalid"], 3, "unknown host"),
        (["logs", "nope"], 1, ""),
    ],
)
def test_errors_are_one_line_and_an_exit_code(deployed_once, args, exit_code, message):
    server, config = deployed_once
    one_line_error(run(*args, config=config, server=server.url), exit_code, message)


def test_cannot_connect_is_exit_code_3(config):
    dead = closed_port_url()
    for args in (["list"], ["call", "qs", "run_agent", "x"], ["deploy", "qs", str(EXAMPLE)]):
        one_line_error(run(*args, "--server", dead, config=config), 3, "connection refused")


def test_a_token_from_another_server_is_refused_with_the_fix(deployed, config):
    settings_file = config / "cli.toml"
    text = settings_file.read_text()
    token = tomllib.loads(text)["servers"][deployed.url]["token"]
    settings_file.write_text(text.replace(token, token[:-4] + "AAAA"))
    one_line_error(
        run("list", config=config, server=deployed.url),
        1,
        f"run: cosmictron-cli identity new --server {deployed.url}",
    )


def test_a_broken_settings_file_is_one_line(config):
    config.mkdir()
    (config / "cli.toml").write_text("default_server = [")
    one_line_error(run("list", config=config), 1, "is not a valid cosmictron-cli settings file")


def test_not_a_cosmictron_server_is_exit_code_3(config, tmp_path):
    # A plain file server answers HTTP but not with Cosmictron's JSON.
    with subprocess.Popen(
        [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        try:
            assert process.stdout is not None
            port = process.stdout.readline().split("port ")[1].split()[0]
            result = run("list", "--server", f"http://127.0.0.1:{port}", config=config)
            one_line_error(result, 3, "is not a Cosmictron server")
        finally:
            process.terminate()


def test_logs_against_the_server(deployed, config):
    url = deployed.url
    ok(run("call", "qs", "run_agent", "hello", config=config, server=url))
    human = ok(run("logs", "qs", "--num-lines", "5", config=config, server=url))
    assert "[run_agent] message 1 recorded" in human
    document = json.loads(
        ok(run("logs", "qs", "--json", "--level", "info", config=config, server=url))
    )
    assert document["logs"][-1]["message"] == "message 1 recorded"


def test_subscribe_against_the_server(deployed, config):
    url = deployed.url
    command = [CLI, "subscribe", "qs", "SELECT * FROM task", "--json", "--num-updates", "1"]
    environment = {"PATH": str(Path(sys.executable).parent), "COSMICTRON_CONFIG_DIR": str(config)}
    environment.update(source_path())
    with subprocess.Popen(
        [*command, "--server", url], stdout=subprocess.PIPE, text=True, env=environment
    ) as process:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        while "SubscribeApplied" not in first:
            first = json.loads(process.stdout.readline())
        assert first["SubscribeApplied"]["tables"][0]["table_name"] == "task"
        ok(run("call", "qs", "add_task", "Live", config=config, server=url))
        update = json.loads(process.stdout.readline())
        assert update["TransactionUpdate"]["tables"][0]["inserts"][0]["title"] == "Live"
        assert process.wait(timeout=30) == 0


def test_deploy_over_a_database_migrates_refuses_and_clears(deployed, config, tmp_path):
    url = deployed.url
    grown = tmp_path / "grown.py"
    grown.write_text(
        EXAMPLE.read_text()
        + "\n\n@reducer\ndef ping(ctx: ReducerContext) -> str:\n    return 'pong'\n"
    )
    updated = ok(run("deploy", "qs", str(grown), config=config, server=url))
    assert "Updated database 'qs'" in updated and "ping" in updated
    assert (
        json.loads(ok(run("call", "qs", "ping", "--json", config=config, server=url)))[
            "return_value"
        ]
        == "pong"
    )
    broken = tmp_path / "broken.py"
    broken.write_text(EXAMPLE.read_text().replace("title: str", "title: int"))
    one_line_error(run("deploy", "qs", str(broken), config=config, server=url), 1, "title")
    cleared = json.loads(
        ok(run("deploy", "qs", str(grown), "--clear", "--json", config=config, server=url))
    )
    assert cleared["migration"]["cleared"] is True
