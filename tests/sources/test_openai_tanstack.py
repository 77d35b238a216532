"""OpenAI chat-completions streams → TanStack StreamChunks, folded by the real StreamProcessor.

Every recorded stream in ``../shared/fixtures/openai-streams/*.jsonl`` (globbed) is converted
with ``tanstack_chunks`` and folded twice: as sent live (``TEXT_MESSAGE_CONTENT`` with its
running ``content``) and as the chat core stores it (a user turn as ``TEXT_MESSAGE_START``
role user / ``CONTENT`` / ``END`` first, ``content`` removed). Each sequence goes through a
fresh real ``StreamProcessor`` of ``@tanstack/ai-client`` 0.33.2 and of 0.10.0
(``tests/js/tanstack_fold.mjs``, ONE node process for everything in this file) and through
``fold_tanstack_messages``. The messages must be equal, key order included, and carry the
recording's text, reasoning and tool calls; the chunks must carry what old and new clients
read (``reference/wire-protocols.md`` §0).

Normalisation: only ids the processor generates itself (``msg-<Date.now()>-<random>``, e.g.
for a ``RUN_ERROR`` with no assistant message) are replaced by placeholders in order of first
appearance, because the JavaScript ones are random and the Python fold makes deterministic
ones on purpose. ``createdAt`` needs none: the node harness freezes the clock at ``NOW_MS``
and the Python fold gets ``now_ms=NOW_MS``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from recording_oracle import read_answer, read_recording

from helpers import key_order, recordings
from resumable_chat.chat.dialect import DEFAULT_ERROR_TEXT
from resumable_chat.protocols.tanstack.fold import TanStackMessageBuilder, fold_tanstack_messages
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

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES, FIXTURE_FILES, FIXTURE_PARAMS = recordings("openai-streams")

JS_DIR = REPO_ROOT / "tests" / "js"
FOLD_SCRIPT = JS_DIR / "tanstack_fold.mjs"
CLIENT_PACKAGES = {"ai-client": "@tanstack/ai-client", "v010": "tanstack-ai-client-v010"}

NOW_MS = 1_700_000_000_000
THREAD_ID = "thread-1"
FINISH_REASONS = {"stop", "length", "content_filter", "tool_calls", None}


# -- the node harness ---------------------------------------------------------------------------


def run_js_fold(sequences: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Fold every sequence with a fresh real ``StreamProcessor`` of each client, in ONE node
    process. Returns ``{client: [{"messages", "errors", "logs", "state"}, ...]}``."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the real TanStack client checks need Node 20+")
    for package in CLIENT_PACKAGES.values():
        if not (JS_DIR / "node_modules" / package / "package.json").is_file():
            pytest.skip(f"tests/js/node_modules/{package} is missing: run `npm ci` in {JS_DIR}")
    items = [{"chunks": s, "nowMs": NOW_MS} for s in sequences]
    proc = subprocess.run(
        [node, str(FOLD_SCRIPT), "--clients", ",".join(CLIENT_PACKAGES)],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        cwd=JS_DIR,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"tanstack_fold.mjs failed ({proc.returncode}):\n{proc.stderr}")
    result: dict[str, list[dict[str, Any]]] = json.loads(proc.stdout)
    return result


_GENERATED_ID = re.compile(r"msg-\d+-[a-z0-9]+")


def normalise_ids(value: Any, seen: dict[str, str] | None = None) -> Any:
    """Processor-generated ids → ``<generated-N>`` (N in order of first appearance)."""
    seen = {} if seen is None else seen
    if isinstance(value, dict):
        return {k: normalise_ids(v, seen) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_ids(v, seen) for v in value]
    if isinstance(value, str) and _GENERATED_ID.fullmatch(value):
        return seen.setdefault(value, f"<generated-{len(seen)}>")
    return value


def assert_same_messages(python: list[dict[str, Any]], js: list[dict[str, Any]]) -> None:
    a, b = normalise_ids(python), normalise_ids(js)
    assert a == b
    assert key_order(a) == key_order(b)


# -- chunks as the chat core stores them --------------------------------------------------------


def user_turn(message_id: str, text: str, timestamp: int = NOW_MS) -> list[dict[str, Any]]:
    """The user message as the session writer stores it (reference §5.3)."""
    chunks: list[dict[str, Any]] = [
        {
            "type": "TEXT_MESSAGE_START",
            "timestamp": timestamp,
            "messageId": message_id,
            "role": "user",
        },
    ]
    if text:
        chunks.append(
            {
                "type": "TEXT_MESSAGE_CONTENT",
                "timestamp": timestamp,
                "messageId": message_id,
                "delta": text,
            }
        )
    chunks.append({"type": "TEXT_MESSAGE_END", "timestamp": timestamp, "messageId": message_id})
    return chunks


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


# -- fold edge cases (reference §5.6 and what 0.58 does beyond it) ------------------------------


def _s(mid: str, role: str = "assistant", **extra: Any) -> dict[str, Any]:
    return {"type": "TEXT_MESSAGE_START", "messageId": mid, "role": role, **extra}


def _c(mid: str | None, delta: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "TEXT_MESSAGE_CONTENT", "messageId": mid, "delta": delta, **extra}


def _e(mid: str) -> dict[str, Any]:
    return {"type": "TEXT_MESSAGE_END", "messageId": mid}


def _rs(run: str) -> dict[str, Any]:
    return {"type": "RUN_STARTED", "runId": run}


def _rf(run: str | None, reason: str | None = "stop", **extra: Any) -> dict[str, Any]:
    return {"type": "RUN_FINISHED", "runId": run, "finishReason": reason, **extra}


def _ts(call: str, name: str, parent: str | None = None, **extra: Any) -> dict[str, Any]:
    chunk_: dict[str, Any] = {"type": "TOOL_CALL_START", "toolCallId": call, "toolCallName": name}
    if parent is not None:
        chunk_["parentMessageId"] = parent
    return {**chunk_, **extra}


def _ta(call: str, delta: str) -> dict[str, Any]:
    return {"type": "TOOL_CALL_ARGS", "toolCallId": call, "delta": delta}


def _te(call: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TOOL_CALL_END", "toolCallId": call, **extra}


def _tr(call: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {
        "type": "TOOL_CALL_RESULT",
        "messageId": "tool-msg",
        "toolCallId": call,
        "content": content,
        **extra,
    }


U1 = user_turn("u1", "hi")

SNAPSHOT_DATES = [
    "2024-02-30",
    "2024-13-01",
    "+002024-01-01T00:00:00Z",
    "2024-01-01T24:00:00Z",
    "2024-01-01T24:00:01Z",
    "2024-01-01T10:00:00.123456Z",
    "2024-01-01 10:00:00Z",
    "x",
    "",
    "2024-01-01T10:00:00+0100",
    "2024-01-01T10:00:00-05:30",
    "2024",
    "2024-01",
    "-000001-01-01T00:00:00Z",
    "-000000-01-01T00:00:00Z",
    "2024-01-01T10Z",
    "2024-00-10",
    "2024-04-31",
    "275760-09-13T00:00:00.000Z",
    "+275760-09-13T00:00:00.001Z",
    12345,
    None,
    "2024-01-01T10:00:00z",
    "2024-01-01T10:60:00Z",
    "2024-01-01T10:00:00+24:00",
]

EDGE_CASES: dict[str, list[Any]] = {
    "whitespace-answer-dropped": [*U1, _rs("r1"), _s("a1"), _c("a1", " \n "), _e("a1"), _rf("r1")],
    "whitespace-answer-kept-after-error": [
        *U1,
        _rs("r1"),
        _s("a1"),
        _c("a1", "  "),
        _e("a1"),
        {"type": "RUN_ERROR", "message": "x"},
        _rf("r1"),
    ],
    "empty-answer-kept": [*U1, _rs("r1"), _s("a1"), _e("a1"), _rf("r1")],
    "run-error-creates-assistant": [*U1, _rs("r1"), {"type": "RUN_ERROR", "message": "boom"}],
    "run-error-without-message": [_rs("r1"), {"type": "RUN_ERROR", "runId": "r1"}],
    # A lazily created assistant message is renamed by the next TEXT_MESSAGE_START, even a
    # user one: the second user turn turns into an assistant message (0.58 behaviour).
    "run-error-then-next-turn": [
        _rs("r1"),
        {"type": "RUN_ERROR", "message": "boom"},
        *user_turn("u2", "second"),
        _rs("r2"),
        _s("a2"),
        _c("a2", "ok"),
        _e("a2"),
        _rf("r2"),
    ],
    "continuation-of-message-id": [
        *U1,
        _rs("r1"),
        _s("a1"),
        _c("a1", "Checking."),
        _ts("c1", "f", "a1"),
        _ta("c1", '{"q":1}'),
        _te("c1"),
        _e("a1"),
        _rf("r1", "tool_calls"),
        _rs("r2"),
        _s("a1"),
        _c("a1", "Done."),
        _e("a1"),
        _rf("r2"),
    ],
    "content-for-unknown-message-goes-to-active": [
        *U1,
        _rs("r1"),
        _s("a1"),
        _c("a1", "a"),
        _c("other", "b"),
        _e("a1"),
        _rf("r1"),
    ],
    "content-without-start": [_rs("r1"), _c("late", "x"), _rf("r1")],
    "text-after-tool-call-new-part": [
        _rs("r1"),
        _s("a1"),
        _c("a1", "one"),
        _ts("c1", "f", "a1"),
        _te("c1", input={}),
        _c("a1", "two"),
        _rf("r1"),
    ],
    "messages-snapshot-replaces": [
        *U1,
        _rs("r1"),
        _s("a1"),
        _c("a1", "old"),
        _e("a1"),
        _rf("r1"),
        {
            "type": "MESSAGES_SNAPSHOT",
            "messages": [
                {
                    "id": "s1",
                    "role": "user",
                    "parts": [{"type": "text", "content": "from snapshot"}],
                    "createdAt": "2024-05-06T07:08:09.123Z",
                },
                {
                    "id": "s2",
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "reply"}],
                    "createdAt": "2024-05-06T07:08:10Z",
                    "metadata": {"tanstack": {"model": "m"}},
                },
            ],
        },
        _s("a3"),
        _c("a3", "after snapshot"),
        _e("a3"),
    ],
    # Continuing a message id after a snapshot starts a fresh text segment, which REPLACES
    # the message's last text part (without the snapshot, the text is appended).
    "snapshot-then-continue-same-message": [
        {
            "type": "MESSAGES_SNAPSHOT",
            "messages": [
                {"id": "a1", "role": "assistant", "parts": [{"type": "text", "content": "one. "}]}
            ],
        },
        _rs("r2"),
        _s("a1"),
        _c("a1", "two."),
        _e("a1"),
        _rf("r2"),
    ],
    # Reasoning / a parentless tool call before TEXT_MESSAGE_START go to the newest assistant
    # message with stream state: in a whole-log fold, the PREVIOUS turn's answer. (A live
    # client resets its stream state per request and does not see this; tanstack_chunks
    # opens the message first for that reason.)
    "reasoning-before-start-lands-in-previous-turn": [
        *U1,
        _rs("r1"),
        _s("a1"),
        _c("a1", "answer 1"),
        _e("a1"),
        _rf("r1"),
        *user_turn("u2", "q2"),
        _rs("r2"),
        {"type": "REASONING_MESSAGE_CONTENT", "messageId": "rs", "delta": "thinking 2"},
        _ts("c1", "f"),
        _s("a2"),
        _c("a2", "answer 2"),
        _e("a2"),
        _rf("r2"),
    ],
    # A call cut short by RUN_ERROR stays as streamed until a LATER run finishes: that run's
    # RUN_FINISHED completes the calls of every message still active, the errored one too.
    "interrupted-call-completed-by-next-run": [
        *U1,
        _rs("r1"),
        _s("a1"),
        _ts("c1", "f", "a1"),
        _ta("c1", '{"a":'),
        {"type": "RUN_ERROR", "runId": "r1", "message": "x"},
        *user_turn("u2", "again"),
        _rs("r2"),
        _s("a2"),
        _c("a2", "ok"),
        _e("a2"),
        _rf("r2"),
    ],
    "messages-snapshot-agui-wire": [
        {
            "type": "MESSAGES_SNAPSHOT",
            "messages": [
                {
                    "id": "w1",
                    "role": "user",
                    "content": [{"type": "text", "text": "look"}, {"type": "binary", "data": "x"}],
                },
                {"id": "w2-reasoning-1", "role": "reasoning", "content": "pondering"},
                {
                    "id": "w2",
                    "role": "assistant",
                    "content": "calling",
                    "toolCalls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":1}'},
                        }
                    ],
                    "metadata": {"tanstack": {"createdAt": "2024-01-02T03:04:05Z"}},
                },
                {"id": "tool-c1", "role": "tool", "toolCallId": "c1", "content": '{"ok":true}'},
                {"id": "sys", "role": "developer", "content": "be brief"},
                {"role": "user", "content": "no id"},
            ],
        },
    ],
    "tool-result-via-tool-call-end-result-is-ignored": [
        *U1,
        _rs("r1"),
        _s("a1"),
        _ts("c1", "f", "a1"),
        _ta("c1", "{}"),
        _te("c1", result='{"temp":21}'),
        _e("a1"),
        _rf("r1"),
    ],
    "tool-result-via-tool-call-result": [
        *U1,
        _rs("r1"),
        _s("a1"),
        _ts("c1", "f", "a1"),
        _ta("c1", '{"city":"Paris"}'),
        _te("c1"),
        _tr("c1", '{"tempC":21}'),
        _ts("c2", "g", "a1"),
        _te("c2", input={"x": 1.5}),
        _tr("c2", "failed hard", state="output-error"),
        _c("a1", "It is 21C."),
        _e("a1"),
        _rf("r1"),
    ],
    "tool-result-error-in-metadata": [
        _rs("r1"),
        _s("a1"),
        _ts("c1", "f", "a1"),
        _te("c1"),
        _tr("c1", '{"error":"nope"}', metadata={"tanstack": {"state": "output-error"}}),
        _rf("r1"),
    ],
    "approval-requested-custom": [
        *U1,
        _rs("r1"),
        _s("a1"),
        _ts("c1", "delete", "a1"),
        _ta("c1", '{"id":7}'),
        _te("c1"),
        {
            "type": "CUSTOM",
            "name": "approval-requested",
            "value": {
                "toolCallId": "c1",
                "toolName": "delete",
                "input": {"id": 7},
                "approval": {"id": "ap-1"},
            },
        },
        _rf("r1", "tool_calls"),
    ],
    "approval-via-interrupt-outcome": [
        *U1,
        _rs("r1"),
        _s("a1"),
        _ts("c1", "delete", "a1"),
        _ta("c1", '{"id"'),
        _rf(
            "r1",
            None,
            outcome={
                "type": "interrupt",
                "interrupts": [{"id": "int-1", "reason": "approval_required", "toolCallId": "c1"}],
            },
        ),
    ],
    "reasoning-steps-and-signatures": [
        _rs("r1"),
        {"type": "STEP_STARTED", "stepName": "s1"},
        {"type": "REASONING_MESSAGE_CONTENT", "messageId": "rz", "delta": "first"},
        {"type": "STEP_FINISHED", "stepName": "s1", "signature": "sig-1"},
        _s("a1"),
        _c("a1", "answer"),
        _e("a1"),
        {"type": "STEP_STARTED"},
        {"type": "REASONING_MESSAGE_CONTENT", "messageId": "rz", "delta": "second"},
        {
            "type": "REASONING_ENCRYPTED_VALUE",
            "subtype": "message",
            "entityId": "rz",
            "encryptedValue": "enc",
        },
        _rf("r1"),
    ],
    "structured-output": [
        _rs("r1"),
        _s("a1"),
        {"type": "CUSTOM", "name": "structured-output.start", "value": {"messageId": "a1"}},
        _c("a1", '{"a": [1, 2'),
        _c("a1", ', {"b": "x'),
        {
            "type": "CUSTOM",
            "name": "structured-output.complete",
            "value": {"object": {"a": [1, 2]}, "raw": ""},
        },
        _rf("r1"),
    ],
    "structured-output-unfinished": [
        _rs("r1"),
        _s("a1"),
        {"type": "CUSTOM", "name": "structured-output.start", "value": {}},
        _c("a1", '{"flag": tr'),
        _rf("r1"),
    ],
    "metadata-merge-and-created-at": [
        *U1,
        _rs("r1"),
        _s("a1", "tool"),
        _c("a1", "t"),
        _s(
            "a1",
            metadata={
                "tanstack": {
                    "model": "m1",
                    "createdAt": "2020-05-05T01:02:03.5+02:00",
                    "content": "dropped",
                },
                "x": 1,
            },
        ),
        _c("a1", "!", metadata={"tanstack": {"args": 1, "k": 2}}),
        _rf("r1"),
    ],
    "two-runs-finalise-once": [
        _rs("r1"),
        _rs("r2"),
        _s("a1"),
        _ts("c1", "f", "a1"),
        _c("a1", "x"),
        _rf("r1"),
        _ta("c1", "{}"),
        _rf("r2"),
    ],
    "snapshot-tool-result-anchoring": [
        *U1,
        _rs("r1"),
        _s("a1"),
        _ts("c1", "f", "a1"),
        _ta("c1", "{}"),
        _te("c1"),
        _tr("c1", '{"x":1}'),
        _rf("r1", "tool_calls"),
        {
            "type": "MESSAGES_SNAPSHOT",
            "messages": [
                {"id": "a1", "role": "assistant", "content": "", "toolCalls": []},
                {"id": "tr", "role": "tool", "toolCallId": "c1", "content": '{"x":1}'},
            ],
        },
    ],
    "ui-resource-and-tool-signature": [
        _rs("r"),
        _s("a"),
        _ts("c1", "f", "a"),
        {
            "type": "CUSTOM",
            "name": "ui-resource",
            "value": {
                "toolCallId": "c1",
                "toolName": "f",
                "serverId": "srv",
                "resource": {"uri": "ui://x", "mimeType": "text/html"},
            },
        },
        {
            "type": "REASONING_ENCRYPTED_VALUE",
            "subtype": "tool-call",
            "entityId": "c1",
            "encryptedValue": "ts",
        },
        _te("c1", metadata={"tanstack": {"input": {"k": [1, 2.0, 1e-7, 1e21]}}}),
        _rf("r"),
    ],
    # createdAt strings as `new Date(string)` reads them (offsets, day overflow, hour 24,
    # extended years, invalid ones dropped), and metadata.tanstack.createdAt as a fallback.
    "snapshot-created-at-parsing": [
        {
            "type": "MESSAGES_SNAPSHOT",
            "messages": [
                *(
                    {"id": f"d{i}", "role": "user", "parts": [], "createdAt": value}
                    for i, value in enumerate(SNAPSHOT_DATES)
                ),
                {
                    "id": "meta",
                    "role": "user",
                    "parts": [],
                    "metadata": {"tanstack": {"createdAt": "2021-01-01T00:00:00+01:00"}},
                },
            ],
        }
    ],
    "malformed-chunks": [
        {"type": "TEXT_MESSAGE_START"},
        _c(None, 5),
        _c("m", True),
        {"type": "TOOL_CALL_ARGS"},
        {"type": "TOOL_CALL_END"},
        {"type": "RUN_FINISHED"},
        {"type": "CUSTOM"},
        {"type": "CUSTOM", "name": "approval-requested", "value": {"toolCallId": "c"}},
        {"type": "MESSAGES_SNAPSHOT", "messages": "x"},
        {"type": "MESSAGES_SNAPSHOT", "messages": [None]},
        {"type": "RUN_FINISHED", "runId": "q", "outcome": {"type": "interrupt"}},
        {"type": "TOOL_CALL_RESULT", "toolCallId": "nope", "content": {"a": 1}},
        7,
        None,
        "text",
        [],
        {"type": 5},
        {"no": "type"},
    ],
}


# -- random sequences: the fold against the processor on what no one thought of -------------


def random_sequence(rng: random.Random) -> list[dict[str, Any]]:
    """Up to 25 chunks over small id pools, so messages, calls and runs collide often.

    Snapshots carry a shuffled prefix of the Python fold so far (what a replay would send).
    """
    message_ids = ["m1", "m2", "u1", None]
    call_ids = ["c1", "c2", "c3"]
    run_ids = ["r1", "r2", None]
    seq: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 25)):
        roll = rng.random()
        mid = rng.choice(message_ids)
        call = rng.choice(call_ids)
        if roll < 0.12:
            role = rng.choice(["assistant", "user", "system", "tool"])
            seq.append({"type": "TEXT_MESSAGE_START", "messageId": mid, "role": role})
        elif roll < 0.30:
            seq.append(_c(mid, rng.choice(["a", " ", "b c", "", "\n"])))
        elif roll < 0.36:
            seq.append({"type": "TEXT_MESSAGE_END", "messageId": mid})
        elif roll < 0.44:
            parent = rng.choice(["m1", "m2", None])
            seq.append(_ts(call, rng.choice(["f", "g"]), parent))
        elif roll < 0.52:
            seq.append(_ta(call, rng.choice(["{", "}", '"a":1', "", "[1"])))
        elif roll < 0.58:
            extra = (
                {"input": rng.choice([{}, {"x": 1}, None, [1], "s"])} if rng.random() < 0.3 else {}
            )
            seq.append(_te(call, **extra))
        elif roll < 0.63:
            state = {"state": "output-error"} if rng.random() < 0.3 else {}
            seq.append(_tr(call, rng.choice(['{"ok":1}', "text", "", "[1]"]), **state))
        elif roll < 0.70:
            seq.append({"type": "RUN_STARTED", "runId": rng.choice(run_ids)})
        elif roll < 0.78:
            outcome = {}
            if rng.random() < 0.15:
                interrupt = {"id": "i", "reason": "approval_required", "toolCallId": call}
                outcome = {"outcome": {"type": "interrupt", "interrupts": [interrupt]}}
            reason = rng.choice(["stop", "tool_calls", None, "length"])
            seq.append(_rf(rng.choice(run_ids), reason, **outcome))
        elif roll < 0.81:
            error: dict[str, Any] = {"type": "RUN_ERROR", "message": rng.choice(["x", ""])}
            if rng.random() < 0.5:
                error["runId"] = rng.choice(["r1", "r2"])
            seq.append(error)
        elif roll < 0.85:
            reasoning_id = rng.choice(["rs1", "rs2"])
            delta = rng.choice(["t", " "])
            seq.append(
                {"type": "REASONING_MESSAGE_CONTENT", "messageId": reasoning_id, "delta": delta}
            )
        elif roll < 0.87:
            step = {"stepName": rng.choice(["s1", "s2"])} if rng.random() < 0.8 else {}
            seq.append({"type": "STEP_STARTED", **step})
        elif roll < 0.88:
            seq.append({"type": "STEP_FINISHED", "stepName": "s1", "signature": "sig"})
        elif roll < 0.89:
            encrypted = {
                "type": "REASONING_ENCRYPTED_VALUE",
                "subtype": rng.choice(["message", "tool-call"]),
                "entityId": rng.choice([*call_ids, "rs1"]),
                "encryptedValue": "e",
            }
            seq.append(encrypted)
        elif roll < 0.92:
            value = {"toolCallId": call, "approval": {"id": "ap"}}
            seq.append({"type": "CUSTOM", "name": "approval-requested", "value": value})
        elif roll < 0.94:
            name = rng.choice(["structured-output.start", "structured-output.complete"])
            value = {"object": {"a": 1}, "raw": rng.choice(["", '{"a":1}'])}
            seq.append({"type": "CUSTOM", "name": name, "value": value})
        elif roll < 0.97:
            messages = fold_tanstack_messages(seq, now_ms=NOW_MS)
            rng.shuffle(messages)
            prefix = messages[: rng.randint(0, len(messages))]
            seq.append({"type": "MESSAGES_SNAPSHOT", "messages": prefix})
        else:
            seq.append({"type": "STATE_SNAPSHOT", "snapshot": {}})
    return seq


_RANDOM = random.Random(20260101)
RANDOM_SEQUENCES = [random_sequence(_RANDOM) for _ in range(300)]


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
    for name, sequence in EDGE_CASES.items():
        sequences[f"edge:{name}"] = sequence
    for index, sequence in enumerate(RANDOM_SEQUENCES):
        sequences[f"random:{index}"] = sequence
    for name, sequence in CONVERTER_CASES.items():
        sequences[f"converter:{name}"] = stored_turn(name, convert(sequence, message_id=name))
    names = list(sequences)
    results = run_js_fold([sequences[n] for n in names])
    return {
        "recordings": recordings,
        "sequences": sequences,
        "js": {c: dict(zip(names, rs, strict=True)) for c, rs in results.items()},
    }


def _assistant(messages: list[dict[str, Any]], message_id: str) -> dict[str, Any]:
    matches = [m for m in messages if m["id"] == message_id]
    assert len(matches) == 1, [m["id"] for m in messages]
    return matches[0]


def _parts(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [p for p in message["parts"] if p["type"] == kind]


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
    ``input`` itself, so for it ``input`` is left out of the comparison (an extra key it keeps).
    """
    for client in CLIENT_PACKAGES:
        snapshot = folded["js"][client][f"snapshot:{path.stem}"]
        full = folded["js"][client][f"full:{path.stem}"]
        assert snapshot["errors"] == [] and full["errors"] == [], client
        if client == "v010":
            assert without_tool_input(snapshot["messages"]) == full["messages"], client
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

    message = _assistant(live, f"msg-{path.stem}")
    assert message["role"] == "assistant"
    assert "".join(p["content"] for p in _parts(message, "text")) == expected["text"]
    assert "".join(p["content"] for p in _parts(message, "thinking")) == expected["reasoning"]
    calls = _parts(message, "tool-call")
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
            assert [p["content"] for p in _parts(old_message, kind)] == [
                p["content"] for p in _parts(new_message, kind)
            ]
        assert [(p["id"], p["name"], p["arguments"]) for p in _parts(old_message, "tool-call")] == [
            (p["id"], p["name"], p["arguments"]) for p in _parts(new_message, "tool-call")
        ]
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


