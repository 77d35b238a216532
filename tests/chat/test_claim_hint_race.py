"""Two instances racing one turn, when the one that served the previous turn claims on its
remembered end of the log (one round trip) and loses: it must answer 409, as a claim
conditioned on a read does, even when the winner's whole answer has ended by the time it
looks again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from helpers import user_message
from resumable_chat import create_resumable_chat
from resumable_chat.chat.producer import live_channel
from resumable_chat.log import Ownership, RecordKind, classify, read_range
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan


def answer(text: str, go: asyncio.Event | None = None) -> Any:
    async def model(signal: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "start"}
        yield {"type": "text-start", "id": "t"}
        if go is not None:
            await go.wait()
        yield {"type": "text-delta", "id": "t", "delta": text}
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}

    return model


def two_instances(slow: str) -> tuple[MemoryBasin, FaultPlan, Any, Any]:
    """Two chat instances on one basin; the ``slow`` one ("a" or "b") reaches it through a
    fault plan (the test holds its calls)."""
    memory = MemoryBasin()
    plan = FaultPlan()
    chats = [
        create_resumable_chat(
            protocol="ai-sdk",
            basin=FaultPlanBasin(memory, plan) if name == slow else memory,
            ownership=Ownership(),
        )
        for name in ("a", "b")
    ]
    return memory, plan, chats[0], chats[1]


async def body_of(chat: Any, stream: str, response: Any) -> str:
    """The live response's frames until it ends (the answer's end is then stored)."""
    generation = chat.running(stream)
    assert generation is not None
    out = b"".join([frame async for frame in live_channel(generation).frames()])
    await generation.task
    return out.decode()


async def test_a_hinted_claim_that_lost_the_race_is_409_after_the_winner_ended() -> None:
    memory, plan, a, b = two_instances("a")
    stream = "chat-x"

    first = await a.make_resumable(
        stream, answer("one"), message=user_message("1", "u1"), new_chat=True
    )
    assert first.status_code == 200 and '"one"' in await body_of(a, stream, first)
    assert a.engine.claim_hint(stream) is not None  # A claims the next turn in one round trip

    # the same turn reaches both instances: A's claim is slow to reach S2, B claims first
    held_append = plan.hold("append", times=1)
    held_read = plan.hold("read", times=1)
    turn = user_message("2", "u2")
    racing = asyncio.create_task(a.make_resumable(stream, answer("A's"), message=turn))
    await plan.wait_injected(1, "latency")
    go = asyncio.Event()
    won = await b.make_resumable(stream, answer("B's", go), message=turn)
    assert won.status_code == 200
    held_append.release()  # refused: B's claim holds the stream
    await plan.wait_injected(2, "latency")  # A now reads the log again, slowly
    go.set()
    assert '"B\'s"' in await body_of(b, stream, won)  # B's answer has ended and is stored
    held_read.release()

    lost = await racing
    assert lost.status_code == 409
    claims = [r for r in await read_range(memory, stream, 0) if classify(r) is RecordKind.CLAIM]
    assert len(claims) == 2, "the turn was answered twice"

    later = await a.make_resumable(stream, answer("three"), message=user_message("3", "u3"))
    assert later.status_code == 200 and '"three"' in await body_of(a, stream, later)
    await a.aclose()
    await b.aclose()


@pytest.mark.parametrize("loser", ["stale hint", "no hint"])
async def test_a_turn_answered_once_is_409_for_its_late_duplicate(loser: str) -> None:
    """The same turn reaches A and B; B's read of the log is slow, A's quick answer ends
    before it: B finds the chat idle, but its latest answer answered this very message, so
    B answers 409 (``once_per_message``), whatever B remembered of the log."""
    _memory, plan, a, b = two_instances("b")
    stream = "chat-x"
    first = b if loser == "stale hint" else a
    opened = await first.make_resumable(
        stream, answer("one"), message=user_message("1", "u1"), new_chat=True
    )
    assert opened.status_code == 200 and '"one"' in await body_of(first, stream, opened)
    if loser == "stale hint":  # A answers a turn after B's: B's remembered end is stale
        second = await a.make_resumable(stream, answer("two"), message=user_message("2", "u2"))
        assert second.status_code == 200 and '"two"' in await body_of(a, stream, second)

    turn = user_message("3", "u3")
    held_read = plan.hold("read", times=1)
    racing = asyncio.create_task(
        b.make_resumable(stream, answer("B's"), message=turn, once_per_message=True)
    )
    await plan.wait_injected(1, "latency")
    won = await a.make_resumable(stream, answer("A's"), message=turn, once_per_message=True)
    assert won.status_code == 200 and '"A\'s"' in await body_of(a, stream, won)
    held_read.release()
    assert (await racing).status_code == 409
    answers = [m for m in await a.load_messages(stream) if m["role"] == "assistant"]
    assert [p.get("text") for m in answers for p in m["parts"] if p["type"] == "text"][-1] == (
        "A's"
    )

    # the same instance, sent again after its own answer: 409 as well, in one round trip
    again = await a.make_resumable(stream, answer("again"), message=turn, once_per_message=True)
    assert again.status_code == 409
    # a new answer to the same message is another matter (regenerate): answered
    regenerated = await b.make_resumable(stream, answer("re"), message=turn)
    assert regenerated.status_code == 200 and '"re"' in await body_of(b, stream, regenerated)
    # A remembers its own answer to the message, which is no longer the latest: it reads
    late = await a.make_resumable(stream, answer("late"), message=turn, once_per_message=True)
    assert late.status_code == 200, "decided on what A remembered, not on the log"
    await body_of(a, stream, late)
    await a.aclose()
    await b.aclose()


async def test_a_claim_that_read_an_answer_running_is_409_once_that_answer_has_ended() -> None:
    """B reads the log while A's answer runs; its next read (back to the answer's claim) is
    slow and finds the answer ended: B answers 409, as if it had read the log only once
    (without it, B answered a turn sent while A's ran, on top of it)."""
    memory, plan, a, b = two_instances("b")
    stream = "chat-x"
    go = asyncio.Event()
    running = await a.make_resumable(
        stream, answer("A's", go), message=user_message("1", "u1"), new_chat=True
    )
    assert running.status_code == 200
    held = plan.hold("read", skip=1, times=1)  # B's first read is served, its second held
    racing = asyncio.create_task(
        b.make_resumable(stream, answer("B's"), message=user_message("2", "u2"))
    )
    await plan.wait_injected(1, "latency")
    go.set()
    assert '"A\'s"' in await body_of(a, stream, running)
    held.release()
    assert (await racing).status_code == 409
    claims = [r for r in await read_range(memory, stream, 0) if classify(r) is RecordKind.CLAIM]
    assert len(claims) == 1
    await a.aclose()
    await b.aclose()
