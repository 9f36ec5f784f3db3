"""Hand-offs: the registry check, supervisor hooks, loop and depth limits, all in one
transaction with the switch of the thread's active agent and the answering tool message.

Modes: ``transfer`` passes the thread on (swarm style: a→b then b→a is fine, bounded by
``agent_handoffs_per_thread_max``); ``delegate`` expects control back when the hand-off
completes (supervisor style), so open delegations form a stack whose agents may not be
delegated to again (a cycle) and whose height is bounded by ``agent_handoff_depth_max``.
"""

from __future__ import annotations

from cosmictron import limits
from cosmictron.agents.common import append_event, dumps, json_object, set_state
from cosmictron.agents.errors import AgentError, HandoffLoop, HandoffRefused
from cosmictron.agents.hooks import HandoffRequest, HandoffResult, hooks
from cosmictron.agents.registry import require_agent, require_thread
from cosmictron.agents.remote_handoffs import remote_target, send_remote_handoff
from cosmictron.agents.rights import require_thread_access
from cosmictron.agents.schemas import transfer_tools
from cosmictron.agents.tables import HANDOFF_MODES, AgentMessage, AgentThread, Handoff
from cosmictron.module import ReducerContext, reducer


def open_delegations(ctx: ReducerContext, thread_id: str) -> list[Handoff]:
    """The thread's delegations not yet completed, oldest first (the stack)."""
    rows = ctx.db.handoff.thread_id.filter(thread_id)
    return sorted(
        (h for h in rows if h.mode == "delegate" and h.status == "active"), key=lambda h: h.id
    )


def _run_before_hooks(ctx: ReducerContext, request: HandoffRequest) -> None:
    for hook in hooks("before_handoff"):
        decision = hook(ctx, request)
        if decision is None:
            continue
        if not decision.allowed:
            raise HandoffRefused(
                f"hand-off {request.from_agent} → {request.to_agent} in thread "
                f"{request.thread_id!r} denied by hook {hook.__name__}: {decision.reason}"
            )
        if decision.to_agent is not None and decision.to_agent != request.to_agent:
            require_agent(ctx, decision.to_agent)
            request.to_agent = decision.to_agent
        if decision.payload is not None:
            request.payload = dict(decision.payload)


def _check_limits(
    ctx: ReducerContext, thread: AgentThread, request: HandoffRequest, stack: list[Handoff]
) -> None:
    source, target = request.from_agent, request.to_agent
    if target == source:
        raise HandoffLoop(f"agent {source!r} cannot hand off to itself")
    if request.mode == "delegate":
        chain = [h.from_agent for h in stack] + [source]
        if target in chain:
            path = " → ".join([*chain, target])
            raise HandoffLoop(
                f"hand-off loop in thread {thread.id!r}: {path}; {target!r} is already "
                f"waiting for a delegation to return"
            )
        if request.depth > limits.agent_handoff_depth_max:
            raise HandoffLoop(
                f"hand-off {source} → {target} would nest {request.depth} delegations in thread "
                f"{thread.id!r}; agent_handoff_depth_max is {limits.agent_handoff_depth_max}"
            )
    if thread.handoff_count + 1 > limits.agent_handoffs_per_thread_max:
        raise HandoffLoop(
            f"thread {thread.id!r} already had {thread.handoff_count} hand-offs; "
            f"agent_handoffs_per_thread_max is {limits.agent_handoffs_per_thread_max} "
            f"(agents handing the thread back and forth?)"
        )


def _answer_tool_call(
    ctx: ReducerContext, thread_id: str, agent: str, tool_call_id: str, content: str
) -> None:
    """Append the ``tool`` message answering the transfer call, and close that call."""
    message = ctx.db.agent_message.insert(
        AgentMessage(0, thread_id, agent, "tool", content, "[]", tool_call_id, ctx.timestamp)
    )
    call = ctx.db.tool_call.id.find(tool_call_id)
    if call is not None and call.status in ("pending", "running"):
        call.status = "done"
        call.result = content
        call.message_id = message.id
        call.updated_at = ctx.timestamp
        ctx.db.tool_call.id.update(call)


