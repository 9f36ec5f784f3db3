"""Tool calls with leases: record, claim, heartbeat, complete, and the expiry sweep.

A call is recorded once (keyed by the model's tool call id), then claimed by one worker
at a time for ``lease_s`` seconds. Each claim increments ``attempt``, which is the
fencing token: a worker whose lease expired and whose call was claimed again holds an
older attempt, so its late heartbeat or completion is refused instead of overwriting the
newer worker's. The scheduled reducer ``expire_tool_call_leases`` returns expired calls
to ``pending``, or fails them once they used ``max_attempts``. A completion appends the
``tool`` message to the thread in the same transaction, so an acknowledged completion is
never without its message (and vice versa).
"""

from __future__ import annotations

from cosmictron import limits
from cosmictron.agents.common import append_event, json_object, set_state
from cosmictron.agents.errors import AgentError, StaleToolCall
from cosmictron.agents.registry import config, require_agent, require_thread
from cosmictron.agents.rights import require_owner, require_thread_access, require_trusted
from cosmictron.agents.tables import (
    AgentConfig,
    AgentMessage,
    ClaimedToolCall,
    ToolCall,
    ToolCallLeaseSweep,
)
from cosmictron.module import ReducerContext, reducer
from cosmictron.values import ScheduleAt, Timestamp

SWEEP_ID = 0


def schedule_sweep(ctx: ReducerContext, interval_s: float) -> None:
    """Make the sweep run every ``interval_s`` seconds (a new interval restarts its phase)."""
    row = ToolCallLeaseSweep(SWEEP_ID, ScheduleAt.interval(interval_s))
    current = ctx.db.tool_call_lease_sweep.id.find(SWEEP_ID)
    if current is None:
        ctx.db.tool_call_lease_sweep.insert(row)
    elif current.scheduled_at != row.scheduled_at:
        ctx.db.tool_call_lease_sweep.id.update(row)


def _lease_s(ctx: ReducerContext, lease_s: float) -> float:
    if lease_s == 0:
        return config(ctx).default_lease_s
    if not 0 < lease_s <= limits.tool_call_lease_s_max:
        raise AgentError(
            f"lease_s must be in (0, {limits.tool_call_lease_s_max}] (tool_call_lease_s_max), "
            f"got {lease_s}"
        )
    return float(lease_s)


def _after(ctx: ReducerContext, seconds: float) -> Timestamp:
    return Timestamp(ctx.timestamp.micros_since_epoch + round(seconds * 1_000_000))


def _ensure_sweep(ctx: ReducerContext) -> None:
    if ctx.db.tool_call_lease_sweep.id.find(SWEEP_ID) is None:
        schedule_sweep(ctx, config(ctx).lease_sweep_interval_s)


def _find(ctx: ReducerContext, call_id: str) -> ToolCall:
    call: ToolCall | None = ctx.db.tool_call.id.find(call_id)
    if call is None:
        raise AgentError(f"no tool_call {call_id!r}; record it with record_tool_call first")
    return call


def _check_holder(call: ToolCall, attempt: int, action: str) -> None:
    if call.status != "running" or call.attempt != attempt:
        holder = (
            f"attempt {call.attempt} holds it"
            if call.status == "running"
            else f"it is {call.status} (attempt {call.attempt})"
        )
        raise StaleToolCall(
            f"cannot {action} tool_call {call.id!r} with attempt {attempt}: {holder}; "
            f"the lease was lost, drop this attempt's result"
        )


def _calls_open(ctx: ReducerContext, thread_id: str, agent: str) -> bool:
    index = ctx.db.tool_call.thread_agent_status
    return any(index.filter((thread_id, agent, status)) for status in ("pending", "running"))


def _finish(ctx: ReducerContext, call: ToolCall, status: str, content: str) -> ToolCall:
    """End ``call`` and append its ``tool`` message, in the caller's transaction."""
    message = ctx.db.agent_message.insert(
        AgentMessage(0, call.thread_id, call.agent, "tool", content, "[]", call.id, ctx.timestamp)
    )
    call.status = status
    call.message_id = message.id
    call.lease_expires_at = Timestamp(0)
    call.updated_at = ctx.timestamp
    finished: ToolCall = ctx.db.tool_call.id.update(call)
    if not _calls_open(ctx, call.thread_id, call.agent):
        set_state(ctx, call.thread_id, call.agent, "running")
    return finished


