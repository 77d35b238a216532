"""S2 refusing a follower's read past its retries breaks that follower's stream off (the
client sees a cut stream and reconnects), and the failure goes through the routers' storage
error policy (logged once per cause) instead of reaching the ASGI server as an exception
with a traceback per follower.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.fastapi import tanstack_router
from resumable_chat.s2 import HttpBasin
from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.fault_plan import FaultPlan
from resumable_chat.testing.pytest_plugin import unique_basin_name
from resumable_chat.testing.s2_server import create_app

pytestmark = pytest.mark.timeout(60)

USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "content": "hi"}]}


async def source(
    messages: list[dict[str, Any]], signal: StopSignal
) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"}
    yield {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "hello"}
    yield {"type": "TEXT_MESSAGE_END", "messageId": "m1"}


class EscapedExceptions:
    """ASGI wrapper recording exceptions that escape the app (what uvicorn logs as
    "Exception in ASGI application" with a traceback)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.escaped: list[BaseException] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if scope["type"] == "http":
                self.escaped.append(exc)
            raise


async def _read(client: httpx.AsyncClient, url: str) -> int:
    try:
        async with client.stream("GET", url) as response:
            async for _ in response.aiter_bytes():
                pass
            return response.status_code
    except httpx.HTTPError:
        return -1  # broken off


async def test_a_failed_follow_does_not_escape_as_an_asgi_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plan = FaultPlan()
    s2 = create_app(faults=plan, ping_interval_s=0.5)
    async with serve_app(s2) as s2_url:
        basin = HttpBasin(
            unique_basin_name(),
            account_endpoint=s2_url,
            basin_endpoint=s2_url,
            access_token="test",
            retry_base_s=0.005,
            retry_max_backoff_s=0.02,
            max_attempts=2,
            deadline_s=0.5,  # a follow gives up after that long failing
        )
        chat = create_resumable_chat(protocol="tanstack", mode="session", basin=basin)
        app = FastAPI()
        app.include_router(tanstack_router(chat, source, check_storage=False))
        wrapped = EscapedExceptions(app)
        async with serve_app(wrapped) as url, httpx.AsyncClient(base_url=url, timeout=10) as c:
            posted = await c.post("/api/tanstack/chat", json={"id": "c1", "messages": [USER]})
            assert posted.status_code == 202
            generation = chat.running("tanstack-c1")
            if generation is not None:
                await asyncio.wait_for(generation.task, 10)  # the run is short; let it end
            plan.fail("read_session", status=503, times=None)
            statuses = await asyncio.wait_for(
                asyncio.gather(
                    *(_read(c, "/api/tanstack/chat/replay?id=c1&from=0") for _ in range(3))
                ),
                20,
            )
            plan.clear()
        await chat.aclose()
        await basin.aclose()
    assert wrapped.escaped == [], (statuses, [repr(e) for e in wrapped.escaped])
    assert statuses == [-1, -1, -1]  # each follower's stream broke off
    reports = [r for r in caplog.records if "chat storage is unavailable" in r.getMessage()]
    assert len(reports) == 1  # once per cause, not once per follower
