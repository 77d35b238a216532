"""The TanStack fold (``fold_tanstack_messages``) against the real ``StreamProcessor``.

Edge cases (what ``@tanstack/ai-client`` 0.58's processor does with odd sequences: repeated
starts, content without a start, tool calls under other messages, snapshots, errors, runs) and
300 random sequences over small id pools are folded by Python and by the real processor of
``@tanstack/ai-client`` 0.33.2 and 0.10.0 (:mod:`tanstack_oracle`, one node process for the
module); the messages must be equal, key order included. The conversion of OpenAI streams and
the recorded streams are tested in ``tests/sources/test_openai_tanstack.py``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from helpers import key_order, min_cpu_s
from resumable_chat.protocols.tanstack.dialect import TanStackDialect
from resumable_chat.protocols.tanstack.fold import TanStackMessageBuilder, fold_tanstack_messages
from tanstack_oracle import (
    GENERATED_ID,
    NOW_MS,
    assert_same_messages,
    fold_by_js,
    iso,
    normalise_ids,
    parts_of,
    user_turn,
)

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


# -- a user message sent again: the history fold against the client that sent it -------------
#
# `ChatClient.reload()` drops every message after the last user message and sends that message
# again (same id); the server stores its three text events again, then the new run. The history
# fold (`TanStackDialect.fold`) must show what that client shows: `{"clientCall": "reload"}` in
# the client's sequence is what reload() does to its processor (tests/js/tanstack_fold.mjs).
# Each case is (before, after): the log is before + after, the client saw before, reloaded,
# then after. Every chunk carries NOW_MS, so `createdAt` compares exactly.


def _run(run: str, mid: str, text: str) -> list[dict[str, Any]]:
    return [_rs(run), _s(mid), _c(mid, text), _e(mid), _rf(run)]


def _stamped(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**chunk, "timestamp": NOW_MS} for chunk in chunks]


RESEND_CASES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "last-turn-again": ([*U1, *_run("r1", "a1", "first")], [*U1, *_run("r2", "a2", "second")]),
    "after-an-earlier-turn": (
        [*user_turn("u0", "q0"), *_run("r0", "a0", "zero"), *U1, *_run("r1", "a1", "first")],
        [*U1, *_run("r2", "a2", "second")],
    ),
    # Sent again with other text (an edit that keeps the id): the new text replaces the old.
    "other-text": (
        [*U1, *_run("r1", "a1", "first")],
        [*user_turn("u1", "hi!"), *_run("r2", "a2", "b")],
    ),
    # The failed answer (closed as the dialect's error terminal closes it) goes too.
    "after-an-error": (
        [
            *U1,
            _rs("r1"),
            _s("a1"),
            _c("a1", "part"),
            {**_e("a1"), "metadata": {"error": "boom"}},
            {"type": "RUN_ERROR", "runId": "r1", "message": "boom"},
        ],
        [*U1, *_run("r2", "a2", "second")],
    ),
    # A RUN_ERROR before any answer makes the processor create one lazily, which the next
    # TEXT_MESSAGE_START would rename: after the resend nothing is pending any more.
    "after-an-error-without-answer": (
        [*U1, _rs("r1"), {"type": "RUN_ERROR", "runId": "r1", "message": "boom"}],
        [*U1, *_run("r2", "a2", "second")],
    ),
    # The new run reuses the old tool call id: it lands in the new answer, complete.
    "after-tool-calls": (
        [
            *U1,
            _rs("r1"),
            _s("a1"),
            _ts("c1", "f", "a1"),
            _ta("c1", "{}"),
            _te("c1"),
            _tr("c1", '{"n":1}'),
            _e("a1"),
            _rf("r1"),
        ],
        [
            *U1,
            _rs("r2"),
            _s("a2"),
            _ts("c1", "f", "a2"),
            _ta("c1", "{}"),
            _te("c1"),
            _tr("c1", '{"n":2}'),
            _c("a2", "done"),
            _e("a2"),
            _rf("r2"),
        ],
    ),
}

RESEND_EXPECTED = {
    "last-turn-again": [("u1", "hi"), ("a2", "second")],
    "after-an-earlier-turn": [("u0", "q0"), ("a0", "zero"), ("u1", "hi"), ("a2", "second")],
    "other-text": [("u1", "hi!"), ("a2", "b")],
    "after-an-error": [("u1", "hi"), ("a2", "second")],
    "after-an-error-without-answer": [("u1", "hi"), ("a2", "second")],
    "after-tool-calls": [("u1", "hi"), ("a2", "done")],
}


def _resend_log(name: str) -> list[dict[str, Any]]:
    before, after = RESEND_CASES[name]
    return _stamped([*before, *after])


def _resend_client(name: str) -> list[dict[str, Any]]:
    before, after = RESEND_CASES[name]
    return [*_stamped(before), {"clientCall": "reload"}, *_stamped(after)]


def _text(message: dict[str, Any]) -> str:
    return "".join(p["content"] for p in message["parts"] if p["type"] == "text")


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


@pytest.fixture(scope="module")
def folded() -> dict[str, Any]:
    """``{"sequences": {name: chunks}, "js": {client: {name: tanstack_fold.mjs result}}}``
    for every edge case and random sequence (ONE node process)."""
    sequences: dict[str, list[Any]] = {}
    for name, sequence in EDGE_CASES.items():
        sequences[f"edge:{name}"] = sequence
    for index, sequence in enumerate(RANDOM_SEQUENCES):
        sequences[f"random:{index}"] = sequence
    for name in RESEND_CASES:
        sequences[f"resend:{name}"] = _resend_client(name)
    return {"sequences": sequences, "js": fold_by_js(sequences)}


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
    created = iso(NOW_MS)
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
    assert GENERATED_ID.fullmatch(error_message["id"])
    # ...which the next TEXT_MESSAGE_START (here a user one) renames and continues.
    renamed = _edge(folded, "run-error-then-next-turn")
    assert [(m["id"], m["role"]) for m in renamed] == [("u2", "assistant"), ("a2", "assistant")]
    # A continued message id appends to the same message, as a new text part after tools.
    continued = _edge(folded, "continuation-of-message-id")[1]
    assert [p["type"] for p in continued["parts"]] == ["text", "tool-call", "text"]
    assert continued["parts"][2] == {"type": "text", "content": "Done."}
    cut = parts_of(_edge(folded, "interrupted-call-completed-by-next-run")[1], "tool-call")[0]
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
    approval = parts_of(_edge(folded, "approval-requested-custom")[1], "tool-call")[0]
    assert approval["state"] == "approval-requested"
    assert approval["approval"] == {"id": "ap-1", "needsApproval": True}
    interrupt = parts_of(_edge(folded, "approval-via-interrupt-outcome")[1], "tool-call")[0]
    assert interrupt["approval"] == {"id": "int-1", "needsApproval": True}


@pytest.mark.parametrize("name", list(RESEND_CASES))
def test_history_of_a_resent_user_message_is_what_the_resending_client_shows(
    name: str, folded: dict[str, Any]
) -> None:
    """The old answer is replaced by the new one, the user text is not doubled: what the
    real processor of a client that called ``reload()`` holds, key order included."""
    js = folded["js"]["ai-client"][f"resend:{name}"]
    assert js["errors"] == []
    history = TanStackDialect().fold(_resend_log(name))
    assert [(m["id"], _text(m)) for m in history] == RESEND_EXPECTED[name]
    assert_same_messages(history, js["messages"])
    assert all("error" not in m.get("metadata", {}) for m in history)


def test_history_of_an_earlier_user_message_sent_again_ends_at_its_new_answer() -> None:
    """A client that sends an earlier user message again (same id, nothing after it) had
    everything after that message removed; so does the history."""
    log = [
        *U1,
        *_run("r1", "a1", "first"),
        *user_turn("u2", "more"),
        *_run("r2", "a2", "second"),
        *user_turn("u1", "hi again"),
        *_run("r3", "a3", "third"),
    ]
    history = TanStackDialect().fold(_stamped(log))
    assert [(m["id"], _text(m)) for m in history] == [("u1", "hi again"), ("a3", "third")]


def test_resend_keeps_the_message_and_changes_nothing_for_an_unknown_id() -> None:
    builder = TanStackMessageBuilder(now_ms=NOW_MS).add_all(
        [*U1, *_run("r1", "a1", "x"), _s("a1", metadata={"k": 1})]
    )
    before = builder.messages
    assert builder.resend("nope") is False
    assert builder.resend("a1") is False  # not a user message
    assert builder.messages == before
    assert builder.resend("u1") is True
    assert builder.messages == before[:1]


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


def test_builder_neither_changes_nor_keeps_the_callers_chunks() -> None:
    """Chunks without nested objects are used as given and must come back untouched; chunks
    with nested objects are copied, so changing them after ``add`` changes no message."""
    import copy

    metadata = {"tanstack": {"model": "m"}}
    chunks = [
        _s("a1", metadata=metadata),
        _c("a1", "x"),
        _c("a1", "y", metadata={"tanstack": {"model": "n"}}),
        _c("a1", "z"),
    ]
    before = copy.deepcopy(chunks)
    builder = TanStackMessageBuilder(now_ms=NOW_MS)
    for chunk in chunks:
        builder.add(chunk)
    assert chunks == before
    expected = builder.messages
    metadata["tanstack"]["model"] = "changed"
    chunks[2]["metadata"]["tanstack"]["model"] = "changed"
    chunks[1]["delta"] = "changed"
    assert builder.messages == expected
    assert expected[0]["parts"] == [{"type": "text", "content": "xyz"}]


def _turns(count: int) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = []
    for t in range(count):
        user, answer, run = f"u{t}", f"a{t}", f"r{t}"
        chunks += [
            {"type": "TEXT_MESSAGE_START", "messageId": user, "role": "user"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": user, "delta": "question"},
            {"type": "TEXT_MESSAGE_END", "messageId": user},
            {"type": "RUN_STARTED", "runId": run, "threadId": "t"},
            {"type": "TEXT_MESSAGE_START", "messageId": answer, "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": answer, "delta": "answer"},
            {"type": "TEXT_MESSAGE_END", "messageId": answer},
            {"type": "RUN_FINISHED", "runId": run, "threadId": "t", "finishReason": "stop"},
        ]
    return chunks


def test_history_fold_time_grows_with_the_history_not_its_square() -> None:
    """A chat's snapshot folds its whole log on every load: eight times the turns take about
    eight times as long (each message lookup scanned the history: sixty times as long)."""
    dialect = TanStackDialect()

    short, long = _turns(250), _turns(2000)
    assert len(dialect.fold(long)) == 4000
    assert min_cpu_s(lambda: dialect.fold(long)) / min_cpu_s(lambda: dialect.fold(short)) < 20
