"""``transfer_to_<agent>`` tool schemas generated from the registry.

The convention of langgraph-supervisor, langgraph-swarm and the OpenAI Agents SDK: a
model hands off by calling a tool named after the target. The schema is the OpenAI
function-tool format, which LangChain's ``bind_tools`` also accepts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cosmictron.agents.tables import Agent

TRANSFER_PREFIX = "transfer_to_"


def transfer_tool(target: Agent) -> dict[str, Any]:
    """One ``transfer_to_<name>`` function tool."""
    description = f"Transfer the conversation to the agent {target.name!r}."
    if target.description:
        description += f" {target.description}"
    return {
        "type": "function",
        "function": {
            "name": TRANSFER_PREFIX + target.name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "description": "Why this agent should take over."},
                    "payload": {
                        "type": "object",
                        "description": "Anything the next agent needs (JSON object).",
                    },
                },
                "required": ["reason"],
            },
        },
    }


def transfer_tools(agents: Iterable[Agent], from_agent: str) -> list[dict[str, Any]]:
    """The transfer tools ``from_agent`` may call: one per allowed, registered target."""
    registry = {a.name: a for a in agents}
    source = registry.get(from_agent)
    if source is None:
        return []
    return [transfer_tool(registry[t]) for t in source.handoff_targets if t in registry]


def target_of(tool_name: str) -> str | None:
    """The agent a ``transfer_to_<agent>`` tool call names, or None for other tools."""
    if tool_name.startswith(TRANSFER_PREFIX):
        return tool_name[len(TRANSFER_PREFIX) :] or None
    return None
