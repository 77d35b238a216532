"""Each protocol's event stream, fed neutral model events directly (no provider format).

A provider format needs only a reader into ``resumable_chat.model_events``; these tests show
that one sequence of events gives the same answer to both clients: the AI SDK chunks through
the real ``ai`` clients (``validate_ui_stream.mjs``), the TanStack chunks through the fold of
``@tanstack/ai``'s ``StreamProcessor``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from js_client import run_ui_stream_validator_batch, sse_body
from resumable_chat.model_events import (
    ModelEvent,
    ModelFailed,
    ModelFinished,
    ModelIdentified,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    SourceUrl,
    TextDelta,
    TextEnd,
    TextStart,
    TokenUsage,
    ToolCall,
    ToolCallFailed,
    ToolInputDelta,
    ToolInputStart,
    ToolResult,
    UsageReported,
)
from resumable_chat.protocols.ai_sdk.events import UIMessageChunkStream
from resumable_chat.protocols.tanstack.events import TanStackChunkStream
from resumable_chat.protocols.tanstack.processor import fold_tanstack_messages
from resumable_chat.sources.openai_tanstack import OpenAIChatToTanStackStream
from resumable_chat.sources.stream_driver import EventConverter, drive_converter

ANSWER: list[ModelEvent] = [
    ModelIdentified("toy-1"),
    ReasoningStart("r0"),
    ReasoningDelta("r0", "thinking"),
    ReasoningEnd("r0"),
    TextStart("t0"),
    TextDelta("t0", "Hello, "),
    TextDelta("t0", "world."),
    TextEnd("t0"),
    SourceUrl("s0", "https://example.com/", "Example"),
    ToolInputStart("web-1", "web_search", provider_executed=True),
    ToolCall("web-1", "web_search", {"query": "q"}, provider_executed=True),
    ToolResult("web-1", "web_search", {"status": "completed"}),
    ToolInputStart("c1", "weather"),
    ToolInputDelta("c1", '{"city":'),
    ToolInputDelta("c1", '"Oslo"}'),
    ToolCall("c1", "weather", {"city": "Oslo"}),
    ToolInputStart("c2", "broken"),
    ToolInputDelta("c2", "{nope"),
    ToolCallFailed("c2", "broken", "{nope", "Invalid JSON", started=True),
    UsageReported(TokenUsage(input_tokens=3, output_tokens=5, reasoning_tokens=1)),
    ModelFinished(None),
]


def ai_sdk(events: list[ModelEvent], **options: Any) -> list[dict[str, Any]]:
    stream = UIMessageChunkStream(message_id="m1", **options)
    return [*stream.start(), *(chunk for event in events for chunk in stream.handle(event))]


def tanstack(events: list[ModelEvent], **options: Any) -> list[dict[str, Any]]:
    stream = TanStackChunkStream(message_id="m1", run_id="r1", clock_ms=lambda: 0, **options)
    return [*stream.start(), *(chunk for event in events for chunk in stream.handle(event))]


def test_one_answer_reaches_both_clients_alike() -> None:
    chunks = ai_sdk(ANSWER)
    finish = chunks[-1]
    assert finish == {
        "type": "finish",
        "finishReason": "tool-calls",
        "messageMetadata": {
            "model": "toy-1",
            "usage": {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8, "reasoningTokens": 1},
        },
    }
    results = run_ui_stream_validator_batch([sse_body(chunks)])
    for package, (result,) in results.items():
        assert result["ok"], (package, result)
        parts = result["message"]["parts"]
        assert [p["text"] for p in parts if p["type"] == "text"] == ["Hello, world."], package
        assert [p["text"] for p in parts if p["type"] == "reasoning"] == ["thinking"], package
        tools = {p["toolCallId"]: p for p in parts if p["type"].startswith("tool-")}
        assert tools["c1"]["input"] == {"city": "Oslo"}, package
        assert tools["c2"]["state"] == "output-error", package
        assert tools["web-1"]["output"] == {"status": "completed"}, package

    run = tanstack(ANSWER)
    assert run[-1]["type"] == "RUN_FINISHED" and run[-1]["finishReason"] == "tool_calls"
    assert run[-1]["usage"] == {
        "promptTokens": 3,
        "completionTokens": 5,
        "totalTokens": 8,
        "completionTokensDetails": {"reasoningTokens": 1},
    }
    (message,) = fold_tanstack_messages(run)
    assert message["id"] == "m1"
    kinds = [part["type"] for part in message["parts"]]
    assert kinds.count("text") == 1 and "thinking" in kinds
    text = next(part["content"] for part in message["parts"] if part["type"] == "text")
    assert text == "Hello, world."
    calls = {p["id"]: p for p in message["parts"] if p["type"] == "tool-call"}
    assert calls["c1"]["state"] == "input-complete" and calls["c1"]["name"] == "weather"
    assert set(calls) == {"web-1", "c1", "c2"}


def test_a_failure_mid_call_ends_both_protocols_without_a_runnable_call() -> None:
    events: list[ModelEvent] = [
        TextStart("t0"),
        TextDelta("t0", "Let me look"),
        ToolInputStart("c1", "weather"),
        ToolInputDelta("c1", '{"ci'),
        ModelFailed({"message": "upstream timeout", "code": "timeout"}),
        TextDelta("t0", "never shown"),
    ]
    chunks = ai_sdk(events)
    assert chunks[-3:] == [
        {"type": "text-end", "id": "t0"},
        {
            "type": "tool-input-error",
            "toolCallId": "c1",
            "toolName": "weather",
            "input": '{"ci',
            "errorText": "The tool call was interrupted by a model error.",
        },
        {"type": "error", "errorText": "An error occurred."},
    ]
    (result,) = run_ui_stream_validator_batch([sse_body(chunks)])["ai"]
    calls = [p for p in result["displayed"]["parts"] if p["type"] == "tool-weather"]
    assert calls and calls[0]["state"] == "output-error"

    run = tanstack(events)
    assert [c["type"] for c in run[-2:]] == ["TEXT_MESSAGE_END", "RUN_ERROR"]
    assert run[-1]["code"] == "timeout" and run[-1]["message"] == "An error occurred."
    assert not any(c["type"] == "TOOL_CALL_END" for c in run)


def test_error_policies_apply_per_protocol_and_never_break_the_stream() -> None:
    def shout(error: BaseException | dict[str, Any]) -> str:
        raise RuntimeError("policy bug")

    failed: list[ModelEvent] = [ModelFailed(ValueError("secret request id"))]
    assert ai_sdk(failed, on_error=shout)[-1] == {
        "type": "error",
        "errorText": "An error occurred.",
    }
    assert tanstack(failed, on_error=lambda e: "shown", on_error_code=shout)[-1]["error"] == {
        "message": "shown",
        "code": "model_error",
    }


def test_events_after_the_end_are_ignored() -> None:
    events: list[ModelEvent] = [ModelFinished("length"), TextStart("late"), ModelFailed({})]
    assert [c["type"] for c in ai_sdk(events)] == ["start", "start-step", "finish-step", "finish"]
    assert ai_sdk(events)[-1]["finishReason"] == "length"
    run = tanstack(events)
    assert [c["type"] for c in run] == ["RUN_STARTED", "RUN_FINISHED"]
    assert run[-1]["finishReason"] == "length"


class ToyFormat:
    """A provider format the library has never seen: ``"+text"`` lines, ``"!"`` ends."""

    def handle_chunk(self, raw: object) -> Iterator[ModelEvent]:
        line = str(raw)
        if line == "!":
            yield ModelFailed({"message": "toy failure"})
        elif line.startswith("+"):
            yield TextDelta("t", line[1:])

    def handle_exception(self, exc: BaseException) -> Iterator[ModelEvent]:
        yield ModelFailed(exc)

    def finish(self) -> Iterator[ModelEvent]:
        yield TextEnd("t")
        yield ModelFinished("stop")


async def collect(converter: EventConverter, lines: list[str]) -> list[dict[str, Any]]:
    return [chunk async for chunk in drive_converter(converter, lines)]


def test_a_new_provider_format_needs_only_a_reader_into_model_events() -> None:
    class Started(ToyFormat):
        def handle_chunk(self, raw: object) -> Iterator[ModelEvent]:
            if raw == "+Hi":
                yield TextStart("t")
            yield from super().handle_chunk(raw)

    chunks = asyncio.run(
        collect(EventConverter(Started(), UIMessageChunkStream(message_id="m")), ["+Hi", "+!"])
    )
    (result,) = run_ui_stream_validator_batch([sse_body(chunks)])["ai"]
    assert result["ok"] and result["message"]["parts"][-1]["text"] == "Hi!"
    run = asyncio.run(
        collect(OpenAIChatToTanStackStream(message_id="m", normaliser=Started()), ["+Hi", "!"])
    )
    assert [c["type"] for c in run][-2:] == ["TEXT_MESSAGE_END", "RUN_ERROR"]
    (message,) = fold_tanstack_messages(run)
    assert message["parts"][0]["content"] == "Hi"
