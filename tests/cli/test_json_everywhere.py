"""``--json`` for machines on every CLI command (issue 16): each command takes it, and
what it prints under it parses, through the real CLI against a real server.

The list below must name every command of ``cosmictron-cli``: a new command without
``--json``, or without a run here, fails ``test_every_command_is_run_here``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from cosmictron.cli.main import cli
from tests.cli.test_reference import commands_of
from tests.cli.test_server_commands import CLI, source_path
from tests.server.conftest import EXAMPLE, Server


def leaf_commands(group: click.Group = cli, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in commands_of(group):
        if isinstance(command, click.Group):
            found.update(leaf_commands(command, f"{prefix}{name} "))
        else:
            found[prefix + name] = command
    return found


def test_every_command_takes_json() -> None:
    missing = [
        name
        for name, command in leaf_commands().items()
        if not any("--json" in getattr(param, "opts", ()) for param in command.params)
    ]
    assert not missing, f"commands without --json: {missing}"


def environment(config: Path, server: str | None) -> dict[str, str]:
    found = {
        "PATH": str(Path(sys.executable).parent),
        "COSMICTRON_CONFIG_DIR": str(config),
        "COSMICTRON_PERFORMANCE_PROFILE": "development",
        **source_path(),
    }
    if server is not None:
        found["COSMICTRON_SERVER"] = server
    return found


def documents(stdout: str) -> list[Any]:
    """One JSON document, or NDJSON (one per line); either must parse whole."""
    text = stdout.strip()
    if not text:
        return []
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines()]


def run_json(work: Path, config: Path, server: str | None, *args: str) -> list[Any]:
    done = subprocess.run(
        [CLI, *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=work,
        env=environment(config, server),
    )
    assert done.returncode == 0, (args, done.stderr)
    return documents(done.stdout)


def run_until_first_line(work: Path, config: Path, server: str | None, *args: str) -> list[Any]:
    """A command that runs until Ctrl-C: its first line, then the rest after SIGINT.

    A command still running 60 s after SIGINT fails the test with every thread's stack
    (``PYTHONFAULTHANDLER`` prints them on SIGABRT), and its pipes are closed either way
    (left open, the garbage collector warns about them in a later test)."""
    with subprocess.Popen(
        [CLI, *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=work,
        env={**environment(config, server), "PYTHONFAULTHANDLER": "1"},
    ) as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        process.send_signal(signal.SIGINT)
        try:
            rest, errors = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            _, stacks = process.communicate()
            pytest.fail(f"{args[0]} still ran 60 s after SIGINT; its threads:\n{stacks[-8000:]}")
    assert process.returncode in (0, 130), errors
    return documents(first + rest)


MCP_SESSION = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
]  # fmt: skip


def run_mcp(work: Path, config: Path, server: str) -> list[Any]:
    """``mcp`` speaks JSON-RPC on stdout, one message a line, with or without ``--json``:
    a client's session on its stdin, each reply read before stdin is closed."""
    process = subprocess.Popen(
        [CLI, "mcp", "qs", "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=work,
        env=environment(config, server),
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        lines = []
        for message in MCP_SESSION:
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()
            if "id" in message:
                lines.append(process.stdout.readline())
        rest, errors = process.communicate(timeout=60)  # closes stdin: the session ends
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, errors
    replies = documents("".join(lines) + rest)
    assert [reply["id"] for reply in replies] == [1, 2], replies
    assert "run_sql" in [tool["name"] for tool in replies[1]["result"]["tools"]]
    return replies


RUN_HERE = {
    "backup", "call", "delete", "deploy", "describe", "export", "export-audit", "generate", "grant",
    "identity new", "identity show", "import", "list", "local-call", "logs", "restore",
    "revoke", "sql", "start", "subscribe", "verify",
    "mcp",
    "console",
    "cluster status",
}  # fmt: skip

RUN_ELSEWHERE = {"keys list", "keys rotate", "keys revoke"}
"""Commands whose ``--json`` runs in another test because they need a server set up for
them: the signing-key commands need a database with a ledger
(tests/server/test_audit_keys.py runs each with ``--json`` and reads what it prints)."""


def test_every_command_is_run_here() -> None:
    assert set(leaf_commands()) == RUN_HERE | RUN_ELSEWHERE


def test_every_command_s_json_parses(server: Server, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "app.py").write_bytes(EXAMPLE.read_bytes())
    (work / "more.csv").write_text("title,done,priority\nimported,false,1\n")
    config = tmp_path / "config"  # where the test server saved its operator's token
    url = server.url
    ran: dict[str, list[Any]] = {}

    def check(name: str, *args: str) -> Any:
        ran[name] = run_json(work, config, url, *args)
        assert ran[name], f"{name} printed nothing under --json"
        return ran[name][0]

    assert check("identity show", "identity", "show")["operator"] is True
    assert check("deploy", "deploy", "qs", "app.py")["created"] is True
    assert check("call", "call", "qs", "add_task", "x", "2")["return_value"]["title"] == "x"
    assert check("sql", "sql", "qs", "SELECT title FROM task")["columns"] == ["title"]
    assert any(d["name"] == "qs" for d in check("list", "list")["databases"])
    assert "tables" in check("describe", "describe", "qs")
    assert check("cluster status", "cluster", "status") == {"nodes": [], "databases": []}
    assert check("console", "console", "qs")["url"].startswith(server.url + "/console/#token=")
    check("generate", "generate", "qs", "--out", "qs_types.py")
    check("export", "export", "qs", "task", "--out", "task.csv")
    check("import", "import", "qs", "task", "more.csv")
    check("backup", "backup", "qs", "qs.backup")
    check("restore", "restore", "qs.backup", "qs2")
    assert check("logs", "logs", "qs")["database"] == "qs"
    verified = check("verify", "verify", "qs")  # the server's copy, checked by its owner
    assert verified["ok"] is True and verified["records"] >= 2, verified
    exported = check("export-audit", "export-audit", "qs", "qs-audit")  # from the server's backup
    assert exported["records"] >= 2 and exported["anchors"] == 0, exported
    teammate = tmp_path / "teammate"
    new = run_json(work, teammate, url, "identity", "new")
    ran["identity new"] = new
    identity = new[0]["identity"]
    assert check("grant", "grant", "deploy", identity)["granted"] is True
    assert check("revoke", "revoke", "deploy", identity)["granted"] is False
    assert check("delete", "delete", "qs2", "--yes")["deleted"] is True
    ran["mcp"] = run_mcp(work, config, url)
    subscribed = run_until_first_line(work, config, url, "subscribe", "qs", "SELECT * FROM task")
    assert subscribed, "subscribe printed nothing under --json"
    ran["subscribe"] = subscribed
    ran["local-call"] = run_json(
        work, config, None, "local-call", "local", "add_task", "y", "--module", "app.py"
    )
    assert ran["local-call"][0]["tx_offset"] >= 1
    started = run_until_first_line(
        work, config, None, "start", "--listen", "127.0.0.1:0", "--data-dir", "own"
    )
    assert [d["event"] for d in started] == ["listening", "shutting_down", "stopped"]
    assert started[0]["url"].startswith("http://127.0.0.1:") and started[0]["databases"] == 0
    ran["start"] = started
    assert set(ran) == RUN_HERE
