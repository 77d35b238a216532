"""OpenAI chat-completions streams → TanStack StreamChunks, folded by the real StreamProcessor.

Every recorded stream in ``../shared/fixtures/openai-streams/*.jsonl`` (globbed) is converted
with ``tanstack_chunks`` and folded twice: as sent live (``TEXT_MESSAGE_CONTENT`` with its
running ``content``) and as the chat core stores it (a user turn as ``TEXT_MESSAGE_START``
role user / ``CONTENT`` / ``END`` first, ``content`` removed). Each sequence goes through a
fresh real ``StreamProcessor`` of ``@tanstack/ai-client`` 0.33.2 and of 0.10.0 and through
``fold_tanstack_messages`` (:mod:`tanstack_oracle`, ONE node process for this module). The
messages must be equal, key order included, and carry the recording's text, reasoning and
tool calls; the chunks must carry what old and new clients read. The fold's own edge cases
are in ``tests/protocols/test_tanstack_fold.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from recording_oracle import read_answer, read_recording

from helpers import recordings
from resumable_chat.chat.dialect import DEFAULT_ERROR_TEXT
from resumable_chat.protocols.tanstack.fold import fold_tanstack_messages
from resumable_chat.sources import (
    OpenAIChatToTanStackStream,
    default_error_code,
    detailed_error_text,
    map_tanstack_finish_reason,
    openai_chunks_from_jsonl,
    tanstack_chunks,
    tanstack_usage,
)
from resumable_chat.sources.openai_tanstack import FALLBACK_ERROR_CODE
from tanstack_oracle import (
    CLIENT_PACKAGES,
    NOW_MS,
    assert_same_messages,
    assistant_message,
    fold_by_js,
    iso,
    parts_of,
    user_turn,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES, FIXTURE_FILES, FIXTURE_PARAMS = recordings("openai-streams")

THREAD_ID = "thread-1"
FINISH_REASONS = {"stop", "length", "content_filter", "tool_calls", None}


# -- chunks as the chat core stores them --------------------------------------------------------


def storage_form(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``prepareForStorage``: ``TEXT_MESSAGE_CONTENT`` without its running ``content``."""
    return [
        {k: v for k, v in c.items() if k != "content"} if c["type"] == "TEXT_MESSAGE_CONTENT" else c
        for c in chunks
    ]


