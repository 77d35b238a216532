"""The AI SDK route answers a message once: a second copy of a ``submit-message`` request
(two tabs, one turn sent to two instances, a client's retry) gets 409 even after the first
one's answer has ended, while ``regenerate-message`` and new messages are answered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from helpers import user_message
from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router
from resumable_chat.log import Ownership
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.app_server import serve_app

pytestmark = pytest.mark.timeout(30)


async def model(
    messages: list[dict[str, Any]], signal: StopSignal
) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "start"}
    yield {"type": "text-start", "id": "t"}
    yield {"type": "text-delta", "id": "t", "delta": f"answer to {len(messages)} messages"}
    yield {"type": "text-end", "id": "t"}
    yield {"type": "finish"}


def app_on(basin: MemoryBasin) -> FastAPI:
    """An instance of the app: its own chat (own ownership registry) on the shared basin."""
    app = FastAPI()
    chat = create_resumable_chat(protocol="ai-sdk", basin=basin, ownership=Ownership())
    app.include_router(ai_sdk_router(chat, model, check_storage=False))
    return app


async def test_a_submitted_message_is_answered_once_on_any_instance() -> None:
    basin = MemoryBasin()
    async with (
        serve_app(app_on(basin)) as url_a,
        serve_app(app_on(basin)) as url_b,
        httpx.AsyncClient(timeout=10) as client,
    ):
        # as DefaultChatTransport sends it (a custom body without the trigger cannot be
        # told from a regenerate, and is answered)
        first = {"id": "c1", "messages": [user_message("hi", "u1")], "trigger": "submit-message"}
        answered = await client.post(f"{url_a}/api/chat", json=first)
        assert answered.status_code == 200 and "[DONE]" in answered.text
        for url in (url_a, url_b):  # the same request again, on either instance
            duplicate = await client.post(f"{url}/api/chat", json=first)
            assert (duplicate.status_code, duplicate.text) == (409, "Stream already in use")

        regenerate = {**first, "trigger": "regenerate-message", "messageId": "u1"}
        again = await client.post(f"{url_b}/api/chat", json=regenerate)
        assert again.status_code == 200 and "[DONE]" in again.text
        custom = {"id": "c1", "message": user_message("hi", "u1")}  # no trigger
        assert (await client.post(f"{url_a}/api/chat", json=custom)).status_code == 200

        history = (await client.get(f"{url_a}/api/chat/c1/messages")).json()
        second = {"id": "c1", "messages": [*history, user_message("more", "u2")]}
        assert (await client.post(f"{url_a}/api/chat", json=second)).status_code == 200
        roles = [m["role"] for m in (await client.get(f"{url_b}/api/chat/c1/messages")).json()]
        assert roles == ["user", "assistant", "user", "assistant"]
