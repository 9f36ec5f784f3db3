"""The examples the README points at run, and print commands that work."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_embedded_quickstart_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples/quickstart/main.py"), str(tmp_path / "qs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "run_agent returned message id" in done.stdout
    assert "a failing reducer changes nothing" in done.stdout


def test_serve_deploys_the_quickstart_and_its_printed_commands_work(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples/quickstart/serve.py"),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "server"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COSMICTRON_CONFIG_DIR": str(tmp_path / "config")},
    )
    assert process.stdout is not None
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops the server"):
                break
        output = "".join(lines)
        assert "deployed examples/quickstart/app.py as database 'quickstart'" in output, output
        call = next(line for line in lines if "call/add_task" in line)
        words = shlex.split(call.strip())
        url = next(word for word in words if word.startswith("http"))
        body = words[words.index("-d") + 1].encode()
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30) as reply:
            result = json.loads(reply.read())
        assert result["return_value"]["title"] == "Write the report"
        # It deployed as the operator, whose token start saved for the user who ran it.
        operator = (tmp_path / "server" / "server" / "operator.token").read_text().strip()
        saved = tomllib.loads((tmp_path / "config" / "cli.toml").read_text())["servers"]
        base = url.split("/v1/")[0]
        assert saved[base]["token"] == operator
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    assert "cosmictron stopped" in rest


def serve_once(data_dir: Path, config_dir: Path) -> tuple[list[str], str, subprocess.Popen[str]]:
    """Run scripts/start's program until it has printed its commands; return them, the
    output and the process (still serving)."""
    serve = str(ROOT / "examples/quickstart/serve.py")
    process = subprocess.Popen(
        [sys.executable, serve, "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COSMICTRON_CONFIG_DIR": str(config_dir)},
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Ctrl-C stops the server"):
            break
    commands = [line.strip() for line in lines if line.strip().startswith("curl ")]
    return commands, "".join(lines), process


@pytest.mark.skipif(shutil.which("curl") is None, reason="the printed commands are curl's")
def test_start_and_its_printed_commands_work_when_run_twice(tmp_path: Path) -> None:
    """``./scripts/start`` twice over the same data, each printed command run on each start
    (twice on the second): every one succeeds every time, as a user pasting them would
    expect. A unique title or a second deploy must not make the second run fail."""
    for run in range(2):
        commands, output, process = serve_once(tmp_path / "server", tmp_path / "config")
        try:
            assert len(commands) >= 5, output
            for command in commands * (run + 1):
                done = subprocess.run(
                    ["bash", "-c", command],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert done.returncode == 0, (command, done.stderr)
                first = done.stdout.splitlines()[0] if done.stdout else ""
                assert first and '"error"' not in first, (command, done.stdout[:500])
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)
        assert process.returncode == 0
