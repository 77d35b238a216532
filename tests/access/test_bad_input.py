"""Bad input on every route gets a readable 4xx and touches nothing; a misbehaving source ends
its answer with exactly one protocol error terminal, in the live response and in the log."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router, tanstack_router
from resumable_chat.log import RecordKind, classify, read_range
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.app_server import serve_app

pytestmark = pytest.mark.timeout(30)

USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
LONG_ID = "x" * 201


class Model:
    """Yields ``chunks``; a chunk that is an ``Exception`` is raised instead."""

    def __init__(self) -> None:
        self.chunks: list[Any] = []
        self.calls = 0
        self.seen: list[list[dict[str, Any]]] = []  # the messages of each call

    async def stream(
        self, messages: list[dict[str, Any]], signal: StopSignal
    ) -> AsyncIterator[Any]:
        self.calls += 1
        self.seen.append(messages)
        for chunk in self.chunks:
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk


async def _serve(protocol: str) -> tuple[Any, Model, MemoryBasin, FastAPI]:
    basin, model = MemoryBasin(), Model()
    chat = create_resumable_chat(protocol=protocol, basin=basin)  # type: ignore[arg-type]
    app = FastAPI()
    router = ai_sdk_router if protocol == "ai-sdk" else tanstack_router
    app.include_router(router(chat, model.stream, max_body_bytes=4096))
    return chat, model, basin, app


NOT_JSON_NUMBERS = [  # Python's json.loads takes them; they cannot be stored as JSON
    ("NaN", b'{"id":"c1","messages":[{"id":"u1","role":"user","parts":[],"x":NaN}]}'),
    ("Infinity", b'{"id":"c1","messages":[{"id":"u1","role":"user","parts":[],"x":-Infinity}]}'),
    ("1e999", b'{"id":"c1","messages":[{"id":"u1","role":"user","parts":[],"x":1e999}]}'),
]

TANSTACK_BAD = [
    *[(name, "POST", "/api/tanstack/chat", body, 400) for name, body in NOT_JSON_NUMBERS],
    ("malformed JSON", "POST", "/api/tanstack/chat", b'{"id": "c1", "messages": [', 400),
    ("not an object", "POST", "/api/tanstack/chat", [1, 2], 422),
    ("missing id", "POST", "/api/tanstack/chat", {"messages": [USER]}, 422),
    ("missing messages", "POST", "/api/tanstack/chat", {"id": "c1"}, 422),
    ("wrong type", "POST", "/api/tanstack/chat", {"id": 5, "messages": [USER]}, 422),
    (
        "unknown role",
        "POST",
        "/api/tanstack/chat",
        {"id": "c1", "messages": [{**USER, "role": "x"}]},
        422,
    ),
    ("id too long", "POST", "/api/tanstack/chat", {"id": LONG_ID, "messages": [USER]}, 422),
    ("id characters", "POST", "/api/tanstack/chat", {"id": "a/b", "messages": [USER]}, 422),
    *[  # parts that could not be stored or shown: refused, not dropped (an empty prompt)
        (
            f"tanstack {name}",
            "POST",
            "/api/tanstack/chat",
            {"id": "c1", "messages": [{"id": "u1", "role": "user", **message}]},
            422,
        )
        for name, message in (
            ("part without type", {"parts": [{"content": "hi"}]}),
            ("part type a number", {"parts": [{"type": 5, "content": "hi"}]}),
            ("text part content a number", {"parts": [{"type": "text", "content": 5}]}),
            ("thinking part without content", {"parts": [{"type": "thinking"}]}),
            ("content a number", {"content": 5}),
            ("content part without type", {"content": [{"content": "hi"}]}),
            ("content part not an object", {"content": ["hi"]}),
        )
    ],
    ("oversized", "POST", "/api/tanstack/chat", {"id": "c1", "messages": [USER] * 100}, 413),
    ("stop malformed", "DELETE", "/api/tanstack/chat", b"{", 400),
    ("stop missing id", "DELETE", "/api/tanstack/chat", {}, 422),
    ("stop bad id", "DELETE", "/api/tanstack/chat", {"id": "../x"}, 422),
    ("replay no id", "GET", "/api/tanstack/chat/replay", None, 422),
    ("replay bad id", "GET", "/api/tanstack/chat/replay?id=a%20b", None, 422),
    ("replay from negative", "GET", "/api/tanstack/chat/replay?id=c1&from=-1", None, 422),
    ("replay from text", "GET", "/api/tanstack/chat/replay?id=c1&from=abc", None, 422),
    ("replay from past tail", "GET", "/api/tanstack/chat/replay?id=c1&from=99", None, 416),
    ("messages bad id", "GET", f"/api/tanstack/chat/{LONG_ID}/messages", None, 422),
]

AI_SDK_BAD = [
    *[(name, "POST", "/api/chat", body, 400) for name, body in NOT_JSON_NUMBERS],
    ("wrong type", "POST", "/api/chat", {"id": "c1", "messages": "hi"}, 422),
    ("message without id", "POST", "/api/chat", {"id": "c1", "messages": [{"role": "user"}]}, 422),
    ("id too long", "POST", "/api/chat", {"id": LONG_ID, "messages": [USER]}, 422),
    *[
        (
            f"part {name}",
            "POST",
            "/api/chat",
            {"id": "c1", "messages": [{**USER, "parts": [part]}]},
            422,
        )
        for name, part in (
            ("without type", {"text": "hi"}),
            ("with an empty type", {"type": "", "text": "hi"}),
            ("text null", {"type": "text", "text": None}),
            ("text a number", {"type": "text", "text": 5}),
            ("reasoning without text", {"type": "reasoning"}),
        )
    ],
    ("stream bad id", "GET", "/api/chat/a%20b/stream", None, 422),
    ("stream id too long", "GET", f"/api/chat/{LONG_ID}/stream", None, 422),
    ("stream from text", "GET", "/api/chat/c1/stream?from=abc", None, 422),
    ("stream from negative", "GET", "/api/chat/c1/stream?from=-5", None, 422),
    ("stop bad id", "DELETE", "/api/chat/.hidden/stream", None, 422),
    ("messages bad id", "GET", "/api/chat/a%3Cb/messages", None, 422),
]


@pytest.mark.parametrize(
    ("protocol", "cases"), [("tanstack", TANSTACK_BAD), ("ai-sdk", AI_SDK_BAD)]
)
async def test_bad_requests_get_readable_4xx(protocol: str, cases: list[tuple[Any, ...]]) -> None:
    chat, model, basin, app = await _serve(protocol)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        for name, method, path, body, status in cases:
            if isinstance(body, bytes):
                response = await client.request(
                    method, path, content=body, headers={"content-type": "application/json"}
                )
            elif body is not None:
                response = await client.request(method, path, json=body)
            else:
                response = await client.request(method, path)
            assert response.status_code == status, (name, response.text)
            assert "detail" in response.json(), name
    await chat.aclose()
    assert model.calls == 0
    for stream in basin.stream_names():
        assert await read_range(basin, stream, 0) == [], f"{stream} was written"


BAD_SOURCES = {
    "raises": [{"type": "start"}, {"type": "text-start", "id": "t"}, RuntimeError("boom")],
    "non-dict": [{"type": "start"}, "plain text"],
    "no type": [{"type": "start"}, {"delta": "x"}],
    "schema: missing field": [{"type": "start"}, {"type": "text-delta", "delta": "x"}],
    "schema: wrong type": [{"type": "start"}, {"type": "text-start", "id": 3}],
    "schema: unknown type": [{"type": "start"}, {"type": "text-chunk", "id": "t"}],
    "schema: finish reason": [{"type": "start"}, {"type": "finish", "finishReason": "done"}],
}


@pytest.mark.parametrize("chunks", BAD_SOURCES.values(), ids=BAD_SOURCES.keys())
async def test_misbehaving_ai_sdk_source_ends_with_one_error(chunks: list[Any]) -> None:
    chat, model, basin, app = await _serve("ai-sdk")
    model.chunks = chunks
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.post("/api/chat", json={"id": "c1", "messages": [USER]})
        generation = chat.running("chat-c1")
        if generation is not None:
            await generation.task
    await chat.aclose()
    live = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert live[-1] == "[DONE]"
    sent = [json.loads(d) for d in live[:-1]]
    assert [c["type"] for c in sent].count("error") == 1 and sent[-1]["type"] == "error"
    assert sent[-1]["errorText"] == "An error occurred."
    records = await read_range(basin, "chat-c1", 0)
    assert records[-1].headers and records[-1].body.startswith(b"error-")
    assert json.loads(records[-2].body) == sent[-1]


@pytest.mark.parametrize("bad", [RuntimeError("boom"), 42, {"no": "type"}])
async def test_misbehaving_tanstack_source_ends_with_one_run_error(bad: Any) -> None:
    chat, model, basin, app = await _serve("tanstack")
    model.chunks = [{"type": "RUN_STARTED", "runId": "r1", "threadId": "t"}, bad]
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.post("/api/tanstack/chat", json={"id": "c1", "messages": [USER]})
        assert response.status_code == 202
        generation = chat.running("tanstack-c1")
        if generation is not None:
            await generation.task
    await chat.aclose()
    records = await read_range(basin, "tanstack-c1", 0)
    assert records[-1].headers and records[-1].body.startswith(b"error-")
    stored = [json.loads(r.body) for r in records if classify(r) is RecordKind.DATA]
    errors = [c for c in stored if c["type"] == "RUN_ERROR"]
    assert len(errors) == 1 and stored[-1] is errors[0] and errors[0]["runId"] == "r1"


#: Under the body limit, over three S2 records once stored: ``1e15`` (4 bytes in the
#: request) is stored as ``1000000000000000.0`` (18 bytes), so this 1,000,103-byte body is a
#: 3.8 MB record.
SWELLING_BODY = (
    b'{"id":"c1","messages":[{"id":"u1","role":"user",'
    b'"parts":[{"type":"text","text":"hi","x":[' + b",".join([b"1e15"] * 200_000) + b"]}]}]}"
)


@contextlib.asynccontextmanager
async def _swelling_turn(
    basin: MemoryBasin, model: Model
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.Response]]:
    """An AI SDK app on ``basin`` answered by ``model``, and its answer to SWELLING_BODY."""
    model.chunks = [{"type": "start"}, {"type": "finish"}]
    chat = create_resumable_chat(protocol="ai-sdk", basin=basin)
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, model.stream))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.post(
            "/api/chat", content=SWELLING_BODY, headers={"content-type": "application/json"}
        )
        yield client, response
    await chat.aclose()


async def test_a_message_over_one_record_is_stored_in_fragments() -> None:
    """The message goes to the source and into history whole (stored in four records)."""
    basin, model = MemoryBasin(), Model()
    async with _swelling_turn(basin, model) as (client, response):
        assert response.status_code == 200, response.text[-300:]
        assert len(model.seen[0][-1]["parts"][0]["x"]) == 200_000
        history = (await client.get("/api/chat/c1/messages")).json()
        assert [m["role"] for m in history] == ["user", "assistant"]
        assert history[0]["parts"][0]["x"] == [1e15] * 200_000
        stored = await read_range(basin, "chat-c1", 0)
        assert sum(1 for r in stored if r.headers and r.headers[0][0] == b"rc-part") == 4


async def test_a_message_too_large_to_store_gets_413_and_touches_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over the records a message may span (two here): refused before anything is claimed;
    the next turn works."""
    monkeypatch.setattr("resumable_chat.log.fragments.MAX_FRAGMENTS", 2)
    assert len(SWELLING_BODY) < 1024 * 1024
    basin, model = MemoryBasin(), Model()
    async with _swelling_turn(basin, model) as (client, response):
        assert response.status_code == 413, response.text[-300:]
        assert "S2 record" in response.json()["detail"]
        assert model.calls == 0
        assert await read_range(basin, "chat-c1", 0) == []
        ok = await client.post("/api/chat", json={"id": "c1", "messages": [USER]})
        assert ok.status_code == 200 and model.calls == 1
        history = (await client.get("/api/chat/c1/messages")).json()
        assert [m["role"] for m in history] == ["user", "assistant"]


