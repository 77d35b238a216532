"""OpenAI chat-completions streams → AI SDK UI message chunks, checked against the real clients.

Every recorded stream in ``../shared/fixtures/openai-streams/*.jsonl`` (globbed) is converted
with ``ai_sdk_chunks``, framed as SSE and run through the ``ai`` 6 and ``ai`` 5 clients
(``tests/js/validate_ui_stream.mjs``; ONE node process for all recordings). The assembled
message must carry the recording's text, reasoning and tool calls; the Python history fold of
the same chunks must equal the client's message (values and key order); every chunk must use
only "compat profile" keys (``reference/wire-protocols.md`` §A.3).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recording_oracle import read_answer, read_recording

from helpers import recordings
from resumable_chat.protocols.ai_sdk.fold import UIMessageBuilder, fold_ui_messages
from resumable_chat.sources import (
    DEFAULT_ERROR_TEXT,
    OpenAIChatToUIMessageStream,
    ai_sdk_chunks,
    detailed_error_text,
    map_finish_reason,
    openai_chunks_from_jsonl,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from js_client import run_ui_stream_validator_batch, sse_body

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES, FIXTURE_FILES, FIXTURE_PARAMS = recordings("openai-streams")

# -- the compat profile (§A.3): keys every ai client from 5.0.92 on accepts ---------------------

#: type -> (required keys, optional keys), ``type`` itself excluded.
COMPAT_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "start": (frozenset(), frozenset({"messageId", "messageMetadata"})),
    "start-step": (frozenset(), frozenset()),
    "text-start": (frozenset({"id"}), frozenset()),
    "text-delta": (frozenset({"id", "delta"}), frozenset()),
    "text-end": (frozenset({"id"}), frozenset()),
    "reasoning-start": (frozenset({"id"}), frozenset()),
    "reasoning-delta": (frozenset({"id", "delta"}), frozenset()),
    "reasoning-end": (frozenset({"id"}), frozenset()),
    "tool-input-start": (
        frozenset({"toolCallId", "toolName"}),
        frozenset({"providerExecuted", "dynamic"}),
    ),
    "tool-input-delta": (frozenset({"toolCallId", "inputTextDelta"}), frozenset()),
    "tool-input-available": (
        frozenset({"toolCallId", "toolName", "input"}),
        frozenset({"providerExecuted", "providerMetadata", "dynamic"}),
    ),
    "tool-input-error": (
        frozenset({"toolCallId", "toolName", "input", "errorText"}),
        frozenset({"providerExecuted", "providerMetadata", "dynamic"}),
    ),
    "tool-output-available": (
        frozenset({"toolCallId", "output"}),
        frozenset({"providerExecuted", "dynamic", "preliminary"}),
    ),
    "tool-output-error": (
        frozenset({"toolCallId", "errorText"}),
        frozenset({"providerExecuted", "dynamic"}),
    ),
    "finish-step": (frozenset(), frozenset()),
    "finish": (frozenset(), frozenset({"finishReason", "messageMetadata"})),
    "abort": (frozenset(), frozenset()),
    "message-metadata": (frozenset({"messageMetadata"}), frozenset()),
    "error": (frozenset({"errorText"}), frozenset()),
}
#: ``finishReason`` values valid on every client (v5 adds "unknown", v7 "interrupted").
FINISH_REASONS = {"stop", "length", "content-filter", "tool-calls", "error", "other"}


def assert_compat_profile(chunks: list[dict[str, Any]]) -> None:
    """Only compat-profile types and keys; part ids opened before use and closed once."""
    open_text: set[str] = set()
    open_reasoning: set[str] = set()
    started_calls: set[str] = set()
    for chunk in chunks:
        kind = chunk["type"]
        assert kind in COMPAT_KEYS, f"type {kind!r} is not in the compat profile"
        required, optional = COMPAT_KEYS[kind]
        keys = set(chunk) - {"type"}
        assert required <= keys, f"{kind}: missing {required - keys}"
        assert keys <= required | optional, f"{kind}: extra keys {keys - required - optional}"
        if kind == "finish" and "finishReason" in chunk:
            assert chunk["finishReason"] in FINISH_REASONS
        for k in ("id", "delta", "toolCallId", "toolName", "inputTextDelta", "errorText"):
            if k in chunk:
                assert isinstance(chunk[k], str), f"{kind}.{k} must be a string"
        if kind in ("text-start", "reasoning-start"):
            opened = open_text if kind == "text-start" else open_reasoning
            assert chunk["id"] not in opened
            opened.add(chunk["id"])
        elif kind in ("text-delta", "reasoning-delta"):
            assert chunk["id"] in (open_text if kind == "text-delta" else open_reasoning)
        elif kind in ("text-end", "reasoning-end"):
            (open_text if kind == "text-end" else open_reasoning).remove(chunk["id"])
        elif kind == "tool-input-start":
            started_calls.add(chunk["toolCallId"])
        elif kind == "tool-input-delta":
            assert chunk["toolCallId"] in started_calls
        elif kind in ("finish", "error"):
            assert not open_text and not open_reasoning, "parts left open at the end"


def key_order(value: Any) -> Any:
    """The nested key order of a JSON value (dict equality ignores it)."""
    if isinstance(value, dict):
        return [(k, key_order(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [key_order(v) for v in value]
    return None


# -- an independent reading of a recording (the oracle) --------------------------------------


def expected_from_recording(lines: list[Any]) -> dict[str, Any]:
    """What the AI SDK answer must contain, read straight from the recording."""
    answer = read_answer(lines)
    reason = answer.pop("provider_finish_reason")
    if reason is None:
        answer["finish_reason"] = "tool-calls" if answer["tool_calls"] else "other"
    else:
        answer["finish_reason"] = {
            "stop": "stop",
            "length": "length",
            "tool_calls": "tool-calls",
            "function_call": "tool-calls",
            "content_filter": "content-filter",
        }.get(reason, "other")
    return answer


async def _convert(source: Any, **kwargs: Any) -> list[dict[str, Any]]:
    return [chunk async for chunk in ai_sdk_chunks(source, **kwargs)]


def convert(source: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """All chunks of ``ai_sdk_chunks(source, **kwargs)`` (runs its own event loop)."""
    return asyncio.run(_convert(source, **kwargs))


# -- all recordings through both real clients (one node process) -----------------------------


@pytest.fixture(scope="module")
def recorded() -> dict[str, dict[str, Any]]:
    """``stem -> {"lines", "chunks", "js": {package: result}}`` for every recording."""
    out: dict[str, dict[str, Any]] = {}
    for path in FIXTURE_FILES:
        chunks = convert(openai_chunks_from_jsonl(path), message_id=f"msg-{path.stem}")
        out[path.stem] = {"lines": read_recording(path), "chunks": chunks, "js": {}}
    if out:
        names = list(out)
        results = run_ui_stream_validator_batch([sse_body(out[n]["chunks"]) for n in names])
        for package, package_results in results.items():
            for name, result in zip(names, package_results, strict=True):
                out[name]["js"][package] = result
    return out


def _parts(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [p for p in message["parts"] if p["type"] == kind]


@pytest.mark.parametrize("path", FIXTURE_PARAMS)
@pytest.mark.parametrize("package", ["ai", "ai-v5"])
def test_recording_through_real_client(
    path: Path, package: str, recorded: dict[str, dict[str, Any]]
) -> None:
    entry = recorded[path.stem]
    chunks = entry["chunks"]
    expected = expected_from_recording(entry["lines"])
    result = entry["js"][package]

    assert result["ok"], result["error"]
    assert result["chunkTypes"] == [c["type"] for c in chunks]
    message = result["message"]
    assert message["id"] == f"msg-{path.stem}"
    assert message["role"] == "assistant"
    assert "".join(p["text"] for p in _parts(message, "text")) == expected["text"]
    assert "".join(p["text"] for p in _parts(message, "reasoning")) == expected["reasoning"]
    tools = [p for p in message["parts"] if p["type"].startswith("tool-")]
    assert [(p["toolCallId"], p["type"][5:], p["input"]) for p in tools] == expected["tool_calls"]

    errors = [c for c in chunks if c["type"] == "error"]
    if expected["error"] is not None:
        assert len(errors) == 1 and chunks[-1] is errors[0]
        assert result["errorChunks"] == [DEFAULT_ERROR_TEXT]
        assert result["status"] == "error"
        assert all(p.get("state") != "streaming" for p in message["parts"])
    else:
        assert errors == []
        assert chunks[-2] == {"type": "finish-step"}
        assert chunks[-1]["type"] == "finish"
        assert chunks[-1]["finishReason"] == expected["finish_reason"]
        assert result["status"] == "ready"
        assert result["finishReason"] == expected["finish_reason"]
        assert all(p["state"] in ("done", "input-available") for p in message["parts"][1:])
        metadata = message.get("metadata", {})
        assert metadata.get("model") == expected["model"]
        if expected["usage"] is not None:
            assert metadata["usage"]["inputTokens"] == expected["usage"]["prompt_tokens"]
            assert metadata["usage"]["outputTokens"] == expected["usage"]["completion_tokens"]
    # What a UI shows (the snapshot at the last write) is the client's final state.
    assert result["displayed"] == message


@pytest.mark.parametrize("path", FIXTURE_PARAMS)
def test_recording_python_fold_equals_client(
    path: Path, recorded: dict[str, dict[str, Any]]
) -> None:
    entry = recorded[path.stem]
    folded = fold_ui_messages(entry["chunks"])
    for package in ("ai", "ai-v5"):
        js_message = entry["js"][package]["message"]
        # No normalisation needed: ids are fixed by the chunks, nothing else is volatile.
        assert folded == [js_message], package
        assert key_order(folded[0]) == key_order(js_message), package


@pytest.mark.parametrize("path", FIXTURE_PARAMS)
def test_recording_compat_profile(path: Path, recorded: dict[str, dict[str, Any]]) -> None:
    chunks = recorded[path.stem]["chunks"]
    assert chunks[0] == {"type": "start", "messageId": f"msg-{path.stem}"}
    assert chunks[1] == {"type": "start-step"}
    assert_compat_profile(chunks)
    assert sum(c["type"] in ("finish", "error") for c in chunks) == 1


def test_error_recording_with_detailed_policy() -> None:
    path = FIXTURES / "groq-gpt-oss-120b-reasoning-then-error.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    chunks = convert(openai_chunks_from_jsonl(path), on_error=detailed_error_text)
    assert chunks[-1]["type"] == "error"
    assert chunks[-1]["errorText"].startswith("Tool call validation failed")
    assert chunks[-1]["errorText"].endswith("(tool_use_failed)")


# -- unit tests: converter ---------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict:
    """A minimal ``chat.completion.chunk`` dict."""
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "choices": [choice], **extra}


def tool_delta(
    index: int | None = None,
    id: str | None = None,
    name: str | None = None,
    args: str | None = None,
) -> dict[str, Any]:
    """A chunk with one ``delta.tool_calls`` item; ``None`` fields are left out."""
    tc: dict[str, Any] = {"function": {}}
    if index is not None:
        tc["index"] = index
    if id is not None:
        tc["id"] = id
        tc["type"] = "function"
    if name is not None:
        tc["function"]["name"] = name
    if args is not None:
        tc["function"]["arguments"] = args
    return chunk({"tool_calls": [tc]})


def summary(chunks: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Chunks without their random part ids."""
    out: list[tuple[Any, ...]] = []
    for c in chunks:
        row = tuple(v for k, v in c.items() if k not in ("id", "messageId"))
        out.append(row)
    return out


