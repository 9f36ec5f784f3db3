"""The tool worker of examples/agent_loop: subscribed to ``tool_call`` rows over the SDK.

Usage: python examples/agent_loop/worker.py --server URL --database NAME --token TOKEN

Each pending call it sees (a new row, or one whose lease ran out and came back) makes it
``claim_tool_call`` (the lease and its fencing attempt), run the tool here, and
``complete_tool_call`` with the result or the error; when its thread has no open call
left it calls the ``run_turn`` procedure, which hands the tool results to the model. The
token must be the owner's or a worker's the owner registered (``grant_agent_worker``).
Callbacks run on the SDK's thread, which a blocking call from inside them would stall,
so they only queue work for the worker's own thread.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
from collections.abc import Callable
from typing import Any

from cosmictron.client import SyncClient, connect_sync

Tool = Callable[[dict[str, Any]], str]

ORDERS = {42: "shipped on Monday", 7: "waiting for stock"}


def lookup_order(arguments: dict[str, Any]) -> str:
    order_id = int(arguments["order_id"])
    if order_id not in ORDERS:
        raise LookupError(f"no order {order_id}")
    return f"order {order_id}: {ORDERS[order_id]}"


def refund_order(arguments: dict[str, Any]) -> str:
    return f"order {int(arguments['order_id'])} refunded ({arguments.get('reason', 'no reason')})"


TOOLS: dict[str, Tool] = {"lookup_order": lookup_order, "refund_order": refund_order}


class ToolWorker:
    """Runs the tools it knows for every pending ``tool_call`` its subscription shows."""

    def __init__(
        self, client: SyncClient, name: str, tools: dict[str, Tool], lease_s: float = 30.0
    ) -> None:
        self.client = client
        self.name = name
        self.tools = tools
        self.lease_s = lease_s
        self.done: list[tuple[str, int, str]] = []  # (call id, attempt, outcome)
        self.turns: list[dict[str, Any]] = []  # what each run_turn it made returned
        self.errors: list[BaseException] = []
        self._wake: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"worker-{name}", daemon=True)
        client.on_insert(self._seen)
        client.on_update(lambda table, old, new: self._seen(table, new))

    def start(self) -> ToolWorker:
        self._thread.start()
        for row in self.client.table("tool_call").iter():  # pending before we subscribed
            self._seen("tool_call", row)
        return self

    def stop(self) -> None:
        self._wake.put(None)
        self._thread.join(timeout=30)

    def _seen(self, table: str, row: Any) -> None:
        if table == "tool_call" and row.status == "pending" and row.tool_name in self.tools:
            self._wake.put(row.thread_id)

    def _run(self) -> None:
        while (thread_id := self._wake.get()) is not None:
            try:
                self._work(thread_id)
            except BaseException as error:  # kept for the caller to see; the worker goes on
                self.errors.append(error)

    def _work(self, thread_id: str) -> None:
        names = sorted(self.tools)
        while (
            claim := self.client.call("claim_tool_call", self.name, names, self.lease_s)
        ) is not None:
            call_id, attempt = claim["call_id"], claim["attempt"]
            try:
                result = self.tools[claim["tool_name"]](json.loads(claim["arguments"]))
            except Exception as error:  # the tool failed: the model gets the error
                self.client.call("complete_tool_call", call_id, attempt, None, str(error))
                self.done.append((call_id, attempt, f"error: {error}"))
            else:
                self.client.call("complete_tool_call", call_id, attempt, result)
                self.done.append((call_id, attempt, result))
            self._resume(claim["thread_id"])

    def _resume(self, thread_id: str) -> None:
        """Let the model see the results once the thread's last open call is done."""
        open_calls = self.client.sql(
            "SELECT id FROM tool_call WHERE thread_id = :t "
            "AND (status = 'pending' OR status = 'running')",
            {"t": thread_id},
        )
        if not open_calls:
            self.turns.append(self.client.call("run_turn", thread_id, ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="http://127.0.0.1:3000")
    parser.add_argument("--database", default="support")
    parser.add_argument("--token", required=True)
    parser.add_argument("--name", default="worker-1")
    args = parser.parse_args()
    client = connect_sync(
        args.database, "SELECT * FROM tool_call", server=args.server, token=args.token
    )
    worker = ToolWorker(client, args.name, TOOLS).start()
    print(f"{args.name}: running {', '.join(sorted(TOOLS))} for {args.database}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
