"""Hand-offs to an agent registered in another database, through ``ctx.call_remote``.

An agent's ``handoff_targets`` may name ``"<database>/<agent>"``. ``request_handoff`` to
such a target (``handoffs.py``) runs the same checks and hooks as a local one, then
(``send_remote_handoff``) records the hand-off with status ``"sent"``, moves the thread
to the remote agent (``agent_thread.active_agent = "<database>/<agent>"``) and records a
``ctx.call_remote(database, "receive_handoff", ...)``, all in one transaction: the other
database receives the thread exactly once, after this commits, or never if it fails.

``receive_handoff`` is the other side: the thread (same id; created if that database
has not seen it) becomes active with the named agent, with a hand-off row recording who
sent it. It runs as the sending database's owner, so it is accepted from the receiving
database's owner or a registered worker (``grant_agent_worker``): two databases with one
owner need nothing more. Only ``transfer`` crosses databases (a ``delegate`` would need
control to come back through a second call; not built). docs/guide/agents.md,
"Hand-offs to another database".
"""

from __future__ import annotations

from cosmictron.agents.common import append_event, dumps, json_object, set_state
from cosmictron.agents.errors import AgentError, HandoffRefused
from cosmictron.agents.hooks import HandoffRequest
from cosmictron.agents.registry import require_agent
from cosmictron.agents.rights import require_trusted
from cosmictron.agents.tables import AgentThread, Handoff
from cosmictron.module import ReducerContext, reducer

RECEIVE_REDUCER = "receive_handoff"


def remote_target(name: str) -> tuple[str, str] | None:
    """``("db", "agent")`` for a ``"db/agent"`` target, None for a local agent."""
    database, slash, agent = name.partition("/")
    if not slash:
        return None
    if not database or not agent or "/" in agent:
        raise AgentError(f"a hand-off target in another database is 'database/agent', got {name!r}")
    return database, agent


def send_remote_handoff(
    ctx: ReducerContext, thread: AgentThread, request: HandoffRequest
) -> Handoff:
    """Record the hand-off here and the call that delivers it there (one transaction)."""
    found = remote_target(request.to_agent)
    assert found is not None
    database, agent = found
    if request.mode != "transfer":
        raise HandoffRefused(
            f"a hand-off to {request.to_agent!r} (another database) must be a transfer; "
            f"delegating across databases is not supported"
        )
    now = ctx.timestamp
    handoff = ctx.db.handoff.insert(
        Handoff(
            id=0,
            thread_id=thread.id,
            from_agent=request.from_agent,
            to_agent=request.to_agent,
            requested_to=request.to_agent,
            reason=request.reason,
            payload=dumps(request.payload),
            tool_call_id=request.tool_call_id,
            mode="transfer",
            status="sent",
            depth=request.depth,
            created_at=now,
        )
    )
    seq = ctx.call_remote(
        database,
        RECEIVE_REDUCER,
        thread.id,
        request.from_agent,
        agent,
        request.reason,
        dumps(request.payload),
        ctx.identity.hex(),
    )
    thread.active_agent = request.to_agent
    thread.status = "running"
    thread.handoff_count += 1
    thread.updated_at = now
    ctx.db.agent_thread.id.update(thread)
    set_state(ctx, thread.id, request.from_agent, "handed_off", f"handed off to {request.to_agent}")
    append_event(
        ctx,
        thread.id,
        request.from_agent,
        "handoff.sent",
        {"handoff_id": handoff.id, "to_agent": request.to_agent, "call_remote_seq": seq},
    )
    return handoff


@reducer
def receive_handoff(
    ctx: ReducerContext,
    thread_id: str,
    from_agent: str,
    to_agent: str,
    reason: str = "",
    payload: str = "{}",
    from_database: str = "",
) -> int:
    """Take a thread handed over from another database; returns the hand-off's id here.

    Called by ``ctx.call_remote`` from the sending database (as its owner), not by
    clients: the owner or a registered worker only.
    """
    require_trusted(ctx, "receive_handoff")
    require_agent(ctx, to_agent)
    now = ctx.timestamp
    thread = ctx.db.agent_thread.id.find(thread_id)
    if thread is None:
        thread = ctx.db.agent_thread.insert(
            AgentThread(thread_id, to_agent, "", "running", 1, now, now, ctx.sender)
        )
    else:
        thread.active_agent = to_agent
        thread.status = "running"
        thread.handoff_count += 1
        thread.updated_at = now
        ctx.db.agent_thread.id.update(thread)
    sender = f"{from_database[:16]}/{from_agent}" if from_database else from_agent
    handoff = ctx.db.handoff.insert(
        Handoff(
            id=0,
            thread_id=thread_id,
            from_agent=sender,
            to_agent=to_agent,
            requested_to=to_agent,
            reason=reason,
            payload=dumps(json_object(payload, "payload")),
            mode="transfer",
            created_at=now,
        )
    )
    set_state(ctx, thread_id, to_agent, "running", reason or None)
    append_event(
        ctx,
        thread_id,
        to_agent,
        "handoff.received",
        {"handoff_id": handoff.id, "from_agent": from_agent, "from_database": from_database},
    )
    return int(handoff.id)
