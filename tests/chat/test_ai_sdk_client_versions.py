"""Every ``ai`` 5.x and 6.x client accepts what the ``ai-sdk`` chat sends, down to 5.0.0.

``ai`` 5.0.0 to 5.0.91 parse each chunk with strict schemas whose ``finish`` has no
``finishReason``, so an answer ending ``{"type":"finish","finishReason":"stop"}`` (what the
sources and the AI SDK's own ``toUIMessageStream`` of later versions send) failed there with
"Type validation failed". The dialect sends ``finish`` without it to ``ai`` 5 and 6 clients and
keeps it for ``ai`` 7 (``AiSdkDialect.client_form``). Checked with the real clients: ``ai``
6.0.x, 5.0.277 and 5.0.0 (``tests/js``).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from chat_helpers import chunks_of, text_answer, user_message

from helpers import all_stored, recordings
from js_client import run_ui_stream_validator_batch
from resumable_chat.protocols.ai_sdk.dialect import AiSdkDialect
from resumable_chat.sources import ai_sdk_chunks, openai_chunks_from_jsonl

FIXTURES, RECORDINGS, _ = recordings("openai-streams")
#: The newest 6.x, the newest 5.x and the first 5.x release.
CLIENTS = ("ai", "ai-v5", "ai-v5-0")


def test_finish_goes_out_without_finish_reason_to_ai_5_and_6_clients() -> None:
    finish = {"type": "finish", "finishReason": "stop", "messageMetadata": {"model": "m"}}
    for version in (5, 6):
        dialect = AiSdkDialect(version)
        assert dialect.client_form(finish) == {"type": "finish", "messageMetadata": {"model": "m"}}
        assert finish["finishReason"] == "stop", "the source's chunk is not changed"
        delta = {"type": "text-delta", "id": "t", "delta": "x"}
        assert dialect.client_form(delta) is delta
        plain = {"type": "finish"}
        assert dialect.client_form(plain) is plain
    assert AiSdkDialect(7).client_form(finish) is finish


async def test_recorded_answers_through_the_chat_reach_every_ai_5_and_6_client(
    make_chat_app,  # type: ignore[no-untyped-def]
) -> None:
    if not RECORDINGS:
        pytest.skip(f"recorded streams not found at {FIXTURES} (../shared is absent)")
    bodies: list[str] = []
    async with make_chat_app() as app:
        for k, path in enumerate(RECORDINGS):
            source = openai_chunks_from_jsonl(path)
            app.model.chunks = [c async for c in ai_sdk_chunks(source, message_id=f"a{k}")]
            response = await app.post(f"c{k}", [user_message("hi")])
            assert response.status_code == 200, path.name
            sent = chunks_of(response.text)
            finishes = [c for c in sent if c["type"] == "finish"]
            assert all("finishReason" not in c for c in finishes), path.name
            bodies.append(response.text)
    results = run_ui_stream_validator_batch(bodies, packages=CLIENTS)
    for package in CLIENTS:
        for path, body, result in zip(RECORDINGS, bodies, results[package], strict=True):
            assert result["ok"], (package, path.name, result["error"])
            texts = [
                json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")
            ]
            sent_text = "".join(c["delta"] for c in texts if c["type"] == "text-delta")
            shown = "".join(
                p.get("text", "") for p in result["message"]["parts"] if p["type"] == "text"
            )
            assert shown == sent_text, (package, path.name)


async def test_history_leaves_a_running_answer_to_the_resume(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    """``GET /messages`` mid-answer holds the question but not the partial answer: a client
    seeded with it and resuming gets the answer once, whichever ``ai`` version it runs."""
    async with make_chat_app() as app:
        app.model.chunks = text_answer(["a ", "b ", "c "], message_id="a1")
        app.model.hold_at = 4  # after "a "
        question = user_message("hi")
        post = asyncio.create_task(app.post("c1", [question]))
        await app.model.reached_hold.wait()
        await all_stored(app.chat, "chat-c1")  # "a " is in the log
        running = (await app.client.get("/api/chat/c1/messages")).json()
        assert running == [question]
        with_answer = await app.chat.load_messages("chat-c1", include_running=True)
        assert [m["role"] for m in with_answer] == ["user", "assistant"]
        assert with_answer[1]["parts"][-1]["text"] == "a "
        generation = app.chat.running("chat-c1")
        assert generation is not None
        app.model.gate.set()
        assert (await post).status_code == 200
        await generation.task  # the log is complete
        done = (await app.client.get("/api/chat/c1/messages")).json()
        assert [m["role"] for m in done] == ["user", "assistant"]
        assert done[1]["parts"][-1]["text"] == "a b c "
