"""Small helpers shared by the agent reducers: JSON arguments, events, state rows."""

from __future__ import annotations

import json
from typing import Any

from cosmictron.agents.errors import AgentError
from cosmictron.agents.tables import AGENT_STATUSES, AgentEvent, AgentState
from cosmictron.module import ReducerContext


def json_object(text: str, what: str) -> dict[str, Any]:
    """Parse ``text`` as a JSON object (an empty string is ``{}``)."""
    if text == "":
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise AgentError(f"{what} must be a JSON object, got invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise AgentError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def dumps(value: Any) -> str:
    """Canonical JSON text (sorted keys), so equal values give equal rows."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def append_event(
    ctx: ReducerContext,
    thread_id: str,
    agent: str,
    kind: str,
    payload: dict[str, Any],
    causation_id: int = 0,
    correlation_id: str = "",
    idempotency_key: str = "",
) -> AgentEvent:
    """Append one ``agent_event``; with a non-empty key, a repeat returns the first."""
    if idempotency_key:
        for existing in ctx.db.agent_event.idempotency_key.filter(idempotency_key):
            return existing
    if causation_id and ctx.db.agent_event.seq.find(causation_id) is None:
        raise AgentError(f"causation_id {causation_id} is not the seq of any agent_event")
    event = AgentEvent(
        seq=0,
        thread_id=thread_id,
        agent=agent,
        kind=kind,
        payload=dumps(payload),
        causation_id=causation_id,
        correlation_id=correlation_id or thread_id,
        idempotency_key=idempotency_key,
        at=ctx.timestamp,
    )
    inserted: AgentEvent = ctx.db.agent_event.insert(event)
    return inserted


def set_state(
    ctx: ReducerContext, thread_id: str, agent: str, status: str, summary: str | None = None
) -> AgentState:
    """Move ``agent`` in ``thread_id`` to ``status``; each change is one more step."""
    if status not in AGENT_STATUSES:
        raise AgentError(f"agent status must be one of {', '.join(AGENT_STATUSES)}, got {status!r}")
    handle = ctx.db.agent_state.primary_key
    current = handle.find((thread_id, agent))
    if current is None:
        row = AgentState(thread_id, agent, status, 1, summary or "", ctx.timestamp)
        inserted: AgentState = ctx.db.agent_state.insert(row)
        return inserted
    current.status = status
    current.step += 1
    if summary is not None:
        current.summary = summary
    current.updated_at = ctx.timestamp
    updated: AgentState = handle.update(current)
    return updated
