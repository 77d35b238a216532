"""The AI SDK ``useChat`` routes (``DefaultChatTransport`` defaults).

See :mod:`resumable_chat.fastapi`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable
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
    ChatId,
    authorize_chat,
    json_request_body,
    resume_cursor,
    startup_check,
    storage_policy,
    storage_route_class,
    validated_body,
)

__all__ = ["AiSdkChatRequest", "AiSdkSource", "UIMessageModel", "ai_sdk_router", "with_history"]

logger = logging.getLogger("resumable_chat.fastapi")


class UIMessageModel(BaseModel):
    """An AI SDK ``UIMessage`` as ``DefaultChatTransport`` sends it (extra keys are kept)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=200)
    role: Literal["system", "user", "assistant"]
    parts: list[dict[str, Any]] = Field(default_factory=list)
    metadata: Any = None

    @field_validator("parts")
    @classmethod
    def _typed_parts(cls, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each part names its ``type`` (a non-empty string), and a ``text`` or ``reasoning``
        part carries its ``text`` as a string, as the AI SDK's own UIMessage schema demands
        (``ai`` ``src/ui/validate-ui-messages.ts``); other keys and part types pass as sent.
        Raises ``ValueError`` (a 422 naming the part) otherwise."""
        for index, part in enumerate(parts):
            kind = part.get("type")
            if not isinstance(kind, str) or not kind:
                raise ValueError(f"part {index} has no type (a non-empty string)")
            if kind in ("text", "reasoning") and not isinstance(part.get("text"), str):
                raise ValueError(f"part {index} ({kind}) needs its text as a string")
        return parts


class AiSdkChatRequest(BaseModel):
    """The POST body of ``DefaultChatTransport``: ``{id, messages, trigger, messageId?}``,
    or ``{id, message}`` with only the newest message, the body the AI SDK docs give for
    ``prepareSendMessagesRequest`` when the server keeps the history ("Send Custom Body from
    useChat", https://ai-sdk.dev/cookbook/next/send-custom-body-from-use-chat). Exactly one
    of ``messages`` and ``message``; anything else is a 422."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=CHAT_ID_PATTERN)
    messages: list[UIMessageModel] | None = Field(default=None, min_length=1)
    message: UIMessageModel | None = None
    trigger: Literal["submit-message", "regenerate-message"] = "submit-message"
    messageId: str | None = None

    @model_validator(mode="after")
    def _one_of_messages_or_message(self) -> AiSdkChatRequest:
        """``messages`` (the whole conversation) or ``message`` (the newest one), not both
        and not neither. Raises ``ValueError`` (a 422) otherwise."""
        if (self.messages is None) == (self.message is None):
            raise ValueError("send either messages (the conversation) or message (the newest one)")
        return self


def with_history(history: list[dict[str, Any]], message: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation a ``{id, message}`` request stands for: the chat's stored ``history``
    (``UIMessage`` dicts, as :meth:`~resumable_chat.ResumableChat.load_messages` gives them)
    with ``message`` at its end.

    A message whose id is already in the history takes the place of that message, and the
    messages after it are dropped, as the client dropped them: ``regenerate()`` sends the
    last user message again (its old answer goes), and a tool result continues the
    assistant message it belongs to (the client's copy, with the outputs, replaces it).

    Args:
        history: the stored messages, oldest first.
        message: the request's message.

    Returns:
        a new list: the history up to the message's id (or all of it), then ``message``.
    """
    for index, stored in enumerate(history):
        if stored.get("id") == message["id"]:
            return [*history[:index], message]
    return [*history, message]


#: ``source(messages, signal)``: the model's chunks for the turn; ``messages`` are the
#: request's ``UIMessage`` dicts, ``signal`` is set when the generation is stopped.
AiSdkSource = Callable[[list[dict[str, Any]], StopSignal], AsyncIterable[dict[str, Any]]]


def ai_sdk_router(
    chat: ResumableChat,
    source: AiSdkSource,
    *,
    prefix: str = "/api/chat",
    stream_name: Callable[[str], str] = lambda chat_id: f"chat-{chat_id}",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    authorize: Authorize | None = None,
    check_storage: bool = True,
) -> APIRouter:
    """Routes for Vercel AI SDK ``useChat`` with ``DefaultChatTransport`` and ``resume: true``.

    Args:
        chat: a ``ResumableChat`` built with ``protocol="ai-sdk"``.
        source: called once per accepted POST with the request's messages and the stop
            signal; returns the answer's ``UIMessageChunk`` dicts. A body with only the
            newest ``message`` (``prepareSendMessagesRequest`` returning ``{id, message}``,
            which keeps long chats under ``max_body_bytes``) gets the stored history with
            that message at its end (:func:`with_history`; one read of the chat's log).
            Its first chunk is fetched while the claim is in flight (the chat's
            ``overlap_claim``, on by default); a claim lost to another instance closes it
            unread.
        prefix: the transport's ``api`` path.
        stream_name: chat id → S2 stream name.
        max_body_bytes: larger POST bodies get 413 (bytes).
        authorize: :data:`Authorize` hook, called with the chat id before every read, write
            and stop (after the request is validated); it raises ``HTTPException`` to refuse.
        check_storage: the router's lifespan awaits ``chat.check()`` at start-up (one cheap
            S2 request; nothing on the embedded log), so a refused token, a missing basin or
            an unreachable S2 stops the app with the typed ``S2Error`` naming the cause.
            ``False`` skips it (the routes then answer 500 or 503 per request).

    Routes:
        ``POST {prefix}`` ``{id, messages, trigger?, messageId?}`` or ``{id, message}`` →
        200 live SSE | 409 ``Stream already in use`` (an answer runs, or, for a body
        naming ``trigger: "submit-message"`` (``DefaultChatTransport`` sends it), the
        chat's latest answer already answered this very message:
        ``once_per_message`` of :meth:`~resumable_chat.ResumableChat.make_resumable`) |
        400/413/422 JSON.
        ``GET {prefix}/{id}/stream`` → 200 replay SSE (after the cursor ``?from=``, else
        ``Last-Event-ID``) | 204 nothing running | 400 a ``Last-Event-ID`` not a cursor.
        ``DELETE {prefix}/{id}/stream`` → 202 stopped | 204 nothing running.
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
        response_class=Response,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "Live UI message stream"},
            409: {"description": "A generation is already running on this chat"},
        },
        openapi_extra=json_request_body(AiSdkChatRequest),
    )
    async def post_chat(request: Request) -> Response:
        req = await validated_body(request, AiSdkChatRequest, max_body_bytes)
        if isinstance(req, Response):
            return req
        await authorize_chat(authorize, request, req.id)
        if req.message is not None:  # the newest message only: the rest is in the log
            history = await chat.load_messages(stream_name(req.id))
            messages = with_history(history, req.message.model_dump(exclude_none=True))
        else:
            messages = [m.model_dump(exclude_none=True) for m in req.messages or ()]
        last = messages[-1]
        message_id = last["id"] if last["role"] == "assistant" else None

        def make_source(signal: StopSignal) -> AsyncIterable[dict[str, Any]]:
            return source(messages, signal)

        return await chat.make_resumable(
            stream_name(req.id),
            make_source,
            message=last,
            message_id=message_id,
            new_chat=len(messages) == 1,
            # a second copy of this request (two tabs, two instances, a retry) gets 409 even
            # when it comes after the first one's whole answer; regenerate asks for another,
            # and a body without its trigger (a custom {id, message}) cannot tell them apart
            once_per_message="trigger" in req.model_fields_set and req.trigger == "submit-message",
        )

    @router.get(
        prefix + "/{chat_id}/stream",
        response_class=Response,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "The running answer"},
            204: {"description": "Nothing is running"},
        },
    )
    async def resume_chat(
        request: Request,
        chat_id: ChatId,
        from_: Annotated[int | None, Query(alias="from", ge=0)] = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> Response:
        cursor = resume_cursor(from_, last_event_id)
        await authorize_chat(authorize, request, chat_id)
        return await chat.replay(stream_name(chat_id), from_seq_num=cursor)

    @router.delete(
        prefix + "/{chat_id}/stream",
        status_code=202,
        response_class=Response,
        responses={202: {"description": "Stopped"}, 204: {"description": "Nothing running"}},
    )
    async def stop_chat(request: Request, chat_id: ChatId) -> Response:
        await authorize_chat(authorize, request, chat_id)
        return await chat.stop_session(stream_name(chat_id))

    add_history_route(router, prefix + "/{chat_id}/messages", chat, stream_name, authorize)

    return router
