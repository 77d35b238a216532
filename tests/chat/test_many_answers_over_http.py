"""Many answers at once on one process over HTTP (the bundled S2 server): the writers share
the basin's append budget (``HttpBasin(appends_per_s=...)``), so they send a few large
batches instead of a request per chunk, and every answer is still sent and stored whole."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2

from helpers import body_text, paced_answer, parse_sse, user_message
from resumable_chat import create_resumable_chat
from resumable_chat.s2 import HttpBasin
from resumable_chat.testing.pytest_plugin import unique_basin_name

ANSWERS = 10
WORDS = 30
#: records per answer: the turn's message, start, text-start, the words, text-end, finish
RECORDS = WORDS + 5


async def _answer_all(url: str, appends_per_s: float | None) -> tuple[int, list[str], list[Any]]:
    """``ANSWERS`` answers at once, ``WORDS`` text deltas 10 ms apart each; returns the appends
    the basin sent, each live body, and each chat's stored messages."""
    appends = 0

    async def count(request: httpx2.Request) -> None:
        nonlocal appends
        if request.method == "POST" and request.url.path.endswith("/records"):
            appends += 1

    async with httpx2.AsyncClient(event_hooks={"request": [count]}) as client:
        basin = HttpBasin(
            unique_basin_name(),
            access_token=None,
            account_endpoint=url,
            basin_endpoint=url,
            client=client,
            appends_per_s=appends_per_s,
        )
        chat = create_resumable_chat(protocol="ai-sdk", basin=basin)
        try:
            responses = await asyncio.gather(
                *(
                    chat.make_resumable(
                        f"chat-many{i}",
                        paced_answer(WORDS, 0.010),
                        message=user_message(),
                        new_chat=True,
                    )
                    for i in range(ANSWERS)
                )
            )
            assert all(r.status_code == 200 for r in responses)
            bodies = await asyncio.gather(*(body_text(r) for r in responses))
            for i in range(ANSWERS):
                generation = chat.running(f"chat-many{i}")
                if generation is not None:
                    await generation.task  # its end is stored
            stored = [await chat.load_messages(f"chat-many{i}") for i in range(ANSWERS)]
        finally:
            await chat.aclose()
            await basin.aclose()
    return appends, bodies, stored


async def test_many_answers_at_once_send_few_large_batches_and_lose_nothing(
    s2_server_url: str,
) -> None:
    appends, bodies, stored = await _answer_all(s2_server_url, appends_per_s=50)
    text = "".join(f"w{i} " for i in range(WORDS))
    for body, messages in zip(bodies, stored, strict=True):
        frames = parse_sse(body)
        assert frames[-1] == (None, "[DONE]")
        assert sum(1 for _, data in frames if '"text-delta"' in data) == WORDS
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["parts"][-1]["text"] == text
    # 10 writers on 50 appends/s: each appends every 0.2 s or so, a 0.3 s answer in a few
    # batches (the claim, one or two spaced, the end) where a request per chunk is 350
    assert appends <= ANSWERS * 6, appends


async def test_without_a_budget_a_nearby_s2_gets_about_a_request_per_chunk(
    s2_server_url: str,
) -> None:
    """What the budget saves: the same answers with ``appends_per_s=None``."""
    appends, bodies, _ = await _answer_all(s2_server_url, appends_per_s=None)
    assert all(parse_sse(b)[-1] == (None, "[DONE]") for b in bodies)
    assert appends >= ANSWERS * RECORDS // 4, appends  # 320 here; more batching under load
