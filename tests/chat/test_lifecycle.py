"""A long-running process: what the chat object does with its user's callbacks and sources
over a chat's life and at shutdown (``aclose``), when they misbehave.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.s2 import MemoryBasin

pytestmark = pytest.mark.timeout(30)


async def short_answer(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "text-start", "id": "t"}
    yield {"type": "text-delta", "id": "t", "delta": "hello"}
    yield {"type": "text-end", "id": "t"}


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
