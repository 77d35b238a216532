"""The benchmark app: one source, served plain and through ``make_resumable``.

Run by ``bench/run.py`` under uvicorn in its own process::

    python bench/app.py --port 8100 [--s2-url http://127.0.0.1:8200]

Without ``--s2-url`` the chat uses the embedded ``MemoryBasin``; with it, ``HttpBasin`` against
that S2-compatible endpoint (e.g. ``python -m resumable_chat.testing.s2_server``).

Routes (the source's shape comes from the query string, see :class:`SourceShape`):

- ``POST /plain/{chat_id}``: a plain Starlette ``StreamingResponse`` of the source, framed as
  SSE exactly as the resumable route frames it (``id:`` + ``data:``, then ``data: [DONE]``).
- ``POST /resumable/{chat_id}``: ``chat.make_resumable("chat-<id>", source, message=...,
  new_chat=...)`` (``new_chat`` when the body holds one message, as the routers do).
- ``GET /resumable/{chat_id}/stream[?from=N]``: ``chat.replay``.
- ``GET /plain/{chat_id}/stream``: the floor of a follower (fixed frames, no storage).
- ``DELETE /resumable/{chat_id}/stream``: ``chat.stop_session``.
- ``GET /resumable/{chat_id}/log``: what the chat's log holds after its latest claim:
  ``{"data": <data records>, "end": <the kind of the fence that ended it, or null>}``.
- ``GET /ping``: 204 (the load generator opens its keep-alive connections with it).
- ``GET /stats``: RSS (KiB), event-loop lag percentiles (ms) since the last
  ``POST /stats/reset``, running generations.

Both POST routes read and parse the same JSON body (``{"messages": [UIMessage]}``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from resumable_chat import create_resumable_chat
from resumable_chat.chat.producer import StopSignal, encode_chunk
from resumable_chat.log.records import RecordKind, classify
from resumable_chat.log.scan import read_range
from resumable_chat.protocols.ai_sdk.dialect import AI_SDK_HEADERS
from resumable_chat.s2 import HttpBasin, MemoryBasin
from resumable_chat.s2.basin import Basin
from resumable_chat.sse import event_frame

#: Event-loop lag probe period (s).
LAG_PROBE_S = 0.01


@dataclass(frozen=True, slots=True)
class SourceShape:
    """What the benchmark source yields.

    ``n``: text-delta chunks; ``size``: bytes of each encoded delta chunk (about);
    ``first_ms``: wait before the first chunk (a model's time to first token);
    ``interval_ms``: the chunks' schedule, one every this many ms from the first (0: as fast
    as possible); a chunk the consumer takes late does not delay the next one, as a model's
    chunks arriving over the network are not delayed by a busy server; ``yield_every``: with no
    interval, give the event loop a turn every this many chunks (a network read delivers a
    few chunks at once); ``hold_s``: after the last delta, stay silent this long before
    finishing (a generation kept running for resume and follower benchmarks);
    ``stamp``: put the wall clock (ns) at the start of each delta, for lag measurement.
    """

    n: int = 20
    size: int = 100
    first_ms: float = 0
    interval_ms: float = 0
    yield_every: int = 64
    hold_s: float = 0
    stamp: bool = False

    @classmethod
    def from_query(cls, request: Request) -> SourceShape:
        q = request.query_params
        return cls(
            n=int(q.get("n", 20)),
            size=int(q.get("size", 100)),
            first_ms=float(q.get("first_ms", 0)),
            interval_ms=float(q.get("interval_ms", 0)),
            yield_every=max(1, int(q.get("yield_every", 64))),
            hold_s=float(q.get("hold_s", 0)),
            stamp=q.get("stamp", "0") == "1",
        )


_DELTA_OVERHEAD = len(encode_chunk({"type": "text-delta", "id": "t0", "delta": ""}))


async def bench_source(
    shape: SourceShape, signal: StopSignal | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The benchmark model: start, text-start, ``n`` text-deltas, text-end, finish."""
    if shape.first_ms:
        await asyncio.sleep(shape.first_ms / 1000)
    yield {"type": "start", "messageId": "msg-bench"}
    yield {"type": "text-start", "id": "t0"}
    pad = "x" * max(1, shape.size - _DELTA_OVERHEAD)
    interval = shape.interval_ms / 1000
    loop = asyncio.get_running_loop()
    due = loop.time()
    for i in range(shape.n):
        if shape.stamp:
            yield {"type": "text-delta", "id": "t0", "delta": f"{time.time_ns()};{pad}"}
        else:
            yield {"type": "text-delta", "id": "t0", "delta": pad}
        if interval:
            # on a schedule, as a model's chunks arrive over the network: a late wake-up
            # (or a slow consumer) does not delay the chunks after it
            due += interval
            await asyncio.sleep(max(0.0, due - loop.time()))
        elif i % shape.yield_every == shape.yield_every - 1:
            await asyncio.sleep(0)
    if shape.hold_s:
        await asyncio.sleep(shape.hold_s)
    yield {"type": "text-end", "id": "t0"}
    yield {"type": "finish", "finishReason": "stop"}


