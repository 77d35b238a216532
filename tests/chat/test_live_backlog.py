"""A live client that stops reading costs the server a bounded amount of memory, and loses
nothing: past ``LIVE_BACKLOG_BYTES`` of frames waiting for it, its response stops taking
frames from the model and reads the rest of the answer from the log at the client's pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from chat_helpers import assert_whole_numbered_answer, numbered_answer
from fastapi import FastAPI

from helpers import user_message
from resumable_chat import create_resumable_chat
from resumable_chat.chat import producer as producer_module
from resumable_chat.chat.producer import LIVE_BACKLOG_BYTES, LiveChannel, live_backlog_bytes
from resumable_chat.fastapi import ai_sdk_router
from resumable_chat.s2 import Basin
from resumable_chat.sse import event_frame
from resumable_chat.testing.app_server import serve_app

pytestmark = pytest.mark.timeout(120)


async def _take(frames: AsyncIterator[bytes]) -> bytes:
    return await anext(frames)


async def test_frames_past_the_backlog_while_the_reader_sends_are_dropped_and_say_where() -> None:
    channel = LiveChannel(max_backlog_bytes=100)
    reader = channel.frames()
    first = asyncio.ensure_future(_take(reader))
    await asyncio.sleep(0)  # the reader waits for a frame
    channel.push(b"id: 5\n", 5, direct=False)
    assert await first == b"id: 5\n"  # handed over: the reader is "sending" it now
    channel.push(b"x" * 60, 6)
    assert channel.behind_from is None
    channel.push(b"y" * 60, 7)  # 120 bytes wait behind a send: too far behind
    assert channel.behind_from == 5  # the last id the reader was handed
    channel.push(b"z", 8)  # dropped: the reader reads the log from 5 on
    with pytest.raises(StopAsyncIteration):
        await anext(reader)
    assert channel.behind_from == 5


async def test_a_burst_while_the_reader_is_not_sending_is_never_cut() -> None:
    """A source that makes many frames in one loop turn (a cached answer), or a chunk larger
    than the bound, while the reader is not in a send: all of it is sent."""
    channel = LiveChannel(max_backlog_bytes=100)
    reader = channel.frames()
    for i in range(50):
        channel.push(b"%d:" % i + b"x" * 50, i + 1)
    channel.close(complete=True)
    assert b"".join([frames async for frames in reader]).count(b":") == 50
    assert channel.behind_from is None


async def test_no_position_no_cut_after_a_frame_without_an_id() -> None:
    """Frames sent before the claim was decided have no SSE id: with one of them the last
    handed over, there is no position to read the log from, so nothing is dropped."""
    channel = LiveChannel(max_backlog_bytes=10)
    reader = channel.frames()
    first = asyncio.ensure_future(_take(reader))
    await asyncio.sleep(0)
    channel.push(b"data: ahead\n\n", direct=False)
    await first
    for i in range(20):
        channel.push(b"y" * 20, i + 1)
    assert channel.behind_from is None
    channel.close(complete=True)
    assert len(await anext(reader)) == 400


async def _sending(channel: LiveChannel, frame: bytes, cursor: int) -> AsyncIterator[bytes]:
    """The channel's reader, handed ``frame`` and away sending it (as to a stalled client)."""
    reader = channel.frames()
    first = asyncio.ensure_future(_take(reader))
    await asyncio.sleep(0)  # the reader waits for a frame
    channel.push(frame, cursor, direct=False)
    assert await first == frame
    return reader


async def test_past_the_loop_total_the_channel_that_goes_over_reads_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Several stalled clients, each under its own bound: the frames they all hold together
    stay under the total; the response whose frame would go over reads the log instead, and
    what the others held is theirs until they take it."""
    monkeypatch.setattr(producer_module, "LIVE_BACKLOG_TOTAL_BYTES", 150)
    a, b = LiveChannel(max_backlog_bytes=1000), LiveChannel(max_backlog_bytes=1000)
    reader_a = await _sending(a, b"id: 3\n", 3)
    reader_b = await _sending(b, b"id: 8\n", 8)
    assert live_backlog_bytes() == 0
    a.push(b"x" * 100, 4)
    assert live_backlog_bytes() == 100
    b.push(b"y" * 60, 9)  # 160 held in all: b goes over
    assert (a.behind_from, b.behind_from) == (None, 8)
    assert live_backlog_bytes() == 100  # b's frames dropped, a's still held
    b.push(b"z", 10)  # dropped: b reads the log from 8 on
    with pytest.raises(StopAsyncIteration):
        await anext(reader_b)
    a.push(b"w" * 40, 5)  # 140: under the total again
    assert a.behind_from is None
    assert await anext(reader_a) == b"x" * 100 + b"w" * 40  # a's client read on: taken
    assert live_backlog_bytes() == 0
    await reader_a.aclose()


async def test_a_reader_that_goes_away_mid_send_gives_its_backlog_back() -> None:
    channel = LiveChannel(max_backlog_bytes=1000)
    reader = await _sending(channel, b"id: 1\n", 1)
    channel.push(b"x" * 300, 2)
    assert live_backlog_bytes() == 300
    await reader.aclose()  # the client left while its send waited
    assert live_backlog_bytes() == 0
    channel.push(b"y" * 300, 3)  # dropped: nobody reads
    assert live_backlog_bytes() == 0


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_backlog_bytes"):
        LiveChannel(max_backlog_bytes=0)


DELTA = 16 * 1024


def _lines(function: Any) -> tuple[str, range]:
    lines, first = inspect.getsourcelines(function)
    return inspect.getsourcefile(function) or "", range(first, first + len(lines))


def live_frame_bytes(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes still held that were made as live frames (in ``event_frame`` and the live
    channel's joins; not the chunks' bodies, which the embedded log holds)."""
    places = [_lines(event_frame), _lines(LiveChannel.frames)]
    return sum(
        stat.size
        for stat in snapshot.statistics("lineno")
        if any(
            stat.traceback[0].filename == file and stat.traceback[0].lineno in lines
            for file, lines in places
        )
    )


