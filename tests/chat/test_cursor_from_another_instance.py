"""A resume cursor taken from the live response of the instance running the answer works on
any other instance, even while S2 has not stored what that cursor names yet.

The running instance sends each chunk to its live client before S2 acknowledges it, so for
S2's append latency (about 40 ms on Express, 400 ms on Standard storage; longer while S2 is
slow) a client's cursor is ahead of the log. A page refresh routed to another instance then
got 416 "past the end" and the client lost the rest of the answer. Now the other instance
reads on from the log's tail and leaves out what the client has; a cursor no instance ever
sent (a hostile client) sees only the end. The instance running the answer still answers
416 to a cursor it never sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from chat_helpers import tanstack_run, tanstack_user

from helpers import parse_sse, user_message
from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.log import read_range
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan

pytestmark = pytest.mark.timeout(30)


async def body_of(frames: AsyncIterator[Any]) -> str:
    out = b""
    async for frame in frames:
        out += frame if isinstance(frame, bytes) else frame.encode()
    return out.decode()


async def test_a_cursor_ahead_of_the_log_resumes_on_another_instance() -> None:
    storage, plan = MemoryBasin(), FaultPlan()
    here = create_resumable_chat(basin=FaultPlanBasin(storage, plan))  # runs the answer
    there = create_resumable_chat(basin=storage)  # where the refresh lands
    more, rest = asyncio.Event(), asyncio.Event()

    async def model(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        yield {"type": "text-delta", "id": "t", "delta": "a"}
        await more.wait()
        yield {"type": "text-delta", "id": "t", "delta": " b"}
        await rest.wait()
        yield {"type": "text-delta", "id": "t", "delta": " c"}
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}

    try:
        live = await here.make_resumable("chat-c1", model, message=user_message(), new_chat=True)
        generation = here.running("chat-c1")
        assert live.status_code == 200 and generation is not None
        writer, stored = generation.writer, asyncio.Event()
        writer.listen(lambda got: stored.set() if got and got[-1].seq_num >= 4 else None)
        if writer.durable_seq_num < 5:  # user message, claim, start, text-start, "a"
            await asyncio.wait_for(stored.wait(), 2)
        appends = plan.hold("append", times=None)  # S2 acknowledges nothing from here on
        more.set()
        live_frames = aiter(live.body_iterator)
        seen = ""
        while '" b"' not in seen:
            seen += (await asyncio.wait_for(anext(live_frames), 2)).decode()
        cursor = int([i for i, _ in parse_sse(seen) if i is not None][-1])
        tail = (await storage.check_tail("chat-c1")).seq_num
        assert cursor >= tail  # the client holds a chunk S2 has not stored

        resumed = await asyncio.wait_for(there.replay("chat-c1", from_seq_num=cursor), 2)
        assert resumed.status_code == 200
        bogus = await asyncio.wait_for(there.replay("chat-c1", from_seq_num=cursor + 10**6), 2)
        assert bogus.status_code == 200
        never_sent = await asyncio.wait_for(here.replay("chat-c1", from_seq_num=cursor + 1), 2)
        assert never_sent.status_code == 416  # the running instance knows what it sent

        appends.release()
        rest.set()
        sent, got, got_bogus = await asyncio.gather(
            body_of(live_frames), body_of(resumed.body_iterator), body_of(bogus.body_iterator)
        )
    finally:
        await here.aclose()
        await there.aclose()
    after_cursor = [(i, d) for i, d in parse_sse(seen + sent) if i is None or int(i) > cursor]
    assert parse_sse(got) == after_cursor
    assert next(d for _, d in after_cursor).startswith('{"type":"text-delta"')
    assert parse_sse(got)[-1] == (None, "[DONE]")
    assert parse_sse(got_bogus) == [(None, "[DONE]")]
    ended = create_resumable_chat(basin=storage)
    try:  # once the answer has ended, any cursor: nothing to resume
        late = await ended.replay("chat-c1", from_seq_num=cursor + 10**6)
        assert late.status_code == 204
    finally:
        await ended.aclose()


async def test_a_tanstack_cursor_past_the_tail_waits_while_a_run_is_open(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    """TanStack session replay: a cursor past the tail is 416 only when no run is open (then
    the log holds everything there is); during a run it reads on from the tail."""
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(["one", "two", "three"], run_id="r1")
        app.model.hold_at = 3
        assert (await app.post("c1", [tanstack_user("hi")])).status_code == 202
        await app.model.reached_hold.wait()
        run = app.chat.running("tanstack-c1")
        assert run is not None
        cursor = (await app.basin.check_tail("tanstack-c1")).seq_num + 1
        params = {"id": "c1", "from": cursor}
        async with app.client.stream("GET", "/api/tanstack/chat/replay", params=params) as live:
            assert live.status_code == 200
            app.model.gate.set()
            await asyncio.wait_for(asyncio.shield(run.task), 5)
            stored = await read_range(app.basin, "tanstack-c1", 0)
            expected = [
                (str(r.seq_num + 1), r.body.decode())
                for r in stored
                if not r.headers and r.seq_num + 1 > cursor
            ]
            assert expected  # the run went on past the cursor
            events: list[tuple[str | None, str]] = []
            buffer = ""
            async with asyncio.timeout(5):
                async for text in live.aiter_text():
                    buffer += text
                    *blocks, buffer = buffer.split("\n\n")
                    for block in blocks:
                        events.extend(parse_sse(block + "\n\n"))
                    if len(events) >= len(expected):
                        break
        assert events == expected
        ended = await app.client.get("/api/tanstack/chat/replay", params=params | {"from": 10**6})
        assert ended.status_code == 416
