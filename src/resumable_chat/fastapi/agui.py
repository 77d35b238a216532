"""FastAPI routes for TanStack AI's stock ``fetchServerSentEvents`` adapter, durable.

``useChat({ connection: fetchServerSentEvents("/api/agui"), threadId, persistence: true })``
of ``@tanstack/ai-client`` 0.33 resumes a cut stream, rejoins a running answer after a reload
and hydrates the transcript against these routes with no custom JavaScript
(AG-UI ``RunAgentInput`` and ``@tanstack/ai`` ``stream-durability.js``). The runs live in the same
per-thread S2 stream
as the TanStack session routes of :func:`resumable_chat.fastapi.tanstack_router` (same default
stream names), so a thread can be read either way.

Routes (``prefix`` defaults to ``/api/agui``):

- ``POST {prefix}`` with an AG-UI ``RunAgentInput`` → 200 SSE, the live run: ``CUSTOM
  run.accepted`` first, then the model's events, every event with an ``id:`` cursor; the run
  events carry the request's ``threadId`` / ``runId`` (``X-Run-Id`` first). 409 while another
  run is live on the thread.
- The same POST with ``Last-Event-ID: <id>`` (the client's reconnect after a cut) → the same
  run from after that event, read from the log: the model is not called, nothing is stored.
- ``GET {prefix}?offset=-1&runId=<id>`` (``joinRun``) → the run from its first event, then live
  until it ends; ``offset=<id>`` (or ``Last-Event-ID``) from after that event; ``offset=now``
  from the end. 404 for an unknown run.
- ``GET {prefix}?threadId=<id>`` (``hydrate``, ``Accept: application/json``) → ``{messages,
  activeRun, interrupts, page}``; ``limit`` / ``before`` are accepted and the whole history is
  returned (``page: {truncated: false}``).
- ``DELETE {prefix}?threadId=<id>`` → 202 the live run was stopped (it ends with
  ``RUN_FINISHED {finishReason: "stop"}``) | 204 nothing running. (The stock adapter never
  sends it: its ``stop()`` only drops the connection, which leaves a durable run running.)
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from resumable_chat.chat.core import ResumableChat
from resumable_chat.chat.producer import StopSignal
from resumable_chat.fastapi.requests import (
    CHAT_ID_PATTERN,
    DEFAULT_MAX_BODY_BYTES,
    Authorize,
    authorize_chat,
    decimal_cursor,
    json_request_body,
    startup_check,
    storage_policy,
    storage_route_class,
    validated_body,
)
from resumable_chat.log import StreamInUseError
from resumable_chat.protocols.agui.dialect import (
    AgUiTurn,
    run_accepted,
    run_prelude,
    wire_to_ui_messages,
)
from resumable_chat.protocols.agui.runs import CursorPastEndError, DurableRuns, RunIdTakenError
from resumable_chat.protocols.tanstack.dialect import TANSTACK_HEADERS
from resumable_chat.sse import sse_response

__all__ = [
    "RUN_ID_PATTERN",
    "AgUiRun",
    "AgUiSource",
    "Authorize",
    "RunAgentInputModel",
    "agui_router",
]

#: Run ids accepted (``X-Run-Id``, ``runId``): 1 to 200 of ``A-Z a-z 0-9 _ - . :``, not
#: starting with ``.`` (the client's ``run-<ms>-<random>`` and UUIDs fit).
RUN_ID_PATTERN = CHAT_ID_PATTERN
_RUN_ID = re.compile(RUN_ID_PATTERN)


class RunAgentInputModel(BaseModel):
    """AG-UI ``RunAgentInput`` as ``fetchServerSentEvents`` POSTs it (extra keys are kept).

    ``messages`` are AG-UI wire messages (``{id, role, content?, toolCalls?, toolCallId?}``,
    no ``parts``); ``tools`` the client's tools (``{name, description, parameters}``);
    ``resume`` the answers to a paused run's interrupts.
    """

    model_config = ConfigDict(extra="allow")

    threadId: str = Field(pattern=CHAT_ID_PATTERN)
    runId: str | None = Field(default=None, pattern=RUN_ID_PATTERN)
    parentRunId: str | None = None
    resume: list[dict[str, Any]] | None = None
    state: Any = None
    messages: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    context: list[Any] = Field(default_factory=list)
    forwardedProps: dict[str, Any] = Field(default_factory=dict)

    @field_validator("messages")
    @classmethod
    def _identified_messages(cls, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each message has a string ``id`` and a non-empty string ``role``, as every AG-UI
        message type requires (``@ag-ui/core`` ``src/types.ts``, ``MessageSchema``); the ids
        key the stored history. Raises ``ValueError`` (a 422 naming the message)."""
        for index, message in enumerate(messages):
            if not isinstance(message.get("id"), str):
                raise ValueError(f"message {index} has no id (a string)")
            role = message.get("role")
            if not isinstance(role, str) or not role:
                raise ValueError(f"message {index} has no role (a non-empty string)")
        return messages


