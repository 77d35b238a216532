"""Followers of one running answer on one process share one log reader (an ``AnswerTap``).

What a user sees: every follower gets exactly the stored frames of the answer from its
position (nothing lost, nothing twice, ``[DONE]`` at the end), however many there are, however
slowly one of them reads, and from a cursor too; and the process holds one S2 read session
for them all, released a linger after the last follower left.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest
from chat_helpers import text_answer

from helpers import all_stored, eventually
from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.chat.core import ResumableChat
from resumable_chat.chat.fanout import AnswerTaps
from resumable_chat.log import RecordKind, classify, read_range
from resumable_chat.log.fragments import FRAGMENT_HEADER, join_fragments
from resumable_chat.log.records import record_id
from resumable_chat.s2 import MemoryBasin, S2Error
from resumable_chat.s2.records import AppendInput, ReadBatch, fence_record
from resumable_chat.sse import DONE_FRAME, event_frame
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan
from resumable_chat.testing.virtual_time import run_virtual

WORDS = [f"w{i} " for i in range(60)]
STREAM = "chat-fan"


class CountingBasin(MemoryBasin):
    """Counts read sessions: opened in total and open now."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0
        self.open_now = 0
        self.released = asyncio.Event()  # set whenever a read session ends

    async def follow(
        self, stream: str, *, seq_num: int = 0, clamp: bool = False
    ) -> AsyncGenerator[ReadBatch, None]:
        self.opened += 1
        self.open_now += 1
        try:
            async for batch in super().follow(stream, seq_num=seq_num, clamp=clamp):
                yield batch
        finally:
            self.open_now -= 1
            self.released.set()


