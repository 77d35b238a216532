"""Followers that hang up release their S2 read sessions.

A browser tab that closes mid-answer must not keep an S2 read session (an HTTP connection of
the basin's client) open: enough of them would exhaust the client's pool, and the answer's
own appends would then fail. The basin's client here has a pool of 4 connections; 12
followers come and go, and the answer must still be persisted to its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
from fastapi import FastAPI, Request
from fastapi.responses import Response

from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.log import read_range
from resumable_chat.s2 import HttpBasin, is_terminal_fence
from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.pytest_plugin import unique_basin_name


async def test_disconnected_followers_release_their_read_sessions(s2_server_url: str) -> None:
    pool = httpx2.AsyncClient(
        limits=httpx2.Limits(max_connections=4), timeout=httpx2.Timeout(10.0, pool=3.0)
    )
    basin = HttpBasin(
        unique_basin_name(),
        access_token="test",
        account_endpoint=s2_server_url,
        basin_endpoint=s2_server_url,
        client=pool,
    )
    chat = create_resumable_chat(basin=basin)
    release = asyncio.Event()

    async def source(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        yield {"type": "text-delta", "id": "t", "delta": "half"}
        await release.wait()
        yield {"type": "text-delta", "id": "t", "delta": " and the rest"}
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}

    app = FastAPI()

    @app.post("/chat")
    async def post() -> Response:
        return await chat.make_resumable("chat-1", source)

    @app.get("/chat/stream")
    async def follow(request: Request) -> Response:
        return await chat.replay("chat-1")

    try:
        async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            async with client.stream("POST", "/chat") as live:
                lines = live.aiter_lines()
                while "half" not in await anext(lines):
                    pass
                for _ in range(12):  # each follower reads the first chunk and hangs up
                    async with client.stream("GET", "/chat/stream") as follower:
                        assert follower.status_code == 200
                        async for line in follower.aiter_lines():
                            if line.startswith("data: "):
                                break
                release.set()
                rest = [line async for line in lines]
            assert "data: [DONE]" in rest
            await chat.aclose()
            records = await read_range(basin, "chat-1", 0)
            assert is_terminal_fence(records[-1])
            assert any(b"the rest" in r.body for r in records)
    finally:
        await chat.aclose()
        await basin.aclose()
        await pool.aclose()
