"""Helpers every test folder uses: SSE parsing, a user message, waiting for a condition.

``tests/`` is on ``sys.path`` (``pythonpath`` in ``pyproject.toml``), so tests import this as
``from helpers import ...``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


def parse_sse(text: str) -> list[tuple[str | None, str]]:
    """``(id, data)`` of every SSE event with data in ``text`` (comments skipped; the data of a
    multi-line event joined with newlines)."""
    events = []
    for block in text.split("\n\n"):
        event_id, data = None, []
        for line in block.split("\n"):
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            events.append((event_id, "\n".join(data)))
    return events


def user_message(text: str = "hi", message_id: str = "u1") -> dict[str, Any]:
    """An AI SDK ``UIMessage`` from the user with one text part."""
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


async def eventually(
    check: Callable[[], Awaitable[Any]],
    timeout_s: float = 10.0,
    every_s: float = 0.01,
    retry_on: tuple[type[BaseException], ...] = (AssertionError,),
) -> None:
    """Await ``check()`` every ``every_s`` seconds until it returns something other than
    ``False``/``None`` without raising one of ``retry_on``; after ``timeout_s`` seconds raise
    ``AssertionError`` (or the last retried error)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            result = await check()
        except retry_on:
            if loop.time() > deadline:
                raise
        else:
            if result is not False and result is not None:
                return
            if loop.time() > deadline:
                raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(every_s)
