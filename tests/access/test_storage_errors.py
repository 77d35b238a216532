"""One S2-error policy and one bad-input policy on every router (ai_sdk, tanstack, agui,
streams), over real HTTP.

- A permanent S2 failure (a refused token, a missing basin) answers 500 with a readable body
  and no ``Retry-After``, logged once per cause however many requests meet it; a transient
  one (S2 unreachable) answers 503 with ``Retry-After``. Never a traceback 500.
- The routers' start-up check stops the app with the typed error naming the cause.
- A body nested 100,000 deep, a non-ASCII digit in a cursor: 4xx, never 500.
- A deeply nested user message is refused at POST (400, nothing stored) past
  ``MAX_JSON_DEPTH``, and up to it stored and shown back by the history routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trustme
from fastapi import FastAPI

from resumable_chat import (
    ResumableChat,
    StopSignal,
    create_resumable_chat,
    create_resumable_stream_context,
)
from resumable_chat.fastapi import ai_sdk_router, tanstack_router
from resumable_chat.fastapi.agui import AgUiRun, agui_router
from resumable_chat.fastapi.requests import MAX_JSON_DEPTH, STORAGE_UNAVAILABLE_TEXT
from resumable_chat.fastapi.streams import resumable_stream_router
from resumable_chat.log import read_range
from resumable_chat.s2 import (
    Basin,
    BasinNotFoundError,
    HttpBasin,
    MemoryBasin,
    S2AuthError,
    S2UnavailableError,
)
from resumable_chat.testing.app_server import free_port, serve_app
from resumable_chat.testing.s2_server import create_app as create_s2_app

pytestmark = pytest.mark.timeout(60)

USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
TS_USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "content": "hi"}]}
AGUI_USER = {"id": "u1", "role": "user", "content": "hi"}

#: Every route of every router, with a body where it takes one.
ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/api/chat", {"id": "c1", "messages": [USER]}),
    ("GET", "/api/chat/c1/stream", None),
    ("DELETE", "/api/chat/c1/stream", None),
    ("GET", "/api/chat/c1/messages", None),
    ("POST", "/api/tanstack/chat", {"id": "c1", "messages": [TS_USER]}),
    ("GET", "/api/tanstack/chat/replay?id=c1", None),
    ("GET", "/api/tanstack/chat/replay?id=c1&from=0", None),
    ("DELETE", "/api/tanstack/chat", {"id": "c1"}),
    ("GET", "/api/tanstack/chat/c1/messages", None),
    ("POST", "/api/agui", {"threadId": "c1", "messages": [AGUI_USER]}),
    ("GET", "/api/agui?threadId=c1", None),
    ("GET", "/api/agui?runId=r1&offset=-1", None),
    ("DELETE", "/api/agui?threadId=c1", None),
    ("POST", "/api/streams/s1", None),
    ("GET", "/api/streams/s1", None),
]


async def ai_sdk_source(
    messages: list[dict[str, Any]], signal: StopSignal
) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "start"}
    yield {"type": "finish"}


async def tanstack_source(
    messages: list[dict[str, Any]], signal: StopSignal
) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "RUN_STARTED", "runId": "r"}
    yield {"type": "RUN_FINISHED", "runId": "r", "finishReason": "stop"}


async def agui_source(run: AgUiRun, signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "RUN_STARTED", "runId": run.run_id}
    yield {"type": "RUN_FINISHED", "runId": run.run_id, "finishReason": "stop"}


async def text_source(stream_id: str, request: Any) -> AsyncIterator[str]:
    yield "data: one\n\n"


@dataclass
class Routers:
    app: FastAPI
    chat: ResumableChat
    tanstack: ResumableChat


def all_routers(basin: Basin, *, check_storage: bool) -> Routers:
    """The four routers on one basin, as an app would mount them."""
    chat = create_resumable_chat(protocol="ai-sdk", basin=basin)
    tanstack = create_resumable_chat(protocol="tanstack", basin=basin)
    streams = create_resumable_stream_context(basin, linger_ms=0)
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, ai_sdk_source, check_storage=check_storage))
    app.include_router(tanstack_router(tanstack, tanstack_source, check_storage=check_storage))
    app.include_router(agui_router(tanstack, agui_source, check_storage=check_storage))
    app.include_router(resumable_stream_router(streams, text_source, check_storage=check_storage))
    return Routers(app, chat, tanstack)


async def request(client: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    return (
        await client.request(method, path, json=body)
        if body is not None
        else (await client.request(method, path))
    )


@contextlib.asynccontextmanager
async def s2_basin(**server: Any) -> AsyncIterator[tuple[str, Any]]:
    """The S2 test server (``create_app(**server)``) on uvicorn; yields its URL and app."""
    s2 = create_s2_app(**server)
    async with serve_app(s2) as url:
        yield url, s2


def http_basin(url: str, name: str = "policy-basin", token: str = "wrong-token") -> HttpBasin:
    return HttpBasin(
        name,
        access_token=token,
        account_endpoint=url,
        basin_endpoint=url,
        max_attempts=2,
        retry_base_s=0.001,
        retry_max_backoff_s=0.002,
        timeout_s=2.0,
    )


def storage_log_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "resumable_chat.fastapi" and r.levelno >= logging.WARNING
    ]


async def answers_of_every_route(app: FastAPI) -> list[tuple[str, str, httpx.Response]]:
    """Serve ``app`` on uvicorn and send each of :data:`ROUTES` once: (method, path,
    response) in that order."""
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        return [
            (method, path, await request(client, method, path, body))
            for method, path, body in ROUTES
        ]


async def test_a_refused_token_is_500_without_retry_after_on_every_route_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="resumable_chat")
    async with s2_basin(access_token="the-right-token") as (url, _):
        basin = http_basin(url)
        routers = all_routers(basin, check_storage=False)
        async with (
            serve_app(routers.app) as base,
            httpx.AsyncClient(base_url=base, timeout=10) as client,
        ):
            for _ in range(2):  # every route twice: still one log line
                for method, path, body in ROUTES:
                    response = await request(client, method, path, body)
                    assert response.status_code == 500, (method, path, response.text)
                    assert "retry-after" not in response.headers, (method, path)
                    detail = response.json()["detail"]
                    assert "misconfigured" in detail and "credentials" in detail, detail
        await routers.chat.aclose()
        await routers.tanstack.aclose()
        await basin.aclose()
    lines = storage_log_lines(caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].levelno == logging.ERROR and "S2_ACCESS_TOKEN" in lines[0].getMessage()
    assert "wrong-token" not in caplog.text


async def test_a_missing_basin_is_500_and_s2_down_is_503_with_retry_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="resumable_chat")
    async with s2_basin(auto_create_basins=False) as (url, _):
        missing = http_basin(url, name="missing-basin")
        routers = all_routers(missing, check_storage=False)
        for method, path, response in await answers_of_every_route(routers.app):
            assert response.status_code == 500, (method, path, response.text)
            assert "retry-after" not in response.headers
            assert "basin does not exist" in response.json()["detail"]
        await missing.aclose()
    down = http_basin(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    routers = all_routers(down, check_storage=False)
    for method, path, response in await answers_of_every_route(routers.app):
        assert response.status_code == 503, (method, path, response.text)
        assert response.headers["retry-after"] == "1"
        assert response.json() == {"detail": STORAGE_UNAVAILABLE_TEXT}
    await down.aclose()
    lines = [r.getMessage() for r in storage_log_lines(caplog)]
    assert len(lines) == 2, lines  # one per cause: the missing basin, then the outage
    assert "BasinNotFoundError" in lines[0] and "S2UnavailableError" in lines[1]


async def test_an_unverifiable_tls_certificate_is_500_on_every_route(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S2 behind a certificate the system does not trust (a slim container without CA
    certificates): a configuration error, 500 without ``Retry-After``, logged once."""
    caplog.set_level(logging.INFO, logger="resumable_chat")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(server_context)

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listener = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=server_context)
    basin = http_basin(f"https://127.0.0.1:{listener.sockets[0].getsockname()[1]}")
    routers = all_routers(basin, check_storage=False)
    try:
        for method, path, response in await answers_of_every_route(routers.app):
            assert response.status_code == 500, (method, path, response.text)
            assert "retry-after" not in response.headers
            assert "TLS certificate" in response.json()["detail"]
    finally:
        await routers.chat.aclose()
        await routers.tanstack.aclose()
        await basin.aclose()
        listener.close()
        await listener.wait_closed()
    lines = [r.getMessage() for r in storage_log_lines(caplog)]
    assert len(lines) == 1 and "S2CertificateError" in lines[0], lines


