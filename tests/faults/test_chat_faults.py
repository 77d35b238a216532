"""A recorded answer streaming through the chat routes while S2 misbehaves.

Under every fault schedule: the live client gets the whole answer, the log holds every chunk
exactly once and in order, and a follower sees exactly what the live client saw. When S2
stays down past the retry budget the live answer still completes, readers never see the
generation as done, and the log ends with the error terminal once S2 is back.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fault_helpers import (
    FaultyS2,
    RecordedChatApp,
    data_records,
    parse_sse,
    recorded_chat_app,
    recording,
)

from resumable_chat import ResumableChat
from resumable_chat.log.ownership import Ownership
from resumable_chat.s2.records import is_fence, is_terminal_fence
from resumable_chat.testing.fault_plan import FaultPlan

pytestmark = pytest.mark.timeout(60)

LONG_TEXT = "openai-gpt-4.1-nano-long-text.jsonl"


def five_xx(plan: FaultPlan) -> None:
    plan.fail("append", status=500, skip=2, times=2)
    plan.fail("append", status=503, skip=3, times=1)


def rate_limited(plan: FaultPlan) -> None:
    plan.fail("append", status=429, retry_after_ms=20, skip=2, times=2)


def timeouts(plan: FaultPlan) -> None:
    plan.fail("append", status=408, skip=2, times=2)


def lost_acks(plan: FaultPlan) -> None:
    plan.lose_ack("append", skip=2, times=2)


def latency(plan: FaultPlan) -> None:
    plan.delay("append", 0.02)


def sessions(plan: FaultPlan) -> None:
    plan.cut_session("cut", skip=1, times=2)
    plan.cut_session("cut_mid_event", skip=2, times=1)
    plan.cut_session("error", skip=3, times=1)


def everything(plan: FaultPlan) -> None:
    """One of each, spread out (never more failures in a row than the retry budget)."""
    plan.fail("append", status=500, skip=2, times=1)
    plan.lose_ack("append", skip=3, times=1)
    plan.fail("append", status=429, retry_after_ms=10, skip=4, times=1)
    plan.fail("append", status=408, skip=5, times=1)
    plan.delay("append", 0.01, skip=6, times=3)
    plan.fail(("read", "check_tail"), status=503, skip=1, times=1)
    sessions(plan)


SCHEDULES = [five_xx, rate_limited, timeouts, lost_acks, latency, sessions, everything]


async def settled(chat: ResumableChat, stream: str) -> None:
    """Wait until the generation on ``stream`` (if any) has ended, persistence included."""
    generation = chat.running(stream)
    if generation is not None:
        await asyncio.wait({generation.task}, timeout=20)
        assert generation.task.done()


async def follow(client: httpx.AsyncClient, chat_id: str) -> list[tuple[str | None, str]]:
    response = await client.get(f"/api/chat/{chat_id}/stream")
    assert response.status_code == 200, response.text
    return parse_sse(response.text)


async def _answer_followed(
    app: RecordedChatApp, *others: RecordedChatApp
) -> tuple[str, list[asyncio.Task[list[tuple[str | None, str]]]]]:
    """Chat ``c1`` answered live on ``app`` (its whole SSE text), followed on each of
    ``others`` from the first text delta on (the follows' tasks, in that order)."""
    live_text = ""
    followers: list[asyncio.Task[list[tuple[str | None, str]]]] = []
    async with app.client.stream(
        "POST", "/api/chat", json={"id": "c1", "messages": [_user("hi")]}
    ) as response:
        assert response.status_code == 200
        async for text in response.aiter_text():
            live_text += text
            if not followers and "text-delta" in live_text:
                followers = [asyncio.create_task(follow(o.client, "c1")) for o in others]
    assert followers
    return live_text, followers


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.__name__)
async def test_recorded_answer_under_faults(faulty_s2: FaultyS2, schedule: object) -> None:
    """One follower on the answering instance (it takes the writer's acknowledged records)
    and one on another instance (it reads S2, through the faulty read sessions) both get
    exactly the live answer."""
    basin = faulty_s2.basin()
    async with (
        recorded_chat_app(basin, recording(LONG_TEXT), linger_ms=2) as app,
        recorded_chat_app(faulty_s2.basin(basin.name), recording(LONG_TEXT)) as other,
    ):
        schedule(faulty_s2.plan)  # type: ignore[operator]
        live_text, followers = await _answer_followed(app, app, other)
        here, there = await asyncio.wait_for(asyncio.gather(*followers), 20)
        await settled(app.chat, "chat-c1")
        live = parse_sse(live_text)
        assert live[-1] == (None, "[DONE]")
        assert json.loads(live[-2][1])["type"] == "finish"
        stored = await faulty_s2.stored(basin, "chat-c1")
        assert data_records(stored) == [data for _, data in live[:-1]]
        assert is_terminal_fence(stored[-1]) and stored[-1].body.startswith(b"end-")
        assert here == live, faulty_s2.plan.describe()
        assert there == live, faulty_s2.plan.describe()
        assert faulty_s2.plan.injected, "the schedule injected nothing"