# -- fold edge cases against the real processor -------------------------------------------------


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_fold_edge_case_equals_js(name: str, folded: dict[str, Any]) -> None:
    js = folded["js"]["ai-client"][f"edge:{name}"]
    builder = TanStackMessageBuilder(now_ms=NOW_MS).add_all(EDGE_CASES[name])
    assert_same_messages(builder.messages, js["messages"])
    assert builder.finish_reason == js["state"]["finishReason"]
    assert builder.done == js["state"]["done"]


def test_fold_equals_js_on_random_sequences(folded: dict[str, Any]) -> None:
    """300 seeded random sequences (``random_sequence``): same messages, key order and state."""
    mismatches = []
    for index, sequence in enumerate(RANDOM_SEQUENCES):
        js = folded["js"]["ai-client"][f"random:{index}"]
        builder = TanStackMessageBuilder(now_ms=NOW_MS).add_all(sequence)
        python, expected = normalise_ids(builder.messages), normalise_ids(js["messages"])
        same = python == expected and key_order(python) == key_order(expected)
        state = {"finishReason": builder.finish_reason, "done": builder.done}
        if not same or state != js["state"]:
            mismatches.append((index, sequence, python, expected))
    assert mismatches[:1] == [], f"{len(mismatches)} of {len(RANDOM_SEQUENCES)} differ"


