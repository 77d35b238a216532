"""Keep-alive comments on idle SSE responses, and the real AI SDK clients ignore them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from chat_helpers import text_answer, user_message

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from js_client import run_ui_stream_validator


@pytest.mark.parametrize("package", ["ai", "ai-v5"])
async def test_an_idle_answer_gets_keepalive_comments_the_client_ignores(
    make_chat_app: Any, package: str
) -> None:
    async with make_chat_app(keepalive_s=0.2) as app:
        app.model.chunks = text_answer(["Hello", " there", " friend."])
        app.model.hold_at = 4  # the model goes quiet after the first delta
        body = {"id": "keepalive", "messages": [user_message("hi")]}
        raw = ""
        async with app.client.stream("POST", "/api/chat", json=body) as live:
            assert live.status_code == 200
            replay = None
            async for text in live.aiter_text():
                raw += text
                comments = [line for line in raw.splitlines() if line.startswith(":")]
                if len(comments) >= 2 and replay is None:
                    # A resume works alongside, then the model speaks again.
                    async with app.client.stream("GET", "/api/chat/keepalive/stream") as replay:
                        assert replay.status_code == 200
                    app.model.gate.set()
            assert replay is not None
    comments = [line for line in raw.splitlines() if line.startswith(":")]
    assert len(comments) >= 2, raw  # SSE comments while the model was silent
    result = run_ui_stream_validator(raw, package)
    assert result["ok"], result
    assert result["displayed"]["parts"][-1]["text"] == "Hello there friend."
    assert result["error"] is None
