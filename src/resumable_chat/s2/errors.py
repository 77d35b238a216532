"""Typed errors of the S2 log port, shared by :class:`HttpBasin` and :class:`MemoryBasin`.

Each maps one S2 REST v1 failure (status and ``code``) so callers branch on types, never on
strings. Both basin implementations raise exactly these.

Every :class:`S2Error` says whether it is :attr:`~S2Error.permanent`: a failure that the same
request will meet again until someone changes the configuration (a refused token, a missing
basin, an invalid request), as opposed to a transient one that a later retry may clear
(timeouts, connection errors, 408/429/5xx; S2's retry guidance in its REST API docs, "Error
codes"). The HTTP routes answer the first kind with 500 and the second with 503 +
``Retry-After``.
"""

from __future__ import annotations

from resumable_chat.s2.records import StreamPosition

__all__ = [
    "BasinNotFoundError",
    "FencingTokenMismatchError",
    "RangeNotSatisfiableError",
    "S2AuthError",
    "S2CertificateError",
    "S2ConfigError",
    "S2Error",
    "S2InvalidError",
    "S2NameError",
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

    @property
    def permanent(self) -> bool:
        """True when retrying cannot help: the configuration must change first.

        By status: ``None`` (a transport failure or an unreadable answer), 408, 409, 412,
        416, 429 and 5xx are transient; every other status (401, 403, 404, 400, 422, ...) is
        permanent. Subclasses that know better override this.
        """
        status = self.status
        if status is None or status >= 500:
            return False
        return status not in _TRANSIENT_4XX


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
    """404 ``basin_not_found``: the basin does not exist; :attr:`permanent`."""

    @property
    def permanent(self) -> bool:
        """Always True: the basin must be created (or ``S2_BASIN`` corrected) first."""
        return True


class S2AuthError(S2Error):
    """401/403: the access token is missing, wrong or lacks permission. Never retried;
    :attr:`permanent`."""

    @property
    def permanent(self) -> bool:
        """Always True: a refused token stays refused."""
        return True


class S2InvalidError(S2Error):
    """400/422: the request was malformed or broke a limit (batch size, token length...);
    :attr:`permanent`."""

    @property
    def permanent(self) -> bool:
        """Always True: the same request is refused again."""
        return True


class S2CertificateError(S2Error):
    """The TLS certificate of the S2 endpoint could not be verified; never retried,
    :attr:`permanent`.

    :class:`~resumable_chat.s2.http.HttpBasin` verifies it against the system's trust store
    (``httpx2``'s default; ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` replace it). A container
    image without CA certificates fails here: install them (Debian: ``ca-certificates``) or
    point ``SSL_CERT_FILE`` at a CA bundle (such as ``python -m certifi``'s). The message
    gives the verifier's reason.
    """

    @property
    def permanent(self) -> bool:
        """Always True: the same certificate fails the same way until the trust changes."""
        return True


class S2UnavailableError(S2Error):
    """A retryable failure (408, 429, 5xx, transport error) that outlived the retry budget;
    never :attr:`permanent`."""

    @property
    def permanent(self) -> bool:
        """Always False: S2 (or the way to it) may come back."""
        return False


class S2ConfigError(ValueError):
    """The S2 configuration (environment variables or arguments) is missing or invalid."""


class S2NameError(S2ConfigError):
    """A basin or stream name breaks S2's naming rules (:mod:`resumable_chat.s2.names`).

    ``name`` is the rejected value; the message states the rule.
    """

    def __init__(self, message: str, name: object) -> None:
        super().__init__(message)
        self.name = name


#: 4xx statuses that a retry may clear (S2 REST v1 retry guidance): request timeout,
#: transaction conflict / deletion pending, failed append condition, range not satisfiable
#: (the caller re-reads the tail), rate limited.
_TRANSIENT_4XX = frozenset({408, 409, 412, 416, 429})
