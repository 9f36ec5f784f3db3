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

from cosmictron.client.cache import Row, RowEvent, TableCache
from cosmictron.client.connect import connect
from cosmictron.client.connection import Client, ClientStatistics
from cosmictron.client.schema import DatabaseSchema, TableInfo
from cosmictron.client.sync import SyncClient, SyncTable, connect_sync
from cosmictron.client.transport import HEARTBEAT_S, MSGPACK_PROTOCOL, PROTOCOL

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
