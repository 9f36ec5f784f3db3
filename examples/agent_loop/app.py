"""An LLM agent loop as a Cosmictron module: the model call is a procedure, the state is rows.

``run_turn`` (a ``@procedure``: it may do I/O) reads the thread's messages, asks a model at
any OpenAI-compatible endpoint (``POST {url}/chat/completions``; the URL is a row the
owner sets with ``configure_model``), and records what the model said through the agent
reducers: an answer becomes an assistant message and the thread is done; tool calls
become an assistant message with ``tool_calls`` plus one ``record_tool_call`` each, and
the thread waits. A worker subscribed to ``tool_call`` rows (``worker.py``) claims the
calls, runs the tools, completes them (which appends the ``tool`` messages) and calls
``run_turn`` again once none is open, until the model answers.

The I/O happens outside every transaction and each recording is one short ``with_tx``,
so replay never calls the model again, and a crash between two steps leaves the thread
at its last recorded step. Deploy it like any module:
``cosmictron-cli deploy support examples/agent_loop/app.py``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from functools import partial
from typing import Any

import cosmictron
from cosmictron import ProcedureContext, ReducerContext, field, init, procedure, reducer, table
from cosmictron.agents import *  # noqa: F403  (the agent tables and reducers join this module)
from cosmictron.agents import (
    AgentError,
    append_message,
    record_tool_call,
    register_agent,
    set_agent_state,
    start_thread,
)
from cosmictron.agents.rights import require_owner, require_thread_access

AGENT = "assistant"
MAX_STEPS = 8
"""Model calls per ``run_turn``: a model that keeps asking for nothing new stops here."""

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order's status by its number.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "integer"}},
                "required": ["order_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "refund_order",
            "description": "Refund an order.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "integer"}, "reason": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    },
]
SYSTEM_PROMPT = "You are a support agent. Use the tools to look orders up before answering."


@table(name="model_config")
class ModelConfig:
    """Where the model is (private: the API key is in it). One row, id 0."""

    id: int = field(primary_key=True)
    url: str = ""
    model: str = ""
    api_key: str = ""
    timeout_s: float = 60.0


@cosmictron.type
class Turn:
    """What ``run_turn`` returns: ``done`` (with the answer), ``waiting_tool`` (with the
    recorded call ids) or ``busy``."""

    status: str = ""
    tool_calls: list[str] = field(default=[])
    message_id: int = 0
    content: str = ""


@init
def setup(ctx: ReducerContext) -> None:
    register_agent(ctx, AGENT, "worker", "answers support questions with tools", [])


@reducer
def configure_model(
    ctx: ReducerContext, url: str, model: str, api_key: str = "", timeout_s: float = 60.0
) -> None:
    """Point the agent at an OpenAI-compatible endpoint (base URL, e.g. ``.../v1``)."""
    require_owner(ctx, "configure_model")
    if not url.startswith(("http://", "https://")):
        raise AgentError(f"url must be an http(s) base URL, got {url!r}")
    if not 0 < timeout_s <= 600:
        raise AgentError(f"timeout_s must be in (0, 600], got {timeout_s}")
    row = ModelConfig(0, url.rstrip("/"), model, api_key, timeout_s)
    if ctx.db.model_config.id.find(0) is None:
        ctx.db.model_config.insert(row)
    else:
        ctx.db.model_config.id.update(row)


def openai_messages(tx: ReducerContext, thread_id: str) -> list[dict[str, Any]]:
    """The thread's messages in the shape chat completion APIs take."""
    rows = sorted(tx.db.agent_message.thread_id.filter(thread_id), key=lambda m: m.id)
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
    for row in rows:
        message: dict[str, Any] = {"role": row.role, "content": row.content}
        calls = json.loads(row.tool_calls)
        if calls:
            message["tool_calls"] = calls
        if row.tool_call_id:
            message["tool_call_id"] = row.tool_call_id
        messages.append(message)
    return messages


