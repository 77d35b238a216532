"""Two calls for one stream id on one context (one process) at the same time: a double-clicked
button, a retry, two tabs behind sticky sessions. The second call finds the first one's claim
in flight; it waits for that claim to be decided, then ``resumable_stream`` resumes (role
``"resumer"``), ``create_new_resumable_stream`` raises ``StreamActiveError`` (the router's
409), and the router never answers 500. S2 appends are slowed to 50 ms so the claim is in
flight long enough to matter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request

from resumable_chat import create_resumable_stream_context
from resumable_chat.fastapi.streams import resumable_stream_router
from resumable_chat.log import Ownership
from resumable_chat.s2 import Basin
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan
from resumable_chat.text_streams.context import ResumableStreamContext, StreamActiveError

#: S2 append latency (s): S2 Express acknowledges in about 40 ms, Standard in about 400 ms.
APPEND_LATENCY_S = 0.05


def _slow_appends(basin: Basin) -> FaultPlanBasin:
    plan = FaultPlan()
    plan.delay("append", APPEND_LATENCY_S)
    return FaultPlanBasin(basin, plan)


async def _words() -> AsyncIterator[str]:
    for word in ["one ", "two ", "three"]:
        await asyncio.sleep(0.02)
        yield word


def _context(basin: Basin, key_prefix: str) -> ResumableStreamContext:
    return create_resumable_stream_context(
        basin=_slow_appends(basin), linger_ms=0, key_prefix=key_prefix, ownership=Ownership()
    )


async def _twice(
    basin: Basin, key_prefix: str, call: Callable[[ResumableStreamContext], Awaitable[Any]]
) -> list[Any]:
    """``call`` twice at once on one fresh context; the results, exceptions included."""
    ctx = _context(basin, key_prefix)
    try:
        return list(await asyncio.gather(call(ctx), call(ctx), return_exceptions=True))
    finally:
        await ctx.aclose(drain_timeout_s=2)


async def test_two_concurrent_resumable_stream_calls_on_one_context_produce_once_and_resume(
    basin: Basin, key_prefix: str
) -> None:
    results = await _twice(basin, key_prefix, lambda ctx: ctx.resumable_stream("same", _words))
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"a concurrent call on the same process raised: {errors!r}"
    assert sorted(r.role for r in results if r is not None) == ["producer", "resumer"]


async def test_two_concurrent_create_new_on_one_context_one_wins_one_gets_stream_active(
    basin: Basin, key_prefix: str
) -> None:
    results = await _twice(
        basin, key_prefix, lambda ctx: ctx.create_new_resumable_stream("same", _words)
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], StreamActiveError), errors


async def test_two_concurrent_posts_to_the_streams_router_on_one_instance_are_200_and_409(
    basin: Basin, key_prefix: str
) -> None:
    ctx = _context(basin, key_prefix)

    def source(stream_id: str, request: Request) -> AsyncIterator[str]:
        return _words()

    app = FastAPI()
    app.include_router(resumable_stream_router(ctx, source, check_storage=False))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first, second = await asyncio.gather(
                client.post("/api/streams/same"), client.post("/api/streams/same")
            )
        assert sorted([first.status_code, second.status_code]) == [200, 409], (
            first.status_code,
            second.status_code,
            second.text[:200],
        )
    finally:
        await ctx.aclose(drain_timeout_s=2)
