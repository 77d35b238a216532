"""A model that yields a chunk per event-loop turn has its chunks sent several to one send,
to the live client and to a follower on the same process, while a chat-paced model's chunks
each go out as soon as they come. What a user sees: the same frames in the same order either
way; a busy answer costs the server fewer sends (bench: persisted chunks/s, source yielding
per chunk).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from helpers import parse_sse, user_message
from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.s2 import MemoryBasin

pytestmark = pytest.mark.timeout(30)

N = 100


def model(pause_s: float) -> Any:
    async def source(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        for i in range(N):
            yield {"type": "text-delta", "id": "t", "delta": f"w{i} "}
            await asyncio.sleep(pause_s)  # 0: the next chunk comes on the next loop turn
        yield {"type": "text-end", "id": "t"}

    return source


async def sends(response: Any) -> tuple[int, str]:
    """How many pieces the response's body came in, and the body."""
    pieces = 0
    body = b""
    async for frame in response.body_iterator:
        pieces += 1
        body += frame
    return pieces, body.decode()


def deltas(body: str) -> list[str]:
    return [d for _, d in parse_sse(body) if '"text-delta"' in d]


async def run(pause_s: float) -> tuple[tuple[int, str], tuple[int, str]]:
    chat = create_resumable_chat(basin=MemoryBasin())
    try:
        live = await chat.make_resumable(
            "chat-c", model(pause_s), message=user_message(), new_chat=True
        )
        frames = aiter(live.body_iterator)
        first = await anext(frames)  # the answer runs: a follower joins now
        follower = await chat.replay("chat-c", None)

        async def rest() -> tuple[int, str]:
            pieces, body = 1, first
            async for frame in frames:
                pieces += 1
                body += frame
            return pieces, body.decode()

        return await asyncio.gather(rest(), sends(follower))
    finally:
        await chat.aclose()


async def test_a_chunk_per_loop_turn_goes_out_several_to_a_send() -> None:
    (live_sends, live_body), (follower_sends, follower_body) = await run(0)
    expected = [f'"delta":"w{i} "' for i in range(N)]
    assert [d.split(",")[-1].rstrip("}") for d in deltas(live_body)] == expected
    assert [d.split(",")[-1].rstrip("}") for d in deltas(follower_body)] == expected
    assert live_body.endswith("data: [DONE]\n\n") and follower_body.endswith("data: [DONE]\n\n")
    # one send per chunk without coalescing (N + 5 frames); about two chunks a send with it
    assert live_sends <= N * 0.6
    assert follower_sends <= N * 0.6


async def test_a_chat_paced_chunk_goes_out_alone_and_at_once() -> None:
    (live_sends, live_body), (_, follower_body) = await run(0.005)
    assert len(deltas(live_body)) == len(deltas(follower_body)) == N
    assert live_sends >= N  # every delta in its own send: nothing waited for company
