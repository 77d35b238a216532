"""Retries of S2 calls: which failures are transient (and which certainly had no effect),
the backoff (https://s2.dev/docs/api: retry 408, 429, 500, 502, 503, 504 with exponential
backoff and ``retry-after-ms``), and the retry loop itself, on tenacity.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import httpx2
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
)

from resumable_chat.s2.errors import (
    BasinNotFoundError,
    FencingTokenMismatchError,
    RangeNotSatisfiableError,
    S2AuthError,
    S2CertificateError,
    S2Error,
    S2InvalidError,
    S2UnavailableError,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from resumable_chat.s2.records import (
    StreamPosition,
)
from resumable_chat.s2.wire import WireConditionFailed, WireErrorInfo, WireTailResponse

__all__ = [
    "RETRYABLE_STATUSES",
    "AttemptFailure",
    "RetryPolicy",
    "failure_from_response",
    "retrying",
    "transport_failure",
]

#: The environment variable that holds the S2 access token, named in auth errors.
ACCESS_TOKEN_ENV: Final = "S2_ACCESS_TOKEN"

#: Statuses worth retrying (https://s2.dev/docs/api, errors).
RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


# -- retries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, as the S2 SDKs do (https://s2.dev/docs/api, errors and
    retries).

    ``max_attempts`` counts the first try. Before retry ``n`` (1-based) the client sleeps
    ``min(max_backoff_s, base_s * 2**(n-1)) + uniform(0, base_s)`` seconds, or the server's
    ``retry-after-ms`` when that is longer (``max(retry_after, backoff)``, the Rust SDK's rule).
    """

    max_attempts: int = 4
    base_s: float = 0.1
    max_backoff_s: float = 1.0

    def delay_s(self, retry: int, retry_after_s: float | None = None) -> float:
        """Seconds to sleep before retry number ``retry`` (1 = the first retry)."""
        exponent = float(max(retry - 1, 0))
        backoff: float = min(self.max_backoff_s, self.base_s * 2.0**exponent)
        backoff += random.uniform(0, self.base_s)
        return max(backoff, retry_after_s or 0.0)


@dataclass(slots=True)
class AttemptFailure:
    """One failed attempt: the error to raise, and whether and how it may be retried."""

    error: S2Error
    retryable: bool = False
    #: The request certainly had no effect (429, 502 ``hot_server``, 409
    #: ``transaction_conflict``, a connection that was never made): even an unconditional
    #: append may be retried.
    no_side_effect: bool = False
    retry_after_s: float | None = None

    def final(self, op: str, attempts: int) -> S2Error:
        """The error to raise when this failure ends the call after ``attempts`` attempts."""
        if not self.retryable:
            return self.error
        note = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
        return S2UnavailableError(
            f"S2 {op} failed {note}: {self.error.message}",
            status=self.error.status,
            code=self.error.code,
        )


def _retry_after_s(headers: httpx2.Headers) -> float | None:
    value = headers.get("retry-after-ms")
    if value is None:
        return None
    try:
        return max(float(value), 0.0) / 1000
    except ValueError:
        return None


