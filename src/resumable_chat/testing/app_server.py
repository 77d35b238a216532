"""Serve an ASGI app under a real uvicorn server on 127.0.0.1, inside the running event loop.

For tests that want real HTTP (streaming, disconnects, SSE) without a subprocess:

    async with serve_app(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client: ...
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any, Literal

__all__ = ["free_port", "serve_app"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve_app(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    lifespan: Literal["auto", "on", "off"] = "on",
) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn on ``host:port`` (a free port by default) in this loop.

    Yields the base URL (``http://127.0.0.1:PORT``). On exit the server shuts down (open
    streaming responses are cancelled after a short grace period). Requires ``uvicorn``;
    raises ``RuntimeError`` when the server fails to start.
    """
    import uvicorn

    port = port or free_port(host)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan=lifespan,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name=f"uvicorn {host}:{port}")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.005)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=5)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