#: What a follower of a held 5-delta answer is sent first (``GET /plain/{id}/stream``).
HELD_FRAMES = b"".join(
    event_frame(encode_chunk(chunk), seq)
    for seq, chunk in enumerate(
        [
            {"type": "start", "messageId": "msg-bench"},
            {"type": "text-start", "id": "t0"},
            *[{"type": "text-delta", "id": "t0", "delta": "x" * (100 - _DELTA_OVERHEAD)}] * 5,
        ],
        start=1,
    )
)


class LoopLag:
    """Samples event-loop lag: how late a ``LAG_PROBE_S`` sleep wakes up (ms)."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            self.samples.append((loop.time() - start - LAG_PROBE_S) * 1000)

    def summary(self) -> dict[str, float]:
        data = sorted(self.samples)
        if not data:
            return {"lag_p50_ms": 0.0, "lag_p99_ms": 0.0, "lag_max_ms": 0.0, "lag_samples": 0}
        return {
            "lag_p50_ms": data[len(data) // 2],
            "lag_p99_ms": data[min(len(data) - 1, int(len(data) * 0.99))],
            "lag_max_ms": data[-1],
            "lag_samples": len(data),
        }


def rss_kib() -> int:
    """Resident set size of this process (KiB), from /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def create_app(basin: Basin) -> FastAPI:
    """The benchmark app on ``basin`` (owned: closed on shutdown)."""
    chat = create_resumable_chat(protocol="ai-sdk", mode="session", basin=basin)
    # ``POST /resumable/{id}?early=1``: the same with ``respond_before_claim``
    early = create_resumable_chat(
        protocol="ai-sdk", mode="session", basin=basin, respond_before_claim=True
    )
    lag = LoopLag()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # as the deployment guide advises (docs/guides/multi-instance.md): the startup heap
        # (about 67,000 objects of FastAPI, pydantic and the app) moved out of the collector's
        # reach, so a full collection under load no longer pauses every request for 20-40 ms;
        # and young collections a tenth as often, so fewer full ones while a burst of answers
        # starts (the plain routes run in this process too, so the ratios compare like with
        # like)
        gc.collect()
        gc.freeze()
        gc.set_threshold(7000, 10, 10)
        probe = asyncio.create_task(lag.run())
        try:
            yield
        finally:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
            await chat.aclose(drain_timeout_s=1)
            await early.aclose(drain_timeout_s=1)
            await basin.aclose()

    app = FastAPI(lifespan=lifespan)

    async def last_message(request: Request) -> tuple[dict[str, Any], bool]:
        """The request's last message, and whether it is the chat's first (as the routers
        tell ``make_resumable``: ``new_chat``)."""
        body = json.loads(await request.body())
        message: dict[str, Any] = body["messages"][-1]
        return message, len(body["messages"]) == 1

    @app.post("/plain/{chat_id}")
    async def plain(chat_id: str, request: Request) -> Response:
        await last_message(request)
        shape = SourceShape.from_query(request)

        async def frames() -> AsyncIterator[bytes]:
            seq = 0
            async for chunk in bench_source(shape):
                seq += 1
                yield event_frame(encode_chunk(chunk), seq)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(frames(), headers=dict(AI_SDK_HEADERS))

    @app.get("/plain/{chat_id}/stream")
    async def plain_replay(chat_id: str, request: Request) -> Response:
        """The floor of a follower: a ``StreamingResponse`` of the frames a replay of the
        held answer sends (start, text-start, five deltas), with no lookup and no storage,
        then silent until the client leaves."""

        async def frames() -> AsyncIterator[bytes]:
            yield HELD_FRAMES
            await asyncio.sleep(3600)

        return StreamingResponse(frames(), headers=dict(AI_SDK_HEADERS))

    @app.post("/resumable/{chat_id}")
    async def resumable(chat_id: str, request: Request) -> Response:
        message, new_chat = await last_message(request)
        shape = SourceShape.from_query(request)
        which = early if request.query_params.get("early") == "1" else chat
        return await which.make_resumable(
            f"chat-{chat_id}",
            lambda signal: bench_source(shape, signal),
            message=message,
            new_chat=new_chat,
        )

    @app.get("/resumable/{chat_id}/stream")
    async def replay(chat_id: str, request: Request) -> Response:
        cursor = request.query_params.get("from")
        return await chat.replay(f"chat-{chat_id}", None if cursor is None else int(cursor))

    @app.delete("/resumable/{chat_id}/stream")
    async def stop(chat_id: str) -> Response:
        return await chat.stop_session(f"chat-{chat_id}")

    @app.get("/resumable/{chat_id}/log")
    async def log(chat_id: str) -> JSONResponse:
        data, end = 0, None
        for record in await read_range(basin, f"chat-{chat_id}", 0):
            kind = classify(record)
            if kind is RecordKind.CLAIM:
                data, end = 0, None
            elif kind is RecordKind.DATA:
                data += 1
            elif kind is not RecordKind.HEARTBEAT:
                end = kind.value
        return JSONResponse({"data": data, "end": end})

    @app.get("/ping")
    async def ping() -> Response:
        return Response(status_code=204)

    @app.get("/stats")
    async def stats() -> JSONResponse:
        gc.collect()
        return JSONResponse(
            {"rss_kib": rss_kib(), "generations": len(chat.engine.running), **lag.summary()}
        )

    @app.get("/stats/allocations")
    async def allocations() -> JSONResponse:
        """Top allocation sites since start (only with ``BENCH_TRACEMALLOC=1``)."""
        import tracemalloc

        if not tracemalloc.is_tracing():
            return JSONResponse({"detail": "set BENCH_TRACEMALLOC=1"}, status_code=404)
        gc.collect()
        stats = tracemalloc.take_snapshot().statistics("lineno")[:25]
        return JSONResponse([f"{s.size / 1024:.0f} KiB {s.count} {s.traceback}" for s in stats])

    @app.post("/stats/reset")
    async def reset() -> Response:
        lag.samples.clear()
        return Response(status_code=204)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--s2-url", default=None, help="S2-compatible endpoint (HttpBasin)")
    args = parser.parse_args()
    import uvicorn

    if os.environ.get("BENCH_TRACEMALLOC") == "1":
        import tracemalloc

        tracemalloc.start()

    basin: Basin
    if args.s2_url:
        basin = HttpBasin(
            "bench-chats",
            access_token=None,
            account_endpoint=args.s2_url,
            basin_endpoint=args.s2_url,
        )
    else:
        basin = MemoryBasin()
    uvicorn.run(
        create_app(basin),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=300,  # the load generator opens its connections ahead of a run
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
