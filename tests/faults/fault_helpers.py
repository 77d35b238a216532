"""Helpers for the fault tests: recorded answers, an SSE parser and a chat app on faulty S2."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from helpers import parse_sse, user_message  # noqa: F401  (re-exported)
from resumable_chat import ResumableChat, StopSignal, create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router
from resumable_chat.log import RecordKind, classify, read_range
from resumable_chat.s2 import Basin, HttpBasin
from resumable_chat.s2.records import SequencedRecord
from resumable_chat.sources import ai_sdk_chunks, openai_chunks_from_jsonl
from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.fault_plan import FaultPlan
from resumable_chat.testing.pytest_plugin import unique_basin_name
from resumable_chat.testing.s2_server import S2TestServer

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FaultyS2:
    """A running fault-injecting S2 test server: URL, plan, server state and its clients."""

    url: str
    plan: FaultPlan
    server: S2TestServer
    basins: list[HttpBasin] = field(default_factory=list)

    def basin(self, name: str | None = None, **options: Any) -> HttpBasin:
        """An ``HttpBasin`` on this server with millisecond retries (closed after the test)."""
        options.setdefault("retry_base_s", 0.005)
        options.setdefault("retry_max_backoff_s", 0.02)
        options.setdefault("heartbeat_timeout_s", 5.0)
        options.setdefault("access_token", "test")
        basin = HttpBasin(
            name or unique_basin_name(),
            account_endpoint=self.url,
            basin_endpoint=self.url,
            **options,
        )
        self.basins.append(basin)
        return basin

    async def stored(self, basin: HttpBasin, stream: str) -> list[SequencedRecord]:
        """Every record the server holds on ``stream``, read behind the faults' back."""
        return await read_range(self.server.memory_basin(basin.name), stream, 0)


def recording(name: str) -> Path:
    """A recorded OpenAI stream of ``../shared/fixtures/openai-streams`` (skip if absent)."""
    for shared in (REPO_ROOT.parent / "shared", REPO_ROOT.parent.parent / "shared"):
        path = shared / "fixtures" / "openai-streams" / name
        if path.exists():
            return path
    pytest.skip(f"recorded stream {name} not found in ../shared")


def data_records(records: list[SequencedRecord]) -> list[str]:
    """Bodies of the stored answer chunks: no fences, heartbeats or stored user messages."""
    out = []
    for record in records:
        if classify(record) is not RecordKind.DATA:
            continue
        if json.loads(record.body).get("type") == "ui-message":
            continue
        out.append(record.body.decode())
    return out


@dataclass
class RecordedChatApp:
    """An AI SDK chat app answering every turn with one recorded stream."""

    client: httpx.AsyncClient
    chat: ResumableChat

    async def post(self, chat_id: str, text: str = "hi") -> httpx.Response:
        body = {"id": chat_id, "messages": [user_message(text)]}
        return await self.client.post("/api/chat", json=body)


@contextlib.asynccontextmanager
async def recorded_chat_app(
    basin: Basin, path: Path, *, delay_ms: float = 1, **options: Any
) -> AsyncIterator[RecordedChatApp]:
    """Serve ``ai_sdk_router`` on uvicorn; every answer replays ``path``."""
    chat = create_resumable_chat(protocol="ai-sdk", basin=basin, **options)

    async def source(
        messages: list[dict[str, Any]], signal: StopSignal
    ) -> AsyncIterator[dict[str, Any]]:
        async for chunk in ai_sdk_chunks(openai_chunks_from_jsonl(path, delay_ms=delay_ms)):
            yield chunk

    app = FastAPI()
    app.include_router(ai_sdk_router(chat, source))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        try:
            yield RecordedChatApp(client, chat)
        finally:
            await chat.aclose(drain_timeout_s=5)
