"""Start a Cosmictron server with the quickstart module deployed, and say how to call it.

Usage: python examples/quickstart/serve.py [--listen HOST:PORT] [--data-dir DIR]

Runs ``cosmictron-cli start`` (the server), reads the operator's token the server made
on its first start (``DATA_DIR/server/operator.token``: deploying needs the right to
deploy, which the operator holds; see docs/guide/security.md), deploys ``app.py`` as
database ``quickstart`` (``PUT /v1/database/quickstart``) unless it is already there,
prints ready-to-paste ``curl`` commands, and then stays in the foreground until Ctrl-C,
which stops the server cleanly (drain, sync, close).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def request(method: str, url: str, body: bytes | None = None, token: str | None = None) -> dict:
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:3000")
    parser.add_argument("--data-dir", default="data/server")
    args = parser.parse_args()
    cli = shutil.which("cosmictron-cli", path=str(Path(sys.executable).parent)) or "cosmictron-cli"
    server = subprocess.Popen(
        [cli, "start", "--listen", args.listen, "--data-dir", args.data_dir],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    first = server.stdout.readline()
    if "listening on " not in first:
        print(first, end="")
        return server.wait() or 1
    print(first, end="")
    url = first.split("listening on ", 1)[1].split()[0]
    token_file = Path(args.data_dir) / "quickstart-owner.token"  # made by earlier versions
    if not token_file.exists():
        token_file = Path(args.data_dir) / "server" / "operator.token"
    token = token_file.read_text().strip()
    schema = request("GET", f"{url}/v1/database/quickstart/schema")
    if "error" in schema:
        deployed = request(
            "PUT", f"{url}/v1/database/quickstart", (HERE / "app.py").read_bytes(), token
        )
        if "error" in deployed:
            print(f"deploy failed: {deployed['error']['message']}")
            server.send_signal(signal.SIGTERM)
            return server.wait() or 1
        print(
            f"deployed examples/quickstart/app.py as database 'quickstart' "
            f"(owner token in {token_file})"
        )
    else:
        print(f"database 'quickstart' is already deployed (offset {schema['tx_offset']})")
    metrics_token_file = Path(args.data_dir) / "server" / "metrics.token"
    print(
        f"""
Try it (in another terminal):
  curl -s -X POST {url}/v1/database/quickstart/call/add_task -d '["Write the report", 2]'
  curl -s -X POST {url}/v1/database/quickstart/call/run_agent -d '["Summarise the report"]'
  curl -s -X POST {url}/v1/database/quickstart/sql -d 'SELECT * FROM task ORDER BY priority DESC'
  curl -s {url}/v1/database/quickstart/schema
  curl -s -H "Authorization: Bearer $(cat {token_file})" {url}/v1/database/quickstart/logs
  curl -s -H "Authorization: Bearer $(cat {metrics_token_file})" {url}/metrics

Ctrl-C stops the server (it drains requests and syncs the logs first).""",
        flush=True,
    )
    signal.signal(signal.SIGINT, lambda *_: server.send_signal(signal.SIGTERM))
    signal.signal(signal.SIGTERM, lambda *_: server.send_signal(signal.SIGTERM))
    for line in server.stdout:
        print(line, end="", flush=True)
    return server.wait()


if __name__ == "__main__":
    sys.exit(main())