@dataclass(frozen=True, slots=True)
class AgUiRun:
    """One accepted run, as the source sees it.

    Attributes:
        thread_id / run_id / parent_run_id: the request's ids (``run_id`` from ``X-Run-Id``,
            else the body, else generated).
        messages: the conversation as TanStack ``UIMessage`` dicts (``{id, role, parts}``),
            converted from ``wire_messages`` the way the client converts a snapshot; the form
            :func:`resumable_chat.fastapi.tanstack_router` sources get.
        wire_messages: the AG-UI wire messages as sent.
        tools: the client's tools (``{name, description, parameters}``): give them to the
            model; calls to them end the run with client-tool interrupts.
        forwarded_props: ``forwardedProps`` (the client's ``body`` option and per-call data).
        resume: the answers to interrupts (``[{interruptId, status, payload?}]``) or ``None``.
        state / context: as sent.
    """

    thread_id: str
    run_id: str
    parent_run_id: str | None
    messages: list[dict[str, Any]]
    wire_messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    forwarded_props: dict[str, Any] = field(default_factory=dict)
    resume: list[dict[str, Any]] | None = None
    state: Any = None
    context: list[Any] = field(default_factory=list)


#: ``source(run, signal)``: the TanStack ``StreamChunk`` s of one run (``RUN_STARTED`` …
#: ``RUN_FINISHED``); ``signal`` is set when the run is stopped.
AgUiSource = Callable[[AgUiRun, StopSignal], AsyncIterable[dict[str, Any]]]


def _bad_request(detail: str, status_code: int = 400) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code)


def _cursor(value: str) -> int | None:
    """An SSE id of ours (``seq_num + 1``: 1 to 18 ASCII digits) as a seq_num cursor, else
    ``None`` (``Last-Event-ID: ²`` included: a 400, not a 500)."""
    return decimal_cursor(value)


async def _no_frames() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


