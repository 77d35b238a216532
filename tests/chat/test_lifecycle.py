"""A long-running process: what the chat object does with its user's callbacks and sources
over a chat's life and at shutdown (``aclose``), when they misbehave.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest

from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.chat.core import MAX_ERROR_TEXT_CHARS, ResumableChat
from resumable_chat.log import (
    PROCESS_OWNERSHIP,
    Generation,
    Ownership,
    RecordKind,
    classify,
    read_range,
)
from resumable_chat.log import engine as log_engine
from resumable_chat.log import generation as log_generation
from resumable_chat.s2 import MemoryBasin
from resumable_chat.s2.records import AppendAck, AppendInput, ReadBatch

pytestmark = pytest.mark.timeout(30)


async def _read_until(frames: AsyncIterator[bytes], marker: bytes) -> bytes:
    """Read a live response's frames until one holds ``marker``; what was read."""
    received = await anext(frames)
    while marker not in received:
        received += await anext(frames)
    return received


async def _stop_and_drain(
    chat: ResumableChat, frames: AsyncIterator[bytes]
) -> tuple[Generation, bytes]:
    """Stop ``chat-1`` (202), then read the rest of its live response and wait for its
    generation to end (bounded by 5 s: a failure ends, it is not a synchronisation)."""
    generation = chat.running("chat-1")
    assert generation is not None
    assert (await chat.stop_session("chat-1")).status_code == 202
    async with asyncio.timeout(5):
        rest = b"".join([frame async for frame in frames])
        await generation.task
    return generation, rest


async def short_answer(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "text-start", "id": "t"}
    yield {"type": "text-delta", "id": "t", "delta": "hello"}
    yield {"type": "text-end", "id": "t"}


class HeldClaimBasin(MemoryBasin):
    """A basin that holds every claim (``session-`` fence) until ``release`` is set: S2 slow
    to answer a claim."""

    def __init__(self) -> None:
        super().__init__()
        self.claiming = asyncio.Event()
        self.release = asyncio.Event()

    async def append(self, stream: str, input: AppendInput) -> AppendAck:
        if input.records[0].body.startswith(b"session-"):
            self.claiming.set()
            await self.release.wait()
        return await super().append(stream, input)


async def read_body(response: Any) -> bytes:
    return b"".join([frame async for frame in response.body_iterator])


async def test_on_error_is_called_only_for_errors() -> None:
    """``on_error`` maps a failure to its error text; an answer that ends well must not call
    it (an app that reports every call to its error tracker saw one report per turn)."""
    seen: list[BaseException] = []

    def on_error(exc: BaseException) -> str:
        seen.append(exc)
        return "sorry"

    chat = create_resumable_chat(basin=MemoryBasin(), on_error=on_error)
    try:
        for turn in range(3):
            response = await chat.make_resumable(f"chat-{turn}", short_answer)
            assert (await read_body(response)).endswith(b"data: [DONE]\n\n")
    finally:
        await chat.aclose()
    assert seen == []


async def test_aclose_waits_for_a_claim_in_flight_and_drains_its_answer() -> None:
    """A turn whose claim is in flight when ``aclose`` begins is part of the drain: when
    ``aclose`` returns, its answer has ended and its log ends with a terminal fence. Before,
    ``aclose`` returned at once and the answer ran on after the chat was closed (nobody
    awaited its task; with an owned basin its writer met a closed client)."""
    basin = HeldClaimBasin()
    chat = create_resumable_chat(basin=basin)
    turn = asyncio.create_task(chat.make_resumable("chat-1", short_answer))
    await basin.claiming.wait()
    closing = asyncio.create_task(chat.aclose(drain_timeout_s=5))
    basin.release.set()
    await closing
    assert chat.running("chat-1") is None
    records = await read_range(basin, "chat-1", 0)
    assert classify(records[-1]) is RecordKind.END, records[-1]
    response = await turn
    assert (await read_body(response)).endswith(b"data: [DONE]\n\n")