@pytest.mark.parametrize(
    ("reason", "mapped"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool-calls"),
        ("function_call", "tool-calls"),
        ("content_filter", "content-filter"),
        ("error", "error"),
        ("eos", "other"),
        ("unknown", "other"),
        ("", "other"),
        (None, "other"),
        (3, "other"),
    ],
)
def test_map_finish_reason(reason: object, mapped: str) -> None:
    assert map_finish_reason(reason) == mapped


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        ([chunk({"content": "hi"}), chunk(finish="content_filter")], "content-filter"),
        ([chunk({"content": "hi"}), chunk(finish="insufficient_system_resource")], "other"),
        ([chunk({"content": "hi"})], "other"),
        ([tool_delta(0, "call_1", "f", "{}")], "tool-calls"),
        ([], "other"),
    ],
)
def test_finish_reason_on_finish_chunk(stream: list[dict[str, Any]], reason: str) -> None:
    chunks = convert(stream)
    assert chunks[-2:] == [{"type": "finish-step"}, {"type": "finish", "finishReason": reason}]
    assert_compat_profile(chunks)


def test_empty_stream_ends_cleanly() -> None:
    chunks = convert([], message_id="m")
    assert chunks == [
        {"type": "start", "messageId": "m"},
        {"type": "start-step"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "other"},
    ]