def failure_from_response(response: httpx2.Response, stream: str | None) -> AttemptFailure:
    """Map an S2 error response to a typed error (https://s2.dev/docs/api, errors)."""
    status = response.status_code
    body = response.content
    if status == 412:
        try:
            failed = WireConditionFailed.model_validate_json(body)
        except ValidationError:
            failed = WireConditionFailed()
        if failed.fencing_token_mismatch is not None:
            return AttemptFailure(FencingTokenMismatchError(failed.fencing_token_mismatch))
        if failed.seq_num_mismatch is not None:
            return AttemptFailure(SeqNumMismatchError(failed.seq_num_mismatch))
        return AttemptFailure(S2Error(f"append condition failed: {body[:200]!r}", status=412))
    if status == 416:
        try:
            tail = WireTailResponse.model_validate_json(body).tail.to_position()
        except ValidationError:
            tail = StreamPosition(0, 0)
        return AttemptFailure(RangeNotSatisfiableError(tail))
    try:
        info = WireErrorInfo.model_validate_json(body)
    except ValidationError:
        info = WireErrorInfo(message=body[:200].decode("utf-8", "replace") or None)
    code = info.code
    message = f"{status} {code or 'error'}: {info.message or response.reason_phrase}"
    retry_after = _retry_after_s(response.headers)
    if status == 404 and code == "stream_not_found" and stream is not None:
        return AttemptFailure(StreamNotFoundError(stream, message))
    if status == 404 and code == "basin_not_found":
        return AttemptFailure(BasinNotFoundError(message, status=status, code=code))
    if status in (401, 403):
        hint = f"check the {ACCESS_TOKEN_ENV} environment variable (the S2 access token)"
        return AttemptFailure(
            S2AuthError(f"S2 refused the request ({message}); {hint}", status=status, code=code)
        )
    if status in (400, 422):
        return AttemptFailure(S2InvalidError(message, status=status, code=code))
    if status == 409 and code == "transaction_conflict":
        return AttemptFailure(S2Error(message, status=status, code=code), True, True, retry_after)
    if status in RETRYABLE_STATUSES:
        no_side_effect = status == 429 or (status == 502 and code == "hot_server")
        return AttemptFailure(
            S2Error(message, status=status, code=code), True, no_side_effect, retry_after
        )
    return AttemptFailure(S2Error(message, status=status, code=code))


def _certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind a transport error, if it is one."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def transport_failure(exc: httpx2.TransportError) -> AttemptFailure:
    """Map an httpx2 transport error; only failures before sending are side-effect free.
    A TLS certificate that failed verification is :class:`S2CertificateError`, not retried."""
    refused = _certificate_failure(exc)
    if refused is not None:
        reason = refused.verify_message or refused.reason or str(refused)
        return AttemptFailure(
            S2CertificateError(
                f"S2's TLS certificate could not be verified ({reason}): install the system's "
                "CA certificates (Debian: ca-certificates) or set SSL_CERT_FILE to a CA bundle"
            )
        )
    error = S2Error(f"transport error talking to S2: {type(exc).__name__}: {exc}")
    retryable = isinstance(exc, httpx2.TimeoutException | httpx2.NetworkError)
    retryable = retryable or isinstance(exc, httpx2.RemoteProtocolError)
    never_sent = isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout)
    return AttemptFailure(error, retryable, never_sent)


Outcome = httpx2.Response | AttemptFailure


async def retrying(
    attempt: Callable[[float], Awaitable[Outcome]],
    *,
    policy: RetryPolicy,
    deadline_s: float,
    timeout_s: float,
    may_retry: Callable[[AttemptFailure], bool],
) -> tuple[Outcome, int]:
    """Call ``attempt(timeout_s)`` until it returns a response, a failure ``may_retry``
    refuses, ``policy.max_attempts`` attempts were made, or the next backoff would pass
    ``deadline_s`` (seconds from now).

    Each attempt gets ``timeout_s`` (seconds), cut to what is left of the deadline.

    Returns:
        The last outcome (an ``httpx2.Response`` on success, else the last
        :class:`AttemptFailure`) and how many attempts were made.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s

    def wait(state: RetryCallState) -> float:
        failure = state.outcome.result() if state.outcome is not None else None
        after = failure.retry_after_s if isinstance(failure, AttemptFailure) else None
        return policy.delay_s(state.attempt_number, after)

    controller = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(deadline_s),
        wait=wait,
        retry=retry_if_result(lambda o: isinstance(o, AttemptFailure) and may_retry(o)),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        sleep=asyncio.sleep,
        reraise=True,
    )
    attempts = 0

    async def one() -> Outcome:
        nonlocal attempts
        attempts += 1
        return await attempt(min(timeout_s, max(deadline - loop.time(), 0.001)))

    outcome: Outcome = await controller(one)
    return outcome, attempts
