"""Typed errors of the S2 log port, shared by :class:`HttpBasin` and :class:`MemoryBasin`.

Each maps one S2 REST v1 failure (status and ``code``) so callers branch on types, never on
strings. Both basin implementations raise exactly these.
"""

from __future__ import annotations

from .records import StreamPosition

__all__ = [
    "BasinNotFoundError",
    "FencingTokenMismatchError",
    "RangeNotSatisfiableError",
    "S2AuthError",
    "S2ConfigError",
    "S2Error",
    "S2InvalidError",
    "S2UnavailableError",
    "SeqNumMismatchError",
    "StreamNotFoundError",
]


class S2Error(Exception):
    """An S2 request failed.

    ``status`` is the HTTP status (``None`` for transport failures), ``code`` the S2 error
    code (e.g. ``"storage"``, ``"rate_limited"``) when the server sent one.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status}, code={self.code!r})"


class FencingTokenMismatchError(S2Error):
    """412 ``{"fencing_token_mismatch": T}``: the append's token is not the stream's ``T``."""

    def __init__(self, expected_fencing_token: str):
        super().__init__(
            f"fencing token mismatch: the stream's token is {expected_fencing_token!r}",
            status=412,
            code="fencing_token_mismatch",
        )
        self.expected_fencing_token = expected_fencing_token


class SeqNumMismatchError(S2Error):
    """412 ``{"seq_num_mismatch": N}``: ``match_seq_num`` was not the stream's next seq_num N."""

    def __init__(self, expected_seq_num: int):
        super().__init__(
            f"seq_num mismatch: the stream's next seq_num is {expected_seq_num}",
            status=412,
            code="seq_num_mismatch",
        )
        self.expected_seq_num = expected_seq_num


class RangeNotSatisfiableError(S2Error):
    """416: the read's start is past the tail, or at the tail of a read that cannot wait.

    ``tail`` is the stream's tail from the 416 body. Callers treat it as "caught up".
    """

    def __init__(self, tail: StreamPosition):
        super().__init__(
            f"read start is at or past the tail (tail seq_num {tail.seq_num})",
            status=416,
            code="range_not_satisfiable",
        )
        self.tail = tail


class StreamNotFoundError(S2Error):
    """404 ``stream_not_found``: the stream does not exist and the basin does not create it."""

    def __init__(self, stream: str, message: str | None = None):
        super().__init__(
            message or f"stream {stream!r} not found", status=404, code="stream_not_found"
        )
        self.stream = stream


class BasinNotFoundError(S2Error):
    """404 ``basin_not_found``: the basin does not exist."""


class S2AuthError(S2Error):
    """401/403: the access token is missing, wrong or lacks permission. Never retried."""


class S2InvalidError(S2Error):
    """400/422: the request was malformed or broke a limit (batch size, token length...)."""


class S2UnavailableError(S2Error):
    """A retryable failure (408, 429, 5xx, transport error) that outlived the retry budget."""


class S2ConfigError(ValueError):
    """The S2 configuration (environment variables or arguments) is missing or invalid."""
