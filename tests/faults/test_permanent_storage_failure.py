"""S2 refusing an answer's records for good (here 403: a revoked token) ends the answer the way
the log ends it: the model is cancelled, the live client gets the error terminal instead of an
answer that runs on to a ``finish`` no reader of the log will ever see, and the chat takes the
next turn at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fault_helpers import FaultyS2, parse_sse, user_message

from resumable_chat import StopSignal, create_resumable_chat, create_resumable_stream_context
from resumable_chat.fastapi import ai_sdk_router
from resumable_chat.log import RecordKind, classify
from resumable_chat.s2 import S2AuthError
from resumable_chat.testing.app_server import serve_app

pytestmark = pytest.mark.timeout(30)


async def test_an_answer_s2_refuses_for_good_ends_live_with_the_error(
    faulty_s2: FaultyS2,
) -> None:
    basin = faulty_s2.basin()
    chat = create_resumable_chat(protocol="ai-sdk", basin=basin)
    cancelled = asyncio.Event()
    turns = 0

    async def model(
        messages: list[dict[str, Any]], signal: StopSignal
    ) -> AsyncIterator[dict[str, Any]]:
        nonlocal turns
        turns += 1
        yield {"type": "start"}
        yield {"type": "text-start", "id": "t"}
        yield {"type": "text-delta", "id": "t", "delta": "one"}
        if turns > 1:
            yield {"type": "text-end", "id": "t"}
            yield {"type": "finish"}
            return
        faulty_s2.plan.fail("append", status=403, times=1)  # the next append is refused
        yield {"type": "text-delta", "id": "t", "delta": " two"}
        try:
            await asyncio.Event().wait()  # a model still thinking: only a cancel ends it
        except asyncio.CancelledError:
            cancelled.set()
            raise

    app = FastAPI()
    app.include_router(ai_sdk_router(chat, model))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        body = {"id": "c1", "messages": [user_message()]}
        live = await client.post("/api/chat", json=body)
        assert live.status_code == 200
        events = [data for _, data in parse_sse(live.text)]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(data) for data in events[:-1]]
        types = [chunk["type"] for chunk in chunks]
        assert "finish" not in types, types
        assert types[-1] == "error", types
        assert cancelled.is_set(), "the model was not cancelled"

        records = await faulty_s2.stored(basin, "chat-c1")
        assert classify(records[-1]) is RecordKind.ERROR, "the log is not closed as failed"

        again = await client.post("/api/chat", json={**body, "messages": [user_message("2")]})
        assert again.status_code == 200 and '"finish"' in again.text
    await chat.aclose()


async def test_a_text_stream_s2_refuses_for_good_raises_on_its_producers_reader(
    faulty_s2: FaultyS2,
) -> None:
    basin = faulty_s2.basin()
    streams = create_resumable_stream_context(basin=basin, linger_ms=0)
    cancelled = asyncio.Event()

    async def source() -> AsyncIterator[str]:
        yield "one "
        faulty_s2.plan.fail("append", status=403, times=1)
        yield "two "
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    stream = await streams.create_new_resumable_stream("s1", source)
    assert stream is not None
    received: list[str] = []
    with pytest.raises(S2AuthError):
        async for chunk in stream:
            received.append(chunk)
    assert received == ["one ", "two "]
    assert cancelled.is_set()
    assert await streams.has_existing_stream("s1") == "failed"
    await streams.aclose()
