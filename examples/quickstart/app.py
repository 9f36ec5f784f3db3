"""A small chat-and-tasks module: the example every Cosmictron guide starts from."""

import logging

from cosmictron import ReducerContext, Timestamp, field, init, reducer, table

log = logging.getLogger(__name__)


@table(name="agent_message", public=True, event=True)
class AgentMessage:
    id: int = field(primary_key=True, auto_inc=True)
    role: str = ""
    content: str = ""
    sent_at: Timestamp = field(default=Timestamp(0))


@table(name="task", public=True)
class Task:
    id: int = field(primary_key=True, auto_inc=True)
    title: str = field(unique=True)
    done: bool = False
    priority: int = field(index="btree", default=0)


@init
def seed(ctx: ReducerContext) -> None:
    ctx.db.task.insert(Task(title="Read the Cosmictron tutorial", priority=1))


@reducer
def run_agent(ctx: ReducerContext, prompt: str) -> int:
    """Record a user prompt; returns the new message id."""
    row = AgentMessage.insert(AgentMessage(role="user", content=prompt, sent_at=ctx.timestamp))
    log.info("message %d recorded", row.id)
    return row.id


@reducer
def add_task(ctx: ReducerContext, title: str, priority: int = 0) -> Task:
    """Add a task, or set the priority of the task that already has this title.

    An upsert, so that the commands ``scripts/start`` prints work every time they are run.
    """
    if not title.strip():
        raise ValueError("a task needs a title")
    existing = ctx.db.task.title.find(title)
    if existing is not None:
        existing.priority = priority
        return ctx.db.task.id.update(existing)
    return ctx.db.task.insert(Task(title=title, priority=priority))


@reducer
def complete_task(ctx: ReducerContext, task_id: int) -> None:
    task = ctx.db.task.id.find(task_id)
    if task is None:
        raise LookupError(f"no task {task_id}")
    task.done = True
    ctx.db.task.id.update(task)
