"""A follower that joins on the instance answering the chat is told 200 without asking S2:
the instance knows it runs the answer. Before, the join read the log first; when S2 lagged
the model (an overloaded S2 took seconds to serve the read: the bench's 200 concurrent
chats over HTTP), the read came back after the answer had ended and the follower got 204
while the live answer was still streaming. Its catch-up (what was stored before it joined)
comes from the writer's memory, so its first chunks need no S2 read either.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from helpers import body_text, parse_sse, user_message
from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan

pytestmark = pytest.mark.timeout(30)


async def test_a_follower_here_joins_while_s2_reads_are_held() -> None:
    plan = FaultPlan()
    chat = create_resumable_chat(basin=FaultPlanBasin(MemoryBasin(), plan))
    more = asyncio.Event()

    async def model(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        yield {"type": "text-delta", "id": "t", "delta": "a"}
        await more.wait()
        yield {"type": "text-delta", "id": "t", "delta": " b"}
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}

    try:
        live = await chat.make_resumable("chat-c1", model, message=user_message(), new_chat=True)
        assert live.status_code == 200
        generation = chat.running("chat-c1")
        assert generation is not None
        writer, stored = generation.writer, asyncio.Event()
        writer.listen(lambda got: stored.set() if got and got[-1].seq_num >= 4 else None)
        if writer.durable_seq_num < 5:  # user message, start, text-start, "a": stored
            await asyncio.wait_for(stored.wait(), 2)
        reads = plan.hold("read", times=None)  # S2 serves no read until released
        follower = await asyncio.wait_for(chat.replay("chat-c1"), 2)
        assert follower.status_code == 200
        again = await asyncio.wait_for(chat.replay("chat-c1", from_seq_num=10_000), 2)
        assert again.status_code == 416  # a cursor past what was sent, known here too
        frames = aiter(follower.body_iterator)
        first = await asyncio.wait_for(anext(frames), 2)  # caught up from the writer's memory
        assert b'"delta":"a"' in first
        reads.release()
        more.set()
        rest, sent = await asyncio.gather(body_text(follower), body_text(live))
        followed = first.decode() + rest
    finally:
        await chat.aclose()
    assert parse_sse(followed) == parse_sse(sent)
    assert parse_sse(followed)[-1] == (None, "[DONE]")
