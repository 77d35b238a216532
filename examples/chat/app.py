"""The example chat app: AI SDK and TanStack AI routes on resumable-chat, and two small pages.

Run: ``python examples/chat/app.py --host 127.0.0.1 --port 8000`` and open ``/`` (AI SDK) or
``/tanstack`` (TanStack AI). Storage is S2 when ``S2_ACCESS_TOKEN`` and ``S2_BASIN`` are set,
else the embedded log; both chats share one basin. The model comes from ``CHAT_RECORDINGS`` /
``CHAT_MODEL`` / the offline demo (models.py). ``CHAT_LEASE_MS`` (default 5000) is how long a
generation may write nothing before another instance closes it as crashed.

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
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from models import ModelSources

from resumable_chat import create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router, tanstack_router
from resumable_chat.fastapi_agui import agui_router
from resumable_chat.s2 import basin_from_env

HERE = Path(__file__).resolve().parent
#: The built React example (``npm --prefix examples/react-chat run build``), served at /react/.
REACT_DIST = HERE.parent / "react-chat" / "dist"
logger = logging.getLogger("examples.chat")


def create_app() -> FastAPI:
    """The example app: both protocols' routes, the pages and the TanStack adapter."""
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
        logger.info("model: %s; storage: %s", models.describe(), type(basin).__name__)
        try:
            yield
        finally:
            try:
                await asyncio.gather(chat.aclose(), tanstack_chat.aclose())
            finally:
                await basin.aclose()

    app = FastAPI(title="resumable-chat example", lifespan=lifespan)
    app.include_router(ai_sdk_router(chat, models))
    app.include_router(tanstack_router(tanstack_chat, models.tanstack))
    # The stock TanStack fetchServerSentEvents("/api/agui") adapter, durable (same threads).
    app.include_router(agui_router(tanstack_chat, models.agui, prefix="/api/agui"))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import uvicorn

    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
