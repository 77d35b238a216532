"""The history route the AI SDK and TanStack routers share: ``GET {prefix}/{id}/messages``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from resumable_chat.chat.core import ResumableChat
from resumable_chat.fastapi.requests import Authorize, ChatId, authorize_chat


def add_history_route(
    router: APIRouter,
    path: str,
    chat: ResumableChat,
    stream_name: Callable[[str], str],
    authorize: Authorize | None,
) -> None:
    """Add ``GET {path}`` (a path with a ``{chat_id}`` parameter) to ``router``: the chat's
    messages folded from the log, 200 JSON with an ``ETag``, or 304 when the request's
    ``If-None-Match`` names the current tag
    (:meth:`~resumable_chat.ResumableChat.messages_response`).

    Args:
        router: the router to add the route to.
        path: the route's path, e.g. ``"/api/chat/{chat_id}/messages"``.
        chat: the chat whose log is read.
        stream_name: chat id → S2 stream name.
        authorize: the router's :data:`Authorize` hook, called with the chat id before the
            log is read; it raises ``HTTPException`` to refuse.
    """

    @router.get(
        path,
        response_class=Response,
        response_model=list[dict[str, Any]],
        responses={304: {"description": "The history is the one the If-None-Match tag names"}},
    )
    async def chat_messages(
        request: Request,
        chat_id: ChatId,
        if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
    ) -> Response:
        await authorize_chat(authorize, request, chat_id)
        return await chat.messages_response(stream_name(chat_id), if_none_match=if_none_match)
