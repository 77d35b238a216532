"""A TanStack user message with attachments, stored and read back.

The stored form keeps the message's parts (the history gives them back), and the events the
sending client receives again leave its own copy of the message as it was, checked against
the real ``StreamProcessor`` of ``@tanstack/ai-client`` 0.33 and 0.10.
"""

from __future__ import annotations

from typing import Any

import pytest

from resumable_chat.protocols.tanstack.dialect import TanStackDialect, user_message_events
from tanstack_oracle import run_js_fold

IMAGE = {"type": "image", "source": {"type": "data", "value": "aGk=", "mimeType": "image/png"}}
PDF = {"type": "document", "source": {"type": "url", "value": "https://x/a.pdf"}}
T0 = 1_700_000_000_000


def _text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


#: User messages' parts in every order that matters to the client's text update.
PARTS = {
    "text then image": [_text("look"), IMAGE],
    "image then text": [IMAGE, _text("look")],
    "two texts around an image": [_text("a"), IMAGE, _text("b")],
    "image and document only": [IMAGE, PDF],
    "text only": [_text("just words")],
}


def _run(t: int) -> list[dict[str, Any]]:
    """An assistant answer "ok" in one run."""
    ids = {"runId": "r1", "threadId": "c1"}
    return [
        {"type": "RUN_STARTED", "timestamp": t, **ids},
        {"type": "TEXT_MESSAGE_START", "timestamp": t, "messageId": "a1", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "timestamp": t, "messageId": "a1", "delta": "ok"},
        {"type": "TEXT_MESSAGE_END", "timestamp": t, "messageId": "a1"},
        {"type": "RUN_FINISHED", "timestamp": t, "finishReason": "stop", **ids},
    ]


@pytest.mark.parametrize("parts", PARTS.values(), ids=PARTS.keys())
def test_the_history_gives_the_message_back_with_all_its_parts(parts: list[Any]) -> None:
    stored = user_message_events({"id": "u1", "role": "user", "parts": parts}, T0) + _run(T0)
    messages = TanStackDialect().fold(stored)
    assert [(m["role"], m["parts"]) for m in messages] == [
        ("user", parts),
        ("assistant", [_text("ok")]),
    ]


def test_a_text_only_message_is_stored_as_the_reference_stores_it() -> None:
    events = user_message_events({"id": "u1", "role": "user", "parts": [_text("hi")]}, T0)
    assert events == [
        {"type": "TEXT_MESSAGE_START", "timestamp": T0, "messageId": "u1", "role": "user"},
        {"type": "TEXT_MESSAGE_CONTENT", "timestamp": T0, "messageId": "u1", "delta": "hi"},
        {"type": "TEXT_MESSAGE_END", "timestamp": T0, "messageId": "u1"},
    ]


def test_a_resent_message_without_attachments_loses_them_in_the_history() -> None:
    """``reload()`` sends the last user message again, same id: the newest form wins."""
    first = user_message_events({"id": "u1", "role": "user", "parts": [_text("a"), IMAGE]}, T0)
    again = user_message_events({"id": "u1", "role": "user", "parts": [_text("a")]}, T0 + 5)
    messages = TanStackDialect().fold(first + _run(T0) + again + _run(T0 + 5))
    assert messages[0]["parts"] == [_text("a")]
    assert len(messages) == 2


def test_the_sending_client_keeps_its_message_as_it_was() -> None:
    """The sender holds its message (a snapshot stands in for ``sendMessage``'s local copy)
    and then receives the stored events of the turn: its message must not change (a CONTENT
    event after an attachment would append the text a second time). A client that starts
    from the stored events alone (one joining the running answer) gets the text when the
    text is the message's only and last part."""
    sequences = []
    for parts in PARTS.values():
        message = {
            "id": "u1",
            "role": "user",
            "parts": parts,
            "createdAt": "2023-11-14T22:13:20.000Z",
        }
        events = user_message_events(message, T0) + _run(T0 + 1)
        sequences.append(
            [{"type": "MESSAGES_SNAPSHOT", "timestamp": T0, "messages": [message]}, *events]
        )
        sequences.append(events)
    results = run_js_fold(sequences)
    for client, folds in results.items():
        for index, parts in enumerate(PARTS.values()):
            sender, joiner = folds[2 * index], folds[2 * index + 1]
            assert not sender["errors"] and not joiner["errors"], (client, sender, joiner)
            assert sender["messages"][0]["parts"] == parts, (client, parts, sender["messages"])
            texts = [p for p in parts if p["type"] == "text"]
            expected = texts if texts and parts[-1] is texts[0] and len(texts) == 1 else []
            if len(parts) == 1:  # text only
                expected = parts
            assert joiner["messages"][0]["parts"] == expected, (client, parts, joiner["messages"])