def test_generated_message_id_is_stable() -> None:
    chunks = convert([chunk({"content": "a"})])
    assert chunks[0]["messageId"].startswith("msg-")
    assert fold_ui_messages(chunks)[0]["id"] == chunks[0]["messageId"]


def test_missing_tool_index_continues_the_call() -> None:
    stream = [
        tool_delta(None, "call_a", "get_weather", ""),
        tool_delta(None, None, None, '{"city"'),
        tool_delta(None, None, None, ': "Paris"}'),
        chunk(finish="tool_calls"),
    ]
    chunks = convert(stream, message_id="m")
    assert summary(chunks[2:]) == [
        ("tool-input-start", "call_a", "get_weather"),
        ("tool-input-delta", "call_a", '{"city"'),
        ("tool-input-delta", "call_a", ': "Paris"}'),
        ("tool-input-available", "call_a", "get_weather", {"city": "Paris"}),
        ("finish-step",),
        ("finish", "tool-calls"),
    ]


def test_single_chunk_tool_call_with_finish_and_usage() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    line = chunk({"tool_calls": [{"id": "X1", "function": {"name": "f", "arguments": '{"a":1}'}}]})
    line["choices"][0]["finish_reason"] = "tool_calls"
    line["usage"] = usage
    line["model"] = "m-1"
    chunks = convert([line], message_id="m")
    assert summary(chunks[2:]) == [
        ("tool-input-start", "X1", "f"),
        ("tool-input-delta", "X1", '{"a":1}'),
        ("tool-input-available", "X1", "f", {"a": 1}),
        ("finish-step",),
        (
            "finish",
            "tool-calls",
            {"model": "m-1", "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}},
        ),
    ]


def test_parallel_calls_interleaved_and_same_index_new_id() -> None:
    stream = [
        tool_delta(0, "a", "f", '{"x"'),
        tool_delta(1, "b", "g", '{"y"'),
        tool_delta(0, None, None, ": 1}"),
        tool_delta(1, None, None, ": 2}"),
        # Gemini-style: every call at index 0, each with a new id and complete arguments.
        tool_delta(0, "c", "h", "{}"),
        chunk(finish="tool_calls"),
    ]
    chunks = convert(stream)
    available = [(c["toolCallId"], c["toolName"], c["input"]) for c in chunks if "input" in c]
    assert available == [("a", "f", {"x": 1}), ("b", "g", {"y": 2}), ("c", "h", {})]
    assert_compat_profile(chunks)


def test_repeated_id_and_name_are_not_concatenated() -> None:
    stream = [tool_delta(0, "0", "llm_version", ""), tool_delta(0, "0", "llm_version", "{}")]
    chunks = convert(stream)
    assert [c["toolName"] for c in chunks if "toolName" in c] == ["llm_version"] * 2
    assert chunks[-3]["input"] == {}


def test_name_after_id_and_nameless_call() -> None:
    stream = [
        tool_delta(0, "a", None, '{"q":'),
        tool_delta(0, None, "search", ' "x"}'),
        tool_delta(1, "b", None, "{}"),
    ]
    chunks = convert(stream)
    assert summary(chunks[2:-2]) == [
        ("tool-input-start", "a", "search"),
        ("tool-input-delta", "a", '{"q": "x"}'),
        ("tool-input-available", "a", "search", {"q": "x"}),
        ("tool-input-error", "b", "unknown", "{}", "The tool call has no function name."),
    ]


def test_invalid_tool_arguments_give_tool_input_error() -> None:
    chunks = convert([tool_delta(0, "a", "f", '{"x": NaN}'), tool_delta(1, "b", "g", "{oops")])
    errors = [c for c in chunks if c["type"] == "tool-input-error"]
    assert [(c["toolCallId"], c["input"]) for c in errors] == [("a", '{"x": NaN}'), ("b", "{oops")]
    assert all(c["errorText"].startswith("Invalid JSON in tool call arguments") for c in errors)
    assert_compat_profile(chunks)


def test_text_reasoning_refusal_and_parts_closed_before_tools() -> None:
    stream = [
        chunk({"role": "assistant", "content": "", "reasoning_content": ""}),
        chunk({"reasoning": "think"}),
        chunk({"reasoning_content": "ing", "reasoning": "ing"}),  # both: counted once
        chunk({"content": "Hello"}),
        chunk({"refusal": " no"}),
        tool_delta(0, "a", "f", "{}"),
        chunk({"content": "after"}),
        {"id": "c", "choices": [{"index": 1, "delta": {"content": "other choice"}}]},
        chunk(finish="stop"),
    ]
    chunks = convert(stream)
    assert summary(chunks[2:]) == [
        ("reasoning-start",),
        ("reasoning-delta", "think"),
        ("reasoning-delta", "ing"),
        ("reasoning-end",),
        ("text-start",),
        ("text-delta", "Hello"),
        ("text-delta", " no"),
        ("text-end",),
        ("tool-input-start", "a", "f"),
        ("tool-input-delta", "a", "{}"),
        ("text-start",),
        ("text-delta", "after"),
        ("text-end",),
        ("tool-input-available", "a", "f", {}),
        ("finish-step",),
        ("finish", "stop"),
    ]
    assert_compat_profile(chunks)


class Boom(RuntimeError):
    """A provider failure whose message must not reach the client."""


async def raising_stream() -> AsyncIterator[dict[str, Any]]:
    """Text, the start of a tool call, then an exception."""
    yield chunk({"content": "partial"})
    yield tool_delta(0, "a", "f", '{"x":')
    raise Boom("secret upstream detail")


def test_iterator_raising_mid_stream_gives_one_error_chunk() -> None:
    chunks = convert(raising_stream())
    assert summary(chunks[-5:]) == [
        ("text-end",),
        ("tool-input-start", "a", "f"),
        ("tool-input-delta", "a", '{"x":'),
        ("tool-input-error", "a", "f", '{"x":', "The tool call was interrupted by a model error."),
        ("error", DEFAULT_ERROR_TEXT),
    ]
    assert chunks[-1] == {"type": "error", "errorText": DEFAULT_ERROR_TEXT}
    assert [c["type"] for c in chunks].count("error") == 1
    assert "secret" not in json.dumps(chunks)
    assert_compat_profile(chunks)


def test_error_text_policy() -> None:
    seen: list[object] = []

    def policy(error: BaseException | dict[str, Any]) -> str:
        seen.append(error)
        return f"failed: {type(error).__name__}"

    chunks = convert(raising_stream(), on_error=policy)
    assert chunks[-1]["errorText"] == "failed: Boom" and isinstance(seen[0], Boom)

    def broken(error: BaseException | dict[str, Any]) -> str:
        raise ValueError("policy bug")

    assert convert(raising_stream(), on_error=broken)[-1]["errorText"] == DEFAULT_ERROR_TEXT
    chunks = convert([{"error": {"message": "Rate limit", "code": 429}}], on_error=policy)
    assert chunks[-1]["errorText"] == "failed: dict" and seen[-1] == {
        "message": "Rate limit",
        "code": 429,
    }
    assert detailed_error_text({"message": "Rate limit", "code": 429}) == "Rate limit (429)"
    assert detailed_error_text(Boom("x")) == "Boom: x"


def test_error_payload_stops_reading_and_closes_the_source() -> None:
    closed: list[bool] = []
    pulled: list[int] = []

    class Source:
        def __init__(self) -> None:
            self.items = [
                chunk({"content": "a"}),
                {"error": {"message": "x"}},
                chunk({"content": "b"}),
            ]

        def __aiter__(self) -> Source:
            return self

        async def __anext__(self) -> dict[str, Any]:
            if not self.items:
                raise StopAsyncIteration
            pulled.append(1)
            return self.items.pop(0)

        async def aclose(self) -> None:
            closed.append(True)

    chunks = convert(Source())
    assert [c["type"] for c in chunks][-2:] == ["text-end", "error"]
    assert len(pulled) == 2 and closed


def test_consumer_closing_early_closes_the_source() -> None:
    closed: list[bool] = []

    async def source() -> AsyncIterator[dict[str, Any]]:
        try:
            while True:
                yield chunk({"content": "x"})
                await asyncio.sleep(0)
        finally:
            closed.append(True)

    async def main() -> None:
        stream = ai_sdk_chunks(source())
        async for c in stream:
            if c["type"] == "text-delta":
                break
        await stream.aclose()

    asyncio.run(main())
    assert closed == [True]


def test_cancellation_is_not_converted() -> None:
    async def source() -> AsyncIterator[dict[str, Any]]:
        yield chunk({"content": "x"})
        await asyncio.sleep(10)
        yield chunk({"content": "never"})

    async def main() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []

        async def consume() -> None:
            async for c in ai_sdk_chunks(source()):
                got.append(c)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return got

    got = asyncio.run(main())
    assert all(c["type"] != "error" for c in got)


def test_sdk_objects_are_normalised_with_model_dump() -> None:
    from openai.types.chat import ChatCompletionChunk

    path = FIXTURES / "openai-gpt-4o-parallel-tool-calls.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    lines = read_recording(path)
    objects = [ChatCompletionChunk.model_validate(line) for line in lines]
    assert summary(convert(objects)) == summary(convert(lines))


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic warns while litellm imports
def test_litellm_objects_are_normalised_with_model_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    utils = pytest.importorskip("litellm.types.utils")
    for name in ("deepseek-reasoner-reasoning-content", "mistral-small-tool-call-single-chunk"):
        path = FIXTURES / f"{name}.jsonl"
        if not path.is_file():
            pytest.skip(f"{path} not found")
        lines = read_recording(path)
        objects = [utils.ModelResponseStream(**line) for line in lines]
        assert summary(convert(objects)) == summary(convert(lines)), name


def test_jsonl_replay(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(chunk({"content": "a"})),
                "",
                ": keep-alive",
                "event: message",
                "data: " + json.dumps(chunk({"content": "b"})),
                "data: [DONE]",
                json.dumps(chunk({"content": "ignored"})),
            ]
        ),
        "utf-8",
    )

    async def main() -> tuple[list[Any], float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        items = [x async for x in openai_chunks_from_jsonl(path, delay_ms=30)]
        return items, loop.time() - started

    items, elapsed = asyncio.run(main())
    assert [i["choices"][0]["delta"]["content"] for i in items] == ["a", "b"]
    assert elapsed >= 0.025  # one pause between two chunks

    async def lines() -> list[Any]:
        return [x async for x in openai_chunks_from_jsonl(['{"a": 1}', b'{"b": 2}'])]

    assert asyncio.run(lines()) == [{"a": 1}, {"b": 2}]

    chunks = convert(openai_chunks_from_jsonl([json.dumps(chunk({"content": "a"})), "{broken"]))
    assert [c["type"] for c in chunks][-2:] == ["text-end", "error"]


odd_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "choices",
                    "delta",
                    "content",
                    "reasoning",
                    "tool_calls",
                    "index",
                    "id",
                    "function",
                    "name",
                    "arguments",
                    "finish_reason",
                    "usage",
                    "error",
                    "refusal",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(odd_values, max_size=6))
