"""The example app with a real model library (``CHAT_MODEL``, litellm) never freezes.

litellm is imported and warmed up at start-up, off the event loop, so while the first model
request is being prepared a concurrent request is answered at once; and the log says what
happened to a model call (a failed call is not "stopped"). The model is a local
OpenAI-compatible server on 127.0.0.1 (``OPENAI_BASE_URL``): nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from helpers import ANSWER, openai_chat_events
from resumable_chat.testing.app_server import free_port

pytestmark = pytest.mark.timeout(120)


FAIL = "please fail"


#: The bodies of the requests the fake model received, in order.
RECEIVED: list[dict[str, Any]] = []


def fake_openai() -> Starlette:
    """``POST /v1/chat/completions``: streams ANSWER after 0.3 s, or answers 401 (as OpenAI
    does without a valid key) when the last message is FAIL. Keeps each body in
    :data:`RECEIVED`."""

    async def completions(request: Request) -> Response:
        body = await request.json()
        RECEIVED.append(body)
        if body["messages"][-1]["content"] == FAIL:
            error = {"message": "Incorrect API key provided", "type": "invalid_request_error"}
            return JSONResponse({"error": {**error, "code": "invalid_api_key"}}, 401)

        async def events() -> Any:
            await asyncio.sleep(0.3)  # the provider's time to first token
            for event in openai_chat_events(ANSWER):
                yield event

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@contextlib.contextmanager
def serve_in_thread(app: Starlette) -> Iterator[str]:
    """``app`` on uvicorn in a thread of its own (it outlives the tests' event loops)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="fake-openai", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the fake model did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def model_app(start_app: Callable[..., Any]) -> Iterator[Any]:
    with serve_in_thread(fake_openai()) as url:
        yield start_app(
            CHAT_MODEL="openai/gpt-4o-mini", OPENAI_API_KEY="test", OPENAI_BASE_URL=url + "/v1"
        )


def _question(text: str, chat_id: str) -> dict[str, Any]:
    message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}
    return {"id": chat_id, "messages": [message]}


async def test_a_concurrent_request_is_answered_while_the_first_model_call_is_prepared(
    model_app: Any,
) -> None:
    async with httpx.AsyncClient(base_url=model_app.base_url, timeout=10) as client:
        assert (await client.get("/")).status_code == 200  # the connection is open
        post = asyncio.create_task(client.post("/api/chat", json=_question("hi", "m-first")))
        latencies: list[float] = []
        while not post.done() or len(latencies) < 10:
            started = time.perf_counter()
            response = await client.get("/")
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200
            await asyncio.sleep(0.01)
        answer = await post
    assert answer.status_code == 200, answer.text
    chunks = [json.loads(line[6:]) for line in answer.text.splitlines() if line[6:7] == "{"]
    assert "".join(c.get("delta", "") for c in chunks if c["type"] == "text-delta") == "".join(
        ANSWER
    )
    assert max(latencies) < 0.1, f"a request waited {max(latencies) * 1000:.0f} ms: {latencies}"


async def test_the_log_says_a_failed_model_call_failed(model_app: Any) -> None:
    async with httpx.AsyncClient(base_url=model_app.base_url, timeout=20) as client:
        answer = await client.post("/api/chat", json=_question(FAIL, "m-fail"))
    assert answer.status_code == 200
    assert '"type":"error"' in answer.text.replace(" ", "")
    for _ in range(100):  # the log line is written as the answer ends
        log = model_app.log_tail(20_000)
        if "the model call failed" in log:
            break
        await asyncio.sleep(0.05)
    assert "the model call failed after 0 chunks" in log and "AuthenticationError" in log, log
    assert "was stopped" not in log
    assert "cost map fetch" not in log  # offline: litellm's own copy of its cost map
    assert "model: litellm model openai/gpt-4o-mini" in log


#: A 1×1 PNG and a PDF header, as the data URLs a page reads attached files into.
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
    "AAAABJRU5ErkJggg=="
)
PNG_URL = "data:image/png;base64," + PNG_B64
PDF_URL = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()


def _model_request_with(text: str) -> dict[str, Any]:
    """The one request the fake model got whose last message holds ``text``."""
    found = [b for b in RECEIVED if text in json.dumps(b["messages"][-1])]
    assert len(found) == 1, [b["messages"][-1] for b in RECEIVED]
    return found[0]


def test_files_attached_in_the_ai_sdk_client_reach_the_model_and_the_history(
    model_app: Any, driver: Any, chat_id: str
) -> None:
    files = [
        {"type": "file", "mediaType": "image/png", "filename": "dot.png", "url": PNG_URL},
        {"type": "file", "mediaType": "application/pdf", "filename": "a.pdf", "url": PDF_URL},
        {"type": "file", "mediaType": "text/plain", "url": "data:text/plain;base64,aGk="},
    ]
    text = f"what is in these files? ({chat_id})"
    sent = driver(model_app, "send", chat=chat_id, text=text, files=files)
    assert (sent["status"], sent["error"]) == ("ready", None)

    assert _model_request_with(text)["messages"][-1] == {
        "role": "user",
        "content": [  # the client puts the files before the text
            {"type": "image_url", "image_url": {"url": PNG_URL}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": PDF_URL}},
            {"type": "text", "text": text},
        ],  # a text file has no chat-completions form
    }
    with httpx.Client(base_url=model_app.base_url, timeout=10) as http:
        history = http.get(f"/api/chat/{chat_id}/messages").json()
    assert history[0]["parts"] == sent["messages"][0]["parts"]
    assert [p["type"] for p in history[0]["parts"]] == ["file", "file", "file", "text"]
    assert history[1]["role"] == "assistant" and "".join(ANSWER) in json.dumps(history[1])


@pytest.mark.parametrize(
    "package", ["@tanstack/ai-client", "tanstack-ai-client-v010"], ids=["v033", "v010"]
)
def test_files_attached_in_the_tanstack_client_reach_the_model_and_the_history(
    model_app: Any, tanstack_driver: Any, chat_id: str, package: str
) -> None:
    text = f"what is in this picture? ({chat_id})"
    image = {"type": "image", "source": {"type": "data", "value": PNG_B64, "mimeType": "image/png"}}
    content = [{"type": "text", "content": text}, image]
    sent = tanstack_driver(model_app, "send", package=package, chat=chat_id, content=content)
    client = sent["client"]
    assert (client["status"], client["error"]) == ("ready", None)

    assert _model_request_with(text)["messages"][-1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": PNG_URL}},
        ],
    }
    with httpx.Client(base_url=model_app.base_url, timeout=10) as http:
        history = http.get(f"/api/tanstack/chat/{chat_id}/messages").json()
    assert history[0]["parts"] == content == client["messages"][0]["parts"]
    # a new tab's first load: the snapshot has the picture too
    later = tanstack_driver(model_app, "subscribe", package=package, chat=chat_id)["client"]
    assert later["chunkTypes"] == ["MESSAGES_SNAPSHOT"]
    assert later["messages"][0]["parts"] == content