def stored_turn(name: str, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return user_turn(f"user-{name}", f"question for {name}") + storage_form(chunks)


# -- an independent reading of a recording (the oracle) -----------------------------------------


def expected_from_recording(lines: list[Any]) -> dict[str, Any]:
    """What the TanStack run must contain, read straight from the recording."""
    answer = read_answer(lines)
    reason = answer.pop("provider_finish_reason")
    if answer["tool_calls"]:
        answer["finish_reason"] = "tool_calls"
    elif reason in (None, "stop", "tool_calls", "function_call"):
        answer["finish_reason"] = "stop"
    elif reason in ("length", "content_filter"):
        answer["finish_reason"] = reason
    else:
        answer["finish_reason"] = None
    return answer


# -- conversion ---------------------------------------------------------------------------------


class Clock:
    """A deterministic ``clock_ms``: NOW_MS + 1, + 2, ..."""

    def __init__(self, start: int = NOW_MS) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1
        return self.now


async def _convert(source: Any, **kwargs: Any) -> list[dict[str, Any]]:
    return [chunk async for chunk in tanstack_chunks(source, **kwargs)]


def convert(source: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """All chunks of ``tanstack_chunks(source, **kwargs)`` (its own event loop)."""
    kwargs.setdefault("clock_ms", Clock())
    return asyncio.run(_convert(source, **kwargs))


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict:
    """A minimal ``chat.completion.chunk`` dict."""
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "choices": [choice], **extra}


def tool_delta(
    index: int | None = None, id: str | None = None, name: str | None = None, args: str = ""
) -> dict[str, Any]:
    tc: dict[str, Any] = {"function": {"arguments": args}}
    if index is not None:
        tc["index"] = index
    if id is not None:
        tc["id"] = id
        tc["type"] = "function"
    if name is not None:
        tc["function"]["name"] = name
    return chunk({"tool_calls": [tc]})


class RateLimited(Exception):
    """Looks like an SDK error: ``status_code`` and ``code`` attributes."""

    status_code = 429
    code = "rate_limit_exceeded"


async def raising_stream(
    before: list[dict[str, Any]], exc: BaseException
) -> AsyncIterator[dict[str, Any]]:
    for item in before:
        yield item
    raise exc


# -- everything through node once ---------------------------------------------------------------


@pytest.fixture(scope="module")
def folded() -> dict[str, Any]:
    """Conversions, and the JS folds of every sequence in this file (ONE node process).

    ``{"recordings": {stem: {"lines", "chunks", "stored"}}, "sequences": {name: chunks},
    "js": {client: {name: tanstack_fold.mjs result}}}``.
    """
    recordings: dict[str, dict[str, Any]] = {}
    sequences: dict[str, list[Any]] = {}
    for path in FIXTURE_FILES:
        chunks = convert(
            openai_chunks_from_jsonl(path),
            run_id=f"run-{path.stem}",
            thread_id=THREAD_ID,
            message_id=f"msg-{path.stem}",
        )
        stored = stored_turn(path.stem, chunks)
        recordings[path.stem] = {"lines": read_recording(path), "chunks": chunks, "stored": stored}
        sequences[f"live:{path.stem}"] = chunks
        sequences[f"stored:{path.stem}"] = stored
        # A first load's snapshot of this turn, then the next turn live: a client that got
        # the snapshot must end where one that saw the whole log ends.
        snapshot = {
            "type": "MESSAGES_SNAPSHOT",
            "timestamp": NOW_MS,
            "messages": fold_tanstack_messages(stored, now_ms=NOW_MS),
        }
        second = convert(
            openai_chunks_from_jsonl(path),
            run_id=f"run-{path.stem}-2",
            thread_id=THREAD_ID,
            message_id=f"msg-{path.stem}-2",
        )
        next_turn = stored_turn(f"{path.stem}-2", second)
        sequences[f"snapshot:{path.stem}"] = [snapshot, *next_turn]
        sequences[f"full:{path.stem}"] = [*stored, *next_turn]
    for name, sequence in CONVERTER_CASES.items():
        sequences[f"converter:{name}"] = stored_turn(name, convert(sequence, message_id=name))
    return {"recordings": recordings, "sequences": sequences, "js": fold_by_js(sequences)}


# -- recordings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURE_PARAMS)
@pytest.mark.parametrize("form", ["live", "stored", "snapshot", "full"])
def test_recording_python_fold_equals_js(path: Path, form: str, folded: dict[str, Any]) -> None:
    name = f"{form}:{path.stem}"
    js = folded["js"]["ai-client"][name]
    assert js["errors"] == [], js["errors"]
    assert_same_messages(
        fold_tanstack_messages(folded["sequences"][name], now_ms=NOW_MS), js["messages"]
    )


@pytest.mark.parametrize("path", FIXTURE_PARAMS)
def test_recording_snapshot_then_next_turn_equals_whole_log(
    path: Path, folded: dict[str, Any]
) -> None:
    """What session replay relies on: snapshot + live tail == the whole log, in the client.

    The snapshot is the 0.58 fold; @tanstack/ai 0.18 (client 0.10) never sets a tool call's
    ``input`` itself, so for it ``input`` is left out of the comparison (an extra key it keeps;
    on both sides, so the slot also holds for the clients from 0.23 on, whose fold sets it).
    """
    for client in CLIENT_PACKAGES:
        snapshot = folded["js"][client][f"snapshot:{path.stem}"]
        full = folded["js"][client][f"full:{path.stem}"]
        assert snapshot["errors"] == [] and full["errors"] == [], client
        if client == "v010":
            assert without_tool_input(snapshot["messages"]) == without_tool_input(
                full["messages"]
            ), client
        else:
            assert snapshot["messages"] == full["messages"], client
        assert len(full["messages"]) == 4, client


def without_tool_input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **m,
            "parts": [
                {k: v for k, v in p.items() if not (p["type"] == "tool-call" and k == "input")}
                for p in m["parts"]
            ],
        }
        for m in messages
    ]