def test_converter_never_breaks_on_odd_chunks(stream: list[Any]) -> None:
    converter = OpenAIChatToUIMessageStream(message_id="m")
    chunks = list(converter.start())
    for item in stream:
        chunks.extend(converter.handle_chunk(item))
    chunks.extend(converter.finish())
    assert_compat_profile(chunks)
    assert chunks[-1]["type"] in ("finish", "error")
    fold_ui_messages(chunks)


# -- unit tests: fold --------------------------------------------------------------------------


def user(id: str, text: str) -> dict[str, Any]:
    """A user ``UIMessage``."""
    return {"id": id, "role": "user", "parts": [{"type": "text", "text": text}]}


def test_fold_ui_message_upsert_and_continuation() -> None:
    answer = [
        {"type": "start", "messageId": "a1"},
        {"type": "start-step"},
        {"type": "tool-input-start", "toolCallId": "t1", "toolName": "getLocation"},
        {
            "type": "tool-input-available",
            "toolCallId": "t1",
            "toolName": "getLocation",
            "input": {},
        },
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "tool-calls"},
    ]
    continued = {
        "id": "a1",
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {
                "type": "tool-getLocation",
                "toolCallId": "t1",
                "state": "output-available",
                "input": {},
                "output": {"lat": 1},
            },
        ],
    }
    records = [
        {"type": "ui-message", "message": user("u1", "where am I?")},
        *answer,
        {"type": "ui-message", "message": continued},  # tool-result continuation: replace a1
        {"type": "start", "messageId": "a1"},
        {"type": "start-step"},
        {"type": "text-start", "id": "x"},
        {"type": "text-delta", "id": "x", "delta": "Here."},
        {"type": "text-end", "id": "x"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop"},
    ]
    builder = UIMessageBuilder().add_all(records)
    messages = builder.messages
    assert [m["id"] for m in messages] == ["u1", "a1"]
    assert messages[1]["parts"] == [
        *continued["parts"],
        {"type": "step-start"},
        {"type": "text", "text": "Here.", "state": "done"},
    ]
    assert builder.finish_reasons == {"a1": "stop"}
    # Output is a copy: mutating it does not change the builder.
    messages[1]["parts"].clear()
    assert len(builder.messages[1]["parts"]) == 4
    assert continued["parts"][1]["state"] == "output-available"  # input not mutated
    # Editing (or regenerating from) u1: the client drops everything after it, so does the fold.
    builder.add_all(
        [
            {"type": "ui-message", "message": user("u1", "edited")},
            {"type": "ui-message", "message": user("u2", "next")},  # append
        ]
    )
    assert [m["id"] for m in builder.messages] == ["u1", "u2"]
    assert builder.messages[0]["parts"][0]["text"] == "edited"


def test_fold_start_without_id_and_chunks_without_start() -> None:
    messages = fold_ui_messages(
        [
            {"type": "ui-message", "message": user("u1", "hi")},
            {"type": "text-start", "id": "t"},
            {"type": "text-delta", "id": "t", "delta": "a"},
            {"type": "start"},  # continues the last assistant message
            {"type": "text-start", "id": "t"},
            {"type": "text-delta", "id": "t", "delta": "b"},
        ]
    )
    assert [m["id"] for m in messages] == ["u1", "msg-1"]
    assert [p["text"] for p in messages[1]["parts"]] == ["a", "b"]


def test_fold_error_keeps_message_and_ignores_rest_of_answer() -> None:
    builder = UIMessageBuilder().add_all(
        [
            {"type": "start", "messageId": "a"},
            {"type": "text-start", "id": "t"},
            {"type": "text-delta", "id": "t", "delta": "par"},
            {"type": "text-end", "id": "t"},
            {"type": "error", "errorText": "boom"},
            {"type": "text-start", "id": "u"},
            {"type": "abort"},
            {"type": "start", "messageId": "b"},
            {"type": "finish"},
        ]
    )
    assert builder.messages == [
        {
            "id": "a",
            "role": "assistant",
            "parts": [{"type": "text", "text": "par", "state": "done"}],
        },
        {"id": "b", "role": "assistant", "parts": []},
    ]
    assert builder.errors == [{"messageId": "a", "errorText": "boom"}]


def test_fold_skips_malformed_records() -> None:
    records: list[Any] = [
        None,
        5,
        "not json",
        b'{"type":"start","messageId":"a"}',
        {"type": 3},
        {"no": "type"},
        {"type": "text-delta", "id": "missing", "delta": "x"},
        {"type": "text-delta"},
        {"type": "text-start", "id": 7},
        {"type": "tool-output-available", "toolCallId": "nope", "output": 1},
        {"type": "tool-input-delta", "toolCallId": "nope", "inputTextDelta": "{"},
        {"type": "tool-output-available", "toolCallId": "nope"},
        {"type": "data-x", "data": 1, "transient": "yes"},
        {"type": "ui-message", "message": {"role": "user"}},
        {"type": "ui-message", "message": "x"},
        {"type": "mystery"},
        "[DONE]",
    ]
    assert fold_ui_messages(records) == [{"id": "a", "role": "assistant", "parts": []}]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=8,
)
fold_records = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "start",
                "start-step",
                "finish-step",
                "finish",
                "text-start",
                "text-delta",
                "text-end",
                "reasoning-start",
                "reasoning-delta",
                "tool-input-start",
                "tool-input-delta",
                "tool-input-available",
                "tool-input-error",
                "tool-output-available",
                "tool-output-error",
                "tool-approval-request",
                "data-x",
                "source-url",
                "file",
                "message-metadata",
                "error",
                "ui-message",
            ]
        )
    },
    optional={
        k: st.sampled_from(["a", "b"]) | json_values
        for k in [
            "id",
            "delta",
            "toolCallId",
            "toolName",
            "inputTextDelta",
            "input",
            "output",
            "errorText",
            "messageId",
            "messageMetadata",
            "data",
            "dynamic",
            "message",
            "url",
            "mediaType",
            "sourceId",
            "approvalId",
        ]
    },
)


