"""An S2-compatible server for tests: a Starlette ASGI app backed by ``MemoryBasin`` s.

It speaks S2's REST API v1 as published in S2's OpenAPI document (``s2/v1/openapi.json`` of the
public repository ``s2-streamstore/s2-specs``), with its protobuf bodies (``s2/v1/s2.proto``)
and its ``s2s/proto`` append and read sessions (``s2/v1/s2s.md``), so
:class:`~resumable_chat.s2.http.HttpBasin` and the official SDKs (``@s2-dev/streamstore``,
``s2-sdk``) can be tested offline: point ``S2_ACCOUNT_ENDPOINT`` / ``S2_BASIN_ENDPOINT`` at it
(any ``S2_ACCESS_TOKEN`` works unless ``access_token`` is set). Where the document is silent,
behaviour follows s2-lite (``s2-streamstore/s2``, ``lite/``), whose source paths are cited below.

Implemented (all paths under ``/v1``; :data:`IMPLEMENTED_OPERATIONS`):

- basins: ``list_basins``, ``create_basin``, ``get_basin_config``, ``ensure_basin``,
  ``reconfigure_basin``, ``delete_basin``. Unlike S2, a basin named by a stream request is
  created on first use (``auto_create_basins``), and basins get ``create_stream_on_append`` /
  ``create_stream_on_read`` on unless told otherwise.
- streams: ``list_streams``, ``create_stream``, ``get_stream_config``, ``ensure_stream``,
  ``reconfigure_stream``, ``delete_stream``. Stream configuration is validated, stored and
  returned, but not enforced (no retention, timestamping modes or delete-on-empty).
- records: ``append`` (JSON, or ``application/protobuf`` / ``application/x-protobuf``
  ``AppendInput``), ``read`` (JSON or protobuf ``ReadBatch`` by ``Accept``, an SSE session with
  ``Accept: text/event-stream``, an ``s2s/proto`` session with ``Content-Type: s2s/proto``),
  ``check_tail``; append sessions are ``POST .../records`` with ``Content-Type: s2s/proto``.
- ``s2-format``: ``raw`` (default, alias ``json``; output is lossy UTF-8, like Rust's
  ``String::from_utf8_lossy`` in ``api/src/data.rs``) and ``base64`` (alias ``json-binsafe``).
- the basin comes from the ``S2-Basin`` header (s2-lite requires it: 400 ``bad_header``) or
  from the ``Host`` subdomain ``{basin}.b.<anything>`` (as on s2.dev).
- error bodies: ``{"code","message"}``; 412 ``{"fencing_token_mismatch": T}`` /
  ``{"seq_num_mismatch": N}``; 416 ``{"tail": StreamPosition}``; 404 ``basin_not_found`` /
  ``stream_not_found``; 400 ``bad_json`` (including a non-JSON ``Content-Type`` on append),
  ``bad_proto``, ``bad_frame``, ``bad_header``, ``bad_query``; 422 ``invalid``; 409
  ``resource_already_exists``.
- request bodies with ``Content-Encoding: gzip`` or ``zstd`` (as ``s2-sdk`` sends them when
  compression is on); session frames compressed either way, answered in the compression that
  ``Accept-Encoding`` offers.

Not implemented: access tokens and metrics (501 ``not_implemented``, as s2-lite answers),
locations, encryption (``s2-encryption-key``), and the ``s2-stream-config`` header. Deletion is
immediate (S2 deletes asynchronously and answers 409 ``stream_deletion_pending`` meanwhile).

Run it with ``python -m resumable_chat.testing.s2_server --host 127.0.0.1 --port N``: it serves
HTTP/1.1 and cleartext HTTP/2 (prior knowledge, as the SDKs use on ``http://`` endpoints) on
one port under hypercorn. It needs the ``testing`` extra (``pip install
'resumable-chat[testing]'``). Failures can be injected through :class:`Faults`; the ready-made,
per-test configurable one is :class:`~resumable_chat.testing.fault_plan.FaultPlan`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import gzip
import json
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from resumable_chat.s2.errors import (
    FencingTokenMismatchError,
    RangeNotSatisfiableError,
    S2Error,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from resumable_chat.s2.http import WireAppendInput
from resumable_chat.s2.memory import MemoryBasin, validate_stream_name
from resumable_chat.s2.records import (
    AppendAck,
    AppendInput,
    AppendRecord,
    ReadBatch,
    SequencedRecord,
    StreamPosition,
    metered_bytes,
)
from resumable_chat.testing.s2s_framing import (
    Compression,
    FrameDecoder,
    FrameError,
    choose_compression,
)
from resumable_chat.testing.s2s_framing import encode_frame as _encode_frame
from resumable_chat.testing.s2s_framing import encode_terminal as _encode_terminal

#: What to install when the server's optional dependencies are missing.
EXTRA_HINT: Final = "pip install 'resumable-chat[testing]'"

try:  # protobuf comes with the ``testing`` extra
    from google.protobuf.message import DecodeError as _DecodeError

    from resumable_chat.testing import s2_pb2 as _pb
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess
    if __name__ == "__main__":
        raise SystemExit(
            f"the bundled S2 server needs the 'testing' extra ({_missing.name} is missing): "
            f"{EXTRA_HINT}"
        ) from None
    raise ImportError(
        f"resumable_chat.testing.s2_server needs the 'testing' extra: {EXTRA_HINT}"
    ) from _missing

__all__ = [
    "EXTRA_HINT",
    "IMPLEMENTED_OPERATIONS",
    "NOT_IMPLEMENTED_OPERATIONS",
    "ConnectionDroppedError",
    "Faults",
    "S2TestServer",
    "SessionFault",
    "create_app",
    "drop_connection",
    "main",
]

T = TypeVar("T")
Format = Literal["raw", "base64"]

#: s2-lite caps the ``wait`` of unary reads at 60 s (``MAX_UNARY_READ_WAIT``).
MAX_UNARY_WAIT_S: Final = 60
#: List endpoints return at most 1000 items (the ``limit`` default and maximum).
MAX_LIST_LIMIT: Final = 1000
_BASIN_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{6,46}[a-z0-9]$")
_LAST_EVENT_ID = re.compile(r"^([0-9]+),([0-9]+),([0-9]+)$")
_SSE_HEADERS: Final = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}
_DONE: Final = "data: [DONE]\n\n"
#: What ``GET /streams/{stream}`` returns: s2-lite's default stream configuration.
_DEFAULT_STREAM_CONFIG: Final[dict[str, Any]] = {
    "storage_class": "express",
    "retention_policy": {"age": 604800},
    "timestamping": {"mode": "client-prefer", "uncapped": False},
    "delete_on_empty": {"min_age_secs": 0},
}
#: The operations of S2's OpenAPI document that this server implements (operationIds).
IMPLEMENTED_OPERATIONS: Final = (
    "list_basins",
    "create_basin",
    "get_basin_config",
    "ensure_basin",
    "reconfigure_basin",
    "delete_basin",
    "list_streams",
    "create_stream",
    "get_stream_config",
    "ensure_stream",
    "reconfigure_stream",
    "delete_stream",
    "append",
    "read",
    "check_tail",
)
#: Operations of the document answered with 501 ``not_implemented`` (as s2-lite does).
NOT_IMPLEMENTED_OPERATIONS: Final = (
    "list_access_tokens",
    "issue_access_token",
    "revoke_access_token",
    "account_metrics",
    "basin_metrics",
    "stream_metrics",
)
_PROTO_TYPES: Final = frozenset({"application/protobuf", "application/x-protobuf"})
_S2S: Final = "s2s/proto"
_S2S_HEADERS: Final = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}
#: Header that tells what ``ensure_*`` / ``create_*`` did (s2-lite ``PROVISION_RESULT_HEADER``).
_PROVISION_RESULT: Final = "s2-provision-result"
_MAX_REQUEST_TOKEN: Final = 36


#: What :meth:`Faults.event_fault` may do to an SSE read session.
SessionFault = Literal["cut", "cut_mid_event", "error"]


class Faults:
    """The fault-injection seam: the server consults one of these on every request.

    The default injects nothing. Subclass it and pass it as ``create_app(faults=...)`` to add
    latency (sleep in a hook), fail requests (return a response, e.g. 500 or 429 with
    ``retry-after-ms``) or cut SSE sessions.
    """

    async def before_request(self, request: Request, operation: str) -> Response | None:
        """Called after routing, before anything else; a returned response is sent instead.

        ``operation`` is the S2 operation id: ``list_basins``, ``create_basin``,
        ``ensure_basin``, ``get_basin_config``, ``reconfigure_basin``, ``delete_basin``,
        ``list_streams``, ``create_stream``, ``ensure_stream``, ``get_stream_config``,
        ``reconfigure_stream``, ``delete_stream``, ``append`` (unary), ``append_session``
        (``s2s/proto``), ``read`` (unary), ``read_session`` (SSE or ``s2s/proto``) or
        ``check_tail``.
        """
        return None

    async def after_request(self, request: Request, operation: str, response: Response) -> Response:
        """Called with the response of a handled request (the operation took effect); the
        returned response is sent instead. Return :func:`drop_connection` to lose the
        acknowledgement: the client sees the connection break after the write happened.
        """
        return response

    async def before_event(self, request: Request, event: str, index: int) -> bool:
        """Called before each SSE ``batch`` or ``ping`` event (``index`` counts from 0 per
        session). Returning ``True`` ends the response there, without ``[DONE]``, as a
        dropped connection looks to the client.
        """
        return False

    async def event_fault(self, request: Request, event: str, index: int) -> SessionFault | None:
        """Called before each SSE ``batch`` or ``ping`` event (``index`` counts from 0 per
        session); the default asks :meth:`before_event`.

        Returns ``None`` (send the event), ``"cut"`` (end the response there, without
        ``[DONE]``), ``"cut_mid_event"`` (send the first half of the event, then end: the
        client holds a partial event when the connection drops) or ``"error"`` (an S2
        ``error`` event with code ``unavailable``, then the end).
        """
        return "cut" if await self.before_event(request, event, index) else None


class ConnectionDroppedError(Exception):
    """Raised inside the ASGI app by :func:`drop_connection` to break the connection."""


class _DroppedResponse(Response):
    """Sends the status line, headers and half of the body, then breaks the connection."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.body, response.status_code, media_type=response.media_type)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise ConnectionDroppedError("fault injected: connection dropped mid-response")


