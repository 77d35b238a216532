"""The README's access-control example runs as written and does what it says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from resumable_chat.testing.app_server import serve_app

README = Path(__file__).resolve().parents[2] / "README.md"


def code_after(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under {heading!r}"
    return match.group(1)


async def test_readme_access_example(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("S2_ACCESS_TOKEN", "S2_BASIN"):
        monkeypatch.delenv(name, raising=False)
    namespace: dict[str, Any] = {}  # the snippet runs on its own: it has its own source
    exec(compile(code_after("## Access control and bad input"), "README.md", "exec"), namespace)
    chat = namespace["chat"]
    body = {"id": "c1", "messages": [{"id": "u", "role": "user", "parts": []}]}
    async with (
        serve_app(namespace["app"]) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        assert (await client.post("/api/chat", json=body)).status_code == 401
        ok = await client.post("/api/chat", json=body, headers={"x-user": "alice"})
        assert ok.status_code == 200
        generation = chat.running("chat-c1")
        if generation is not None:
            await generation.task  # persisted
        other = await client.get("/api/chat/c1/messages", headers={"x-user": "bob"})
        assert other.status_code == 404
        mine = await client.get("/api/chat/c1/messages", headers={"x-user": "alice"})
        assert [m["role"] for m in mine.json()] == ["user", "assistant"]
        assert mine.json()[1]["parts"][-1]["text"] == "Hello!"
    assert chat.basin.inner.stream_names() == ["support-bot/chat-c1"]
    await chat.aclose()
