"""pydantic-ai agents as resumable sources (``resumable_chat.sources.pydantic_ai``).

The agents run on pydantic-ai's ``TestModel`` / ``FunctionModel`` (no network) behind the real
``ai_sdk_router`` on uvicorn. A client that resumes mid-answer must end with the same message
as the live one (both assembled by the real ``ai`` client), and a stop must cancel the run.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from helpers import eventually, parse_sse, user_message
from js_client import TANSTACK_DRIVER, run_driver, run_ui_stream_validator_batch
from resumable_chat import create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router, tanstack_router
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.app_server import serve_app

pydantic_ai = pytest.importorskip("pydantic_ai")
from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.messages import ModelMessage  # noqa: E402
from pydantic_ai.models.function import AgentInfo, FunctionModel  # noqa: E402
from pydantic_ai.models.test import TestModel  # noqa: E402

from resumable_chat.sources.pydantic_ai import ai_sdk_agent_source  # noqa: E402

WORDS = [f"word{i} " for i in range(40)]


def slow_model(state: dict[str, Any]) -> FunctionModel:
    """Streams WORDS with a pause between them; records whether it was cancelled."""

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        try:
            for word in WORDS:
                state["sent"] = state.get("sent", 0) + 1
                if state["sent"] == state.get("mark", -1):
                    state["reached"].set()
                yield word
                await asyncio.sleep(state.get("pause", 0.01))
        except (asyncio.CancelledError, GeneratorExit):
            state["cancelled"] = True
            raise

    return FunctionModel(stream_function=stream)


def sse_chunks(text: str) -> list[str]:
    return [data for _, data in parse_sse(text)]


async def test_a_resumed_client_ends_with_the_live_message() -> None:
    state: dict[str, Any] = {"mark": 10, "reached": asyncio.Event()}
    agent = Agent(slow_model(state))

    @agent.tool_plain
    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    chat = create_resumable_chat(protocol="ai-sdk", basin=MemoryBasin())
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, ai_sdk_agent_source(agent)))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        body = {"id": "p1", "messages": [user_message("weather?")]}

        async def live() -> str:
            response = await client.post("/api/chat", json=body)
            assert response.status_code == 200
            return response.text

        live_task = asyncio.create_task(live())
        await state["reached"].wait()  # mid-answer
        resumed = await client.get("/api/chat/p1/stream")
        assert resumed.status_code == 200
        live_text = await live_task
        history = (await client.get("/api/chat/p1/messages")).json()
    await chat.aclose()

    results = run_ui_stream_validator_batch([live_text, resumed.text])
    for package, (live_result, resumed_result) in results.items():
        assert live_result["ok"], (package, live_result["error"])
        assert resumed_result["ok"], (package, resumed_result["error"])
        assert resumed_result["message"] == live_result["message"]
        text = "".join(p["text"] for p in live_result["message"]["parts"] if p["type"] == "text")
        assert text == "".join(WORDS)
    assert history[-1]["id"] == live_result["message"]["id"]
    assert "".join(p.get("text", "") for p in history[-1]["parts"]) == "".join(WORDS)


async def test_tool_calls_of_an_agent_reach_the_client() -> None:
    agent = Agent(TestModel(custom_output_text="Done."))

    @agent.tool_plain
    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    chat = create_resumable_chat(protocol="ai-sdk", basin=MemoryBasin())
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, ai_sdk_agent_source(agent)))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        response = await client.post(
            "/api/chat", json={"id": "p2", "messages": [user_message("weather?")]}
        )
    await chat.aclose()
    (result,) = run_ui_stream_validator_batch([response.text], packages=("ai",))["ai"]
    assert result["ok"], result["error"]
    parts = result["message"]["parts"]
    (tool,) = [p for p in parts if p["type"] == "tool-get_weather"]
    assert tool["state"] == "output-available" and tool["output"].startswith("sunny in")
    assert [p["text"] for p in parts if p["type"] == "text"] == ["Done."]


async def test_a_stop_cancels_the_agent_run() -> None:
    state: dict[str, Any] = {"pause": 0.05, "mark": 3, "reached": asyncio.Event()}
    chat = create_resumable_chat(protocol="ai-sdk", basin=MemoryBasin())
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, ai_sdk_agent_source(Agent(slow_model(state)))))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        body = {"id": "p3", "messages": [user_message("go")]}
        live_task = asyncio.create_task(client.post("/api/chat", json=body))
        await state["reached"].wait()
        stop = await client.delete("/api/chat/p3/stream")
        assert stop.status_code == 202
        live = await live_task
    await chat.aclose()
    chunks = sse_chunks(live.text)
    assert chunks[-1] == "[DONE]"
    assert json.loads(chunks[-2]) == {"type": "abort"}
    assert state.get("cancelled") is True
    assert state["sent"] < len(WORDS)


async def test_a_tanstack_run_is_one_assistant_message_with_the_tool_call() -> None:
    pytest.importorskip("ag_ui")
    from resumable_chat.sources.pydantic_ai import tanstack_agent_source

    agent = Agent(TestModel(custom_output_text="Done."))

    @agent.tool_plain
    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    chat = create_resumable_chat(protocol="tanstack", basin=MemoryBasin())
    app = FastAPI()
    app.include_router(tanstack_router(chat, tanstack_agent_source(agent)))
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "content": "weather?"}]}
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        posted = await client.post("/api/tanstack/chat", json={"id": "t1", "messages": [user]})
        assert posted.status_code == 202  # the run goes on in the background

        async def answered() -> list[dict[str, Any]] | None:
            messages: list[dict[str, Any]] = (
                await client.get("/api/tanstack/chat/t1/messages")
            ).json()
            if len(messages) != 2:
                return None
            texts = [p["content"] for p in messages[1]["parts"] if p["type"] == "text"]
            return messages if texts == ["Done."] else None  # the run has ended

        await eventually(answered)
        history = await answered()
        assert history is not None
    await chat.aclose()
    assert [m["role"] for m in history] == ["user", "assistant"]
    parts = history[1]["parts"]
    (call,) = [p for p in parts if p["type"] == "tool-call"]
    assert call["name"] == "get_weather" and call["state"] == "complete"
    assert [p["content"] for p in parts if p["type"] == "tool-result"] == ["sunny in a"]
    assert [p["content"] for p in parts if p["type"] == "text"] == ["Done."]


@dataclass
class _Served:
    base_url: str

    def log_tail(self, chars: int = 0) -> str:
        return "(served in-process: see the captured log)"


async def _tanstack_client(url: str, scenario: str, **options: Any) -> dict[str, Any]:
    """One scenario of the real ``@tanstack/ai-client`` driver against the app at ``url``
    (in a thread: the app is served on this test's event loop)."""
    return await asyncio.to_thread(
        run_driver,
        _Served(url),
        scenario,
        script=TANSTACK_DRIVER,
        package="@tanstack/ai-client",
        **options,
    )


def _tanstack_app(agent: Agent[Any, Any]) -> tuple[FastAPI, Any]:
    pytest.importorskip("ag_ui")
    from resumable_chat.sources.pydantic_ai import tanstack_agent_source

    chat = create_resumable_chat(protocol="tanstack", basin=MemoryBasin())
    app = FastAPI()
    app.include_router(tanstack_router(chat, tanstack_agent_source(agent)))
    return app, chat


async def test_the_real_tanstack_client_gets_the_agent_answer_and_a_follower_the_same() -> None:
    """``ChatClient`` of ``@tanstack/ai-client`` sends; a second client joins mid-run."""
    state: dict[str, Any] = {"pause": 0.02}
    app, chat = _tanstack_app(Agent(slow_model(state)))
    async with serve_app(app) as url:
        result = await _tanstack_client(url, "join", chat="pa-join", text="go", join_after=5)
    await chat.aclose()
    a, b = result["a"], result["b"]
    assert (a["status"], a["error"]) == ("ready", None)
    assert a["terminal"]["type"] == "RUN_FINISHED"
    answer = a["messages"][-1]
    assert answer["role"] == "assistant"
    assert "".join(p["content"] for p in answer["parts"] if p["type"] == "text") == "".join(WORDS)
    assert [m["parts"] for m in b["messages"]] == [m["parts"] for m in a["messages"]]


async def test_a_tanstack_stop_cancels_the_agent_run() -> None:
    """The real client's ``stop()`` (DELETE) ends the run with ``finishReason: "stop"`` and
    cancels the agent's model stream."""
    state: dict[str, Any] = {"pause": 0.05}
    app, chat = _tanstack_app(Agent(slow_model(state)))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=20) as http:
        result = await _tanstack_client(url, "stop", chat="pa-stop", text="go", stop_after=3)
        history = (await http.get("/api/tanstack/chat/pa-stop/messages")).json()
    await chat.aclose()
    client = result["client"]
    assert result["deleteStatus"] == 202
    assert (client["status"], client["error"]) == ("ready", None)
    assert client["terminal"]["type"] == "RUN_FINISHED"
    assert client["finishReason"] == "stop"
    assert state.get("cancelled") is True and state["sent"] < len(WORDS)
    text = "".join(p["content"] for p in client["messages"][-1]["parts"] if p["type"] == "text")
    assert text and "".join(WORDS).startswith(text) and len(text) < len("".join(WORDS))
    stored = "".join(p["content"] for p in history[-1]["parts"] if p["type"] == "text")
    assert stored == text


