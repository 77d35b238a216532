"""A turn sent the moment the previous answer's stream ends is accepted, not refused with 409.

The AI SDK client sends a tool-result continuation (``sendAutomaticallyWhen``) as soon as it
reads ``[DONE]``; the answer's end fence may still be on its way to S2 then. The chat waits
for it instead of answering ``409 Stream already in use``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from chat_helpers import ScriptedModel, parse_sse, text_answer, user_message
from fastapi import FastAPI

from resumable_chat import create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router
from resumable_chat.log import read_range
from resumable_chat.s2 import MemoryBasin, is_terminal_fence
from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan


async def test_turn_right_after_done_is_accepted(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        for turn in range(15):
            app.model.chunks = text_answer(["one ", "two"], message_id=f"m{turn}")
            response = await app.post("c1", [user_message(f"turn {turn}", f"u{turn}")])
            assert response.status_code == 200, (turn, response.text)
            assert parse_sse(response.text)[-1] == (None, "[DONE]")
        records = await read_range(app.basin, "chat-c1", 0)
        assert sum(1 for r in records if is_terminal_fence(r)) == 15


async def test_a_turn_while_s2_still_has_not_stored_the_last_end_is_503_not_409() -> None:
    """S2 acknowledges nothing for longer than a lease after the answer's ``[DONE]``: the
    next turn is told to try again (503 + ``Retry-After``), not that the chat is in use; once
    S2 answers, the first answer is complete in the log and the next turn runs."""
    plan = FaultPlan()
    basin = FaultPlanBasin(MemoryBasin(), plan)
    model = ScriptedModel()
    chat = create_resumable_chat(basin=basin, lease_ms=300, heartbeat_ms=100)
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, model.stream, check_storage=False))
    try:
        async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            model.chunks = text_answer(["one ", "two"], message_id="m0")
            model.hold_at = len(model.chunks) - 1
            body = {"id": "c1", "messages": [user_message("turn 0", "u0")]}
            first = asyncio.create_task(client.post("/api/chat", json=body))
            await model.reached_hold.wait()
            generation = chat.running("chat-c1")
            assert generation is not None
            stored = asyncio.Event()
            generation.writer.listen(lambda got: stored.set() if got is None else None)
            while generation.writer.pending_bytes:  # what was sent so far is stored
                await asyncio.wait_for(_acked(generation.writer), 2)
            appends = plan.hold("append", times=None)
            model.gate.set()
            assert parse_sse((await first).text)[-1] == (None, "[DONE]")
            body = {"id": "c1", "messages": [user_message("turn 1", "u1")]}
            second = await client.post("/api/chat", json=body)
            assert (second.status_code, second.headers.get("retry-after")) == (503, "1")
            appends.release()
            await asyncio.wait_for(stored.wait(), 5)
            third = await client.post("/api/chat", json=body)
            assert third.status_code == 200
    finally:
        await chat.aclose(drain_timeout_s=2)
    records = await read_range(basin, "chat-c1", 0)
    assert sum(1 for r in records if is_terminal_fence(r)) == 2
    assert any(b"turn 1" in r.body for r in records)  # the third turn ran


async def _acked(writer: Any) -> None:
    acked = asyncio.Event()
    writer.listen(lambda got: acked.set())
    await acked.wait()
