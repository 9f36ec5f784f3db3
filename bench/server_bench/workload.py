"""What both engines run, and the one frame the load generator sends.

Kept apart from the engines' code so that the JSON's ``workload`` record, the Cosmictron
module, the PostgreSQL schema and the load generator cannot drift from one another.
"""

from __future__ import annotations

PROTOCOL = "v1.json.cosmictron"

MODULE_SOURCE = '''\
"""Written by bench/server.py: one table with a secondary btree index, one reducer."""

from cosmictron import ReducerContext, field, reducer, table


@table(name="task", public=True)
class Task:
    id: int = field(primary_key=True, auto_inc=True)
    title: str = ""
    priority: int = field(default=0, index="btree")
    done: bool = False


@reducer
def add_task(ctx: ReducerContext, title: str, priority: int) -> int:
    return ctx.db.task.insert(Task(title=title, priority=priority)).id
'''

PG_SCHEMA = (
    "CREATE TABLE task (id bigserial PRIMARY KEY, title text NOT NULL, "
    "priority integer NOT NULL DEFAULT 0, done boolean NOT NULL DEFAULT false)",
    "CREATE INDEX task_priority ON task USING btree (priority)",
    """CREATE FUNCTION add_task(title text, priority integer) RETURNS bigint
       LANGUAGE plpgsql AS $$
       DECLARE new_id bigint;
       BEGIN
         INSERT INTO task (title, priority) VALUES (add_task.title, add_task.priority)
         RETURNING id INTO new_id;
         RETURN new_id;
       END $$""",
)
PG_PREPARE = "PREPARE add_task_stmt (text, integer) AS SELECT add_task($1, $2)"

FANOUT_QUERY = "SELECT * FROM task"


def call_message(index: int, n: int) -> str:
    """One ``CallReducer`` frame; built by hand because it is on the client's hot path."""
    return (
        f'{{"CallReducer":{{"request_id":{n},"reducer":"add_task",'
        f'"args":["task {index}-{n}",{n % 100}]}}}}'
    )


JSON_PROTOCOL = "v1.json.cosmictron"
MSGPACK_PROTOCOL = "v1.msgpack.cosmictron"
PROTOCOLS = (JSON_PROTOCOL, MSGPACK_PROTOCOL)
"""The WebSocket subprotocols measured, each in its own rows."""


def call_frame(protocol: str, index: int, n: int) -> str | bytes:
    """One ``CallReducer`` frame in ``protocol``: JSON text, or msgpack bytes."""
    if protocol == JSON_PROTOCOL:
        return call_message(index, n)
    import msgpack

    body = {"request_id": n, "reducer": "add_task", "args": [f"task {index}-{n}", n % 100]}
    frame: bytes = msgpack.packb({"CallReducer": body})
    return frame


def decode_frame(data: str | bytes) -> dict:
    """A server message from either protocol's frame."""
    if isinstance(data, str):
        import json

        message: dict = json.loads(data)
        return message
    import msgpack

    decoded: dict = msgpack.unpackb(data)
    return decoded
