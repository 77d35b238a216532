"""Fixtures for the chat core tests: a chat app served by a real uvicorn on 127.0.0.1.

``basin`` comes from the ``resumable_chat.testing`` pytest plugin: every test runs on the
embedded ``MemoryBasin``, on ``HttpBasin`` against the S2-compatible test server over real
HTTP, and on real S2 when ``S2_ACCESS_TOKEN`` and ``S2_BASIN`` are set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from chat_helpers import ScriptedModel, parse_sse
from fastapi import FastAPI

from resumable_chat import ResumableChat, create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router, tanstack_router
from resumable_chat.s2 import Basin
from resumable_chat.testing.app_server import serve_app


@dataclass
class ChatApp:
    """A running chat app: its client, chat object and scripted model."""

    client: httpx.AsyncClient
    chat: ResumableChat
    model: ScriptedModel
    basin: Basin

    async def post(self, chat_id: str, messages: list[dict[str, Any]]) -> httpx.Response:
        return await self.client.post("/api/chat", json={"id": chat_id, "messages": messages})


@pytest.fixture
def make_chat_app(basin: Basin) -> Callable[..., Any]:
    """Factory: ``async with make_chat_app(mode=...) as app`` serves a chat on uvicorn."""

    @contextlib.asynccontextmanager
    async def factory(**options: Any) -> AsyncIterator[ChatApp]:
        model = ScriptedModel()
        chat = create_resumable_chat(basin=basin, **options)
        app = FastAPI()
        app.include_router(ai_sdk_router(chat, model.stream))
        async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            try:
                yield ChatApp(client, chat, model, basin)
            finally:
                await chat.aclose(drain_timeout_s=2)

    return factory


@dataclass
class TanStackApp:
    """A running TanStack session app: client, chat, scripted model and basin."""

    client: httpx.AsyncClient
    chat: ResumableChat
    model: ScriptedModel
    basin: Basin

    async def post(self, chat_id: str, messages: list[dict[str, Any]]) -> httpx.Response:
        return await self.client.post(
            "/api/tanstack/chat", json={"id": chat_id, "messages": messages}
        )

    async def stop(self, chat_id: str) -> httpx.Response:
        return await self.client.request("DELETE", "/api/tanstack/chat", json={"id": chat_id})

    async def replay_frames(
        self, chat_id: str, count: int, from_: int | None = None, wait_s: float = 5
    ) -> list[tuple[str | None, str]]:
        """The first ``count`` events of a (never-ending) session replay."""
        params: dict[str, Any] = {"id": chat_id}
        if from_ is not None:
            params["from"] = from_
        events: list[tuple[str | None, str]] = []
        buffer = ""
        async with asyncio.timeout(wait_s):
            async with self.client.stream(
                "GET", "/api/tanstack/chat/replay", params=params
            ) as response:
                assert response.status_code == 200, response.status_code
                async for text in response.aiter_text():
                    buffer += text
                    *blocks, buffer = buffer.split("\n\n")
                    for block in blocks:
                        events.extend(parse_sse(block + "\n\n"))
                    if len(events) >= count:
                        return events[:count]
        return events


@pytest.fixture
def make_tanstack_app(basin: Basin) -> Callable[..., Any]:
    """Factory: ``async with make_tanstack_app() as app`` serves TanStack session routes."""

    @contextlib.asynccontextmanager
    async def factory(**options: Any) -> AsyncIterator[TanStackApp]:
        model = ScriptedModel()
        options.setdefault("mode", "session")
        chat = create_resumable_chat(protocol="tanstack", basin=basin, **options)
        app = FastAPI()
        app.include_router(tanstack_router(chat, model.stream))
        async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            try:
                yield TanStackApp(client, chat, model, basin)
            finally:
                await chat.aclose(drain_timeout_s=2)

    return factory
