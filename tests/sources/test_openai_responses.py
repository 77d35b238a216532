"""OpenAI Responses API streams → both protocols, on every recording in
``../shared/fixtures/openai-responses-streams`` (globbed, so new recordings are covered too).

What a user sees is checked with the real clients: the AI SDK chunks go through ``ai`` 6 and
5's own ``readUIMessageStream`` (``tests/js/validate_ui_stream.mjs``), the TanStack chunks
through the fold that replays ``@tanstack/ai``'s ``StreamProcessor``. The expected text,
reasoning, tool calls and terminal are read from the recording itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from helpers import recordings
from js_client import run_ui_stream_validator_batch, sse_body
from resumable_chat import DEFAULT_ERROR_TEXT
from resumable_chat.protocols.tanstack.fold import fold_tanstack_messages
from resumable_chat.sources import (
    ai_sdk_chunks_from_responses,
    tanstack_chunks_from_responses,
    to_responses_input,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES, FIXTURE_FILES, FIXTURE_PARAMS = recordings("openai-responses-streams")


def events_of(path: Path) -> list[Any]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def expected(events: list[Any]) -> dict[str, Any]:
    """What the recording says the answer is."""
    text, reasoning, calls, builtin = "", "", [], []
    terminal, error = None, None
    for event in events:
        if not isinstance(event, dict):
            continue
        kind = event["type"]
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            text += event["delta"]
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            reasoning += event["delta"]
        elif kind == "response.output_item.done" and event["item"]["type"] == "function_call":
            calls.append((event["item"]["name"], json.loads(event["item"]["arguments"] or "{}")))
        elif kind == "response.output_item.done" and event["item"]["type"].endswith("_call"):
            builtin.append(event["item"]["type"].removesuffix("_call"))
        elif kind in ("response.completed", "response.incomplete") and terminal is None:
            terminal = event["response"]
        elif kind in ("error", "response.failed") and error is None:
            error = event
    return {
        "text": text,
        "reasoning": reasoning,
        "calls": calls,
        "builtin": builtin,
        "terminal": terminal,
        "error": error,
    }


async def collect(stream: Any) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


@pytest.fixture(scope="module")
def converted() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in FIXTURE_FILES:
        events = events_of(path)
        ai = asyncio.run(collect(ai_sdk_chunks_from_responses(events, message_id="m1")))
        tanstack = asyncio.run(
            collect(tanstack_chunks_from_responses(events, message_id="a1", run_id="r1"))
        )
        out[path.stem] = {"events": events, "ai": ai, "tanstack": tanstack, "js": {}}
    if out:
        names = list(out)
        results = run_ui_stream_validator_batch([sse_body(out[n]["ai"]) for n in names])
        for package, package_results in results.items():
            for name, result in zip(names, package_results, strict=True):
                out[name]["js"][package] = result
    return out


@pytest.mark.parametrize("path", FIXTURE_PARAMS)
@pytest.mark.parametrize("package", ["ai", "ai-v5"])
def test_recording_through_the_real_ai_sdk_client(
    path: Path, package: str, converted: dict[str, dict[str, Any]]
) -> None:
    entry = converted[path.stem]
    want = expected(entry["events"])
    result = entry["js"][package]
    assert result["ok"], result["error"]
    message = result["message"]
    parts = message["parts"]
    assert "".join(p["text"] for p in parts if p["type"] == "text") == want["text"]
    assert "".join(p["text"] for p in parts if p["type"] == "reasoning") == want["reasoning"]
    tools = [p for p in parts if p["type"].startswith("tool-")]
    called = [(p["type"][5:], p["input"]) for p in tools if not p.get("providerExecuted")]
    assert called == want["calls"]
    executed = [p for p in tools if p.get("providerExecuted")]
    assert [p["type"][5:] for p in executed] == want["builtin"]
    assert all(p["state"] == "output-available" for p in executed)  # never dropped
    chunks = entry["ai"]
    if want["error"] is not None:
        assert chunks[-1] == {"type": "error", "errorText": DEFAULT_ERROR_TEXT}
        assert result["status"] == "error"
        return
    finish = chunks[-1]
    assert finish["type"] == "finish" and result["status"] == "ready"
    reason = want["terminal"].get("incomplete_details") or {}
    if reason.get("reason") == "max_output_tokens":
        assert finish["finishReason"] == "length"
    elif want["calls"]:
        assert finish["finishReason"] == "tool-calls"
    else:
        assert finish["finishReason"] == "stop"
    usage = want["terminal"].get("usage")
    if usage:
        assert finish["messageMetadata"]["usage"]["inputTokens"] == usage["input_tokens"]
        assert finish["messageMetadata"]["usage"]["outputTokens"] == usage["output_tokens"]
    assert finish["messageMetadata"]["model"] == want["terminal"]["model"]


@pytest.mark.parametrize("path", FIXTURE_PARAMS)
def test_recording_as_tanstack_events(path: Path, converted: dict[str, dict[str, Any]]) -> None:
    entry = converted[path.stem]
    want = expected(entry["events"])
    chunks = entry["tanstack"]
    assert chunks[0]["type"] == "RUN_STARTED"
    (message,) = fold_tanstack_messages(chunks, now_ms=0)
    parts = message["parts"]
    assert "".join(p["content"] for p in parts if p["type"] == "text") == want["text"]
    assert "".join(p["content"] for p in parts if p["type"] == "thinking") == want["reasoning"]
    calls = [p for p in parts if p["type"] == "tool-call"]
    assert [c["name"] for c in calls] == [n for n, _ in want["calls"]] + want["builtin"]
    results = [p for p in parts if p["type"] == "tool-result"]
    assert len(results) == len(want["builtin"])
    if want["error"] is not None:
        assert chunks[-1]["type"] == "RUN_ERROR"
        assert chunks[-1]["message"] == DEFAULT_ERROR_TEXT
        assert chunks[-1]["code"] == "insufficient_quota"
        return
    assert chunks[-1]["type"] == "RUN_FINISHED"
    reason = (want["terminal"].get("incomplete_details") or {}).get("reason")
    expected_reason = (
        "length" if reason == "max_output_tokens" else "tool_calls" if want["calls"] else "stop"
    )
    assert chunks[-1]["finishReason"] == expected_reason


def test_a_refusal_is_the_answers_text() -> None:
    # No refusal was recorded; the events follow the API reference's schema
    # (https://platform.openai.com/docs/api-reference/responses-streaming/response/refusal).
    item = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
    events = [
        {"type": "response.created", "response": {"model": "gpt-4o", "status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {
            "type": "response.refusal.delta",
            "item_id": "msg_1",
            "content_index": 0,
            "delta": "I can't ",
        },
        {
            "type": "response.refusal.delta",
            "item_id": "msg_1",
            "content_index": 0,
            "delta": "help with that.",
        },
        {"type": "response.refusal.done", "item_id": "msg_1", "refusal": "I can't help with that."},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": {"model": "gpt-4o", "status": "completed"}},
    ]
    chunks = asyncio.run(collect(ai_sdk_chunks_from_responses(events, message_id="m")))
    texts = [c["delta"] for c in chunks if c["type"] == "text-delta"]
    assert "".join(texts) == "I can't help with that."
    assert chunks[-1] == {
        "type": "finish",
        "finishReason": "stop",
        "messageMetadata": {"model": "gpt-4o"},
    }


@pytest.mark.skipif(not FIXTURE_FILES, reason="recorded Responses streams not found")
def test_typed_events_of_the_openai_sdk_are_accepted() -> None:
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    # a recent recording: the SDK's models require ``sequence_number`` (absent before mid-2025)
    path = FIXTURES / "openai-gpt-5.5-text-then-function-call.jsonl"
    typed = [adapter.validate_python(e) for e in events_of(path)]
    plain = asyncio.run(collect(ai_sdk_chunks_from_responses(events_of(path), message_id="m")))
    objects = asyncio.run(collect(ai_sdk_chunks_from_responses(typed, message_id="m")))
    assert without_part_ids(objects) == without_part_ids(plain)


def without_part_ids(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chunks with part ids (random per answer) replaced by their order of appearance."""
    order: dict[str, str] = {}
    return [
        {**chunk, "id": order.setdefault(chunk["id"], f"part-{len(order)}")}
        if "id" in chunk
        else chunk
        for chunk in chunks
    ]


