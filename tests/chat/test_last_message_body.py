"""``{id, message}`` POST bodies: the client sends only its newest message and the router
gives the source the chat's stored history with that message at its end.

This is the body the AI SDK docs give for ``prepareSendMessagesRequest`` when the server
keeps the history ("Send Custom Body from useChat"); it keeps the request small however long
the chat grows (a whole-conversation body hits ``max_body_bytes``, 1 MiB by default, once
the answers add up to it). Checked with the real ``ai`` clients (5, 6, 7) over HTTP, on every
basin, for several turns, a regenerated answer, and bad bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from helpers import user_message
from js_client import run_driver
from resumable_chat import create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router, with_history
from resumable_chat.s2 import Basin
from resumable_chat.testing.app_server import serve_app

PACKAGES = pytest.mark.parametrize("package", ["ai", "ai-v5", "ai-v7"])


@dataclass
class CountingModel:
    """Answers each turn with how many messages it was given, and keeps what it saw."""

    seen: list[list[dict[str, Any]]] = field(default_factory=list)

    async def stream(
        self, messages: list[dict[str, Any]], signal: Any
    ) -> AsyncIterator[dict[str, Any]]:
        self.seen.append(messages)
        turn = len(self.seen)
        yield {"type": "start", "messageId": f"a{turn}"}
        yield {"type": "text-start", "id": "t"}
        yield {"type": "text-delta", "id": "t", "delta": f"turn {turn} saw {len(messages)}"}
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}


@dataclass
class Served:
    base_url: str

    def log_tail(self, chars: int = 0) -> str:
        return "(served in the test process)"


@contextlib.asynccontextmanager
async def served_chat(
    basin: Basin,
) -> AsyncIterator[tuple[Served, CountingModel, httpx.AsyncClient]]:
    model = CountingModel()
    chat = create_resumable_chat(basin=basin)
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, model.stream))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        try:
            yield Served(url), model, client
        finally:
            await chat.aclose(drain_timeout_s=2)


async def send_newest_only(app: Served, package: str, **options: Any) -> dict[str, Any]:
    """The driver's ``send`` scenario on chat ``c1`` with ``--body last-message``; its result
    once the chat settled ready, without an error."""
    result = await asyncio.to_thread(
        run_driver, app, "send", package=package, chat="c1", body="last-message", **options
    )
    assert (result["status"], result["error"]) == ("ready", None)
    return result


def _ids(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["id"], m["role"]) for m in messages]


@PACKAGES
async def test_the_client_sends_its_newest_message_and_the_model_gets_the_chat(
    basin: Basin, package: str
) -> None:
    async with served_chat(basin) as (app, model, client):
        result = await send_newest_only(app, package, texts=["one", "two", "three"])
        posts = [r for r in result["requests"] if r["method"] == "POST"]
        assert [(r["status"], r["bodyKeys"]) for r in posts] == [(200, ["id", "message"])] * 3
        # each turn's model call got the whole conversation: the stored turns, then the new one
        assert [len(seen) for seen in model.seen] == [1, 3, 5]
        client_messages = result["messages"]
        for turn, seen in enumerate(model.seen):
            assert _ids(seen) == _ids(client_messages[: 2 * turn + 1])
            assert [m["parts"] for m in seen if m["role"] == "user"] == [
                m["parts"] for m in client_messages[: 2 * turn + 1] if m["role"] == "user"
            ]
        texts = [p["text"] for m in client_messages for p in m["parts"] if p["type"] == "text"]
        assert texts == ["one", "turn 1 saw 1", "two", "turn 2 saw 3", "three", "turn 3 saw 5"]
        stored = (await client.get("/api/chat/c1/messages")).json()
        assert stored == client_messages


@PACKAGES
async def test_a_regenerated_answer_replaces_the_old_one_in_what_the_model_gets(
    basin: Basin, package: str
) -> None:
    async with served_chat(basin) as (app, model, client):
        result = await send_newest_only(app, package, text="hi", regenerate=1)
        (user, old), (same_user, new) = result["firstMessages"], result["messages"]
        assert same_user == user and (old["id"], new["id"]) == ("a1", "a2")
        # the re-sent question took its own place: the old answer is not in the model's input
        assert [_ids(seen) for seen in model.seen] == [[(user["id"], "user")]] * 2
        assert (await client.get("/api/chat/c1/messages")).json() == result["messages"]


async def test_a_body_needs_messages_or_message_not_both(basin: Basin) -> None:
    async with served_chat(basin) as (_app, model, client):
        message = user_message("hi", "u1")
        for body in (
            {"id": "c1"},
            {"id": "c1", "messages": [message], "message": message},
            {"id": "c1", "message": {"id": "u1", "role": "robot", "parts": []}},
            {"id": "c1", "message": [message]},
            {"id": "c1", "messages": []},
        ):
            response = await client.post("/api/chat", json=body)
            assert response.status_code == 422, (body, response.text)
            assert "detail" in response.json()
        assert model.seen == []
        assert (await client.get("/api/chat/c1/messages")).json() == []


def test_with_history_puts_the_message_after_the_history_or_in_its_own_place() -> None:
    history = [
        user_message("one", "u1"),
        {"id": "a1", "role": "assistant", "parts": [{"type": "text", "text": "x"}]},
        user_message("two", "u2"),
        {"id": "a2", "role": "assistant", "parts": []},
    ]
    new = user_message("three", "u3")
    assert with_history(history, new) == [*history, new]
    again = user_message("two, again", "u2")
    assert with_history(history, again) == [*history[:2], again]
    continued = {"id": "a2", "role": "assistant", "parts": [{"type": "tool-x", "output": 1}]}
    assert with_history(history, continued) == [*history[:3], continued]
    assert with_history([], new) == [new]
    assert history[3]["parts"] == []  # the stored list is left as it was
