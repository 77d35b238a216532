"""The headers of ``SseResponse``: the same for every response given the same mapping
(encoded once, see ``resumable_chat.sse``), and each response's own to change."""

from __future__ import annotations

from collections.abc import AsyncIterator

from resumable_chat.sse import SseResponse


async def _no_frames() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


def test_each_response_has_the_headers_it_was_given_and_its_own_copy() -> None:
    given = {"X-Vercel-AI-UI-Message-Stream": "v1"}
    first = SseResponse(_no_frames(), headers=given)
    second = SseResponse(_no_frames(), headers=dict(given))
    expected = {
        "cache-control": "no-store",
        "x-vercel-ai-ui-message-stream": "v1",
        "connection": "keep-alive",
        "x-accel-buffering": "no",
        "content-type": "text/event-stream; charset=utf-8",
    }
    assert dict(first.headers) == dict(second.headers) == expected
    first.headers["X-Request-Id"] = "abc"  # as a middleware or a route may
    second.headers["X-Turn"] = "2"
    assert "x-request-id" not in second.headers
    third = SseResponse(_no_frames(), headers=given)
    assert dict(third.headers) == expected


def test_other_headers_give_other_responses() -> None:
    plain = SseResponse(_no_frames(), headers={})
    tagged = SseResponse(_no_frames(), headers={"Cache-Control": "private", "X-Turn": "7"})
    assert plain.headers["cache-control"] == "no-store"
    assert "x-turn" not in plain.headers
    assert tagged.headers["cache-control"] == "private"
    assert tagged.headers["x-turn"] == "7"
    again = SseResponse(_no_frames(), headers={"Cache-Control": "private", "X-Turn": "8"})
    assert again.headers["x-turn"] == "8"


def test_a_subclass_with_another_media_type_gets_its_own_headers() -> None:
    class NdjsonResponse(SseResponse):
        media_type = "application/x-ndjson"

    assert (
        SseResponse(_no_frames(), headers={})
        .headers["content-type"]
        .startswith("text/event-stream")
    )
    assert NdjsonResponse(_no_frames(), headers={}).headers["content-type"] == (
        "application/x-ndjson"
    )