async def test_a_client_that_stops_reading_holds_a_bounded_backlog_and_loses_nothing(
    basin: Basin,
) -> None:
    """A 20 MB answer while the client reads nothing: the server holds about the bound of
    its frames (not the answer), and once the client reads again it gets every chunk once,
    in order, with the SSE ids the log gives them, then ``[DONE]``."""
    count = 1200
    finished = asyncio.Event()
    chat = create_resumable_chat(basin=basin)
    app = FastAPI()
    app.include_router(
        ai_sdk_router(chat, numbered_answer(count, finished, delta_bytes=DELTA, pause_s=0))
    )
    body = {"id": "stalled", "messages": [user_message()]}
    tracemalloc.start()
    try:
        async with (
            serve_app(app) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as client,
            client.stream("POST", "/api/chat", json=body) as live,
        ):
            assert live.status_code == 200
            reading = live.aiter_raw()
            received = await anext(reading)
            await asyncio.wait_for(finished.wait(), 60)  # ~20 MB made, none of it read
            held = live_frame_bytes(tracemalloc.take_snapshot())
            tracemalloc.stop()
            async for piece in reading:
                received += piece
    finally:
        tracemalloc.stop()
        await chat.aclose()
    assert held < 3 * LIVE_BACKLOG_BYTES < count * DELTA // 6, held  # not the ~20 MB made
    assert_whole_numbered_answer(received, count)


async def test_many_stalled_clients_hold_the_loop_total_not_their_bounds_each(
    basin: Basin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three clients stop reading while their 10 MB answers run (more than the sockets
    take): together the server holds about the loop's total of their frames (here 2 MiB),
    not what each may hold alone (here 64 MiB), and each client still gets its whole answer
    once it reads again."""
    total = 2 * 1024 * 1024
    monkeypatch.setattr(producer_module, "LIVE_BACKLOG_TOTAL_BYTES", total)
    monkeypatch.setattr(producer_module, "LIVE_BACKLOG_BYTES", 64 * 1024 * 1024)
    clients, count = 3, 600
    ended = 0
    all_finished = asyncio.Event()

    async def source(messages: list[dict[str, Any]], signal: Any) -> AsyncIterator[Any]:
        nonlocal ended
        answer = numbered_answer(count, asyncio.Event(), delta_bytes=DELTA, pause_s=0)
        try:
            async for chunk in answer(messages, signal):
                yield chunk
        finally:
            ended += 1
            if ended == clients:
                all_finished.set()

    chat = create_resumable_chat(basin=basin)
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, source))
    tracemalloc.start()
    try:
        async with (
            serve_app(app) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as client,
            contextlib.AsyncExitStack() as streams,
        ):
            readers = []
            for i in range(clients):
                body = {"id": f"stalled-{i}", "messages": [user_message()]}
                response = await streams.enter_async_context(
                    client.stream("POST", "/api/chat", json=body)
                )
                readers.append(response.aiter_raw())
            received = [await anext(reader) for reader in readers]
            await asyncio.wait_for(all_finished.wait(), 60)  # ~30 MB made, none of it read
            held = live_frame_bytes(tracemalloc.take_snapshot())
            counted = live_backlog_bytes()
            tracemalloc.stop()
            for i, reader in enumerate(readers):
                async for piece in reader:
                    received[i] += piece
    finally:
        tracemalloc.stop()
        await chat.aclose()
    assert counted <= total
    assert held < 2 * total, held  # the frames waiting, and those being sent
    for body in received:
        assert_whole_numbered_answer(body, count)