def _edge(folded: dict[str, Any], name: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = folded["js"]["ai-client"][f"edge:{name}"]["messages"]
    return messages


def test_fold_edge_semantics(folded: dict[str, Any]) -> None:
    """What the edge cases show about the processor (checked on the JS result)."""
    created = _iso(NOW_MS)
    # RUN_FINISHED drops a whitespace-only last answer, but not after an error or when empty.
    assert [m["id"] for m in _edge(folded, "whitespace-answer-dropped")] == ["u1"]
    assert [m["id"] for m in _edge(folded, "whitespace-answer-kept-after-error")] == ["u1", "a1"]
    assert _edge(folded, "empty-answer-kept")[1] == {
        "id": "a1",
        "role": "assistant",
        "parts": [],
        "createdAt": created,
    }
    # RUN_ERROR ensures an assistant message, named by the processor.
    _user, error_message = _edge(folded, "run-error-creates-assistant")
    assert error_message["role"] == "assistant" and error_message["parts"] == []
    assert _GENERATED_ID.fullmatch(error_message["id"])
    # ...which the next TEXT_MESSAGE_START (here a user one) renames and continues.
    renamed = _edge(folded, "run-error-then-next-turn")
    assert [(m["id"], m["role"]) for m in renamed] == [("u2", "assistant"), ("a2", "assistant")]
    # A continued message id appends to the same message, as a new text part after tools.
    continued = _edge(folded, "continuation-of-message-id")[1]
    assert [p["type"] for p in continued["parts"]] == ["text", "tool-call", "text"]
    assert continued["parts"][2] == {"type": "text", "content": "Done."}
    cut = _parts(_edge(folded, "interrupted-call-completed-by-next-run")[1], "tool-call")[0]
    assert (cut["state"], cut["arguments"], "input" in cut) == ("input-complete", '{"a":', False)
    misfiled = _edge(folded, "reasoning-before-start-lands-in-previous-turn")
    assert [p["type"] for p in misfiled[1]["parts"]] == ["text", "thinking", "tool-call"]
    assert misfiled[3]["parts"] == [{"type": "text", "content": "answer 2"}]
    # MESSAGES_SNAPSHOT replaces everything before it; a continuation after it overwrites.
    assert _edge(folded, "snapshot-then-continue-same-message")[0]["parts"] == [
        {"type": "text", "content": "two."}
    ]
    assert [m["id"] for m in _edge(folded, "messages-snapshot-replaces")] == ["s1", "s2", "a3"]
    # 0.58 reads tool results from TOOL_CALL_RESULT only; TOOL_CALL_END.result is ignored.
    ignored = _edge(folded, "tool-result-via-tool-call-end-result-is-ignored")[1]["parts"]
    assert ignored == [
        {
            "type": "tool-call",
            "id": "c1",
            "name": "f",
            "arguments": "{}",
            "state": "input-complete",
            "input": {},
        }
    ]
    results = _edge(folded, "tool-result-via-tool-call-result")[1]["parts"]
    assert [(p["type"], p.get("state")) for p in results] == [
        ("tool-call", "complete"),
        ("tool-result", "complete"),
        ("tool-call", "error"),
        ("tool-result", "error"),
        ("text", None),
    ]
    assert results[0]["output"] == {"tempC": 21}
    assert results[3]["error"] == "failed hard"
    approval = _parts(_edge(folded, "approval-requested-custom")[1], "tool-call")[0]
    assert approval["state"] == "approval-requested"
    assert approval["approval"] == {"id": "ap-1", "needsApproval": True}
    interrupt = _parts(_edge(folded, "approval-via-interrupt-outcome")[1], "tool-call")[0]
    assert interrupt["approval"] == {"id": "int-1", "needsApproval": True}


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def test_fold_never_raises_and_skips_non_chunks() -> None:
    builder = TanStackMessageBuilder(now_ms=NOW_MS)
    for item in EDGE_CASES["malformed-chunks"]:
        builder.add(item)
    builder.add(b"not json")
    builder.add('{"type": "TEXT_MESSAGE_START", "messageId": "j", "role": "user"}')
    assert builder.messages[-1]["id"] == "j"


def test_fold_created_at_from_chunk_timestamps() -> None:
    chunks = [
        *user_turn("u1", "hi", timestamp=1_600_000_000_000),
        _rs("r"),
        {**_s("a1"), "timestamp": 1_600_000_000_500},
        _c("a1", "x"),
        _rf("r"),
    ]
    messages = fold_tanstack_messages(chunks, now_ms=NOW_MS, created_at_from_chunks=True)
    assert [m["createdAt"] for m in messages] == [
        "2020-09-13T12:26:40.000Z",
        "2020-09-13T12:26:40.500Z",
    ]
    # Generated ids come from the chunk's timestamp (now_ms without one), not from the clock.
    error = [_rs("r"), {"type": "RUN_ERROR", "timestamp": 5}]
    assert fold_tanstack_messages(error, now_ms=1)[0]["id"] == "msg-5-f0"
    assert fold_tanstack_messages(error, now_ms=2)[0]["id"] == "msg-5-f0"
    no_timestamp = [_rs("r"), {"type": "RUN_ERROR"}]
    assert fold_tanstack_messages(no_timestamp, now_ms=1)[0]["id"] == "msg-1-f0"


def test_fold_does_not_share_state_with_the_input() -> None:
    metadata = {"tanstack": {"model": "m"}}
    chunks = [_s("a1", metadata=metadata), _c("a1", "x")]
    messages = fold_tanstack_messages(chunks, now_ms=NOW_MS)
    metadata["tanstack"]["model"] = "changed"
    messages[0]["parts"].append({"type": "text", "content": "mine"})
    assert fold_tanstack_messages(chunks[:1], now_ms=NOW_MS)[0]["metadata"] == metadata
    assert messages[0]["metadata"] == {"tanstack": {"model": "m"}}


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

    invalid = _parts(messages("invalid-json-arguments")[1], "tool-call")[0]
    assert invalid["arguments"] == "{oops" and "input" not in invalid
    assert invalid["state"] == "input-complete"
    assert _parts(messages("nameless-call-dropped")[1], "tool-call") == []
    assert [m["id"] for m in messages("empty-stream")] == ["user-empty-stream"]
    assert messages("error-first")[1] == {
        "id": "error-first",
        "role": "assistant",
        "parts": [],
        "createdAt": _iso(NOW_MS),
    }
    cut = _parts(messages("error-after-tool-args")[1], "tool-call")[0]
    assert cut["state"] == "input-streaming"  # not closed: stays out of the next request
    thinking = _parts(messages("reasoning-text-reasoning")[1], "thinking")
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
