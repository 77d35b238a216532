"""A text stream can never be a chat's log: the text-stream router and the chat routers on one
basin (the default set-up: both read the same S2 variables) keep their streams apart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from helpers import text_answer, user_message
from resumable_chat import StopSignal, create_resumable_chat, create_resumable_stream_context
from resumable_chat.fastapi import ai_sdk_router, tanstack_router
from resumable_chat.fastapi.streams import resumable_stream_router
from resumable_chat.log import read_range
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.app_server import serve_app
from resumable_chat.text_streams import RESERVED_STREAM_ID_PREFIXES, ReservedStreamIdError

pytestmark = pytest.mark.timeout(30)


async def tanstack_model(
    messages: list[dict[str, Any]], signal: StopSignal
) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "RUN_STARTED", "runId": "r", "threadId": "t"}
    yield {"type": "RUN_FINISHED", "runId": "r", "finishReason": "stop"}


async def test_the_stream_router_cannot_read_or_replace_a_chat() -> None:
    basin = MemoryBasin()
    chat = create_resumable_chat(protocol="ai-sdk", basin=basin)
    tanstack = create_resumable_chat(protocol="tanstack", basin=basin)
    streams = create_resumable_stream_context(basin=basin)
    made: list[str] = []

    async def make_stream(stream_id: str, request: Request) -> AsyncIterator[str]:
        made.append(stream_id)
        yield "data: text\n\n"

    app = FastAPI()
    app.include_router(ai_sdk_router(chat, text_answer(lambda _: "the answer")))
    app.include_router(tanstack_router(tanstack, tanstack_model))
    app.include_router(resumable_stream_router(streams, make_stream))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        answer = await client.post("/api/chat", json={"id": "v1", "messages": [user_message()]})
        assert answer.status_code == 200 and "the answer" in answer.text
        posted = await client.post(
            "/api/tanstack/chat", json={"id": "v1", "messages": [user_message()]}
        )
        assert posted.status_code == 202
        history = (await client.get("/api/chat/v1/messages")).json()
        logs = {name: await read_range(basin, name, 0) for name in ("chat-v1", "tanstack-v1")}

        for stream_id in ("chat-v1", "tanstack-v1", "agui-run-r", "agui-x"):
            for method in ("GET", "POST"):
                refused = await client.request(method, f"/api/streams/{stream_id}")
                assert refused.status_code == 400, (method, stream_id, refused.text)
                assert "reserved" in refused.text and stream_id in refused.text
        assert made == []
        assert (await client.get("/api/chat/v1/messages")).json() == history
        for name, records in logs.items():
            assert await read_range(basin, name, 0) == records, f"{name} was written to"

        # the same words in another case, or not at the start, are ordinary ids
        for stream_id in ("Chat-v1", "mychat-v1"):
            created = await client.post(f"/api/streams/{stream_id}")
            assert (created.status_code, created.text) == (200, "data: text\n\n")
        assert made == ["Chat-v1", "mychat-v1"]
    await chat.aclose()
    await tanstack.aclose()
    await streams.aclose()


@pytest.mark.parametrize("key_prefix", ["", "app/"])
async def test_the_context_refuses_ids_that_name_a_chat_log(key_prefix: str) -> None:
    streams = create_resumable_stream_context(basin=MemoryBasin(), key_prefix=key_prefix)

    def never() -> AsyncIterator[str]:
        raise AssertionError("make_stream must not run for a reserved id")

    for prefix in RESERVED_STREAM_ID_PREFIXES:
        stream_id = prefix + "1"
        calls = (
            streams.resumable_stream(stream_id, never),
            streams.create_new_resumable_stream(stream_id, never),
            streams.resume_existing_stream(stream_id),
            streams.has_existing_stream(stream_id),
            streams.delete_stream(stream_id),
        )
        for call in calls:
            with pytest.raises(ReservedStreamIdError, match="reserved") as raised:
                await call
            assert raised.value.stream_id == stream_id
            assert isinstance(raised.value, ValueError)
    await streams.aclose()
