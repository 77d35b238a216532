"""FastAPI helpers for generic resumable text streams (:mod:`resumable_chat.text_streams.context`).

The route pair of the seeds' examples (``@s2-dev/resumable-stream`` README, Vercel
``resumable-stream`` README "Usage with explicit resumption"):

- ``POST {prefix}/{stream_id}`` → ``create_new_resumable_stream`` → 200 ``text/event-stream``
  with the producer's raw strings as they come; 409 ``Stream already in use`` (text) while a
  live producer holds the id (upstream would start a second producer instead);
- ``GET {prefix}/{stream_id}?resumeAt=N`` → ``resume_existing_stream`` → 200
  ``text/event-stream`` with the stored output (minus ``N`` characters), then live; 422
  ``Stream is already done`` (text) when the stream is done; 404 ``Stream not found`` (text)
  when no stream with that id ever existed; 400 for a ``resumeAt`` that is not an integer ≥ 0.
- either route answers 400 (text) for an id starting with ``chat-``, ``tanstack-`` or
  ``agui-``: those name the chat routers' logs, which a text stream must never read or replace
  (:data:`~resumable_chat.text_streams.RESERVED_STREAM_ID_PREFIXES`).

Why 404 and 422 differ: Vercel ``resumable-stream``'s ``resumeExistingStream`` returns
``null`` for a stream that is done and ``undefined`` for one that does not exist (its README,
"Usage with explicit resumption", and ``src/types.ts``); the seeds' route answers ``!stream``
with 422 for both. This router keeps 422 for ``null`` (done) and answers the ``undefined``
case with 404, so a client can tell "finished" from "wrong id".

The strings are sent verbatim, no SSE framing is added: like upstream, the stream is expected to
carry an already-encoded body (e.g. SSE frames). Errors of the store are never turned into 422
or 404: they get 503 with ``Retry-After`` when transient and 500 when the configuration is
wrong (:mod:`resumable_chat.fastapi.requests`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from resumable_chat.fastapi.requests import (
    DEFAULT_MAX_BODY_BYTES,
    Authorize,
    authorize_chat,
    read_body,
    startup_check,
    storage_policy,
    storage_route_class,
)
from resumable_chat.text_streams.context import (
    RESERVED_STREAM_ID_PREFIXES,
    ReservedStreamIdError,
    ResumableStream,
    ResumableStreamContext,
    StreamActiveError,
)

__all__ = [
    "STREAM_DONE_TEXT",
    "STREAM_ID_PATTERN",
    "STREAM_IN_USE_TEXT",
    "STREAM_NOT_FOUND_TEXT",
    "RouteStreamSource",
    "parse_resume_at",
    "resumable_stream_router",
    "stream_response",
]

#: Body of the 422 answer for a stream with nothing to resume (the seeds' text).
STREAM_DONE_TEXT = "Stream is already done"
#: Body of the 404 answer for a stream id that never existed.
STREAM_NOT_FOUND_TEXT = "Stream not found"
#: Body of the 409 answer when a live producer holds the id (the chat routes' text).
STREAM_IN_USE_TEXT = "Stream already in use"
#: Stream ids accepted by the router: 1 to 200 of ``A-Z a-z 0-9 _ - . :``, not starting with
#: ``.``, so that any short ``key_prefix`` plus the id is a valid S2 stream name.
STREAM_ID_PATTERN = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,199}$"

StreamId = Annotated[str, Path(pattern=STREAM_ID_PATTERN, description="The stream id.")]

#: The router's source factory: called with the stream id and the POST request (its body is
#: already read, so ``await request.json()`` works) and returns the ``str`` chunks, or an
#: awaitable of them. Called only when the POST wins the claim.
RouteStreamSource = Callable[[str, Request], AsyncIterable[str] | Awaitable[AsyncIterable[str]]]

_HEADERS = {"Cache-Control": "no-cache"}


async def _body(stream: ResumableStream) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(stream):
        async for chunk in stream:
            yield chunk.encode()


def _reserved(stream_id: str) -> Response | None:
    """400 with the reason when ``stream_id`` names a chat's log
    (:class:`~resumable_chat.text_streams.ReservedStreamIdError`), else ``None``."""
    if stream_id.startswith(RESERVED_STREAM_ID_PREFIXES):
        return PlainTextResponse(str(ReservedStreamIdError(stream_id)), status_code=400)
    return None


def stream_response(
    stream: ResumableStream | None,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The HTTP answer for a resumable stream, as the seeds' route handlers build it.

    Args:
        stream: what a :class:`~resumable_chat.text_streams.context.ResumableStreamContext` method
            returned; ``None`` means nothing to resume.
        headers: extra response headers.

    Returns:
        ``None`` → 422 ``Stream is already done`` (``text/plain``); otherwise a 200
        ``StreamingResponse`` with ``Content-Type: text/event-stream`` and
        ``Cache-Control: no-cache`` sending each chunk's UTF-8 bytes as they come. The
        stream is closed when the response ends or the client goes away (a producer's
        source and persistence keep running).
    """
    if stream is None:
        return PlainTextResponse(STREAM_DONE_TEXT, status_code=422)
    return StreamingResponse(
        _body(stream),
        media_type="text/event-stream",
        headers={**_HEADERS, **(headers or {})},
    )


