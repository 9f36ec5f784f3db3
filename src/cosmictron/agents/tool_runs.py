"""``start_tool_call``: record a tool call and lease it to the caller, in one transaction.

``record_tool_call`` then ``claim_tool_call`` suits a queue: any worker may claim the
oldest pending call of a tool. A LangChain callback handler is different: the process
reporting the call is the one already running it, so it must hold *this* call's lease,
never take another pending call of the same tool. ``start_tool_call`` does both steps for
one call id; the caller then finishes it with ``complete_tool_call(call_id, attempt, ...)``
like any worker, so leases, fencing and the tool message work unchanged.
"""

from __future__ import annotations

from cosmictron.agents.common import append_event
from cosmictron.agents.errors import AgentError
from cosmictron.agents.leases import _after, _lease_s, describe, record_tool_call
from cosmictron.agents.tables import ClaimedToolCall, ToolCall
from cosmictron.module import ReducerContext, reducer


@reducer
def start_tool_call(
    ctx: ReducerContext,
    call_id: str,
    thread_id: str,
    agent: str,
    tool_name: str,
    worker: str,
    arguments: str = "{}",
    lease_s: float = 0.0,
) -> ClaimedToolCall:
    """Record ``call_id`` (idempotent, as ``record_tool_call``) and lease it to ``worker``.

    Returns the claimed call with its attempt number. A call that is already running or
    finished is refused: a call id names one call, and it runs once at a time.
    """
    if not worker:
        raise AgentError("worker must name who runs the call")
    record_tool_call(ctx, call_id, thread_id, agent, tool_name, arguments)
    call: ToolCall = ctx.db.tool_call.id.find(call_id)
    if call.status != "pending":
        raise AgentError(
            f"tool_call {call_id!r} is {call.status} (attempt {call.attempt}, worker "
            f"{call.worker!r}); it cannot be started again"
        )
    call.status = "running"
    call.attempt += 1
    call.worker = worker
    call.lease_expires_at = _after(ctx, _lease_s(ctx, lease_s))
    call.updated_at = ctx.timestamp
    started: ToolCall = ctx.db.tool_call.id.update(call)
    append_event(
        ctx,
        call.thread_id,
        call.agent,
        "tool_call.claimed",
        {"call_id": call.id, "attempt": call.attempt, "worker": worker},
        causation_id=call.event_seq,
    )
    return describe(started)
