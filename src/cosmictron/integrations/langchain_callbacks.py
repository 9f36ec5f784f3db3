"""``CosmictronCallbackHandler``: LangChain callbacks become agent-layer rows.

Needs the ``langchain`` extra. Pass the handler in a run's ``callbacks`` and:

- a tool's start is ``start_tool_call`` (the call recorded under the model's tool call id
  and leased to this handler's worker, one transaction); its end is
  ``complete_tool_call`` with the result, its error ``complete_tool_call`` with the
  error, which appends the ``tool`` message to the thread in the same transaction;
- a chat model's (or LLM's) start, end and error are ``agent_event`` rows
  (``model.started``, ``model.finished``, ``model.failed``), the end and the error
  naming the start as their cause, each with an idempotency key made of the run id;
- every one of those, and a run's start, end and error (the root chain: ``run.started``,
  ``run.finished``, ``run.failed``, ``run.interrupted``) and each LangGraph node's start
  (``node.started``), also moves the agent's ``agent_state`` row: ``running`` while it
  works, ``waiting_tool`` while a tool call is open, ``done``, ``error``, or ``pending``
  at an interrupt, one more ``step`` each, with the event in the same transaction
  (``record_agent_step``).

So a callback handler is a subscription on ``agent_state`` (as the issue puts it): a
subscriber of ``agent_state`` sees each step live, one of ``tool_call``,
``agent_message`` and ``agent_event`` the detail, and the run's history is in the
signed log. The thread must have been started and
the agent registered (``start_thread``, ``register_agent``); the thread is the handler's
``thread_id``, else the ``thread_id`` LangGraph puts in a run's metadata.

Recording errors are raised by default (``raise_error``): a run that cannot be recorded
should not go on unrecorded.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from uuid import UUID

try:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import BaseMessage, ToolMessage
    from langchain_core.outputs import LLMResult
except ImportError as exc:  # the core does not depend on LangChain
    raise ImportError(
        f"cosmictron.integrations.langchain needs LangChain ({exc.name} is missing): "
        "pip install 'cosmictron[langchain]'"
    ) from exc

from cosmictron.host import Database
from cosmictron.integrations.connection import (
    Connection,
    RemoteConnection,
    connection_of,
    field_of,
)

__all__ = ["CosmictronCallbackHandler"]


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _result_text(output: Any) -> str:
    if isinstance(output, ToolMessage):
        content = output.content
        return content if isinstance(content, str) else _json(content)
    return output if isinstance(output, str) else _json(output)


def _generations(response: LLMResult) -> list[dict[str, Any]]:
    out = []
    for candidates in response.generations:
        for generation in candidates:
            message = getattr(generation, "message", None)
            tool_calls = list(getattr(message, "tool_calls", None) or [])
            out.append({"text": generation.text, "tool_calls": tool_calls})
    return out


class CosmictronCallbackHandler(BaseCallbackHandler):
    """Records a LangChain run's tool calls and model calls in the agent layer.

    ``CosmictronCallbackHandler(db, agent="researcher", thread_id="t1")`` for an
    embedded ``Database``; ``CosmictronCallbackHandler.from_url(url, database,
    agent=..., token=...)`` for a server.
    """

    def __init__(
        self,
        db: Database | Connection,
        *,
        agent: str,
        thread_id: str | None = None,
        worker: str = "langchain",
        lease_s: float = 0.0,
        raise_error: bool = True,
    ) -> None:
        self._connection = connection_of(db)
        self.agent = agent
        self.thread_id = thread_id
        self.worker = worker
        self.lease_s = lease_s
        self.raise_error = raise_error
        self._lock = threading.Lock()
        self._tools: dict[UUID, tuple[str, int]] = {}
        self._models: dict[UUID, tuple[str, int]] = {}
        self._runs: dict[UUID, tuple[str, int]] = {}
        self._nodes: set[UUID] = set()

    @classmethod
    def from_url(
        cls,
        url: str,
        database: str,
        *,
        agent: str,
        token: str | None = None,
        thread_id: str | None = None,
        worker: str = "langchain",
    ) -> CosmictronCallbackHandler:
        """A handler over the SDK (``token``: an identity that may call the reducers)."""
        return cls(
            RemoteConnection(url, database, token), agent=agent, thread_id=thread_id, worker=worker
        )

    def close(self) -> None:
        """Close the server connection ``from_url`` opened."""
        self._connection.close()

    def _thread(self, metadata: dict[str, Any] | None) -> str:
        thread = self.thread_id or (metadata or {}).get("thread_id")
        if not thread:
            raise ValueError(
                "CosmictronCallbackHandler needs a thread: pass thread_id=..., or run "
                "under LangGraph with a thread_id in the config"
            )
        return str(thread)

    # -- tools ------------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record the call under the model's tool call id (else the run id) and lease
        it to this handler's worker."""
        call_id = kwargs.get("tool_call_id") or f"run-{run_id}"
        name = (serialized or {}).get("name") or kwargs.get("name") or "tool"
        arguments = _json(inputs if inputs is not None else {"input": input_str})
        claimed = self._connection.call(
            "start_tool_call",
            str(call_id),
            self._thread(metadata),
            self.agent,
            str(name),
            self.worker,
            arguments,
            self.lease_s,
        )
        with self._lock:
            self._tools[run_id] = (str(call_id), int(field_of(claimed, "attempt")))

    def on_tool_end(
        self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        with self._lock:
            call_id, attempt = self._tools.pop(run_id)
        self._connection.call("complete_tool_call", call_id, attempt, _result_text(output), None)

    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        with self._lock:
            started = self._tools.pop(run_id, None)
        if started is None:  # the start itself failed: nothing to complete
            return
        message = str(error) or type(error).__name__
        self._connection.call("complete_tool_call", started[0], started[1], None, message)

    # -- models -----------------------------------------------------------------------

    def _model_started(
        self,
        serialized: dict[str, Any] | None,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: dict[str, Any] | None,
        inputs: int,
    ) -> None:
        thread = self._thread(metadata)
        name = (serialized or {}).get("name") or (metadata or {}).get("ls_model_name") or ""
        payload = {
            "run_id": str(run_id),
            "parent_run_id": str(parent_run_id or ""),
            "model": name,
            "inputs": inputs,
        }
        seq = self._connection.call(
            "record_agent_step",
            thread,
            self.agent,
            "running",
            f"model {name}".strip(),
            "model.started",
            _json(payload),
            0,
            f"model.started:{run_id}",
        )
        with self._lock:
            self._models[run_id] = (thread, int(seq))

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_started(
            serialized, run_id, parent_run_id, metadata, sum(len(m) for m in messages)
        )

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_started(serialized, run_id, parent_run_id, metadata, len(prompts))

    def _model_finished(self, run_id: UUID, kind: str, payload: dict[str, Any]) -> None:
        with self._lock:
            started = self._models.pop(run_id, None)
        if started is None:
            return
        thread, seq = started
        failed = kind == "model.failed"
        self._connection.call(
            "record_agent_step",
            thread,
            self.agent,
            "error" if failed else "running",
            payload["error"] if failed else "model answered",
            kind,
            _json({"run_id": str(run_id), **payload}),
            seq,
            f"{kind}:{run_id}",
        )

    # -- chains (a run, LangGraph's nodes) ---------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """A run's start moves the agent to ``running``; so does each LangGraph node's
        (one step each, the node in the summary). Chains without a known thread (a
        plain LangChain chain and no ``thread_id``) are not recorded."""
        thread = self.thread_id or (metadata or {}).get("thread_id")
        if not thread:
            return
        name = kwargs.get("name") or (serialized or {}).get("name") or "run"
        node = (metadata or {}).get("langgraph_node")
        if parent_run_id is None:
            kind, summary = "run.started", f"run {name}"
        elif node and name == node:
            with self._lock:
                inside = parent_run_id in self._nodes
                self._nodes.add(run_id)
            if inside:  # the node's runnable inside its run (ToolNode): one step
                return
            kind, summary = "node.started", f"node {node}"
        else:
            return  # a chain inside a node: its models and tools are the steps
        seq = self._connection.call(
            "record_agent_step",
            str(thread),
            self.agent,
            "running",
            summary,
            kind,
            _json({"run_id": str(run_id), "name": str(name)}),
            0,
            f"{kind}:{run_id}",
        )
        if parent_run_id is None:
            with self._lock:
                self._runs[run_id] = (str(thread), int(seq))

    def on_chain_end(
        self,
        outputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A run's end moves the agent to ``done`` (``pending`` when LangGraph stopped
        at an interrupt, waiting to be resumed)."""
        interrupted = isinstance(outputs, dict) and "__interrupt__" in outputs
        if interrupted:
            self._run_finished(run_id, "pending", "run.interrupted", "waiting at an interrupt")
        else:
            self._run_finished(run_id, "done", "run.finished", "run finished")

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A run's error moves the agent to ``error``; LangGraph's interrupt (raised as
        ``GraphInterrupt``, a ``GraphBubbleUp``) to ``pending`` instead."""
        if any(c.__name__ == "GraphBubbleUp" for c in type(error).__mro__):
            self._run_finished(run_id, "pending", "run.interrupted", "waiting at an interrupt")
        else:
            message = str(error) or type(error).__name__
            self._run_finished(run_id, "error", "run.failed", message)

    def _run_finished(self, run_id: UUID, status: str, kind: str, summary: str) -> None:
        with self._lock:
            self._nodes.discard(run_id)
            started = self._runs.pop(run_id, None)
        if started is None:  # not a run this handler recorded the start of
            return
        thread, seq = started
        self._connection.call(
            "record_agent_step",
            thread,
            self.agent,
            status,
            summary,
            kind,
            _json({"run_id": str(run_id)}),
            seq,
            f"{kind}:{run_id}",
        )

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_finished(run_id, "model.finished", {"generations": _generations(response)})

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_finished(run_id, "model.failed", {"error": str(error) or type(error).__name__})
