"""The MCP tools of a database: read the schema, run SQL, call a reducer, search memory.

Each tool is the HTTP route of the same name run with the caller of the MCP request:
the same identity (the bearer token), the same rate buckets (``take_rate``), the same
query budget and time limit, the same row-level security, private tables and reducer
rights (all of which ``Database.sql`` and the call queue enforce for ``sender``), and
the same body limits (``call_body_bytes_max`` for a call's arguments, the SQL limits
inside ``Database.sql``). A failure is a ``CosmictronError``; ``tool_error`` turns it
into an MCP tool result with ``is_error`` set, our ``code`` and ``message`` (as text,
and as ``{"error": {"code", "message"}}`` in the structured content), exactly the
document the HTTP API answers.

Tool results carry the JSON document the HTTP route would answer, both as text (what a
model reads) and as structured content (what a program reads).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from aiohttp import web

from cosmictron import bounded_json
from cosmictron.errors import CosmictronError, InvalidRequest, TooLarge, error_document
from cosmictron.query.budget import QueryBudget
from cosmictron.server import bodies, routes
from cosmictron.server.auth import ANONYMOUS
from cosmictron.server.registry import HostedDatabase
from cosmictron.server.replies import small
from cosmictron.server.throttle import throttle_of
from cosmictron.server.wire import row_to_json
from cosmictron.values import Identity, json_form

DESCRIBE_SCHEMA = "describe_schema"
RUN_SQL = "run_sql"
CALL_REDUCER = "call_reducer"
SEARCH_MEMORY = "search_memory"

RECALL = "recall"
"""The procedure ``search_memory`` calls (``cosmictron.agents``)."""


@dataclass(frozen=True)
class McpCaller:
    """Who asks, about which database, through which HTTP request (for its rate limits)."""

    request: web.Request
    caller: Identity
    database: HostedDatabase


def has_memory(database: HostedDatabase) -> bool:
    """Whether the module includes ``cosmictron.agents``' memory (its table and ``recall``)."""
    module = database.db.module
    tables = database.db.schema.tables
    return RECALL in module.procedures and any(table.name == "memory" for table in tables)


def tool_list(database: HostedDatabase) -> list[types.Tool]:
    """The tools of ``database``: ``search_memory`` only when its module has memory."""
    name = database.name
    tools = [
        types.Tool(
            name=DESCRIBE_SCHEMA,
            description=(
                f"The schema of database {name!r}: its tables (columns, types, keys, "
                "indexes, whether public) and its reducers and procedures (parameters)."
            ),
            input_schema={"type": "object", "properties": {}, "additionalProperties": False},
            annotations=types.ToolAnnotations(read_only_hint=True),
        ),
        types.Tool(
            name=RUN_SQL,
            description=(
                f"Run one SQL statement on database {name!r} as the caller: SELECT (with "
                "JOIN, ORDER BY, LIMIT), or INSERT/UPDATE/DELETE where the caller may write. "
                "Named parameters are written :name and given in params."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "One SQL statement."},
                    "params": {
                        "type": "object",
                        "description": "Values of the :name parameters of the statement.",
                    },
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        ),
        types.Tool(
            name=CALL_REDUCER,
            description=(
                f"Call a reducer (a transaction) or procedure of database {name!r} as the "
                "caller; returns its return value and the transaction's offset. See "
                f"{DESCRIBE_SCHEMA} for the reducers and their parameters."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "reducer": {"type": "string", "description": "The reducer's name."},
                    "args": {
                        "type": ["array", "object"],
                        "description": "Arguments: an array (positional) or object (by name).",
                    },
                },
                "required": ["reducer"],
                "additionalProperties": False,
            },
            annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True),
        ),
    ]
    if has_memory(database):
        tools.append(
            types.Tool(
                name=SEARCH_MEMORY,
                description=(
                    f"Semantic search of the memory of database {name!r} (cosmictron.agents' "
                    "recall): the k memories nearest the query text, best first, with their "
                    "cosine similarity."
                ),
                input_schema={
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "The text to search for."},
                        "namespace_prefix": {
                            "type": "string",
                            "description": "Only memories whose namespace starts with this.",
                            "default": "",
                        },
                        "k": {"type": "integer", "minimum": 1, "default": 5},
                        "filter": {
                            "type": "object",
                            "description": "Metadata keys and values every hit must have.",
                        },
                    },
                    "required": ["query"],
                    "additionalProperties": False,
                },
                annotations=types.ToolAnnotations(read_only_hint=True),
            )
        )
    return tools


Encoded = tuple[dict[str, Any], str]
"""A tool's document and its strict JSON text (``bounded_json.dumps``)."""


