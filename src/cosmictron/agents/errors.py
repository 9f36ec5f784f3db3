"""Errors the agent reducers raise; a caller gets them as ``ReducerFailed`` whose
``cause_type`` is the class name below and whose message says what to do."""

from __future__ import annotations

from cosmictron.errors import InvalidRequest


class AgentError(InvalidRequest):
    """An agent-layer request that cannot be applied; nothing it did was kept."""

    code = "agent_error"


class StaleToolCall(AgentError):
    """A heartbeat or completion carried an attempt that no longer holds the lease."""

    code = "stale_tool_call"


class HandoffRefused(AgentError):
    """A hand-off the registry does not allow, or a ``before_handoff`` hook denied."""

    code = "handoff_refused"


class HandoffLoop(AgentError):
    """A hand-off that would cycle, nest too deep, or exceed a thread's hand-off budget."""

    code = "handoff_loop"
