"""The bundled S2 server's request handling: :class:`S2TestServer` (routes, basins, streams,
appends, reads and sessions)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resumable_chat.s2.errors import (
    RangeNotSatisfiableError,
    StreamNotFoundError,
)
from resumable_chat.s2.memory import MemoryBasin, validate_stream_name
from resumable_chat.s2.records import (
    AppendInput,
    AppendRecord,
)
from resumable_chat.s2.wire import WireAppendInput
from resumable_chat.testing.s2_compat.config import (
    _BasinConfigIn,
    _effective_stream_config,
    _media_type,
    _merge,
    _request_body,
    _request_token,
    _StreamConfigIn,
    _validated,
)
from resumable_chat.testing.s2_compat.model import (
    _BASIN_NAME,
    _PROTO_TYPES,
    _PROVISION_RESULT,
    _S2S,
    MAX_LIST_LIMIT,
    MAX_UNARY_WAIT_S,
    Faults,
    T,
    _Basin,
    _HttpError,
    _ReadQuery,
    _StreamMeta,
)
from resumable_chat.testing.s2_compat.routing import (
    RawPathRoute,
    health_route,
    not_implemented_route,
    operation_name,
)
from resumable_chat.testing.s2_compat.sessions import SessionHandlers
from resumable_chat.testing.s2_compat.wire import (
    _ack_json,
    _append_input_from_proto,
    _batch_json,
    _decode,
    _error_response,
    _format,
    _json_body,
    _now,
    _position,
    _proto_ack,
    _proto_batch,
    _read_query,
    _rfc3339,
    _uint,
)

# -- the server ----------------------------------------------------------------------------


class S2TestServer(SessionHandlers):
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

    def routes(self) -> list[RawPathRoute]:
        """The server's Starlette routes, one per S2 operation and method (S2 REST v1,
        https://s2.dev/docs/api; paths and operation ids as in S2's OpenAPI document).

        They match the raw, still percent-encoded path (:class:`RawPathRoute`): a basin or
        stream name holding ``/`` (sent as ``%2F``), ``%``, spaces or non-ASCII text stays one
        path segment, and handlers get it decoded. Each operation runs through
        :meth:`_answer` (fault hooks, authentication, S2 error bodies) under its operation id
        (:func:`operation_name` for sessions). ``/health`` and ``/ping`` answer ``OK`` to any
        method; the access-token and metrics operations answer 501. Serve them with
        ``redirect_slashes`` off and :func:`s2_http_error` for 404 / 405, as
        :func:`~resumable_chat.testing.s2_compat.app.create_app` does.
        """

        def op(
            path: str, method: str, name: str, handler: Callable[..., Awaitable[Response]]
        ) -> RawPathRoute:
            async def endpoint(request: Request) -> Response:
                operation = operation_name(name, request)
                return await self._answer(request, operation, handler, request.path_params)

            return RawPathRoute(path, endpoint, methods=[method], name=name)

        basin, stream = "/v1/basins/{basin:s2_segment}", "/v1/streams/{stream:s2_segment}"
        return [
            health_route("/health"),
            health_route("/ping"),
            op("/v1/basins", "GET", "list_basins", self._list_basins),
            op("/v1/basins", "POST", "create_basin", self._create_basin),
            op(basin, "GET", "get_basin_config", self._get_basin_config),
            op(basin, "PUT", "ensure_basin", self._ensure_basin),
            op(basin, "PATCH", "reconfigure_basin", self._reconfigure_basin),
            op(basin, "DELETE", "delete_basin", self._delete_basin),
            op("/v1/streams", "GET", "list_streams", self._list_streams),
            op("/v1/streams", "POST", "create_stream", self._create_stream),
            op(stream, "GET", "get_stream_config", self._get_stream_config),
            op(stream, "PUT", "ensure_stream", self._ensure_stream),
            op(stream, "PATCH", "reconfigure_stream", self._reconfigure_stream),
            op(stream, "DELETE", "delete_stream", self._delete_stream),
            op(stream + "/records", "GET", "read", self._read),
            op(stream + "/records", "POST", "append", self._append),
            op(stream + "/records/tail", "GET", "check_tail", self._check_tail),
            # s2-lite answers these the same way (lite/src/handlers/v1/access_tokens.rs, metrics.rs)
            not_implemented_route("/v1/access-tokens", "GET", "POST"),
            not_implemented_route("/v1/access-tokens/{id:s2_segment}", "DELETE"),
            not_implemented_route("/v1/metrics", "GET"),
            not_implemented_route("/v1/metrics/{basin:s2_segment}", "GET"),
            not_implemented_route("/v1/metrics/{basin:s2_segment}/{stream:s2_segment}", "GET"),
        ]

    async def _answer(
        self,
        request: Request,
        operation: str,
        handler: Callable[..., Awaitable[Response]],
        params: dict[str, str],
    ) -> Response:
        """Run one operation as ``handler(request, *params.values())`` (``params``: the decoded
        ``{basin}`` / ``{stream}`` path parameters), with the fault plan's ``before_request`` /
        ``after_request`` hooks named ``operation`` around authentication and the handler.
        Exceptions from authentication or the handler become S2 error responses
        (``_error_response``); exceptions from the hooks propagate."""
        if self.faults is not None:
            injected = await self.faults.before_request(request, operation)
            if injected is not None:
                return injected
        try:
            self._authenticate(request)
            response = await handler(request, *params.values())
        except Exception as exc:  # typed errors become S2 error responses
            return _error_response(exc)
        if self.faults is not None:
            response = await self.faults.after_request(request, operation, response)
        return response

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
