"""A live answer's frames are sent by the task that makes them while the response waits
(``SseResponse.send_now``), and by the response's own task when a send has to wait. What a
user sees either way: every frame once, in order, and a response that ends as it should when
the client is slow, leaves, or the server's send fails.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from chat_helpers import assert_whole_numbered_answer, numbered_answer
from fastapi import FastAPI
from starlette.middleware.base import BaseHTTPMiddleware

from helpers import parse_sse, user_message
from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router
from resumable_chat.s2 import Basin, MemoryBasin
from resumable_chat.sse import SseResponse
from resumable_chat.testing.app_server import serve_app

pytestmark = pytest.mark.timeout(60)

BIG = 16 * 1024  # bytes per delta: 600 of them overflow the socket buffers many times


SENDING: contextvars.ContextVar[bool] = contextvars.ContextVar("sending", default=False)


class ContextInSend:
    """An ASGI middleware that sets a context variable around each ``send`` (as tracing
    middleware does): resetting it fails when a send is finished in another context."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.errors: list[BaseException] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def traced_send(message: Any) -> None:
            token = SENDING.set(True)
            try:
                await send(message)
            finally:
                try:
                    SENDING.reset(token)
                except ValueError as exc:
                    self.errors.append(exc)

        await self.app(scope, receive, traced_send)


class PassThrough(BaseHTTPMiddleware):
    async def dispatch(self, request: Any, call_next: Any) -> Any:
        return await call_next(request)


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn", "BaseHTTPMiddleware"])
async def test_a_client_that_stops_reading_still_gets_every_frame_once_in_order(
    basin: Basin, server: str
) -> None:
    count = 600
    finished = asyncio.Event()
    chat = create_resumable_chat(basin=basin)
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, numbered_answer(count, finished, delta_bytes=BIG)))
    if server == "BaseHTTPMiddleware":  # its send always takes a loop turn
        app.add_middleware(PassThrough)
    traced = ContextInSend(app)
    body = {"id": "slow", "messages": [user_message()]}
    try:
        async with (
            serve_app(traced, http2=server == "hypercorn") as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
            client.stream("POST", "/api/chat", json=body) as live,
        ):
            assert live.status_code == 200
            received = b""
            reading = live.aiter_raw()
            received += await anext(reading)
            # The client reads nothing while ~10 MB are made: the server's sends wait for it.
            await asyncio.wait_for(finished.wait(), 30)
            async for piece in reading:
                received += piece
    finally:
        await chat.aclose()
    assert traced.errors == []
    assert_whole_numbered_answer(received, count)


