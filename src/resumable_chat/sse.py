"""SSE framing and responses.

Frames are built once as bytes (``id: <seq_num+1>\\ndata: <json>\\n\\n``) and stored bodies
are sent verbatim on replay: no JSON re-encoding. Responses are sse-starlette's
``EventSourceResponse``, which adds keep-alive comments, client-disconnect detection and
graceful shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Mapping
from typing import Any, cast

from sse_starlette import EventSourceResponse

__all__ = ["DEFAULT_KEEPALIVE_S", "DONE_FRAME", "event_frame", "sse_response"]

#: Seconds between keep-alive comments on an idle SSE response.
DEFAULT_KEEPALIVE_S = 15.0


def event_frame(body: bytes, next_seq_num: int | None = None) -> bytes:
    """One SSE event: an ``id:`` line with ``next_seq_num`` (when given) and one ``data:`` line.

    ``body`` must not contain a newline (compact JSON never does). The ``id`` is the cursor to
    resume *after* this record (``@s2-dev/resumable-stream`` ``src/shared.ts``).
    """
    if next_seq_num is None:
        return b"data: " + body + b"\n\n"
    return b"id: %d\ndata: %b\n\n" % (next_seq_num, body)


#: ``data: [DONE]``: the AI SDK's end-of-stream event (``ai`` ``JsonToSseTransformStream``).
DONE_FRAME = event_frame(b"[DONE]")


class _OnShutdown:
    """Passed to sse-starlette as its ``shutdown_event``: when the server starts to shut
    down it calls ``set()``, which schedules ``callback`` ``delay_s`` seconds later."""

    __slots__ = ("_callback", "_delay_s", "_handle")

    def __init__(self, callback: Callable[[], object], delay_s: float) -> None:
        self._callback = callback
        self._delay_s = delay_s
        self._handle: asyncio.TimerHandle | None = None

    def set(self) -> None:
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self._delay_s, self._callback)

    def is_set(self) -> bool:
        return self._handle is not None


def sse_response(
    frames: AsyncIterable[bytes],
    *,
    headers: Mapping[str, str],
    keepalive_s: float = DEFAULT_KEEPALIVE_S,
    on_shutdown: Callable[[], object] | None = None,
    shutdown_drain_s: float = 10.0,
) -> EventSourceResponse:
    """A 200 ``text/event-stream`` response sending pre-framed ``frames`` as they come.

    ``keepalive_s`` (seconds, 0 disables) spaces SSE comments on an idle stream; both the AI
    SDK and TanStack clients ignore comments.

    Shutdown (SIGTERM under uvicorn, via sse-starlette): without ``on_shutdown`` the response
    ends at once (a follower reconnects elsewhere). With it, ``frames`` keep flowing for up to
    ``shutdown_drain_s`` seconds, then ``on_shutdown()`` is called (a live answer is stopped,
    so its client gets the protocol's stop terminal), and the response is given 2 s more to
    end by itself before it is cut.
    """
    if on_shutdown is None:
        return EventSourceResponse(frames, headers=dict(headers), ping=keepalive_s, sep="\n")
    event = cast(Any, _OnShutdown(on_shutdown, shutdown_drain_s))
    return EventSourceResponse(
        frames,
        headers=dict(headers),
        ping=keepalive_s,
        sep="\n",
        shutdown_event=event,
        shutdown_grace_period=shutdown_drain_s + 2.0,
    )
