"""The agent layer's tables: what an agent system's state is, as rows.

Every table here joins the including module's own (``from cosmictron.agents import *``),
so its rows are persisted, replayed, signed by the ledger and subscribable like any
other. Structured values that a model produces (tool-call arguments, hand-off payloads,
OpenAI-style ``tool_calls`` lists) are kept as JSON text: they are opaque to the
database, and JSON text is what model APIs send and expect back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cosmictron.module import Index, field, table, type_
from cosmictron.values import Identity, ScheduleAt, Timestamp, Vector

MEMORY_DIMS = 384
"""The length of ``memory.embedding``: all-MiniLM-L6-v2's, the common small sentence model."""

if TYPE_CHECKING:  # mypy reads a vector as the sequence it accepts
    Embedding = Sequence[float]
else:  # the loader reads the annotation: a Vector column of MEMORY_DIMS float32s
    Embedding = Vector[MEMORY_DIMS]

AGENT_STATUSES = ("idle", "pending", "running", "waiting_tool", "handed_off", "done", "error")
"""The values of ``agent_state.status`` and ``agent_thread.status``."""

TOOL_CALL_STATUSES = ("pending", "running", "done", "error")
"""The values of ``tool_call.status``: ``error`` is terminal (the tool reported an error,
or the call ran out of attempts)."""

HANDOFF_MODES = ("transfer", "delegate")
"""``transfer`` hands the thread over for good; ``delegate`` expects control back when
the hand-off completes (supervisor style)."""


@table(name="agent", public=True)
class Agent:
    """The registry: who exists, and to whom each may hand off."""

    name: str = field(primary_key=True)
    kind: str = "worker"
    description: str = ""
    handoff_targets: list[str] = field(default=[])
    created_at: Timestamp = field(default=Timestamp(0))


@table(name="agent_thread", public=True)
class AgentThread:
    """A conversation: which agent is active now, and who supervises it."""

    id: str = field(primary_key=True)
    active_agent: str = ""
    supervisor: str = ""
    status: str = "pending"
    handoff_count: int = 0
    created_at: Timestamp = field(default=Timestamp(0))
    updated_at: Timestamp = field(default=Timestamp(0))
    owner: Identity = field(default=Identity.zero(), index="hash")
    """Who started the thread: it, the database owner and workers act on it
    (``agents/rights.py``). Zero on threads from before owners were recorded."""

    # Rows stored before ``owner`` was added (7 columns) are read with its default; a
    # column added here later must go at the end with a default, and its older width
    # listed (tests/agents/test_agent_tables_grow.py pins the history).
    __cosmictron_older_widths__ = (7,)


@table(name="agent_worker", public=True)
class AgentWorker:
    """An identity the owner lets claim and complete tool calls (``grant_agent_worker``)."""

    identity: Identity = field(primary_key=True)
    name: str = ""
    granted_at: Timestamp = field(default=Timestamp(0))


@table(
    name="agent_state",
    public=True,
    primary_key=("thread_id", "agent"),
    indexes=[Index("thread_id", ("thread_id",))],
)
class AgentState:
    """One agent's progress in one thread (what a LangChain callback handler reports)."""

    thread_id: str = ""
    agent: str = ""
    status: str = "idle"
    step: int = 0
    summary: str = ""
    updated_at: Timestamp = field(default=Timestamp(0))


@table(name="agent_event", public=True, event=True)
class AgentEvent:
    """The append-only log every agent reads and writes.

    ``seq`` is a global sequence (one counter for the whole database). ``causation_id``
    is the ``seq`` of the event that caused this one (0: none); ``correlation_id`` groups
    the events of one run (default: the thread id). ``idempotency_key`` makes an append
    safe to retry: a second append with the same non-empty key returns the first one.
    """

    seq: int = field(primary_key=True, auto_inc=True)
    thread_id: str = field(default="", index="btree")
    agent: str = ""
    kind: str = ""
    payload: str = "{}"
    causation_id: int = 0
    correlation_id: str = ""
    idempotency_key: str = field(default="", index="hash")
    at: Timestamp = field(default=Timestamp(0))


@table(name="agent_message", public=True, event=True)
class AgentMessage:
    """A chat message of a thread (event table: appended, never changed).

    ``tool_calls`` is the assistant's OpenAI-style list as JSON text
    (``[{"id", "type": "function", "function": {"name", "arguments"}}]``);
    ``tool_call_id`` links a ``tool`` message to the call it answers.
    """

    id: int = field(primary_key=True, auto_inc=True)
    thread_id: str = field(default="", index="btree")
    agent: str = ""
    role: str = "user"
    content: str = ""
    tool_calls: str = "[]"
    tool_call_id: str = ""
    at: Timestamp = field(default=Timestamp(0))


