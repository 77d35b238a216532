"""The README's quick start runs as written, with the real openai SDK against a local model.

A tiny OpenAI-compatible server on 127.0.0.1 streams a recorded chat-completions response;
``OPENAI_BASE_URL`` points the quick start's ``AsyncOpenAI()`` at it.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from resumable_chat.testing.app_server import serve_app

ROOT = Path(__file__).resolve().parents[1]

ANSWER = ["Hello", " from", " a", " local", " model."]


def fake_openai() -> Starlette:
    """``POST /v1/chat/completions`` streaming ANSWER as chat.completion.chunk events."""

    async def completions(request: Request) -> StreamingResponse:
        body = await request.json()
        assert body["stream"] is True and body["messages"][-1]["role"] == "user"

        async def events() -> Any:
            base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
            for word in ANSWER:
                chunk = {**base, "choices": [{"index": 0, "delta": {"content": word}}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


def quick_start_code(heading: str = "## Quick start") -> str:
    """The first ``python`` code block after ``heading`` in the README."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"the README has no code block under {heading!r}"
    return match.group(1)


async def test_readme_quick_start(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("S2_ACCESS_TOKEN", "S2_BASIN"):
        monkeypatch.delenv(name, raising=False)
    async with serve_app(fake_openai()) as model_url:
        monkeypatch.setenv("OPENAI_BASE_URL", model_url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        namespace: dict[str, Any] = {}
        exec(compile(quick_start_code(), "README.md", "exec"), namespace)
        async with serve_app(namespace["app"]) as url, httpx.AsyncClient(base_url=url) as client:
            message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
            response = await client.post("/api/chat", json={"id": "q", "messages": [message]})
            assert response.status_code == 200
            chunks = [
                json.loads(line[6:])
                for line in response.text.splitlines()
                if line.startswith("data: {")
            ]
            text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
            assert text == "".join(ANSWER)
            assert chunks[-1]["type"] == "finish"
            await namespace["chat"].aclose()


async def test_readme_tanstack_section(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TanStack AI section's code, added to the quick start, serves the session routes."""
    for name in ("S2_ACCESS_TOKEN", "S2_BASIN"):
        monkeypatch.delenv(name, raising=False)
    async with serve_app(fake_openai()) as model_url:
        monkeypatch.setenv("OPENAI_BASE_URL", model_url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        namespace: dict[str, Any] = {}
        exec(compile(quick_start_code(), "README.md", "exec"), namespace)
        exec(compile(quick_start_code("## TanStack AI"), "README.md", "exec"), namespace)
        async with serve_app(namespace["app"]) as url, httpx.AsyncClient(base_url=url) as client:
            message = {"id": "u1", "role": "user", "parts": [{"type": "text", "content": "hi"}]}
            body = {"id": "q", "messages": [message]}
            response = await client.post("/api/tanstack/chat", json=body)
            assert response.status_code == 202
            chunks: list[dict[str, Any]] = []
            params = {"id": "q", "from": "0"}
            async with client.stream("GET", "/api/tanstack/chat/replay", params=params) as live:
                async for line in live.aiter_lines():
                    if line.startswith("data: "):
                        chunks.append(json.loads(line[6:]))
                        if chunks[-1]["type"] in ("RUN_FINISHED", "RUN_ERROR"):
                            break
            assert chunks[0] == {**chunks[0], "type": "TEXT_MESSAGE_START", "role": "user"}
            assert chunks[-1]["type"] == "RUN_FINISHED"
            assert chunks[-1]["finishReason"] == "stop"
            deltas = [c["delta"] for c in chunks[3:] if c["type"] == "TEXT_MESSAGE_CONTENT"]
            assert "".join(deltas) == "".join(ANSWER)
            await namespace["tanstack_chat"].aclose()
            await namespace["chat"].aclose()


async def test_readme_generic_streams_section(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("S2_ACCESS_TOKEN", "S2_BASIN"):
        monkeypatch.delenv(name, raising=False)
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Generic text streams") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)
    async with serve_app(namespace["app"]) as url, httpx.AsyncClient(base_url=url) as client:
        created = await client.post("/jobs/j1")
        assert created.status_code == 200
        assert created.text == "data: one\n\ndata: two\n\n"
        for _ in range(100):  # the terminal fence lands after the default 500 ms linger
            if await namespace["ctx"].has_existing_stream("j1") == "done":
                break
            await asyncio.sleep(0.05)
        assert (await client.get("/jobs/j1")).status_code == 422
    await namespace["ctx"].aclose()


async def test_readme_several_instances_section(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("S2_ACCESS_TOKEN", "S2_BASIN"):
        monkeypatch.delenv(name, raising=False)
    namespace: dict[str, Any] = {}
    exec(compile(quick_start_code("## Several instances"), "README.md", "exec"), namespace)
    chat = namespace["chat"]
    assert (chat.lease_ms, chat.heartbeat_ms, chat.keepalive_s) == (5000, 1000, 15)
    await chat.aclose()


async def test_readme_tanstack_stock_adapter_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The quick start, the TanStack block and the stock-adapter block run together, and
    ``POST /api/agui`` streams the durable run."""
    for name in ("S2_ACCESS_TOKEN", "S2_BASIN"):
        monkeypatch.delenv(name, raising=False)
    async with serve_app(fake_openai()) as model_url:
        monkeypatch.setenv("OPENAI_BASE_URL", model_url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        namespace: dict[str, Any] = {}
        for heading in ("## Quick start", "## TanStack AI", "### TanStack AI with the stock"):
            exec(compile(quick_start_code(heading), "README.md", "exec"), namespace)
        async with serve_app(namespace["app"]) as url, httpx.AsyncClient(base_url=url) as client:
            body = {"threadId": "q", "messages": [{"id": "u1", "role": "user", "content": "hi"}]}
            response = await client.post("/api/agui", json=body, headers={"X-Run-Id": "run-q"})
            assert response.status_code == 200
            lines = response.text.splitlines()
            chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
            assert sum(line.startswith("id: ") for line in lines) == len(chunks)
            assert chunks[0]["name"] == "run.accepted"
            text = "".join(c["delta"] for c in chunks if c["type"] == "TEXT_MESSAGE_CONTENT")
            assert text == "".join(ANSWER)
            assert (chunks[-1]["type"], chunks[-1]["runId"]) == ("RUN_FINISHED", "run-q")
            hydrated = (await client.get("/api/agui", params={"threadId": "q"})).json()
            assert [m["role"] for m in hydrated["messages"]] == ["user", "assistant"]
            await namespace["chat"].aclose()
            await namespace["tanstack_chat"].aclose()
