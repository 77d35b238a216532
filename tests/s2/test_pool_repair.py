"""A request cancelled while it waits for a pooled connection must not cost the pool a
connection slot for good (httpcore 1.0.9 keeps the never-opened connection it had assigned:
encode/httpcore#1093); :class:`HttpBasin` drops such connections after every cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from resumable_chat.s2 import HttpBasin
from resumable_chat.s2.pool_repair import drop_orphaned_connections


def _connections(client: httpx.AsyncClient) -> list[str]:
    return [repr(c) for c in client._transport._pool.connections]  # type: ignore[attr-defined]


async def _cancel_after(steps: int, calls: list[Any]) -> None:
    """Start ``calls`` at once, let the loop run ``steps`` turns, cancel them all."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    for _ in range(steps):
        await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_never_opened_connection_left_by_a_cancel_is_dropped(s2_server_url: str) -> None:
    """The report's case on a pool of one connection: two requests, both cancelled a loop
    turn later, leave ``[CONNECTING]`` behind with httpcore 1.0.9 (every later request
    would wait for it until its pool timeout); dropping it lets the next request through."""
    for steps in range(4):
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1)) as client:
            url = f"{s2_server_url}/v1/basins"
            await _cancel_after(steps, [client.get(url) for _ in range(2)])
            left = _connections(client)
            assert drop_orphaned_connections(client) == left.count(
                "<AsyncHTTPConnection [CONNECTING]>"
            )
            assert "CONNECTING" not in str(_connections(client))
            response = await client.get(url, timeout=httpx.Timeout(5, pool=2))
            assert response.status_code < 500


def test_another_transport_is_left_alone() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    assert drop_orphaned_connections(client) == 0


@pytest.mark.parametrize("steps", range(6))
async def test_cancelled_basin_calls_never_use_up_the_pool(
    make_http_basin: Callable[..., HttpBasin], s2_server_url: str, steps: int
) -> None:
    """An ``HttpBasin`` on a pool of one connection: calls cancelled at any loop turn, then
    the next call still gets the connection (not a ``PoolTimeout``). (The basin's calls did
    not hit httpcore's window here even without the repair; this guards what a user sees.)"""
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1))
    basin = make_http_basin(client=client, timeout_s=2.0, deadline_s=2.0)
    try:
        await basin.create_stream("s")
        await _cancel_after(steps, [basin.check_tail("s") for _ in range(3)])
        assert "CONNECTING" not in str(_connections(client))
        assert (await basin.check_tail("s")).seq_num == 0
    finally:
        await client.aclose()
