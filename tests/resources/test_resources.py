"""Resources: many chats through the example app leave nothing behind.

The example app runs in this process under a real uvicorn, with storage on the bundled S2 test
server (a subprocess, so its memory and tasks are not counted here). Chats go through every
path: full answers, mid-answer resumes, stops, client disconnects, TanStack runs followed by
replay, and AG-UI runs read to the end or left mid-run. Afterwards no background task, no
busy S2 connection (a running append or a live follow), no running generation and no live
backlog counted against the process's total remains,
and the Python heap (``tracemalloc``) is back to its level after the first half of the run
within ``MEMORY_BOUND_PER_CHAT`` bytes per chat of the second half plus ``ONE_OFF_GROWTH``
(the first half warms caches and pools). ``RESUMABLE_CHAT_RESOURCE_DEBUG=1`` prints what grew.

CI runs ``RESUMABLE_CHAT_RESOURCE_CHATS`` (default 100) chats; the full 1,000 run with
``RESUMABLE_CHAT_RESOURCE_CHATS=1000 .venv/bin/pytest tests/resources``.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import sys
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import eventually
from resumable_chat import ResumableChat
from resumable_chat.chat.producer import live_backlog_bytes
from resumable_chat.s2 import Basin, HttpBasin
from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.pytest_plugin import unique_basin_name

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "chat"
CHATS = int(os.environ.get("RESUMABLE_CHAT_RESOURCE_CHATS", "100"))
WARMUP = 20
CONCURRENCY = 10
#: Heap growth allowed per chat over the second half of the run, in bytes. Measured on this
#: machine with both halves measured once the server has torn every connection down: 739 and
#: 882 B/chat over 150 chats, mostly bounded caches that keep an entry per recent chat (the
#: engine's claim hints, ``CLAIM_HINTS`` of them, with the stream name and fence token they
#: hold; the AG-UI run cache) and this test's list of ids.
MEMORY_BOUND_PER_CHAT = 2048
#: Growth allowed once, whatever the number of chats, in bytes: tables that grow in steps and
#: never shrink (the loop's task set, the retry statistics, the JSON and URL caches). Over 50
#: chats the heap grew by 31-80 KB in 9 runs (634-1602 B/chat), a good part of it this.
ONE_OFF_GROWTH = 64 * 1024

pytestmark = pytest.mark.timeout(60 + CHATS)


def _load_example(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    spec = importlib.util.spec_from_file_location("example_chat_app_resources", EXAMPLE / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "example_chat_app_resources", module)
    return module


def _user(text: str) -> dict[str, Any]:
    return {
        "id": f"u-{uuid.uuid4().hex[:6]}",
        "role": "user",
        "parts": [{"type": "text", "text": text}],
    }


async def _first_delta(lines: Any) -> None:
    async for line in lines:
        if '"text-delta"' in line or '"TEXT_MESSAGE_CONTENT"' in line:
            return


async def one_chat(client: httpx.AsyncClient, index: int) -> str:
    """Run chat ``index`` down one of six paths; return its id."""
    chat_id = f"res-{index}"
    kind = index % 6
    if kind == 5:  # the stock AG-UI adapter's POST, read to the run's end (or its first text)
        run_id = f"run-{index}"
        body = {
            "threadId": chat_id,
            "runId": run_id,
            "messages": [{"id": "u1", "role": "user", "content": "hello"}],
        }
        headers = {"X-Run-Id": run_id}
        async with client.stream("POST", "/api/agui", json=body, headers=headers) as run:
            assert run.status_code == 200
            lines = run.aiter_lines()
            if index % 12 == 5:
                await _first_delta(lines)  # and go away mid-run
            else:
                async for _ in lines:
                    pass
        return chat_id
    if kind == 4:  # TanStack: 202, then follow the run on the replay subscription
        body = {"id": chat_id, "messages": [_user("hello")]}
        assert (await client.post("/api/tanstack/chat", json=body)).status_code == 202
        params = {"id": chat_id}
        async with client.stream("GET", "/api/tanstack/chat/replay", params=params) as replay:
            async for line in replay.aiter_lines():
                if '"RUN_FINISHED"' in line or '"RUN_ERROR"' in line:
                    break  # the run, followed live
                if '"MESSAGES_SNAPSHOT"' in line and '"assistant"' in line:
                    break  # the run had ended: it is in the history snapshot
        return chat_id
    body = {"id": chat_id, "messages": [_user("hello")], "trigger": "submit-message"}
    async with client.stream("POST", "/api/chat", json=body) as live:
        assert live.status_code == 200
        lines = live.aiter_lines()
        if kind == 0:  # a full answer
            text = "".join([line async for line in lines])
            assert "[DONE]" in text
        elif kind == 1:  # a second client resumes mid-answer
            await _first_delta(lines)
            resumed = await client.get(f"/api/chat/{chat_id}/stream")
            assert resumed.status_code in (200, 204)
            async for _ in lines:
                pass
        elif kind == 2:  # stop mid-answer
            await _first_delta(lines)
            stop = await client.delete(f"/api/chat/{chat_id}/stream")
            assert stop.status_code in (202, 204)
            async for _ in lines:
                pass
        else:  # the client goes away mid-answer
            await _first_delta(lines)
    return chat_id


async def _bounded(client: httpx.AsyncClient, index: int) -> str:
    try:
        async with asyncio.timeout(20):
            return await one_chat(client, index)
    except TimeoutError:
        raise AssertionError(f"chat {index} (path {index % 5}) hung") from None


async def _settle(chats: list[ResumableChat], ids: list[str]) -> None:
    """Wait for every generation these chats still run on ``ids``."""
    for chat in chats:
        for chat_id in ids:
            for prefix in ("chat-", "tanstack-"):
                generation = chat.running(prefix + chat_id)
                if generation is not None:
                    await asyncio.wait({generation.task}, timeout=30)


def _busy_connections(basin: Basin) -> list[str]:
    """The connections of ``basin``'s pool that are not idle (their state and request, as
    httpcore's ``repr`` says), with the requests still waiting in the pool."""
    assert isinstance(basin, HttpBasin)
    pool = basin._client._transport._pool  # type: ignore[attr-defined]
    busy = [repr(connection) for connection in pool.connections if not connection.is_idle()]
    waiting = [f"{r.request.method} {r.request.url}" for r in pool._requests]
    return busy + (["waiting: " + ", ".join(waiting)] if waiting else [])