def drop_connection(response: Response) -> Response:
    """``response`` cut short: status and headers, half the body, then a broken connection.

    The server logs the :class:`ConnectionDroppedError` it raises; the client gets a transport
    error (httpx ``RemoteProtocolError``) and cannot know whether the request took effect.
    """
    return _DroppedResponse(response)


class _HttpError(Exception):
    """A response to send at once: status and S2 ``ErrorInfo`` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message}


@dataclass(eq=False, slots=True)
class _StreamMeta:
    name: str
    created_at: datetime
    #: The stream's ``StreamConfig`` as given (fields left out take the basin's defaults).
    config: dict[str, Any] = field(default_factory=dict)
    request_token: str | None = None


@dataclass(eq=False, slots=True)
class _Basin:
    name: str
    created_at: datetime
    create_stream_on_append: bool
    create_stream_on_read: bool
    memory: MemoryBasin
    streams: dict[str, _StreamMeta] = field(default_factory=dict)
    default_stream_config: dict[str, Any] | None = None
    stream_cipher: str | None = None
    request_token: str | None = None


@dataclass(slots=True)
class _ReadQuery:
    seq_num: int | None
    timestamp: int | None
    tail_offset: int | None
    count: int | None
    bytes: int | None
    until: int | None
    wait: int | None
    clamp: bool


# -- encoding helpers ----------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _format(request: Request) -> Format:
    """The ``s2-format`` header (``api/src/data.rs`` ``Format::from_str``); 400 if unknown."""
    value = request.headers.get("s2-format")
    if value is None:
        return "raw"
    name = value.strip()
    if name in ("raw", "json"):
        return "raw"
    if name in ("base64", "json-binsafe"):
        return "base64"
    raise _HttpError(400, "bad_header", f"invalid s2-format header: {value!r}")


def _encode(fmt: Format, data: bytes) -> str:
    if fmt == "base64":
        return base64.b64encode(data).decode("ascii")
    return data.decode("utf-8", "replace")


def _decode(fmt: Format, text: str) -> bytes:
    if fmt == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise _HttpError(422, "invalid", "invalid Base64 encoding") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise _HttpError(400, "bad_json", "string is not valid UTF-8") from None


def _position(position: StreamPosition) -> dict[str, int]:
    return {"seq_num": position.seq_num, "timestamp": position.timestamp}


def _ack_json(ack: AppendAck) -> dict[str, Any]:
    return {"start": _position(ack.start), "end": _position(ack.end), "tail": _position(ack.tail)}


def _record_json(fmt: Format, record: SequencedRecord) -> dict[str, Any]:
    """A ``SequencedRecord``; ``headers``/``body`` omitted when empty (``api/.../json.rs``)."""
    item: dict[str, Any] = {"seq_num": record.seq_num, "timestamp": record.timestamp}
    if record.headers:
        item["headers"] = [[_encode(fmt, n), _encode(fmt, v)] for n, v in record.headers]
    if record.body:
        item["body"] = _encode(fmt, record.body)
    return item


def _batch_json(
    fmt: Format, records: Sequence[SequencedRecord], tail: StreamPosition | None
) -> str:
    payload: dict[str, Any] = {"records": [_record_json(fmt, r) for r in records]}
    if tail is not None:
        payload["tail"] = _position(tail)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _json_body(request: Request, body: bytes) -> Any:
    """The JSON request body; 400 ``bad_json`` without a JSON ``Content-Type`` (axum's rule)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise _HttpError(400, "bad_json", "Expected request with `Content-Type: application/json`")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise _HttpError(
            400, "bad_json", f"Failed to parse the request body as JSON: {exc}"
        ) from None


