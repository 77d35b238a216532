"""A model that yields a chunk per event-loop turn has its chunks sent many to one send, to
the live client and to a follower on the same process, while a chat-paced model's chunks
each go out as soon as they come. What a user sees: the same frames in the same order either
way, none later than ``COALESCE_WINDOW_S`` (1 ms) after the send before it; a busy answer
costs the server fewer sends (bench: persisted chunks/s, source yielding per chunk).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from helpers import parse_sse, user_message
from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.log.writer import DEFAULT_APPEND_SPACING_MS
from resumable_chat.s2 import MemoryBasin
from resumable_chat.sse import COALESCE_WINDOW_S
from resumable_chat.testing.virtual_time import run_virtual

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
    # one send per chunk without coalescing (N + 5 frames); a burst goes out in a few
    assert live_sends <= N * 0.2
    assert follower_sends <= N * 0.2


async def test_a_chat_paced_chunk_goes_out_alone_and_at_once() -> None:
    (live_sends, live_body), (_, follower_body) = await run(0.005)
    assert len(deltas(live_body)) == len(deltas(follower_body)) == N
    assert live_sends >= N  # every delta in its own send: nothing waited for company


def test_a_busy_answer_waits_at_most_the_window_for_company() -> None:
    """Chunks 0.2 ms apart (virtual time, so the figures are exact): each reaches the live
    client at most ``COALESCE_WINDOW_S`` after it was yielded, and they go out about one send
    per window, not one per chunk. The follower gets each once it is stored, which on a busy
    stream is at most the writer's append spacing (``DEFAULT_APPEND_SPACING_MS``, 1 ms)
    later: it sends what a stored batch brings at once."""
    gap_s = 0.0002
    yielded: dict[str, float] = {}

    async def source(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        yield {"type": "text-start", "id": "t"}
        for i in range(N):
            yielded[f"w{i} "] = loop.time()
            yield {"type": "text-delta", "id": "t", "delta": f"w{i} "}
            await asyncio.sleep(gap_s)
        yield {"type": "text-end", "id": "t"}

    async def received(response: Any, into: dict[str, float]) -> int:
        loop = asyncio.get_running_loop()
        pieces = 0
        async for frame in response.body_iterator:
            pieces += 1
            for _, data in parse_sse(frame.decode()):
                if '"text-delta"' in data:
                    into[data.split('"delta":"')[1].split('"')[0]] = loop.time()
        return pieces

    async def main() -> tuple[int, int, dict[str, float], dict[str, float]]:
        chat = create_resumable_chat(basin=MemoryBasin())
        try:
            live = await chat.make_resumable(
                "chat-w", source, message=user_message(), new_chat=True
            )
            live_at: dict[str, float] = {}
            reading = asyncio.create_task(received(live, live_at))
            await asyncio.sleep(gap_s * 3)
            follower_at: dict[str, float] = {}
            following = await received(await chat.replay("chat-w", None), follower_at)
            return await reading, following, live_at, follower_at
        finally:
            await chat.aclose()

    live_sends, follower_sends, live_at, follower_at = run_virtual(main())
    assert live_at.keys() == follower_at.keys() == yielded.keys()
    late = max(live_at[d] - yielded[d] for d in yielded)
    assert late <= COALESCE_WINDOW_S + 1e-9, late
    # the follower joins with the first chunks at once, then gets the rest as they come
    late = max(follower_at[d] - yielded[d] for d in yielded if yielded[d] > gap_s * 4)
    assert late <= DEFAULT_APPEND_SPACING_MS / 1000 + 1e-9, late
    windows = N * gap_s / COALESCE_WINDOW_S  # 20
    assert live_sends <= windows + 6 and follower_sends <= windows + 6, (live_sends, follower_sends)