@pytest.mark.parametrize("path", FIXTURE_PARAMS)
def test_recording_messages_carry_the_recording(path: Path, folded: dict[str, Any]) -> None:
    entry = folded["recordings"][path.stem]
    expected = expected_from_recording(entry["lines"])
    live = folded["js"]["ai-client"][f"live:{path.stem}"]["messages"]
    stored = folded["js"]["ai-client"][f"stored:{path.stem}"]["messages"]

    # Stored form: the user turn, then the same assistant message as live.
    assert stored[0]["id"] == f"user-{path.stem}"
    assert stored[0]["role"] == "user"
    assert stored[0]["parts"] == [{"type": "text", "content": f"question for {path.stem}"}]
    assert stored[1:] == live

    message = assistant_message(live, f"msg-{path.stem}")
    assert message["role"] == "assistant"
    assert "".join(p["content"] for p in parts_of(message, "text")) == expected["text"]
    assert "".join(p["content"] for p in parts_of(message, "thinking")) == expected["reasoning"]
    calls = parts_of(message, "tool-call")
    assert [(p["id"], p["name"], p.get("input")) for p in calls] == expected["tool_calls"]
    for call in calls:
        assert json.loads(call["arguments"] or "{}") == call["input"]
        assert call["state"] == "input-complete"


@pytest.mark.parametrize("path", FIXTURE_PARAMS)
def test_recording_chunks_speak_to_old_and_new_clients(path: Path, folded: dict[str, Any]) -> None:
    entry = folded["recordings"][path.stem]
    chunks = entry["chunks"]
    expected = expected_from_recording(entry["lines"])
    run_id = f"run-{path.stem}"

    assert all(isinstance(c["timestamp"], int) for c in chunks)
    assert [c["timestamp"] for c in chunks] == sorted(c["timestamp"] for c in chunks)
    assert chunks[0] == {
        "type": "RUN_STARTED",
        "timestamp": chunks[0]["timestamp"],
        "runId": run_id,
        "threadId": THREAD_ID,
    }
    terminals = [c for c in chunks if c["type"] in ("RUN_FINISHED", "RUN_ERROR")]
    assert terminals == [chunks[-1]]
    terminal = chunks[-1]
    assert terminal["runId"] == run_id
    assert terminal["threadId"] == THREAD_ID
    tanstack = terminal["metadata"]["tanstack"]
    assert tanstack.get("model") == expected["model"]

    if expected["error"] is not None:
        assert terminal["type"] == "RUN_ERROR"
        assert terminal["message"] == DEFAULT_ERROR_TEXT
        assert terminal["error"] == {"message": terminal["message"], "code": terminal["code"]}
        assert terminal["code"] == default_error_code(expected["error"])
        assert tanstack["runId"] == run_id
        assert folded["js"]["ai-client"][f"live:{path.stem}"]["state"]["done"] is False
    else:
        assert terminal["type"] == "RUN_FINISHED"
        assert terminal["finishReason"] == expected["finish_reason"]
        assert tanstack["finishReason"] == terminal["finishReason"]
        assert terminal["finishReason"] in FINISH_REASONS
        for client in ("ai-client", "v010"):
            state = folded["js"][client][f"live:{path.stem}"]["state"]
            assert state["finishReason"] == expected["finish_reason"], client
        if expected["usage"] is not None:
            assert terminal["usage"]["promptTokens"] == expected["usage"]["prompt_tokens"]
            assert terminal["usage"]["completionTokens"] == expected["usage"]["completion_tokens"]

    starts = [c for c in chunks if c["type"] == "TOOL_CALL_START"]
    assert [(c["toolCallId"], c["toolCallName"]) for c in starts] == [
        (i, n) for i, n, _ in expected["tool_calls"]
    ]
    for index, start in enumerate(starts):
        assert start["toolName"] == start["toolCallName"]
        assert start["parentMessageId"] == f"msg-{path.stem}"
        assert start["index"] == index

    # TEXT_MESSAGE_CONTENT.content is the running aggregate; the message frame is balanced.
    running = ""
    for c in chunks:
        if c["type"] == "TEXT_MESSAGE_CONTENT":
            running += c["delta"]
            assert c["content"] == running
    frame = [c["type"] for c in chunks if c["type"] in ("TEXT_MESSAGE_START", "TEXT_MESSAGE_END")]
    assert frame in ([], ["TEXT_MESSAGE_START", "TEXT_MESSAGE_END"])
    opened = [c for c in chunks if c["type"] == "REASONING_START"]
    closed = [c for c in chunks if c["type"] == "REASONING_END"]
    assert [c["messageId"] for c in opened] == [c["messageId"] for c in closed]


