"""Stop from another instance: two ResumableChat objects on one basin (two "servers")."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from resumable_chat import create_resumable_chat
from resumable_chat.claims import read_range
from resumable_chat.s2 import is_terminal_fence
from resumable_chat.s2.records import is_stop_fence


def _chunks(protocol: str, i: int) -> dict[str, Any]:
    if protocol == "ai-sdk":
        return {"type": "text-delta", "id": "t", "delta": f"w{i} "}
    return {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a1", "delta": f"w{i} "}


@pytest.mark.parametrize("protocol", ["ai-sdk", "tanstack"])
async def test_a_stop_on_b_stops_the_generation_on_a(basin, protocol) -> None:  # type: ignore[no-untyped-def]
    a = create_resumable_chat(protocol=protocol, mode="session", basin=basin)
    b = create_resumable_chat(protocol=protocol, mode="session", basin=basin)
    produced = 0
    closed = asyncio.Event()
    running = asyncio.Event()
    signals: list[asyncio.Event] = []

    async def model(signal: asyncio.Event) -> Any:
        nonlocal produced
        signals.append(signal)
        try:
            if protocol == "ai-sdk":
                yield {"type": "start", "messageId": "m1"}
                yield {"type": "text-start", "id": "t"}
            else:
                yield {"type": "RUN_STARTED", "runId": "r1"}
                yield {"type": "TEXT_MESSAGE_START", "messageId": "a1", "role": "assistant"}
            for i in range(500):
                await asyncio.sleep(0.01)
                produced += 1
                if produced == 5:
                    running.set()
                yield _chunks(protocol, i)
        finally:
            closed.set()

    await a.make_resumable("chat-x", model)
    generation = a.running("chat-x")
    assert generation is not None and generation.live is not None
    live = asyncio.create_task(_collect(generation.live.frames()))
    await running.wait()
    assert (await b.stop_session("chat-x")).status_code == 202
    async with asyncio.timeout(5):
        await closed.wait()
        await generation.task
    assert produced < 500 and signals[0].is_set()
    frames = [
        json.loads(line[6:]) for line in (await live).splitlines() if line.startswith("data: {")
    ]
    records = await read_range(basin, "chat-x", 0)
    stored = [json.loads(r.body) for r in records if not r.headers and r.body]
    if protocol == "ai-sdk":
        assert frames[-1] == {"type": "finish", "finishReason": "stop"}
        assert frames[-2] == {"type": "text-end", "id": "t"}
    else:
        assert frames[-1]["type"] == "RUN_FINISHED" and frames[-1]["runId"] == "r1"
        assert frames[-1]["finishReason"] == "stop"
    assert stored == frames  # nothing the client saw is missing from the log
    assert sum(is_stop_fence(r) for r in records) == 1
    assert is_terminal_fence(records[-1]) and records[-1].body.startswith(b"end-")
    assert (await b.stop_session("chat-x")).status_code == 204
    assert (await b.replay("chat-x")).status_code in (204, 200)
    await a.aclose()
    await b.aclose()


async def test_stop_elsewhere_with_nothing_running_is_204(basin) -> None:  # type: ignore[no-untyped-def]
    b = create_resumable_chat(basin=basin)
    assert (await b.stop_session("chat-none")).status_code == 204
    await b.aclose()


async def _collect(frames: Any) -> str:
    out = b""
    async for frame in frames:
        out += frame
    return out.decode()