class _Finished:
    """ASGI middleware: ``done`` is set when a request to the app has been handled (or
    raised), so a test knows when the server is through with a request nobody answers."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.done = asyncio.Event()
        self.errors: list[BaseException] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            self.errors.append(exc)
            raise
        finally:
            self.done.set()


@pytest.mark.parametrize(
    ("protocol", "path"),
    [("ai-sdk", "/api/chat"), ("tanstack", "/api/tanstack/chat")],
)
async def test_a_client_hanging_up_mid_body_is_not_a_server_error(
    protocol: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that closes its connection while its request body is on the way (a tab
    closed mid-upload) is a client disconnect: nothing is claimed or written, no exception
    escapes to the server (uvicorn would log it as "Exception in ASGI application"), and
    the next request to the same chat works."""
    chat, model, basin, app = await _serve(protocol)
    model.chunks = [{"type": "start"}, {"type": "finish"}]
    finished = _Finished(app)
    async with serve_app(finished) as url:
        host, port = url.removeprefix("http://").split(":")
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 500\r\n\r\n".encode()
            + b'{"id":"c1","messages":[{"id":"u1","role":"user","par'
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(finished.done.wait(), 10)
        assert finished.errors == []
        assert "Exception in ASGI application" not in caplog.text
        assert model.calls == 0
        for stream in basin.stream_names():
            assert await read_range(basin, stream, 0) == [], f"{stream} was written"
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            body: dict[str, Any] = {"id": "c1", "messages": [USER]}
            if protocol == "tanstack":
                body["messages"] = [{"id": "u1", "role": "user", "content": "hi"}]
            response = await client.post(path, json=body)
            assert response.status_code in (200, 202), response.text
    await chat.aclose()