@pytest.mark.parametrize("path", FIXTURE_PARAMS)
def test_recording_accepted_by_client_0_10(path: Path, folded: dict[str, Any]) -> None:
    """ai-client 0.10.0 (@tanstack/ai 0.18.0) builds the same text and tool calls."""
    new = folded["js"]["ai-client"][f"live:{path.stem}"]
    old = folded["js"]["v010"][f"live:{path.stem}"]
    assert old["errors"] == []
    assert [m["id"] for m in old["messages"]] == [m["id"] for m in new["messages"]]
    for old_message, new_message in zip(old["messages"], new["messages"], strict=True):
        for kind in ("text", "thinking"):
            assert [p["content"] for p in parts_of(old_message, kind)] == [
                p["content"] for p in parts_of(new_message, kind)
            ]
        assert [
            (p["id"], p["name"], p["arguments"]) for p in parts_of(old_message, "tool-call")
        ] == [(p["id"], p["name"], p["arguments"]) for p in parts_of(new_message, "tool-call")]
    stored_old = folded["js"]["v010"][f"stored:{path.stem}"]["messages"]
    assert stored_old[0]["role"] == "user"
    assert stored_old[1:] == old["messages"]


def test_error_recording_with_detailed_policy() -> None:
    path = FIXTURES / "groq-gpt-oss-120b-reasoning-then-error.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    chunks = convert(openai_chunks_from_jsonl(path), on_error=detailed_error_text)
    assert chunks[-1]["type"] == "RUN_ERROR"
    assert chunks[-1]["message"].startswith("Tool call validation failed")
    assert chunks[-1]["code"] == "tool_use_failed"
    assert chunks[-1]["error"]["message"] == chunks[-1]["message"]


# -- converter ----------------------------------------------------------------------------------

CONVERTER_CASES: dict[str, list[Any]] = {
    "invalid-json-arguments": [tool_delta(0, "call_a", "f", "{oops"), chunk(finish="tool_calls")],
    "nameless-call-dropped": [chunk({"content": "hi"}), tool_delta(0, "call_a", None, "{}")],
    "no-finish-reason": [chunk({"content": "partial"})],
    "empty-stream": [],
    "error-first": [{"error": {"message": "down", "code": 503}}],
    "error-after-tool-args": [tool_delta(0, "call_a", "f", '{"a":'), {"error": {"message": "x"}}],
    "reasoning-text-reasoning": [
        chunk({"reasoning_content": "think "}),
        chunk({"reasoning_content": "more"}),
        chunk({"content": "answer"}),
        chunk({"reasoning": "again"}),
        chunk(finish="stop"),
    ],
    "whitespace-only-answer": [chunk({"content": "  "}), chunk(finish="stop")],
    "text-tools-text": [
        chunk({"content": "Let me check."}),
        tool_delta(0, "call_a", "f", "{}"),
        tool_delta(1, "call_b", "g", ""),
        chunk(finish="tool_calls"),
    ],
}


@pytest.mark.parametrize("name", list(CONVERTER_CASES))
def test_converter_edge_cases_fold_alike(name: str, folded: dict[str, Any]) -> None:
    sequence = folded["sequences"][f"converter:{name}"]
    js = folded["js"]["ai-client"][f"converter:{name}"]
    assert js["errors"] == []
    assert_same_messages(fold_tanstack_messages(sequence, now_ms=NOW_MS), js["messages"])
    # Only the user turn and (at most) the stable message: no processor-generated ids.
    assert {m["id"] for m in js["messages"]} <= {f"user-{name}", name}


