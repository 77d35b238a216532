"""A model's chunk or an ``on_error`` text holding UTF-16 surrogates ends its answer as usual.

A Python ``str`` can hold surrogates on their own (JSON's ``"\\ud83d"`` parses to one; a
provider that cuts text between UTF-16 units sends an emoji's halves in two deltas). UTF-8
cannot hold them. The answer used to fail at that chunk ("An error occurred."); an
``on_error`` text with one left the log without a terminal, so the replay and the next turn
waited out a lease. Now such strings are sent and stored as scalar value strings, as
JavaScript's ``TextEncoder`` makes them: a pair within one string is its character, any other
surrogate U+FFFD.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from chat_helpers import chunks_of, tanstack_user, user_message

from resumable_chat.log import RecordKind, classify, read_range

SPLIT = [
    {"type": "start", "messageId": "m1"},
    {"type": "text-start", "id": "t"},
    {"type": "text-delta", "id": "t", "delta": "cut \ud83d"},  # an emoji's halves, apart
    {"type": "text-delta", "id": "t", "delta": "\ude00 whole \ud83d\ude00"},  # a pair, in one
    {"type": "text-end", "id": "t"},
    {"type": "finish"},
]
FIXED = ["cut \ufffd", "\ufffd whole \U0001f600"]


async def _stored_chunks(basin: Any, stream: str) -> list[dict[str, Any]]:
    records = await read_range(basin, stream, 0)
    return [json.loads(r.body) for r in records if classify(r) is RecordKind.DATA]


async def test_an_answer_with_surrogates_is_sent_and_stored_whole(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        app.model.chunks = SPLIT
        response = await app.post("c1", [user_message("hi")])
        assert response.status_code == 200
        live = chunks_of(response.content.decode("utf-8", "strict"))
        assert [c["delta"] for c in live if c["type"] == "text-delta"] == FIXED
        assert live[-1] == {"type": "finish"}
        stored = await _stored_chunks(app.basin, "chat-c1")
        assert stored[1:] == live  # after the user's message: what the client saw
        history = await app.client.get("/api/chat/c1/messages")
        assert history.status_code == 200
        assert history.json()[-1]["parts"][-1]["text"] == "".join(FIXED)
        # and the chat goes on
        app.model.chunks = SPLIT[:2] + SPLIT[4:]
        assert (await app.post("c1", [user_message("again")])).status_code == 200


async def test_an_error_text_with_a_surrogate_ends_the_answer_and_the_log(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app(on_error=lambda exc: "failed on \ud83d") as app:
        app.model.chunks = SPLIT
        app.model.raise_at = 3
        response = await app.post("c1", [user_message("hi")])
        live = chunks_of(response.content.decode("utf-8", "strict"))
        assert live[-1] == {"type": "error", "errorText": "failed on \ufffd"}
        records = await read_range(app.basin, "chat-c1", 0)
        assert classify(records[-1]) is RecordKind.ERROR  # the log is closed at once
        replay = await asyncio.wait_for(app.client.get("/api/chat/c1/stream"), 5)
        assert replay.status_code == 204  # nothing running: no lease to wait out
        app.model.raise_at = None
        turn = await asyncio.wait_for(app.post("c1", [user_message("again")]), 5)
        assert turn.status_code == 200


async def test_a_tanstack_run_with_surrogates_replays_whole(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    async with make_tanstack_app() as app:
        app.model.chunks = [
            {"type": "RUN_STARTED", "runId": "r1", "threadId": "t"},
            {"type": "TEXT_MESSAGE_START", "messageId": "a1", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a1", "delta": "cut \ud83d"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a1", "delta": "\ude00 whole"},
            {"type": "TEXT_MESSAGE_END", "messageId": "a1"},
            {"type": "RUN_FINISHED", "runId": "r1", "finishReason": "stop"},
        ]
        assert (await app.post("c1", [tanstack_user("hi")])).status_code == 202
        generation = app.chat.running("tanstack-c1")
        if generation is not None:  # the 202 may come before the run's end
            await asyncio.wait_for(asyncio.shield(generation.task), 5)
        records = await read_range(app.basin, "tanstack-c1", 0)
        assert classify(records[-1]) is RecordKind.END
        # the first load: one MESSAGES_SNAPSHOT of the history
        (_, data), *_ = await app.replay_frames("c1", 1)
        snapshot = json.loads(data)
        assert snapshot["type"] == "MESSAGES_SNAPSHOT"
        assistant = snapshot["messages"][-1]
        assert assistant["parts"][0]["content"] == "cut \ufffd\ufffd whole"
