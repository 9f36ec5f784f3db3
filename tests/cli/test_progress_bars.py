"""Long work draws a rich progress bar on stderr at a terminal, and none in a pipe or under
``--json`` (issue 16): deploy, import (the CLI's bulk insert), export, backup, restore,
each through the real CLI against a real server, its stderr a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.cli.test_server_commands import CLI, source_path
from tests.server.conftest import EXAMPLE, Server

ROWS = "title,done,priority\n" + "".join(f"task {n},false,{n % 5}\n" for n in range(2000))

# (what the bar says, the command; {n} makes each run's files and names its own)
COMMANDS = [
    ("Uploading app.py", ["deploy", "qs{n}", "app.py"]),
    ("Importing tasks.csv", ["import", "qs{n}", "task", "tasks.csv", "--batch-rows", "500"]),
    ("Exporting task", ["export", "qs{n}", "task", "--out", "task{n}.csv"]),
    ("Downloading qs{n}", ["backup", "qs{n}", "qs{n}.backup"]),
    ("Uploading qs{n}.backup", ["restore", "qs{n}.backup", "copy{n}"]),
]


def run_at(work: Path, config: Path, server: Server, args: list[str], terminal: bool) -> str:
    """Run the CLI with stderr a pseudo-terminal (``terminal``) or a pipe; its stderr."""
    environment = {
        "PATH": str(Path(sys.executable).parent),
        "COSMICTRON_CONFIG_DIR": str(config),
        "COSMICTRON_SERVER": server.url,
        "TERM": "xterm",
        **source_path(),
    }
    if not terminal:
        done = subprocess.run(
            [CLI, *args], capture_output=True, text=True, env=environment, cwd=work, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stderr
    main, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [CLI, *args],
            stdout=subprocess.PIPE,
            stderr=secondary,
            env=environment,
            cwd=work,
            timeout=60,
        )
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
    assert done.returncode == 0, drawn
    return drawn.decode(errors="replace")


def test_long_work_draws_a_bar_at_a_terminal_and_none_in_a_pipe_or_under_json(
    server: Server, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "app.py").write_bytes(EXAMPLE.read_bytes())
    (work / "tasks.csv").write_text(ROWS)
    config = tmp_path / "config"
    for n, (terminal, json_mode) in enumerate([(True, False), (False, False), (True, True)]):
        for description, command in COMMANDS:
            args = [word.format(n=n) for word in command] + (["--json"] if json_mode else [])
            if n and args[0] == "import":  # the state file of the first run says done
                args.append("--restart")
            stderr = run_at(work, config, server, args, terminal)
            shown = description.format(n=n)
            if terminal and not json_mode:
                assert shown in stderr, (args, stderr)
                assert "━" in stderr, (args, stderr)  # the bar itself
            else:
                assert shown not in stderr and "━" not in stderr, (args, stderr)
