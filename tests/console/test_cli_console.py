"""The console's sessions, each on a server of its own: ``cosmictron-cli console``'s
address signs the browser in as the CLI's identity (a missing database is one line and a
non-zero exit), the token reaches nothing the server prints, and an open table view lives
through a server SIGKILL and restart."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from cosmictron.cli.console import console_url
from tests.cli.test_json_everywhere import environment
from tests.cli.test_server_commands import CLI
from tests.console.conftest import APP
from tests.server.conftest import Server


def run(config: Path, server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(config, server.url),
    )


def test_the_printed_address_opens_the_console_as_the_cli_s_identity(
    console_server: Server, browser: Any, tmp_path: Path
) -> None:
    config = console_server.data_dir.parent / "config"  # where the operator's token was saved
    _, token = console_server.operator()
    assert console_server.deploy("clidb", APP.read_bytes(), token).status == 201
    done = run(config, console_server, "console", "clidb")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url == console_url(console_server.url, "clidb", token)
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.get_by_role("heading", name="Schema of clidb").wait_for()
    page.locator("span.badge").get_by_text(
        "owner", exact=True
    ).wait_for()  # signed in as the CLI's identity
    assert "token" not in page.url
    context.close()


def test_a_missing_database_is_one_line_and_a_non_zero_exit(
    console_server: Server, tmp_path: Path
) -> None:
    done = run(console_server.data_dir.parent / "config", console_server, "console", "nosuchdb")
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "nosuchdb" in done.stderr and done.stdout == ""


def test_without_a_saved_identity_the_address_has_no_token(
    console_server: Server, tmp_path: Path
) -> None:
    _, token = console_server.deployer()
    assert console_server.deploy("anondb", APP.read_bytes(), token).status == 201
    done = run(tmp_path / "empty-config", console_server, "console", "anondb", "--json")
    assert done.returncode == 0, done.stderr
    assert '"signed_in": false' in done.stdout and "#db=anondb" in done.stdout


def test_the_token_is_in_no_server_output(browser: Any, tmp_path: Path) -> None:
    """The console's token travels in the fragment, sessionStorage, the Authorization
    header and the WebSocket's query: none of them may reach what the server prints."""
    from tests.server.conftest import start_server, stop_server

    server = start_server(tmp_path / "data", "--profile", "development")
    _, token = server.deployer()
    assert server.deploy("quiet", APP.read_bytes(), token).status == 201
    context = browser.new_context()
    page = context.new_page()
    page.goto(console_url(server.url, "quiet", token))
    for name in ["schema", "tables/message", "sql", "logs", "metrics"]:
        page.evaluate("r => { location.hash = r }", f"#/db/quiet/{name}")
        page.get_by_role("heading", level=1).first.wait_for()
    context.close()
    output = stop_server(server)
    assert token not in output and token[:40] not in output


def test_the_open_table_view_survives_a_server_kill_and_restart(
    browser: Any, tmp_path: Path
) -> None:
    """The console rides the SDK's reconnect: after SIGKILL and a restart on the same port
    the header says so, the rows stay on screen, and new rows arrive again."""
    import signal

    from tests.server.conftest import start_server, stop_server

    data = tmp_path / "data"
    server = start_server(data, "--profile", "development")
    _, token = server.deployer()
    assert server.deploy("phoenix", APP.read_bytes(), token).status == 201
    assert (
        server.request("POST", "/v1/database/phoenix/call/post", ["a", "before"], token).status
        == 200
    )
    context = browser.new_context()
    page = context.new_page()
    page.goto(console_url(server.url, "phoenix", token))
    page.evaluate("r => { location.hash = r }", "#/db/phoenix/tables/message")
    page.get_by_role("cell", name="before").wait_for()
    stop_server(server, signal.SIGKILL)
    page.locator(".state", has_text="reconnecting").wait_for(timeout=10_000)
    port = server.url.rsplit(":", 1)[1]
    again = start_server(data, "--profile", "development", "--listen", f"127.0.0.1:{port}")
    try:
        page.locator(".state", has_text="connected").wait_for(timeout=20_000)
        assert page.get_by_role("cell", name="before").count() == 1  # kept, not reloaded
        reply = again.request("POST", "/v1/database/phoenix/call/post", ["a", "after"], token)
        assert reply.status == 200
        page.get_by_role("cell", name="after").wait_for(timeout=5000)
    finally:
        context.close()
        stop_server(again)