class Gate:
    """A source that yields the answer's chunks one per ``step()``."""

    def __init__(self) -> None:
        self.chunks = text_answer(WORDS)
        self.allowed = 0
        self.moved = asyncio.Event()
        self.taken = 0  # chunks the producer has taken and handed on (to live and writer)
        self.took = asyncio.Event()

    def step(self, n: int = 1) -> None:
        self.allowed += n
        self.moved.set()

    async def source(self, signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        for i, chunk in enumerate(self.chunks):
            while i >= self.allowed:
                self.moved.clear()
                await self.moved.wait()
            yield chunk
            self.taken = i + 1  # the producer asks for the next: it has submitted this one
            self.took.set()

    async def taken_at_least(self, n: int) -> None:
        while self.taken < n:
            self.took.clear()
            await self.took.wait()


async def _body(
    response: Any,
    pause: asyncio.Event | None = None,
    first: asyncio.Event | None = None,
    seen: tuple[bytes, asyncio.Event] | None = None,
) -> bytes:
    """The response body; ``first`` is set once the first bytes arrived, after which the
    reading waits for ``pause``; ``seen``'s event is set once its bytes are in the body."""
    parts = []
    async for data in response.body_iterator:
        parts.append(data)
        if seen is not None and seen[0] in b"".join(parts):
            seen[1].set()
        if len(parts) == 1:
            if first is not None:
                first.set()
            if pause is not None:
                await pause.wait()
    return b"".join(parts)


def _reading(
    response: Any, pause: asyncio.Event | None = None
) -> tuple[asyncio.Task[bytes], asyncio.Event]:
    """Read ``response`` in a task; the event is set when its first bytes arrived."""
    first = asyncio.Event()
    return asyncio.create_task(_body(response, pause, first)), first


async def _stored(chat: ResumableChat, gate: Gate, steps: int) -> None:
    """Wait (on events, not time) until the producer has taken ``steps`` chunks and the
    writer of ``chat`` has stored everything handed to it."""
    await gate.taken_at_least(steps)
    await all_stored(chat, STREAM)


async def _stored_frames(basin: MemoryBasin, after: int | None = None) -> bytes:
    """The answer's data records as SSE frames (a chunk stored in fragments as one), as a
    follower from the start (or from the cursor ``after``) must get them."""
    frames = []
    records, _ = join_fragments(await read_range(basin, STREAM, 0))
    for record in records:
        if classify(record) is RecordKind.DATA and b'"ui-message"' not in record.body:
            if after is None or record_id(record) > after:
                frames.append(event_frame(record.body, record_id(record)))
    return b"".join(frames) + DONE_FRAME


async def _start(chat: ResumableChat, gate: Gate) -> asyncio.Task[bytes]:
    live = await chat.make_resumable(STREAM, gate.source)
    assert live.status_code == 200
    return asyncio.create_task(_body(live))


async def _settled(chat: ResumableChat) -> None:
    generation = chat.running(STREAM)
    if generation is not None:
        await generation.task


async def _running(
    basin: MemoryBasin | FaultPlanBasin, steps: int, **taps: Any
) -> tuple[ResumableChat, ResumableChat, Gate, asyncio.Task[bytes]]:
    """Two instances on ``basin``: the owner, whose answer has made ``steps`` chunks and
    waits for more (its live response read in a task), and the reader its followers come to.
    ``taps``: the reader's :class:`AnswerTaps` settings for this test."""
    owner = create_resumable_chat(basin=basin)
    reader = create_resumable_chat(basin=basin)
    if taps:  # the defaults keep 50,000 frames and linger 5 s
        reader._taps = AnswerTaps(reader.engine, reader.dialect.is_history_record, **taps)
    gate = Gate()
    live = await _start(owner, gate)
    gate.step(steps)
    await _stored(owner, gate, steps)
    return owner, reader, gate, live


async def _close(*chats: ResumableChat) -> None:
    for chat in chats:
        await chat.aclose()


async def _ended(chat: ResumableChat, live: asyncio.Task[bytes]) -> bytes:
    """Wait for the live response and for the answer's end to be stored; the live body."""
    body = await live
    await _settled(chat)
    return body


async def test_many_followers_share_one_read_session_and_get_the_log() -> None:
    basin = CountingBasin()
    owner, reader, gate, live = await _running(basin, 10)
    before = basin.opened
    followers = []
    for _ in range(50):
        response = await reader.replay(STREAM)
        assert response.status_code == 200
        followers.append(asyncio.create_task(_body(response)))
        gate.step()
        await asyncio.sleep(0)
    gate.step(len(gate.chunks))
    bodies = await asyncio.gather(*followers)
    await _ended(owner, live)
    assert basin.opened - before == 1  # one read session for 50 followers
    expected = await _stored_frames(basin)
    assert all(body == expected for body in bodies)
    await _close(owner, reader)
    assert basin.open_now == 0


async def test_a_slow_follower_holds_up_nobody_and_misses_nothing() -> None:
    basin = CountingBasin()
    owner, reader, gate, live = await _running(basin, 3)
    pause = asyncio.Event()
    slow = asyncio.create_task(_body(await reader.replay(STREAM), pause))
    fast = asyncio.create_task(_body(await reader.replay(STREAM)))
    gate.step(len(gate.chunks))
    fast_body = await asyncio.wait_for(fast, 5)  # the slow one has not read on
    assert not slow.done()
    pause.set()
    slow_body = await slow
    await _ended(owner, live)
    expected = await _stored_frames(basin)
    assert fast_body == slow_body == expected
    await _close(owner, reader)


@pytest.mark.parametrize("window", [{"max_frames": 4}, {"max_bytes": 200}])
async def test_a_follower_behind_the_window_reads_the_log_itself(window: dict[str, int]) -> None:
    """The tap keeps a window of frames, bounded in frames and in bytes (an answer of large
    chunks keeps at most ``max_bytes`` of them: here about three frames); a follower the
    window left behind still gets the whole answer, from the log."""
    basin = CountingBasin()
    owner, reader, gate, live = await _running(basin, 2, **window)
    pause = asyncio.Event()
    behind, behind_first = _reading(await reader.replay(STREAM), pause)
    other, other_first = _reading(await reader.replay(STREAM))
    await asyncio.wait_for(asyncio.gather(behind_first.wait(), other_first.wait()), 5)
    assert basin.opened == 1  # the tap
    gate.step(len(gate.chunks))
    other_body = await other
    (tap,) = reader._taps._taps.values()
    assert 0 < len(tap.frames) <= window.get("max_frames", len(tap.frames))
    assert sum(len(frame) for frame in tap.frames) <= window.get("max_bytes", 10**9)
    pause.set()
    body = await behind
    await _ended(owner, live)
    expected = await _stored_frames(basin)
    assert body == other_body == expected  # contiguous: nothing lost, nothing twice
    assert basin.opened >= 2  # the paused follower read the log itself, from where it was
    await _close(owner, reader)


async def test_a_cursor_inside_a_chunk_behind_the_window_still_gets_that_chunk() -> None:
    """A chunk too large for one record is stored in fragments, its SSE id that of the last.
    A client comes back with a cursor no frame carried, pointing between the fragments, once
    the tap's window has moved past them: it still gets that chunk whole (its id is above
    the cursor), then the rest, exactly as from the log. Reading the log from the cursor
    itself would start inside the chunk and drop it."""
    basin = CountingBasin()
    owner = create_resumable_chat(basin=basin)
    reader = create_resumable_chat(basin=basin)
    reader._taps = AnswerTaps(reader.engine, reader.dialect.is_history_record, max_frames=4)
    gate = Gate()
    gate.chunks[3] = {"type": "data-blob", "data": "x" * 1_500_000}  # not cut: fragments
    live = await _start(owner, gate)
    gate.step(20)
    await _stored(owner, gate, 20)
    tail = (await basin.check_tail(STREAM)).seq_num
    read_through = asyncio.Event()  # the follower got the last stored record's frame
    first = asyncio.create_task(
        _body(await reader.replay(STREAM), seen=(f"id: {tail}\n".encode(), read_through))
    )  # opens the tap
    await asyncio.wait_for(read_through.wait(), 10)
    (tap,) = reader._taps._taps.values()
    assert tap.position >= tail
    fragments = [
        record.seq_num
        for record in await read_range(basin, STREAM, 0)
        if any(name == FRAGMENT_HEADER for name, _ in record.headers)
    ]
    assert len(fragments) >= 2
    cursor = fragments[0] + 1  # between the blob's fragments
    assert cursor < tap.floor  # the window has moved past it
    resumed = asyncio.create_task(_body(await reader.replay(STREAM, cursor)))
    gate.step(len(gate.chunks))
    await first
    body = await resumed
    await _ended(owner, live)
    assert b"x" * 1000 in body
    assert body == await _stored_frames(basin, after=cursor)
    await _close(owner, reader)


def test_a_window_below_one_frame_or_byte_is_refused() -> None:
    for bounds in ({"max_frames": 0}, {"max_bytes": 0}):
        with pytest.raises(ValueError, match="must be ≥ 1"):
            AnswerTaps(None, lambda body: False, **bounds)  # type: ignore[arg-type]


async def test_a_resume_from_a_cursor_gets_only_what_follows_it() -> None:
    basin = CountingBasin()
    owner, reader, gate, live = await _running(basin, 8)
    first, first_bytes = _reading(await reader.replay(STREAM))  # opens the tap
    await asyncio.wait_for(first_bytes.wait(), 5)
    records = await read_range(basin, STREAM, 0)
    cursor = records[-3].seq_num + 1
    resumed = asyncio.create_task(_body(await reader.replay(STREAM, cursor)))
    gate.step(len(gate.chunks))
    await first
    body = await resumed
    await _ended(owner, live)
    assert body == await _stored_frames(basin, after=cursor)
    await _close(owner, reader)


async def test_the_read_is_released_a_linger_after_the_last_follower() -> None:
    basin = CountingBasin()
    owner, reader, gate, live = await _running(basin, 3, linger_s=0.1)
    follower = await reader.replay(STREAM)
    frames = follower.body_iterator
    await anext(frames)  # type: ignore[call-overload]
    reads = basin.open_now
    await frames.aclose()  # type: ignore[attr-defined]  # the tab closes
    assert basin.open_now == reads  # lingers for the next follower
    basin.released.clear()
    await asyncio.wait_for(basin.released.wait(), 5)  # the linger (0.1 s) ends the read
    assert basin.open_now == reads - 1
    gate.step(len(gate.chunks))
    await live
    await _close(owner, reader)
    assert basin.open_now == 0


async def test_a_failed_read_ends_its_followers_and_the_next_follower_reads_anew() -> None:
    """S2 refuses the tap's read session: every follower on it gets the error (its response
    breaks off, so the client reconnects), and a follower after the fault heals is served by
    a new tap from the log, missing nothing."""
    memory = MemoryBasin()
    plan = FaultPlan()
    owner, reader, gate, live = await _running(FaultPlanBasin(memory, plan), 3)
    plan.fail("read_session", status=500, times=1)  # a permanent-looking refusal
    failing = [await reader.replay(STREAM) for _ in range(3)]
    outcomes = await asyncio.gather(*(_body(r) for r in failing), return_exceptions=True)
    assert all(isinstance(o, S2Error) for o in outcomes), outcomes
    later = asyncio.create_task(_body(await reader.replay(STREAM)))
    gate.step(len(gate.chunks))
    body = await later
    await _ended(owner, live)
    expected = await _stored_frames(memory)
    assert body == expected
    await _close(owner, reader)


async def test_closing_the_chat_ends_its_followers_and_releases_the_read() -> None:
    basin = CountingBasin()
    owner, reader, _gate, live = await _running(basin, 3)
    reading = [_reading(await reader.replay(STREAM)) for _ in range(5)]
    followers = [task for task, _ in reading]
    await asyncio.wait_for(asyncio.gather(*(first.wait() for _, first in reading)), 5)
    assert basin.open_now == 1
    await reader.aclose()  # the reader's taps close
    bodies = await asyncio.wait_for(asyncio.gather(*followers), 5)
    await owner.aclose(drain_timeout_s=0.1)  # the answer is stopped
    await live
    assert basin.open_now == 0
    assert len(set(bodies)) == 1 and bodies[0].startswith(b"id: ")


async def test_followers_on_the_producing_process_take_its_writes_without_reading_s2() -> None:
    """On the process that writes the answer, followers get the writer's acknowledged
    records: no S2 read session at all, and still exactly the log from their position (a
    follower that joins late reads what was stored before it joined, then the writes)."""
    basin = CountingBasin()
    chat = create_resumable_chat(basin=basin)
    gate = Gate()
    live = await _start(chat, gate)
    gate.step(5)
    await _stored(chat, gate, 5)
    early = asyncio.create_task(_body(await chat.replay(STREAM)))
    gate.step(20)
    await _stored(chat, gate, 25)
    records = await read_range(basin, STREAM, 0)
    cursor = records[-4].seq_num + 1
    late = asyncio.create_task(_body(await chat.replay(STREAM, cursor)))
    gate.step(len(gate.chunks))
    bodies = await asyncio.gather(early, late)
    await _ended(chat, live)
    assert basin.opened == 0
    assert bodies == [await _stored_frames(basin), await _stored_frames(basin, after=cursor)]
    await chat.aclose()


async def test_a_follower_of_a_displaced_writer_gets_the_takeover_from_the_log() -> None:
    """The writer on this process is fenced out by another instance (as by a takeover after
    a lost lease): its local followers go on from the log, where they find that fence."""
    basin = CountingBasin()
    owner = create_resumable_chat(basin=basin)
    gate = Gate()
    live = await _start(owner, gate)
    gate.step(4)
    await _stored(owner, gate, 4)
    follower, first = _reading(await owner.replay(STREAM))
    await asyncio.wait_for(first.wait(), 5)
    generation = owner.running(STREAM)
    assert generation is not None and basin.opened == 0
    tail = await basin.check_tail(STREAM)
    takeover = AppendInput(
        [fence_record("error-elsewhere")],
        match_seq_num=tail.seq_num,
        fencing_token=generation.writer.fencing_token,
    )
    await basin.append(STREAM, takeover)
    gate.step(len(gate.chunks))  # the owner's next append meets the fence
    body = await asyncio.wait_for(follower, 5)
    await asyncio.gather(live, return_exceptions=True)
    assert basin.opened == 1  # the follower read on from the log once the writer was out
    assert body == await _stored_frames(basin)
    records = await read_range(basin, STREAM, 0)
    assert classify(records[-1]) is RecordKind.ERROR
    await owner.aclose()


class _HeldAnswer:
    """A chat (300 ms lease) on a fault plan, whose model holds after ``text-start`` until
    :attr:`go` is set; :meth:`stick` makes its writer stuck, unsure: every append lands but
    no acknowledgement comes back, and it cannot read back what landed (reads are held)."""

    def __init__(self) -> None:
        self.plan = FaultPlan()
        self.chat = create_resumable_chat(
            basin=FaultPlanBasin(MemoryBasin(), self.plan), lease_ms=300, heartbeat_ms=75
        )
        self.go = asyncio.Event()

    async def model(self, signal: Any) -> Any:
        yield {"type": "start", "messageId": "m1"}
        yield {"type": "text-start", "id": "t"}
        await self.go.wait()
        yield {"type": "text-delta", "id": "t", "delta": "stored"}
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}

    async def stick(self, generation: Any) -> Any:
        """Once the head is stored (claim, start, text-start), fault the basin; returns the
        rule holding reads."""
        writer = generation.writer

        async def head_stored() -> bool:
            return writer.durable_seq_num == writer.next_seq_num == 3

        await eventually(head_stored)
        self.plan.lose_ack("append", times=None)
        return self.plan.hold("read")

    async def end(self, generation: Any, unsure: Any) -> None:
        """The writer was still unsure; S2 heals and it ends."""
        assert not generation.task.done()
        unsure.release()
        self.plan.clear()
        await asyncio.wait_for(generation.task, 5)
        await self.chat.aclose()


