"""The WebSocket messages of DESIGN.md §5, parsed, and the two encodings they travel in.

Subprotocol ``v1.json.cosmictron``: every frame is one JSON object (a text frame) with a
single key naming its kind; the value holds the fields. ``v1.msgpack.cosmictron``: the
same messages msgpack-encoded, one per binary frame, with bytes as ``bin``
(``bounded_msgpack``). A ``Codec`` is one of the two: how a connection decodes what it
receives, forms values and encodes what it sends; the client picks it in the handshake.

``parse`` turns a client's frame into one of the four request classes, or raises
``ProtocolError`` carrying whatever of ``request_id``/``query_id`` it could read, so the
session can answer with the reply kind that fits the request (docs/reference/websocket.md,
"Errors"). Building server messages is plain dicts; ``reply_for_error`` is the one rule
that maps a bad request to its error reply.

Two shortcuts serve the one message a client sends most, on the event loop, each giving
exactly what the general path gives: ``call_fields`` reads a decoded ``CallReducer``
whose fields have the right types without building a request object (anything else goes
to ``parse_message``, which names the problem), and a codec's ``committed`` encodes a
committed ``ReducerResult`` with a scalar return value from fixed text around its three
values, byte for byte what encoding ``reducer_result(...)`` makes (or None: encode that).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from cosmictron import bounded_json, bounded_msgpack, names
from cosmictron.errors import InvalidRequest
from cosmictron.values import MAX_SAFE_INTEGER, Timestamp, json_form

JSON_PROTOCOL = "v1.json.cosmictron"
MSGPACK_PROTOCOL = "v1.msgpack.cosmictron"
PROTOCOL = JSON_PROTOCOL
"""The subprotocol named when a client offers none we speak (the browsers' and curl's)."""
PROTOCOLS = (JSON_PROTOCOL, MSGPACK_PROTOCOL)
"""Every WebSocket subprotocol the server speaks; the client's order of offer decides."""


@dataclass(frozen=True)
class Codec:
    """One subprotocol's encoding: frames in, values' forms, frames out."""

    protocol: str
    binary: bool
    """Messages travel in binary frames (else text)."""
    decode: Callable[[Any, str], Any]
    """``(frame data, what)`` -> the message; ``InvalidRequest`` when it is not one."""
    form: Callable[[Any], Any]
    """A Python value -> its form in this encoding (``values.json_form`` or msgpack's)."""
    encode: Callable[[Any], str | bytes]
    """A message of forms -> the frame's data."""
    container: str
    """What this encoding calls a message's outer map, for error messages."""
    committed: Callable[[Any, Any, Any], str | bytes | None]
    """``(request_id, return value, tx_offset)`` -> the committed ``ReducerResult``'s
    frame, or None when a value is not a plain scalar (encode ``reducer_result`` then)."""


_JSON_RESULT = (
    '{"ReducerResult": {"request_id": ',
    ', "status": "committed", "return_value": ',
    ', "error": null, "tx_offset": ',
    "}}",
)


