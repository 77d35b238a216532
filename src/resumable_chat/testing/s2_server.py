"""An S2-REST-compatible server for tests: a Starlette ASGI app backed by ``MemoryBasin`` s.

It implements the subset of S2 REST v1 the library uses, with the exact wire shapes, so
:class:`~resumable_chat.s2.http.HttpBasin` can be tested offline and applications can point
``S2_ACCOUNT_ENDPOINT`` / ``S2_BASIN_ENDPOINT`` at it (any ``S2_ACCESS_TOKEN`` works unless
``access_token`` is set). Behaviour follows s2-lite (``s2-streamstore/s2``, ``lite/``, v0.42.7)
as described in ``reference/s2-rest-api.md``; the source paths cited below are s2-lite's.

Implemented (all paths under ``/v1``):

- basins: ``GET/POST /basins``, ``GET/PUT/PATCH/DELETE /basins/{basin}``. Unlike S2, a basin
  named by a stream request is created on first use (``auto_create_basins``), and basins get
  ``create_stream_on_append`` / ``create_stream_on_read`` on unless told otherwise.
- streams: ``GET/POST /streams``, ``GET/PUT/DELETE /streams/{stream}``.
- records: append (``POST .../records``), unary read and SSE read sessions
  (``GET .../records``, ``Accept: text/event-stream``), check tail (``GET .../records/tail``).
- ``s2-format``: ``raw`` (default, alias ``json``; output is lossy UTF-8, like Rust's
  ``String::from_utf8_lossy`` in ``api/src/data.rs``) and ``base64`` (alias ``json-binsafe``).
- the basin comes from the ``S2-Basin`` header (s2-lite requires it: 400 ``bad_header``) or
  from the ``Host`` subdomain ``{basin}.b.<anything>`` (as on s2.dev).
- error bodies: ``{"code","message"}``; 412 ``{"fencing_token_mismatch": T}`` /
  ``{"seq_num_mismatch": N}``; 416 ``{"tail": StreamPosition}``; 404 ``basin_not_found`` /
  ``stream_not_found``; 400 ``bad_json`` (including a non-JSON ``Content-Type`` on append),
  ``bad_header``, ``bad_query``; 422 ``invalid``; 409 ``resource_already_exists``.

Not implemented: access tokens, metrics, locations, encryption, stream configuration (GET
returns s2-lite's defaults), protobuf and S2S. Deletion is immediate (S2 deletes
asynchronously and answers 409 ``stream_deletion_pending`` meanwhile).

Run it with ``python -m resumable_chat.testing.s2_server --host 127.0.0.1 --port N`` (needs
``uvicorn``, the ``test`` extra). Failures can be injected through :class:`Faults`; the
ready-made, per-test configurable one is
:class:`~resumable_chat.testing.fault_plan.FaultPlan`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeVar
from urllib.parse import unquote

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..s2.errors import (
    FencingTokenMismatchError,
    RangeNotSatisfiableError,
    S2Error,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from ..s2.http import WireAppendInput
from ..s2.memory import MemoryBasin, validate_stream_name
from ..s2.records import (
    AppendAck,
    AppendInput,
    AppendRecord,
    ReadBatch,
    SequencedRecord,
    StreamPosition,
    metered_bytes,
)

__all__ = [
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
_METHODS: Final = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


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
        ``delete_stream``, ``append``, ``read`` (unary), ``read_session`` (SSE) or
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


@dataclass(eq=False, slots=True)
class _Basin:
    name: str
    created_at: datetime
    create_stream_on_append: bool
    create_stream_on_read: bool
    memory: MemoryBasin
    streams: dict[str, _StreamMeta] = field(default_factory=dict)


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


def _error_response(exc: Exception) -> Response:
    """S2's error bodies for the typed errors of the log port (``handlers/v1/error.rs``)."""
    if isinstance(exc, _HttpError):
        return JSONResponse(exc.body, exc.status)
    if isinstance(exc, FencingTokenMismatchError):
        return JSONResponse({"fencing_token_mismatch": exc.expected_fencing_token}, 412)
    if isinstance(exc, SeqNumMismatchError):
        return JSONResponse({"seq_num_mismatch": exc.expected_seq_num}, 412)
    if isinstance(exc, RangeNotSatisfiableError):
        return JSONResponse({"tail": _position(exc.tail)}, 416)
    if isinstance(exc, StreamNotFoundError):
        return JSONResponse({"code": "stream_not_found", "message": "stream not found"}, 404)
    if isinstance(exc, S2Error):
        status = exc.status or 500
        code = exc.code or ("invalid" if status == 422 else "other")
        return JSONResponse({"code": code, "message": exc.message}, status)
    raise exc


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
        route = self._route(request.method, request.headers.get("accept", ""), parts)
        if route is None:
            return PlainTextResponse("Not Found", 404)
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
        self, method: str, accept: str, parts: list[str]
    ) -> tuple[str, Callable[[Request], Awaitable[Response]]] | Response | None:
        if len(parts) < 2 or parts[0] != "v1":
            return None
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
        else:
            return None
        entry = table.get(method)
        if entry is None:
            return PlainTextResponse("Method Not Allowed", 405)
        if entry[0] == "read" and "text/event-stream" in accept:
            return "read_session", entry[1]
        return entry

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

    def _configure(self, basin: _Basin, config: Any) -> None:
        """Apply a ``BasinConfig`` or ``BasinReconfiguration`` (null flag: server default)."""
        if config is None:
            return
        if not isinstance(config, dict):
            raise _HttpError(400, "bad_json", "basin config must be an object")
        for key in ("create_stream_on_append", "create_stream_on_read"):
            if key not in config:
                continue
            value = config[key]
            if value is None:
                value = getattr(self, key)
            if not isinstance(value, bool):
                raise _HttpError(400, "bad_json", f"{key} must be a boolean")
            setattr(basin, key, value)

    @staticmethod
    def _basin_info(basin: _Basin) -> dict[str, Any]:
        return {
            "name": basin.name,
            "location": None,
            "created_at": _rfc3339(basin.created_at),
            "deleted_at": None,
            "state": "active",
        }

    @staticmethod
    def _basin_config(basin: _Basin) -> dict[str, Any]:
        return {
            "create_stream_on_append": basin.create_stream_on_append,
            "create_stream_on_read": basin.create_stream_on_read,
            "default_stream_config": None,
            "stream_cipher": None,
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
        body = _json_body(request, await request.body())
        if not isinstance(body, dict) or not isinstance(body.get("basin"), str):
            raise _HttpError(400, "bad_json", "expected an object with a string `basin`")
        name = body["basin"]
        if name in self.basins:
            raise _HttpError(409, "resource_already_exists", f"basin {name!r} already exists")
        basin = self._new_basin(name, body.get("config"))
        return JSONResponse(self._basin_info(basin), 201)

    async def _ensure_basin(self, request: Request, name: str) -> Response:
        raw = await request.body()
        body = _json_body(request, raw) if raw.strip() else None
        config = body.get("config") if isinstance(body, dict) else None
        basin = self.basins.get(name)
        if basin is not None:
            self._configure(basin, config)
            return JSONResponse(self._basin_info(basin), 200)
        basin = self._new_basin(name, config)
        return JSONResponse(self._basin_info(basin), 201)

    async def _get_basin_config(self, request: Request, name: str) -> Response:
        return JSONResponse(self._basin_config(self._existing_basin(name)))

    async def _reconfigure_basin(self, request: Request, name: str) -> Response:
        basin = self._existing_basin(name)
        self._configure(basin, _json_body(request, await request.body()))
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
        basin = self._request_basin(request)
        body = _json_body(request, await request.body())
        if not isinstance(body, dict) or not isinstance(body.get("stream"), str):
            raise _HttpError(400, "bad_json", "expected an object with a string `stream`")
        stream = body["stream"]
        validate_stream_name(stream)
        if stream in basin.streams:
            raise _HttpError(409, "resource_already_exists", f"stream {stream!r} already exists")
        meta = await self._add_stream(basin, stream)
        return JSONResponse(self._stream_info(meta), 201)

    async def _ensure_stream(self, request: Request, stream: str) -> Response:
        basin = self._request_basin(request)
        validate_stream_name(stream)
        existed = stream in basin.streams
        meta = await self._add_stream(basin, stream)
        return JSONResponse(self._stream_info(meta), 200 if existed else 201)

    async def _get_stream_config(self, request: Request, stream: str) -> Response:
        basin = self._request_basin(request)
        if stream not in basin.streams:
            raise StreamNotFoundError(stream)
        return JSONResponse(_DEFAULT_STREAM_CONFIG)

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
        """Append (``handlers/v1/records.rs`` ``append``): JSON ``AppendInput`` → ``AppendAck``.

        The body is checked before the stream is looked up: 400 ``bad_json`` for a wrong
        ``Content-Type`` or shape, 422 ``invalid`` for bad base64 or a batch breaking the
        limits; then 412 for a failed ``fencing_token`` (checked first) or ``match_seq_num``.
        """
        basin = self._request_basin(request)
        fmt = _format(request)
        raw = await request.body()
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
        batch = AppendInput(records, wire.match_seq_num, wire.fencing_token)
        ack = await self._on_stream(
            basin,
            stream,
            basin.create_stream_on_append,
            lambda: basin.memory.append(stream, batch),
        )
        return JSONResponse(_ack_json(ack))

    async def _read(self, request: Request, stream: str) -> Response:
        """Read: unary JSON ``ReadBatch``, or an SSE session with ``Accept: text/event-stream``."""
        basin = self._request_basin(request)
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
        unbounded = query.count is None and query.bytes is None and query.until is None
        may_follow = unbounded or (query.wait is not None and query.wait > 0)
        if basin.streams.get(stream) is None:
            if not basin.create_stream_on_read:
                raise StreamNotFoundError(stream)
            await self._add_stream(basin, stream)
        meta = basin.streams[stream]
        start = await self._resolve_start(basin, stream, query, may_follow)
        events = self._session_events(request, basin, meta, fmt, query, start, may_follow)
        return StreamingResponse(events, media_type="text/event-stream", headers=_SSE_HEADERS)

    async def _session_events(
        self,
        request: Request,
        basin: _Basin,
        meta: _StreamMeta,
        fmt: Format,
        query: _ReadQuery,
        position: int,
        may_follow: bool,
    ) -> AsyncIterator[str]:
        stream = meta.name
        memory = basin.memory
        count_left, bytes_left = query.count, query.bytes
        sent_count = sent_bytes = 0
        index = 0
        deadline: float | None = None
        pinged = False
        last_event = time.monotonic()

        def alive() -> bool:
            return basin.streams.get(stream) is meta and self.basins.get(basin.name) is basin

        async def fault(event: str) -> SessionFault | None:
            nonlocal index
            index += 1
            if self.faults is None:
                return None
            return await self.faults.event_fault(request, event, index - 1)

        try:
            while True:
                exhausted = (count_left is not None and count_left <= 0) or (
                    bytes_left is not None and bytes_left <= 0
                )
                if exhausted or not alive():
                    yield _DONE  # a zero limit would only ever read empty batches
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
                        yield _DONE
                        return
                    if query.wait is not None:
                        if deadline is None:
                            deadline = now + query.wait
                        if now >= deadline:
                            yield _DONE
                            return
                    if not pinged or now - last_event >= self.ping_interval_s:
                        pinged, last_event = True, now
                        ping = {"timestamp": time.time_ns() // 1_000_000, "tail": _position(tail)}
                        text = _sse("ping", json.dumps(ping, separators=(",", ":")))
                        action = await fault("ping")
                        if action is not None:
                            yield _faulty_event(action, text)
                            return
                        yield text
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
                    yield _DONE  # a count/bytes/until bound stops before the next record
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
                text = _sse("batch", _batch_json(fmt, records, batch.tail), event_id)
                action = await fault("batch")
                if action is not None:
                    yield _faulty_event(action, text)
                    return
                yield text
                last_event = time.monotonic()
                if query.wait is not None:
                    deadline = last_event + query.wait
        except Exception as exc:  # the session failed: an error event, then the end (no DONE)
            if isinstance(exc, S2Error):
                error = {"code": exc.code or "other", "message": exc.message}
            else:
                error = {"code": "other", "message": f"{type(exc).__name__}: {exc}"}
            yield _sse("error", json.dumps(error, separators=(",", ":")))


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
    app = Starlette(routes=[Route("/{path:path}", server.handle, methods=_METHODS)])
    app.state.s2 = server
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m resumable_chat.testing.s2_server --host H --port N``.

    Serves :func:`create_app` with uvicorn (imported here: it is an optional dependency, in
    the ``test`` extra) until interrupted. ``argv`` defaults to ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m resumable_chat.testing.s2_server",
        description="An S2-REST-compatible in-memory server for tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    parser.add_argument("--access-token", default=None, help="require this bearer token")
    parser.add_argument("--ping-interval", type=float, default=5.0, help="SSE ping seconds")
    parser.add_argument(
        "--no-auto-create-basins", action="store_true", help="404 for unknown basins"
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    args = parser.parse_args(argv)

    import uvicorn

    app = create_app(
        auto_create_basins=not args.no_auto_create_basins,
        access_token=args.access_token,
        ping_interval_s=args.ping_interval,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