def agui_router(
    chat: ResumableChat,
    source: AgUiSource,
    *,
    prefix: str = "/api/agui",
    stream_name: Callable[[str], str] = lambda thread_id: f"tanstack-{thread_id}",
    run_index_stream: Callable[[str], str] = lambda run_id: f"agui-run-{run_id}",
    authorize: Authorize | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    check_storage: bool = True,
) -> APIRouter:
    """Routes for the stock ``fetchServerSentEvents(prefix)`` adapter with durable delivery.

    Args:
        chat: a ``ResumableChat`` built with ``protocol="tanstack", mode="session"`` (it may
            also serve :func:`~resumable_chat.fastapi.tanstack_router`).
        source: called once per new run (after the claim) with the :class:`AgUiRun` and the
            stop signal; returns the run's ``StreamChunk`` dicts. Its ``RUN_*`` events get the
            request's ``threadId`` / ``runId`` whatever ids it uses.
        prefix: the adapter's URL path.
        stream_name: thread id → S2 stream name (default: the TanStack session routes' names).
        run_index_stream: run id → the S2 stream of its one-record run index (how a join,
            which names only the run, finds the thread).
        authorize: ``authorize(request, thread_id)``, called before any read, write or stop of
            a thread; raise ``HTTPException`` to deny.
        max_body_bytes: larger POST bodies get 413 (bytes).
        check_storage: the router's lifespan awaits ``chat.check()`` at start-up (one cheap
            S2 request), so a misconfigured S2 stops the app; ``False`` skips it.

    Responses: see the module docstring. Bad input gets 400 (malformed JSON, JSON nested too
    deeply, a bad ``Last-Event-ID``/``offset``/run id, a GET naming neither a run nor a
    thread), 413 or 422 (``{"detail": ...}`` JSON) and never touches the log; a cursor past
    the end of a finished thread gets 416. S2 failures get 503 with ``Retry-After`` when
    transient and 500 when the configuration is wrong, as on the other routers
    (:mod:`resumable_chat.fastapi.requests`).

    Raises:
        ValueError: ``chat`` is not a TanStack session chat.
    """
    runs = DurableRuns(chat, run_index_stream=run_index_stream)
    router = APIRouter(
        route_class=storage_route_class(storage_policy(chat.basin)),
        lifespan=startup_check(chat, check_storage),
    )
    headers = TANSTACK_HEADERS

    async def check(request: Request, thread_id: str) -> None:
        await authorize_chat(authorize, request, thread_id)

    async def replay_response(stream: str, start: int, *, cursor: bool) -> Response:
        if cursor:
            try:
                await runs.check_cursor(stream, start)
            except CursorPastEndError as exc:
                return _bad_request(str(exc), 416)
        frames = runs.replay(stream, start, cursor=start if cursor else None)
        return sse_response(frames, headers=headers, keepalive_s=chat.keepalive_s)

    @router.post(
        prefix,
        response_class=Response,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "The run, durable"},
            409: {"description": "Another run is live on this thread"},
        },
        openapi_extra=json_request_body(RunAgentInputModel),
    )
    async def post_run(request: Request) -> Response:
        body = await validated_body(request, RunAgentInputModel, max_body_bytes)
        if isinstance(body, Response):
            return body
        run_id = request.headers.get("x-run-id") or body.runId or "run-" + secrets.token_hex(8)
        if not _RUN_ID.match(run_id):
            return _bad_request(f"run id {run_id!r} does not match {RUN_ID_PATTERN}")
        last_event_id = request.headers.get("last-event-id")
        await check(request, body.threadId)
        stream = stream_name(body.threadId)
        if last_event_id is not None:
            start = _cursor(last_event_id)
            if start is None:
                return _bad_request(f"Last-Event-ID {last_event_id!r} is not a cursor of ours")
            return await replay_response(stream, start, cursor=True)
        ui_messages = wire_to_ui_messages(body.messages)
        run = AgUiRun(
            thread_id=body.threadId,
            run_id=run_id,
            parent_run_id=body.parentRunId,
            messages=ui_messages,
            wire_messages=body.messages,
            tools=body.tools,
            forwarded_props=body.forwardedProps,
            resume=body.resume,
            state=body.state,
            context=body.context,
        )
        client_tools = [t["name"] for t in body.tools if isinstance(t.get("name"), str)]
        turn = AgUiTurn(
            run_id, body.threadId, parent_run_id=body.parentRunId, client_tools=client_tools
        )

        def run_source(signal: StopSignal) -> AsyncIterable[dict[str, Any]]:
            return source(run, signal)

        try:
            generation = await runs.start(
                stream,
                run_source,
                run_id=run_id,
                thread_id=body.threadId,
                turn=turn,
                prelude=run_prelude(
                    body.messages, ui_messages, resume=body.resume, parent_run_id=body.parentRunId
                ),
                accepted=run_accepted(run_id, body.threadId, body.parentRunId),
            )
        except StreamInUseError:
            return PlainTextResponse("Stream already in use", status_code=409)
        except RunIdTakenError as exc:
            return _bad_request(f"{exc}: use a new run id", 409)
        return chat.live_response(generation)

    @router.get(
        prefix,
        response_class=Response,
        responses={
            200: {
                "content": {"text/event-stream": {}, "application/json": {}},
                "description": "A run (join) as SSE, or a thread's hydration as JSON",
            },
            404: {"description": "Unknown run"},
        },
    )
    async def get_run_or_thread(
        request: Request,
        thread_id: Annotated[str | None, Query(alias="threadId", pattern=CHAT_ID_PATTERN)] = None,
        run_id: Annotated[str | None, Query(alias="runId", pattern=RUN_ID_PATTERN)] = None,
        offset: Annotated[str | None, Query(max_length=20)] = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
        before: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        last_event_id = request.headers.get("last-event-id")
        run_id = request.headers.get("x-run-id") or run_id
        if last_event_id is None and offset is None:
            if thread_id is None:
                return _bad_request("name a thread (?threadId=) or a run (?runId=&offset=)")
            await check(request, thread_id)
            hydration = await runs.hydrate(stream_name(thread_id))  # limit/before: whole history
            return JSONResponse(hydration, headers={"Cache-Control": "no-store"})
        if run_id is not None and not _RUN_ID.match(run_id):
            return _bad_request(f"run id {run_id!r} does not match {RUN_ID_PATTERN}")
        cursor: int | None = None
        if last_event_id is not None:
            cursor = _cursor(last_event_id)
            if cursor is None:
                return _bad_request(f"Last-Event-ID {last_event_id!r} is not a cursor of ours")
        elif offset not in ("-1", "now"):
            cursor = _cursor(offset or "")
            if cursor is None:
                return _bad_request(f"offset {offset!r} is not -1, now or a cursor of ours")
        if run_id is None:
            if thread_id is None or cursor is None:
                return _bad_request("a join needs ?runId= (or ?threadId= with a cursor)")
            await check(request, thread_id)
            return await replay_response(stream_name(thread_id), cursor, cursor=True)
        # Authorize before anything tells whether the run exists: the thread the request
        # names, else the thread the run is bound to ("" for an unknown run, which a hook
        # that hides other users' chats refuses like any chat that is not theirs).
        if thread_id is not None:
            await check(request, thread_id)
        location = await runs.locate(run_id)
        if thread_id is None:
            await check(request, location.thread_id or "" if location is not None else "")
        if location is None or (thread_id is not None and location.thread_id != thread_id):
            return _bad_request(f"no run {run_id!r}", 404)
        if cursor is not None:
            return await replay_response(location.stream, cursor, cursor=True)
        if offset == "now":
            start = await runs.live_tail(location.stream)
            if start is None:  # the run has ended: nothing comes after "now"
                return sse_response(_no_frames(), headers=headers, keepalive_s=0)
            return await replay_response(location.stream, start, cursor=False)
        return await replay_response(location.stream, location.start, cursor=False)

    @router.delete(
        prefix,
        status_code=202,
        response_class=Response,
        responses={202: {"description": "Stopped"}, 204: {"description": "Nothing running"}},
    )
    async def stop_run(
        request: Request,
        thread_id: Annotated[str, Query(alias="threadId", pattern=CHAT_ID_PATTERN)],
    ) -> Response:
        await check(request, thread_id)
        return await chat.stop_session(stream_name(thread_id))

    return router
