"""``cosmictron-cli console``: the printed address signs the browser in as the CLI's
identity, and a database that does not exist is one line and a non-zero exit."""

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
        [CLI, *args], capture_output=True, text=True, timeout=60, env=environment(config, server.url)
    )


def test_the_printed_address_opens_the_console_as_the_cli_s_identity(
    console_server: Server, browser: Any, tmp_path: Path
) -> None:
    config = console_server.data_dir.parent / "config"  # where the operator's token was saved
    identity, token = console_server.operator()
    assert console_server.deploy("clidb", APP.read_bytes(), token).status == 201
    done = run(config, console_server, "console", "clidb")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url == console_url(console_server.url, "clidb", token)
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.get_by_role("heading", name="Schema of clidb").wait_for()
    page.locator("span.badge").get_by_text("owner", exact=True).wait_for()  # signed in as the CLI's identity
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
    identity, token = console_server.deployer()
    assert console_server.deploy("anondb", APP.read_bytes(), token).status == 201
    done = run(tmp_path / "empty-config", console_server, "console", "anondb", "--json")
    assert done.returncode == 0, done.stderr
    assert '"signed_in": false' in done.stdout and "#db=anondb" in done.stdout