def _user(text: str) -> dict[str, object]:
    return {"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}


async def test_live_client_never_waits_on_s2(faulty_s2: FaultyS2) -> None:
    basin = faulty_s2.basin()
    async with recorded_chat_app(basin, recording(LONG_TEXT), delay_ms=0) as app:
        held = faulty_s2.plan.hold("append", skip=1)  # the claim passes, then every append waits
        response = await app.post("c1")
        live = parse_sse(response.text)
        assert live[-1] == (None, "[DONE]") and len(live) > 100
        stored = await faulty_s2.stored(basin, "chat-c1")
        assert data_records(stored) == [], "the answer was sent before anything was stored"
        held.release()
        await settled(app.chat, "chat-c1")
        stored = await faulty_s2.stored(basin, "chat-c1")
        assert data_records(stored) == [data for _, data in live[:-1]]


async def test_s2_down_past_the_retry_budget(faulty_s2: FaultyS2) -> None:
    """S2 refuses appends longer than the S2 client's retries: the live answer completes, the
    process keeps the generation (its writer retries), readers keep following, and once S2
    answers again the whole answer and its end fence are in the log."""
    basin = faulty_s2.basin(max_attempts=2)
    async with recorded_chat_app(basin, recording(LONG_TEXT)) as app:
        faulty_s2.plan.fail("append", status=503, skip=1, times=None)  # down after the claim
        response = await app.post("c1")
        live = parse_sse(response.text)
        assert response.status_code == 200 and live[-1] == (None, "[DONE]")
        assert json.loads(live[-2][1])["type"] == "finish", "the live answer completed"

        # The S2 client gave up (2 attempts) and the writer keeps trying on its own.
        await faulty_s2.plan.wait_injected(3, "status")
        # Readers never see it as done while the log has no terminal: the replay is live.
        resume = asyncio.create_task(follow(app.client, "c1"))
        await faulty_s2.plan.wait_injected(5, "status")  # S2 still refuses appends meanwhile
        assert not resume.done()
        # This process never judges its own generation lost, however long S2 is down; the
        # answer has ended, its end is not stored: the next turn is told to try again.
        meanwhile = await app.post("c1", "meanwhile")
        assert (meanwhile.status_code, meanwhile.headers.get("retry-after")) == (503, "1")
        faulty_s2.plan.end_outage()
        replayed = await asyncio.wait_for(resume, 20)
        await settled(app.chat, "chat-c1")

        assert replayed == live, "the replay is the whole answer, as the live client saw it"
        stored = await faulty_s2.stored(basin, "chat-c1")
        assert is_fence(stored[-1]) and stored[-1].body.startswith(b"end-")
        assert json.loads(stored[-2].body)["type"] == "finish"
        # The chat accepts the next turn.
        faulty_s2.plan.clear()
        again = await app.post("c1", "again")
        assert again.status_code == 200 and parse_sse(again.text)[-1] == (None, "[DONE]")


async def test_a_stalled_append_does_not_let_another_instance_take_over(
    faulty_s2: FaultyS2,
) -> None:
    """One append of a running answer hangs (S2 took the request and never answers: a
    stalled connection) while a follower on another instance watches the lease. The writer
    sends it again before its lease runs out, so the answer is not closed as crashed: the
    follower gets the whole answer and the log holds it once, with its end fence."""
    lease = {"lease_ms": 1500, "heartbeat_ms": 375}
    basin = faulty_s2.basin()
    other_basin = faulty_s2.basin(basin.name)
    async with (
        recorded_chat_app(basin, recording(LONG_TEXT), delay_ms=10, **lease) as app,
        # another instance: it knows nothing of the generations this one runs
        recorded_chat_app(
            other_basin, recording(LONG_TEXT), ownership=Ownership(), **lease
        ) as other,
    ):
        stalled = faulty_s2.plan.hold("append", skip=3, times=1)
        try:
            live_text, [following] = await _answer_followed(app, other)
            assert faulty_s2.plan.count("latency") == 1, "no append was held"
            followed = await asyncio.wait_for(following, 20)
            await settled(app.chat, "chat-c1")
        finally:
            stalled.release()
        live = parse_sse(live_text)
        assert json.loads(live[-2][1])["type"] == "finish"
        assert followed == live
        stored = await faulty_s2.stored(basin, "chat-c1")
        assert data_records(stored) == [data for _, data in live[:-1]]
        assert is_terminal_fence(stored[-1]) and stored[-1].body.startswith(b"end-")


async def test_a_follower_whose_read_session_stalls_reads_on_over_a_new_one(
    faulty_s2: FaultyS2,
) -> None:
    """A follower on another instance opens its read session and S2 never answers on it (a
    stalled connection; the session's own heartbeat timeout is 30 s here). After a lease of
    silence the follower reads on over a new session, and gets the whole answer long before
    that timeout."""
    lease = {"lease_ms": 1500, "heartbeat_ms": 375}
    basin = faulty_s2.basin()
    other_basin = faulty_s2.basin(basin.name, heartbeat_timeout_s=30.0)
    async with (
        recorded_chat_app(basin, recording(LONG_TEXT), delay_ms=10, **lease) as app,
        recorded_chat_app(
            other_basin, recording(LONG_TEXT), ownership=Ownership(), **lease
        ) as other,
    ):
        stalled = faulty_s2.plan.hold("read_session", times=1)
        try:
            live_text, [following] = await _answer_followed(app, other)
            followed = await asyncio.wait_for(following, 15)
            assert faulty_s2.plan.count("latency") == 1, "no read session was held"
        finally:
            stalled.release()
        assert followed == parse_sse(live_text)