async def test_a_tanstack_users_attachments_reach_the_agent() -> None:
    """A user's image (data and URL) and PDF go to the agent as pydantic-ai content, through
    the AG-UI input content ``tanstack_agent_source`` builds."""
    from pydantic_ai.messages import BinaryContent, ImageUrl, ModelRequest, UserPromptPart

    seen: list[Any] = []

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        seen.extend(messages)
        yield "Seen."

    app, chat = _tanstack_app(Agent(FunctionModel(stream_function=stream)))
    png, pdf = "iVBORw0KGgo=", "JVBERi0xLjQK"
    parts = [
        {"type": "text", "content": "what are these?"},
        {"type": "image", "source": {"type": "data", "value": png, "mimeType": "image/png"}},
        {"type": "image", "source": {"type": "url", "value": "https://example.com/cat.jpg"}},
        {
            "type": "document",
            "source": {"type": "data", "value": pdf, "mimeType": "application/pdf"},
        },
    ]
    user = {"id": "u1", "role": "user", "parts": parts}
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        posted = await client.post("/api/tanstack/chat", json={"id": "t-att", "messages": [user]})
        assert posted.status_code == 202
        run = chat.running("tanstack-t-att")
        if run is not None:
            await run.task  # the agent run has ended
    await chat.aclose()
    (request,) = [m for m in seen if isinstance(m, ModelRequest)]
    (prompt,) = [p for p in request.parts if isinstance(p, UserPromptPart)]
    content = list(prompt.content)
    assert content[0] == "what are these?"
    image, linked, document = content[1:]
    assert isinstance(image, BinaryContent) and image.media_type == "image/png"
    assert image.data == base64.b64decode(png)
    assert isinstance(linked, ImageUrl) and linked.url == "https://example.com/cat.jpg"
    assert isinstance(document, BinaryContent) and document.media_type == "application/pdf"
    assert document.data == base64.b64decode(pdf)
