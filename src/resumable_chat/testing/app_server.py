"""Serve an ASGI app under a real server on 127.0.0.1, inside the running event loop.

For tests that want real HTTP (streaming, disconnects, SSE) without a subprocess:

    async with serve_app(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client: ...

``serve_app(app, http2=True)`` uses hypercorn instead of uvicorn: HTTP/1.1 and cleartext
HTTP/2 (prior knowledge) on one port, as the bundled S2 server's command line does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any, Literal

__all__ = ["KEEP_ALIVE_S", "free_port", "serve_app"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


#: Seconds the server keeps an idle connection open: longer than clients keep one for reuse
#: (httpx's pool 5 s, browsers and Node's undici about 4-5 s), so a client never sends a
#: request on a connection the server is closing at that moment (uvicorn's and hypercorn's
#: default, 5 s, races httpx's: under load a request then fails with ``ReadError``).
KEEP_ALIVE_S = 75.0


@contextlib.asynccontextmanager
async def serve_app(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    lifespan: Literal["auto", "on", "off"] = "on",
    http2: bool = False,
) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn (or hypercorn when ``http2``) on ``host:port`` in this loop.

    ``port`` defaults to a free one. Idle connections are kept :data:`KEEP_ALIVE_S` seconds.
    Yields the base URL (``http://127.0.0.1:PORT``). On exit
    the server shuts down (open streaming responses are cancelled after a short grace
    period). Requires ``uvicorn`` / ``hypercorn`` (the ``testing`` extra); raises
    ``RuntimeError`` when the server fails to start.
    """
    port = port or free_port(host)
    if http2:
        async with _serve_hypercorn(app, host, port) as url:
            yield url
        return
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan=lifespan,
        timeout_graceful_shutdown=1,
        timeout_keep_alive=int(KEEP_ALIVE_S),
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


@contextlib.asynccontextmanager
async def _serve_hypercorn(app: Any, host: str, port: int) -> AsyncIterator[str]:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.loglevel = "WARNING"
    config.accesslog = None
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = KEEP_ALIVE_S
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(app, config, shutdown_trigger=stop.wait),
        name=f"hypercorn {host}:{port}",
    )
    try:
        while True:  # hypercorn has no "started" flag: wait until the port accepts
            if task.done():
                task.result()
                raise RuntimeError("hypercorn stopped before it started")
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            writer.close()
            await writer.wait_closed()
            break
        yield f"http://{host}:{port}"
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=5)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
