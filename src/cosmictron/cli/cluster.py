"""``cosmictron-cli cluster status``: the cluster's nodes, leaders and replica lag.

It prints ``GET /v1/cluster`` (DESIGN.md §9): every node with its URL and whether its
heartbeat is recent (or it is leaving), and every database with its leader, the nodes
placement puts it on (leader first: ``cluster/placement.py``) and each node's applied
offset and lag behind the replicated log. A single-node server reports no nodes and no databases.
"""

from __future__ import annotations

import click
from rich.console import Console

from cosmictron.cli.context import CommandContext, server_command
from cosmictron.cli.output import table


@click.group("cluster")
def cluster() -> None:
    """Cluster mode (start --cluster): what the nodes lead and how far each has applied.

    Example: cosmictron-cli cluster status --server http://127.0.0.1:3000
    """


@cluster.command("status")
@server_command
def status(context: CommandContext) -> None:
    """Show the cluster's nodes, each database's leader and its replicas' lag.

    Example: cosmictron-cli cluster status --server http://127.0.0.1:3000
    """
    reply = context.client.request("GET", "/v1/cluster")

    def human(console: Console) -> None:
        nodes = reply["nodes"]
        if not nodes:
            console.print(f"{context.url} runs single-node (started without --cluster)")
            return
        console.print(
            table(["node", "url", "status"], [[n["node_id"], n["url"], n["status"]] for n in nodes])
        )
        rows = [
            [
                d["name"],
                d["leader"] or "(none)",
                ",".join(d.get("placement") or []) or "-",
                r["node_id"],
                str(r["applied_offset"]),
                str(r["lag"]),
            ]
            for d in reply["databases"]
            for r in d["replicas"] or [{"node_id": "", "applied_offset": "", "lag": ""}]
        ]
        console.print(table(["database", "leader", "placed", "node", "applied", "lag"], rows))

    context.output.document(reply, human)
