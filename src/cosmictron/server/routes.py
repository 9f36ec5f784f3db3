"""The HTTP routes of DESIGN.md §5 (docs/reference/http.md is the user's account).

Every handler finds the caller (``auth.caller_of``), runs database work on that
database's threads (``HostedDatabase.run``) and replies JSON. Errors are raised as
``CosmictronError`` and turned into a status and ``{"error": {"code", "message"}}`` by
``app.errors_as_json``, so no handler formats an error itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web

from cosmictron import __version__, bounded_json, limits, names
from cosmictron.errors import (
    InvalidRequest,
    NotFinite,
    NotLeader,
    PermissionDenied,
    Unauthenticated,
    unknown_reducer,
)
from cosmictron.module import is_sandboxed
from cosmictron.query import QueryResult
from cosmictron.query.budget import QueryBudget
from cosmictron.server import bodies, deploy_engine
from cosmictron.server.auth import ANONYMOUS, TokenAuthority
from cosmictron.server.calls import CallDone
from cosmictron.server.console import ledger_summary, module_summary
from cosmictron.server.registry import DatabaseRegistry, HostedDatabase
from cosmictron.server.replies import (
    SHOWS_TRACEBACK,
    encoded_response,
    json_reply,
    json_response,
)
from cosmictron.server.rights import OPEN_SANDBOXED_DEPLOYS, Rights
from cosmictron.server.throttle import caller_key, throttle_of
from cosmictron.server.wire import arrives_as_is, from_json, row_to_json, wide_int_positions
from cosmictron.values import ConnectionId, Identity, json_form

REGISTRY = web.AppKey("registry", DatabaseRegistry)
AUTHORITY = web.AppKey("authority", TokenAuthority)
RIGHTS = web.AppKey("rights", Rights)
ModuleUpdateHook = Callable[[HostedDatabase, dict[str, Any]], None]
MODULE_UPDATE_HOOKS: web.AppKey[list[ModuleUpdateHook]] = web.AppKey("module_update_hooks")
"""Told of every module update a deploy made (the database and its migration report),
on the event loop, once the update is durable: ``websocket.setup`` adds the one that
sends ``ModuleUpdated`` to the database's WebSocket clients."""


def caller_of(request: web.Request) -> Identity:
    """The identity a request's token proves; ``ANONYMOUS`` without a token."""
    header = request.headers.get("Authorization")
    token = request.query.get("token")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        token = value.strip()
    if token is None:
        return ANONYMOUS
    return request.app[AUTHORITY].verify(token)


def hosted(request: web.Request) -> HostedDatabase:
    return request.app[REGISTRY].get(request.match_info["name"])


def require_owner(database: HostedDatabase, caller: Identity, action: str) -> None:
    if caller != database.db.owner:
        raise PermissionDenied(f"only the owner of database {database.name!r} may {action}")


async def health(request: web.Request) -> web.Response:
    names = request.app[REGISTRY].names()
    return json_response({"status": "ok", "version": __version__, "databases": len(names)})


async def new_identity(request: web.Request) -> web.Response:
    # Per remote address: each identity has rate buckets of its own (server/throttle.py).
    throttle_of(request).take_identity(request.remote or "unknown")
    identity = Identity.random()
    token = request.app[AUTHORITY].issue(identity)
    return json_response({"identity": identity.hex(), "token": token})


async def who_am_i(request: web.Request) -> web.Response:
    caller = caller_of(request)
    rights = request.app[RIGHTS]
    return json_response(
        {
            "identity": caller.hex(),
            "anonymous": caller == ANONYMOUS,
            "operator": caller == rights.operator,
            "rights": rights.rights_of(caller),
        }
    )