async def call_tool(who: McpCaller, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    """Run tool ``name``; a ``CosmictronError`` (also one met encoding the result, such as
    ``not_finite``) becomes an error result, never a raise."""
    try:
        if name == DESCRIBE_SCHEMA:
            no_arguments(name, arguments)
            document = routes.schema_document(who.database, who.caller)
            result = (document, bounded_json.dumps(document))
        elif name == RUN_SQL:
            result = await run_sql(who, arguments)
        elif name == CALL_REDUCER:
            result = await call_reducer(who, arguments)
        elif name == SEARCH_MEMORY and has_memory(who.database):
            result = await search_memory(who, arguments)
        else:
            known = ", ".join(tool.name for tool in tool_list(who.database))
            raise InvalidRequest(f"no tool named {name!r} (tools: {known})")
    except CosmictronError as error:
        return tool_error(error, show_traceback=who.caller == who.database.db.owner)
    return tool_result(*result)


async def encoded(document: dict[str, Any], payload: Any) -> Encoded:
    """``document`` with its text, encoded on a worker thread unless ``payload`` (the part
    whose size a caller controls) is surely small, as the call route's reply is."""
    if small(payload):
        return document, bounded_json.dumps(document)
    return document, await asyncio.to_thread(bounded_json.dumps, document)


def tool_result(document: dict[str, Any], text: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content=document, is_error=False
    )


def tool_error(error: CosmictronError, show_traceback: bool) -> types.CallToolResult:
    """The error as the HTTP API words it: ``code: message`` for a model to read, and
    ``{"error": {"code", "message"}}`` for a program."""
    document = error_document(error, show_traceback=show_traceback)
    return types.CallToolResult(
        content=[types.TextContent(text=f"{document['code']}: {document['message']}")],
        structured_content={"error": document},
        is_error=True,
    )


def no_arguments(name: str, arguments: dict[str, Any]) -> None:
    if arguments:
        raise InvalidRequest(f"tool {name!r} takes no arguments, got {sorted(arguments)}")


def only(name: str, arguments: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(arguments) - set(allowed))
    if unknown:
        raise InvalidRequest(
            f"tool {name!r} has no argument {unknown[0]!r} (arguments: {', '.join(allowed)})"
        )


def string_argument(name: str, arguments: dict[str, Any], key: str, default: str | None) -> str:
    value = arguments.get(key, default)
    if value is None:
        raise InvalidRequest(f"tool {name!r} needs the argument {key!r}")
    if not isinstance(value, str):
        raise InvalidRequest(f"tool {name!r} argument {key!r} must be a string")
    return value


async def run_sql(who: McpCaller, arguments: dict[str, Any]) -> Encoded:
    """``POST /v1/database/{name}/sql`` with a JSON body ``{"query", "params"}``."""
    only(RUN_SQL, arguments, ("query", "params"))
    routes.take_rate(who.request, "queries", who.caller)
    query = string_argument(RUN_SQL, arguments, "query", None)
    if not query.strip():
        raise InvalidRequest("the query is empty: send one SQL statement")
    text, params = routes.json_query({"query": query, "params": arguments.get("params")})
    budget = throttle_of(who.request).settings.query_budget(who.caller == ANONYMOUS)
    database = who.database
    return await database.run(sql_document, database, text, params, who.caller, budget)


def sql_document(
    database: HostedDatabase,
    text: str,
    params: dict[str, Any],
    caller: Identity,
    budget: QueryBudget,
) -> Encoded:
    """Run the statement as ``caller`` and encode its result, both on the database's
    thread as the SQL route does: many rows take long to convert and encode."""
    result = database.db.sql(text, params or None, sender=caller, budget=budget)
    document = {
        "columns": list(result.columns),
        "rows": [row_to_json(row, result.columns) for row in result.rows],
        "rows_affected": result.rows_affected,
        "tx_offset": result.tx_offset,
    }
    return document, bounded_json.dumps(document)


async def call_reducer(who: McpCaller, arguments: dict[str, Any]) -> Encoded:
    """``POST /v1/database/{name}/call/{reducer}`` with ``args`` as its body."""
    only(CALL_REDUCER, arguments, ("reducer", "args"))
    reducer = string_argument(CALL_REDUCER, arguments, "reducer", None)
    args = arguments.get("args")
    limit = bodies.call_body_bytes_max()
    size = len(bounded_json.dumps(args).encode()) if args is not None else 0
    if size > limit:
        raise TooLarge(
            f"the arguments of reducer {reducer!r} have {size} bytes as JSON; the limit "
            f"for a call is {limit} bytes (call_body_bytes_max)"
        )
    document = await call(who, reducer, args)
    return await encoded(document, document["return_value"])


async def call(who: McpCaller, reducer: str, args: Any) -> dict[str, Any]:
    """Call ``reducer`` (or a procedure) as the caller, as the call route does."""
    routes.take_rate(who.request, "calls", who.caller)
    binding = routes.callable_binding(who.database, reducer)
    positional, named = routes.converter_of(binding)(args)
    future = routes.submit_call(who.database, reducer, positional, named, who.caller, None)
    assert future is not None
    outcome = await future
    return {
        "return_value": json_form(outcome.return_value),
        "tx_offset": outcome.tx_offset,
        "timestamp": outcome.timestamp.isoformat(),
    }


async def search_memory(who: McpCaller, arguments: dict[str, Any]) -> Encoded:
    """``recall(namespace_prefix, query, k, filter)``, called as the caller."""
    only(SEARCH_MEMORY, arguments, ("query", "namespace_prefix", "k", "filter"))
    query = string_argument(SEARCH_MEMORY, arguments, "query", None)
    prefix = string_argument(SEARCH_MEMORY, arguments, "namespace_prefix", "")
    k = arguments.get("k", 5)
    if not isinstance(k, int) or isinstance(k, bool):
        raise InvalidRequest(f"tool {SEARCH_MEMORY!r} argument 'k' must be an integer")
    wanted = arguments.get("filter") or {}
    if not isinstance(wanted, dict):
        raise InvalidRequest(f"tool {SEARCH_MEMORY!r} argument 'filter' must be an object")
    recalled = await call(
        who,
        RECALL,
        {"namespace_prefix": prefix, "query": query, "k": k, "filter": bounded_json.dumps(wanted)},
    )
    hits = recalled["return_value"]
    return await encoded({"hits": hits}, hits)
