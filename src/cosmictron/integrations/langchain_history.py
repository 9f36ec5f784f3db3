"""``CosmictronChatMessageHistory``: a thread's ``agent_message`` rows as a LangChain chat
message history, a migration shim only.

LangChain deprecates ``BaseChatMessageHistory`` (and ``RunnableWithMessageHistory``) in
favour of LangGraph's persistence; this class exists so that code built on them can move
its storage to Cosmictron first and its structure later (docs/guide/langgraph.md). New
code should use ``CosmictronSaver`` and the agent reducers instead.

A session is an ``agent_thread``: the first message added starts it (registering the
history's agent if the registry lacks it). Messages map to rows as the agent layer
stores them: human ``user``, AI ``assistant`` (its tool calls as the OpenAI-style JSON
list), system ``system``, tool ``tool`` (with its ``tool_call_id``). ``agent_message`` is
an append-only event table, so ``clear`` is refused: start a new session instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

try:
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import (
        AIMessage,
        BaseMessage,
        HumanMessage,
        SystemMessage,
        ToolMessage,
    )
except ImportError as exc:  # the core does not depend on LangChain
    raise ImportError(
        f"cosmictron.integrations.langchain needs LangChain ({exc.name} is missing): "
        "pip install 'cosmictron[langchain]'"
    ) from exc

from cosmictron.agents.errors import AgentError
from cosmictron.errors import CosmictronError
from cosmictron.host import Database
from cosmictron.integrations.connection import Connection, RemoteConnection, connection_of

__all__ = ["CosmictronChatMessageHistory"]

MESSAGES_SQL = (
    "SELECT id, role, content, tool_calls, tool_call_id FROM agent_message "
    "WHERE thread_id = :t ORDER BY id"
)


def _row(message: BaseMessage) -> tuple[str, str, str, str]:
    """(role, content, tool_calls JSON, tool_call_id) of a LangChain message."""
    if not isinstance(message.content, str):
        kind = type(message.content).__name__
        raise ValueError(f"CosmictronChatMessageHistory stores text content, got {kind}")
    if isinstance(message, HumanMessage):
        return "user", message.content, "[]", ""
    if isinstance(message, SystemMessage):
        return "system", message.content, "[]", ""
    if isinstance(message, ToolMessage):
        return "tool", message.content, "[]", message.tool_call_id
    if isinstance(message, AIMessage):
        calls = [
            {
                "id": call.get("id") or "",
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
            }
            for call in message.tool_calls
        ]
        return "assistant", message.content, json.dumps(calls), ""
    raise ValueError(
        f"CosmictronChatMessageHistory stores human, AI, system and tool messages, "
        f"got {type(message).__name__}"
    )


def _message(row: dict[str, Any]) -> BaseMessage:
    role, content = row["role"], row["content"]
    if role == "user":
        return HumanMessage(content)
    if role == "system":
        return SystemMessage(content)
    if role == "tool":
        return ToolMessage(content, tool_call_id=row["tool_call_id"])
    calls = [
        {
            "id": call.get("id") or None,
            "name": call["function"]["name"],
            "args": json.loads(call["function"].get("arguments") or "{}"),
        }
        for call in json.loads(row["tool_calls"] or "[]")
    ]
    return AIMessage(content, tool_calls=calls)


class CosmictronChatMessageHistory(BaseChatMessageHistory):
    """The messages of one ``agent_thread`` (a migration shim; see the module docstring).

    ``CosmictronChatMessageHistory(db, session_id)`` for an embedded ``Database``;
    ``CosmictronChatMessageHistory.from_url(url, database, session_id, token=...)``.
    """

    def __init__(
        self, db: Database | Connection, session_id: str, *, agent: str = "assistant"
    ) -> None:
        self._connection = connection_of(db)
        self.session_id = session_id
        self.agent = agent
        self._started = False

    @classmethod
    def from_url(
        cls,
        url: str,
        database: str,
        session_id: str,
        *,
        token: str | None = None,
        agent: str = "assistant",
    ) -> CosmictronChatMessageHistory:
        return cls(RemoteConnection(url, database, token), session_id, agent=agent)

    def close(self) -> None:
        """Close the server connection ``from_url`` opened."""
        self._connection.close()

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The thread's messages, oldest first."""
        rows = self._connection.sql(MESSAGES_SQL, {"t": self.session_id})
        return [_message(row) for row in rows]

    async def aget_messages(self) -> list[BaseMessage]:
        rows = await self._connection.asql(MESSAGES_SQL, {"t": self.session_id})
        return [_message(row) for row in rows]

    def _start(self) -> None:
        """Start the session's thread unless it exists (registering the agent if new)."""
        if self._started:
            return
        found = self._connection.sql(
            "SELECT id FROM agent_thread WHERE id = :t", {"t": self.session_id}
        )
        if not found:
            known = self._connection.sql(
                "SELECT name FROM agent WHERE name = :a", {"a": self.agent}
            )
            if not known:
                self._connection.call(
                    "register_agent", self.agent, "worker", "chat history (migration shim)", []
                )
            try:
                self._connection.call("start_thread", self.session_id, self.agent, "")
            except CosmictronError as exc:
                if "already exists" not in str(exc):  # started by another client meanwhile
                    raise
        self._started = True

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` to the thread, one ``append_message`` call each."""
        rows = [_row(m) for m in messages]  # refuse a bad message before storing any
        self._start()
        for role, content, tool_calls, tool_call_id in rows:
            self._connection.call(
                "append_message",
                self.session_id,
                self.agent if role == "assistant" else "",
                role,
                content,
                tool_calls,
                tool_call_id,
            )

    def clear(self) -> None:
        """Refused: ``agent_message`` is append-only (the audit trail keeps every message)."""
        raise AgentError(
            "agent_message is an append-only event table: a chat history cannot be cleared; "
            "start a new session id instead"
        )