async def list_databases(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    caller = caller_of(request)
    listed = []
    for name in registry.names():
        db = registry.get(name).db
        listed.append({"name": name, "owner": db.owner.hex(), "mine": db.owner == caller})
    return json_response({"databases": listed})


async def deploy(request: web.Request) -> web.Response:
    caller = caller_of(request)
    name = request.match_info["name"]
    rights = request.app[RIGHTS]
    action = f"deploy database {name!r}"
    open_sandboxed = request.app.get(OPEN_SANDBOXED_DEPLOYS, False)
    if not (open_sandboxed and caller != ANONYMOUS):
        # Before the body is read: an unauthorised module is never written, let alone imported.
        rights.require_deploy(caller, action)
    names.check_database(name)  # before the body is read
    clear = request.query.get("clear", "false").lower() in ("1", "true", "yes")
    filename = module_filename(request.query.get("filename"))
    request[SHOWS_TRACEBACK] = True  # the deployer's own code: show where it failed
    source = await request.read()
    # A JavaScript module is stamped with its engine (?engine=v8|quickjs) before the
    # rights check reads what it is, and before it is recorded.
    source = deploy_engine.module_bytes(source, request.content_type, request.query.get("engine"))
    if open_sandboxed:  # only now can the bytes say whether they are a sandboxed module
        rights.require_deploy_of(caller, action, is_sandboxed(source), open_sandboxed)
    registry = request.app[REGISTRY]
    database, created, migration = await asyncio.to_thread(
        registry.deploy, name, source, caller, clear, filename
    )
    body = {
        "database": name,
        "created": created,
        "identity": database.db.identity.hex(),
        "owner": database.db.owner.hex(),
        "tx_offset": database.db.tx_offset,
        "migration": migration,
    }
    if not created and migration is not None:
        for hook in request.app.get(MODULE_UPDATE_HOOKS, ()):
            hook(database, migration)
    return json_response(body, status=201 if created else 200)


FILENAME_CHARS_MAX = 255


def module_filename(given: str | None) -> str | None:
    """``?filename=`` of a deploy: the module's file name as its user typed it, shown in
    its load errors, tracebacks and log; printable text, at most 255 characters."""
    if given is None:
        return None
    if not given or len(given) > FILENAME_CHARS_MAX or not given.isprintable():
        raise InvalidRequest(
            f"filename must be 1 to {FILENAME_CHARS_MAX} printable characters (the module's "
            f"file name, as shown in its errors)"
        )
    return given


async def delete(request: web.Request) -> web.Response:
    caller = caller_of(request)
    registry = request.app[REGISTRY]
    registry.get(request.match_info["name"])  # 404 before 403
    await asyncio.to_thread(registry.delete, request.match_info["name"], caller)
    return json_response({"database": request.match_info["name"], "deleted": True})


async def schema(request: web.Request) -> web.Response:
    return json_response(schema_document(hosted(request), caller_of(request)))


def schema_document(database: HostedDatabase, caller: Identity) -> dict[str, Any]:
    """What ``GET /v1/database/{name}/schema`` answers; the MCP tool ``describe_schema``
    answers the same, so the two cannot drift apart. Only the owner sees private tables."""
    db = database.db
    return {
        "database": database.name,
        "identity": db.identity.hex(),
        "owner": db.owner.hex(),
        "tx_offset": db.tx_offset,
        **db.schema.describe(private=caller == db.owner),
        # The running module's hash, file name and deploy time (the web console).
        "module": module_summary(db.path, db.module.source, db.module.filename),
        "ledger": ledger_summary(db.core.persistence.ledger),
    }


async def call(request: web.Request) -> web.Response:
    caller = caller_of(request)
    database = hosted(request)
    take_rate(request, "calls", caller)
    reducer = request.match_info["reducer"]
    request[SHOWS_TRACEBACK] = caller == database.db.owner  # docs/design/errors.md
    binding = callable_binding(database, reducer)
    # Decoded and converted on a worker thread when large (bodies.json_body).
    convert = converter_of(binding)
    args, kwargs = await bodies.json_body(request, bodies.call_body_bytes_max(), convert)
    future = submit_call(database, reducer, args, kwargs, caller, None)
    assert future is not None
    outcome = await future

    def reply() -> dict[str, Any]:
        return {
            "return_value": json_form(outcome.return_value),
            "tx_offset": outcome.tx_offset,
            "timestamp": outcome.timestamp.isoformat(),
        }

    return await json_reply(reply, outcome.return_value)


def callable_binding(database: HostedDatabase, name: str) -> Any:
    """The reducer or procedure ``name`` (one namespace); ``NotFound`` listing both."""
    module = database.db.module
    binding = module.reducers.get(name) or module.procedures.get(name)
    if binding is None:
        names.check_reducer(name)  # 400 for a name no reducer could have
        raise unknown_reducer(name, [*module.reducers, *module.procedures])
    return binding


def submit_call(
    database: HostedDatabase,
    name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    caller: Identity,
    connection_id: ConnectionId | None,
    then: CallDone | None = None,
) -> asyncio.Future[Any] | None:
    """Start a reducer on the database's call thread, or a procedure on its own threads;
    the future resolves with the ``CallOutcome`` once durable. Event loop only. With
    ``then``, a reducer's result goes to it on the loop instead and None is returned (a
    procedure still returns its future).

    A procedure is not queued with the reducer calls: its I/O may take seconds and must
    not hold up the calls behind it (host/procedures.py).
    """
    if database.follower is not None:  # a replica runs no reducer (cluster/follower.py)
        raise database.db.core.persistence.commit_refusal or NotLeader(database.name)
    db = database.db
    if name in db.module.procedures:
        handle = db.start_procedure(name, args, kwargs, sender=caller, connection_id=connection_id)
        return asyncio.ensure_future(handle.wait())
    if then is not None:
        database.calls.submit_then(name, args, kwargs, caller, connection_id, then)
        return None
    return database.calls.submit(name, args, kwargs, caller, connection_id)


Converter = Callable[[Any], tuple[list[Any], dict[str, Any]]]
_CONVERTERS: dict[int, tuple[Any, Converter]] = {}
"""Each binding's argument converter, made once (keyed by the binding's id; the binding
is held, so the id stays its own)."""
_CONVERTERS_MAX = 1024


def converter_of(binding: Any) -> Converter:
    """``reducer_arguments`` for ``binding``'s schema, with what can be decided once
    (whether every parameter arrives as is) decided once, not per call."""
    entry = _CONVERTERS.get(id(binding))
    if entry is None or entry[0] is not binding:
        if len(_CONVERTERS) >= _CONVERTERS_MAX:  # modules deployed again and again
            _CONVERTERS.clear()
        schema = binding.schema
        plain = all(arrives_as_is(param.type) for param in schema.params)
        ints = wide_int_positions([param.type for param in schema.params])
        entry = (binding, partial(reducer_arguments, schema, plain=plain, ints=ints))
        _CONVERTERS[id(binding)] = entry
    return entry[1]


def argument_converter(module: Any, name: str) -> Converter:
    """The argument converter of the reducer or procedure ``name`` of ``module``.

    Raises:
        NotFound: no reducer or procedure of that name (listing them).
    """
    binding = module.reducers.get(name) or module.procedures.get(name)
    if binding is None:
        raise unknown_reducer(name, [*module.reducers, *module.procedures])
    return converter_of(binding)


def reducer_arguments(
    schema: Any, body: Any, plain: bool = False, ints: tuple[int, ...] = ()
) -> tuple[list[Any], dict[str, Any]]:
    """JSON (or msgpack) arguments (an array, an object, or nothing) as Python values.

    ``plain``: every parameter's type arrives as is (``wire.arrives_as_is``), so an
    array of arguments needs no conversion (the reducer's own checks still run), unless
    an integer parameter (at a position in ``ints``) came as a decimal string.
    """
    if body is None:
        return [], {}
    if isinstance(body, list):
        if plain and len(body) <= len(schema.params):
            for i in ints:  # a loop, not any(...): no generator frame on every call
                if i < len(body) and type(body[i]) is str:
                    break
            else:
                return body, {}
        if len(body) > len(schema.params):
            shown = ", ".join(f"{p.name}: {p.type.name}" for p in schema.params)
            raise InvalidRequest(
                f"reducer {schema.name!r} takes {len(schema.params)} arguments ({shown}), "
                f"got {len(body)}"
            )
        return [
            from_json(value, param.type, f"reducer {schema.name!r} argument {param.name!r}")
            for param, value in zip(schema.params, body, strict=False)
        ], {}
    if isinstance(body, dict):
        params = {param.name: param for param in schema.params}
        kwargs = {}
        for key, value in body.items():
            param = params.get(key)
            if param is None:
                known = ", ".join(params) or "none"
                raise InvalidRequest(
                    f"reducer {schema.name!r} has no argument {key!r} (arguments: {known})"
                )
            kwargs[key] = from_json(value, param.type, f"reducer {schema.name!r} argument {key!r}")
        return [], kwargs
    raise InvalidRequest(
        "the arguments must be a JSON array (positional) or object (by name), "
        f"not {type(body).__name__}"
    )


@dataclass(frozen=True)
class SqlBody:
    """A SQL request's statements: one (the text, or JSON ``{"query", "params"}``), or a
    transaction (JSON ``{"statements": [{"query", "params"}, ...], "expect": [...]}``):
    its statements applied as one transaction, all or none."""

    statements: list[tuple[str, dict[str, Any]]]
    transaction: bool = False
    expect: list[int | None] | None = None
    """Per statement, the rows it must change (``null``: any), else nothing is applied
    (409): how a PostgreSQL transaction block forwarded at ``COMMIT`` keeps the row
    counts its client was told (docs/design/pgwire.md, "Transaction blocks")."""


SQL_QUERY: web.RequestKey[SqlBody] = web.RequestKey("sql_query", SqlBody)
"""The SQL request, when ``server/forwarding.py`` read it already (to tell a read,
served here, from a write, forwarded to the leader)."""


async def sql(request: web.Request) -> web.Response:
    caller = caller_of(request)
    database = hosted(request)
    take_rate(request, "queries", caller)
    body = request.get(SQL_QUERY) or await sql_request(request)
    budget = throttle_of(request).settings.query_budget(caller == ANONYMOUS)
    if body.transaction:
        reply = await database.run(_sql_transaction, database, body, caller, budget)
    else:
        text, params = body.statements[0]
        reply = await database.run(_sql, database, text, params, caller, budget)
    return encoded_response(reply)


def _sql(
    database: HostedDatabase,
    text: str,
    params: dict[str, Any],
    caller: Identity,
    budget: QueryBudget,
) -> str:
    """Run the statement and encode its reply, both on the database's thread: a result
    of many rows takes long to convert and encode, and the event loop must not."""
    result = database.db.sql(text, params or None, sender=caller, budget=budget)
    return bounded_json.dumps({**_result_json(result), "tx_offset": result.tx_offset})


def _sql_transaction(
    database: HostedDatabase, body: SqlBody, caller: Identity, budget: QueryBudget
) -> str:
    """Run a transaction's statements as one (``Database.sql_block``) and encode each
    one's result, on the database's thread."""
    statements: list[tuple[str, Mapping[str, Any] | None]] = [
        (text, params or None) for text, params in body.statements
    ]
    results = database.db.sql_block(
        statements, sender=caller, budget=budget, apply=True, expect=body.expect
    )
    return bounded_json.dumps(
        {"results": [_result_json(r) for r in results], "tx_offset": results[-1].tx_offset}
    )


def _result_json(result: QueryResult) -> dict[str, Any]:
    return {
        "columns": list(result.columns),
        "rows": [row_to_json(row, result.columns) for row in result.rows],
        "rows_affected": result.rows_affected,
    }


def take_rate(request: web.Request, kind: str, caller: Identity) -> None:
    """Spend one of the caller's ``kind`` requests (``server/throttle.py``).

    Raises:
        RateLimited: over the caller's rate (429 with ``Retry-After``).
    """
    anonymous = caller == ANONYMOUS
    throttle_of(request).take(kind, anonymous, caller_key(request, anonymous, caller.hex()))


async def sql_request(request: web.Request) -> SqlBody:
    """The SQL request: a text/plain body, or JSON (``SqlBody``)."""
    limit = bodies.sql_body_bytes_max()
    if request.content_type == "application/json":
        # Decoded and checked on a worker thread when large (bodies.json_body).
        body: SqlBody = await bodies.json_body(request, limit, json_sql)
        return body
    text = await bodies.text_body(request, limit)
    if not text.strip():
        raise InvalidRequest("the request body is empty: send one SQL statement")
    return SqlBody([(text, {})])


def json_sql(body: Any) -> SqlBody:
    """A JSON SQL request body, checked: one query, or a transaction's statements."""
    if not isinstance(body, dict) or "statements" not in body:
        return SqlBody([json_query(body)])
    statements = body["statements"]
    most = limits.from_environment(
        "COSMICTRON_PG_BLOCK_STATEMENTS_MAX", limits.pg_block_statements_max
    )
    if not isinstance(statements, list) or not statements:
        raise InvalidRequest(
            '"statements" must be a non-empty array of {"query": "<SQL>", "params": {...}}'
        )
    if len(statements) > most:
        raise InvalidRequest(
            f"a transaction of {len(statements)} statements is over the limit of {most} "
            "(limits.pg_block_statements_max)"
        )
    expect = body.get("expect")
    if expect is not None and (
        not isinstance(expect, list)
        or len(expect) != len(statements)
        or not all(n is None or (type(n) is int and n >= 0) for n in expect)
    ):
        raise InvalidRequest('"expect" must be an array with one row count (or null) per statement')
    unknown = set(body) - {"statements", "expect"}
    if unknown:
        raise InvalidRequest(
            f"unknown key(s) {sorted(unknown)} in a SQL transaction: it is "
            '{"statements": [...], "expect": [...]}'
        )
    return SqlBody([json_query(one) for one in statements], True, expect)


def json_query(body: Any) -> tuple[str, dict[str, Any]]:
    """The text and parameters of a JSON SQL request body, checked."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise InvalidRequest('a JSON SQL request is {"query": "<SQL>", "params": {...}}')
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise InvalidRequest('"params" must be a JSON object of parameter values')
    check_finite_params(params)
    return body["query"], params


def check_finite_params(params: dict[str, Any]) -> None:
    """Refuse a parameter holding ``NaN``, ``Infinity`` or a number past the float range
    (``1e400`` decodes to infinity): untyped, nothing else would stop it reaching a reply.

    Raises:
        NotFinite: naming the parameter (400, ``not_finite``).
    """
    for name, value in params.items():
        found = bounded_json.first_non_finite(value)
        if found is not None:
            raise NotFinite(
                f"SQL parameter {name!r} is {found!r}: NaN and the infinities (and numbers "
                "past the float range, which overflow to them) are not accepted"
            )
