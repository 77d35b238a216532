"""Read and append sessions of the bundled S2 server: SSE and ``s2s/proto`` read sessions and
``s2s/proto`` append sessions (``s2/v1/s2s.md`` of ``s2-streamstore/s2-specs``)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from resumable_chat.s2.errors import (
    RangeNotSatisfiableError,
    S2Error,
    StreamNotFoundError,
)
from resumable_chat.s2.records import (
    ReadBatch,
    StreamPosition,
    metered_bytes,
)
from resumable_chat.testing.s2_compat.model import (
    _DONE,
    _LAST_EVENT_ID,
    _S2S,
    _S2S_HEADERS,
    _SSE_HEADERS,
    Faults,
    Format,
    _Basin,
    _HttpError,
    _may_follow,
    _ReadQuery,
    _StreamMeta,
)
from resumable_chat.testing.s2_compat.wire import (
    _append_input_from_proto,
    _batch_json,
    _error_parts,
    _faulty_event,
    _position,
    _proto_ack,
    _proto_batch,
    _sse,
)
from resumable_chat.testing.s2s_framing import (
    Compression,
    FrameDecoder,
    FrameError,
    choose_compression,
)
from resumable_chat.testing.s2s_framing import encode_frame as _encode_frame
from resumable_chat.testing.s2s_framing import encode_terminal as _encode_terminal


class SessionHandlers:
    """The session half of :class:`~resumable_chat.testing.s2_compat.server.S2TestServer`."""

    basins: dict[str, _Basin]
    faults: Faults | None
    ping_interval_s: float

    if TYPE_CHECKING:

        @staticmethod
        async def _add_stream(basin: _Basin, stream: str) -> _StreamMeta: ...

        async def _open_for_read(self, basin: _Basin, stream: str) -> _StreamMeta: ...

        async def _resolve_start(
            self, basin: _Basin, stream: str, query: _ReadQuery, may_follow: bool
        ) -> int: ...

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


class _AppendSessionResponse(Response):
    """The full-duplex body of an append session: reads frames, writes acks, in order."""

    def __init__(
        self, server: SessionHandlers, basin: _Basin, stream: str, compression: Compression
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
