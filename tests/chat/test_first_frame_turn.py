"""The first frame of a live answer goes out in the loop turn its model yields it, as from a
plain ``StreamingResponse``, not a turn later. Under load a loop turn is every other request's
work, so one turn more is what a user waits longer for the first chunk (bench: added
first-chunk time, 50 concurrent). On a basin over the network, the model is asked before the
claim's S2 request is built, so its time to first token does not start after that CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from helpers import user_message
from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.s2 import MemoryBasin
from resumable_chat.s2.records import AppendAck, AppendInput

pytestmark = pytest.mark.timeout(30)


class TurnCounter:
    """Counts event-loop turns: a callback that schedules itself again every turn."""

    def __init__(self) -> None:
        self.turns = 0
        self._handle: asyncio.Handle | None = None

    def _tick(self) -> None:
        self.turns += 1
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def __enter__(self) -> TurnCounter:
        self._handle = asyncio.get_running_loop().call_soon(self._tick)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.cancel()


async def model(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "text-start", "id": "t"}  # at once, like a model answering from cache
    yield {"type": "text-delta", "id": "t", "delta": "hello"}
    yield {"type": "text-end", "id": "t"}


async def plain_first_chunk_turn() -> int:
    """Loop turns from a request to the first chunk of a plain ``StreamingResponse``: its
    body is iterated by a task started with the response (Starlette's ``StreamingResponse``),
    which yields the model's first chunk on that task's first step."""
    with TurnCounter() as counter:
        first = asyncio.get_running_loop().create_future()

        async def pump() -> None:
            async for _chunk in model(StopSignal()):
                first.set_result(counter.turns)
                break

        task = asyncio.create_task(pump())
        turns: int = await first
        await task
    return turns


@pytest.mark.parametrize("respond_before_claim", [False, True])
async def test_the_first_frame_comes_in_the_turn_a_plain_response_sends_it(
    respond_before_claim: bool,
) -> None:
    reference = await plain_first_chunk_turn()
    chat = create_resumable_chat(basin=MemoryBasin(), respond_before_claim=respond_before_claim)
    try:
        with TurnCounter() as counter:  # from the request on
            live = await chat.make_resumable(
                "chat-first", model, message=user_message(), new_chat=True
            )
            frames = aiter(live.body_iterator)
            first = await anext(frames)
            turns = counter.turns
        assert b"data: " in first
        assert turns <= reference, f"first frame on loop turn {turns}, plain on {reference}"
        async for _ in frames:
            pass
    finally:
        await chat.aclose()


class RemoteLikeBasin(MemoryBasin):
    """A ``MemoryBasin`` that says its calls go over the network (as ``HttpBasin``'s do) and
    notes each append in ``events``."""

    in_memory = False

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    async def append(self, stream: str, input: AppendInput) -> AppendAck:
        self.events.append("append")
        return await super().append(stream, input)


@pytest.mark.parametrize("in_memory", [False, True])
async def test_the_model_is_asked_before_a_remote_claim_is_built(in_memory: bool) -> None:
    events: list[str] = []

    async def asked_model(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        events.append("model")
        async for chunk in model(signal):
            yield chunk

    basin = RemoteLikeBasin(events)
    basin.in_memory = in_memory
    chat = create_resumable_chat(basin=basin)
    try:
        live = await chat.make_resumable(
            "chat-order", asked_model, message=user_message(), new_chat=True
        )
        async for _ in live.body_iterator:
            pass
    finally:
        await chat.aclose()
    # the claim is the first append; in memory it lands before the model's task first runs
    assert events[:2] == (["append", "model"] if in_memory else ["model", "append"])