def test_converter_edge_case_results(folded: dict[str, Any]) -> None:
    def messages(name: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = folded["js"]["ai-client"][f"converter:{name}"]["messages"]
        return result

    invalid = parts_of(messages("invalid-json-arguments")[1], "tool-call")[0]
    assert invalid["arguments"] == "{oops" and "input" not in invalid
    assert invalid["state"] == "input-complete"
    assert parts_of(messages("nameless-call-dropped")[1], "tool-call") == []
    assert [m["id"] for m in messages("empty-stream")] == ["user-empty-stream"]
    assert messages("error-first")[1] == {
        "id": "error-first",
        "role": "assistant",
        "parts": [],
        "createdAt": iso(NOW_MS),
    }
    cut = parts_of(messages("error-after-tool-args")[1], "tool-call")[0]
    assert cut["state"] == "input-streaming"  # not closed: stays out of the next request
    thinking = parts_of(messages("reasoning-text-reasoning")[1], "thinking")
    assert [(p["stepId"], p["content"]) for p in thinking] == [
        ("reasoning-text-reasoning-reasoning-0", "think more"),
        ("reasoning-text-reasoning-reasoning-1", "again"),
    ]
    assert [m["id"] for m in messages("whitespace-only-answer")] == ["user-whitespace-only-answer"]
    parts = messages("text-tools-text")[1]["parts"]
    assert [(p["type"], p.get("input")) for p in parts] == [
        ("text", None),
        ("tool-call", {}),
        ("tool-call", {}),
    ]


def _types(chunks: list[dict[str, Any]]) -> list[str]:
    return [c["type"] for c in chunks]


def test_error_before_content_opens_the_message() -> None:
    chunks = convert(CONVERTER_CASES["error-first"], run_id="r", message_id="m", thread_id="t")
    assert _types(chunks) == ["RUN_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_END", "RUN_ERROR"]
    error = chunks[-1]
    assert error == {
        "type": "RUN_ERROR",
        "timestamp": error["timestamp"],
        "runId": "r",
        "threadId": "t",
        "message": DEFAULT_ERROR_TEXT,
        "code": "503",
        "error": {"message": DEFAULT_ERROR_TEXT, "code": "503"},
        "metadata": {"tanstack": {"runId": "r", "threadId": "t"}},
    }


def test_exception_mid_stream_becomes_run_error() -> None:
    stream = raising_stream([chunk({"content": "Hel"}), chunk({"content": "lo"})], RateLimited())
    chunks = convert(stream, run_id="r", message_id="m")
    assert _types(chunks) == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "RUN_ERROR",
    ]
    assert chunks[-1]["code"] == "rate_limit_exceeded"
    assert chunks[-1]["message"] == DEFAULT_ERROR_TEXT
    assert "threadId" not in chunks[-1]
    messages = fold_tanstack_messages(chunks, now_ms=NOW_MS)
    assert messages[0]["parts"] == [{"type": "text", "content": "Hello"}]


def test_error_policies() -> None:
    stream = raising_stream([], ValueError("secret detail"))
    chunks = convert(stream, on_error=detailed_error_text, on_error_code=lambda e: "custom")
    assert chunks[-1]["message"] == "ValueError: secret detail"
    assert chunks[-1]["error"] == {"message": "ValueError: secret detail", "code": "custom"}

    def broken(error: object) -> str:
        raise RuntimeError("policy bug")

    chunks = convert(raising_stream([], ValueError("x")), on_error=broken, on_error_code=broken)
    assert (chunks[-1]["message"], chunks[-1]["code"]) == (DEFAULT_ERROR_TEXT, FALLBACK_ERROR_CODE)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ({"code": "tool_use_failed", "status_code": 400}, "tool_use_failed"),
        ({"code": None, "status_code": 400}, "400"),
        ({"code": 429}, "429"),
        ({"code": "has spaces and / slashes"}, FALLBACK_ERROR_CODE),
        ({"code": "x" * 65}, FALLBACK_ERROR_CODE),
        ({"code": True}, FALLBACK_ERROR_CODE),
        ({}, FALLBACK_ERROR_CODE),
        (RateLimited(), "rate_limit_exceeded"),
        (ValueError("boom"), FALLBACK_ERROR_CODE),
    ],
)
def test_default_error_code(error: Any, code: str) -> None:
    assert default_error_code(error) == code


@pytest.mark.parametrize(
    ("reason", "had_tool_calls", "mapped"),
    [
        ("stop", False, "stop"),
        ("length", False, "length"),
        ("content_filter", False, "content_filter"),
        ("tool_calls", True, "tool_calls"),
        ("stop", True, "tool_calls"),
        ("tool_calls", False, "stop"),
        ("function_call", False, "stop"),
        (None, False, "stop"),
        (None, True, "tool_calls"),
        ("error", False, None),
        ("eos", False, None),
        (3, False, None),
    ],
)
def test_map_tanstack_finish_reason(reason: object, had_tool_calls: bool, mapped: str) -> None:
    assert map_tanstack_finish_reason(reason, had_tool_calls=had_tool_calls) == mapped


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        ([chunk({"content": "hi"}), chunk(finish="length")], "length"),
        ([chunk({"content": "hi"}), chunk(finish="insufficient_system_resource")], None),
        ([chunk({"content": "hi"})], "stop"),
        ([tool_delta(0, "call_1", "f", "{}")], "tool_calls"),
        ([tool_delta(0, "call_1", None, "{}"), chunk(finish="tool_calls")], "stop"),
        ([], "stop"),
    ],
)
def test_finish_reason_on_run_finished(stream: list[Any], reason: str | None) -> None:
    last = convert(stream)[-1]
    assert last["type"] == "RUN_FINISHED"
    assert last["finishReason"] == reason
    assert last["metadata"]["tanstack"]["finishReason"] == reason


