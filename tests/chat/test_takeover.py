"""Heartbeats, crash takeover and stop races: two ResumableChat objects on one basin.

``a`` and ``b`` play two server instances sharing one S2 basin (the ``basin`` fixture runs
each test on the embedded log and on HttpBasin → the S2-compatible test server). A "crash"
of ``a`` cancels its generation without a stop: no terminal is written, its writer and
heartbeat die, exactly what a killed process leaves in the log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from resumable_chat import create_resumable_chat
from resumable_chat.chat.core import LOST_GENERATION_ERROR_TEXT, ResumableChat
from resumable_chat.clock import SYSTEM_CLOCK, Clock, LoopClock
from resumable_chat.log import Ownership, RecordKind, classify, read_range
from resumable_chat.log.scan import latest_generation
from resumable_chat.log.takeover import close_lost
from resumable_chat.s2 import Basin, MemoryBasin, SequencedRecord, is_fence, is_terminal_fence
from resumable_chat.s2.records import (
    AppendInput,
    AppendRecord,
    fence_record,
    is_stop_fence,
    trim_record,
)
from resumable_chat.testing.virtual_time import run_virtual

LEASE = {"lease_ms": 400, "heartbeat_ms": 100}
PROTOCOLS = ["ai-sdk", "tanstack"]


def _opening(protocol: str) -> list[dict[str, Any]]:
    if protocol == "ai-sdk":
        return [{"type": "start", "messageId": "m1"}, {"type": "text-start", "id": "t"}]
    return [
        {"type": "RUN_STARTED", "runId": "r1", "threadId": "th"},
        {"type": "TEXT_MESSAGE_START", "messageId": "a1", "role": "assistant"},
    ]


def _delta(protocol: str, i: int) -> dict[str, Any]:
    if protocol == "ai-sdk":
        return {"type": "text-delta", "id": "t", "delta": f"w{i} "}
    return {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a1", "delta": f"w{i} "}


def _closing(protocol: str) -> list[dict[str, Any]]:
    if protocol == "ai-sdk":
        return [{"type": "text-end", "id": "t"}, {"type": "finish"}]
    return [
        {"type": "TEXT_MESSAGE_END", "messageId": "a1"},
        {"type": "RUN_FINISHED", "runId": "r1", "finishReason": "stop"},
    ]


def _is_terminal_chunk(chunk: dict[str, Any]) -> bool:
    return chunk["type"] in ("finish", "error", "abort", "RUN_FINISHED", "RUN_ERROR")


def _chats(protocol: str, basin: Basin) -> tuple[ResumableChat, ResumableChat]:
    """Two instances: each has its own ownership registry, as two processes would."""
    return (
        create_resumable_chat(
            protocol=protocol, mode="session", basin=basin, ownership=Ownership(), **LEASE
        ),
        create_resumable_chat(
            protocol=protocol, mode="session", basin=basin, ownership=Ownership(), **LEASE
        ),
    )


async def _start(chat: ResumableChat, stream: str, model: Any) -> None:
    """Start a generation on ``chat`` as its protocol's POST route does."""
    if chat.dialect.name == "ai-sdk":
        assert (await chat.make_resumable(stream, model)).status_code == 200
    else:

        async def source(messages: Any, signal: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
            async for chunk in model(signal):
                yield chunk

        messages = [{"id": "u1", "role": "user", "parts": [{"type": "text", "content": "hi"}]}]
        response = await chat.make_session_response(
            stream, messages=messages, source=source, wait_until=lambda _: None
        )
        assert response.status_code == 202


async def _records(basin: Basin, stream: str) -> list[SequencedRecord]:
    return await read_range(basin, stream, 0)


def _stored_chunks(records: list[SequencedRecord]) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in records if classify(r) is RecordKind.DATA]


