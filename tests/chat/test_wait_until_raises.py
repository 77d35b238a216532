"""A ``wait_until`` hook that raises (a serverless host refusing the task): the caller gets
the error, and the answer it will never serve is stopped, not left running unread; the log
keeps the turn's message and a stopped answer, and the next turn works."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from helpers import user_message
from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.s2 import MemoryBasin

pytestmark = pytest.mark.timeout(30)


async def model(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "text-start", "id": "t"}
    yield {"type": "text-delta", "id": "t", "delta": "a"}
    await asyncio.Event().wait()  # an answer that would run forever if nobody stopped it
    yield {"type": "text-end", "id": "t"}


def refuse(task: asyncio.Task[None]) -> None:
    raise RuntimeError("the host refused the task")


async def test_a_raising_wait_until_stops_the_answer() -> None:
    chat = create_resumable_chat(basin=MemoryBasin())
    try:
        with pytest.raises(RuntimeError, match="refused"):
            await chat.make_resumable("chat-w", model, message=user_message(), wait_until=refuse)
        generation = chat.running("chat-w")
        assert generation is not None
        await asyncio.wait_for(generation.task, 5)
        assert generation.outcome == "stopped"
        history = await chat.load_messages("chat-w")
        assert [m["role"] for m in history] == ["user", "assistant"]
        assert history[1]["metadata"] == {"stopped": True}

        async def short(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
            yield {"type": "finish"}

        again = await chat.make_resumable("chat-w", short, message=user_message("next", "u2"))
        assert again.status_code == 200
    finally:
        await chat.aclose()
