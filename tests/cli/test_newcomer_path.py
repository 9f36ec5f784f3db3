"""What a new user trips on (issue 16), each through the real CLI against a real server.

Errors that point at the user's own file and line; a CLI that never overwrites a file
without --force, reads and writes ``-`` as standard input and output, says what to do
when its port is taken, and explains how it reads arguments.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.cli.test_server_commands import CLI, ok, one_line_error, run, source_path
from tests.server.conftest import EXAMPLE, Server, start_server, stop_server

BROKEN_REDUCER = """\
from cosmictron import ReducerContext, field, reducer, table


@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True, auto_inc=True)
    name: str = ""


def make(name):
    return Itme(name=name)


@reducer
def add(ctx: ReducerContext, name: str) -> None:
    Item.insert(make(name))


@reducer
def create_project(ctx: ReducerContext, name: str) -> None:
    Item.insert(Item(name=name))
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's directory: module files are given by relative names, as users do."""
    directory = tmp_path / "work"
    directory.mkdir()
    return directory


def cli_in(
    work: Path, *args: str, config: Path, server: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The CLI run in ``work`` (bytes in and out, for ``-``)."""
    environment = {"PATH": str(Path(sys.executable).parent), "COSMICTRON_CONFIG_DIR": str(config)}
    environment.update(source_path())
    environment["COSMICTRON_SERVER"] = server
    return subprocess.run(
        [CLI, *args], capture_output=True, timeout=60, env=environment, cwd=work, input=stdin
    )


def errors_of(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    return result.stderr.decode().rstrip("\n").splitlines()


# -- errors that point at the user's code ---------------------------------------------------


def test_a_deploy_syntax_error_names_the_file_as_given_and_shows_the_line(server, config, work):
    (work / "syntax.py").write_text("from cosmictron import table\n\ndef f(:\n    pass\n")
    result = cli_in(work, "deploy", "errd", "syntax.py", config=config, server=server.url)
    assert result.returncode == 1
    lines = errors_of(result)
    assert lines[0].startswith("error: module syntax.py failed to load: SyntaxError")
    assert lines[1:] == ['  File "syntax.py", line 3', "    def f(:", "          ^"]
    assert "uploads" not in result.stderr.decode() and "errd.py" not in result.stderr.decode()
    assert server.request("GET", "/v1/database/errd/schema").status == 404


def test_a_deploy_import_error_shows_the_importing_line(server, config, work):
    (work / "imp.py").write_text("import os\nimport nosuchmodule_xyz\n")
    result = cli_in(work, "deploy", "imp", "imp.py", config=config, server=server.url)
    assert result.returncode == 1
    lines = errors_of(result)
    assert lines[0] == (
        "error: module imp.py failed to load: ModuleNotFoundError: "
        "No module named 'nosuchmodule_xyz'"
    )
    assert lines[1:] == ['  File "imp.py", line 2, in <module>', "    import nosuchmodule_xyz"]


def test_an_exception_at_import_time_shows_the_module_s_frames(server, config, work):
    (work / "boom.py").write_text("def helper():\n    return 1 / 0\n\nVALUE = helper()\n")
    result = cli_in(work, "deploy", "boom", "boom.py", config=config, server=server.url)
    lines = errors_of(result)
    assert lines[0].startswith("error: module boom.py failed to load: ZeroDivisionError")
    assert lines[1:] == [
        '  File "boom.py", line 4, in <module>',
        "    VALUE = helper()",
        '  File "boom.py", line 2, in helper',
        "    return 1 / 0",
    ]
    assert "cosmictron/" not in result.stderr.decode()


@pytest.fixture
def broken(server: Server, config: Path, work: Path) -> Server:
    (work / "app.py").write_text(BROKEN_REDUCER)
    ok_deploy = cli_in(work, "deploy", "shop", "app.py", config=config, server=server.url)
    assert ok_deploy.returncode == 0, ok_deploy.stderr
    return server


def test_the_owner_sees_the_frames_of_a_failing_reducer(broken, config, work):
    result = cli_in(work, "call", "shop", "add", "x", config=config, server=broken.url)
    assert result.returncode == 1
    assert errors_of(result) == [
        "error: reducer 'add' failed: NameError: name 'Itme' is not defined",
        '  File "app.py", line 16, in add',
        "    Item.insert(make(name))",
        '  File "app.py", line 11, in make',
        "    return Itme(name=name)",
    ]


def test_another_caller_gets_the_message_only(broken, tmp_path, work):
    stranger = tmp_path / "stranger"
    result = cli_in(work, "call", "shop", "add", "x", config=stranger, server=broken.url)
    one_line_error(
        subprocess.CompletedProcess([], result.returncode, "", result.stderr.decode()),
        1,
        "reducer 'add' failed: NameError: name 'Itme' is not defined",
    )


def test_logs_carry_the_frames_for_the_owner(broken, config, work):
    cli_in(work, "call", "shop", "add", "x", config=config, server=broken.url)
    result = cli_in(work, "logs", "shop", "--json", config=config, server=broken.url)
    (line,) = [r for r in json.loads(result.stdout)["logs"] if r["level"] == "ERROR"]
    assert line["message"].splitlines()[1:3] == [
        '  File "app.py", line 16, in add',
        "    Item.insert(make(name))",
    ]


def test_http_and_websocket_word_an_unknown_reducer_alike(broken, config, work):
    from cosmictron.client import connect_sync

    http = cli_in(work, "call", "shop", "nope", config=config, server=broken.url)
    client = connect_sync("shop", server=broken.url, use_saved_token=False)
    try:
        with pytest.raises(Exception) as caught:
            client.call("nope")
    finally:
        client.close()
    assert errors_of(http) == [f"error: {caught.value}"]
    assert str(caught.value) == "no reducer named 'nope' (reducers: add, create_project)"


# -- arguments, reprs ---------------------------------------------------------------------


def test_a_number_where_text_is_wanted_gets_a_quoting_hint(broken, config, work):
    result = cli_in(
        work, "call", "shop", "create_project", "2024", config=config, server=broken.url
    )
    (line,) = errors_of(result)
    assert "expected str, got 2024 (int)" in line
    assert "arguments are read as JSON: 2024 was sent as a number" in line
    assert """write '"2024"'""" in line
    quoted = cli_in(
        work, "call", "shop", "create_project", '"2024"', config=config, server=broken.url
    )
    assert quoted.returncode == 0, quoted.stderr


def test_errors_show_true_not_python_s_true(broken, config, work):
    result = cli_in(
        work, "call", "shop", "create_project", "true", config=config, server=broken.url
    )
    (line,) = errors_of(result)
    assert "got true (bool)" in line and "True" not in line


def test_call_help_states_the_quoting_rule(config):
    text = ok(run("call", "--help", config=config))
    assert "read as JSON" in text and """'"2024"'""" in text


# -- files: --force and - -------------------------------------------------------------------


def test_export_never_overwrites_without_force_and_dash_is_stdout(deployed_qs, config, work):
    url = deployed_qs.url
    (work / "task.csv").write_text("precious\n")
    refused = cli_in(work, "export", "qs", "task", config=config, server=url)
    assert refused.returncode == 2
    assert "task.csv exists already; pass --force" in refused.stderr.decode()
    assert (work / "task.csv").read_text() == "precious\n"
    forced = cli_in(work, "export", "qs", "task", "--force", config=config, server=url)
    assert forced.returncode == 0 and (work / "task.csv").read_text().startswith("id,")
    piped = cli_in(work, "export", "qs", "task", "--out", "-", config=config, server=url)
    assert piped.returncode == 0
    assert piped.stdout.decode() == (work / "task.csv").read_text()
    assert not (work / "-").exists()
    assert "Exported qs.task to standard output" in piped.stderr.decode()


def test_backup_refuses_to_overwrite_reports_the_file_size_and_writes_to_dash(
    deployed_qs, config, work
):
    url = deployed_qs.url
    done = cli_in(work, "backup", "qs", "qs.backup", config=config, server=url)
    assert done.returncode == 0, done.stderr
    size = (work / "qs.backup").stat().st_size
    assert f"({size} bytes, verified)" in done.stdout.decode()
    again = cli_in(work, "backup", "qs", "qs.backup", config=config, server=url)
    assert again.returncode == 2 and "pass --force" in again.stderr.decode()
    piped = cli_in(work, "backup", "qs", "-", config=config, server=url)
    assert piped.returncode == 0, piped.stderr
    assert not (work / "-").exists()
    (work / "piped.backup").write_bytes(piped.stdout)
    assert tarfile.is_tarfile(work / "piped.backup")
    restored = cli_in(work, "restore", "-", "qs2", config=config, server=url, stdin=piped.stdout)
    assert restored.returncode == 0, restored.stderr
    assert "Restored database 'qs2'" in restored.stdout.decode()


def test_generate_never_overwrites_without_force(deployed_qs, config, work):
    (work / "client.py").write_text("mine\n")
    refused = cli_in(
        work, "generate", "qs", "--out", "client.py", config=config, server=deployed_qs.url
    )
    assert refused.returncode == 2 and (work / "client.py").read_text() == "mine\n"


def test_deploy_and_import_read_dash_as_stdin(server, config, work):
    source = EXAMPLE.read_bytes()
    deployed = cli_in(work, "deploy", "qs", "-", config=config, server=server.url, stdin=source)
    assert deployed.returncode == 0, deployed.stderr
    rows = b"title,priority\nfrom stdin,2\n"
    imported = cli_in(
        work, "import", "qs", "task", "-", config=config, server=server.url, stdin=rows
    )
    assert imported.returncode == 0, imported.stderr
    assert "Imported standard input into qs.task" in imported.stdout.decode()
    found = server.request(
        "POST", "/v1/database/qs/sql", {"query": "SELECT title FROM task WHERE priority = 2"}
    )
    assert {"title": "from stdin"} in found.body["rows"]


@pytest.fixture
def deployed_qs(server: Server, config: Path) -> Server:
    ok(run("deploy", "--server", server.url, "qs", str(EXAMPLE), config=config))
    return server


# -- human output -----------------------------------------------------------------------------


def test_deploy_prints_the_migration_as_a_table(server, config, work):
    (work / "app.py").write_text(BROKEN_REDUCER)
    cli_in(work, "deploy", "shop", "app.py", config=config, server=server.url)
    updated = BROKEN_REDUCER.replace('    name: str = ""\n', '    name: str = ""\n    n: int = 0\n')
    (work / "app.py").write_text(
        updated + "\n\n@reducer\ndef extra(ctx: ReducerContext) -> None:\n    pass\n"
    )
    result = cli_in(work, "deploy", "shop", "app.py", config=config, server=server.url)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr
    assert "Updated database 'shop'" in out and "{" not in out
    lines = out.splitlines()
    assert any("columns added" in line and "item.n" in line for line in lines), out
    assert any("reducers added" in line and "extra" in line for line in lines), out


def test_num_updates_zero_prints_the_current_rows_and_exits(deployed_qs, config):
    result = run(
        "subscribe",
        "qs",
        "SELECT * FROM task",
        "--num-updates",
        "0",
        config=config,
        server=deployed_qs.url,
    )
    out = ok(result)
    assert out.splitlines()[0] == "task: 1 row at tx_offset 1"
    assert "Read the Cosmictron tutorial" in out


def test_the_listening_line_counts_one_database(tmp_path, config):
    first = start_server(tmp_path / "data", "--profile", "development")
    try:
        assert first.deploy("one", EXAMPLE.read_text(), first.operator()[1]).status == 201
    finally:
        stop_server(first)
    second = start_server(tmp_path / "data", "--profile", "development")
    try:
        assert "(data " in second.output[0] and second.output[0].rstrip().endswith("1 database)")
    finally:
        stop_server(second)


# -- start ------------------------------------------------------------------------------------


def start_in(directory: Path, *args: str) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        **source_path(),
        "COSMICTRON_CONFIG_DIR": str(directory / "config"),
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [CLI, "start", *args],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def test_a_port_in_use_says_what_to_do_and_leaves_no_data_directory(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start_in(tmp_path, "--listen", f"127.0.0.1:{port}", "--data-dir", "fresh")
        out, err = process.communicate(timeout=60)
    assert process.returncode == 1, (out, err)
    assert err.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the address is in use (is a server "
        "running there already?); choose another port with --listen HOST:PORT, or "
        "--listen HOST:0 for a free one"
    ]
    assert "('127.0.0.1'" not in err and err.count("error") == 1
    assert not (tmp_path / "fresh").exists()


def test_start_keeps_its_data_in_dot_data_by_default(tmp_path):
    process = start_in(tmp_path, "--listen", "127.0.0.1:0", "--profile", "development")
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "(data data, 0 databases)" in first, first
        assert (tmp_path / "data" / "server" / "operator.token").exists()
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_export_draws_a_progress_bar_at_a_terminal_and_none_in_a_pipe(deployed_qs, config, work):
    import pty

    def export_with_stderr(stderr: int | None, out: str) -> str:
        environment = {
            "PATH": str(Path(sys.executable).parent),
            "COSMICTRON_CONFIG_DIR": str(config),
            "COSMICTRON_SERVER": deployed_qs.url,
            "TERM": "xterm",
            **source_path(),
        }
        command = [CLI, "export", "qs", "task", "--out", out]
        if stderr is None:
            return subprocess.run(
                command, capture_output=True, text=True, env=environment, cwd=work, timeout=60
            ).stderr
        subprocess.run(
            command, stdout=subprocess.PIPE, stderr=stderr, env=environment, cwd=work, timeout=60
        )
        return ""

    main, secondary = pty.openpty()
    try:
        export_with_stderr(secondary, "at_terminal.csv")
        os.close(secondary)
        drawn = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(main)
    assert b"Exporting task" in drawn
    assert "Exporting task" not in export_with_stderr(None, "in_pipe.csv")


def test_the_subscribe_header_is_one_line_above_a_narrow_table(broken, config, work):
    """As a table's title, the header wrapped to the table's width: three lines above the
    narrow table of no rows (issue 16)."""
    out = ok(
        run(
            "subscribe",
            "shop",
            "SELECT * FROM item WHERE name = 'none'",
            "--num-updates",
            "0",
            config=config,
            server=broken.url,
        )
    )
    assert out.splitlines()[0] == "item: 0 rows at tx_offset 0", out  # deployed at 0
