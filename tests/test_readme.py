"""Every Python snippet of the README runs on its own, as written, and does what it says.

Each snippet is executed standalone, in a fresh namespace (never after another one), with the
real openai SDK against a local model: a tiny OpenAI-compatible server on 127.0.0.1 streams a
recorded chat-completions response, and ``OPENAI_BASE_URL`` points ``AsyncOpenAI()`` at it.
The install line names extras that exist and include what the quick start needs.
"""

from __future__ import annotations

import asyncio
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from helpers import ANSWER, openai_chat_events, tanstack_run_chunks
from resumable_chat import ResumableChat
from resumable_chat.testing.app_server import serve_app
from resumable_chat.text_streams.context import ResumableStreamContext

ROOT = Path(__file__).resolve().parents[1]


def fake_openai() -> Starlette:
    """``POST /v1/chat/completions`` streaming ANSWER as chat.completion.chunk events."""

    async def completions(request: Request) -> StreamingResponse:
        body = await request.json()
        assert body["stream"] is True and body["messages"][-1]["role"] == "user"

        async def events() -> Any:
            for event in openai_chat_events(ANSWER):
                yield event

        return StreamingResponse(events(), media_type="text/event-stream")

    async def responses(request: Request) -> StreamingResponse:
        body = await request.json()
        assert body["stream"] is True and body["input"][-1]["role"] == "user"

        async def events() -> Any:
            seq = iter(range(100))
            head = {"id": "resp_1", "object": "response", "model": "m", "output": []}
            yield _sse({"type": "response.created", "sequence_number": next(seq), "response": head})
            for word in ANSWER:
                delta = {"type": "response.output_text.delta", "item_id": "msg_1"}
                delta |= {"output_index": 0, "content_index": 0, "delta": word, "logprobs": []}
                yield _sse({**delta, "sequence_number": next(seq)})
            usage = {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}
            done = {**head, "status": "completed", "usage": usage}
            yield _sse(
                {"type": "response.completed", "sequence_number": next(seq), "response": done}
            )

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
        ]
    )


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"


def quick_start_code(heading: str = "## Quick start") -> str:
    """The first ``python`` code block after ``heading`` in the README."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"the README has no code block under {heading!r}"
    return match.group(1)


def python_snippets() -> list[tuple[str, str]]:
    """Every ``python`` block of the README as ``(id, code)``; the id is its heading and line."""
    readme = (ROOT / "README.md").read_text()
    snippets = []
    for match in re.finditer(r"^```python\n(.*?)^```", readme, re.S | re.M):
        before = readme[: match.start()]
        headings = re.findall(r"^#+ (.+)$", before, re.M)
        line = before.count("\n") + 1
        snippets.append((f"{headings[-1] if headings else 'top'} (line {line})", match.group(1)))
    return snippets


SNIPPETS = python_snippets()


@pytest.mark.parametrize("code", [c for _, c in SNIPPETS], ids=[i for i, _ in SNIPPETS])
async def test_every_snippet_runs_on_its_own(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No snippet needs another one before it (no ``NameError`` when pasted alone); an
    ``app`` it builds starts (its routers' start-up check included)."""
    for name in ("S2_ACCESS_TOKEN", "S2_BASIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # never called here
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    if "app" in namespace:
        async with serve_app(namespace["app"]):
            pass
    for value in namespace.values():
        if isinstance(value, ResumableChat | ResumableStreamContext):
            await value.aclose()


def test_the_install_line_names_extras_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Install") : readme.index("## Quick start")]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    named = set(re.findall(r"(?:resumable-chat|\.whl)\[([a-z]+)\]", section))
    assert named and named <= set(extras), named
    table = set(re.findall(r"^\| `([a-z-]+)` \|", section, re.M))
    assert table == set(extras), (table, set(extras))  # every extra has a row
    quick_start = quick_start_code()
    for package in ("openai", "uvicorn"):  # what the quick start imports and runs on
        assert any(dep.startswith(package) for dep in extras["openai"]), package
    assert "from openai import" in quick_start and "uvicorn app:app" in readme


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


async def test_readme_responses_api_section(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("S2_ACCESS_TOKEN", "S2_BASIN"):
        monkeypatch.delenv(name, raising=False)
    async with serve_app(fake_openai()) as model_url:
        monkeypatch.setenv("OPENAI_BASE_URL", model_url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        namespace: dict[str, Any] = {}
        code = quick_start_code("### With the OpenAI Responses API")
        exec(compile(code, "README.md", "exec"), namespace)
        async with serve_app(namespace["app"]) as url, httpx.AsyncClient(base_url=url) as client:
            message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
            response = await client.post("/api/chat", json={"id": "r", "messages": [message]})
            assert response.status_code == 200
            chunks = [
                json.loads(line[6:])
                for line in response.text.splitlines()
                if line.startswith("data: {")
            ]
            text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
            assert text == "".join(ANSWER)
            # (no finishReason: ai 5.0.0 to 5.0.91 reject it; AiSdkDialect.client_form)
            assert chunks[-1]["type"] == "finish" and "finishReason" not in chunks[-1]
            assert chunks[-1]["messageMetadata"]["usage"]["totalTokens"] == 8
            await namespace["chat"].aclose()


async def test_readme_tanstack_section(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TanStack AI section's code, on its own, serves the session routes."""
    for name in ("S2_ACCESS_TOKEN", "S2_BASIN"):
        monkeypatch.delenv(name, raising=False)
    async with serve_app(fake_openai()) as model_url:
        monkeypatch.setenv("OPENAI_BASE_URL", model_url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        namespace: dict[str, Any] = {}
        exec(compile(quick_start_code("## TanStack AI"), "README.md", "exec"), namespace)
        async with serve_app(namespace["app"]) as url, httpx.AsyncClient(base_url=url) as client:
            message = {"id": "u1", "role": "user", "parts": [{"type": "text", "content": "hi"}]}
            body = {"id": "q", "messages": [message]}
            response = await client.post("/api/tanstack/chat", json=body)
            assert response.status_code == 202
            chunks = await tanstack_run_chunks(client, "q")
            assert chunks[0] == {**chunks[0], "type": "TEXT_MESSAGE_START", "role": "user"}
            assert chunks[-1]["type"] == "RUN_FINISHED"
            assert chunks[-1]["finishReason"] == "stop"
            deltas = [c["delta"] for c in chunks[3:] if c["type"] == "TEXT_MESSAGE_CONTENT"]
            assert "".join(deltas) == "".join(ANSWER)
            await namespace["tanstack_chat"].aclose()


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
    """The stock-adapter block, on its own: ``POST /api/agui`` streams the durable run."""
    for name in ("S2_ACCESS_TOKEN", "S2_BASIN"):
        monkeypatch.delenv(name, raising=False)
    async with serve_app(fake_openai()) as model_url:
        monkeypatch.setenv("OPENAI_BASE_URL", model_url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        namespace: dict[str, Any] = {}
        heading = "### TanStack AI with the stock"
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
            await namespace["tanstack_chat"].aclose()
