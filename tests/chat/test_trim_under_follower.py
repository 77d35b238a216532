"""Shared mode trims a finished generation's predecessors a while after it ends. A follower
that lags that long (its read starts after its answer was trimmed away) must not take the
next answer for its own: the records it needed are gone, so its follow meets a gap
(``LogGapError``) and its response breaks off without a single chunk of the next answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from helpers import eventually
from resumable_chat import create_resumable_chat
from resumable_chat.log import Ownership, RecordKind, classify, read_range
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan


def _answer(n: int, mid: str) -> list[dict[str, Any]]:
    return [
        {"type": "start", "messageId": mid},
        {"type": "text-start", "id": "t"},
        *({"type": "text-delta", "id": "t", "delta": f"{mid}-w{i} "} for i in range(n)),
        {"type": "text-end", "id": "t"},
        {"type": "finish"},
    ]


async def _body(response: Any) -> bytes:
    out = b""
    async for frame in response.body_iterator:
        out += frame
    return out


async def _turn(chat: Any, mid: str) -> None:
    async def model(signal: asyncio.Event) -> Any:
        for chunk in _answer(2, mid):
            yield chunk

    await _body(await chat.make_resumable("c1", model))
    generation = chat.running("c1")
    if generation is not None:
        await asyncio.wait_for(asyncio.shield(generation.task), 5)


async def test_a_follower_whose_answer_was_trimmed_never_gets_the_next_answer() -> None:
    memory, plan = MemoryBasin(), FaultPlan()
    options: dict[str, Any] = {"mode": "shared", "trim_delay_ms": 50}
    a = create_resumable_chat(basin=memory, ownership=Ownership(), **options)
    b = create_resumable_chat(basin=FaultPlanBasin(memory, plan), ownership=Ownership(), **options)
    await _turn(a, "m0")  # answer 1's claim is then past seq 0 (shared mode trims below it)
    rest = asyncio.Event()

    async def answer1(signal: asyncio.Event) -> Any:
        chunks = _answer(3, "m1")
        for chunk in chunks[:3]:
            yield chunk
        await rest.wait()
        for chunk in chunks[3:]:
            yield chunk

    live = asyncio.create_task(_body(await a.make_resumable("c1", answer1)))
    generation = a.running("c1")
    assert generation is not None
    held = plan.hold("read_session", times=1)  # B's read is slow to start
    follower = await b.replay("c1")
    assert follower.status_code == 200  # answer 1 is running
    followed = asyncio.create_task(_body(follower))

    async def read_in_flight() -> bool:
        return held.fired == 1

    await eventually(read_in_flight)
    rest.set()
    await live
    await asyncio.wait_for(asyncio.shield(generation.task), 5)
    await _turn(a, "m2")

    async def trimmed_to_answer_2() -> bool:
        records = await read_range(memory, "c1", 0)
        return [classify(r) for r in records].count(RecordKind.CLAIM) == 1

    await eventually(trimmed_to_answer_2)  # answer 2's trim removed answers 0 and 1
    held.release()
    try:
        body = await asyncio.wait_for(followed, 5)
    except Exception:
        body = b""
    got = [json.loads(line[6:]) for line in body.decode().splitlines() if line[:7] == "data: {"]
    assert not [c for c in got if "m2" in json.dumps(c)]
    assert b"[DONE]" not in body
    await a.aclose()
    await b.aclose()