def ask_model(config: ModelConfig, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """One chat completion: the first choice's message (I/O, outside any transaction)."""
    body = json.dumps({"model": config.model, "messages": messages, "tools": TOOLS}).encode()
    request = urllib.request.Request(
        f"{config.url}/chat/completions",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    if config.api_key:
        request.add_header("Authorization", f"Bearer {config.api_key}")
    try:
        with urllib.request.urlopen(request, timeout=config.timeout_s) as reply:
            answer = json.loads(reply.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:300]
        raise AgentError(
            f"the model at {config.url} answered HTTP {error.code}: {detail}"
        ) from None
    except (urllib.error.URLError, TimeoutError) as error:
        raise AgentError(f"the model at {config.url} is unreachable: {error}") from None
    try:
        message: dict[str, Any] = answer["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise AgentError(f"the model's reply has no choices[0].message: {answer!r:.300}") from None
    return message


@procedure(timeout_s=600)
def run_turn(ctx: ProcedureContext, thread_id: str, user_text: str = "") -> Turn:
    """Advance the thread: add ``user_text`` (if any), then call the model until it answers
    or asks for tools. Returns a ``Turn``.

    ``busy``: another turn of this thread is running, or tool calls are still open
    (the worker that completes the last one runs the next turn).
    """

    def begin(tx: ReducerContext) -> tuple[ModelConfig, list[dict[str, Any]]] | None:
        config = tx.db.model_config.id.find(0)
        if config is None:
            raise AgentError("no model configured; the owner calls configure_model first")
        thread = tx.db.agent_thread.id.find(thread_id)
        if thread is None:
            start_thread(tx, thread_id, AGENT, "")
            thread = tx.db.agent_thread.id.find(thread_id)
        require_thread_access(tx, thread, "run_turn")
        open_calls = [
            c
            for c in tx.db.tool_call.thread_id.filter(thread_id)
            if c.status in ("pending", "running")
        ]
        if thread.status == "running" or open_calls:
            if user_text:
                raise AgentError(f"thread {thread_id!r} is busy; send the message when it is idle")
            return None
        if user_text:
            append_message(tx, thread_id, AGENT, "user", user_text)
        thread.status = "running"
        tx.db.agent_thread.id.update(thread)
        set_agent_state(tx, thread_id, AGENT, "running")
        return config, openai_messages(tx, thread_id)

    started = ctx.with_tx(begin)
    if started is None:
        return Turn("busy")
    config, messages = started
    try:
        for _ in range(MAX_STEPS):
            reply = ask_model(config, messages)
            calls = reply.get("tool_calls") or []
            if calls:
                return ctx.with_tx(partial(record_calls, thread_id=thread_id, reply=reply))
            content = reply.get("content") or ""
            if content:
                return ctx.with_tx(partial(record_answer, thread_id=thread_id, content=content))
            messages.append({"role": "assistant", "content": ""})
        raise AgentError(f"the model gave no answer and no tool call in {MAX_STEPS} steps")
    except Exception as failure:
        reason = str(failure)
        ctx.with_tx(partial(record_failure, thread_id=thread_id, error=reason))
        raise


def record_calls(tx: ReducerContext, thread_id: str, reply: dict[str, Any]) -> Turn:
    calls: list[dict[str, Any]] = reply["tool_calls"]
    append_message(tx, thread_id, AGENT, "assistant", reply.get("content") or "", json.dumps(calls))
    for call in calls:
        function = call["function"]
        record_tool_call(
            tx, call["id"], thread_id, AGENT, function["name"], function.get("arguments") or "{}"
        )
    finish_turn(tx, thread_id, "waiting_tool")
    return Turn("waiting_tool", [c["id"] for c in calls])


def record_answer(tx: ReducerContext, thread_id: str, content: str) -> Turn:
    message_id = append_message(tx, thread_id, AGENT, "assistant", content)
    finish_turn(tx, thread_id, "done")
    set_agent_state(tx, thread_id, AGENT, "done", content[:200])
    return Turn("done", [], message_id, content)


def record_failure(tx: ReducerContext, thread_id: str, error: str) -> None:
    finish_turn(tx, thread_id, "error")
    set_agent_state(tx, thread_id, AGENT, "error", error[:200])


def finish_turn(tx: ReducerContext, thread_id: str, status: str) -> None:
    thread = tx.db.agent_thread.id.find(thread_id)
    thread.status = status
    tx.db.agent_thread.id.update(thread)
