"""Supervisor hooks: functions the including module marks to steer hand-offs.

``@before_handoff`` functions run inside ``request_handoff``'s transaction, in the
order the module defines them, and may allow a hand-off, deny it with a reason, or
reroute it (another target, another payload). ``@after_handoff`` functions run inside
``complete_handoff`` and may name the agent that gets control back. Nothing is
registered globally: like tables and reducers, hooks are found in the namespace of the
module each database runs, so two databases in one process keep their own hooks. A
hook that raises rolls the whole hand-off back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cosmictron.module import CURRENT_DB

HOOK_MARK = "__cosmictron_agent_hook__"


@dataclass
class HandoffRequest:
    """What a ``before_handoff`` hook sees (``payload`` already parsed from JSON)."""

    thread_id: str
    from_agent: str
    to_agent: str
    reason: str
    payload: dict[str, Any]
    tool_call_id: str
    mode: str
    depth: int


@dataclass(frozen=True)
class HandoffDecision:
    """A hook's answer; build it with ``allow()``, ``deny(reason)`` or ``reroute(...)``."""

    allowed: bool = True
    reason: str = ""
    to_agent: str | None = None
    payload: dict[str, Any] | None = field(default=None)


def allow() -> HandoffDecision:
    """Let the hand-off go ahead unchanged (returning None means the same)."""
    return HandoffDecision()


def deny(reason: str) -> HandoffDecision:
    """Refuse the hand-off; the caller's error carries ``reason``."""
    return HandoffDecision(allowed=False, reason=reason)


def reroute(to_agent: str | None = None, payload: dict[str, Any] | None = None) -> HandoffDecision:
    """Send the hand-off to another registered agent and/or with another payload."""
    return HandoffDecision(to_agent=to_agent, payload=payload)


@dataclass
class HandoffResult:
    """What an ``after_handoff`` hook sees when a hand-off completes."""

    handoff_id: int
    thread_id: str
    from_agent: str
    to_agent: str
    mode: str
    result: str
    return_to: str
    """Who gets control back unless a hook names someone else ("" : nobody)."""


def before_handoff(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``fn(ctx, request: HandoffRequest) -> HandoffDecision | None`` as a hook."""
    setattr(fn, HOOK_MARK, "before_handoff")
    return fn


def after_handoff(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``fn(ctx, result: HandoffResult) -> str | None`` (an agent to return to)."""
    setattr(fn, HOOK_MARK, "after_handoff")
    return fn


def hooks(kind: str) -> Iterator[Callable[..., Any]]:
    """The ``kind`` hooks of the module the running database loaded, in definition order."""
    database = CURRENT_DB.get(None)
    if database is None:
        return
    namespace = vars(database.module.namespace)
    for value in list(namespace.values()):
        if callable(value) and getattr(value, HOOK_MARK, None) == kind:
            yield value