def oldest_pending(ctx: ReducerContext, tool_names: list[str]) -> ToolCall | None:
    """The pending call recorded first (of one of ``tool_names``, if any are named).

    ``event_seq`` grows with every recording, so the head of the ``(status, event_seq)``
    index is the oldest pending call: one ordered lookup per tool name, O(k log n),
    however many calls wait (bench/agents.py measures it).
    """
    if not tool_names:
        found: ToolCall | None = ctx.db.tool_call.status_seq.first(("pending",))
        return found
    heads = [ctx.db.tool_call.status_tool_seq.first(("pending", name)) for name in set(tool_names)]
    present = [call for call in heads if call is not None]
    return min(present, key=lambda c: c.event_seq) if present else None


def describe(call: ToolCall) -> ClaimedToolCall:
    """What a worker needs to run a claimed call."""
    return ClaimedToolCall(
        call.id,
        call.attempt,
        call.thread_id,
        call.agent,
        call.tool_name,
        call.arguments,
        call.lease_expires_at,
    )


@reducer
def configure_agents(
    ctx: ReducerContext,
    lease_sweep_interval_s: float = 5.0,
    default_lease_s: float = 30.0,
    max_attempts: int = 3,
) -> None:
    """Set how often expired leases are swept, the default lease, and attempts per call
    (the database owner's)."""
    require_owner(ctx, "configure_agents")
    bound = limits.tool_call_lease_s_max
    if not 0 < lease_sweep_interval_s <= bound:
        raise AgentError(
            f"lease_sweep_interval_s must be in (0, {bound}], got {lease_sweep_interval_s}"
        )
    if not 0 < default_lease_s <= bound:
        raise AgentError(
            f"default_lease_s must be in (0, {bound}] (tool_call_lease_s_max), "
            f"got {default_lease_s}"
        )
    if not 1 <= max_attempts <= limits.tool_call_attempts_max:
        raise AgentError(
            f"max_attempts must be in [1, {limits.tool_call_attempts_max}] "
            f"(tool_call_attempts_max), got {max_attempts}"
        )
    row = AgentConfig(0, float(lease_sweep_interval_s), float(default_lease_s), max_attempts)
    if ctx.db.agent_config.id.find(0) is None:
        ctx.db.agent_config.insert(row)
    else:
        ctx.db.agent_config.id.update(row)
    schedule_sweep(ctx, row.lease_sweep_interval_s)


@reducer
def record_tool_call(
    ctx: ReducerContext,
    call_id: str,
    thread_id: str,
    agent: str,
    tool_name: str,
    arguments: str = "{}",
    max_attempts: int = 0,
) -> str:
    """Record a tool call the model asked for; returns its status.

    Idempotent on ``call_id`` (the model's tool call id): recording the same call again
    changes nothing and returns its current status. The same id with a different tool
    or arguments is refused: ids name one call.
    """
    if not call_id:
        raise AgentError("call_id must not be empty (use the model's tool call id)")
    arguments_text = arguments or "{}"
    json_object(arguments_text, "arguments")
    require_thread_access(ctx, require_thread(ctx, thread_id), "record_tool_call")
    existing: ToolCall | None = ctx.db.tool_call.id.find(call_id)
    if existing is not None:
        if (existing.thread_id, existing.tool_name, existing.arguments) != (
            thread_id,
            tool_name,
            arguments_text,
        ):
            raise AgentError(
                f"tool_call {call_id!r} was recorded with other content "
                f"({existing.tool_name} in thread {existing.thread_id!r}); a call id names one call"
            )
        return existing.status
    require_agent(ctx, agent)
    if not tool_name:
        raise AgentError("tool_name must not be empty")
    settings = config(ctx)
    attempts = max_attempts or settings.max_attempts
    if not 1 <= attempts <= limits.tool_call_attempts_max:
        raise AgentError(
            f"max_attempts must be in [1, {limits.tool_call_attempts_max}] "
            f"(tool_call_attempts_max), got {max_attempts}"
        )
    _ensure_sweep(ctx)
    event = append_event(
        ctx, thread_id, agent, "tool_call.recorded", {"call_id": call_id, "tool": tool_name}
    )
    now = ctx.timestamp
    ctx.db.tool_call.insert(
        ToolCall(
            id=call_id,
            thread_id=thread_id,
            agent=agent,
            tool_name=tool_name,
            arguments=arguments_text,
            max_attempts=attempts,
            event_seq=event.seq,
            created_at=now,
            updated_at=now,
        )
    )
    set_state(ctx, thread_id, agent, "waiting_tool")
    return "pending"


