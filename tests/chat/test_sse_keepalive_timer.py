"""Keep-alive comments of ``SseResponse`` on virtual time: when they go out (after
``keepalive_s`` without a send, never while a frame is being sent), and how a failing comment
or a disconnect ends the response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from resumable_chat.sse import SseResponse
from resumable_chat.testing.virtual_time import run_virtual

COMMENT = b": keep-alive\n\n"
END = {"type": "http.response.body", "body": b"", "more_body": False}


class Client:
    """The server side of one request: what was sent and when (virtual seconds), a
    disconnect to trigger, and sends that wait or fail on demand."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, bytes]] = []
        self.messages: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.requested = False
        #: a send of this body waits until ``release`` is set (a client behind)
        self.hold: bytes | None = None
        self.release = asyncio.Event()
        #: a send of a comment raises this
        self.comment_fails: Exception | None = None

    async def receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        body = message.get("body", b"")
        if body == COMMENT and self.comment_fails is not None:
            raise self.comment_fails
        if body is not None and body == self.hold:
            await self.release.wait()
        self.messages.append(message)
        if body:
            self.sent.append((asyncio.get_running_loop().time(), body))

    def comments(self) -> list[float]:
        return [at for at, body in self.sent if body == COMMENT]


async def paced(
    frames: list[tuple[float, bytes]], then_wait: asyncio.Event
) -> AsyncIterator[bytes]:
    """``frames`` at their virtual times, then silence until ``then_wait`` is set."""
    loop = asyncio.get_running_loop()
    for at, frame in frames:
        await asyncio.sleep(at - loop.time())
        yield frame
    await then_wait.wait()


async def one_frame_then_silence(closed: asyncio.Event) -> AsyncIterator[bytes]:
    """One frame, then nothing; ``closed`` is set when the response closes the iterator."""
    try:
        yield b"a"
        await asyncio.Event().wait()
    finally:
        closed.set()


def serve(response: SseResponse, client: Client) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(
        response({"type": "http", "method": "GET"}, client.receive, client.send)  # type: ignore[arg-type]
    )


def test_an_idle_response_gets_a_comment_each_interval_after_its_last_frame() -> None:
    async def main() -> tuple[list[float], list[dict[str, Any]]]:
        client, done = Client(), asyncio.Event()
        response = SseResponse(paced([(0, b"a"), (4, b"b")], done), headers={}, keepalive_s=15)
        task = serve(response, client)
        await asyncio.sleep(50)
        client.gone.set()
        await task
        return client.comments(), client.messages

    comments, messages = run_virtual(main())
    assert comments == [19, 34, 49]  # 15 s after the last send, each time
    assert messages[-1] != END  # the client left: no terminator


def test_frames_more_often_than_the_interval_send_no_comment() -> None:
    async def main() -> list[float]:
        client, done = Client(), asyncio.Event()
        frames = [(at, b"f") for at in range(0, 100, 10)]  # every 10 s, up to 90 s
        task = serve(SseResponse(paced(frames, done), headers={}, keepalive_s=15), client)
        await asyncio.sleep(110)
        client.gone.set()
        await task
        return client.comments()

    assert run_virtual(main()) == [105]  # only once the frames stopped


def test_no_comment_while_a_frame_waits_on_a_slow_client() -> None:
    async def main() -> list[tuple[float, bytes]]:
        client, done = Client(), asyncio.Event()
        client.hold = b"slow"
        response = SseResponse(paced([(5, b"slow")], done), headers={}, keepalive_s=15)
        task = serve(response, client)
        await asyncio.sleep(40)
        client.release.set()  # the frame's send finishes at 40 s
        await asyncio.sleep(20)
        client.gone.set()
        await task
        return client.sent

    sent = run_virtual(main())
    assert sent == [(40, b"slow"), (55, COMMENT)]


def test_a_comment_the_client_is_gone_for_ends_the_response_quietly() -> None:
    async def main() -> tuple[list[dict[str, Any]], bool]:
        client = Client()
        client.comment_fails = OSError("connection reset")
        closed = asyncio.Event()
        task = serve(
            SseResponse(one_frame_then_silence(closed), headers={}, keepalive_s=15), client
        )
        await task  # ends by itself, at the failed comment
        return client.messages, closed.is_set()

    messages, closed = run_virtual(main())
    assert [m.get("body") for m in messages[1:]] == [b"a"]  # no terminator after it
    assert closed


@pytest.mark.parametrize("handled", [True, False])
def test_a_comment_whose_send_raises_ends_the_response_as_a_failed_send(handled: bool) -> None:
    failure = RuntimeError("middleware broke")

    async def main() -> tuple[list[dict[str, Any]], list[Exception], BaseException | None]:
        client, done = Client(), asyncio.Event()
        client.comment_fails = failure
        response = SseResponse(paced([(0, b"a")], done), headers={}, keepalive_s=15)
        seen: list[Exception] = []
        if handled:
            response.on_error = lambda exc: seen.append(exc) is None
        task = serve(response, client)
        await asyncio.wait([task])
        return client.messages, seen, task.exception()

    messages, seen, raised = run_virtual(main())
    assert messages[-1] != END  # cut: the client sees a broken stream, not a clean end
    if handled:
        assert seen == [failure] and raised is None
    else:
        assert seen == [] and raised is failure


def test_a_disconnect_while_silent_ends_the_response_at_once() -> None:
    async def main() -> tuple[float, bool]:
        client = Client()
        closed = asyncio.Event()
        task = serve(
            SseResponse(one_frame_then_silence(closed), headers={}, keepalive_s=15), client
        )
        await asyncio.sleep(7)
        client.gone.set()
        await task
        return asyncio.get_running_loop().time(), closed.is_set()

    ended_at, closed = run_virtual(main())
    assert ended_at == 7 and closed


def test_no_comment_goes_out_beside_a_frame_pushed_after_it_was_found_due() -> None:
    """The comment is found due by the timer and sent by a task of its own; a frame pushed
    in between (any task that runs first in that loop turn) whose send waits on the client
    puts the comment off: one send at a time."""

    async def main() -> tuple[list[tuple[float, bytes]], list[str]]:
        client = Client()
        client.hold = b"slow"
        sends: list[str] = []  # the server's send, entered and left
        inner = client.send

        async def send(message: dict[str, Any]) -> None:
            body = message.get("body") or b""
            sends.append(f"enter {body!r}")
            await inner(message)
            sends.append(f"leave {body!r}")

        client.send = send  # type: ignore[method-assign]
        response = SseResponse(one_frame_then_silence(asyncio.Event()), headers={}, keepalive_s=15)
        task = serve(response, client)
        loop = asyncio.get_running_loop()
        # after the timer's callback (15 s) in the same loop turn (within the clock's
        # resolution), before the comment's task runs: a push whose send waits until 30 s
        pushed: list[bool] = []
        loop.call_at(15 + 1e-10, lambda: pushed.append(response.send_now(b"slow")))
        await asyncio.sleep(30)
        client.release.set()
        await asyncio.sleep(20)
        client.gone.set()
        await task
        assert pushed == [True]
        return client.sent, sends

    sent, sends = run_virtual(main())
    pairs = list(zip(sends[::2], sends[1::2], strict=True))
    assert all(a.startswith("enter") and b.startswith("leave") for a, b in pairs), sends
    assert [body for _, body in sent] == [b"a", b"slow", COMMENT]
    assert sent[-1][0] - sent[-2][0] == pytest.approx(15)  # 15 s after the frame's send ended
