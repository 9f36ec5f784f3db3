"""The module the agent tests include ``cosmictron.agents`` in, with supervisor hooks."""

AGENT_APP = """
from cosmictron import *
from cosmictron.agents import *


@table(public=True)
class Ticket:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""


@reducer
def open_ticket(ctx: ReducerContext, text: str) -> int:
    return ctx.db.ticket.insert(Ticket(text=text)).id


@before_handoff
def supervise(ctx, request):
    if request.payload.get("block"):
        return deny("blocked by policy")
    if request.payload.get("explode"):
        raise RuntimeError("hook crashed")
    if "to" in request.payload:
        return reroute(to_agent=request.payload["to"])
    if request.to_agent == "billing" and request.payload.get("vip"):
        return reroute(to_agent="vip_desk", payload={**request.payload, "rerouted": True})
    return None


@after_handoff
def back_to_triage(ctx, result):
    if result.result == "escalate":
        return "vip_desk"
    return None
"""

AGENTS = [
    ("triage", "supervisor", "routes requests", ["billing", "vip_desk", "tech"]),
    ("billing", "worker", "refunds and invoices", ["tech", "triage"]),
    ("vip_desk", "worker", "premium customers", ["triage"]),
    ("tech", "worker", "technical problems", ["billing", "triage"]),
]


def seed(call) -> None:
    """Register the agents and open thread ``t1`` under ``triage`` (``call(reducer, *args)``)."""
    for name, kind, description, targets in AGENTS:
        call("register_agent", name, kind, description, targets)
    call("start_thread", "t1", "triage", "triage")
