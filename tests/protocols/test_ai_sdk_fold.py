"""The AI SDK history fold (``UIMessageBuilder`` / ``fold_ui_messages``): unit tests, and the
fold against the real ``ai`` clients (``processUIMessageStream``) on hand-written streams.
The JS checks skip with the reason when Node or tests/js/node_modules is missing."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import key_order, min_cpu_s
from resumable_chat.protocols.ai_sdk.dialect import AiSdkDialect
from resumable_chat.protocols.ai_sdk.fold import UIMessageBuilder, fold_ui_messages

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from js_client import run_ui_stream_validator_batch, sse_body

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


def test_history_fold_time_grows_with_the_history_not_its_square() -> None:
    """``/messages`` folds the chat's whole log on every load: eight times the turns take
    about eight times as long (each upsert and answer scanned the history for its id: forty
    times as long)."""
    dialect = AiSdkDialect()

    def turns(count: int) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for t in range(count):
            question = {"id": f"u{t}", "role": "user", "parts": [{"type": "text", "text": "q"}]}
            records += dialect.message_records(question)
            records += [
                {"type": "start", "messageId": f"a{t}"},
                {"type": "text-start", "id": "t"},
                {"type": "text-delta", "id": "t", "delta": "answer"},
                {"type": "text-end", "id": "t"},
                {"type": "finish"},
            ]
        return records

    short, long = turns(500), turns(4000)
    assert len(dialect.fold(long)) == 8000
    assert min_cpu_s(lambda: dialect.fold(long)) / min_cpu_s(lambda: dialect.fold(short)) < 20