@pytest.mark.parametrize("protocol", ["ai-sdk", "tanstack"])
async def test_a_body_sent_as_a_form_or_text_is_415_and_starts_nothing(protocol: str) -> None:
    """Only JSON bodies are read (``application/json``, ``application/*+json``, or no
    ``Content-Type`` from outside a browser): a ``text/plain`` or form body, or one without a
    type from a browser (``fetch`` of a ``Blob`` or ``ArrayBuffer``), is what another site
    can post cross-origin without a CORS preflight, so it gets 415 and starts no model
    call."""
    chat, model, basin, app = await _serve(protocol)
    model.chunks = [{"type": "start"}, {"type": "finish"}]
    path = "/api/chat" if protocol == "ai-sdk" else "/api/tanstack/chat"
    message = (
        USER
        if protocol == "ai-sdk"
        else {"id": "u1", "role": "user", "parts": [{"type": "text", "content": "hi"}]}
    )
    body = json.dumps({"id": "c1", "messages": [message]}).encode()
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        refused: list[dict[str, str]] = [
            {"content-type": "text/plain;charset=UTF-8"},
            {"content-type": "application/x-www-form-urlencoded"},
            {"content-type": "multipart/form-data; boundary=x"},
            {"origin": "https://elsewhere.example"},  # a browser's fetch of a Blob, no type
            {"sec-fetch-mode": "no-cors", "sec-fetch-site": "cross-site"},
        ]
        for headers in refused:
            response = await client.post(path, content=body, headers=headers)
            assert response.status_code == 415, (headers, response.text)
            assert "application/json" in response.json()["detail"]
            stop = await client.request(
                "DELETE",
                path if protocol == "tanstack" else "/api/chat/c1/stream",
                content=b'{"id": "c1"}',
                headers=headers,
            )
            assert stop.status_code == (415 if protocol == "tanstack" else 204), stop.text
        assert model.calls == 0
        for stream in basin.stream_names():
            assert await read_range(basin, stream, 0) == [], f"{stream} was written"
        for chat_id, headers in (
            ("c1", {"content-type": "application/json; charset=utf-8"}),
            ("c2", {"content-type": "application/vnd.api+json"}),
            ("c3", {}),  # no Content-Type and not from a browser: read as JSON
            ("c4", {"content-type": "application/json", "origin": "https://app.example"}),
        ):
            ok_body = body.replace(b'"c1"', f'"{chat_id}"'.encode(), 1)
            response = await client.post(path, content=ok_body, headers=headers)
            assert response.status_code in (200, 202), (headers, response.text)
    await chat.aclose()
