"""What ``HttpBasin``'s HTTP client does with its connections, as a user of the basin sees it.

Requests are cancelled all the time (a follower leaves, a stop, a deadline): a cancel must
never cost the pool a connection slot for good (httpcore 1.0.9 kept the never-opened
connection a cancelled queued request left: encode/httpcore#1093; httpx2 does not). And the
basin only takes the client it runs on, ``httpx2.AsyncClient``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import httpx2
import pytest

from resumable_chat.s2 import HttpBasin


async def _cancel_after(steps: int, calls: list[Any]) -> None:
    """Start ``calls`` at once, let the loop run ``steps`` turns, cancel them all."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    for _ in range(steps):
        await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("steps", range(4))
async def test_cancelled_requests_leave_a_pool_of_one_usable(
    s2_server_url: str, steps: int
) -> None:
    """encode/httpcore#1093's case: two requests on a pool of one connection, both cancelled
    ``steps`` loop turns later; the next request still gets the connection within its pool
    timeout (with httpcore 1.0.9 it waited for a connection nobody would open)."""
    limits = httpx2.Limits(max_connections=1)
    async with httpx2.AsyncClient(limits=limits) as client:
        url = f"{s2_server_url}/v1/basins"
        await _cancel_after(steps, [client.get(url) for _ in range(2)])
        response = await client.get(url, timeout=httpx2.Timeout(5, pool=2))
        assert response.status_code < 500


@pytest.mark.parametrize("steps", range(6))
async def test_cancelled_basin_calls_never_use_up_the_pool(
    make_http_basin: Callable[..., HttpBasin], s2_server_url: str, steps: int
) -> None:
    """An ``HttpBasin`` on a pool of one connection: calls cancelled at any loop turn, then
    the next call still gets the connection (not a ``PoolTimeout``)."""
    client = httpx2.AsyncClient(limits=httpx2.Limits(max_connections=1))
    basin = make_http_basin(client=client, timeout_s=2.0, deadline_s=2.0)
    try:
        await basin.create_stream("s")
        await _cancel_after(steps, [basin.check_tail("s") for _ in range(3)])
        assert (await basin.check_tail("s")).seq_num == 0
    finally:
        await client.aclose()


async def test_an_httpx_client_is_refused_with_a_type_error() -> None:
    """``client`` must be an ``httpx2.AsyncClient``: an ``httpx.AsyncClient`` (whose pool
    the basin no longer runs on) is refused at construction, not at the first request."""
    async with httpx.AsyncClient() as client:
        with pytest.raises(TypeError, match=r"httpx2\.AsyncClient"):
            HttpBasin("my-basin-1", access_token=None, client=client)  # type: ignore[arg-type]