async def test_a_local_follower_reads_the_log_when_its_writer_is_stuck() -> None:
    """The answering instance's writer stored the answer's end, but the acknowledgements were
    lost and it cannot read back what landed: it is stuck, unsure. A follower on that
    instance, fed by that writer, turns to the log after a lease without acknowledgements and
    ends with the answer, instead of waiting on the writer."""
    held = _HeldAnswer()
    live = asyncio.create_task(_body(await held.chat.make_resumable(STREAM, held.model)))
    followed = asyncio.create_task(_body(await held.chat.replay(STREAM)))
    generation = held.chat.running(STREAM)
    assert generation is not None
    unsure = await held.stick(generation)
    held.go.set()
    await live
    body = await asyncio.wait_for(followed, 5)
    assert b"stored" in body and body.endswith(b"data: [DONE]\n\n")
    await held.end(generation, unsure)


def test_a_follower_joining_a_writer_stuck_for_a_lease_reads_the_log_at_once() -> None:
    """As above, but the follower comes after the writer has gone a lease without an
    acknowledgement: the writer's own account says it is stuck, so the follower reads the
    log at once rather than waiting a lease of its own (virtual time: exact)."""

    async def main() -> float:
        held = _HeldAnswer()
        live = asyncio.create_task(_body(await held.chat.make_resumable(STREAM, held.model)))
        generation = held.chat.running(STREAM)
        assert generation is not None
        unsure = await held.stick(generation)
        loop = asyncio.get_running_loop()
        held.go.set()  # the rest is submitted in this turn, and never acknowledged
        stuck_from = loop.time()
        await live
        await asyncio.sleep(stuck_from + 0.300 - loop.time())  # stuck for a lease now
        joined = loop.time()
        body = await _body(await held.chat.replay(STREAM))
        took = loop.time() - joined
        assert b"stored" in body and body.endswith(b"data: [DONE]\n\n")
        await held.end(generation, unsure)
        return took

    assert run_virtual(main()) < 0.050  # no lease of its own (300 ms)
