"""An ``HttpBasin`` (and a chat on it) used from one ``asyncio.run`` after another: the httpx
clients it created on the first loop hold connections of that loop, so on the next one it
makes new clients instead of failing with httpx's "Event loop is closed"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.s2 import AppendInput, AppendRecord, HttpBasin


def _basin(url: str) -> HttpBasin:
    return HttpBasin("loops-basin", access_token=None, account_endpoint=url, basin_endpoint=url)


def test_an_owned_http_basin_works_on_consecutive_event_loops(s2_server_url: str) -> None:
    basin = _basin(s2_server_url)

    async def turn(n: int) -> list[bytes]:
        await basin.append("loops", AppendInput([AppendRecord(b"%d" % n)]))
        return [r.body for r in (await basin.read("loops", seq_num=0, count=10)).records]

    assert asyncio.run(turn(0)) == [b"0"]
    assert asyncio.run(turn(1)) == [b"0", b"1"]
    asyncio.run(basin.aclose())


def test_a_chat_on_http_works_on_consecutive_event_loops(s2_server_url: str) -> None:
    chat = create_resumable_chat(basin=_basin(s2_server_url))

    async def model(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        yield {"type": "text-delta", "id": "t", "delta": "hi"}
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}

    async def turn(n: int) -> list[str]:
        message = {"id": f"u{n}", "role": "user", "parts": [{"type": "text", "text": "q"}]}
        response = await chat.make_resumable("chat-loops", model, message=message)
        assert response.status_code == 200
        async for _ in response.body_iterator:  # type: ignore[attr-defined]
            pass
        return [m["role"] for m in await chat.load_messages("chat-loops")]

    assert asyncio.run(turn(0)) == ["user", "assistant"]
    assert asyncio.run(turn(1)) == ["user", "assistant", "user", "assistant"]
    asyncio.run(chat.aclose())
    asyncio.run(chat.basin.aclose())
