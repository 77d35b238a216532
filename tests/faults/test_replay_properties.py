"""Property: a replay from any cut point is exactly the suffix of what the live client got.

Hypothesis draws the answer (random text deltas), the writer's batch size and linger, and,
over HTTP, a schedule of S2 faults (5xx, 408, 429, lost acks, cut and failing read
sessions). For every drawn cut point the replay must send the live frames after it, each
once, in order, and the log must hold every chunk exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fault_helpers import FaultyS2, data_records, parse_sse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.log import read_range
from resumable_chat.s2 import Basin, MemoryBasin
from resumable_chat.testing.fault_plan import FaultPlan

pytestmark = pytest.mark.timeout(240)

_names = itertools.count()

answers = st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=40)
batch_sizes = st.sampled_from([1, 2, 3, 7, 1000])
lingers = st.sampled_from([0, 1, 5])
FAULTS = ["500", "503", "408", "429", "lose_ack", "cut", "cut_mid_event", "error"]
schedules = st.lists(st.tuples(st.sampled_from(FAULTS), st.integers(1, 6)), max_size=4)


def text_answer(deltas: list[str]) -> list[dict[str, Any]]:
    return [
        {"type": "start", "messageId": "m1"},
        {"type": "text-start", "id": "t"},
        *({"type": "text-delta", "id": "t", "delta": d} for d in deltas),
        {"type": "text-end", "id": "t"},
        {"type": "finish", "finishReason": "stop"},
    ]


def apply_schedule(plan: FaultPlan, schedule: list[tuple[str, int]]) -> None:
    """Each fault fires once, after ``skip`` matching requests (never more failures in a row
    than the basin's retry budget)."""
    for fault, skip in schedule:
        if fault in ("cut", "cut_mid_event", "error"):
            plan.cut_session(fault, skip=skip)  # type: ignore[arg-type]
        elif fault == "lose_ack":
            plan.lose_ack("append", skip=skip)
        else:
            retry_after = 5 if fault == "429" else None
            plan.fail("append", status=int(fault), retry_after_ms=retry_after, skip=skip)


async def collect(response: Any) -> str:
    """The whole body of a streaming response, read straight from its iterator."""
    parts = [p.decode() if isinstance(p, bytes) else p async for p in response.body_iterator]
    return "".join(parts)


async def check_replays(
    basin: Basin, chunks: list[dict[str, Any]], batch_size: int, linger_ms: int, cuts: list[float]
) -> None:
    chat = create_resumable_chat(basin=basin, batch_size=batch_size, linger_ms=linger_ms)
    stream = f"prop-{next(_names)}"
    produced = asyncio.Event()
    release = asyncio.Event()

    async def source(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        for chunk in chunks:
            yield chunk
        produced.set()
        await release.wait()  # hold the answer open while the replays start

    try:
        async with asyncio.timeout(30):
            live_response = await chat.make_resumable(stream, source)
            live_task = asyncio.create_task(collect(live_response))
            await produced.wait()
            generation = chat.running(stream)
            assert generation is not None
            last_seq = generation.writer.next_seq_num - 1
            first_seq = generation.claim.start_seq_num
            span = last_seq + 1 - first_seq
            points = sorted({first_seq + round(f * span) for f in cuts})
            replays = {cut: await chat.replay(stream, from_seq_num=cut) for cut in [None, *points]}
            texts = [asyncio.create_task(collect(r)) for r in replays.values()]
            release.set()
            live = parse_sse(await live_task)
            bodies = [await t for t in texts]
            await asyncio.wait({generation.task})
    finally:
        release.set()
        await chat.aclose()
    frames = live[:-1]
    assert live[-1] == (None, "[DONE]")
    for cut, body in zip(replays, bodies, strict=True):
        expected = frames if cut is None else [f for f in frames if int(f[0] or 0) > cut]
        assert parse_sse(body) == [*expected, (None, "[DONE]")], f"cut {cut}"
    stored = await read_range(basin, stream, 0)
    assert data_records(stored) == [data for _, data in frames]


#: Cut points as fractions of the answer's seq_num range (drawn before the answer runs).
cut_fractions = st.lists(st.floats(0, 1), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(deltas=answers, batch_size=batch_sizes, linger_ms=lingers, cuts=cut_fractions)
async def test_replay_from_any_cut_is_the_suffix_memory(
    deltas: list[str], batch_size: int, linger_ms: int, cuts: list[float]
) -> None:
    basin = MemoryBasin()
    await check_replays(basin, text_answer(deltas), batch_size, linger_ms, cuts)
    await basin.aclose()


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    deltas=answers,
    batch_size=batch_sizes,
    linger_ms=lingers,
    schedule=schedules,
    cuts=cut_fractions,
)
async def test_replay_from_any_cut_is_the_suffix_under_s2_faults(
    faulty_s2: FaultyS2,
    deltas: list[str],
    batch_size: int,
    linger_ms: int,
    schedule: list[tuple[str, int]],
    cuts: list[float],
) -> None:
    faulty_s2.plan.clear()
    basin = faulty_s2.basin(max_attempts=6)
    apply_schedule(faulty_s2.plan, schedule)
    await check_replays(basin, text_answer(deltas), batch_size, linger_ms, cuts)
