"""The built-in agent layer: a module any database includes next to its own tables.

Owns: the agent tables (``tables``), tool calls with leases (``leases``), hand-offs with
supervisor hooks (``handoffs``, ``hooks``), ``transfer_to_<agent>`` tool schemas
(``schemas``), who may call what (``rights``), semantic memory (``memory``, ``embedders``,
``vector_index``). Imports: ``module`` (the decorators), root modules. Nothing here is
special to the host: it is an ordinary module, included by
``from cosmictron.agents import *`` in a module file, which binds its tables and
reducers in that module's namespace where the loader finds them like the module's own
(docs/guide/agents.md). Agent events are ordinary committed rows, so the ledger signs
them with everything else. ``checkpoints`` holds LangGraph's checkpoints and writes for
``cosmictron.integrations.langgraph.CosmictronSaver``; ``store`` holds the items of
LangGraph's long-term store (``CosmictronStore``), their vectors in ``memory``.
"""

from cosmictron.agents.checkpoints import (
    GraphCheckpoint,
    GraphCheckpointWrite,
    GraphThreadHead,
    GraphWrite,
    copy_graph_thread,
    delete_graph_runs,
    delete_graph_thread,
    prune_graph_checkpoints,
    put_graph_checkpoint,
    put_graph_writes,
)
from cosmictron.agents.embedders import Embedder, HashingEmbedder, MiniLMEmbedder
from cosmictron.agents.errors import AgentError, HandoffLoop, HandoffRefused, StaleToolCall
from cosmictron.agents.handoffs import (
    complete_handoff,
    handoff_tool_schemas,
    request_handoff,
)
from cosmictron.agents.hooks import (
    HandoffDecision,
    HandoffRequest,
    HandoffResult,
    after_handoff,
    allow,
    before_handoff,
    deny,
    reroute,
)
from cosmictron.agents.leases import (
    claim_tool_call,
    complete_tool_call,
    configure_agents,
    expire_tool_call_leases,
    heartbeat_tool_call,
    record_tool_call,
)
from cosmictron.agents.memory import (
    forget,
    recall,
    remember,
    remember_many,
    remember_text,
    search_memory,
)
from cosmictron.agents.registry import (
    append_agent_event,
    append_message,
    record_agent_step,
    register_agent,
    set_agent_state,
    start_thread,
)
from cosmictron.agents.remote_handoffs import receive_handoff
from cosmictron.agents.rights import grant_agent_worker, revoke_agent_worker
from cosmictron.agents.schemas import target_of, transfer_tools
from cosmictron.agents.store import (
    StoreItem,
    StorePut,
    StoreVector,
    store_get,
    store_list_namespaces,
    store_search,
    store_sweep,
    store_touch,
    store_write,
)
from cosmictron.agents.tables import (
    Agent,
    AgentConfig,
    AgentEvent,
    AgentMessage,
    AgentState,
    AgentThread,
    AgentWorker,
    ClaimedToolCall,
    Handoff,
    Memory,
    MemoryHit,
    ToolCall,
    ToolCallLeaseSweep,
)
from cosmictron.agents.tool_runs import start_tool_call

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentError",
    "AgentEvent",
    "AgentMessage",
    "AgentState",
    "AgentThread",
    "AgentWorker",
    "ClaimedToolCall",
    "Embedder",
    "GraphCheckpoint",
    "GraphCheckpointWrite",
    "GraphThreadHead",
    "GraphWrite",
    "Handoff",
    "HandoffDecision",
    "HandoffLoop",
    "HandoffRefused",
    "HandoffRequest",
    "HandoffResult",
    "HashingEmbedder",
    "Memory",
    "MemoryHit",
    "MiniLMEmbedder",
    "StaleToolCall",
    "StoreItem",
    "StorePut",
    "StoreVector",
    "ToolCall",
    "ToolCallLeaseSweep",
    "after_handoff",
    "allow",
    "append_agent_event",
    "append_message",
    "before_handoff",
    "claim_tool_call",
    "complete_handoff",
    "complete_tool_call",
    "configure_agents",
    "copy_graph_thread",
    "delete_graph_runs",
    "delete_graph_thread",
    "deny",
    "expire_tool_call_leases",
    "forget",
    "grant_agent_worker",
    "handoff_tool_schemas",
    "heartbeat_tool_call",
    "prune_graph_checkpoints",
    "put_graph_checkpoint",
    "put_graph_writes",
    "recall",
    "receive_handoff",
    "record_agent_step",
    "record_tool_call",
    "register_agent",
    "remember",
    "remember_many",
    "remember_text",
    "request_handoff",
    "reroute",
    "revoke_agent_worker",
    "search_memory",
    "set_agent_state",
    "start_thread",
    "start_tool_call",
    "store_get",
    "store_list_namespaces",
    "store_search",
    "store_sweep",
    "store_touch",
    "store_write",
    "target_of",
    "transfer_tools",
]