def _frames(raw: bytes) -> list[dict[str, Any]]:
    return [
        json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: {")
    ]


async def _follow(chat: ResumableChat, stream: str, into: bytearray) -> None:
    """Read ``chat.replay(stream)`` into ``into`` until it ends (or is cancelled)."""
    response = await chat.replay(stream)
    assert response.status_code == 200
    async for frame in response.body_iterator:  # type: ignore[attr-defined]
        into.extend(frame if isinstance(frame, bytes) else str(frame).encode())


async def _wait_for(predicate: Any, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls state no event signals
            await asyncio.sleep(0.02)


async def _ended(chat: ResumableChat, stream: str) -> None:
    """Wait (≤ 5 s) until ``chat`` no longer runs a generation on ``stream``."""
    generation = chat.running(stream)
    if generation is not None:
        await asyncio.wait_for(asyncio.shield(generation.task), 5)


def _assert_one_final_fence(records: list[SequencedRecord]) -> None:
    """The log ends with the generation's terminal fence and nothing follows it."""
    assert is_terminal_fence(records[-1])
    last_claim = max(
        i for i, r in enumerate(records) if is_fence(r) and r.body.startswith(b"session-")
    )
    terminals = [r for r in records[last_claim:] if is_terminal_fence(r)]
    assert terminals == [records[-1]]


# -- heartbeat -----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_silent_model_keeps_its_lease_and_readers_skip_heartbeats(
    basin: Basin, protocol: str
) -> None:
    a, b = _chats(protocol, basin)
    gate = asyncio.Event()

    async def model(signal: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
        for chunk in _opening(protocol):
            yield chunk
        await gate.wait()  # silent for several leases
        yield _delta(protocol, 0)
        for chunk in _closing(protocol):
            yield chunk

    stream = f"chat-hb-{protocol}"
    await _start(a, stream, model)
    replayed = bytearray()
    follower = asyncio.create_task(_follow(b, stream, replayed))
    await asyncio.sleep(1.2)  # three leases without a model chunk
    if protocol == "ai-sdk":
        assert (await b.make_resumable(stream, model)).status_code == 409
    records = await _records(basin, stream)
    assert sum(1 for r in records if not r.headers and not r.body) >= 5  # heartbeats
    assert not any(is_terminal_fence(r) for r in records)  # nobody took it over
    gate.set()
    generation = a.running(stream)
    assert generation is not None
    await generation.task
    if protocol == "ai-sdk":
        await asyncio.wait_for(follower, 5)
    else:
        await _wait_for(lambda: b"RUN_FINISHED" in replayed)
        follower.cancel()
    frames = _frames(bytes(replayed))
    assert frames and all(frame.get("type") for frame in frames)
    assert b"data: \n" not in replayed and b"data: {}" not in replayed
    assert _is_terminal_chunk(frames[-1])
    await a.aclose()
    await b.aclose()


class _ClockAhead(Clock):
    """The host's clock, ``ahead_ms`` ahead of S2's (which stamps the records; negative:
    behind)."""

    def __init__(self, ahead_ms: int) -> None:
        self.ahead_ms = ahead_ms

    def now_ms(self) -> int:
        return SYSTEM_CLOCK.now_ms() + self.ahead_ms


async def test_an_instance_whose_clock_runs_a_minute_ahead_never_closes_a_silent_answer(
    basin: Basin,
) -> None:
    """Heartbeats more than two seconds apart (``heartbeat_ms`` 2300) and an instance whose
    clock runs a minute ahead of S2's: every look it takes finds the lease expired by its
    clock. Its turns start right after a heartbeat lands, the worst moment (a 2 s window
    from there ends before the next heartbeat), and the confirmation window (two heartbeat
    intervals) still sees that next heartbeat, so they get 409 and the answer ends as its
    model ends it."""
    timing = {"lease_ms": 4600, "heartbeat_ms": 2300}
    a = create_resumable_chat(basin=basin, ownership=Ownership(), **timing)
    b = create_resumable_chat(
        basin=basin, ownership=Ownership(), clock=_ClockAhead(60_000), **timing
    )
    gate = asyncio.Event()

    async def model(signal: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
        for chunk in _opening("ai-sdk"):
            yield chunk
        await gate.wait()  # silent for a few heartbeats
        for chunk in _closing("ai-sdk"):
            yield chunk

    stream = "chat-clock-ahead"
    try:
        await _start(a, stream, model)
        replayed = bytearray()
        follower = asyncio.create_task(_follow(b, stream, replayed))

        async def turn() -> int:
            return (await b.make_resumable(stream, model)).status_code

        turns: list[asyncio.Task[int]] = []
        two_beats = asyncio.Event()

        def on_stored(records: list[SequencedRecord] | None) -> None:
            if records is None:  # the writer ended (fenced out by a takeover)
                two_beats.set()
            for record in records or ():
                if not record.headers and not record.body and len(turns) < 2:  # a heartbeat
                    turns.append(asyncio.get_running_loop().create_task(turn()))
                    if len(turns) == 2:
                        two_beats.set()

        generation = a.running(stream)
        assert generation is not None
        assert generation.writer.listen(on_stored) is not None
        await asyncio.wait_for(two_beats.wait(), 10)
        assert await asyncio.gather(*turns) == [409, 409]
        gate.set()
        await _ended(a, stream)
        await asyncio.wait_for(follower, 5)
        records = await _records(basin, stream)
        assert not any(classify(r) is RecordKind.ERROR for r in records)
        assert classify(records[-1]) is RecordKind.END
        assert _frames(bytes(replayed))[-1]["type"] == "finish"
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_stop_from_another_instance_reaches_a_silent_model(basin: Basin) -> None:
    a, b = _chats("ai-sdk", basin)
    closed = asyncio.Event()

    async def model(signal: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
        try:
            for chunk in _opening("ai-sdk"):
                yield chunk
            await asyncio.sleep(60)  # the model thinks for a minute
            yield _delta("ai-sdk", 0)
        finally:
            closed.set()

    await _start(a, "chat-silent-stop", model)
    generation = a.running("chat-silent-stop")
    assert generation is not None
    await asyncio.sleep(0.2)
    assert (await b.stop_session("chat-silent-stop")).status_code == 202
    async with asyncio.timeout(5):  # about one heartbeat, far below the minute
        await closed.wait()
        await generation.task
    assert generation.signal.is_set() and generation.outcome == "stopped"
    records = await _records(basin, "chat-silent-stop")
    stored = _stored_chunks(records)
    assert stored[-1] == {"type": "abort"}
    _assert_one_final_fence(records)
    await a.aclose()
    await b.aclose()


# -- crash takeover ------------------------------------------------------------------------


def _crash(chat: ResumableChat, stream: str) -> asyncio.Task[None]:
    """Kill ``chat``'s generation on ``stream`` like a dead process: no terminal, no fence."""
    generation = chat.running(stream)
    assert generation is not None
    generation.task.cancel()
    return generation.task


async def _crashing_model_started(
    a: ResumableChat, protocol: str, stream: str, words: int = 3
) -> asyncio.Event:
    produced = asyncio.Event()

    async def model(signal: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
        for chunk in _opening(protocol):
            yield chunk
        for i in range(words):
            yield _delta(protocol, i)
        produced.set()
        await asyncio.sleep(60)
        yield _delta(protocol, 99)

    await _start(a, stream, model)
    await produced.wait()
    return produced


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_follower_of_a_crashed_generation_gets_the_error_terminal(
    basin: Basin, protocol: str
) -> None:
    a, b = _chats(protocol, basin)
    stream = f"chat-crash-follow-{protocol}"
    await _crashing_model_started(a, protocol, stream)
    generation = a.running(stream)
    assert generation is not None
    await _wait_for(lambda: generation.writer.durable_seq_num >= generation.writer.next_seq_num)
    replayed = bytearray()
    follower = asyncio.create_task(_follow(b, stream, replayed))
    await _wait_for(lambda: b"w2 " in replayed)
    with pytest.raises(asyncio.CancelledError):
        await _crash(a, stream)
    # Within the lease (plus the check), the follower's answer ends with the error terminal.
    if protocol == "ai-sdk":
        await asyncio.wait_for(follower, 5)
        frames = _frames(bytes(replayed))
        assert frames[-3:] == [
            {"type": "text-end", "id": "t"},
            {"type": "message-metadata", "messageMetadata": {"error": LOST_GENERATION_ERROR_TEXT}},
            {"type": "error", "errorText": LOST_GENERATION_ERROR_TEXT},
        ]
        assert replayed.endswith(b"data: [DONE]\n\n")
    else:
        await _wait_for(lambda: b"RUN_ERROR" in replayed)
        follower.cancel()
        frames = _frames(bytes(replayed))
        error = frames[-1]
        assert error["type"] == "RUN_ERROR" and error["runId"] == "r1"
        assert error["message"] == LOST_GENERATION_ERROR_TEXT
        assert frames[-2] == {**frames[-2], "type": "TEXT_MESSAGE_END", "messageId": "a1"}
        assert frames[-2]["metadata"] == {"error": LOST_GENERATION_ERROR_TEXT}
    records = await _records(basin, stream)
    assert records[-1].body.startswith(b"error-") and is_terminal_fence(records[-1])
    # The chat takes a new turn at once.
    await _start(b, stream, _answer_model(protocol))
    later = b.running(stream)
    assert later is not None
    await later.task
    assert later.outcome == "end"
    await a.aclose()
    await b.aclose()


async def test_a_follower_whose_clock_runs_an_hour_behind_still_ends_a_crashed_answer(
    basin: Basin,
) -> None:
    """The follower's instance judges by its own wait (a lease with no record), so a clock
    an hour behind S2's, which would find the lease an hour from expiring, does not hold
    the reader: it gets the error terminal within the lease and the window."""
    a = create_resumable_chat(basin=basin, ownership=Ownership(), **LEASE)
    b = create_resumable_chat(
        basin=basin, ownership=Ownership(), clock=_ClockAhead(-3_600_000), **LEASE
    )
    stream = "chat-crash-follow-behind"
    try:
        await _crashing_model_started(a, "ai-sdk", stream)
        replayed = bytearray()
        follower = asyncio.create_task(_follow(b, stream, replayed))
        await _wait_for(lambda: b"w2 " in replayed)
        with pytest.raises(asyncio.CancelledError):
            await _crash(a, stream)
        await asyncio.wait_for(follower, 5)
        assert _frames(bytes(replayed))[-1] == {
            "type": "error",
            "errorText": LOST_GENERATION_ERROR_TEXT,
        }
        assert (await _records(basin, stream))[-1].body.startswith(b"error-")
    finally:
        await a.aclose()
        await b.aclose()


def _answer_model(protocol: str) -> Any:
    async def model(signal: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
        for chunk in [*_opening(protocol), _delta(protocol, 0), *_closing(protocol)]:
            yield dict(chunk)

    return model


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_new_turn_closes_a_crashed_generation_after_the_lease(
    basin: Basin, protocol: str
) -> None:
    a, b = _chats(protocol, basin)
    stream = f"chat-crash-claim-{protocol}"
    await _crashing_model_started(a, protocol, stream)
    generation = a.running(stream)
    assert generation is not None
    await _wait_for(lambda: generation.writer.durable_seq_num >= generation.writer.next_seq_num)
    with pytest.raises(asyncio.CancelledError):
        await _crash(a, stream)
    if protocol == "ai-sdk":  # within the lease it still counts as running
        assert (await b.make_resumable(stream, _answer_model(protocol))).status_code == 409
    await asyncio.sleep(0.5)
    await _start(b, stream, _answer_model(protocol))
    later = b.running(stream)
    assert later is not None
    await later.task
    records = await _records(basin, stream)
    fences = [r.body.decode().split("-")[0] for r in records if is_fence(r)]
    assert fences == ["session", "error", "session", "end"]
    crashed = _stored_chunks(
        records[
            : next(i for i, r in enumerate(records) if is_fence(r) and r.body.startswith(b"error-"))
        ]
    )
    assert _is_terminal_chunk(crashed[-1]) and crashed[-1]["type"] in ("error", "RUN_ERROR")
    assert sum(_is_terminal_chunk(c) for c in crashed) == 1
    history = await b.load_messages(stream)
    assert [m["role"] for m in history][-1] == "assistant"
    await a.aclose()
    await b.aclose()


async def test_stop_and_resume_of_a_crashed_generation_close_it_and_answer_204(
    basin: Basin,
) -> None:
    a, b = _chats("ai-sdk", basin)
    for i, action in enumerate(("stop", "replay")):
        stream = f"chat-crash-{action}"
        await _crashing_model_started(a, "ai-sdk", stream)
        generation = a.running(stream)
        assert generation is not None
        await _wait_for(
            lambda g=generation: g.writer.durable_seq_num >= g.writer.next_seq_num  # type: ignore[misc]
        )
        with pytest.raises(asyncio.CancelledError):
            await _crash(a, stream)
        await asyncio.sleep(0.5)
        response = await (b.stop_session(stream) if i == 0 else b.replay(stream))
        assert response.status_code == 204
        records = await _records(basin, stream)
        assert records[-1].body.startswith(b"error-")
        assert _stored_chunks(records)[-1]["type"] == "error"
    await a.aclose()
    await b.aclose()


# -- stop races ----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("stop_after", [0, 1, 2, 3, 4])
async def test_a_stop_racing_the_natural_end_gives_exactly_one_terminal(
    basin: Basin, protocol: str, stop_after: int
) -> None:
    a, b = _chats(protocol, basin)
    stream = f"chat-race-{protocol}-{stop_after}"
    script = [*_opening(protocol), _delta(protocol, 0), *_closing(protocol)]
    yielded = asyncio.Event()

    async def model(signal: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
        for i, chunk in enumerate(script):
            if i == stop_after:
                yielded.set()
            yield dict(chunk)
            await asyncio.sleep(0)
        yielded.set()

    await _start(a, stream, model)
    await yielded.wait()
    response = await b.stop_session(stream)
    assert response.status_code in (202, 204)
    await _ended(a, stream)
    records = await _records(basin, stream)
    answer = [c for c in _stored_chunks(records) if c.get("role") != "user"]
    assert sum(_is_terminal_chunk(c) for c in answer) == 1
    assert _is_terminal_chunk(answer[-1])
    _assert_one_final_fence(records)
    await asyncio.sleep(0.3)  # several heartbeat intervals: nothing is written after the fence
    assert len(await _records(basin, stream)) == len(records)
    await a.aclose()
    await b.aclose()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_stop_before_the_first_chunk_ends_the_answer_once(
    basin: Basin, protocol: str
) -> None:
    a, b = _chats(protocol, basin)
    stream = f"chat-early-stop-{protocol}"
    called = asyncio.Event()

    async def model(signal: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
        called.set()
        await asyncio.sleep(60)  # time to first token
        yield _opening(protocol)[0]

    await _start(a, stream, model)
    await called.wait()
    assert (await b.stop_session(stream)).status_code == 202
    await _ended(a, stream)
    records = await _records(basin, stream)
    answer = [c for c in _stored_chunks(records) if c.get("role") != "user"]
    assert sum(_is_terminal_chunk(c) for c in answer) == 1 and _is_terminal_chunk(answer[-1])
    assert (
        answer[-1] == {"type": "abort"}
        if protocol == "ai-sdk"
        else answer[-1]["finishReason"] == "stop"
    )
    _assert_one_final_fence(records)
    await a.aclose()
    await b.aclose()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stopping_twice_from_both_instances_ends_the_answer_once(
    basin: Basin, protocol: str
) -> None:
    a, b = _chats(protocol, basin)
    stream = f"chat-double-stop-{protocol}"
    await _crashing_model_started(a, protocol, stream)  # a long answer, not crashed here
    first, second, local = await asyncio.gather(
        b.stop_session(stream), b.stop_session(stream), a.stop_session(stream)
    )
    assert local.status_code == 202
    assert {first.status_code, second.status_code} <= {202, 204}
    await _ended(a, stream)
    assert (await b.stop_session(stream)).status_code == 204
    records = await _records(basin, stream)
    answer = [c for c in _stored_chunks(records) if c.get("role") != "user"]
    assert sum(_is_terminal_chunk(c) for c in answer) == 1 and _is_terminal_chunk(answer[-1])
    assert sum(is_stop_fence(r) for r in records) <= 2
    _assert_one_final_fence(records)
    await a.aclose()
    await b.aclose()


@pytest.mark.parametrize("mode", ["session", "shared"])
async def test_a_chat_whose_records_all_expired_takes_new_turns(basin: Basin, mode: str) -> None:
    """Retention (or a trim) can empty a chat's stream while its tail stays above 0."""
    chat = create_resumable_chat(protocol="ai-sdk", mode=mode, basin=basin, **LEASE)  # type: ignore[arg-type]
    stream = f"chat-expired-{mode}"
    await _start(chat, stream, _answer_model("ai-sdk"))
    generation = chat.running(stream)
    assert generation is not None
    await generation.task
    tail = (await basin.check_tail(stream)).seq_num
    await basin.append(stream, AppendInput([trim_record(tail + 1)]))
    for _ in range(50):  # S2 applies trims eventually
        if not await _records(basin, stream):
            break
        await asyncio.sleep(0.05)
    assert not await _records(basin, stream)
    await _start(chat, stream, _answer_model("ai-sdk"))
    later = chat.running(stream)
    assert later is not None
    await later.task
    assert later.outcome == "end"
    assert _stored_chunks(await _records(basin, stream))[-1]["type"] == "finish"
    await chat.aclose()


def test_a_turn_whose_claim_finds_the_lost_answer_closed_meanwhile_is_not_refused() -> None:
    """Instance b's new turn finds a lost answer and watches it stay silent for the
    confirmation window; instance a closes it during that window. The stream is free then:
    b's turn must go ahead, not answer 409 (virtual time: the race is exact)."""

    async def main() -> tuple[int, list[RecordKind]]:
        basin = MemoryBasin(clock=LoopClock())
        b = create_resumable_chat(
            basin=basin, clock=LoopClock(), ownership=Ownership(), **LEASE
        )  # confirmation window: two heartbeats, 200 ms
        # a's answer, lost: its claim and a chunk, then nothing (a crashed)
        await basin.append(
            "chat-race",
            AppendInput([fence_record("session-lost"), AppendRecord(b'{"type":"start"}')]),
        )
        await asyncio.sleep(0.5)  # virtual: past the lease

        async def a_closes_it() -> None:
            await asyncio.sleep(0.1)  # virtual: inside b's confirmation window
            latest = await latest_generation(basin, "chat-race")
            assert await close_lost(basin, "chat-race", latest, lambda stream, bodies: [])

        async def model(signal: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
            yield {"type": "text-start", "id": "t"}
            yield {"type": "text-end", "id": "t"}

        closing = asyncio.create_task(a_closes_it())
        response = await b.make_resumable("chat-race", model)
        await closing
        if response.status_code == 200:
            async for _ in response.body_iterator:  # type: ignore[attr-defined]
                pass
        await _ended(b, "chat-race")
        kinds = [classify(r) for r in await _records(basin, "chat-race")]
        await b.aclose()
        return response.status_code, kinds

    status, kinds = run_virtual(main())
    assert status == 200
    # a's claim and chunk, a's error terminal, then b's claim and its answer's end
    assert kinds.count(RecordKind.CLAIM) == 2
    assert kinds.index(RecordKind.ERROR) < kinds.index(RecordKind.CLAIM, 1)
    assert kinds[-1] is RecordKind.END


async def test_a_stream_deleted_under_its_answer_is_reported_as_deleted_not_taken_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The chat's stream is deleted (and, by the writer's next append, made anew, empty)
    while its answer runs: that is data loss, not another instance's takeover, and the log
    says so at WARNING; the chat takes the next turn on the new stream."""
    basin = MemoryBasin()
    chat = create_resumable_chat(basin=basin)
    more, reached = asyncio.Event(), asyncio.Event()

    async def model(signal: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        yield {"type": "text-delta", "id": "t", "delta": "a"}
        reached.set()
        await more.wait()
        yield {"type": "text-delta", "id": "t", "delta": " b"}
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}

    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
    try:
        live = await chat.make_resumable("chat-d", model, message=user, new_chat=True)
        generation = chat.running("chat-d")
        assert generation is not None
        await reached.wait()
        await basin.delete_stream("chat-d")
        more.set()
        async for _ in live.body_iterator:
            pass
        await asyncio.wait_for(asyncio.shield(generation.task), 5)
        assert isinstance(generation.writer.error, Exception)
        assert getattr(generation.writer.error, "deleted", False)
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("deleted or recreated" in m for m in warnings), warnings
        assert not any("taken over" in r.getMessage() for r in caplog.records)
        again = await chat.make_resumable("chat-d", model, message=user, new_chat=False)
        assert again.status_code == 200
    finally:
        await chat.aclose()
