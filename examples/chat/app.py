"""The example chat app: AI SDK and TanStack AI routes on resumable-chat, and two small pages.

Run: ``python examples/chat/app.py --host 127.0.0.1 --port 8000`` and open ``/`` (AI SDK) or
``/tanstack`` (TanStack AI). Storage is S2 when ``S2_ACCESS_TOKEN`` and ``S2_BASIN`` are set,
else the embedded log; both chats share one basin. The model comes from ``CHAT_RECORDINGS`` /
``CHAT_MODEL`` / the offline demo (models.py). ``CHAT_LEASE_MS`` (default 5000) is how long a
generation may write nothing before another instance closes it as crashed.

Start-up: with S2 configured, the app first makes one cheap S2 request and exits with one
clear line (and status 1) when the token is refused, the basin is missing or S2 cannot be
reached; a basin name S2 would refuse stops it the same way (status 2).
``CHAT_STARTUP_CHECK=0`` skips the request: the routes then answer 500 (misconfigured) or 503
with ``Retry-After`` (unreachable) per request. With ``CHAT_MODEL`` set, the model library
is imported and warmed up before the first request is served, off the event loop.

Routes: AI SDK under ``/api/chat`` (``ai_sdk_router``), TanStack AI session routes under
``/api/tanstack/chat`` (``tanstack_router``), the TanStack connection adapter shipped with
the package at ``/tanstack-connection.js``, the durable protocol of TanStack's stock
``fetchServerSentEvents`` adapter at ``/api/agui`` (``agui_router``, same threads as the
session routes), and the React example (examples/react-chat) at ``/react/`` once it is built
(``examples/react-chat/dist``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

import anyio
from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from models import ModelSources

from resumable_chat import create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router, tanstack_router
from resumable_chat.fastapi.agui import agui_router
from resumable_chat.s2 import (
    Basin,
    MemoryBasin,
    S2ConfigError,
    S2Error,
    basin_from_env,
    check_basin,
)

HERE = Path(__file__).resolve().parent
#: The built React example (``npm --prefix examples/react-chat run build``), served at /react/.
REACT_DIST = HERE.parent / "react-chat" / "dist"
logger = logging.getLogger("examples.chat")
_OFF = frozenset({"0", "false", "no", "off"})


def startup_check_enabled(environ: dict[str, str] | None = None) -> bool:
    """``CHAT_STARTUP_CHECK`` (default on; ``0``/``false``/``no``/``off`` turn it off)."""
    env = os.environ if environ is None else environ
    return env.get("CHAT_STARTUP_CHECK", "1").strip().lower() not in _OFF


def create_app(*, check_storage: bool | None = None) -> FastAPI:
    """The example app: both protocols' routes, the pages and the TanStack adapter.

    ``check_storage``: the routers check S2 at start-up (one cheap request); ``None`` reads
    ``CHAT_STARTUP_CHECK``. Raises ``S2ConfigError`` for half-set S2 variables or an invalid
    ``S2_BASIN``.
    """
    if check_storage is None:
        check_storage = startup_check_enabled()
    models = ModelSources()
    basin = basin_from_env()
    lease_ms = int(os.environ.get("CHAT_LEASE_MS", "5000"))
    chat = create_resumable_chat(
        protocol="ai-sdk", mode="session", enable_stop=True, basin=basin, lease_ms=lease_ms
    )
    tanstack_chat = create_resumable_chat(
        protocol="tanstack", mode="session", enable_stop=True, basin=basin, lease_ms=lease_ms
    )
    adapter_js = files("resumable_chat").joinpath("static", "tanstack-connection.js").read_bytes()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info("model: %s; storage: %s", models.describe(), _describe(basin))
        # The model library's import and first-call set-up take seconds of CPU: done here,
        # in a worker thread, before any request, never on the event loop in a handler.
        await anyio.to_thread.run_sync(models.prepare)
        # Everything loaded so far lives as long as the process: moved out of the cyclic
        # collector's reach (https://docs.python.org/3/library/gc.html#gc.freeze), a full
        # collection under load walks only what requests made, not the whole startup heap
        # (a 20-40 ms pause of every stream otherwise; README, Benchmarks). Young collections
        # a tenth as often: fewer full ones while many answers start (the deployment guide,
        # docs/guides/multi-instance.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(7000, 10, 10)
        try:
            yield
        finally:
            try:
                await asyncio.gather(chat.aclose(), tanstack_chat.aclose())
            finally:
                await basin.aclose()

    app = FastAPI(title="resumable-chat example", lifespan=lifespan)
    app.include_router(ai_sdk_router(chat, models, check_storage=check_storage))
    # One check covers the basin both chats share.
    app.include_router(tanstack_router(tanstack_chat, models.tanstack, check_storage=False))
    # The stock TanStack fetchServerSentEvents("/api/agui") adapter, durable (same threads).
    app.include_router(
        agui_router(tanstack_chat, models.agui, prefix="/api/agui", check_storage=False)
    )
    if os.environ.get("CHAT_FAULT_INJECTION") == "1":  # TEST-ONLY, see fault_injection.py
        from fault_injection import CutAfterEvents

        app.add_middleware(CutAfterEvents, path="/api/agui")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(HERE / "index.html", media_type="text/html")

    @app.get("/tanstack", include_in_schema=False)
    async def tanstack_page() -> FileResponse:
        return FileResponse(HERE / "tanstack.html", media_type="text/html")

    @app.get("/tanstack-connection.js", include_in_schema=False)
    async def tanstack_connection() -> Response:
        return Response(
            adapter_js,
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache"},
        )

    if REACT_DIST.is_dir():  # the React example, when it has been built
        app.mount("/react", StaticFiles(directory=REACT_DIST, html=True), name="react")

    return app


def _describe(basin: Basin) -> str:
    if isinstance(basin, MemoryBasin):
        return "MemoryBasin (the embedded in-process log)"
    return f"{type(basin).__name__} (S2 basin {basin.name!r})"


async def _check_storage(basin: Basin) -> None:
    try:
        await check_basin(basin)
    finally:
        await basin.aclose()


def preflight() -> int:
    """Check the storage before serving: 0 when it can be used, else the exit status after
    logging one line that names the cause (2: invalid configuration, 1: S2 refused or could
    not be reached). Nothing to check on the embedded log."""
    if not (os.environ.get("S2_ACCESS_TOKEN") or os.environ.get("S2_BASIN")):
        return 0
    try:
        basin = basin_from_env()
    except S2ConfigError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    try:  # its own event loop and basin: the app's client must not outlive this loop
        asyncio.run(_check_storage(basin))
    except S2Error as exc:
        logger.error("cannot start: %s", exc.message)
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # httpx2 (the S2 client's) and httpx (litellm's) log every request at INFO: a line per
    # S2 append and read
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    check = startup_check_enabled()
    if check and (status := preflight()):
        sys.exit(status)
    try:
        app = create_app(check_storage=False)  # checked just above (or turned off)
    except S2ConfigError as exc:
        logger.error("cannot start: %s", exc)
        sys.exit(2)
    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
