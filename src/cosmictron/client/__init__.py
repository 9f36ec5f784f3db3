"""The Python client SDK: a live, typed copy of a database's rows over the network.

Owns: connecting to a server's database over the WebSocket protocol (DESIGN.md §5),
the local cache of subscribed rows with its callbacks, reducer calls and one-off
queries, reconnecting and resuming, the blocking wrapper, the saved settings file it
shares with the CLI, and the code generator behind ``cosmictron-cli generate``.

May import: root modules only (``errors``, ``values``, ``limits``, ``config``); it talks
to the server only through the public protocol, never through server code.

Guarantees: the cache holds the subscribed rows as of one transaction offset at a time,
never part of a transaction; callbacks fire once per change, after the whole
transaction is applied; a reducer call is never sent twice (a call cut off by a lost
connection raises ``ConnectionLost``). docs/guide/sdk.md is the user's guide.
"""

import typing

from cosmictron.lazy import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:  # what type checkers see of the names __getattr__ imports
    from cosmictron.client.cache import Row, RowEvent, TableCache
    from cosmictron.client.connecting import connect
    from cosmictron.client.connection import Client, ClientStatistics
    from cosmictron.client.schema import DatabaseSchema, TableInfo
    from cosmictron.client.sync import SyncClient, SyncTable, connect_sync
    from cosmictron.client.transport import HEARTBEAT_S, MSGPACK_PROTOCOL, PROTOCOL

# Imported on first use: the CLI imports ``client.settings`` in every process and would
# otherwise pay for aiohttp and the whole SDK each time (cosmictron.lazy).
_LAZY = {  # public name: the module defining it (see cosmictron.lazy)
    "Row": "cosmictron.client.cache",
    "RowEvent": "cosmictron.client.cache",
    "TableCache": "cosmictron.client.cache",
    "connect": "cosmictron.client.connecting",
    "Client": "cosmictron.client.connection",
    "ClientStatistics": "cosmictron.client.connection",
    "DatabaseSchema": "cosmictron.client.schema",
    "TableInfo": "cosmictron.client.schema",
    "SyncClient": "cosmictron.client.sync",
    "SyncTable": "cosmictron.client.sync",
    "connect_sync": "cosmictron.client.sync",
    "HEARTBEAT_S": "cosmictron.client.transport",
    "MSGPACK_PROTOCOL": "cosmictron.client.transport",
    "PROTOCOL": "cosmictron.client.transport",
}
__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)

__all__ = [
    "HEARTBEAT_S",
    "MSGPACK_PROTOCOL",
    "PROTOCOL",
    "Client",
    "ClientStatistics",
    "DatabaseSchema",
    "Row",
    "RowEvent",
    "SyncClient",
    "SyncTable",
    "TableCache",
    "TableInfo",
    "connect",
    "connect_sync",
]