class _Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fold_records, max_size=12))
def test_fold_never_raises(records: list[dict[str, Any]]) -> None:
    # The fold swallows internal errors (logged): check none happened, not just no raise.
    failures = _Failures()
    fold_logger = logging.getLogger("resumable_chat.protocols.ai_sdk_fold")
    fold_logger.addHandler(failures)
    try:
        messages = fold_ui_messages(records)
    finally:
        fold_logger.removeHandler(failures)
    assert failures.records == []
    json.dumps(messages)


# -- fold vs the real client on hand-written streams -----------------------------------------

RICH_STREAM: list[dict[str, Any]] = [
    {"type": "start", "messageId": "rich", "messageMetadata": {"createdAt": 1, "n": {"a": 1}}},
    {"type": "start-step"},
    {"type": "reasoning-start", "id": "r"},
    {"type": "reasoning-delta", "id": "r", "delta": "Let me think"},
    {"type": "reasoning-end", "id": "r"},
    {"type": "text-start", "id": "t"},
    {"type": "text-delta", "id": "t", "delta": "Hello"},
    {"type": "text-delta", "id": "t", "delta": ", world"},
    {"type": "text-end", "id": "t"},
    {"type": "tool-input-start", "toolCallId": "c1", "toolName": "getWeather"},
    {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '{"city":'},
    {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '"Paris"}'},
    {
        "type": "tool-input-available",
        "toolCallId": "c1",
        "toolName": "getWeather",
        "input": {"city": "Paris"},
    },
    {"type": "tool-output-available", "toolCallId": "c1", "output": {"tempC": 21}},
    {"type": "tool-input-start", "toolCallId": "c2", "toolName": "dyn", "dynamic": True},
    {"type": "tool-input-delta", "toolCallId": "c2", "inputTextDelta": "[1,"},
    {
        "type": "tool-input-available",
        "toolCallId": "c2",
        "toolName": "dyn",
        "input": [1],
        "dynamic": True,
    },
    {"type": "tool-output-error", "toolCallId": "c2", "errorText": "nope", "dynamic": True},
    {"type": "tool-input-start", "toolCallId": "c3", "toolName": "bad"},
    {"type": "tool-input-delta", "toolCallId": "c3", "inputTextDelta": "{not json"},
    {
        "type": "tool-input-error",
        "toolCallId": "c3",
        "toolName": "bad",
        "input": "{not json",
        "errorText": "Invalid JSON",
    },
    {
        "type": "tool-input-error",
        "toolCallId": "c4",
        "toolName": "dyn2",
        "input": {"a": 1},
        "errorText": "unknown tool",
        "dynamic": True,
    },
    {
        "type": "tool-input-available",
        "toolCallId": "c5",
        "toolName": "noOutput",
        "input": {},
        "providerExecuted": True,
    },
    {"type": "tool-output-available", "toolCallId": "c5", "output": None, "providerExecuted": True},
    {"type": "tool-input-available", "toolCallId": "c6", "toolName": "fails", "input": {"q": 1}},
    {"type": "tool-output-error", "toolCallId": "c6", "errorText": "timeout"},
    {"type": "tool-input-available", "toolCallId": "c7", "toolName": "prelim", "input": {}},
    {"type": "tool-output-available", "toolCallId": "c7", "output": 1, "preliminary": True},
    {"type": "tool-output-available", "toolCallId": "c7", "output": 2},
    {"type": "source-url", "sourceId": "s1", "url": "https://example.com", "title": "Ex"},
    {"type": "source-url", "sourceId": "s2", "url": "https://example.org"},
    {
        "type": "source-document",
        "sourceId": "d1",
        "mediaType": "text/plain",
        "title": "Doc",
        "filename": "a.txt",
    },
    {"type": "file", "url": "data:text/plain;base64,SGk=", "mediaType": "text/plain"},
    {"type": "data-weather", "id": "w", "data": {"status": "loading"}},
    {"type": "data-weather", "id": "w", "data": {"status": "done"}},
    {"type": "data-notice", "data": "transient", "transient": True},
    {"data": [1, 2], "type": "data-list"},
    {"type": "data-flag", "id": "f", "data": None, "transient": False},
    {"type": "message-metadata", "messageMetadata": {"n": {"b": 2}, "list": [1]}},
    {"type": "finish-step"},
    {"type": "start-step"},
    {"type": "text-start", "id": "t"},
    {"type": "text-delta", "id": "t", "delta": "Second step"},
    {"type": "text-end", "id": "t"},
    {"type": "tool-input-start", "toolCallId": "c8", "toolName": "open"},
    {"type": "tool-input-delta", "toolCallId": "c8", "inputTextDelta": '{"a": [1, {"b": "x'},
    {"type": "finish-step"},
    {"type": "finish", "finishReason": "stop", "messageMetadata": {"list": [2], "total": 5}},
]