class Scripted:
    """An ASGI ``send`` that records messages; a body equal to ``hold`` waits for ``gate``,
    one equal to ``fail`` raises ``error``."""

    def __init__(
        self,
        hold: bytes | None = None,
        fail: bytes | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.messages: list[dict[str, Any]] = []
        self.hold, self.fail, self.error = hold, fail, error
        self.gate = asyncio.Event()
        self.held = asyncio.Event()
        self.started = asyncio.Event()
        self.wrote = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        body = message.get("body")
        if body is not None and body == self.fail:
            assert self.error is not None
            raise self.error
        if body is not None and body == self.hold:
            self.held.set()
            await self.gate.wait()
        self.messages.append(message)
        self.started.set()
        self.wrote.set()

    async def until_body(self, body: bytes) -> None:
        """Wait until the bodies sent so far are ``body``."""
        while self.body != body:
            self.wrote.clear()
            await self.wrote.wait()

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


class Frames:
    """A frames iterator the test feeds; records whether the response closed it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False
        self.taken = asyncio.Event()  # set each time the response takes a frame

    def __aiter__(self) -> Frames:
        return self

    async def __anext__(self) -> bytes:
        frame = await self.queue.get()
        if frame is None:
            raise StopAsyncIteration
        self.taken.set()
        return frame

    async def aclose(self) -> None:
        self.closed = True


async def never_disconnects() -> dict[str, Any]:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


SCOPE = {"type": "http", "method": "GET"}


async def started(response: SseResponse, asgi: Scripted) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(
        response(SCOPE, never_disconnects, asgi.send)  # type: ignore[arg-type]
    )
    await asgi.started.wait()  # the start message went out
    return task


async def test_send_now_sends_at_once_and_a_send_that_waits_keeps_the_order() -> None:
    frames = Frames()
    asgi = Scripted(hold=b"b")
    response = SseResponse(frames, headers={}, keepalive_s=0)
    assert not response.send_now(b"early")  # not started: the caller queues it
    task = await started(response, asgi)
    assert response.send_now(b"a")  # sent in this call: the response's task never woke
    assert asgi.body == b"a"
    assert response.send_now(b"b")  # its send waits (a slow client): finished by a task
    await asgi.held.wait()
    assert not response.send_now(b"c")  # one send at a time: the caller queues it instead
    frames.queue.put_nowait(b"c")
    frames.queue.put_nowait(None)
    await frames.taken.wait()  # the response has "c": a send of it would be in this step
    assert asgi.body == b"a"  # "c" waits behind "b"
    asgi.gate.set()
    await task
    assert asgi.body == b"abc"
    assert asgi.messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert not response.send_now(b"late")
    assert frames.closed


async def test_a_frame_offered_from_within_a_send_now_waits_its_turn() -> None:
    class Reentrant(Scripted):
        offered: list[bool]

        async def send(self, message: dict[str, Any]) -> None:
            if message.get("body") == b"a":  # something the send calls pushes a frame
                self.offered.append(response.send_now(b"inner"))
            await super().send(message)

    frames = Frames()
    asgi = Reentrant()
    asgi.offered = []
    response = SseResponse(frames, headers={}, keepalive_s=0)
    task = await started(response, asgi)
    assert response.send_now(b"a")
    assert asgi.offered == [False]  # queued by its caller instead: "a" is still going out
    frames.queue.put_nowait(b"inner")
    frames.queue.put_nowait(None)
    await asyncio.wait_for(task, 5)
    assert asgi.body == b"ainner"


async def test_a_send_that_always_yields_a_turn_is_left_to_the_response() -> None:
    class Yielding(Scripted):
        async def send(self, message: dict[str, Any]) -> None:
            await asyncio.sleep(0)
            await super().send(message)

    frames = Frames()
    asgi = Yielding()
    response = SseResponse(frames, headers={}, keepalive_s=0)
    task = await started(response, asgi)
    assert response.send_now(b"a")  # finished by a task after its loop turn
    await asyncio.wait_for(asgi.until_body(b"a"), 5)
    assert not response.send_now(b"b")  # from now on the response's task sends
    frames.queue.put_nowait(b"b")
    frames.queue.put_nowait(None)
    await asyncio.wait_for(task, 5)
    assert asgi.body == b"ab"


async def test_a_client_gone_during_send_now_ends_the_response_as_a_disconnect() -> None:
    frames = Frames()
    asgi = Scripted(fail=b"x", error=OSError("client went away"))
    response = SseResponse(frames, headers={}, keepalive_s=0)
    task = await started(response, asgi)
    assert response.send_now(b"x")  # taken: the client is gone, nothing to queue it for
    await asyncio.wait_for(task, 5)  # ends at once, without the chunked terminator
    assert asgi.body == b""
    assert all(m.get("more_body", True) for m in asgi.messages[1:])
    assert frames.closed


@pytest.mark.parametrize("handled", [False, True])
async def test_a_send_now_failure_ends_the_response_like_its_own_send_failing(
    handled: bool,
) -> None:
    frames = Frames()
    asgi = Scripted(fail=b"y", error=RuntimeError("middleware bug"))
    response = SseResponse(frames, headers={}, keepalive_s=0)
    seen: list[Exception] = []
    if handled:
        response.on_error = lambda exc: seen.append(exc) is None
    task = await started(response, asgi)
    assert response.send_now(b"y")
    if handled:
        await asyncio.wait_for(task, 5)  # broken off: no terminator, the client reconnects
        assert [str(e) for e in seen] == ["middleware bug"]
        assert all(m.get("more_body", True) for m in asgi.messages[1:])
    else:
        with pytest.raises(RuntimeError, match="middleware bug"):
            await asyncio.wait_for(task, 5)
    assert frames.closed


async def test_a_response_cut_while_a_send_now_waits_cancels_that_send() -> None:
    frames = Frames()
    asgi = Scripted(hold=b"x")
    response = SseResponse(frames, headers={}, keepalive_s=0)
    task = await started(response, asgi)
    assert response.send_now(b"x")
    await asgi.held.wait()
    response.server_exiting()  # no on_shutdown: the response ends at once
    await asyncio.wait_for(task, 5)
    assert asgi.body == b""  # the waiting send was cancelled, not finished after the end
    assert frames.closed


def check_contiguous(body: bytes, first_delta: int, count: int) -> list[int]:
    """The SSE ids of ``body``, after checking: ids without gaps, the deltas from
    ``first_delta`` to the last in order, ``[DONE]`` at the end."""
    events = parse_sse(body.decode())
    assert events[-1] == (None, "[DONE]")
    ids = [int(i) for i, _ in events[:-1] if i is not None]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    deltas = [d for _, d in events if '"text-delta"' in d]
    got = [int(d[d.index('"delta":"') + 9 :][:5]) for d in deltas]
    assert got == list(range(first_delta, count))
    return ids


async def test_followers_here_sent_from_the_tap_get_every_frame_once_however_they_read(
    basin: Basin,
) -> None:
    count = 400
    release, finished = asyncio.Event(), asyncio.Event()
    chat = create_resumable_chat(basin=basin)
    app = FastAPI()
    app.include_router(
        ai_sdk_router(chat, numbered_answer(count, finished, delta_bytes=BIG, release=release))
    )

    async def read_all(reading: AsyncIterator[bytes], first: bytes) -> bytes:
        body = first
        async for piece in reading:
            body += piece
        return body

    async def first_events(reading: AsyncIterator[bytes], n: int) -> bytes:
        body = b""
        while body.count(b"\n\n") < n:
            body += await anext(reading)
        return body

    try:
        async with (
            serve_app(app) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
            client.stream(
                "POST", "/api/chat", json={"id": "fan", "messages": [user_message()]}
            ) as live,
        ):
            live_reading = live.aiter_raw()
            live_first = await first_events(live_reading, 5)  # start ... third delta
            cursor = int(parse_sse(live_first.decode())[2][0] or 0)  # after the first delta
            async with (
                client.stream("GET", "/api/chat/fan/stream") as fast,
                client.stream("GET", "/api/chat/fan/stream", params={"from": cursor}) as resumed,
                client.stream("GET", "/api/chat/fan/stream") as slow,
            ):
                readers = []
                for stream in (fast, resumed, slow):
                    assert stream.status_code == 200
                    reading = stream.aiter_raw()
                    readers.append((reading, await anext(reading)))
                # all three wait on the tap now: release the rest of the answer
                release.set()
                tasks = [
                    asyncio.create_task(read_all(reading, first)) for reading, first in readers[:2]
                ]
                live_task = asyncio.create_task(read_all(live_reading, live_first))
                # the slow follower reads nothing until the model is done (~6 MB later)
                await asyncio.wait_for(finished.wait(), 30)
                fast_body, resumed_body = await asyncio.gather(*tasks)
                slow_body = await read_all(*readers[2])
                live_body = await live_task
    finally:
        await chat.aclose()
    live_ids = check_contiguous(live_body, 0, count)
    assert check_contiguous(fast_body, 0, count) == live_ids
    assert check_contiguous(slow_body, 0, count) == live_ids
    assert check_contiguous(resumed_body, 1, count)[0] == cursor + 1


class TimeoutInSend:
    """An ASGI middleware whose ``send`` runs under ``asyncio.timeout`` (needs a task)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def timed_send(message: Any) -> None:
            async with asyncio.timeout(5):
                await send(message)

        await self.app(scope, receive, timed_send)


class HeldClaimBasin(MemoryBasin):
    """Holds the first append (the claim) until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def append(self, stream: str, input: Any) -> Any:
        await self.release.wait()
        return await super().append(stream, input)


@pytest.mark.parametrize("respond_before_claim", [False, True])
async def test_a_send_that_needs_a_task_works_before_and_after_the_claim(
    respond_before_claim: bool,
) -> None:
    words = [f"w{i} " for i in range(20)]

    async def source(messages: list[dict[str, Any]], signal: StopSignal) -> AsyncIterator[Any]:
        yield {"type": "start", "messageId": "m1"}
        yield {"type": "text-start", "id": "t"}
        for word in words:
            yield {"type": "text-delta", "id": "t", "delta": word}
            await asyncio.sleep(0.002)
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish", "finishReason": "stop"}

    basin = HeldClaimBasin()
    chat = create_resumable_chat(basin=basin, respond_before_claim=respond_before_claim)
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, source))
    body = {"id": "timed", "messages": [user_message()]}
    text = ""
    try:
        async with (
            serve_app(TimeoutInSend(app)) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            if not respond_before_claim:
                basin.release.set()  # the response starts only once the claim is stored
            async with client.stream("POST", "/api/chat", json=body) as response:
                assert response.status_code == 200
                async for piece in response.aiter_text():
                    text += piece
                    if text.count('"text-delta"') >= 5:
                        basin.release.set()  # sent before the claim: now let it land
    finally:
        await chat.aclose()
    events = parse_sse(text)
    assert events[-1] == (None, "[DONE]")
    deltas = [d for _, d in events if '"text-delta"' in d]
    assert "".join(d.split('"delta":"')[1].split('"')[0] for d in deltas) == "".join(words)
