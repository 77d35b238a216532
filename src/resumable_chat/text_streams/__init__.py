"""The generic resumer of plain text streams (the ``resumable-stream`` API) on the log engine.

See :func:`create_resumable_stream_context` and the docs guide "Text streams".
"""

from resumable_chat.text_streams.context import (
    BATCH_SIZE_ENV,
    DEFAULT_BATCH_SIZE,
    DEFAULT_LEASE_MS,
    DEFAULT_LINGER_MS,
    LINGER_MS_ENV,
    RESERVED_STREAM_ID_PREFIXES,
    ReservedStreamIdError,
    ResumableStream,
    ResumableStreamContext,
    ResumableStreamError,
    SourceCancelledError,
    StreamActiveError,
    StreamSource,
    StreamStatus,
    create_resumable_stream_context,
)

__all__ = [
    "BATCH_SIZE_ENV",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LEASE_MS",
    "DEFAULT_LINGER_MS",
    "LINGER_MS_ENV",
    "RESERVED_STREAM_ID_PREFIXES",
    "ReservedStreamIdError",
    "ResumableStream",
    "ResumableStreamContext",
    "ResumableStreamError",
    "SourceCancelledError",
    "StreamActiveError",
    "StreamSource",
    "StreamStatus",
    "create_resumable_stream_context",
]