def _json_scalar(value: Any, forms: bool) -> str | None:
    """``json.dumps`` of a scalar (of its ``json_form`` when ``forms``), or None."""
    kind = type(value)
    if kind is int:
        if forms and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return f'"{value}"'  # json_form: a decimal string past JavaScript's range
        return int.__repr__(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return None


def _json_committed(request_id: Any, value: Any, tx_offset: Any) -> str | None:
    # An integer id, offset and small integer value are the usual case: no calls for them.
    rid = int.__repr__(request_id) if type(request_id) is int else _json_scalar(request_id, False)
    if type(value) is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        returned: str | None = int.__repr__(value)
    else:
        returned = _json_scalar(value, True)
    offset = int.__repr__(tx_offset) if type(tx_offset) is int else _json_scalar(tx_offset, False)
    if rid is None or returned is None or offset is None:
        return None
    head, status, tail, end = _JSON_RESULT
    return head + rid + status + returned + tail + offset + end


_MSGPACK_RESULT = (
    b"\x81"
    + bounded_msgpack.dumps("ReducerResult")
    + b"\x85"
    + bounded_msgpack.dumps("request_id"),
    bounded_msgpack.dumps("status")
    + bounded_msgpack.dumps("committed")
    + bounded_msgpack.dumps("return_value"),
    bounded_msgpack.dumps("error")
    + bounded_msgpack.dumps(None)
    + bounded_msgpack.dumps("tx_offset"),
)
_MSGPACK_INT_MIN = -(2**63)
_MSGPACK_UINT_MAX = 2**64 - 1


def _msgpack_plain(value: Any) -> bool:
    """A scalar that is its own msgpack form and packs as msgpack's own type."""
    kind = type(value)
    if kind is int:
        return _MSGPACK_INT_MIN <= value <= _MSGPACK_UINT_MAX
    return kind is str or kind is float or kind is bool or value is None


def _msgpack_committed(request_id: Any, value: Any, tx_offset: Any) -> bytes | None:
    if not (_msgpack_plain(request_id) and _msgpack_plain(value) and _msgpack_plain(tx_offset)):
        return None
    pack = bounded_msgpack.dumps
    head, status, tail = _MSGPACK_RESULT
    return head + pack(request_id) + status + pack(value) + tail + pack(tx_offset)


JSON = Codec(
    JSON_PROTOCOL,
    False,
    bounded_json.loads,
    json_form,
    bounded_json.dumps,
    "JSON object",
    _json_committed,
)
MSGPACK = Codec(
    MSGPACK_PROTOCOL,
    True,
    bounded_msgpack.loads,
    bounded_msgpack.form,
    bounded_msgpack.dumps,
    "msgpack map",
    _msgpack_committed,
)
CODECS = {codec.protocol: codec for codec in (JSON, MSGPACK)}

RequestId = int | str | None
QueryId = int | str


@dataclass(frozen=True)
class Subscribe:
    request_id: RequestId
    query_id: QueryId
    query_strings: list[str]
    since_tx_offset: int | None = None
    ledger: bool = False
    """Opt in to each update's ledger seq and leaf hash and to ``LedgerCheckpoint``
    messages (docs/reference/websocket.md, "Verifying as you go")."""
    ledger_from_size: int | None = None
    """The tree size of the last checkpoint the client verified: the first
    ``LedgerCheckpoint`` proves consistency from it."""


@dataclass(frozen=True)
class Unsubscribe:
    request_id: RequestId
    query_id: QueryId


@dataclass(frozen=True)
class CallReducer:
    request_id: RequestId
    reducer: str
    args: Any


@dataclass(frozen=True)
class OneOffQuery:
    request_id: RequestId
    query_string: str
    params: dict[str, Any] | None = None
    """Named SQL parameters (``:name``), as ``POST …/sql``'s JSON ``params``."""


ClientMessage = Subscribe | Unsubscribe | CallReducer | OneOffQuery
KINDS = ("CallReducer", "OneOffQuery", "Subscribe", "Unsubscribe")


class ProtocolError(InvalidRequest):
    """A client frame that is not a valid request; carries what could be read of it."""

    code = "protocol_error"

    def __init__(
        self,
        message: str,
        kind: str | None = None,
        request_id: RequestId = None,
        query_id: QueryId | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.request_id = request_id
        self.query_id = query_id


def parse(data: str | bytes, codec: Codec = JSON) -> ClientMessage:
    """The request a frame holds (its data: text for JSON, bytes for msgpack).

    Raises:
        ProtocolError: not JSON (msgpack), not a one-key object, an unknown kind, or a
            missing or mistyped field; the message names the problem.
    """
    try:
        frame = codec.decode(data, "the message")
    except InvalidRequest as exc:  # not decodable, or nested past limits.json_depth_max
        raise ProtocolError(str(exc)) from None
    return parse_message(frame, codec)


def call_fields(frame: Any) -> tuple[RequestId, str, Any] | None:
    """``(request_id, reducer, args)`` of a decoded frame that is a ``CallReducer`` whose
    ``request_id`` is an integer or a string and whose ``reducer`` is a string; else None.

    ``parse_message`` accepts such a frame as ``CallReducer(request_id, reducer, args)``
    when ``reducer`` is a valid name, which the caller must check (a reducer of the
    module has one); anything else goes to ``parse_message``, which names the problem.
    """
    if type(frame) is not dict or len(frame) != 1:
        return None
    body = frame.get("CallReducer")
    if type(body) is not dict:
        return None
    request_id = body.get("request_id")
    kind = type(request_id)
    if kind is not int and kind is not str:
        return None
    reducer = body.get("reducer")
    if type(reducer) is not str:
        return None
    return request_id, reducer, body.get("args")


def parse_message(frame: Any, codec: Codec = JSON) -> ClientMessage:
    """The request a decoded frame holds (see ``parse``).

    Raises:
        ProtocolError: not a one-key object, an unknown kind, or a missing or mistyped
            field; the message names the problem.
    """
    if not isinstance(frame, dict) or len(frame) != 1:
        raise ProtocolError(
            f"a message is a {codec.container} with one key naming its kind "
            f'({", ".join(KINDS)}), e.g. {{"Subscribe": {{...}}}}'
        )
    ((kind, body),) = frame.items()
    if kind not in KINDS:
        raise ProtocolError(f"unknown message kind {kind!r} (kinds: {', '.join(KINDS)})")
    if not isinstance(body, dict):
        raise ProtocolError(f"the body of {kind} must be a {codec.container}", kind)
    fields = _Fields(kind, body)
    if kind == "Subscribe":
        since = fields.optional_offset("since_tx_offset")
        return Subscribe(
            fields.request_id,
            fields.query_id(),
            fields.strings("query_strings"),
            since,
            fields.optional_bool("ledger"),
            fields.optional_offset("ledger_from_size"),
        )
    if kind == "Unsubscribe":
        return Unsubscribe(fields.request_id, fields.query_id())
    if kind == "CallReducer":
        return CallReducer(fields.request_id, fields.reducer_name(), body.get("args"))
    return OneOffQuery(
        fields.request_id, fields.string("query_string"), fields.optional_object("params")
    )


class _Fields:
    """Typed access to a request's fields; errors carry the ids read so far."""

    def __init__(self, kind: str, body: dict[str, Any]) -> None:
        self.kind = kind
        self.body = body
        self.request_id: RequestId = None
        self._query_id: QueryId | None = None
        request_id = body.get("request_id")
        if request_id is None:
            raise self.error("request_id", "is missing")
        if not _is_id(request_id):
            raise self.error("request_id", "must be an integer or a string")
        self.request_id = request_id
        if _is_id(body.get("query_id")):
            self._query_id = body["query_id"]

    def error(self, name: str, problem: str) -> ProtocolError:
        return ProtocolError(
            f"{self.kind}: field {name!r} {problem}", self.kind, self.request_id, self._query_id
        )

    def query_id(self) -> QueryId:
        if self._query_id is None:
            if "query_id" not in self.body:
                raise self.error("query_id", "is missing")
            raise self.error("query_id", "must be an integer or a string")
        return self._query_id

    def string(self, name: str) -> str:
        value = self.body.get(name)
        if not isinstance(value, str):
            raise self.error(name, "is missing" if value is None else "must be a string")
        return value

    def reducer_name(self) -> str:
        name = self.string("reducer")
        if not names.is_identifier(name):
            raise self.error("reducer", f"is not a valid reducer name: use {names.IDENTIFIER_RULE}")
        return name

    def strings(self, name: str) -> list[str]:
        value = self.body.get(name)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.error(name, "must be a non-empty array of SQL strings")
        return value

    def optional_object(self, name: str) -> dict[str, Any] | None:
        value = self.body.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(name, "must be a JSON object of parameter values")
        return value

    def optional_bool(self, name: str) -> bool:
        value = self.body.get(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.error(name, "must be true or false")
        return value

    def optional_offset(self, name: str) -> int | None:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(name, "must be a non-negative integer (a tx_offset)")
        return value


def _is_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def reducer_result(
    request_id: RequestId,
    *,
    return_value: Any = None,
    error: str | None = None,
    error_code: str = InvalidRequest.code,
    tx_offset: int | None = None,
    error_traceback: str | None = None,
    retry_after_s: float | None = None,
) -> dict[str, Any]:
    """A ``ReducerResult``; a failed one carries ``error_code``, the error class's code,
    for the database's owner ``error_traceback`` (``errors.error_document``), and, when
    the error says when to try again (``cluster_unavailable``, ``rate_limited``),
    ``retry_after_s``: what HTTP's ``Retry-After`` says, in seconds."""
    status = "failed" if error is not None else "committed"
    result = {
        "request_id": request_id,
        "status": status,
        "return_value": return_value,
        "error": error,
        "tx_offset": tx_offset,
    }
    if error is not None:
        result["error_code"] = error_code
    if error_traceback is not None:
        result["error_traceback"] = error_traceback
    if retry_after_s is not None:
        result["retry_after_s"] = retry_after_s
    return {"ReducerResult": result}


def staleness(stale: bool, tx_offset: int, since: float | None) -> dict[str, Any]:
    """A ``Staleness``: what this node serves of the database went stale (``stale``, its
    state frozen at ``tx_offset`` since ``since``, wall-clock seconds, sent as RFC 3339)
    or is current again (``since`` null). Cluster mode only (docs/reference/websocket.md)."""
    when = None if since is None else Timestamp(int(since * 1_000_000)).isoformat()
    return {"Staleness": {"stale": stale, "tx_offset": tx_offset, "since": when}}


def query_error(request_id: RequestId, error: str, error_code: str) -> dict[str, Any]:
    """A failed ``OneOffQueryResult``: the message and the error class's code."""
    return {
        "OneOffQueryResult": {"request_id": request_id, "error": error, "error_code": error_code}
    }


def subscription_error(
    request_id: RequestId, query_id: QueryId | None, error: str, error_code: str | None = None
) -> dict[str, Any]:
    """A ``SubscriptionError``; with ``error_code`` (the error class's code) when the
    cause has one worth matching on (a query budget, a rate limit)."""
    body: dict[str, Any] = {"request_id": request_id, "query_id": query_id, "error": error}
    if error_code is not None:
        body["error_code"] = error_code
    return {"SubscriptionError": body}


def reply_for_error(error: ProtocolError) -> dict[str, Any]:
    """The reply that carries a bad request's error: the kind its request expects.

    A malformed frame, or one of unknown kind, has no reply of its own; it gets a
    ``SubscriptionError`` with null ids (the connection is kept).
    """
    message = str(error)
    if error.kind == "CallReducer":
        return reducer_result(error.request_id, error=message, error_code=error.code)
    if error.kind == "OneOffQuery":
        return query_error(error.request_id, message, error.code)
    return subscription_error(error.request_id, error.query_id, message)