#: ai 6-only keys and chunk types (loose clients): provider metadata, titles, approvals...
V6_STREAM: list[dict[str, Any]] = [
    {"type": "start", "messageId": "v6"},
    {"type": "start-step"},
    {"type": "text-start", "id": "t", "providerMetadata": {"p": {"a": 1}}},
    {"type": "text-delta", "id": "t", "delta": "x"},
    {"type": "text-end", "id": "t", "providerMetadata": {"p": {"b": 2}}},
    {"type": "reasoning-start", "id": "r", "providerMetadata": {"p": {"sig": "s"}}},
    {"type": "reasoning-end", "id": "r"},
    {
        "type": "tool-input-start",
        "toolCallId": "c1",
        "toolName": "w",
        "title": "Weather",
        "providerMetadata": {"p": {"c": 1}},
    },
    {
        "type": "tool-input-available",
        "toolCallId": "c1",
        "toolName": "w",
        "input": {},
        "title": "Weather",
        "providerMetadata": {"p": {"d": 1}},
    },
    {"type": "tool-approval-request", "approvalId": "ap1", "toolCallId": "c1"},
    {"type": "tool-input-available", "toolCallId": "c2", "toolName": "w", "input": {}},
    {"type": "tool-approval-request", "approvalId": "ap2", "toolCallId": "c2"},
    {"type": "tool-output-denied", "toolCallId": "c2"},
    {
        "type": "tool-input-start",
        "toolCallId": "c3",
        "toolName": "d",
        "dynamic": True,
        "title": "Dyn",
    },
    {
        "type": "tool-input-available",
        "toolCallId": "c3",
        "toolName": "d",
        "input": {"k": 1},
        "dynamic": True,
    },
    {
        "type": "tool-output-available",
        "toolCallId": "c3",
        "output": "ok",
        "providerMetadata": {"p": {"e": 1}},
    },
    {"type": "tool-input-start", "toolCallId": "c4", "toolName": "txt", "inputEncoding": "text"},
    {"type": "tool-input-delta", "toolCallId": "c4", "inputTextDelta": "raw {"},
    {
        "type": "file",
        "url": "https://x/y.png",
        "mediaType": "image/png",
        "providerMetadata": {"p": {}},
    },
    {"type": "source-url", "sourceId": "s", "url": "https://x", "providerMetadata": {"p": {}}},
    {"type": "abort", "reason": "user"},
    {"type": "finish", "finishReason": "other"},
]