@table(
    name="tool_call",
    public=True,
    indexes=[
        Index("thread_agent_status", ("thread_id", "agent", "status")),
        # claim_tool_call takes the first key of these (O(log n), not a scan of the
        # pending calls); the sweep reads only the expired part of the running leases.
        Index("status_seq", ("status", "event_seq")),
        Index("status_tool_seq", ("status", "tool_name", "event_seq")),
        Index("status_lease", ("status", "lease_expires_at")),
    ],
)
class ToolCall:
    """A tool invocation, leased to one worker at a time.

    ``id`` is the model's tool call id, so recording it twice is harmless. ``attempt``
    counts claims and is the fencing token: only the worker holding the current attempt
    may heartbeat or complete the call.
    """

    id: str = field(primary_key=True)
    thread_id: str = field(default="", index="btree")
    agent: str = ""
    tool_name: str = field(default="", index="btree")
    arguments: str = "{}"
    status: str = "pending"
    attempt: int = 0
    max_attempts: int = 3
    worker: str = ""
    lease_expires_at: Timestamp = field(default=Timestamp(0))
    result: str = ""
    error: str = ""
    event_seq: int = 0
    message_id: int = 0
    created_at: Timestamp = field(default=Timestamp(0))
    updated_at: Timestamp = field(default=Timestamp(0))


@table(name="handoff", public=True)
class Handoff:
    """A change of the active agent of a thread, as the hooks let it happen."""

    id: int = field(primary_key=True, auto_inc=True)
    thread_id: str = field(default="", index="btree")
    from_agent: str = ""
    to_agent: str = ""
    requested_to: str = ""
    reason: str = ""
    payload: str = "{}"
    tool_call_id: str = ""
    mode: str = "transfer"
    status: str = "active"
    depth: int = 1
    returned_to: str = ""
    result: str = ""
    created_at: Timestamp = field(default=Timestamp(0))
    completed_at: Timestamp = field(default=Timestamp(0))


@table(name="memory", public=False)
class Memory:
    """Semantic memory: text with its embedding, valid from one time until another.

    Rows are superseded, never deleted: ``remember`` with the key of a current memory
    closes it (``valid_to``) and adds the new one, ``forget`` only closes it, so
    ``recall(as_of=...)`` answers as the memory stood at any past time. ``valid_to`` is
    NULL while the memory is valid (SQL: ``WHERE valid_to IS NULL``). ``embedding`` is
    computed outside every transaction by the embedder named in ``model_id``
    (docs/guide/agents.md, "Semantic memory"). Private: reach it through ``recall``,
    SQL as the owner, or a subscription of the owner.
    """

    id: int = field(primary_key=True, auto_inc=True)
    namespace: str = field(default="", index="btree")
    key: str = ""
    text: str = ""
    metadata: str = "{}"
    valid_from: Timestamp = field(default=Timestamp(0))
    valid_to: Timestamp | None = None
    model_id: str = ""
    embedding: Embedding = field(default=[0.0] * MEMORY_DIMS)


@type_
class MemoryHit:
    """One ``recall`` result: the memory and its cosine similarity to the query."""

    id: int = 0
    namespace: str = ""
    key: str = ""
    text: str = ""
    metadata: str = "{}"
    valid_from: Timestamp = field(default=Timestamp(0))
    valid_to: Timestamp | None = None
    score: float = 0.0


@table(name="agent_config", public=True)
class AgentConfig:
    """The agent layer's settings for this database (one row, id 0; ``configure_agents``)."""

    id: int = field(primary_key=True)
    lease_sweep_interval_s: float = 5.0
    default_lease_s: float = 30.0
    max_attempts: int = 3


@table(name="tool_call_lease_sweep", scheduled="expire_tool_call_leases")
class ToolCallLeaseSweep:
    """The schedule of the sweep that takes back expired leases (one row)."""

    id: int = field(primary_key=True)
    scheduled_at: ScheduleAt = field(default=ScheduleAt.interval(5.0))


@type_
class ClaimedToolCall:
    """What ``claim_tool_call`` returns: everything a worker needs to run the call."""

    call_id: str = ""
    attempt: int = 0
    thread_id: str = ""
    agent: str = ""
    tool_name: str = ""
    arguments: str = "{}"
    lease_expires_at: Timestamp = field(default=Timestamp(0))
