"""What a running answer leaves for CPython's cyclic garbage collector.

A full collection walks every tracked object and pauses the whole process, every live answer
and follower with it; it comes each time the tracked objects grow by a quarter. So what the
process holds per chunk must not be tracked: the answer's live response, its writer's kept
records and a follower's shared window grow with the chunks in bytes, arrays and tuples the
collector stops looking at, and the tracked objects grow with the open responses only (the
deployment guide, docs/guides/multi-instance.md, says so). When the writer kept its records
as objects, 300 answers at 50 chunks/s doubled the tracked objects of the bench app.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest

from helpers import user_message
from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.s2 import MemoryBasin

pytestmark = pytest.mark.timeout(60)


class Reader:
    """Reads a response's body in a task, counting the text deltas it got."""

    def __init__(self, response: Any) -> None:
        self.deltas = 0
        self.moved = asyncio.Event()
        self.task = asyncio.create_task(self._read(response))

    async def _read(self, response: Any) -> None:
        async for frame in response.body_iterator:
            self.deltas += frame.count(b'"text-delta"')
            self.moved.set()

    async def got(self, count: int) -> None:
        while self.deltas < count:  # the test's timeout bounds the wait
            self.moved.clear()
            await self.moved.wait()


async def test_a_long_answer_and_its_follower_add_no_tracked_object_per_chunk() -> None:
    chat = create_resumable_chat(basin=MemoryBasin())
    allowed = 0
    moved = asyncio.Event()

    async def model(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        sent = 0
        while allowed >= 0:
            if sent >= allowed:
                moved.clear()
                await moved.wait()
                continue
            yield {"type": "text-delta", "id": "t", "delta": f"w{sent} "}
            sent += 1
            if sent % 16 == 0:
                await asyncio.sleep(0)  # a model's network reads: batches of one and more
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}

    def release(count: int) -> None:
        nonlocal allowed
        allowed = count
        moved.set()

    try:
        live = Reader(
            await chat.make_resumable("chat-gc", model, message=user_message(), new_chat=True)
        )
        follower = Reader(await chat.replay("chat-gc"))
        release(300)
        await live.got(300)
        await follower.got(300)
        gc.collect()
        before = len(gc.get_objects())
        release(6300)
        await live.got(6300)
        await follower.got(6300)
        gc.collect()
        # what the last batch in flight still holds, at most; kept as objects: one per chunk
        assert len(gc.get_objects()) - before < 1000
        release(-1)
        await asyncio.wait_for(asyncio.gather(live.task, follower.task), 10)
    finally:
        await chat.aclose()
