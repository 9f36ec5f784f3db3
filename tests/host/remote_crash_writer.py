"""The process test_remote_calls_crash.py kills: orders calling billing through a relay.

Usage: ``python remote_crash_writer.py DIR MODE BASE [KILL_AT]``

Opens ``DIR/orders`` and ``DIR/billing`` (modules ``DIR/orders.py``, ``DIR/billing.py``)
under the ``production`` profile (fsync ``always``, a small snapshot interval so kills
land around snapshots too) and serves both with one ``RemoteRelay``. Then it calls
``place(item)`` for ``item = BASE, BASE + 1, ...`` and writes each acknowledged item and
a newline to stdout in one write, until it is killed. ``MODE`` says where it dies:

- ``run``: wherever the parent's SIGKILL lands;
- ``before-deliver``: the relay's ``KILL_AT``-th delivery SIGKILLs the process before it
  applies anything (the caller committed, nothing was relayed);
- ``after-apply``: that delivery is applied and durable in billing, then the process
  SIGKILLs itself before orders settles it (relayed, not marked).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

import cosmictron
from cosmictron import DurabilityConfig
from cosmictron.host import LocalTransport, RemoteRelay
from cosmictron.host.remote_relay import Delivery, Outcome

CALLS_MAX = 100_000
"""A safety cap so a writer whose parent died does not run forever."""


class DyingTransport:
    """The real local transport, with a SIGKILL before or after its N-th delivery."""

    def __init__(self, inner: LocalTransport, mode: str, kill_at: int) -> None:
        self.inner, self.mode, self.kill_at, self.count = inner, mode, kill_at, 0

    def deliver(self, delivery: Delivery) -> Outcome:
        self.count += 1
        if self.mode == "before-deliver" and self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        outcome = self.inner.deliver(delivery)
        if self.mode == "after-apply" and self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return outcome


def main(argv: list[str]) -> int:
    root, mode, base = Path(argv[1]), argv[2], int(argv[3])
    kill_at = int(argv[4]) if len(argv) > 4 else 0
    durability = dataclasses.replace(
        DurabilityConfig.from_profile("production"), snapshot_interval_tx=7
    )
    orders = cosmictron.Database.open(
        root / "orders", module=root / "orders.py", durability=durability
    )
    billing = cosmictron.Database.open(
        root / "billing", module=root / "billing.py", durability=durability
    )
    cores = {"orders": orders.core, "billing": billing.core}
    transport = DyingTransport(LocalTransport(cores.get), mode, kill_at)
    relay = RemoteRelay(transport=transport)
    relay.add("orders", orders)
    relay.add("billing", billing)
    stdout = sys.stdout.fileno()
    for item in range(base, base + CALLS_MAX):
        orders.call("place", item)
        os.write(stdout, f"{item}\n".encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
