"""Example: generic resumable text streams (the seeds' POST create / GET resume route pair).

Run: ``python examples/streams/app.py --host 127.0.0.1 --port 8000``. Storage is S2 when
``S2_ACCESS_TOKEN`` and ``S2_BASIN`` are set, else the embedded in-process log.

- ``POST /api/streams/{id}`` → 200 ``text/event-stream``: a demo stream of SSE frames (or, with
  a JSON body ``{"text": "..."}``, that text word by word), persisted as it goes; 409
  ``Stream already in use`` while it is being produced; 413 for a body over 1 MiB.
- ``GET /api/streams/{id}?resumeAt=N`` → 200 ``text/event-stream``: the output from its start
  minus the first ``N`` characters, then live until it ends; 422 ``Stream is already done``
  once it has ended; 404 ``Stream not found`` when there never was such a stream.
- ``GET /api/streams/{id}/status`` → 200 ``{"status": null | "active" | "done" | "failed"}``.
- ``DELETE /api/streams/{id}`` → 204 (S2 retention does this on its own; see the
  ``resumable_chat.text_streams.context`` docstring).

Try it: ``curl -N -X POST localhost:8000/api/streams/s1`` in one shell and
``curl -N localhost:8000/api/streams/s1`` in another.

Environment: ``STREAM_CHUNKS`` (demo frames, default 20), ``STREAM_TOKEN_DELAY_MS`` (pause
before each chunk, default 50), ``S2_BATCH_SIZE`` / ``S2_LINGER_DURATION_MS`` (batching).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response

from resumable_chat import create_resumable_stream_context
from resumable_chat.fastapi.streams import STREAM_ID_PATTERN, resumable_stream_router
from resumable_chat.text_streams.context import ResumableStreamContext

logger = logging.getLogger("examples.streams")

StreamId = Annotated[str, Path(pattern=STREAM_ID_PATTERN)]


def create_app(
    context: ResumableStreamContext | None = None,
    *,
    chunks: int | None = None,
    delay_ms: float | None = None,
) -> FastAPI:
    """The example app.

    ``context``: the streams' context (default: one from the environment, closed on
    shutdown); ``chunks`` / ``delay_ms``: the demo stream's length (frames) and pause before
    each chunk (ms), by default from ``STREAM_CHUNKS`` / ``STREAM_TOKEN_DELAY_MS``.
    """
    owns = context is None
    ctx = context if context is not None else create_resumable_stream_context()
    n_chunks = chunks if chunks is not None else int(os.environ.get("STREAM_CHUNKS", "20"))
    delay_s = (
        delay_ms if delay_ms is not None else float(os.environ.get("STREAM_TOKEN_DELAY_MS", "50"))
    ) / 1000

    async def demo_stream(stream_id: str, request: Request) -> AsyncIterator[str]:
        text: str | None = None
        body = await request.body()
        if body:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and isinstance(payload.get("text"), str):
                text = payload["text"]
        if text is not None:
            for i, word in enumerate(text.split(" ")):
                await asyncio.sleep(delay_s)
                yield word if i == 0 else " " + word
            return
        for i in range(n_chunks):
            await asyncio.sleep(delay_s)
            yield f"data: {stream_id} chunk {i}\n\n"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info("storage: %s", type(ctx.basin).__name__)
        yield
        if owns:
            await ctx.aclose()

    app = FastAPI(title="resumable-chat streams example", lifespan=lifespan)
    app.include_router(resumable_stream_router(ctx, demo_stream, prefix="/api/streams"))

    @app.get("/api/streams/{stream_id}/status")
    async def stream_status(stream_id: StreamId) -> JSONResponse:
        return JSONResponse({"status": await ctx.has_existing_stream(stream_id)})

    @app.delete("/api/streams/{stream_id}", status_code=204)
    async def delete_stream(stream_id: StreamId) -> Response:
        await ctx.delete_stream(stream_id)
        return Response(status_code=204)

    return app


def main() -> None:
    """Parse ``--host`` / ``--port`` and serve the app with uvicorn."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # httpx2 (the S2 client's) and httpx (litellm's) log every request at INFO: a line per
    # S2 append and read
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    import uvicorn

    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