def parse_resume_at(value: str | None) -> int | None:
    """The ``resumeAt`` query value as an int (characters), ``None`` when absent or empty.

    Raises ``ValueError`` unless it is a decimal integer ≥ 0 (the router answers 400).
    """
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"resumeAt must be an integer ≥ 0, got {value!r}")
    return int(value)


def resumable_stream_router(
    context: ResumableStreamContext,
    make_stream: RouteStreamSource,
    *,
    prefix: str = "/api/streams",
    authorize: Authorize | None = None,
    check_storage: bool = True,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> APIRouter:
    """An ``APIRouter`` with the seeds' route pair (see the module docstring).

    Args:
        context: the streams' context (:func:`~resumable_chat.create_resumable_stream_context`).
        make_stream: opens a new stream's source, called with ``(stream_id, request)`` only
            when the POST wins the claim.
        prefix: the routes' path prefix (no trailing slash).
        authorize: ``authorize(request, stream_id)`` (:data:`resumable_chat.fastapi.Authorize`),
            called before a stream is created or resumed; raises ``HTTPException`` to refuse.
        check_storage: the router's lifespan awaits ``context.check()`` at start-up (one
            cheap S2 request), so a misconfigured S2 stops the app; ``False`` skips it.
        max_body_bytes: a larger POST body gets 413 ``{"detail": "body over N bytes"}``
            before any of it is kept whole or a stream is claimed (bytes).

    Returns:
        The router: ``POST {prefix}/{stream_id}`` (200 | 400 | 409 | 413) and
        ``GET {prefix}/{stream_id}?resumeAt=N`` (200 | 400 | 404 never existed | 422 done).
        Stream ids must match :data:`STREAM_ID_PATTERN` (else FastAPI answers 422 with a
        JSON validation error); an id starting with ``chat-``, ``tanstack-`` or ``agui-``
        names a chat's log and gets 400 (text,
        :data:`~resumable_chat.text_streams.RESERVED_STREAM_ID_PREFIXES`) before
        ``authorize`` is called. S2 failures: 503 with ``Retry-After`` | 500 misconfigured.
    """
    router = APIRouter(
        route_class=storage_route_class(storage_policy(context.basin)),
        lifespan=startup_check(context, check_storage),
    )

    @router.post(f"{prefix}/{{stream_id}}", response_model=None)
    async def create_stream(stream_id: StreamId, request: Request) -> Response:
        refused = _reserved(stream_id)
        if refused is not None:
            return refused
        await authorize_chat(authorize, request, stream_id)
        # kept on the request, so the source may read it after the response starts
        body = await read_body(request, max_body_bytes)
        if isinstance(body, Response):
            return body

        def source() -> AsyncIterable[str] | Awaitable[AsyncIterable[str]]:
            return make_stream(stream_id, request)

        try:
            stream = await context.create_new_resumable_stream(stream_id, source)
        except StreamActiveError:
            return PlainTextResponse(STREAM_IN_USE_TEXT, status_code=409)
        return stream_response(stream)

    @router.get(f"{prefix}/{{stream_id}}", response_model=None)
    async def resume_stream(stream_id: StreamId, request: Request) -> Response:
        refused = _reserved(stream_id)
        if refused is not None:
            return refused
        await authorize_chat(authorize, request, stream_id)
        try:
            resume_at = parse_resume_at(request.query_params.get("resumeAt"))
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        stream = await context.resume_existing_stream(stream_id, resume_at)
        if stream is None and await context.has_existing_stream(stream_id) is None:
            return PlainTextResponse(STREAM_NOT_FOUND_TEXT, status_code=404)
        return stream_response(stream)

    return router
