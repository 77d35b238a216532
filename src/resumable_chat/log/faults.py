"""Telling transient S2 failures from permanent ones.

Transient: worth retrying later (S2 REST v1 retry guidance: 408, 429, 5xx, a dropped or timed
out connection, and :class:`~resumable_chat.s2.errors.S2UnavailableError`, which the S2 client
raises when its own retries ran out). Permanent: retrying cannot help (401/403, 400/422, a
missing basin, a condition mismatch).
"""

from __future__ import annotations

from resumable_chat.log.errors import FencedOutError, LogGapError
from resumable_chat.s2.errors import (
    BasinNotFoundError,
    FencingTokenMismatchError,
    RangeNotSatisfiableError,
    S2AuthError,
    S2Error,
    S2InvalidError,
    S2UnavailableError,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from resumable_chat.s2.retries import RETRYABLE_STATUSES

__all__ = ["is_transient"]

_PERMANENT = (
    S2AuthError,
    S2InvalidError,
    BasinNotFoundError,
    StreamNotFoundError,
    FencingTokenMismatchError,
    SeqNumMismatchError,
    RangeNotSatisfiableError,
    FencedOutError,
    LogGapError,
)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is an S2 failure that may succeed if retried later."""
    if not isinstance(exc, S2Error) or isinstance(exc, _PERMANENT):
        return False
    if isinstance(exc, S2UnavailableError) or exc.status is None:
        return True
    return exc.status in RETRYABLE_STATUSES or (
        exc.status == 409 and exc.code == "transaction_conflict"
    )
