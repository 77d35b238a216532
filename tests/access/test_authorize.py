"""The ``authorize(request, chat_id)`` hook guards every route, and ``stream_prefix`` keeps
two apps on one basin apart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request

from helpers import eventually, user_message
from resumable_chat import StopSignal, create_resumable_chat, create_resumable_stream_context
from resumable_chat.fastapi import ai_sdk_router, tanstack_router
from resumable_chat.fastapi.streams import resumable_stream_router
from resumable_chat.log import RecordKind, classify, read_range
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.app_server import serve_app

pytestmark = pytest.mark.timeout(30)


class Owners:
    """Binds each chat to the first user who writes to it (the README's example)."""

    def __init__(self) -> None:
        self.owner: dict[str, str] = {}
        self.calls: list[tuple[str, str, str]] = []

    async def __call__(self, request: Request, chat_id: str) -> None:
        user = request.headers.get("x-user")
        self.calls.append((request.method, chat_id, user or ""))
        if user is None:
            raise HTTPException(401, "sign in first")
        owner = self.owner.setdefault(chat_id, user) if request.method == "POST" else None
        if (owner or self.owner.get(chat_id)) != user:
            raise HTTPException(403, "not your chat")


async def written(basin: MemoryBasin, stream: str) -> int:
    """Records in ``stream`` other than the writer's heartbeats (it beats while idle)."""
    return sum(
        1 for r in await read_range(basin, stream, 0) if classify(r) is not RecordKind.HEARTBEAT
    )


class Gate:
    """A model that streams one word, then waits for ``release``."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    async def ai_sdk(
        self, messages: list[dict[str, Any]], signal: StopSignal
    ) -> AsyncIterator[dict[str, Any]]:
        self.calls += 1
        yield {"type": "start"}
        yield {"type": "text-start", "id": "t"}
        yield {"type": "text-delta", "id": "t", "delta": "hello"}
        await self.release.wait()
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}

    async def tanstack(
        self, messages: list[dict[str, Any]], signal: StopSignal
    ) -> AsyncIterator[dict[str, Any]]:
        self.calls += 1
        yield {"type": "RUN_STARTED", "runId": "r", "threadId": "t"}
        await self.release.wait()
        yield {"type": "RUN_FINISHED", "runId": "r", "finishReason": "stop"}


async def test_ai_sdk_routes_ask_authorize_before_anything() -> None:
    basin = MemoryBasin()
    owners, model = Owners(), Gate()
    chat = create_resumable_chat(protocol="ai-sdk", basin=basin)
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, model.ai_sdk, authorize=owners))
    body = {"id": "c1", "messages": [user_message()]}
    alice, bob = {"x-user": "alice"}, {"x-user": "bob"}
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        async with client.stream("POST", "/api/chat", json=body, headers=alice) as live:
            assert live.status_code == 200
            async for text in live.aiter_text():
                if "hello" in text:
                    break
            generation = chat.running("chat-c1")
            assert generation is not None

            async def head_stored() -> bool:  # the live client may see "hello" before S2 does
                return generation.writer.durable_seq_num == generation.writer.next_seq_num

            await eventually(head_stored)  # the model waits on its gate: nothing more comes
            stored = await written(basin, "chat-c1")

            assert (await client.post("/api/chat", json=body)).status_code == 401
            denied = await client.post("/api/chat", json=body, headers=bob)
            assert denied.status_code == 403 and denied.json() == {"detail": "not your chat"}
            for method, path in (
                ("GET", "/api/chat/c1/stream"),
                ("DELETE", "/api/chat/c1/stream"),
                ("GET", "/api/chat/c1/messages"),
            ):
                response = await client.request(method, path, headers=bob)
                assert response.status_code == 403, (method, path)
            assert await written(basin, "chat-c1") == stored, "nothing written"
            assert chat.running("chat-c1") is not None, "bob's DELETE stopped nothing"
            assert model.calls == 1

            resumed = await client.get("/api/chat/c1/messages", headers=alice)
            assert resumed.status_code == 200
            model.release.set()
        await chat.aclose()
    assert {call[1] for call in owners.calls} == {"c1"}


async def test_tanstack_routes_ask_authorize() -> None:
    basin = MemoryBasin()
    owners, model = Owners(), Gate()
    model.release.set()
    chat = create_resumable_chat(protocol="tanstack", basin=basin)
    app = FastAPI()
    app.include_router(tanstack_router(chat, model.tanstack, authorize=owners))
    body = {"id": "c1", "messages": [user_message()]}
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        ok = await client.post("/api/tanstack/chat", json=body, headers={"x-user": "alice"})
        assert ok.status_code == 202
        bob = {"x-user": "bob"}
        assert (await client.post("/api/tanstack/chat", json=body, headers=bob)).status_code == 403
        replay = await client.get("/api/tanstack/chat/replay", params={"id": "c1"}, headers=bob)
        assert replay.status_code == 403
        stop = await client.request("DELETE", "/api/tanstack/chat", json={"id": "c1"}, headers=bob)
        assert stop.status_code == 403
        messages = await client.get("/api/tanstack/chat/c1/messages", headers=bob)
        assert messages.status_code == 403
        assert model.calls == 1
        await chat.aclose()


async def test_stream_routes_ask_authorize() -> None:
    owners = Owners()
    context = create_resumable_stream_context(basin=MemoryBasin())

    async def make_stream(stream_id: str, request: Request) -> AsyncIterator[str]:
        yield "data: one\n\n"

    app = FastAPI()
    app.include_router(resumable_stream_router(context, make_stream, authorize=owners))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        assert (await client.post("/api/streams/j1", headers={"x-user": "a"})).status_code == 200
        assert (await client.post("/api/streams/j1", headers={"x-user": "b"})).status_code == 403
        assert (await client.get("/api/streams/j1", headers={"x-user": "b"})).status_code == 403
        assert (await client.get("/api/streams/j1")).status_code == 401
    await context.aclose()


async def test_sync_authorize_hook() -> None:
    def only_public(request: Request, chat_id: str) -> None:
        if not chat_id.startswith("public-"):
            raise HTTPException(404, "no such chat")

    chat = create_resumable_chat(basin=MemoryBasin())
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, Gate().ai_sdk, authorize=only_public))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        assert (await client.get("/api/chat/secret/messages")).status_code == 404
        assert (await client.get("/api/chat/public-1/messages")).json() == []
    await chat.aclose()


async def test_stream_prefix_keeps_two_apps_apart() -> None:
    basin = MemoryBasin()
    first = create_resumable_chat(basin=basin, stream_prefix="app1/")
    second = create_resumable_chat(basin=basin, stream_prefix="app2/")
    models = Gate(), Gate()
    app1, app2 = FastAPI(), FastAPI()
    app1.include_router(ai_sdk_router(first, models[0].ai_sdk))
    app2.include_router(ai_sdk_router(second, models[1].ai_sdk))
    body = {"id": "c1", "messages": [user_message()]}
    for model in models:
        model.release.set()
    async with (
        serve_app(app1) as url1,
        serve_app(app2) as url2,
        httpx.AsyncClient(timeout=10) as client,
    ):
        assert (await client.post(url1 + "/api/chat", json=body)).status_code == 200
        assert (await client.post(url2 + "/api/chat", json=body)).status_code == 200
        for chat in (first, second):
            generation = chat.running("chat-c1")
            if generation is not None:
                await generation.task
    assert basin.stream_names() == ["app1/chat-c1", "app2/chat-c1"]
    assert len(await first.load_messages("chat-c1")) == 2
    await first.aclose()
    await second.aclose()


@pytest.mark.parametrize("prefix", ["a b", "x" * 201, "ü/"])
def test_bad_stream_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="stream_prefix"):
        create_resumable_chat(basin=MemoryBasin(), stream_prefix=prefix)


async def test_prefixed_basin_is_a_view_with_the_prefix() -> None:
    from resumable_chat.s2.prefixed import PrefixedBasin
    from resumable_chat.s2.records import AppendInput, AppendRecord

    inner = MemoryBasin()
    view = PrefixedBasin(inner, "tenant-a/")
    await view.append("s", AppendInput([AppendRecord(b"x")], match_seq_num=0))
    assert inner.stream_names() == ["tenant-a/s"]
    assert (await view.check_tail("s")).seq_num == 1
    assert [r.body for r in (await view.read("s", seq_num=0)).records] == [b"x"]
    follow = view.follow("s", seq_num=0)
    assert [r.body for r in (await anext(follow)).records] == [b"x"]
    await follow.aclose()
    await view.create_stream("t")
    await view.delete_stream("s")
    assert inner.stream_names() == ["tenant-a/t"]
    assert "tenant-a/" in repr(view)
    await view.aclose()
