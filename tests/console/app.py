"""The module the console's browser tests deploy: a public and a private table, reducers
with arguments of several types, log lines, and the agent layer's tables."""

import logging

from cosmictron import ReducerContext, field, reducer, table
from cosmictron.agents import *  # noqa: F403 - the agent tables, for the agents page

log = logging.getLogger(__name__)


@table(name="message", public=True)
class Message:
    id: int = field(primary_key=True, auto_inc=True)
    room: str = ""
    text: str = ""
    big: int = 0


@table(name="secret", public=False)
class Secret:
    id: int = field(primary_key=True)
    note: str = ""


@reducer
def post(ctx: ReducerContext, room: str, text: str, big: int = 0) -> int:
    """Add a message; returns its id."""
    row = Message.insert(Message(room=room, text=text, big=big))
    log.info("posted %d to %s", row.id, room)
    return row.id


@reducer
def keep_secret(ctx: ReducerContext, id: int, note: str) -> None:
    Secret.insert(Secret(id=id, note=note))


@reducer
def shout(ctx: ReducerContext, text: str, loud: bool, times: int) -> str:
    log.warning("shouting %r", text)
    return (text.upper() if loud else text) * times


@reducer
def refuse(ctx: ReducerContext, why: str) -> None:
    raise ValueError(f"refused: {why}")


@reducer
def fill(ctx: ReducerContext, room: str, count: int) -> int:
    """Insert ``count`` messages in one transaction (the 10k-row budget)."""
    for i in range(count):
        Message.insert(Message(room=room, text=f"{room} {i}", big=i))
    return count