#: Argument prefixes left open (stream ends mid tool call): the partial-JSON ``input``.
PARTIAL_ARGUMENTS = [
    "",
    " ",
    "{",
    '{"',
    '{"ci',
    '{"city"',
    '{"city":',
    '{"city": "Par',
    '{"city": "Paris", "n',
    '{"a": [1, 2',
    '{"a": [1, 2,',
    '{"a": tr',
    '{"a": nu',
    '{"a": f',
    '{"a": -',
    '{"a": 1.5e',
    '{"a": 12',
    '{"a": {"b": {"c": "d',
    '{"esc": "x\\',
    '{"esc": "line\\nnext',
    '{"u": "caf\\u00e',
    '{"u": "\\u00e9t\\u00e9"',
    '{"emoji": "\\ud83d\\ude00',
    '[{"a": 1}, {"b"',
    '"just a str',
    "42",
    "tru",
    '{"a": 1}}',
    '{"a": 1} trailing',
    '{"a": "b" "c": 1}',
    "{,}",
]


def partial_stream(index: int, arguments: str) -> list[dict[str, Any]]:
    """An answer that ends in the middle of a tool call's arguments."""
    return [
        {"type": "start", "messageId": f"p{index}"},
        {"type": "start-step"},
        {"type": "tool-input-start", "toolCallId": "c", "toolName": "f"},
        {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": arguments},
    ]


@pytest.fixture(scope="module")
def handwritten() -> dict[str, Any]:
    """The hand-written streams and their client results (one node process)."""
    streams = {
        "rich": RICH_STREAM,
        "v6": V6_STREAM,
        **{f"partial-{i}": partial_stream(i, a) for i, a in enumerate(PARTIAL_ARGUMENTS)},
    }
    names = list(streams)
    results = run_ui_stream_validator_batch([sse_body(streams[n]) for n in names])
    return {
        "streams": streams,
        "js": {p: dict(zip(names, rs, strict=True)) for p, rs in results.items()},
    }


def assert_fold_matches(stream: list[dict[str, Any]], js: dict[str, Any]) -> None:
    """The Python fold of ``stream`` equals the client's message, key order included."""
    assert js["ok"], js["error"]
    folded = fold_ui_messages(stream)
    assert folded == [js["message"]]
    assert key_order(folded[0]) == key_order(js["message"])


def test_fold_matches_client_on_rich_stream(handwritten: dict[str, Any]) -> None:
    # The rich stream uses compat-profile keys only: both majors agree with the fold.
    for package in ("ai", "ai-v5"):
        assert_fold_matches(RICH_STREAM, handwritten["js"][package]["rich"])


def test_fold_matches_client_on_v6_extras(handwritten: dict[str, Any]) -> None:
    assert_fold_matches(V6_STREAM, handwritten["js"]["ai"]["v6"])


@pytest.mark.parametrize("index", range(len(PARTIAL_ARGUMENTS)))
def test_fold_partial_tool_input_matches_client(index: int, handwritten: dict[str, Any]) -> None:
    # The fold follows ai 6's parsePartialJson. ai 5's fixJson predates the handling of a
    # cut-off \\uXXXX escape (it drops the whole input there), so v5 is only checked for ok.
    name = f"partial-{index}"
    assert_fold_matches(handwritten["streams"][name], handwritten["js"]["ai"][name])
    assert handwritten["js"]["ai-v5"][name]["ok"]


def test_converter_chunks_for_edge_cases_pass_the_client(handwritten: dict[str, Any]) -> None:
    """Converter output for hand-made edge cases (invalid arguments, errors, no finish)."""
    cases: dict[str, Any] = {
        "invalid-args": [tool_delta(0, "a", "f", "{oops"), chunk(finish="tool_calls")],
        "nameless": [tool_delta(0, "a", None, "{}")],
        "raises": raising_stream(),
        "empty": [],
        "no-finish-text": [chunk({"content": "x"})],
        "error-first": [{"error": {"message": "down"}}],
    }
    converted = {name: convert(source, message_id=name) for name, source in cases.items()}
    names = list(converted)
    results = run_ui_stream_validator_batch([sse_body(converted[n]) for n in names])
    for package, rs in results.items():
        for name, js in zip(names, rs, strict=True):
            assert js["ok"], (package, name, js["error"])
            assert fold_ui_messages(converted[name]) == [js["message"]], (package, name)
            errors = [c for c in converted[name] if c["type"] == "error"]
            assert js["errorChunks"] == [c["errorText"] for c in errors]