def _uint(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or int(value) >= 2**64:
        raise _HttpError(400, "bad_query", f"Failed to deserialize query string: {name}={value!r}")
    return int(value)


def _bool(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise _HttpError(400, "bad_query", f"Failed to deserialize query string: {name}={value!r}")
    return value == "true"


def _read_query(request: Request) -> _ReadQuery:
    query = _ReadQuery(
        seq_num=_uint(request, "seq_num"),
        timestamp=_uint(request, "timestamp"),
        tail_offset=_uint(request, "tail_offset"),
        count=_uint(request, "count"),
        bytes=_uint(request, "bytes"),
        until=_uint(request, "until"),
        wait=_uint(request, "wait"),
        clamp=_bool(request, "clamp"),
    )
    if sum(v is not None for v in (query.seq_num, query.timestamp, query.tail_offset)) > 1:
        raise _HttpError(
            422, "invalid", "only one of seq_num, timestamp, or tail_offset can be provided"
        )
    if query.timestamp is not None and query.until is not None and query.timestamp >= query.until:
        raise _HttpError(422, "invalid", "start `timestamp` exceeds or equal to `until`")
    return query


def _sse(event: str, data: str, event_id: str | None = None) -> str:
    head = f"event: {event}\n"
    if event_id is not None:
        head += f"id: {event_id}\n"
    return f"{head}data: {data}\n\n"


def _faulty_event(action: SessionFault, text: str) -> str:
    """What a session sends last when ``action`` is injected instead of event ``text``."""
    if action == "cut_mid_event":
        return text[: len(text) // 2]
    if action == "error":
        error = {"code": "unavailable", "message": "fault injected: read session failed"}
        return _sse("error", json.dumps(error, separators=(",", ":")))
    return ""


def _error_parts(exc: Exception) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of S2's error response for ``exc`` (``handlers/v1/error.rs``).

    Re-raises ``exc`` when it is not one of the typed errors.
    """
    if isinstance(exc, _HttpError):
        return exc.status, exc.body
    if isinstance(exc, FencingTokenMismatchError):
        return 412, {"fencing_token_mismatch": exc.expected_fencing_token}
    if isinstance(exc, SeqNumMismatchError):
        return 412, {"seq_num_mismatch": exc.expected_seq_num}
    if isinstance(exc, RangeNotSatisfiableError):
        return 416, {"tail": _position(exc.tail)}
    if isinstance(exc, StreamNotFoundError):
        return 404, {"code": "stream_not_found", "message": "stream not found"}
    if isinstance(exc, S2Error):
        status = exc.status or 500
        code = exc.code or ("invalid" if status == 422 else "other")
        return status, {"code": code, "message": exc.message}
    raise exc


def _error_response(exc: Exception) -> Response:
    """S2's error response for the typed errors of the log port (``handlers/v1/error.rs``)."""
    status, body = _error_parts(exc)
    return JSONResponse(body, status)


# -- configuration -------------------------------------------------------------------------

_U64 = Annotated[int, Field(ge=0, lt=2**64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class _Age(_Strict):
    age: _U64


class _Infinite(_Strict):
    infinite: dict[str, Any]


class _Timestamping(_Strict):
    mode: Literal["client-prefer", "client-require", "arrival"] | None = None
    uncapped: bool | None = None


class _DeleteOnEmpty(_Strict):
    min_age_secs: _U64 | None = None


class _StreamConfigIn(_Strict):
    """``StreamConfig`` / ``StreamReconfiguration`` of the OpenAPI document (shapes only)."""

    storage_class: Literal["standard", "express"] | None = None
    retention_policy: _Age | _Infinite | None = None
    timestamping: _Timestamping | None = None
    delete_on_empty: _DeleteOnEmpty | None = None


class _BasinConfigIn(_Strict):
    """``BasinConfig`` / ``BasinReconfiguration`` of the OpenAPI document (shapes only)."""

    create_stream_on_append: bool | None = None
    create_stream_on_read: bool | None = None
    default_stream_config: _StreamConfigIn | None = None
    stream_cipher: Literal["aegis-256", "aes-256-gcm"] | None = None


def _validated(model: type[BaseModel], value: Any, what: str) -> dict[str, Any]:
    """``value`` checked against ``model``: the fields it sets (nulls kept), as plain JSON.

    Raises 400 ``bad_json`` for a wrong shape and 422 ``invalid`` for a retention age of 0.
    """
    if not isinstance(value, dict):
        raise _HttpError(400, "bad_json", f"{what} must be a JSON object")
    try:
        parsed = model.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise _HttpError(400, "bad_json", f"invalid {what}: {where}: {error['msg']}") from None
    data: dict[str, Any] = parsed.model_dump(mode="json", exclude_unset=True)
    retention = data.get("retention_policy")
    if isinstance(retention, dict) and retention.get("age") == 0:
        raise _HttpError(422, "invalid", "retention age must be greater than 0 seconds")
    return data


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A reconfiguration applied: omitted fields stay, ``null`` resets, objects merge."""
    merged = dict(base)
    for key, value in update.items():
        if value is None:
            merged.pop(key, None)
        elif (
            isinstance(value, dict)
            and isinstance(merged.get(key), dict)
            and key != ("retention_policy")
        ):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _effective_stream_config(basin: _Basin, meta: _StreamMeta) -> dict[str, Any]:
    """The full ``StreamConfig``: the stream's own, then the basin default, then S2's."""
    config = _merge(_DEFAULT_STREAM_CONFIG, basin.default_stream_config or {})
    config = _merge(config, meta.config)
    timestamping = config.get("timestamping") or {}
    config["timestamping"] = {
        "mode": timestamping.get("mode") or "client-prefer",
        "uncapped": bool(timestamping.get("uncapped")),
    }
    return config


def _request_token(request: Request) -> str | None:
    """The ``s2-request-token`` header (at most 36 bytes: 400 ``bad_header`` otherwise)."""
    token = request.headers.get("s2-request-token")
    if token is not None and len(token.encode()) > _MAX_REQUEST_TOKEN:
        raise _HttpError(400, "bad_header", "s2-request-token is longer than 36 bytes")
    return token


def _media_type(value: str | None) -> str:
    """The first media type of a ``Content-Type`` / ``Accept`` value, lower case, no params.

    s2-lite (``api/src/mime.rs``) looks only at the first type of ``Accept``.
    """
    if not value:
        return ""
    return value.split(",")[0].split(";")[0].strip().lower()


async def _request_body(request: Request) -> bytes:
    """The request body, decoded from ``Content-Encoding: gzip`` or ``zstd`` if so sent.

    Raises 400 ``bad_header`` for another encoding and 400 ``bad_json`` for a body that does
    not decode.
    """
    raw = await request.body()
    encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
    if encoding == "identity" or not raw:
        return raw
    try:
        if encoding == "gzip":
            return gzip.decompress(raw)
        if encoding == "zstd":
            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(raw) as reader:
                data: bytes = reader.read()
            return data
    except ImportError:
        raise _HttpError(400, "bad_header", "zstd bodies need the zstandard package") from None
    except Exception as exc:
        raise _HttpError(400, "bad_json", f"cannot decode the {encoding} body: {exc}") from None
    raise _HttpError(400, "bad_header", f"unsupported Content-Encoding {encoding!r}")


# -- protobuf --------------------------------------------------------------------------------


def _proto_position(position: StreamPosition) -> _pb.StreamPosition:
    return _pb.StreamPosition(seq_num=position.seq_num, timestamp=position.timestamp)


def _proto_ack(ack: AppendAck) -> bytes:
    message = _pb.AppendAck(
        start=_proto_position(ack.start),
        end=_proto_position(ack.end),
        tail=_proto_position(ack.tail),
    )
    return message.SerializeToString()


def _proto_batch(records: Sequence[SequencedRecord], tail: StreamPosition | None) -> bytes:
    message = _pb.ReadBatch(
        records=[
            _pb.SequencedRecord(
                seq_num=r.seq_num,
                timestamp=r.timestamp,
                headers=[_pb.Header(name=n, value=v) for n, v in r.headers],
                body=r.body,
            )
            for r in records
        ]
    )
    if tail is not None:
        message.tail.CopyFrom(_proto_position(tail))
    return message.SerializeToString()


def _append_input_from_proto(data: bytes) -> AppendInput:
    """A protobuf ``AppendInput`` (``s2.proto``) as an :class:`AppendInput`.

    Raises 400 ``bad_proto`` when ``data`` is not a valid message.
    """
    try:
        message = _pb.AppendInput.FromString(data)
    except _DecodeError as exc:
        raise _HttpError(400, "bad_proto", f"invalid AppendInput message: {exc}") from None
    records = [
        AppendRecord(
            body=r.body,
            headers=tuple((h.name, h.value) for h in r.headers),
            timestamp=r.timestamp if r.HasField("timestamp") else None,
        )
        for r in message.records
    ]
    return AppendInput(
        records,
        message.match_seq_num if message.HasField("match_seq_num") else None,
        message.fencing_token if message.HasField("fencing_token") else None,
    )


# -- the server ----------------------------------------------------------------------------


class S2TestServer:
    """The state and request handling behind :func:`create_app` (one per app).

    ``basins`` maps basin names to their in-memory state. Tests may reach a basin's
    :class:`MemoryBasin` through :meth:`memory_basin` to inspect or seed it directly.
    """

    def __init__(
        self,
        *,
        auto_create_basins: bool = True,
        create_stream_on_append: bool = True,
        create_stream_on_read: bool = True,
        access_token: str | None = None,
        ping_interval_s: float = 5.0,
        faults: Faults | None = None,
    ) -> None:
        if ping_interval_s <= 0:
            raise ValueError("ping_interval_s must be positive")
        self.auto_create_basins = auto_create_basins
        self.create_stream_on_append = create_stream_on_append
        self.create_stream_on_read = create_stream_on_read
        self.access_token = access_token
        self.ping_interval_s = ping_interval_s
        self.faults = faults
        self.basins: dict[str, _Basin] = {}

    def memory_basin(self, name: str) -> MemoryBasin:
        """The ``MemoryBasin`` behind basin ``name``. Raises ``KeyError`` if it does not exist."""
        return self.basins[name].memory

    # -- dispatch --------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Route ``request`` by its raw (still percent-encoded) path and answer it."""
        raw = request.scope.get("raw_path")
        path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
        path = path.split("?", 1)[0]
        parts = path[1:].split("/") if path.startswith("/") else path.split("/")
        if parts in (["health"], ["ping"]):
            return PlainTextResponse("OK")
        route = self._route(request, parts)
        if route is None:
            return JSONResponse({"code": "bad_path", "message": "no such S2 endpoint"}, 404)
        if isinstance(route, Response):
            return route
        operation, handler = route
        if self.faults is not None:
            injected = await self.faults.before_request(request, operation)
            if injected is not None:
                return injected
        try:
            self._authenticate(request)
            response = await handler(request)
        except Exception as exc:  # typed errors become S2 error responses
            return _error_response(exc)
        if self.faults is not None:
            response = await self.faults.after_request(request, operation, response)
        return response

    def _route(
        self, request: Request, parts: list[str]
    ) -> tuple[str, Callable[[Request], Awaitable[Response]]] | Response | None:
        if len(parts) < 2 or parts[0] != "v1":
            return None
        method = request.method
        table: dict[str, tuple[str, Callable[[Request], Awaitable[Response]]]]
        rest = parts[1:]
        if rest == ["basins"]:
            table = {
                "GET": ("list_basins", self._list_basins),
                "POST": ("create_basin", self._create_basin),
            }
        elif len(rest) == 2 and rest[0] == "basins":
            name = unquote(rest[1])
            table = {
                "GET": ("get_basin_config", lambda r: self._get_basin_config(r, name)),
                "PUT": ("ensure_basin", lambda r: self._ensure_basin(r, name)),
                "PATCH": ("reconfigure_basin", lambda r: self._reconfigure_basin(r, name)),
                "DELETE": ("delete_basin", lambda r: self._delete_basin(r, name)),
            }
        elif rest == ["streams"]:
            table = {
                "GET": ("list_streams", self._list_streams),
                "POST": ("create_stream", self._create_stream),
            }
        elif len(rest) >= 2 and rest[0] == "streams":
            stream = unquote(rest[1])
            tail = rest[2:]
            if tail == []:
                table = {
                    "GET": ("get_stream_config", lambda r: self._get_stream_config(r, stream)),
                    "PUT": ("ensure_stream", lambda r: self._ensure_stream(r, stream)),
                    "PATCH": (
                        "reconfigure_stream",
                        lambda r: self._reconfigure_stream(r, stream),
                    ),
                    "DELETE": ("delete_stream", lambda r: self._delete_stream(r, stream)),
                }
            elif tail == ["records"]:
                table = {
                    "GET": ("read", lambda r: self._read(r, stream)),
                    "POST": ("append", lambda r: self._append(r, stream)),
                }
            elif tail == ["records", "tail"]:
                table = {"GET": ("check_tail", lambda r: self._check_tail(r, stream))}
            else:
                return None
        elif rest[0] in ("access-tokens", "metrics") and len(rest) <= 3:
            return self._not_implemented(method, rest)
        else:
            return None
        entry = table.get(method)
        if entry is None:
            return _method_not_allowed()
        if entry[0] in ("read", "append"):
            if _media_type(request.headers.get("content-type")) == _S2S:
                return f"{entry[0]}_session", entry[1]
            if entry[0] == "read" and "text/event-stream" in request.headers.get("accept", ""):
                return "read_session", entry[1]
        return entry

    @staticmethod
    def _not_implemented(method: str, rest: list[str]) -> Response | None:
        """501 ``not_implemented`` for the document's access-token and metrics operations.

        s2-lite answers these the same way (``handlers/v1/access_tokens.rs``, ``metrics.rs``).
        """
        known = {
            ("access-tokens", 1): ("GET", "POST"),
            ("access-tokens", 2): ("DELETE",),
            ("metrics", 1): ("GET",),
            ("metrics", 2): ("GET",),
            ("metrics", 3): ("GET",),
        }
        methods = known.get((rest[0], len(rest)))
        if methods is None:
            return None
        if method not in methods:
            return _method_not_allowed()
        message = f"{rest[0]} operations are not implemented by this test server"
        return JSONResponse({"code": "not_implemented", "message": message}, 501)

    def _authenticate(self, request: Request) -> None:
        """401 ``authn`` unless the bearer token matches (only when ``access_token`` is set)."""
        if self.access_token is None:
            return
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            raise _HttpError(401, "authn", "missing or invalid access token")

    # -- basins ----------------------------------------------------------------------------

    def _new_basin(self, name: str, config: Any) -> _Basin:
        if not _BASIN_NAME.match(name):
            raise _HttpError(
                422, "invalid", "basin name must be 8-48 characters of [a-z0-9-], no edge hyphen"
            )
        basin = _Basin(
            name=name,
            created_at=_now(),
            create_stream_on_append=self.create_stream_on_append,
            create_stream_on_read=self.create_stream_on_read,
            memory=MemoryBasin(name, create_stream_on_append=False, create_stream_on_read=False),
        )
        self._configure(basin, config)
        self.basins[name] = basin
        return basin

    def _configure(self, basin: _Basin, config: Any) -> bool:
        """Apply a ``BasinConfig`` or ``BasinReconfiguration`` (null: the server's default).

        Returns whether anything changed. Raises 400 ``bad_json`` for a wrong shape.
        """
        if config is None:
            return False
        data = _validated(_BasinConfigIn, config, "basin config")
        before = self._basin_config(basin)
        for key in ("create_stream_on_append", "create_stream_on_read"):
            if key in data:
                value = data[key]
                setattr(basin, key, getattr(self, key) if value is None else value)
        if "default_stream_config" in data:
            update = data["default_stream_config"]
            basin.default_stream_config = (
                None if update is None else _merge(basin.default_stream_config or {}, update)
            )
        if "stream_cipher" in data:
            basin.stream_cipher = data["stream_cipher"]
        return self._basin_config(basin) != before

    @staticmethod
    def _basin_info(basin: _Basin) -> dict[str, Any]:
        """``BasinInfo``: ``scope`` as in the OpenAPI document, ``location`` as newer S2."""
        return {
            "name": basin.name,
            "scope": None,
            "location": None,
            "created_at": _rfc3339(basin.created_at),
            "deleted_at": None,
            "state": "active",
        }

    @staticmethod
    def _basin_config(basin: _Basin) -> dict[str, Any]:
        default = basin.default_stream_config
        return {
            "create_stream_on_append": basin.create_stream_on_append,
            "create_stream_on_read": basin.create_stream_on_read,
            "default_stream_config": None if default is None else dict(default),
            "stream_cipher": basin.stream_cipher,
        }

    def _existing_basin(self, name: str) -> _Basin:
        basin = self.basins.get(name)
        if basin is None:
            raise _HttpError(404, "basin_not_found", f"basin {name!r} not found")
        return basin

    def _request_basin(self, request: Request) -> _Basin:
        """The basin of a ``/streams*`` request: ``S2-Basin`` header, else ``{basin}.b.`` host."""
        name = request.headers.get("s2-basin")
        if name is None:
            host = request.headers.get("host", "").split(":")[0]
            labels = host.split(".")
            if len(labels) >= 3 and labels[1] == "b":
                name = labels[0]
        if name is None:
            raise _HttpError(400, "bad_header", "missing S2-Basin header")
        if not _BASIN_NAME.match(name):
            raise _HttpError(400, "bad_header", f"invalid basin name {name!r}")
        basin = self.basins.get(name)
        if basin is None:
            if not self.auto_create_basins:
                raise _HttpError(404, "basin_not_found", f"basin {name!r} not found")
            basin = self._new_basin(name, None)
        return basin

    async def _list_basins(self, request: Request) -> Response:
        names, has_more = self._page(request, self.basins)
        return JSONResponse(
            {"basins": [self._basin_info(self.basins[n]) for n in names], "has_more": has_more}
        )

    async def _create_basin(self, request: Request) -> Response:
        """``POST /basins``: 201 ``BasinInfo``; a retry with the same ``s2-request-token``
        gets 200 and the same basin, anything else naming an existing basin 409."""
        token = _request_token(request)
        body = _json_body(request, await _request_body(request))
        if not isinstance(body, dict) or not isinstance(body.get("basin"), str):
            raise _HttpError(400, "bad_json", "expected an object with a string `basin`")
        name = body["basin"]
        existing = self.basins.get(name)
        if existing is not None:
            if token is not None and existing.request_token == token:
                return JSONResponse(
                    self._basin_info(existing), 200, headers={_PROVISION_RESULT: "noop"}
                )
            raise _HttpError(409, "resource_already_exists", f"basin {name!r} already exists")
        basin = self._new_basin(name, body.get("config"))
        basin.request_token = token
        return JSONResponse(self._basin_info(basin), 201, headers={_PROVISION_RESULT: "created"})

    async def _ensure_basin(self, request: Request, name: str) -> Response:
        """``PUT /basins/{basin}``: 201 created, or 200 with the config applied
        (``s2-provision-result``: ``created``, ``updated`` or ``noop``)."""
        raw = await _request_body(request)
        body = _json_body(request, raw) if raw.strip() else None
        if body is not None and not isinstance(body, dict):
            raise _HttpError(400, "bad_json", "expected an object or null")
        config = body.get("config") if isinstance(body, dict) else None
        basin = self.basins.get(name)
        if basin is not None:
            changed = self._configure(basin, config)
            result = "updated" if changed else "noop"
            return JSONResponse(self._basin_info(basin), 200, headers={_PROVISION_RESULT: result})
        basin = self._new_basin(name, config)
        return JSONResponse(self._basin_info(basin), 201, headers={_PROVISION_RESULT: "created"})

    async def _get_basin_config(self, request: Request, name: str) -> Response:
        return JSONResponse(self._basin_config(self._existing_basin(name)))

    async def _reconfigure_basin(self, request: Request, name: str) -> Response:
        basin = self._existing_basin(name)
        self._configure(basin, _json_body(request, await _request_body(request)))
        return JSONResponse(self._basin_config(basin))

    async def _delete_basin(self, request: Request, name: str) -> Response:
        basin = self._existing_basin(name)
        del self.basins[name]
        for stream in list(basin.streams):
            await self._drop_stream(basin, stream)
        await basin.memory.aclose()
        return Response(status_code=202)

    @staticmethod
    def _page(request: Request, items: dict[str, Any]) -> tuple[list[str], bool]:
        """``prefix`` / ``start_after`` / ``limit`` (≤ 1000) over sorted names."""
        prefix = request.query_params.get("prefix", "")
        start_after = request.query_params.get("start_after", "")
        limit = _uint(request, "limit")
        limit = MAX_LIST_LIMIT if limit is None else min(limit, MAX_LIST_LIMIT)
        names = [n for n in sorted(items) if n.startswith(prefix) and n > start_after]
        return names[:limit], len(names) > limit

    # -- streams ---------------------------------------------------------------------------

    @staticmethod
    def _stream_info(meta: _StreamMeta) -> dict[str, Any]:
        return {
            "name": meta.name,
            "created_at": _rfc3339(meta.created_at),
            "deleted_at": None,
            "cipher": None,
        }

    @staticmethod
    async def _add_stream(basin: _Basin, stream: str) -> _StreamMeta:
        meta = basin.streams.get(stream)
        if meta is None:
            await basin.memory.create_stream(stream)  # validates the name (422)
            meta = basin.streams[stream] = _StreamMeta(stream, _now())
        return meta

    @staticmethod
    async def _drop_stream(basin: _Basin, stream: str) -> None:
        basin.streams.pop(stream, None)
        await basin.memory.delete_stream(stream)  # wakes live readers

    async def _on_stream(
        self, basin: _Basin, stream: str, create: bool, op: Callable[[], Awaitable[T]]
    ) -> T:
        """Run ``op``; a missing stream is created and ``op`` rerun when ``create`` is set.

        The ``MemoryBasin`` validates the request before it looks the stream up, so, as in
        s2-lite, a malformed request is a 422 even on a missing stream and creates nothing.
        """
        try:
            return await op()
        except StreamNotFoundError:
            if not create:
                raise
        await self._add_stream(basin, stream)
        return await op()

    async def _list_streams(self, request: Request) -> Response:
        basin = self._request_basin(request)
        names, has_more = self._page(request, basin.streams)
        infos = [self._stream_info(basin.streams[n]) for n in names]
        return JSONResponse({"streams": infos, "has_more": has_more})

    async def _create_stream(self, request: Request) -> Response:
        """``POST /streams``: 201 ``StreamInfo``; a retry with the same ``s2-request-token``
        gets the same stream (201, ``s2-provision-result: noop``), anything else naming an
        existing stream 409 (s2-lite ``handlers/v1/streams.rs``)."""
        basin = self._request_basin(request)
        token = _request_token(request)
        body = _json_body(request, await _request_body(request))
        if not isinstance(body, dict) or not isinstance(body.get("stream"), str):
            raise _HttpError(400, "bad_json", "expected an object with a string `stream`")
        stream = body["stream"]
        config = body.get("config")
        config = {} if config is None else _validated(_StreamConfigIn, config, "stream config")
        validate_stream_name(stream)
        existing = basin.streams.get(stream)
        if existing is not None:
            if token is not None and existing.request_token == token:
                info = self._stream_info(existing)
                return JSONResponse(info, 201, headers={_PROVISION_RESULT: "noop"})
            raise _HttpError(409, "resource_already_exists", f"stream {stream!r} already exists")
        meta = await self._add_stream(basin, stream)
        meta.config, meta.request_token = config, token
        return JSONResponse(self._stream_info(meta), 201, headers={_PROVISION_RESULT: "created"})

    async def _ensure_stream(self, request: Request, stream: str) -> Response:
        """``PUT /streams/{stream}`` with a ``StreamConfig`` or null body: 201 created, or 200
        with the config applied (``s2-provision-result``: ``created``/``updated``/``noop``)."""
        basin = self._request_basin(request)
        raw = await _request_body(request)
        body = _json_body(request, raw) if raw.strip() else None
        config = {} if body is None else _validated(_StreamConfigIn, body, "stream config")
        validate_stream_name(stream)
        meta = basin.streams.get(stream)
        if meta is None:
            meta = await self._add_stream(basin, stream)
            meta.config = config
            info = self._stream_info(meta)
            return JSONResponse(info, 201, headers={_PROVISION_RESULT: "created"})
        before = _effective_stream_config(basin, meta)
        meta.config = _merge(meta.config, config)
        result = "noop" if _effective_stream_config(basin, meta) == before else "updated"
        return JSONResponse(self._stream_info(meta), 200, headers={_PROVISION_RESULT: result})

    def _existing_stream(self, request: Request, stream: str) -> tuple[_Basin, _StreamMeta]:
        basin = self._request_basin(request)
        meta = basin.streams.get(stream)
        if meta is None:
            raise StreamNotFoundError(stream)
        return basin, meta

    async def _get_stream_config(self, request: Request, stream: str) -> Response:
        """``GET /streams/{stream}``: the stream's ``StreamConfig``, defaults filled in."""
        basin, meta = self._existing_stream(request, stream)
        return JSONResponse(_effective_stream_config(basin, meta))

    async def _reconfigure_stream(self, request: Request, stream: str) -> Response:
        """``PATCH /streams/{stream}`` with a ``StreamReconfiguration``: omitted fields are
        kept, ``null`` resets to the default; answers the resulting ``StreamConfig``."""
        body = _json_body(request, await _request_body(request))
        update = _validated(_StreamConfigIn, body, "stream reconfiguration")
        basin, meta = self._existing_stream(request, stream)
        meta.config = _merge(meta.config, update)
        return JSONResponse(_effective_stream_config(basin, meta))

    async def _delete_stream(self, request: Request, stream: str) -> Response:
        basin = self._request_basin(request)
        if stream not in basin.streams:
            raise StreamNotFoundError(stream)
        await self._drop_stream(basin, stream)
        return Response(status_code=202)

    # -- records ---------------------------------------------------------------------------

    async def _check_tail(self, request: Request, stream: str) -> Response:
        basin = self._request_basin(request)
        tail = await self._on_stream(
            basin, stream, basin.create_stream_on_read, lambda: basin.memory.check_tail(stream)
        )
        return JSONResponse({"tail": _position(tail)})

    async def _append(self, request: Request, stream: str) -> Response:
        """Append (``handlers/v1/records.rs`` ``append``): ``AppendInput`` → ``AppendAck``.

        The body is JSON (encoded per ``s2-format``), or protobuf with ``Content-Type:
        application/protobuf`` (or ``application/x-protobuf``); the ack is protobuf when the
        first ``Accept`` type is protobuf, else JSON. ``Content-Type: s2s/proto`` opens an
        append session instead (:meth:`_append_session`). The body is checked before the
        stream is looked up: 400 ``bad_json`` / ``bad_proto`` for a wrong ``Content-Type`` or
        shape, 422 ``invalid`` for bad base64 or a batch breaking the limits; then 412 for a
        failed ``fencing_token`` (checked first) or ``match_seq_num``.
        """
        basin = self._request_basin(request)
        if _media_type(request.headers.get("content-type")) == _S2S:
            return await self._append_session(request, basin, stream)
        raw = await _request_body(request)
        if _media_type(request.headers.get("content-type")) in _PROTO_TYPES:
            batch = _append_input_from_proto(raw)
        else:
            batch = self._append_input_from_json(request, raw)
        ack = await self._on_stream(
            basin,
            stream,
            basin.create_stream_on_append,
            lambda: basin.memory.append(stream, batch),
        )
        if _media_type(request.headers.get("accept")) in _PROTO_TYPES:
            return Response(_proto_ack(ack), media_type="application/protobuf")
        return JSONResponse(_ack_json(ack))

    @staticmethod
    def _append_input_from_json(request: Request, raw: bytes) -> AppendInput:
        fmt = _format(request)
        _json_body(request, raw)
        try:
            wire = WireAppendInput.model_validate_json(raw, strict=True)
        except ValidationError as exc:
            message = exc.errors()[0]["msg"] if exc.errors() else str(exc)
            raise _HttpError(
                400, "bad_json", f"Failed to deserialize the JSON body: {message}"
            ) from None
        records = [
            AppendRecord(
                body=_decode(fmt, r.body),
                headers=tuple((_decode(fmt, n), _decode(fmt, v)) for n, v in r.headers),
                timestamp=r.timestamp,
            )
            for r in wire.records
        ]
        return AppendInput(records, wire.match_seq_num, wire.fencing_token)

    async def _read(self, request: Request, stream: str) -> Response:
        """Read: a unary ``ReadBatch`` (JSON, or protobuf when the first ``Accept`` type is
        protobuf), an SSE session (``Accept: text/event-stream``) or an ``s2s/proto`` session
        (``Content-Type: s2s/proto``)."""
        basin = self._request_basin(request)
        if _media_type(request.headers.get("content-type")) == _S2S:
            return await self._s2s_read_session(request, basin, stream, _read_query(request))
        fmt = _format(request)
        query = _read_query(request)
        if "text/event-stream" in request.headers.get("accept", ""):
            return await self._read_session(request, basin, stream, fmt, query)
        wait = min(query.wait or 0, MAX_UNARY_WAIT_S)
        batch = await self._on_stream(
            basin,
            stream,
            basin.create_stream_on_read,
            lambda: basin.memory.read(
                stream,
                seq_num=query.seq_num,
                timestamp=query.timestamp,
                tail_offset=query.tail_offset,
                count=query.count,
                bytes=query.bytes,
                until=query.until,
                clamp=query.clamp,
                wait=wait,
            ),
        )
        if _media_type(request.headers.get("accept")) in _PROTO_TYPES:
            body = _proto_batch(batch.records, batch.tail)
            return Response(body, media_type="application/protobuf")
        return Response(_batch_json(fmt, batch.records, batch.tail), media_type="application/json")

    async def _resolve_start(
        self, basin: _Basin, stream: str, query: _ReadQuery, may_follow: bool
    ) -> int:
        """The session's first seq_num, with s2-lite's 416 rules (``read_start_seq_num``).

        A start past the tail is 416 unless ``clamp`` (then the tail); a seq_num start at the
        tail of a session that cannot follow is 416 too. A timestamp resolves to the first
        record at or after it, or to the tail.
        """
        tail = await basin.memory.check_tail(stream)
        if query.timestamp is not None and query.timestamp <= tail.timestamp:
            found = await basin.memory.read(stream, timestamp=query.timestamp, count=1, wait=0)
            return found.records[0].seq_num if found.records else tail.seq_num
        if query.timestamp is not None:
            past = True
            start = tail.seq_num + 1
        elif query.seq_num is not None:
            start = query.seq_num
            past = start > tail.seq_num
        else:
            start = max(0, tail.seq_num - (query.tail_offset or 0))
            past = False
        if past:
            if not query.clamp:
                raise RangeNotSatisfiableError(tail)
            start = tail.seq_num
        if start == tail.seq_num and not may_follow:
            raise RangeNotSatisfiableError(tail)
        return start

    async def _open_for_read(self, basin: _Basin, stream: str) -> _StreamMeta:
        meta = basin.streams.get(stream)
        if meta is None:
            if not basin.create_stream_on_read:
                raise StreamNotFoundError(stream)
            meta = await self._add_stream(basin, stream)
        return meta

    async def _read_session(
        self, request: Request, basin: _Basin, stream: str, fmt: Format, query: _ReadQuery
    ) -> Response:
        """An SSE read session (``handlers/v1/records.rs`` ``read``, ``backend/read.rs``).

        Events: ``batch`` (``id: <last seq_num>,<records so far>,<metered bytes so far>``
        counted on this connection), ``ping`` (``{"timestamp", "tail"}``) when caught up and
        then every ``ping_interval_s`` without data, ``error`` when the session fails, and
        ``data: [DONE]`` when a ``count``/``bytes``/``until`` bound or ``wait`` ends it (this
        server also ends it with ``[DONE]`` when the stream is deleted). ``Last-Event-ID``
        resumes after its seq_num and subtracts its counters from ``count``/``bytes``, as
        s2-lite's ``apply_last_event_id`` does. Errors before the first event (404, 416,
        422) are plain HTTP responses.
        """
        last_event_id = request.headers.get("last-event-id")
        if last_event_id is not None:
            match = _LAST_EVENT_ID.match(last_event_id.strip())
            if match is None:
                raise _HttpError(400, "bad_header", f"invalid Last-Event-ID {last_event_id!r}")
            seen_seq, seen_count, seen_bytes = (int(g) for g in match.groups())
            query.seq_num, query.timestamp, query.tail_offset = seen_seq + 1, None, None
            if query.count is not None:
                query.count = max(query.count - seen_count, 0)
            if query.bytes is not None:
                query.bytes = max(query.bytes - seen_bytes, 0)
        may_follow = _may_follow(query)
        meta = await self._open_for_read(basin, stream)
        start = await self._resolve_start(basin, stream, query, may_follow)
        outputs = self._session_outputs(basin, meta, query, start, may_follow)
        events = self._sse_events(request, fmt, outputs)
        return StreamingResponse(events, media_type="text/event-stream", headers=_SSE_HEADERS)

    async def _sse_events(
        self, request: Request, fmt: Format, outputs: AsyncIterator[_Output]
    ) -> AsyncIterator[str]:
        """Render session outputs as SSE events, consulting :meth:`Faults.event_fault`."""
        index = 0
        async with contextlib.aclosing(outputs):  # type: ignore[type-var]
            async for output in outputs:
                kind = output[0]
                if kind == "done":
                    yield _DONE
                    return
                if kind == "error":
                    yield _sse("error", json.dumps(output[2], separators=(",", ":")))
                    return
                if kind == "ping":
                    ping = {"timestamp": time.time_ns() // 1_000_000, "tail": _position(output[2])}
                    text = _sse("ping", json.dumps(ping, separators=(",", ":")))
                else:
                    _, records, tail, event_id = output
                    text = _sse("batch", _batch_json(fmt, records, tail), event_id)
                action = None
                if self.faults is not None:
                    action = await self.faults.event_fault(request, kind, index)
                index += 1
                if action is not None:
                    yield _faulty_event(action, text)
                    return
                yield text

    async def _s2s_read_session(
        self, request: Request, basin: _Basin, stream: str, query: _ReadQuery
    ) -> Response:
        """An ``s2s/proto`` read session (``s2s.md``; ``handlers/v1/records.rs`` ``read``).

        Regular frames carry protobuf ``ReadBatch`` es: records, or none with the ``tail`` as
        a heartbeat when the session starts following and then every ``ping_interval_s``
        without data. A ``count``/``bytes``/``until`` bound or ``wait`` ends the response
        without a terminal frame; a failure ends it with a terminal frame (status + JSON
        error). Errors before the session starts (404, 416, 422) are plain HTTP responses.
        """
        may_follow = _may_follow(query)
        meta = await self._open_for_read(basin, stream)
        start = await self._resolve_start(basin, stream, query, may_follow)
        compression = choose_compression(request.headers.get("accept-encoding", ""))
        outputs = self._session_outputs(basin, meta, query, start, may_follow)
        frames = self._s2s_frames(compression, outputs)
        return StreamingResponse(frames, media_type=_S2S, headers=_S2S_HEADERS)

    @staticmethod
    async def _s2s_frames(
        compression: Compression, outputs: AsyncIterator[_Output]
    ) -> AsyncIterator[bytes]:
        async with contextlib.aclosing(outputs):  # type: ignore[type-var]
            async for output in outputs:
                kind = output[0]
                if kind == "done":
                    return
                if kind == "error":
                    yield _encode_terminal(output[1], output[2])
                    return
                if kind == "ping":
                    yield _encode_frame(_proto_batch((), output[2]), compression)
                else:
                    yield _encode_frame(_proto_batch(output[1], output[2]), compression)

    async def _session_outputs(
        self,
        basin: _Basin,
        meta: _StreamMeta,
        query: _ReadQuery,
        position: int,
        may_follow: bool,
    ) -> AsyncIterator[_Output]:
        """What a read session delivers, whatever its framing (s2-lite ``backend/read.rs``).

        Yields ``("batch", records, tail, event_id)``, ``("ping", None, tail)`` when caught up
        and then every ``ping_interval_s`` without data, and last ``("done",)`` (a bound, the
        ``wait`` or the stream's deletion ended it) or ``("error", status, body)``.
        """
        stream = meta.name
        memory = basin.memory
        count_left, bytes_left = query.count, query.bytes
        sent_count = sent_bytes = 0
        deadline: float | None = None
        pinged = False
        last_event = time.monotonic()

        def alive() -> bool:
            return basin.streams.get(stream) is meta and self.basins.get(basin.name) is basin

        try:
            while True:
                exhausted = (count_left is not None and count_left <= 0) or (
                    bytes_left is not None and bytes_left <= 0
                )
                if exhausted or not alive():
                    yield ("done",)  # a zero limit would only ever read empty batches
                    return
                limit_count = None if count_left is None else min(count_left, 1000)
                tail: StreamPosition | None = None
                try:
                    batch: ReadBatch | None = await memory.read(
                        stream,
                        seq_num=position,
                        count=limit_count,
                        bytes=bytes_left,
                        until=query.until,
                        wait=0,
                    )
                except RangeNotSatisfiableError as exc:
                    batch, tail = None, exc.tail
                if batch is None:
                    assert tail is not None
                    # Caught up: follow if the session may (``ReadEnd::may_follow``).
                    now = time.monotonic()
                    if tail.seq_num < position or not may_follow:
                        yield ("done",)
                        return
                    if query.wait is not None:
                        if deadline is None:
                            deadline = now + query.wait
                        if now >= deadline:
                            yield ("done",)
                            return
                    if not pinged or now - last_event >= self.ping_interval_s:
                        pinged, last_event = True, now
                        yield ("ping", None, tail)
                    timeout = self.ping_interval_s - (now - last_event)
                    if deadline is not None:
                        timeout = min(timeout, deadline - now)
                    if timeout > 0:
                        batch = await memory.read(
                            stream,
                            seq_num=position,
                            count=limit_count,
                            bytes=bytes_left,
                            until=query.until,
                            wait=timeout,
                        )
                    if batch is None or not batch.records or not alive():
                        continue
                elif not batch.records:
                    yield ("done",)  # a count/bytes/until bound stops before the next record
                    return
                records = batch.records
                size = sum(metered_bytes(r) for r in records)
                sent_count += len(records)
                sent_bytes += size
                if count_left is not None:
                    count_left -= len(records)
                if bytes_left is not None:
                    bytes_left -= size
                position = records[-1].seq_num + 1
                event_id = f"{records[-1].seq_num},{sent_count},{sent_bytes}"
                yield ("batch", records, batch.tail, event_id)
                last_event = time.monotonic()
                if query.wait is not None:
                    deadline = last_event + query.wait
        except Exception as exc:  # the session failed: an error, then the end
            if isinstance(exc, S2Error):
                error = {"code": exc.code or "other", "message": exc.message}
                status = exc.status or 500
            else:
                error = {"code": "other", "message": f"{type(exc).__name__}: {exc}"}
                status = 500
            yield ("error", status, error)

    async def _append_session(self, request: Request, basin: _Basin, stream: str) -> Response:
        """An ``s2s/proto`` append session (``s2s.md``; ``handlers/v1/records.rs`` ``append``).

        The request body is a stream of frames holding protobuf ``AppendInput`` s; each is
        appended in order and answered with an ``AppendAck`` frame. A failed append (412,
        422, ...), a malformed frame (400 ``bad_frame``) or message (400 ``bad_proto``) ends
        the session with a terminal frame carrying the status and the JSON error body. The
        session ends cleanly when the client ends its request body. A missing stream is a
        plain 404 before the session starts (unless the basin creates streams on append).
        """
        if stream not in basin.streams:
            if not basin.create_stream_on_append:
                raise StreamNotFoundError(stream)
            await self._add_stream(basin, stream)
        compression = choose_compression(request.headers.get("accept-encoding", ""))
        return _AppendSessionResponse(self, basin, stream, compression)


_Output = tuple[Any, ...]


def _may_follow(query: _ReadQuery) -> bool:
    """Whether a session may wait for new records (s2-lite ``ReadEnd::may_follow``)."""
    unbounded = query.count is None and query.bytes is None and query.until is None
    return unbounded or (query.wait is not None and query.wait > 0)


class _AppendSessionResponse(Response):
    """The full-duplex body of an append session: reads frames, writes acks, in order."""

    def __init__(
        self, server: S2TestServer, basin: _Basin, stream: str, compression: Compression
    ) -> None:
        super().__init__(status_code=200, media_type=_S2S, headers=_S2S_HEADERS)
        # A streamed body: no ``content-length`` (Response set it for the empty body).
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._server = server
        self._basin = basin
        self._stream = stream
        self._compression = compression

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        decoder = FrameDecoder()
        memory = self._basin.memory
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away: nothing left to answer
            try:
                frames = decoder.feed(message.get("body", b""))
                for frame in frames:
                    if frame.terminal:
                        raise _HttpError(400, "bad_frame", "unexpected terminal frame as input")
                    batch = _append_input_from_proto(frame.body)
                    ack = await memory.append(self._stream, batch)
                    frame_bytes = _encode_frame(_proto_ack(ack), self._compression)
                    await send(
                        {"type": "http.response.body", "body": frame_bytes, "more_body": True}
                    )
                if not message.get("more_body", False) and decoder.pending:
                    raise _HttpError(400, "bad_frame", "request body ended inside a frame")
            except FrameError as exc:
                await self._terminate(send, 400, {"code": "bad_frame", "message": str(exc)})
                return
            except Exception as exc:
                try:
                    status, body = _error_parts(exc)
                except Exception:
                    status, body = 500, {"code": "other", "message": f"{type(exc).__name__}: {exc}"}
                await self._terminate(send, status, body)
                return
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return

    @staticmethod
    async def _terminate(send: Any, status: int, body: dict[str, Any]) -> None:
        terminal = _encode_terminal(status, body)
        await send({"type": "http.response.body", "body": terminal, "more_body": False})


def _method_not_allowed() -> Response:
    return JSONResponse({"code": "bad_path", "message": "method not allowed here"}, 405)


class _EveryPath(BaseRoute):
    """A route taking every HTTP request, whatever its path.

    Starlette's ``{path:path}`` pattern does not match a decoded path holding a newline
    (``%0A``), which S2 names may contain; the server routes on the raw path itself.
    """

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.endpoint = endpoint

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return (Match.FULL if scope["type"] == "http" else Match.NONE), {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        response = await self.endpoint(request)
        await response(scope, receive, send)


def create_app(
    *,
    auto_create_basins: bool = True,
    create_stream_on_append: bool = True,
    create_stream_on_read: bool = True,
    access_token: str | None = None,
    ping_interval_s: float = 5.0,
    faults: Faults | None = None,
) -> Starlette:
    """A Starlette app serving the S2 REST v1 subset described in the module docstring.

    - ``auto_create_basins``: a stream request naming an unknown basin creates it (S2 would
      answer 404 ``basin_not_found``, which is what this does when it is off).
    - ``create_stream_on_append`` / ``create_stream_on_read``: the basin config new basins get
      (explicit ``config`` on create/ensure/PATCH wins).
    - ``access_token``: when set, requests need ``Authorization: Bearer <token>`` (401
      ``authn`` otherwise); ``None`` checks nothing, like s2-lite.
    - ``ping_interval_s``: seconds between SSE ``ping`` events on an idle session (s2-lite:
      random 5-15 s).
    - ``faults``: the :class:`Faults` seam, consulted per request and per SSE event.

    The :class:`S2TestServer` is at ``app.state.s2``.
    """
    server = S2TestServer(
        auto_create_basins=auto_create_basins,
        create_stream_on_append=create_stream_on_append,
        create_stream_on_read=create_stream_on_read,
        access_token=access_token,
        ping_interval_s=ping_interval_s,
        faults=faults,
    )
    app = Starlette(routes=[_EveryPath(server.handle)])
    app.state.s2 = server
    return app


def _help_epilog() -> str:
    implemented = ", ".join(IMPLEMENTED_OPERATIONS)
    missing = ", ".join(NOT_IMPLEMENTED_OPERATIONS)
    return (
        "Speaks S2 REST v1 (S2's published OpenAPI document, s2-streamstore/s2-specs) over "
        "HTTP/1.1 and cleartext HTTP/2 on one port: JSON and protobuf bodies, SSE read "
        "sessions, and s2s/proto append and read sessions. "
        f"Implemented operations: {implemented}. "
        f"Answered with 501 not_implemented: {missing}. "
        "Point S2_ACCOUNT_ENDPOINT and S2_BASIN_ENDPOINT at http://HOST:PORT (the basin comes "
        "from the S2-Basin header). Everything is in memory and lost on exit."
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m resumable_chat.testing.s2_server --host H --port N``.

    Serves :func:`create_app` with hypercorn (HTTP/1.1 and cleartext HTTP/2 with prior
    knowledge on the same port) until SIGINT or SIGTERM. ``argv`` defaults to
    ``sys.argv[1:]``. Prints nothing at start-up unless ``--log-level info``; callers wait
    for ``GET /health`` to answer 200.
    """
    parser = argparse.ArgumentParser(
        prog="python -m resumable_chat.testing.s2_server",
        description="An S2-compatible in-memory server for tests.",
        epilog=_help_epilog(),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    parser.add_argument("--access-token", default=None, help="require this bearer token")
    parser.add_argument("--ping-interval", type=float, default=5.0, help="SSE ping seconds")
    parser.add_argument(
        "--no-auto-create-basins", action="store_true", help="404 for unknown basins"
    )
    parser.add_argument("--log-level", default="warning", help="server log level")
    args = parser.parse_args(argv)

    try:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config
    except ImportError as exc:
        raise SystemExit(
            f"the bundled S2 server needs the 'testing' extra ({exc.name} is missing): {EXTRA_HINT}"
        ) from None

    app = create_app(
        auto_create_basins=not args.no_auto_create_basins,
        access_token=args.access_token,
        ping_interval_s=args.ping_interval,
    )
    config = Config()
    host = f"[{args.host}]" if ":" in args.host else args.host
    config.bind = [f"{host}:{args.port}"]
    config.loglevel = args.log_level.upper()
    config.accesslog = None
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = 75.0

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(run())


if __name__ == "__main__":
    main()
