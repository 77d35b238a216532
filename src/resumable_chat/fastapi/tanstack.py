"""The TanStack AI ``useChat`` session routes; see :mod:`resumable_chat.fastapi`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from resumable_chat.chat.core import ResumableChat
from resumable_chat.chat.producer import StopSignal
from resumable_chat.fastapi.history_route import add_history_route
from resumable_chat.fastapi.requests import (
    CHAT_ID_PATTERN,
    DEFAULT_MAX_BODY_BYTES,
    Authorize,
    authorize_chat,
    json_request_body,
    resume_cursor,
    startup_check,
    storage_policy,
    storage_route_class,
    validated_body,
)

__all__ = ["TanStackChatRequest", "TanStackSource", "TanStackStopRequest", "tanstack_router"]

logger = logging.getLogger("resumable_chat.fastapi")


class TanStackMessageModel(BaseModel):
    """A TanStack ``UIMessage`` (``{id, role, parts}``), or a ``ModelMessage`` with its
    ``content`` instead of parts (a string, ``null`` or a list of content parts); extra keys
    are kept."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=200)
    role: Literal["system", "user", "assistant"]
    parts: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("parts")
    @classmethod
    def _typed_parts(cls, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each part names its ``type`` (a non-empty string), and a ``text`` or ``thinking``
        part carries its ``content`` as a string, as TanStack AI's ``MessagePart`` types
        demand (``@tanstack/ai`` ``src/types.ts``: ``TextPart``, ``ThinkingPart``; the AI
        SDK's ``text`` key is taken for it too); other keys and part types pass as sent.
        Raises ``ValueError`` (a 422 naming the part) otherwise, rather than storing a
        message whose parts would be dropped."""
        _check_parts(parts, "part")
        return parts

    @model_validator(mode="after")
    def _typed_content(self) -> TanStackMessageModel:
        """A ``ModelMessage``'s ``content``, when sent, is a string, ``null`` or a list of
        content parts checked as :meth:`_typed_parts` checks parts. Raises ``ValueError``."""
        extra = self.model_extra or {}
        content = extra.get("content")
        if "content" in extra and not isinstance(content, str | list | None):
            raise ValueError("content must be a string, null or a list of content parts")
        if isinstance(content, list):
            if not all(isinstance(part, dict) for part in content):
                raise ValueError("content parts must be objects")
            _check_parts(content, "content part")
        return self


def _check_parts(parts: list[dict[str, Any]], what: str) -> None:
    for index, part in enumerate(parts):
        kind = part.get("type")
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"{what} {index} has no type (a non-empty string)")
        if kind in ("text", "thinking") and not (
            isinstance(part.get("content"), str) or isinstance(part.get("text"), str)
        ):
            raise ValueError(f"{what} {index} ({kind}) needs its content as a string")


class TanStackChatRequest(BaseModel):
    """POST body of the TanStack session routes: ``{id, messages, ...}``."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=CHAT_ID_PATTERN)
    messages: list[TanStackMessageModel] = Field(min_length=1)


class TanStackStopRequest(BaseModel):
    """DELETE body of the TanStack session routes: ``{id}`` (other keys ignored)."""

    id: str = Field(pattern=CHAT_ID_PATTERN)


#: ``source(messages, signal)``: the TanStack ``StreamChunk``s of one run; ``messages`` are the
#: normalised ``UIMessage`` dicts, ``signal`` is set when the run is stopped.
TanStackSource = Callable[[list[dict[str, Any]], StopSignal], AsyncIterable[dict[str, Any]]]


def tanstack_router(
    chat: ResumableChat,
    source: TanStackSource,
    *,
    prefix: str = "/api/tanstack/chat",
    stream_name: Callable[[str], str] = lambda chat_id: f"tanstack-{chat_id}",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    authorize: Authorize | None = None,
    check_storage: bool = True,
) -> APIRouter:
    """Routes for TanStack AI ``useChat`` in session mode (``@s2-dev/resumable-stream``
    ``src/tanstack-ai.ts`` and ``src/tanstack-ai-client.ts``).

    Args:
        chat: a ``ResumableChat`` built with ``protocol="tanstack", mode="session"``.
        source: called once per accepted POST, after the claim, with the normalised messages
            and the stop signal; returns the run's ``StreamChunk`` dicts.
        prefix: the base path.
        stream_name: chat id → S2 stream name.
        max_body_bytes: larger bodies get 413 (bytes).
        authorize: :data:`Authorize` hook, called with the chat id before every read, write
            and stop (after the request is validated); it raises ``HTTPException`` to refuse.
        check_storage: the router's lifespan awaits ``chat.check()`` at start-up (one cheap
            S2 request; nothing on the embedded log), so a refused token, a missing basin or
            an unreachable S2 stops the app with the typed ``S2Error`` naming the cause.
            ``False`` skips it (the routes then answer 500 or 503 per request).

    Routes:
        ``POST {prefix}`` ``{id, messages}`` → 202 at once (the run continues in the
        background and is followed through replay) | 409 | 400/413/422 JSON.
        ``GET {prefix}/replay?id=<id>[&from=<cursor>]`` → SSE: without ``from`` one
        ``MESSAGES_SNAPSHOT`` of completed history, the running run raw, then live; with
        ``from`` (or a ``Last-Event-ID`` header) the raw records from there, then live. 416
        for a cursor past the end; 400 for a ``Last-Event-ID`` that is not a cursor.
        ``DELETE {prefix}`` ``{id}`` → 202 stopped | 204 nothing running.
        ``GET {prefix}/{id}/messages`` → 200 JSON ``UIMessage[]`` folded from the log, with
        an ``ETag`` naming the log's tail | 304 when ``If-None-Match`` names it (nothing was
        appended since; :meth:`~resumable_chat.ResumableChat.messages_response`).
        Any route → 503 (``Retry-After``) while S2 is unavailable | 500 when misconfigured.
    """
    router = APIRouter(
        route_class=storage_route_class(storage_policy(chat.basin)),
        lifespan=startup_check(chat, check_storage),
    )

    @router.post(
        prefix,
        status_code=202,
        response_class=Response,
        responses={202: {"description": "Accepted"}, 409: {"description": "A run is live"}},
        openapi_extra=json_request_body(TanStackChatRequest),
    )
    async def post_chat(request: Request) -> Response:
        req = await validated_body(request, TanStackChatRequest, max_body_bytes)
        if isinstance(req, Response):
            return req
        await authorize_chat(authorize, request, req.id)
        messages = [m.model_dump(exclude_none=True) for m in req.messages]
        return await chat.make_session_response(
            stream_name(req.id), messages=messages, source=source, wait_until=_owned_by_chat
        )

    @router.get(
        prefix + "/replay",
        response_class=Response,
        responses={200: {"content": {"text/event-stream": {}}, "description": "The session"}},
    )
    async def replay_chat(
        request: Request,
        chat_id: Annotated[str, Query(alias="id", pattern=CHAT_ID_PATTERN)],
        from_: Annotated[int | None, Query(alias="from", ge=0)] = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> Response:
        cursor = resume_cursor(from_, last_event_id)
        await authorize_chat(authorize, request, chat_id)
        return await chat.replay(stream_name(chat_id), from_seq_num=cursor)

    @router.delete(
        prefix,
        status_code=202,
        response_class=Response,
        responses={202: {"description": "Stopped"}, 204: {"description": "Nothing running"}},
        openapi_extra=json_request_body(TanStackStopRequest),
    )
    async def stop_chat(request: Request) -> Response:
        req = await validated_body(request, TanStackStopRequest, max_body_bytes)
        if isinstance(req, Response):
            return req
        await authorize_chat(authorize, request, req.id)
        return await chat.stop_session(stream_name(req.id))

    add_history_route(router, prefix + "/{chat_id}/messages", chat, stream_name, authorize)

    return router


def _owned_by_chat(task: Awaitable[None]) -> None:
    """``wait_until`` that answers at once: the chat owns the task and drains it on close."""
