"""SIGKILL on a real disk: a killed writer loses no record that append() returned.

A child process appends under the ``never`` policy and reports each returned offset on
stdout; the parent kills it with SIGKILL mid-stream and recovers. Every reported offset
must be replayed, in order, with an unbroken chain, and the log must accept appends again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from cosmictron.durability import TX_RECORD_KIND
from cosmictron.ledger import GENESIS_HASH

from .conftest import OpenLayer, recover_all

WRITER = textwrap.dedent(
    """
    import sys
    from cosmictron.durability import DurabilityConfig, PersistenceConfig, PersistenceLayer
    layer = PersistenceLayer(
        PersistenceConfig(sys.argv[1]),
        DurabilityConfig(fsync_policy="never", segment_bytes_max=4096),
    )
    list(layer.recover().records)
    n = 0
    while True:
        n += 1
        offset = layer.append(0, {"n": n, "pad": "x" * (n % 97)})
        sys.stdout.write(f"{offset}\\n")
        sys.stdout.flush()
    """
)
ACKNOWLEDGED_BEFORE_KILL = 2000


def test_sigkill_loses_no_appended_record(open_layer: OpenLayer, data_dir: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, data_dir], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    acknowledged = 0
    for line in child.stdout:
        acknowledged = int(line)
        if acknowledged >= ACKNOWLEDGED_BEFORE_KILL:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()

    layer = open_layer(segment_bytes_max=4096)
    records = recover_all(layer)
    assert len(records) >= acknowledged
    assert [record.offset for record in records] == list(range(1, len(records) + 1))
    previous = GENESIS_HASH
    for record in records:
        assert record.prev_hash == previous
        previous = record.hash
    assert layer.append(TX_RECORD_KIND, "after") == len(records) + 1