@reducer
def claim_tool_call(
    ctx: ReducerContext, worker: str, tool_names: list[str] | None = None, lease_s: float = 0.0
) -> ClaimedToolCall | None:
    """Lease the oldest pending call of one of ``tool_names`` (any tool if empty) to
    ``worker`` for ``lease_s`` seconds (0: the configured default).

    Returns a ``ClaimedToolCall`` (``call_id``, ``attempt``, ``thread_id``, ``agent``,
    ``tool_name``, ``arguments``, ``lease_expires_at``), or None when nothing is pending. Claims are
    transactions, so two workers never hold the same attempt.
    """
    if not worker:
        raise AgentError("worker must name the claiming worker")
    seconds = _lease_s(ctx, lease_s)
    require_trusted(ctx, "claim_tool_call")
    call = oldest_pending(ctx, tool_names or [])
    if call is None:
        return None
    _ensure_sweep(ctx)
    call.status = "running"
    call.attempt += 1
    call.worker = worker
    call.lease_expires_at = _after(ctx, seconds)
    call.updated_at = ctx.timestamp
    claimed: ToolCall = ctx.db.tool_call.id.update(call)
    append_event(
        ctx,
        call.thread_id,
        call.agent,
        "tool_call.claimed",
        {"call_id": call.id, "attempt": call.attempt, "worker": worker},
        causation_id=call.event_seq,
    )
    return describe(claimed)


@reducer
def heartbeat_tool_call(
    ctx: ReducerContext, call_id: str, attempt: int, lease_s: float = 0.0
) -> int:
    """Extend the lease of a call this attempt holds; returns the new expiry (µs).

    Raises ``StaleToolCall`` when ``attempt`` no longer holds the lease.
    """
    require_trusted(ctx, "heartbeat_tool_call")
    call = _find(ctx, call_id)
    _check_holder(call, attempt, "heartbeat")
    call.lease_expires_at = _after(ctx, _lease_s(ctx, lease_s))
    call.updated_at = ctx.timestamp
    ctx.db.tool_call.id.update(call)
    return call.lease_expires_at.micros_since_epoch


@reducer
def complete_tool_call(
    ctx: ReducerContext,
    call_id: str,
    attempt: int,
    result: str | None = None,
    error: str | None = None,
) -> int:
    """Finish a call with its ``result`` or its ``error``; returns the tool message's id.

    Appends the ``tool`` message answering the call in the same transaction. Refused
    (``StaleToolCall``) when ``attempt`` is not the attempt holding the lease. Repeating
    the completion that already succeeded (a retry after a lost reply) returns the same
    message id and changes nothing.
    """
    if (result is None) == (error is None):
        raise AgentError("complete_tool_call takes exactly one of result or error")
    require_trusted(ctx, "complete_tool_call")
    call = _find(ctx, call_id)
    status = "done" if error is None else "error"
    outcome = result if error is None else error
    if (
        call.status == status
        and call.attempt == attempt
        and (call.result if error is None else call.error) == outcome
    ):
        return call.message_id
    _check_holder(call, attempt, "complete")
    if error is None:
        call.result = outcome or ""
        content = call.result
    else:
        call.error = outcome or ""
        content = f"Error: {call.error}"
    finished = _finish(ctx, call, status, content)
    append_event(
        ctx,
        call.thread_id,
        call.agent,
        f"tool_call.{status}",
        {"call_id": call.id, "attempt": attempt, "message_id": finished.message_id},
        causation_id=call.event_seq,
    )
    return finished.message_id


@reducer
def expire_tool_call_leases(ctx: ReducerContext, row: ToolCallLeaseSweep) -> None:
    """The scheduled sweep: expired leases go back to pending, or fail after N attempts."""
    if ctx.sender != ctx.identity:
        raise AgentError("expire_tool_call_leases is run by the scheduler, not by clients")
    expired = ctx.db.tool_call.status_lease.filter(
        start=("running",), stop=("running", ctx.timestamp), inclusive=True
    )
    for call in expired:
        if call.attempt >= call.max_attempts:
            call.error = (
                f"lease expired on attempt {call.attempt} of {call.max_attempts} "
                f"(worker {call.worker!r}); no attempts left"
            )
            _finish(ctx, call, "error", f"Error: {call.error}")
            kind = "tool_call.failed"
        else:
            call.status = "pending"
            call.lease_expires_at = Timestamp(0)
            call.updated_at = ctx.timestamp
            ctx.db.tool_call.id.update(call)
            kind = "tool_call.lease_expired"
        append_event(
            ctx,
            call.thread_id,
            call.agent,
            kind,
            {"call_id": call.id, "attempt": call.attempt, "worker": call.worker},
            causation_id=call.event_seq,
        )
