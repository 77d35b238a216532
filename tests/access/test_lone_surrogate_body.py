"""A request body whose JSON holds a lone UTF-16 surrogate escape (``"\\ud83d"``): valid JSON
text, and what a browser sends for a string cut inside an emoji (``JSON.stringify`` writes
lone surrogates as escapes), but not Unicode text, so the message cannot be stored as UTF-8.
Every chat route answers 400 with a readable ``detail`` and leaves the log untouched.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from resumable_chat import create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router, tanstack_router
from resumable_chat.fastapi.agui import agui_router
from resumable_chat.log import read_range
from resumable_chat.s2.memory import MemoryBasin


async def _ai_sdk_source(messages, signal):  # type: ignore[no-untyped-def]
    yield {"type": "start"}
    yield {"type": "finish"}


async def _tanstack_source(messages, signal):  # type: ignore[no-untyped-def]
    yield {"type": "RUN_STARTED", "runId": "r", "threadId": "t", "timestamp": 1}
    yield {
        "type": "RUN_FINISHED",
        "runId": "r",
        "threadId": "t",
        "finishReason": "stop",
        "timestamp": 1,
    }


async def _agui_source(run, signal):  # type: ignore[no-untyped-def]
    async for chunk in _tanstack_source(run.messages, signal):
        yield chunk


# Raw JSON text: the \ud83d escape stays a lone surrogate after parsing.
CASES = {
    "ai-sdk": (
        "/api/chat",
        '{"id":"c1","trigger":"submit-message","messages":[{"id":"u1","role":"user",'
        '"parts":[{"type":"text","text":"cut emoji \\ud83d"}]}]}',
        "chat-c1",
    ),
    "tanstack": (
        "/api/tanstack/chat",
        '{"id":"c1","messages":[{"id":"u1","role":"user",'
        '"parts":[{"type":"text","content":"cut emoji \\ud83d"}]}]}',
        "tanstack-c1",
    ),
    "tanstack, AI SDK-shaped text part": (
        "/api/tanstack/chat",
        '{"id":"c1","messages":[{"id":"u1","role":"user",'
        '"parts":[{"type":"text","text":"cut emoji \\ud83d"}]}]}',
        "tanstack-c1",
    ),
    "agui": (
        "/api/agui",
        '{"threadId":"t1","runId":"run-1","messages":[{"id":"u1","role":"user",'
        '"content":"cut emoji \\ud83d"}]}',
        "tanstack-t1",
    ),
    # stored only in the run's first events (run.accepted, RUN_STARTED): it was a 500
    "agui, parentRunId": (
        "/api/agui",
        '{"threadId":"t1","runId":"run-1","parentRunId":"\\ud800","messages":[{"id":"u1",'
        '"role":"user","content":"hi"}]}',
        "tanstack-t1",
    ),
}


@pytest.mark.parametrize("route", sorted(CASES))
async def test_a_lone_surrogate_in_the_message_gets_a_4xx_not_a_500(route: str) -> None:
    basin = MemoryBasin()
    ai = create_resumable_chat(protocol="ai-sdk", basin=basin)
    ts = create_resumable_chat(protocol="tanstack", mode="session", basin=basin)
    app = FastAPI()
    app.include_router(ai_sdk_router(ai, _ai_sdk_source, check_storage=False))
    app.include_router(tanstack_router(ts, _tanstack_source, check_storage=False))
    app.include_router(agui_router(ts, _agui_source, check_storage=False))
    path, body, stream = CASES[route]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(
                path, content=body.encode(), headers={"content-type": "application/json"}
            )
        assert response.status_code == 400, (response.status_code, response.text[:200])
        assert "cannot be stored" in response.json()["detail"]
        assert await read_range(basin, stream, 0) == []  # the log is not touched
    finally:
        await ai.aclose(drain_timeout_s=1)
        await ts.aclose(drain_timeout_s=1)
