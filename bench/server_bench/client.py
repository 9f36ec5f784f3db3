"""The load generator's entry (``server.py --client SPEC``): run one load, write its figures.

The spec (JSON) names the kind of load (``cosmictron`` over WebSocket in either protocol,
``cosmictron_http``, ``postgresql`` or ``fanout``), its
shape and the file to write the figures to. uvloop runs the event loop when installed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from .fanout import fanout_load
from .load import cosmictron_load
from .load_http import http_load
from .load_postgres import pg_load


def client_main(spec_text: str) -> int:
    """``--client SPEC``: run one load and print its figures as the last stdout line."""
    spec = json.loads(spec_text)
    runner = {
        "cosmictron": cosmictron_load,
        "cosmictron_http": http_load,
        "postgresql": pg_load,
        "fanout": fanout_load,
    }
    coroutine = runner[spec["kind"]](spec)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(coroutine)
    else:
        result = uvloop.run(coroutine)
    # A file, not stdout: the figures can be large, and a pipe may take a partial write.
    Path(spec["out"]).write_text(json.dumps(result))
    return 0
