"""Helpers for the chat core tests: a scripted model, chunk builders and an SSE parser."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from helpers import parse_sse, user_message  # noqa: F401  (re-exported)
from resumable_chat import StopSignal
from resumable_chat.protocols.ai_sdk.dialect import AiSdkDialect

_AI_SDK = AiSdkDialect()


@dataclass
class ScriptedModel:
    """A model source whose answers are scripted per test.

    ``chunks`` are yielded in order; ``gate`` (when set) holds the source before chunk
    ``hold_at`` until the test releases it. ``closed`` / ``signals`` record how the source
    was closed and which stop signals it saw.
    """

    chunks: list[dict[str, Any]] = field(default_factory=list)
    hold_at: int | None = None
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    delay_s: float = 0.0
    raise_at: int | None = None
    #: what the source raises at ``raise_at``
    raises: type[BaseException] = RuntimeError
    calls: int = 0
    closed: int = 0
    signals: list[StopSignal] = field(default_factory=list)
    seen_messages: list[list[dict[str, Any]]] = field(default_factory=list)
    reached_hold: asyncio.Event = field(default_factory=asyncio.Event)

    async def stream(
        self, messages: list[dict[str, Any]], signal: StopSignal
    ) -> AsyncIterator[dict[str, Any]]:
        self.calls += 1
        self.signals.append(signal)
        self.seen_messages.append(messages)
        try:
            for i, chunk in enumerate(self.chunks):
                if i == self.raise_at:
                    raise self.raises("model exploded: secret provider detail")
                if i == self.hold_at:
                    self.reached_hold.set()
                    await self.gate.wait()
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                yield chunk
        finally:
            self.closed += 1


def text_answer(words: list[str], message_id: str = "m1") -> list[dict[str, Any]]:
    """A plain text answer as AI SDK UIMessageChunks."""
    return [
        {"type": "start", "messageId": message_id},
        {"type": "start-step"},
        {"type": "text-start", "id": "t0"},
        *({"type": "text-delta", "id": "t0", "delta": w} for w in words),
        {"type": "text-end", "id": "t0"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop"},
    ]


def as_sent(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``chunks`` as the ``ai-sdk`` dialect sends and stores them: ``finish`` without
    ``finishReason`` (``AiSdkDialect.client_form``, for ``ai`` 5.0.0 to 5.0.91)."""
    return [_AI_SDK.client_form(chunk) for chunk in chunks]


def chunks_of(text: str) -> list[dict[str, Any]]:
    """The JSON chunks of an SSE body, ``[DONE]`` excluded."""
    return [json.loads(d) for _, d in parse_sse(text) if d != "[DONE]"]


def tanstack_run(
    words: list[str], *, run_id: str = "r1", message_id: str = "a1"
) -> list[dict[str, Any]]:
    """A TanStack run streaming ``words`` as one assistant text message."""
    content = ""
    chunks: list[dict[str, Any]] = [
        {"type": "RUN_STARTED", "runId": run_id, "threadId": "t"},
        {"type": "TEXT_MESSAGE_START", "messageId": message_id, "role": "assistant"},
    ]
    for word in words:
        content += word
        chunks.append(
            {
                "type": "TEXT_MESSAGE_CONTENT",
                "messageId": message_id,
                "delta": word,
                "content": content,
            }
        )
    chunks += [
        {"type": "TEXT_MESSAGE_END", "messageId": message_id},
        {"type": "RUN_FINISHED", "runId": run_id, "finishReason": "stop"},
    ]
    return chunks


def tanstack_user(text: str, message_id: str = "u1") -> dict[str, Any]:
    """A TanStack UIMessage from the user."""
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "content": text}]}


def numbered_answer(
    count: int,
    finished: asyncio.Event,
    *,
    delta_bytes: int = 16 * 1024,
    pause_s: float = 0.002,
    release: asyncio.Event | None = None,
) -> Any:
    """An AI SDK source of ``count`` large text deltas, each its index (5 digits) then
    ``delta_bytes`` of ``x``, with ``pause_s`` after each (``0``: a loop turn); with
    ``release``, it waits for it before the fourth delta. Sets ``finished`` when it ends."""

    async def source(messages: list[dict[str, Any]], signal: StopSignal) -> AsyncIterator[Any]:
        try:
            yield {"type": "start", "messageId": "m1"}
            yield {"type": "text-start", "id": "t"}
            for i in range(count):
                if i == 3 and release is not None:
                    await release.wait()
                yield {"type": "text-delta", "id": "t", "delta": f"{i:05d}" + "x" * delta_bytes}
                await asyncio.sleep(pause_s)
            yield {"type": "text-end", "id": "t"}
            yield {"type": "finish", "finishReason": "stop"}
        finally:
            finished.set()

    return source


def assert_whole_numbered_answer(body: bytes, count: int) -> None:
    """``body`` (an AI SDK SSE response of :func:`numbered_answer`) ends with ``[DONE]``,
    its SSE ids have no gap and no repeat, and it holds every delta once, in order."""
    events = parse_sse(body.decode())
    assert events[-1] == (None, "[DONE]")
    ids = [int(i) for i, _ in events[:-1] if i is not None]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # none lost, none repeated
    deltas = [d for _, d in events if '"text-delta"' in d]
    assert [d[d.index('"delta":"') + 9 :][:5] for d in deltas] == [f"{i:05d}" for i in range(count)]
