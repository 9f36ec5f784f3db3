"""The process test_remote_nats.py kills: a target database applying its inbox stream.

Usage: ``python inbox_crash_consumer.py DATA_DIR MODULE_PATH NATS_URL[,NATS_URL...] [N]``

Opens the database under the ``production`` profile (fsync ``always``) and runs an
``InboxConsumer`` on it until killed; prints ``ready`` once consuming. With ``N``, the
process SIGKILLs itself when it is about to apply the N-th message it took from the
stream: taken, not applied, not acknowledged.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import cosmictron
from cosmictron import DurabilityConfig
from cosmictron.host.remote_nats import InboxConsumer


def main(argv: list[str]) -> int:
    data_dir, module_path, urls = argv[1], argv[2], argv[3].split(",")
    database = cosmictron.Database.open(
        data_dir, module=module_path, durability=DurabilityConfig.from_profile("production")
    )
    consumer = InboxConsumer(urls, "billing", database.core)
    if len(argv) > 4:
        die_at, taken = int(argv[4]), [0]
        apply = consumer._apply

        def dying(data: Any) -> bool:
            taken[0] += 1
            if taken[0] == die_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return apply(data)

        consumer._apply = dying  # type: ignore[method-assign]
    print("ready", flush=True)
    time.sleep(3600)  # until killed
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