async def test_a_stop_ends_an_answer_whose_source_swallows_the_cancel() -> None:
    """A source that catches ``CancelledError`` (a retry loop around the model call, say) and
    keeps yielding is still stopped: the stop is honoured at its next chunk, the live client
    gets the stop terminal and the log ends with it. Before, ``stop_session`` answered 202
    and the answer ran on to its end (or forever) as if nobody had pressed Stop."""
    chunks_after_stop = 0
    released = asyncio.Event()  # lets the source end (so a failing test ends too)

    async def stubborn(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        nonlocal chunks_after_stop
        yield {"type": "text-start", "id": "t"}
        yield {"type": "text-delta", "id": "t", "delta": "a"}
        while True:
            try:
                await released.wait()  # the model's next token
                return
            except asyncio.CancelledError:
                pass  # swallowed: "retry"
            chunks_after_stop += 1
            yield {"type": "text-delta", "id": "t", "delta": "b"}

    basin = MemoryBasin()
    chat = create_resumable_chat(basin=basin)
    try:
        response = await chat.make_resumable("chat-1", stubborn)
        frames = response.body_iterator.__aiter__()
        await _read_until(frames, b'"delta":"a"')
        generation, rest = await _stop_and_drain(chat, frames)
        assert b'"type":"abort"' in rest, rest
        assert rest.endswith(b"data: [DONE]\n\n")
        assert chunks_after_stop == 1  # stopped at the chunk it yielded after the cancel
        assert generation.outcome == "stopped"
        records = await read_range(basin, "chat-1", 0)
        assert classify(records[-1]) is RecordKind.END
        assert b'"delta":"b"' not in b"".join(r.body for r in records)
    finally:
        released.set()
        await chat.aclose(drain_timeout_s=1)


async def test_aclose_ends_in_bounded_time_when_a_source_ignores_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``aclose`` gives a generation whose source swallows every cancel (and never yields
    again) a bounded time, then leaves it behind: the live response ends, the writer stops
    (no heartbeats: another instance closes the answer after the lease), and ``aclose``
    returns. Before, it awaited the task forever, and so did the app's shutdown."""
    monkeypatch.setattr(log_engine, "CLOSE_GRACE_S", 0.1)
    released = asyncio.Event()  # lets the source end once the test is over

    async def deaf(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                pass

    basin = MemoryBasin()
    chat = create_resumable_chat(basin=basin)
    response = await chat.make_resumable("chat-1", deaf)
    frames = response.body_iterator.__aiter__()
    await _read_until(frames, b'"text-start"')
    generation = chat.running("chat-1")
    assert generation is not None
    valve = asyncio.get_running_loop().call_later(8, released.set)  # so a failure ends
    try:
        async with asyncio.timeout(5):  # a bound for the failure, not a synchronisation
            await chat.aclose(drain_timeout_s=0)
            rest = b"".join([frame async for frame in frames])
        assert not generation.task.done()
        assert b"[DONE]" not in rest  # abandoned: the client resumes and sees the takeover
        assert not generation.writer.running
        assert not PROCESS_OWNERSHIP.runs(generation.claim.token)
        released.set()  # the source ends at last: nothing more is stored, nothing raised
        await asyncio.wait([generation.task])
        assert not generation.task.cancelled() and generation.task.exception() is None
        records = await read_range(basin, "chat-1", 0)
        assert classify(records[-1]) not in (RecordKind.END, RecordKind.ERROR)
    finally:
        valve.cancel()
        released.set()
        await asyncio.wait([generation.task])


async def test_a_closed_chat_refuses_every_call() -> None:
    """After ``aclose`` every method that touches the log raises ``RuntimeError`` naming the
    closed chat. Before, with a basin the app passed in (not closed by the chat), ``replay``
    and ``stop_session`` still answered and ``replay`` opened a log reader (a task) that no
    ``aclose`` would ever end; with the basin the chat created, the same calls raised httpx's
    ``RuntimeError: Cannot send a request, as the client has been closed``."""
    basin = MemoryBasin()
    chat = create_resumable_chat(basin=basin)
    response = await chat.make_resumable("chat-1", short_answer)
    await read_body(response)
    await chat.aclose()
    calls = {
        "replay": lambda: chat.replay("chat-1"),
        "stop_session": lambda: chat.stop_session("chat-1"),
        "load_messages": lambda: chat.load_messages("chat-1"),
        "make_resumable": lambda: chat.make_resumable("chat-2", short_answer),
    }
    for name, call in calls.items():
        with pytest.raises(RuntimeError, match="ResumableChat is closed"):
            await call()
            pytest.fail(f"{name} answered after aclose")


async def test_a_stop_ends_an_answer_whose_source_hangs_while_closing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Closing the source (which ends the model request) is given a bounded time: a source
    whose ``aclose`` never returns (a ``finally`` that awaits a model client that does not
    answer) still lets a stop end the answer with the stop terminal. Before, the stop
    answered 202 and the answer never ended: no terminal, the writer's heartbeats kept the
    chat locked (409) for as long as the process lived."""
    monkeypatch.setattr(log_generation, "SOURCE_CLOSE_TIMEOUT_S", 0.1)
    released = asyncio.Event()  # lets the source end (so a failing test ends too)

    async def hangs_on_close(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        try:
            yield {"type": "text-start", "id": "t"}
            await asyncio.Event().wait()  # the model's next token, which never comes
        finally:
            await released.wait()  # closing the model client, which never answers

    basin = MemoryBasin()
    chat = create_resumable_chat(basin=basin)
    valve = asyncio.get_running_loop().call_later(8, released.set)  # so a failure ends
    try:
        response = await chat.make_resumable("chat-1", hangs_on_close)
        frames = response.body_iterator.__aiter__()
        await _read_until(frames, b'"text-start"')
        generation, rest = await _stop_and_drain(chat, frames)
        assert b'"type":"abort"' in rest, rest
        assert generation.outcome == "stopped"
        records = await read_range(basin, "chat-1", 0)
        assert classify(records[-1]) is RecordKind.END
    finally:
        valve.cancel()
        released.set()
        await chat.aclose(drain_timeout_s=1)


async def test_a_chat_in_use_on_one_event_loop_refuses_calls_from_another() -> None:
    """One ``ResumableChat`` serves one event loop. Called from a second loop while the first
    one still runs (a chat shared by two threads), it raises ``RuntimeError`` saying so.
    Before, ``replay`` answered 200 and its body hung: the follower waited on a future that
    the writer's acknowledgements, arriving on the first loop, never woke (and asyncio
    logged "Non-thread-safe operation invoked on an event loop other than the current
    one")."""
    chat = create_resumable_chat(basin=MemoryBasin())
    started = threading.Event()
    other_loop: list[asyncio.AbstractEventLoop] = []
    release: list[asyncio.Event] = []

    async def held(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        await release[0].wait()
        yield {"type": "text-end", "id": "t"}

    async def first_loop() -> None:
        other_loop.append(asyncio.get_running_loop())
        release.append(asyncio.Event())
        response = await chat.make_resumable("chat-1", held)
        frames = response.body_iterator.__aiter__()
        await anext(frames)
        started.set()
        async for _ in frames:
            pass
        await chat.aclose()

    thread = threading.Thread(target=asyncio.run, args=(first_loop(),))
    thread.start()
    try:
        assert await asyncio.to_thread(started.wait, 10)
        with pytest.raises(RuntimeError, match="another event loop"):
            async with asyncio.timeout(5):  # a bound for the failure, not a synchronisation
                await chat.replay("chat-1")
    finally:
        if other_loop:
            other_loop[0].call_soon_threadsafe(release[0].set)
        await asyncio.to_thread(thread.join, 10)


class YieldingBasin(MemoryBasin):
    """A basin whose reads take a loop turn, as a network round trip does (so a prefetched
    source starts while the claim is in flight)."""

    async def read(self, stream: str, **options: Any) -> ReadBatch:
        await asyncio.sleep(0)
        return await super().read(stream, **options)


async def test_a_lost_claim_answers_409_when_the_prefetched_source_hangs_while_closing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``overlap_claim`` the source starts while the claim is in flight; a claim lost to
    another instance cancels it and answers 409. A source whose cleanup on that cancel hangs
    is cancelled again after ``SOURCE_CLOSE_TIMEOUT_S``, so the 409 still comes. Before, the
    request hung for as long as the cleanup did (forever here)."""
    monkeypatch.setattr(log_generation, "SOURCE_CLOSE_TIMEOUT_S", 0.1)
    basin = YieldingBasin()
    holder = create_resumable_chat(basin=basin)
    other = create_resumable_chat(basin=basin, ownership=Ownership())
    release = asyncio.Event()
    fetching = asyncio.Event()

    async def held(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        await release.wait()
        yield {"type": "text-end", "id": "t"}

    async def hangs_on_cancel(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        try:
            fetching.set()
            await asyncio.Event().wait()  # the model's first token
            yield {"type": "text-start", "id": "t"}
        finally:
            await release.wait()  # closing the model client, which does not answer

    valve = asyncio.get_running_loop().call_later(8, release.set)  # so a failure ends
    try:
        running = await holder.make_resumable("chat-1", held)
        async with asyncio.timeout(5):  # a bound for the failure, not a synchronisation
            refused = await other.make_resumable("chat-1", hangs_on_cancel)
        assert fetching.is_set()  # the source had started before the claim was lost
        assert refused.status_code == 409
    finally:
        valve.cancel()
        release.set()
        await read_body(running)
        await other.aclose()
        await holder.aclose()


async def test_a_stopped_generation_is_released_when_it_ends() -> None:
    """A stop arms a timer that cancels a source again if it has not ended by then; once
    the generation has ended the timer is cancelled, so nothing keeps the generation (its
    producer, live channel and writer) in memory: a process stopping many answers a second
    held every one of them for ``SOURCE_CLOSE_TIMEOUT_S`` more."""
    basin = MemoryBasin()
    chat = create_resumable_chat(basin=basin)
    try:
        release = asyncio.Event()

        async def waits(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
            yield {"type": "text-start", "id": "t"}
            await release.wait()

        response = await chat.make_resumable("chat-1", waits)
        frames = response.body_iterator.__aiter__()
        await _read_until(frames, b'"text-start"')
        generation = chat.running("chat-1")
        assert generation is not None
        assert (await chat.stop_session("chat-1")).status_code == 202
        await generation.task
        async for _ in frames:
            pass
        released = weakref.ref(generation)
        del generation, response, frames
        gc.collect()
        assert released() is None, gc.get_referrers(released())
    finally:
        await chat.aclose()


async def test_aclose_ends_session_replays_on_a_basin_the_app_owns() -> None:
    """``aclose`` ends every log reader the chat opened: a TanStack session replay (which
    follows the chat across turns) ends too, without a done frame, and leaves no task
    behind, also when the basin is the app's (not closed by the chat). Before, it followed
    on after ``aclose`` until its client went away."""

    async def answer(
        messages: list[dict[str, Any]], signal: StopSignal
    ) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"}
        yield {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "x"}
        yield {"type": "TEXT_MESSAGE_END", "messageId": "m1"}

    basin = MemoryBasin()
    chat = create_resumable_chat(protocol="tanstack", basin=basin)
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "content": "hi"}]}
    assert (
        await chat.make_session_response("chat-1", messages=[user], source=answer)
    ).status_code == 202
    replay = await chat.replay("chat-1")
    frames = replay.body_iterator.__aiter__()
    assert b"MESSAGES_SNAPSHOT" in await anext(frames)
    reader = asyncio.create_task(anext(frames))
    await chat.aclose()
    async with asyncio.timeout(5):  # a bound for the failure, not a synchronisation
        with pytest.raises(StopAsyncIteration):
            await reader
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []


async def test_an_on_error_that_returns_no_text_gets_the_default_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``on_error`` must return the error chunk's text; one that returns something else
    (``None`` from a function that forgot its ``return``) is logged and the default text is
    used. Before, ``{"type":"error","errorText":null}`` was sent and stored, which the AI
    SDK client's chunk schema rejects (``errorText`` is a string)."""

    async def failing(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        raise RuntimeError("model down")

    basin = MemoryBasin()
    chat = create_resumable_chat(basin=basin, on_error=lambda exc: None)  # type: ignore[arg-type,return-value]
    try:
        body = await read_body(await chat.make_resumable("chat-1", failing))
    finally:
        await chat.aclose()
    assert b'{"type":"error","errorText":"An error occurred."}' in body, body
    records = await read_range(basin, "chat-1", 0)
    assert any(b'"errorText":"An error occurred."' in r.body for r in records)
    assert "on_error returned" in caplog.text


@pytest.mark.parametrize("size", [16 * 1024, 80 * 1024 * 1024])
async def test_an_on_error_text_too_long_for_a_chunk_is_cut(
    size: int, caplog: pytest.LogCaptureFixture
) -> None:
    """An ``on_error`` that returns a huge text (an exception quoting a whole model response)
    still ends the answer with its error chunk, live and stored: the text is cut to
    ``MAX_ERROR_TEXT_CHARS`` characters ending in "…". A text of 80 MiB used to end the
    answer without any error chunk (it could not be stored in one chunk's records)."""

    async def failing(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        raise RuntimeError("model down")

    basin = MemoryBasin()
    chat = create_resumable_chat(basin=basin, on_error=lambda exc: "\u00e9" * size)
    try:
        body = await read_body(await chat.make_resumable("chat-1", failing))
        assert chat.running("chat-1") is None
    finally:
        await chat.aclose()
    if size <= MAX_ERROR_TEXT_CHARS:
        kept = "\u00e9" * size
    else:
        kept = "\u00e9" * (MAX_ERROR_TEXT_CHARS - 1) + "\u2026"
    error = json.dumps(
        {"type": "error", "errorText": kept}, separators=(",", ":"), ensure_ascii=False
    )
    assert error.encode() in body
    records = await read_range(basin, "chat-1", 0)
    assert any(r.body.startswith(b"error-") for r in records)
    assert any(error.encode() in r.body for r in records)
    assert ("on_error returned" in caplog.text) == (size > MAX_ERROR_TEXT_CHARS)