def _uvicorn_state() -> Any:
    """The ``ServerState`` of the uvicorn ``serve_app`` runs in this loop (its request tasks
    and open connections), found through the server's task: uvicorn has no public handle."""
    (task,) = [t for t in asyncio.all_tasks() if t.get_name().startswith("uvicorn ")]
    return task.get_coro().cr_frame.f_locals["self"].server_state  # type: ignore[union-attr]


async def _server_idle() -> bool:
    """No request is being handled (a handler whose client went away mid-stream ends only
    once it noticed, and only then closes its S2 read) and every connection the clients
    closed is torn down on the server's side too (its objects freed)."""
    state = _uvicorn_state()
    return not state.tasks and not state.connections


def _our_tasks() -> list[str]:
    return sorted(
        task.get_name()
        for task in asyncio.all_tasks()
        if task.get_name().startswith("resumable-chat") and not task.done()
    )


async def test_many_chats_leave_nothing_behind(
    s2_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CHAT_MODEL", "CHAT_RECORDINGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CHAT_TOKEN_DELAY_MS", "1")
    monkeypatch.setenv("S2_ACCESS_TOKEN", "test")
    monkeypatch.setenv("S2_BASIN", unique_basin_name("res"))
    monkeypatch.setenv("S2_ACCOUNT_ENDPOINT", s2_server_url)
    monkeypatch.setenv("S2_BASIN_ENDPOINT", s2_server_url)
    module = _load_example(monkeypatch)
    chats: list[ResumableChat] = []
    basins: list[Basin] = []
    make_chat, make_basin = module.create_resumable_chat, module.basin_from_env

    def capture_chat(*args: Any, **kwargs: Any) -> ResumableChat:
        chats.append(make_chat(*args, **kwargs))
        return chats[-1]

    def capture_basin() -> Basin:
        basins.append(make_basin())
        return basins[-1]

    monkeypatch.setattr(module, "create_resumable_chat", capture_chat)
    monkeypatch.setattr(module, "basin_from_env", capture_basin)
    app = module.create_app()

    async def run(start: int, count: int) -> list[str]:
        ids: list[str] = []
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            for group in range(start, start + count, CONCURRENCY):
                size = min(CONCURRENCY, start + count - group)
                ids += await asyncio.gather(*(_bounded(client, group + i) for i in range(size)))
        await _settle(chats, ids)
        await eventually(_server_idle, timeout_s=20)
        return ids

    async with serve_app(app) as url:
        await run(0, WARMUP)
        gc.collect()
        tasks_before = len(asyncio.all_tasks())
        tracemalloc.start()
        try:
            half = CHATS // 2
            ids = await run(WARMUP, half)
            gc.collect()
            middle, _ = tracemalloc.get_traced_memory()
            first_half = tracemalloc.take_snapshot()
            ids += await run(WARMUP + half, CHATS - half)
            gc.collect()
            after, peak = tracemalloc.get_traced_memory()
            if os.environ.get("RESUMABLE_CHAT_RESOURCE_DEBUG"):
                for stat in tracemalloc.take_snapshot().compare_to(first_half, "lineno")[:15]:
                    print(stat)
        finally:
            tracemalloc.stop()
        growth = after - middle
        print(
            f"\n{CHATS} chats: heap +{middle} bytes after the first {half}, then "
            f"+{growth} after the next {CHATS - half} ({growth / (CHATS - half):.0f} B/chat); "
            f"peak {peak}; tasks {tasks_before} -> {len(asyncio.all_tasks())}"
        )
        assert _our_tasks() == []
        assert len(asyncio.all_tasks()) <= tasks_before
        assert _busy_connections(basins[0]) == []
        assert live_backlog_bytes() == 0  # nothing counted for a stalled client any more
        assert all(
            chat.running(p + i) is None
            for chat in chats
            for i in ids
            for p in ("chat-", "tanstack-")
        )
        bound = ONE_OFF_GROWTH + MEMORY_BOUND_PER_CHAT * (CHATS - half)
        assert growth <= bound, f"heap grew {growth} bytes"
        # The chats are still usable and their logs are whole.
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            full = next(i for i in ids if int(i.rsplit("-", 1)[1]) % 6 == 0)
            messages = (await client.get(f"/api/chat/{full}/messages")).json()
            assert [m["role"] for m in messages] == ["user", "assistant"]
            stopped = next(i for i in ids if int(i.rsplit("-", 1)[1]) % 6 == 2)
            messages = (await client.get(f"/api/chat/{stopped}/messages")).json()
            assert [m["role"] for m in messages] == ["user", "assistant"]
    assert _our_tasks() == [], "app shutdown left tasks behind"
