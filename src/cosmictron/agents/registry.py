"""Reducers for the registry, threads, agent state, messages and events."""

from __future__ import annotations

import json
import re

from cosmictron.agents.common import append_event, dumps, json_object, set_state
from cosmictron.agents.errors import AgentError
from cosmictron.agents.rights import require_owner, require_thread_access, require_trusted
from cosmictron.agents.tables import (
    Agent,
    AgentConfig,
    AgentMessage,
    AgentThread,
)
from cosmictron.module import ReducerContext, reducer

AGENT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,52}$")
"""An agent name fits a tool name once prefixed with ``transfer_to_`` (OpenAI: 64 chars)."""

ROLES = ("system", "user", "assistant", "tool")


def check_agent_name(name: str) -> None:
    if not AGENT_NAME.match(name):
        raise AgentError(
            f"agent name {name!r} must be 1-52 letters, digits, '_' or '-' "
            f"(it becomes the tool name transfer_to_{name})"
        )


def require_agent(ctx: ReducerContext, name: str) -> Agent:
    agent: Agent | None = ctx.db.agent.name.find(name)
    if agent is None:
        known = ", ".join(sorted(a.name for a in ctx.db.agent.iter())) or "none"
        raise AgentError(f"no agent named {name!r} in the registry (agents: {known})")
    return agent


def require_thread(ctx: ReducerContext, thread_id: str) -> AgentThread:
    thread: AgentThread | None = ctx.db.agent_thread.id.find(thread_id)
    if thread is None:
        raise AgentError(f"no agent_thread {thread_id!r}; start it with start_thread")
    return thread


def config(ctx: ReducerContext) -> AgentConfig:
    """The settings row, made with its defaults on first use."""
    row: AgentConfig | None = ctx.db.agent_config.id.find(0)
    if row is None:
        row = ctx.db.agent_config.insert(AgentConfig(id=0))
    assert row is not None
    return row


@reducer
def register_agent(
    ctx: ReducerContext,
    name: str,
    kind: str = "worker",
    description: str = "",
    handoff_targets: list[str] | None = None,
) -> None:
    """Add or replace an agent in the registry (``handoff_targets``: whom it may hand to);
    the registry is the database owner's."""
    require_owner(ctx, "register_agent")
    check_agent_name(name)
    targets = list(handoff_targets or [])
    if name in targets:
        raise AgentError(f"agent {name!r} cannot list itself as a hand-off target")
    existing = ctx.db.agent.name.find(name)
    row = Agent(name, kind, description, targets, ctx.timestamp)
    if existing is None:
        ctx.db.agent.insert(row)
    else:
        row.created_at = existing.created_at
        ctx.db.agent.name.update(row)
    append_event(ctx, "", name, "agent.registered", {"kind": kind, "targets": targets})


@reducer
def start_thread(ctx: ReducerContext, thread_id: str, agent: str, supervisor: str = "") -> None:
    """Open a thread with ``agent`` active (``supervisor``: who gets control back).

    The caller owns the thread: it, the database owner and workers act on it."""
    require_agent(ctx, agent)
    if supervisor:
        require_agent(ctx, supervisor)
    if not thread_id:
        raise AgentError("thread_id must not be empty")
    if ctx.db.agent_thread.id.find(thread_id) is not None:
        raise AgentError(f"agent_thread {thread_id!r} already exists")
    now = ctx.timestamp
    ctx.db.agent_thread.insert(
        AgentThread(thread_id, agent, supervisor, "pending", 0, now, now, ctx.sender)
    )
    set_state(ctx, thread_id, agent, "pending")
    append_event(ctx, thread_id, agent, "thread.started", {"supervisor": supervisor})


@reducer
def set_agent_state(
    ctx: ReducerContext, thread_id: str, agent: str, status: str, summary: str = ""
) -> int:
    """Report an agent's status in a thread; returns its step counter."""
    require_thread_access(ctx, require_thread(ctx, thread_id), "set_agent_state")
    require_agent(ctx, agent)
    state = set_state(ctx, thread_id, agent, status, summary or None)
    append_event(ctx, thread_id, agent, f"state.{status}", {"summary": summary, "step": state.step})
    return state.step


@reducer
def append_message(
    ctx: ReducerContext,
    thread_id: str,
    agent: str,
    role: str,
    content: str,
    tool_calls: str = "[]",
    tool_call_id: str = "",
) -> int:
    """Append a chat message to a thread; returns its id."""
    require_thread_access(ctx, require_thread(ctx, thread_id), "append_message")
    if role not in ROLES:
        raise AgentError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    try:
        calls = json.loads(tool_calls or "[]")
    except ValueError as exc:
        raise AgentError(f"tool_calls must be a JSON list: {exc}") from None
    if not isinstance(calls, list):
        raise AgentError(f"tool_calls must be a JSON list, got {type(calls).__name__}")
    row = AgentMessage(
        0, thread_id, agent, role, content, dumps(calls), tool_call_id, ctx.timestamp
    )
    message: AgentMessage = ctx.db.agent_message.insert(row)
    return message.id


@reducer
def append_agent_event(
    ctx: ReducerContext,
    thread_id: str,
    agent: str,
    kind: str,
    payload: str = "{}",
    causation_id: int = 0,
    correlation_id: str = "",
    idempotency_key: str = "",
) -> int:
    """Append to the shared event log; returns the event's ``seq`` (the first one's on a
    repeated ``idempotency_key``)."""
    if not kind:
        raise AgentError("an agent_event needs a kind")
    if thread_id:
        require_thread_access(ctx, require_thread(ctx, thread_id), "append_agent_event")
    else:
        require_trusted(ctx, "append_agent_event without a thread")
    body = json_object(payload, "payload")
    event = append_event(
        ctx, thread_id, agent, kind, body, causation_id, correlation_id, idempotency_key
    )
    return event.seq


@reducer
def record_agent_step(
    ctx: ReducerContext,
    thread_id: str,
    agent: str,
    status: str,
    summary: str,
    kind: str,
    payload: str = "{}",
    causation_id: int = 0,
    idempotency_key: str = "",
) -> int:
    """One step of an agent seen from outside (a callback): append the event ``kind``
    and move the agent's ``agent_state`` to ``status`` (one more step), in one
    transaction, so a subscriber of ``agent_state`` sees the step as it happens and a
    subscriber of ``agent_event`` sees why. A repeated ``idempotency_key`` changes
    nothing and returns the first event's ``seq``."""
    if not kind:
        raise AgentError("an agent step needs an event kind")
    require_thread_access(ctx, require_thread(ctx, thread_id), "record_agent_step")
    require_agent(ctx, agent)
    body = json_object(payload, "payload")
    if idempotency_key:
        for earlier in ctx.db.agent_event.idempotency_key.filter(idempotency_key):
            return int(earlier.seq)
    event = append_event(ctx, thread_id, agent, kind, body, causation_id, "", idempotency_key)
    set_state(ctx, thread_id, agent, status, summary or None)
    return event.seq
