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
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recording_oracle import read_answer, read_recording

from helpers import key_order, recordings
from resumable_chat.protocols.ai_sdk.fold import fold_ui_messages
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


def test_converter_chunks_for_edge_cases_pass_the_client() -> None:
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
