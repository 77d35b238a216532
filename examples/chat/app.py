"""The example chat app: AI SDK ``useChat`` routes on resumable-chat, and a small page.

Run: ``python examples/chat/app.py --host 127.0.0.1 --port 8000`` and open the page.
Storage is S2 when ``S2_ACCESS_TOKEN`` and ``S2_BASIN`` are set, else the embedded log.
The model comes from ``CHAT_RECORDINGS`` / ``CHAT_MODEL`` / the offline demo (models.py).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from models import ModelSources

from resumable_chat import create_resumable_chat
from resumable_chat.fastapi import ai_sdk_router

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("examples.chat")


def create_app() -> FastAPI:
    """The example app: AI SDK routes under ``/api/chat`` and the page at ``/``."""
    models = ModelSources()
    chat = create_resumable_chat(protocol="ai-sdk", mode="session", enable_stop=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info("model: %s; storage: %s", models.describe(), type(chat.basin).__name__)
        yield
        await chat.aclose()

    app = FastAPI(title="resumable-chat example", lifespan=lifespan)
    app.include_router(ai_sdk_router(chat, models))

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(HERE / "index.html", media_type="text/html")

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
