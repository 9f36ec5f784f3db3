"""The process test_remote_nats.py kills: a target database applying its inbox stream.

Usage: ``python inbox_crash_consumer.py DATA_DIR MODULE_PATH NATS_URL[,NATS_URL...]``

Opens the database under the ``production`` profile (fsync ``always``) and runs an
``InboxConsumer`` on it until killed; prints ``ready`` once consuming.
"""

from __future__ import annotations

import sys
import time

import cosmictron
from cosmictron import DurabilityConfig
from cosmictron.host.remote_nats import InboxConsumer


def main(argv: list[str]) -> int:
    data_dir, module_path, urls = argv[1], argv[2], argv[3].split(",")
    database = cosmictron.Database.open(
        data_dir, module=module_path, durability=DurabilityConfig.from_profile("production")
    )
    InboxConsumer(urls, "billing", database.core)
    print("ready", flush=True)
    time.sleep(3600)  # until killed
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
