"""SSE framing and responses.

Frames are built once as bytes (``id: <seq_num+1>\\ndata: <json>\\n\\n``) and stored bodies
are sent verbatim on replay: no JSON re-encoding. Responses are sse-starlette's
``EventSourceResponse``, which adds keep-alive comments, client-disconnect detection and
graceful shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping

from sse_starlette import EventSourceResponse

__all__ = ["DEFAULT_KEEPALIVE_S", "event_frame", "sse_response"]

#: Seconds between keep-alive comments on an idle SSE response.
DEFAULT_KEEPALIVE_S = 15.0


def event_frame(body: bytes, next_seq_num: int | None = None) -> bytes:
    """One SSE event: an ``id:`` line with ``next_seq_num`` (when given) and one ``data:`` line.

    ``body`` must not contain a newline (compact JSON never does). The ``id`` is the cursor to
    resume *after* this record (reference §3.4).
    """
    if next_seq_num is None:
        return b"data: " + body + b"\n\n"
    return b"id: %d\ndata: %b\n\n" % (next_seq_num, body)


def sse_response(
    frames: AsyncIterable[bytes],
    *,
    headers: Mapping[str, str],
    keepalive_s: float = DEFAULT_KEEPALIVE_S,
) -> EventSourceResponse:
    """A 200 ``text/event-stream`` response sending pre-framed ``frames`` as they come.

    ``keepalive_s`` (seconds, 0 disables) spaces SSE comments on an idle stream; both the AI
    SDK and TanStack clients ignore comments.
    """
    return EventSourceResponse(frames, headers=dict(headers), ping=keepalive_s, sep="\n")
