"""A stop that reaches a generation before its task first ran still keeps the turn's message:
the accepted POST's user message is stored before the stop terminal, so the history reads
user, then the stopped answer (AI SDK and TanStack; the user pressing Stop right after Send).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from helpers import eventually, user_message
from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router, tanstack_router
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.app_server import serve_app

pytestmark = pytest.mark.timeout(30)

TANSTACK_USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "content": "hi"}]}


async def ai_sdk_source(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "start"}
    yield {"type": "text-start", "id": "t"}
    for _ in range(50):
        await asyncio.sleep(0.01)
        yield {"type": "text-delta", "id": "t", "delta": "x"}
    yield {"type": "text-end", "id": "t"}
    yield {"type": "finish"}


async def tanstack_source(
    messages: list[dict[str, Any]], signal: StopSignal
) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"}
    for _ in range(50):
        await asyncio.sleep(0.01)
        yield {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "x"}
    yield {"type": "TEXT_MESSAGE_END", "messageId": "m1"}


async def _stopped_before_it_ran(chat: Any, stream: str) -> list[dict[str, Any]]:
    """Stop ``stream`` before its generation's task first ran; its history once it ended
    (the 202 comes once the stopped answer's end is stored)."""
    generation = chat.running(stream)
    assert generation is not None and not generation.task.done()
    assert (await chat.stop_session(stream)).status_code == 202
    assert generation.task.done()
    messages: list[dict[str, Any]] = await chat.load_messages(stream)
    return messages


async def test_ai_sdk_stop_right_after_the_post_keeps_the_user_message() -> None:
    chat = create_resumable_chat(protocol="ai-sdk", basin=MemoryBasin())
    try:
        response = await chat.make_resumable("chat-c1", ai_sdk_source, message=user_message())
        assert response.status_code == 200
        messages = await _stopped_before_it_ran(chat, "chat-c1")
        roles = [m["role"] for m in messages]
        assert roles == ["user", "assistant"], messages
        assert messages[0]["id"] == "u1"
    finally:
        await chat.aclose()


async def test_tanstack_stop_right_after_the_post_keeps_the_user_message() -> None:
    chat = create_resumable_chat(protocol="tanstack", mode="session", basin=MemoryBasin())
    try:
        response = await chat.make_session_response(
            "tanstack-c1",
            messages=[TANSTACK_USER],
            source=tanstack_source,
            wait_until=lambda task: None,  # as tanstack_router does: answer 202 at once
        )
        assert response.status_code == 202
        messages = await _stopped_before_it_ran(chat, "tanstack-c1")
        assert [m["role"] for m in messages][:1] == ["user"], messages
    finally:
        await chat.aclose()


async def test_http_post_and_delete_at_once_keep_the_user_message() -> None:
    """The same through the routes: POST and DELETE sent together, 20 chats per protocol."""
    basin = MemoryBasin()
    chat = create_resumable_chat(protocol="ai-sdk", basin=basin)
    tanstack = create_resumable_chat(protocol="tanstack", mode="session", basin=basin)

    async def model(messages: list[dict[str, Any]], signal: StopSignal) -> Any:
        async for chunk in ai_sdk_source(signal):
            yield chunk

    app = FastAPI()
    app.include_router(ai_sdk_router(chat, model))
    app.include_router(tanstack_router(tanstack, tanstack_source))
    lost: list[str] = []
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        for n in range(20):
            post, stop = await asyncio.gather(
                client.post("/api/chat", json={"id": f"a{n}", "messages": [user_message()]}),
                client.delete(f"/api/chat/a{n}/stream"),
            )
            assert post.status_code == 200 and stop.status_code in (202, 204)
            history = (await client.get(f"/api/chat/a{n}/messages")).json()
            if not history or history[0]["role"] != "user":
                lost.append(f"ai-sdk a{n}: {[m['role'] for m in history]}")

            post, stop = await asyncio.gather(
                client.post(
                    "/api/tanstack/chat", json={"id": f"t{n}", "messages": [TANSTACK_USER]}
                ),
                client.request("DELETE", "/api/tanstack/chat", json={"id": f"t{n}"}),
            )
            assert post.status_code == 202 and stop.status_code in (202, 204)

            async def ended(name: str = f"tanstack-t{n}") -> bool:
                generation = tanstack.running(name)
                return generation is None or generation.task.done()

            await eventually(ended)
            history = (await client.get(f"/api/tanstack/chat/t{n}/messages")).json()
            if not history or history[0]["role"] != "user":
                lost.append(f"tanstack t{n}: {[m['role'] for m in history]}")
    await chat.aclose()
    await tanstack.aclose()
    assert lost == [], "accepted user messages missing from the log: " + "; ".join(lost)