@pytest.mark.parametrize(
    ("server", "token", "error", "words"),
    [
        ({"access_token": "right"}, "wrong", S2AuthError, "S2_ACCESS_TOKEN"),
        ({"auto_create_basins": False}, "t", BasinNotFoundError, "does not exist"),
        (None, "t", S2UnavailableError, "S2_BASIN_ENDPOINT"),
    ],
    ids=["refused-token", "missing-basin", "unreachable"],
)
async def test_the_start_up_check_stops_the_app_with_the_typed_error(
    server: dict[str, Any] | None, token: str, error: type[Exception], words: str
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if server is None:
            url = f"http://127.0.0.1:{free_port()}"
        else:
            url, _ = await stack.enter_async_context(s2_basin(**server))
        basin = http_basin(url, token=token)
        stack.push_async_callback(basin.aclose)
        routers = all_routers(basin, check_storage=True)
        with pytest.raises(error, match=words):
            async with routers.app.router.lifespan_context(routers.app):
                pass
        # the same check, called directly, on the chat and the streams context
        with pytest.raises(error):
            await routers.chat.check()
        with pytest.raises(error):
            await create_resumable_stream_context(basin).check()


async def test_the_start_up_check_passes_on_a_good_basin_and_on_the_embedded_log() -> None:
    async with s2_basin() as (url, _):
        basin = http_basin(url, token="any")
        routers = all_routers(basin, check_storage=True)
        async with routers.app.router.lifespan_context(routers.app):
            pass
        await basin.aclose()
    memory = MemoryBasin()
    routers = all_routers(memory, check_storage=True)
    async with routers.app.router.lifespan_context(routers.app):
        pass
    assert memory.stream_names() == []  # the embedded log is not even touched


# -- bad input ------------------------------------------------------------------------------


def nested(depth: int) -> Any:
    """A JSON value of ``depth`` nested lists around 1 (``depth`` 0 is the number)."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


DEEP_BODY = ("[" * 100_000 + "]" * 100_000).encode()  # 200 kB: under the 1 MiB limit


@contextlib.asynccontextmanager
async def memory_app() -> AsyncIterator[tuple[httpx.AsyncClient, MemoryBasin, Routers]]:
    basin = MemoryBasin()
    routers = all_routers(basin, check_storage=True)
    async with (
        serve_app(routers.app) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as client,
    ):
        yield client, basin, routers
    await routers.chat.aclose()
    await routers.tanstack.aclose()


async def test_a_body_nested_100000_deep_is_400_on_every_json_route() -> None:
    headers = {"content-type": "application/json"}
    async with memory_app() as (client, basin, _):
        for method, path in [
            ("POST", "/api/chat"),
            ("POST", "/api/tanstack/chat"),
            ("DELETE", "/api/tanstack/chat"),
            ("POST", "/api/agui"),
        ]:
            response = await client.request(method, path, content=DEEP_BODY, headers=headers)
            assert response.status_code == 400, (method, path, response.text[:200])
            assert "nested deeper" in response.json()["detail"]
        assert basin.stream_names() == []


async def test_a_non_ascii_digit_in_a_cursor_is_4xx_never_500() -> None:
    async with memory_app() as (client, _, _):
        body = {"threadId": "c1", "messages": [AGUI_USER]}
        cases = [
            await client.post("/api/agui", json=body, headers={"Last-Event-ID": "²".encode()}),
            await client.get("/api/agui", params={"runId": "r1", "offset": "²"}),
            await client.get("/api/agui", params={"threadId": "c1", "offset": "١٢"}),
            await client.get(
                "/api/agui", params={"runId": "r1"}, headers={"Last-Event-ID": "²".encode()}
            ),
            await client.get("/api/streams/s1", params={"resumeAt": "²"}),
        ]
        for response in cases:
            assert response.status_code == 400, (response.request.url, response.text)
        for path in ("/api/chat/c1/stream", "/api/tanstack/chat/replay?id=c1"):
            response = await client.get(path, params={"from": "²"})
            assert response.status_code == 422, (path, response.text)  # like any non-number


@pytest.mark.parametrize(
    ("route", "message", "history"),
    [
        ("ai-sdk", lambda x: {**USER, "parts": [{"type": "text", "text": "hi", "x": x}]}, 5),
        ("tanstack", lambda x: {**TS_USER, "parts": [{**TS_USER["parts"][0], "x": x}]}, 5),
        ("agui", lambda x: {**AGUI_USER, "x": x}, 3),
    ],
)
async def test_a_deep_user_message_is_refused_at_post_or_stored_and_shown(
    route: str, message: Any, history: int
) -> None:
    """``history``: the depth of the nested value's container in the body (``{}`` is 1)."""
    fits = MAX_JSON_DEPTH - history  # the deepest value the body can carry
    async with memory_app() as (client, basin, routers):

        async def post(chat_id: str, depth: int) -> httpx.Response:
            m = message(nested(depth))
            if route == "ai-sdk":
                return await client.post("/api/chat", json={"id": chat_id, "messages": [m]})
            if route == "tanstack":
                return await client.post(
                    "/api/tanstack/chat", json={"id": chat_id, "messages": [m]}
                )
            return await client.post(
                "/api/agui", json={"threadId": chat_id, "messages": [m]}, headers={"X-Run-Id": "r"}
            )

        refused = await post("too-deep", fits + 1)
        assert refused.status_code == 400, refused.text
        assert basin.stream_names() == []
        accepted = await post("deep", fits)
        assert accepted.status_code in (200, 202), accepted.text
        for chat, stream in ((routers.chat, "chat-deep"), (routers.tanstack, "tanstack-deep")):
            generation = chat.running(stream)
            if generation is not None:
                await generation.task
        if route == "ai-sdk":
            shown = (await client.get("/api/chat/deep/messages")).json()
            assert shown[0]["parts"][0]["x"] == nested(fits)  # stored whole, shown whole
        elif route == "tanstack":
            shown = (await client.get("/api/tanstack/chat/deep/messages")).json()
            assert shown[0]["parts"] == [{"type": "text", "content": "hi"}]  # text is stored
        else:
            shown = (await client.get("/api/agui", params={"threadId": "deep"})).json()["messages"]
            assert shown[0]["parts"] == [{"type": "text", "content": "hi"}]
            assert await read_range(basin, "tanstack-deep", 0)
        assert shown[0]["id"] == "u1"