@reducer
def request_handoff(
    ctx: ReducerContext,
    thread_id: str,
    from_agent: str,
    to_agent: str,
    reason: str = "",
    payload: str = "{}",
    tool_call_id: str = "",
    mode: str = "transfer",
) -> int:
    """Hand the thread from its active agent to another; returns the hand-off's id.

    Checks the registry (``from_agent`` must be active and list ``to_agent`` among its
    ``handoff_targets``), runs the module's ``@before_handoff`` hooks, applies the loop
    and depth limits to the final target, then records the hand-off, switches the
    thread, updates both agents' state and appends the tool message answering
    ``tool_call_id``, all in this one transaction.
    """
    if mode not in HANDOFF_MODES:
        raise AgentError(f"mode must be one of {', '.join(HANDOFF_MODES)}, got {mode!r}")
    thread = require_thread(ctx, thread_id)
    require_thread_access(ctx, thread, "request_handoff")
    source = require_agent(ctx, from_agent)
    if remote_target(to_agent) is None:  # "db/agent": registered in that database
        require_agent(ctx, to_agent)
    if thread.active_agent != from_agent:
        raise HandoffRefused(
            f"{from_agent!r} is not the active agent of thread {thread_id!r} "
            f"({thread.active_agent!r} is); only the active agent hands off"
        )
    if to_agent not in source.handoff_targets:
        allowed = ", ".join(source.handoff_targets) or "none"
        raise HandoffRefused(
            f"agent {from_agent!r} may not hand off to {to_agent!r} "
            f"(its handoff_targets: {allowed})"
        )
    stack = open_delegations(ctx, thread_id)
    depth = len(stack) + 1 if mode == "delegate" else len(stack)
    request = HandoffRequest(
        thread_id,
        from_agent,
        to_agent,
        reason,
        json_object(payload, "payload"),
        tool_call_id,
        mode,
        depth,
    )
    _run_before_hooks(ctx, request)
    _check_limits(ctx, thread, request, stack)
    if remote_target(request.to_agent) is not None:
        sent = send_remote_handoff(ctx, thread, request)
        if tool_call_id:
            _answer_tool_call(
                ctx, thread_id, from_agent, tool_call_id, f"Transferred to {request.to_agent}"
            )
        return int(sent.id)
    target = request.to_agent
    now = ctx.timestamp
    handoff = ctx.db.handoff.insert(
        Handoff(
            id=0,
            thread_id=thread_id,
            from_agent=from_agent,
            to_agent=target,
            requested_to=to_agent,
            reason=reason,
            payload=dumps(request.payload),
            tool_call_id=tool_call_id,
            mode=mode,
            depth=depth,
            created_at=now,
        )
    )
    thread.active_agent = target
    thread.status = "running"
    thread.handoff_count += 1
    thread.updated_at = now
    ctx.db.agent_thread.id.update(thread)
    set_state(ctx, thread_id, from_agent, "handed_off", f"handed off to {target}")
    set_state(ctx, thread_id, target, "running", reason or None)
    if tool_call_id:
        _answer_tool_call(
            ctx, thread_id, from_agent, tool_call_id, f"Successfully transferred to {target}"
        )
    append_event(
        ctx,
        thread_id,
        from_agent,
        "handoff.requested",
        {
            "handoff_id": handoff.id,
            "to_agent": target,
            "requested_to": to_agent,
            "mode": mode,
            "reason": reason,
        },
    )
    return int(handoff.id)


@reducer
def complete_handoff(
    ctx: ReducerContext, handoff_id: int, result: str = "", return_control: bool = True
) -> str:
    """Finish a hand-off; returns the agent active afterwards.

    By default control goes back to the delegating agent (``delegate``) or to the
    thread's supervisor (``transfer``); ``@after_handoff`` hooks may name another agent,
    or "" to keep it with the agent that finished. ``result`` becomes an assistant
    message of the finishing agent.
    """
    handoff = ctx.db.handoff.id.find(handoff_id)
    if handoff is None:
        raise AgentError(f"no handoff {handoff_id}")
    if handoff.status != "active":
        raise AgentError(f"handoff {handoff_id} is already {handoff.status}")
    thread = require_thread(ctx, handoff.thread_id)
    require_thread_access(ctx, thread, "complete_handoff")
    if thread.active_agent != handoff.to_agent:
        raise HandoffRefused(
            f"handoff {handoff_id} went to {handoff.to_agent!r}, but {thread.active_agent!r} is "
            f"active in thread {thread.id!r}; complete the later hand-offs first"
        )
    if not return_control:
        return_to = ""
    elif handoff.mode == "delegate":
        return_to = handoff.from_agent
    else:
        return_to = thread.supervisor if thread.supervisor != handoff.to_agent else ""
    outcome = HandoffResult(
        handoff.id,
        thread.id,
        handoff.from_agent,
        handoff.to_agent,
        handoff.mode,
        result,
        return_to,
    )
    for hook in hooks("after_handoff"):
        chosen = hook(ctx, outcome)
        if chosen is not None:
            if chosen:
                require_agent(ctx, chosen)
            outcome.return_to = chosen
    return_to = outcome.return_to
    now = ctx.timestamp
    handoff.status = "completed"
    handoff.result = result
    handoff.returned_to = return_to
    handoff.completed_at = now
    ctx.db.handoff.id.update(handoff)
    if result:
        ctx.db.agent_message.insert(
            AgentMessage(0, thread.id, handoff.to_agent, "assistant", result, "[]", "", now)
        )
    set_state(ctx, thread.id, handoff.to_agent, "done", result or None)
    if return_to and return_to != handoff.to_agent:
        thread.active_agent = return_to
        thread.status = "running"
        set_state(ctx, thread.id, return_to, "running", f"control returned by {handoff.to_agent}")
    else:
        thread.status = "done"
    thread.updated_at = now
    ctx.db.agent_thread.id.update(thread)
    append_event(
        ctx,
        thread.id,
        handoff.to_agent,
        "handoff.completed",
        {"handoff_id": handoff.id, "returned_to": return_to},
    )
    return thread.active_agent


@reducer
def handoff_tool_schemas(ctx: ReducerContext, agent: str) -> str:
    """The ``transfer_to_<target>`` tools ``agent`` may call, from the registry, as the
    JSON text of a list of OpenAI function tools (ready for a model request)."""
    require_agent(ctx, agent)
    return dumps(transfer_tools(ctx.db.agent.iter(), agent))