def test_a_stop_closes_the_provider_stream() -> None:
    closed = asyncio.Event()

    class ProviderStream:
        """Like the openai SDK's AsyncStream: async iterable with an async close()."""

        def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
            return self.events()

        async def events(self) -> AsyncIterator[dict[str, Any]]:
            yield {"type": "response.created", "response": {"model": "m"}}
            for i in range(1000):
                yield {"type": "response.output_text.delta", "item_id": "x", "delta": f"{i} "}
                await asyncio.sleep(0)

        async def close(self) -> None:
            closed.set()

    async def main() -> None:
        chunks = ai_sdk_chunks_from_responses(ProviderStream())
        async for chunk in chunks:
            if chunk["type"] == "text-delta":
                break  # the client stopped
        await chunks.aclose()

    asyncio.run(main())
    assert closed.is_set()


def test_history_goes_back_as_responses_input() -> None:
    messages = [
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "id": "a1",
            "role": "assistant",
            "parts": [
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool-get_weather",
                    "toolCallId": "call_1",
                    "state": "output-available",
                    "input": {"city": "Paris"},
                    "output": {"temp": 21},
                },
                {
                    "type": "tool-web_search",
                    "toolCallId": "ws_1",
                    "state": "output-available",
                    "providerExecuted": True,
                    "input": {},
                    "output": {},
                },
            ],
        },
    ]
    assert to_responses_input(messages) == [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 21}'},
    ]
