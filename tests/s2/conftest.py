"""Fixtures for the S2 log-port tests (``basin``, ``http_basin``, ``s2_server_url`` come from the
``resumable_chat.testing.pytest_plugin`` entry point)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
import httpx2
import pytest

from resumable_chat.s2 import Basin, HttpBasin, S2Error
from resumable_chat.testing.pytest_plugin import unique_basin_name
from resumable_chat.testing.s2_server import create_app


@pytest.fixture
async def stream(basin: Basin, s2_stream_name: str) -> AsyncIterator[str]:
    """A unique stream name on ``basin``; the stream is deleted after the test."""
    yield s2_stream_name
    with contextlib.suppress(S2Error):
        await basin.delete_stream(s2_stream_name)


@pytest.fixture
async def make_http_basin(s2_server_url: str) -> AsyncIterator[Callable[..., HttpBasin]]:
    """Factory for ``HttpBasin`` s on the test server (fresh basin, fast retries).

    Keyword arguments go to ``HttpBasin``; ``transport`` puts an httpx2 transport under a
    client the basin shares. Everything is closed after the test.
    """
    made: list[HttpBasin] = []
    clients: list[httpx2.AsyncClient] = []

    def factory(
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        basin: str | None = None,
        **kw: object,
    ) -> HttpBasin:
        options: dict[str, object] = {
            "access_token": "test",
            "account_endpoint": s2_server_url,
            "basin_endpoint": s2_server_url,
            "retry_base_s": 0.01,
            "retry_max_backoff_s": 0.05,
        }
        options.update(kw)
        if transport is not None:
            client = httpx2.AsyncClient(transport=transport)
            clients.append(client)
            options["client"] = client
        result = HttpBasin(basin or unique_basin_name(), **options)  # type: ignore[arg-type]
        made.append(result)
        return result

    yield factory
    for item in made:
        await item.aclose()
    for client in clients:
        await client.aclose()


@pytest.fixture
def asgi_client() -> Callable[..., httpx.AsyncClient]:
    """Factory: an ``httpx.AsyncClient`` wired in-process to ``create_app(**options)``."""

    def factory(**options: object) -> httpx.AsyncClient:
        app = create_app(**options)  # type: ignore[arg-type]
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s2.test")

    return factory
