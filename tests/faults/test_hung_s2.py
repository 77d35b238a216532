"""S2 that accepts requests and never answers them (a hung node, a stalled proxy).

``HttpBasin`` gives every call an overall deadline (``deadline_s``, all retries included), and
the README promises that an outage reaches the routes as 503 in bounded time. A turn's
claim must not take a multiple of that deadline to answer.
"""

from __future__ import annotations

import asyncio

import pytest
from fault_helpers import FaultyS2, recorded_chat_app, recording

pytestmark = pytest.mark.timeout(60)

DEADLINE_S = 1.0
ANSWER = "openai-gpt-4o-length.jsonl"


async def test_a_new_turn_while_s2_hangs_is_answered_503_within_the_deadline(
    faulty_s2: FaultyS2,
) -> None:
    basin = faulty_s2.basin(deadline_s=DEADLINE_S)
    async with recorded_chat_app(basin, recording(ANSWER)) as app:
        hung = faulty_s2.plan.hold()  # every request from now on waits, unanswered
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            response = await app.post("c1")
            elapsed = loop.time() - began
        finally:
            hung.release()
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert elapsed < DEADLINE_S * 1.5, f"503 after {elapsed:.1f} s (deadline {DEADLINE_S} s)"