def test_usage_shape() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    expected = {
        "promptTokens": 10,
        "completionTokens": 5,
        "totalTokens": 15,
        "promptTokensDetails": {"cachedTokens": 2},
        "completionTokensDetails": {"reasoningTokens": 3},
    }
    assert tanstack_usage(usage) == expected
    assert tanstack_usage({"prompt_tokens": 4, "completion_tokens": 1}) == {
        "promptTokens": 4,
        "completionTokens": 1,
        "totalTokens": 5,
    }
    assert tanstack_usage({"foo": 1}) is None
    last = convert([chunk({"content": "x"}), {"choices": [], "usage": usage}])[-1]
    assert last["usage"] == expected
    assert "usage" not in convert([chunk({"content": "x"})])[-1]
    no_usage = convert([{"choices": [], "usage": usage}], include_usage=False)[-1]
    assert "usage" not in no_usage


def test_ids_are_generated_once() -> None:
    chunks = convert([chunk({"content": "a"}), tool_delta(0, "call_1", "f", "{}")])
    run_ids = {c["runId"] for c in chunks if "runId" in c}
    message_ids = {c["messageId"] for c in chunks if c["type"].startswith("TEXT_MESSAGE")}
    assert len(run_ids) == 1 and next(iter(run_ids)).startswith("run-")
    assert len(message_ids) == 1 and next(iter(message_ids)).startswith("msg-")
    assert chunks[2]["messageId"] == next(iter(message_ids))
    assert [c["parentMessageId"] for c in chunks if c["type"] == "TOOL_CALL_START"] == [
        next(iter(message_ids))
    ]
    assert all("threadId" not in c for c in chunks)


def test_timestamps_come_from_the_clock() -> None:
    chunks = convert([chunk({"content": "a"})], clock_ms=lambda: 42)
    assert {c["timestamp"] for c in chunks} == {42}
    real = convert([chunk({"content": "a"})], clock_ms=None)
    assert all(abs(c["timestamp"] - real[0]["timestamp"]) < 60_000 for c in real)


def test_sdk_objects_and_json_text_are_accepted() -> None:
    from openai.types.chat import ChatCompletionChunk

    sdk = ChatCompletionChunk.model_validate(
        {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-x",
            "choices": [{"index": 0, "delta": {"content": "from sdk"}, "finish_reason": None}],
        }
    )
    text = json.dumps(chunk({"content": " and json"}, finish="stop"))
    chunks = convert([sdk, text, 42, "not json"], message_id="m")
    assert [c["delta"] for c in chunks if c["type"] == "TEXT_MESSAGE_CONTENT"] == [
        "from sdk",
        " and json",
    ]
    assert chunks[-1]["metadata"]["tanstack"] == {"finishReason": "stop", "model": "gpt-x"}
    assert convert([], model="fallback")[-1]["metadata"]["tanstack"]["model"] == "fallback"


def test_closing_early_closes_the_provider_stream() -> None:
    closed: list[bool] = []

    async def provider() -> AsyncIterator[dict[str, Any]]:
        try:
            while True:
                yield chunk({"content": "x"})
        finally:
            closed.append(True)

    async def main() -> list[str]:
        gen = tanstack_chunks(provider())
        seen = [(await anext(gen))["type"] for _ in range(3)]
        await gen.aclose()
        return seen

    assert asyncio.run(main()) == ["RUN_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT"]
    assert closed == [True]


def test_not_iterable_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        convert(42)


def test_converter_class_directly() -> None:
    converter = OpenAIChatToTanStackStream(run_id="r", message_id="m", clock_ms=lambda: 1)
    out: list[dict[str, Any]] = []
    for part in (
        converter.start(),
        converter.handle_chunk(chunk({"content": "hi"}, finish="stop")),
        converter.finish(),
        converter.finish(),
        converter.handle_chunk(chunk({"content": "late"})),
    ):
        out.extend(part)
    assert _types(out) == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "RUN_FINISHED",
    ]
    assert converter.stopped and converter.finish_reason == "stop"
