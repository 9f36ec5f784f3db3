"""Who may act on the agent layer: the database owner, registered workers, thread owners.

The agent reducers are called by clients, so each one says whose request it accepts
(docs/guide/agents.md, "Who may do what"; docs/design/agent-rights.md says why):

- the **database owner** may do everything;
- a **worker** is an identity the owner registered with ``grant_agent_worker`` (a row of
  ``agent_worker``): it may claim, heartbeat and complete tool calls, act on any
  thread, and use every memory namespace;
- any other identity may start threads, owns the threads it starts
  (``agent_thread.owner``) and acts only on those, and keeps memories only in the
  namespaces that begin with its identity's hex (``<hex>`` or ``<hex>/...``).

The registry and the settings (``register_agent``, ``configure_agents``) are the owner's.
A refusal is a failed call (``ReducerFailed``, HTTP 400 ``reducer_failed``) whose cause is
``PermissionDenied`` and whose message names the rule.
Reads stay as the tables declare them: the agent tables are public, ``memory`` is private.
"""

from __future__ import annotations

from typing import Any

from cosmictron.agents.errors import AgentError
from cosmictron.agents.tables import AgentThread, AgentWorker
from cosmictron.errors import PermissionDenied
from cosmictron.module import CURRENT_DB, ReducerContext, reducer
from cosmictron.values import Identity


def database_owner() -> Identity | None:
    """The running database's owner (None outside a database call)."""
    database = CURRENT_DB.get(None)
    owner: Identity | None = getattr(database, "owner", None)
    return owner


def is_owner(sender: Identity) -> bool:
    owner = database_owner()
    return owner is None or sender == owner


def is_worker(ctx: ReducerContext) -> bool:
    return ctx.db.agent_worker.identity.find(ctx.sender) is not None


def is_trusted(ctx: ReducerContext) -> bool:
    """The owner or a registered worker: may act on every thread and memory."""
    return is_owner(ctx.sender) or is_worker(ctx)


def require_owner(ctx: ReducerContext, action: str) -> None:
    if not is_owner(ctx.sender):
        raise PermissionDenied(
            f"{action} is the database owner's (caller {ctx.sender.hex()[:16]}…)"
        )


def require_trusted(ctx: ReducerContext, action: str) -> None:
    if not is_trusted(ctx):
        raise PermissionDenied(
            f"{action} needs the database owner or a worker the owner registered with "
            f"grant_agent_worker (caller {ctx.sender.hex()[:16]}… is neither)"
        )


def require_thread_access(ctx: ReducerContext, thread: AgentThread, action: str) -> None:
    """The thread's owner, the database owner or a worker may act on ``thread``."""
    if thread.owner != Identity.zero() and ctx.sender == thread.owner:
        return
    if not is_trusted(ctx):
        raise PermissionDenied(
            f"{action}: thread {thread.id!r} belongs to another identity; only its owner, "
            f"the database owner and registered workers act on it"
        )


def check_namespace(sender: Identity, trusted: bool, namespace: str, action: str) -> None:
    """Untrusted callers keep memories under their own identity's hex only."""
    if trusted:
        return
    if sender == Identity.zero():
        raise PermissionDenied(
            f"{action}: an anonymous caller has no memory namespace; call with a token "
            f"(POST /v1/identity makes one)"
        )
    mine = sender.hex()
    if namespace != mine and not namespace.startswith(mine + "/"):
        raise PermissionDenied(
            f"{action}: namespace {namespace!r} is not yours; an identity that is neither "
            f"the owner nor a registered worker uses namespaces '{mine}' and '{mine}/…'"
        )


def trusted_in(database: Any, sender: Identity) -> bool:
    """``is_trusted`` for a procedure (no transaction: a short read of ``agent_worker``)."""
    if sender == getattr(database, "owner", None):
        return True
    found = database.read(lambda _: database.table("agent_worker").identity.find(sender))
    return found is not None


@reducer
def grant_agent_worker(ctx: ReducerContext, identity: Identity, name: str = "") -> None:
    """Let ``identity`` claim and complete tool calls and act on every thread (owner only)."""
    require_owner(ctx, "grant_agent_worker")
    if identity == Identity.zero():
        raise AgentError("grant_agent_worker needs a real identity, not the zero identity")
    row = AgentWorker(identity, name, ctx.timestamp)
    if ctx.db.agent_worker.identity.find(identity) is None:
        ctx.db.agent_worker.insert(row)
    else:
        ctx.db.agent_worker.identity.update(row)


@reducer
def revoke_agent_worker(ctx: ReducerContext, identity: Identity) -> bool:
    """Take the worker right back (owner only); returns whether ``identity`` had it.

    Leases it holds run out as usual; its later heartbeats and completions are refused.
    """
    require_owner(ctx, "revoke_agent_worker")
    return bool(ctx.db.agent_worker.identity.delete(identity))
