"""``HttpBasin``: the log port over S2 REST v1 (JSON + SSE over one shared ``httpx.AsyncClient``).

It speaks to s2.dev, to s2-lite and to the bundled test server
(:mod:`resumable_chat.testing.s2_server`) alike:

- paths under ``/v1``; the basin endpoint is ``https://{basin}.b.s2.dev`` by default, and when
  it has no ``{basin}`` placeholder (s2-lite, the test server) every ``/v1/streams*`` request
  carries ``S2-Basin: <basin>`` (S2 REST v1 §1.1);
- ``s2-format: base64`` on every request: header names, values and bodies travel as standard
  padded base64, while ``fencing_token`` stays a plain JSON string (§1.4);
- typed errors from :mod:`resumable_chat.s2.errors` for every documented failure (§3);
- retries with exponential backoff and jitter honouring ``retry-after-ms`` (§3, the Rust SDK's
  policy); appends are retried only when ``match_seq_num`` makes a retry safe, or when the
  failure guarantees nothing was written; a lost acknowledgement is detected by reading the
  range back, never by writing twice;
- live following over an SSE read session that resumes with an explicit ``seq_num`` after a
  drop, so no record is skipped or repeated (§1.6, like the TypeScript SDK's
  ``RetryReadSession``).

The pydantic ``Wire*`` models describe the JSON shapes (``extra="ignore"``, optional fields, as
the API still grows fields); they are converted to the dataclasses of
:mod:`resumable_chat.s2.records` at this boundary. Append bodies are built from plain dicts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import quote

import httpx
from httpx_sse import EventSource
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from resumable_chat.s2.basin import Basin
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
from resumable_chat.s2.names import check_basin_name
from resumable_chat.s2.records import (
    AppendAck,
    AppendInput,
    ReadBatch,
    SequencedRecord,
    StreamPosition,
    is_fence,
)

__all__ = [
    "ACCESS_TOKEN_ENV",
    "DEFAULT_ACCOUNT_ENDPOINT",
    "DEFAULT_BASIN_ENDPOINT",
    "HttpBasin",
    "RetryPolicy",
    "WireAppendAck",
    "WireAppendInput",
    "WireAppendRecord",
    "WireConditionFailed",
    "WireErrorInfo",
    "WirePing",
    "WireReadBatch",
    "WireSequencedRecord",
    "WireStreamPosition",
    "WireTailResponse",
    "encode_append_input",
]

logger = logging.getLogger(__name__)

#: Account endpoint of s2.dev (the SDKs' default; S2 REST v1 §1.1).
DEFAULT_ACCOUNT_ENDPOINT: Final = "https://a.s2.dev"
#: Basin endpoint template of s2.dev; ``{basin}`` is replaced by the basin name.
DEFAULT_BASIN_ENDPOINT: Final = "https://{basin}.b.s2.dev"
#: The environment variable that holds the S2 access token, named in auth errors.
ACCESS_TOKEN_ENV: Final = "S2_ACCESS_TOKEN"

#: Statuses worth retrying (S2 REST v1 §3 retry guidance).
_RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
#: Unary reads may long-poll at most this many seconds (S2 caps ``wait`` at 60).
_MAX_WAIT_S: Final = 60
_JSON: Final = "application/json"

T = TypeVar("T")

# -- wire models ---------------------------------------------------------------------------

U64 = Annotated[int, Field(ge=0, lt=2**64)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WireStreamPosition(_Wire):
    """JSON ``StreamPosition``: ``seq_num`` (records) and ``timestamp`` (ms since the epoch)."""

    seq_num: U64 = 0
    timestamp: U64 = 0

    def to_position(self) -> StreamPosition:
        """The :class:`~resumable_chat.s2.records.StreamPosition` dataclass of this position."""
        return StreamPosition(self.seq_num, self.timestamp)


class WireAppendRecord(_Wire):
    """JSON ``AppendRecord``: ``timestamp`` (ms or null), ``headers`` as ``[name, value]``
    pairs and ``body``, both strings encoded per ``s2-format`` (S2 REST v1 §1.3)."""

    timestamp: U64 | None = None
    headers: list[tuple[str, str]] = Field(default_factory=list)
    body: str = ""


class WireAppendInput(_Wire):
    """JSON ``AppendInput``: 1-1000 ``records``, optional ``match_seq_num`` and a plain-string
    ``fencing_token`` (never base64, whatever ``s2-format`` says; S2 REST v1 §1.3)."""

    records: list[WireAppendRecord]
    match_seq_num: U64 | None = None
    fencing_token: str | None = None


class WireAppendAck(_Wire):
    """JSON ``AppendAck``: ``start``, ``end`` (one past the last record) and ``tail``."""

    start: WireStreamPosition
    end: WireStreamPosition
    tail: WireStreamPosition

    def to_ack(self) -> AppendAck:
        """The :class:`~resumable_chat.s2.records.AppendAck` dataclass of this ack."""
        return AppendAck(self.start.to_position(), self.end.to_position(), self.tail.to_position())


class WireSequencedRecord(_Wire):
    """JSON ``SequencedRecord``; ``headers`` and ``body`` are omitted when empty (§1.4)."""

    seq_num: U64
    timestamp: U64 = 0
    headers: list[tuple[str, str]] = Field(default_factory=list)
    body: str = ""


class WireReadBatch(_Wire):
    """JSON ``ReadBatch``: ``records`` and, when the read reached recent records, ``tail``."""

    records: list[WireSequencedRecord] = Field(default_factory=list)
    tail: WireStreamPosition | None = None


class WireTailResponse(_Wire):
    """JSON ``TailResponse`` ``{"tail": StreamPosition}`` (check-tail and the 416 body)."""

    tail: WireStreamPosition


class WireErrorInfo(_Wire):
    """JSON ``ErrorInfo`` ``{"code", "message"}``, the standard error body (S2 REST v1 §3)."""

    code: str | None = None
    message: str | None = None


class WireConditionFailed(_Wire):
    """412 body: ``{"fencing_token_mismatch": T}`` or ``{"seq_num_mismatch": N}`` (§3)."""

    fencing_token_mismatch: str | None = None
    seq_num_mismatch: U64 | None = None


class WirePing(_Wire):
    """Data of an SSE ``ping`` event: server time (ms) and, on newer servers, the tail."""

    timestamp: U64 | None = None
    tail: WireStreamPosition | None = None


# -- encoding ------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def encode_append_input(input: AppendInput) -> bytes:
    """The JSON body (UTF-8 bytes) of an S2 REST v1 append for ``s2-format: base64``.

    Built from plain dicts (the hot path of every append): ``timestamp`` only when set,
    ``headers`` as base64 ``[name, value]`` pairs only when present, ``body`` base64 only when
    non-empty, ``match_seq_num`` / ``fencing_token`` (plain string) only when not ``None``.
    """
    records: list[dict[str, Any]] = []
    for record in input.records:
        item: dict[str, Any] = {}
        if record.timestamp is not None:
            item["timestamp"] = record.timestamp
        if record.headers:
            item["headers"] = [[_b64(name), _b64(value)] for name, value in record.headers]
        if record.body:
            item["body"] = _b64(record.body)
        records.append(item)
    payload: dict[str, Any] = {"records": records}
    if input.match_seq_num is not None:
        payload["match_seq_num"] = input.match_seq_num
    if input.fencing_token is not None:
        payload["fencing_token"] = input.fencing_token
    return json.dumps(payload, separators=(",", ":")).encode()


def _decode_batch(data: str | bytes) -> ReadBatch:
    """A base64-format ``ReadBatch`` JSON document as a :class:`ReadBatch`.

    Raises ``S2Error`` when the document is not a valid ``ReadBatch``.
    """
    try:
        wire = WireReadBatch.model_validate_json(data)
        records = [
            SequencedRecord(
                r.seq_num,
                r.timestamp,
                tuple((_unb64(n), _unb64(v)) for n, v in r.headers),
                _unb64(r.body),
            )
            for r in wire.records
        ]
    except (ValidationError, binascii.Error, ValueError) as exc:
        raise S2Error(f"malformed ReadBatch from S2: {exc}") from exc
    return ReadBatch(records, wire.tail.to_position() if wire.tail is not None else None)


# -- retries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, as the S2 SDKs do (S2 REST v1 §3 retry guidance).

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
class _Failure:
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


def _retry_after_s(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after-ms")
    if value is None:
        return None
    try:
        return max(float(value), 0.0) / 1000
    except ValueError:
        return None


def _failure_from_response(response: httpx.Response, stream: str | None) -> _Failure:
    """Map an S2 error response to a typed error (S2 REST v1 §3)."""
    status = response.status_code
    body = response.content
    if status == 412:
        try:
            failed = WireConditionFailed.model_validate_json(body)
        except ValidationError:
            failed = WireConditionFailed()
        if failed.fencing_token_mismatch is not None:
            return _Failure(FencingTokenMismatchError(failed.fencing_token_mismatch))
        if failed.seq_num_mismatch is not None:
            return _Failure(SeqNumMismatchError(failed.seq_num_mismatch))
        return _Failure(S2Error(f"append condition failed: {body[:200]!r}", status=412))
    if status == 416:
        try:
            tail = WireTailResponse.model_validate_json(body).tail.to_position()
        except ValidationError:
            tail = StreamPosition(0, 0)
        return _Failure(RangeNotSatisfiableError(tail))
    try:
        info = WireErrorInfo.model_validate_json(body)
    except ValidationError:
        info = WireErrorInfo(message=body[:200].decode("utf-8", "replace") or None)
    code = info.code
    message = f"{status} {code or 'error'}: {info.message or response.reason_phrase}"
    retry_after = _retry_after_s(response.headers)
    if status == 404 and code == "stream_not_found" and stream is not None:
        return _Failure(StreamNotFoundError(stream, message))
    if status == 404 and code == "basin_not_found":
        return _Failure(BasinNotFoundError(message, status=status, code=code))
    if status in (401, 403):
        hint = f"check the {ACCESS_TOKEN_ENV} environment variable (the S2 access token)"
        return _Failure(
            S2AuthError(f"S2 refused the request ({message}); {hint}", status=status, code=code)
        )
    if status in (400, 422):
        return _Failure(S2InvalidError(message, status=status, code=code))
    if status == 409 and code == "transaction_conflict":
        return _Failure(S2Error(message, status=status, code=code), True, True, retry_after)
    if status in _RETRYABLE_STATUSES:
        no_side_effect = status == 429 or (status == 502 and code == "hot_server")
        return _Failure(
            S2Error(message, status=status, code=code), True, no_side_effect, retry_after
        )
    return _Failure(S2Error(message, status=status, code=code))


def _transport_failure(exc: httpx.TransportError) -> _Failure:
    """Map an httpx transport error; only failures before sending are side-effect free."""
    error = S2Error(f"transport error talking to S2: {type(exc).__name__}: {exc}")
    retryable = isinstance(exc, httpx.TimeoutException | httpx.NetworkError)
    retryable = retryable or isinstance(exc, httpx.RemoteProtocolError)
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return _Failure(error, retryable, never_sent)


def _wait_param(wait: float) -> int:
    """``wait`` in whole seconds as S2 takes it (rounded up; 0 to 60)."""
    if wait <= 0:
        return 0
    return min(math.ceil(wait), _MAX_WAIT_S)


# -- the basin -----------------------------------------------------------------------------


class HttpBasin(Basin):
    """An S2 basin over S2 REST v1 (see the module docstring for the wire rules).

    Args:
        basin: the basin name (``S2_BASIN``).
        access_token: sent as ``Authorization: Bearer``; ``None`` sends none (s2-lite and the
            test server do not check it).
        account_endpoint: base URL of basin management (default ``https://a.s2.dev``).
        basin_endpoint: base URL of stream requests (default ``https://{basin}.b.s2.dev``);
            without ``{basin}`` the ``S2-Basin`` header is sent on stream requests.
        client: a shared ``httpx.AsyncClient`` to use; when ``None`` one is created and
            closed by :meth:`aclose`. A passed client is never closed here.
        max_attempts: tries per call, including the first (:class:`RetryPolicy`).
        create_missing_streams: an append, read or check-tail that gets 404
            ``stream_not_found`` creates the stream and retries once (as if the basin had
            ``create_stream_on_append`` / ``create_stream_on_read``).
        retry_base_s: backoff base in seconds: retry ``n`` waits ``min(retry_max_backoff_s,
            retry_base_s * 2**(n-1))`` plus up to ``retry_base_s`` of jitter
            (:class:`RetryPolicy`).
        retry_max_backoff_s: the longest backoff between retries, in seconds.
        timeout_s: per-request timeout in seconds (a unary read adds its ``wait``).
        deadline_s: the most one call may take in seconds, all its retries included (a unary
            read adds its ``wait``), so an outage surfaces as ``S2UnavailableError`` in bounded
            time; each attempt's timeout is cut to what is left of it.
        heartbeat_timeout_s: a live follow that hears nothing (no batch, no ping) for this
            many seconds reconnects; S2 pings every 5-15 s.

    Raises:
        S2NameError: ``basin`` is not a valid S2 basin name (8 to 48 of ``a-z 0-9 -``, no
            leading or trailing hyphen; :mod:`resumable_chat.s2.names`). It is a
            ``ValueError``.
        ValueError: ``max_attempts`` below 1.
    """

    def __init__(
        self,
        basin: str,
        *,
        access_token: str | None,
        account_endpoint: str | None = None,
        basin_endpoint: str | None = None,
        client: httpx.AsyncClient | None = None,
        max_attempts: int = 4,
        create_missing_streams: bool = True,
        retry_base_s: float = 0.1,
        retry_max_backoff_s: float = 1.0,
        timeout_s: float = 30.0,
        heartbeat_timeout_s: float = 30.0,
        deadline_s: float = 10.0,
    ) -> None:
        check_basin_name(basin)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not deadline_s > 0:
            raise ValueError("deadline_s must be > 0")
        self.deadline_s = deadline_s
        self.name = basin
        self.retry = RetryPolicy(max_attempts, retry_base_s, retry_max_backoff_s)
        self.create_missing_streams = create_missing_streams
        self._timeout_s = timeout_s
        self._heartbeat_timeout_s = heartbeat_timeout_s
        self._account_url = (account_endpoint or DEFAULT_ACCOUNT_ENDPOINT).rstrip("/") + "/v1"
        template = basin_endpoint or DEFAULT_BASIN_ENDPOINT
        self._basin_url = template.replace("{basin}", basin).rstrip("/") + "/v1"
        common = {"s2-format": "base64"}
        if access_token is not None:
            common["Authorization"] = f"Bearer {access_token}"
        self._account_headers = dict(common)
        self._stream_headers = dict(common)
        if "{basin}" not in template:
            self._stream_headers["S2-Basin"] = basin
        self._owns_client = client is None
        self._client = client if client is not None else self._new_client()
        self._closed = False

    def __repr__(self) -> str:
        return f"HttpBasin(name={self.name!r}, endpoint={self._basin_url!r})"

    @staticmethod
    def _new_client() -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0))

    # -- plumbing --------------------------------------------------------------------------

    def _stream_url(self, stream: str, suffix: str = "") -> str:
        return f"{self._basin_url}/streams/{quote(stream, safe='')}{suffix}"

    async def _attempt(
        self,
        method: str,
        url: str,
        *,
        stream: str | None,
        headers: Mapping[str, str],
        params: Mapping[str, str | int] | None = None,
        content: bytes | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response | _Failure:
        """One HTTP exchange: the response on 2xx, else the classified failure."""
        try:
            response = await self._client.request(
                method,
                url,
                headers=headers,
                params=params,
                content=content,
                timeout=timeout_s if timeout_s is not None else self._timeout_s,
            )
        except httpx.TransportError as exc:
            return _transport_failure(exc)
        if response.is_success:
            return response
        return _failure_from_response(response, stream)

    async def _call(
        self,
        op: str,
        method: str,
        url: str,
        *,
        stream: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        content: bytes | None = None,
        timeout_s: float | None = None,
        retry_codes: frozenset[str] = frozenset(),
    ) -> httpx.Response:
        """An idempotent request with retries; ``retry_codes`` adds retryable S2 codes."""
        hdrs = headers if headers is not None else self._stream_headers
        loop = asyncio.get_running_loop()
        budget = self.deadline_s + (timeout_s - self._timeout_s if timeout_s else 0.0)
        deadline = loop.time() + budget
        attempt = 0
        while True:
            attempt += 1
            outcome = await self._attempt(
                method,
                url,
                stream=stream,
                headers=hdrs,
                params=params,
                content=content,
                timeout_s=min(timeout_s or self._timeout_s, max(deadline - loop.time(), 0.001)),
            )
            if isinstance(outcome, httpx.Response):
                return outcome
            if outcome.error.code in retry_codes:
                outcome.retryable = True
            if not outcome.retryable or attempt >= self.retry.max_attempts:
                raise outcome.final(op, attempt)
            delay = self.retry.delay_s(attempt, outcome.retry_after_s)
            if loop.time() + delay >= deadline:
                raise outcome.final(op, attempt)
            await asyncio.sleep(delay)

    async def _creating(self, stream: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call``; on ``StreamNotFoundError`` create the stream and run it once more."""
        try:
            return await call()
        except StreamNotFoundError:
            if not self.create_missing_streams:
                raise
        await self.create_stream(stream)
        return await call()

    # -- Basin -----------------------------------------------------------------------------

    async def append(self, stream: str, input: AppendInput) -> AppendAck:
        """Append one atomic batch (S2 REST v1 ``POST /streams/{stream}/records``).

        ``input``: 1-1000 records, ≤ 1 MiB metered (checked by S2: 422 →
        ``S2InvalidError``). Returns the :class:`AppendAck`. Raises
        ``FencingTokenMismatchError`` / ``SeqNumMismatchError`` (412), ``StreamNotFoundError``
        (404, unless ``create_missing_streams``), ``S2AuthError``, ``S2InvalidError``, or
        ``S2UnavailableError`` when retries ran out.

        Retries: with ``match_seq_num`` every retryable failure is retried (a retry cannot
        duplicate); without it only failures that guarantee nothing was written (429, 502
        ``hot_server``, 409 ``transaction_conflict``, connection never made). When a guarded
        retry gets 412 after an ambiguous failure (500, timeout, dropped connection) and the
        412 says the batch may already be there, the range is read back: if it holds exactly
        the records sent (headers and body), the lost ack is rebuilt and returned.
        """
        content = encode_append_input(input)
        return await self._creating(stream, lambda: self._append(stream, input, content))

    async def _append(self, stream: str, input: AppendInput, content: bytes) -> AppendAck:
        guarded = input.match_seq_num is not None
        headers = {**self._stream_headers, "Content-Type": _JSON}
        url = self._stream_url(stream, "/records")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        ambiguous = False
        attempt = 0
        while True:
            attempt += 1
            timeout = min(self._timeout_s, max(deadline - loop.time(), 0.001))
            outcome = await self._attempt(
                "POST", url, stream=stream, headers=headers, content=content, timeout_s=timeout
            )
            if isinstance(outcome, httpx.Response):
                try:
                    return WireAppendAck.model_validate_json(outcome.content).to_ack()
                except ValidationError as exc:
                    raise S2Error(f"malformed AppendAck from S2: {exc}") from exc
            if ambiguous and self._may_have_landed(input, outcome.error):
                ack = await self._recover_lost_ack(stream, input)
                if ack is not None:
                    logger.info("append to %s: ack was lost, the batch is in the log", stream)
                    return ack
                raise outcome.error
            retry = outcome.retryable and (guarded or outcome.no_side_effect)
            if not retry or attempt >= self.retry.max_attempts:
                if outcome.retryable and not retry:
                    raise S2UnavailableError(
                        f"S2 append failed ({outcome.error.message}) and was not retried: "
                        "without match_seq_num a retry could write the batch twice",
                        status=outcome.error.status,
                        code=outcome.error.code,
                    )
                raise outcome.final("append", attempt)
            if not outcome.no_side_effect:
                ambiguous = True
            delay = self.retry.delay_s(attempt, outcome.retry_after_s)
            if loop.time() + delay >= deadline:
                raise outcome.final("append", attempt)
            await asyncio.sleep(delay)

    @staticmethod
    def _may_have_landed(input: AppendInput, error: S2Error) -> bool:
        """Whether a 412 on a retry is explained by an earlier attempt having been written."""
        if input.match_seq_num is None:
            return False
        if isinstance(error, SeqNumMismatchError):
            return error.expected_seq_num >= input.match_seq_num + len(input.records)
        if isinstance(error, FencingTokenMismatchError):
            fences = [r.body for r in input.records if is_fence(r)]
            return bool(fences) and fences[-1] == error.expected_fencing_token.encode()
        return False

    async def _recover_lost_ack(self, stream: str, input: AppendInput) -> AppendAck | None:
        """Rebuild the ack of a batch found at ``match_seq_num``, or ``None`` if it is not there."""
        start = input.match_seq_num
        assert start is not None
        count = len(input.records)
        try:
            batch = await self.read(stream, seq_num=start, count=count, wait=0)
        except S2Error:
            return None
        stored = batch.records
        if len(stored) != count or stored[0].seq_num != start:
            return None
        for sent, got in zip(input.records, stored, strict=True):
            if sent.body != got.body or tuple(sent.headers) != tuple(got.headers):
                return None
        end = StreamPosition(start + count, stored[-1].timestamp)
        tail = batch.tail if batch.tail is not None else await self.check_tail(stream)
        return AppendAck(StreamPosition(start, stored[0].timestamp), end, tail)

    async def read(
        self,
        stream: str,
        *,
        seq_num: int | None = None,
        timestamp: int | None = None,
        tail_offset: int | None = None,
        count: int | None = None,
        bytes: int | None = None,
        until: int | None = None,
        clamp: bool = False,
        wait: float = 0,
    ) -> ReadBatch:
        """One bounded read (S2 REST v1 unary ``GET /streams/{stream}/records``).

        Start: at most one of ``seq_num``, ``timestamp`` (ms), ``tail_offset`` (records);
        none means the tail. Limits: ``count`` records (≤ 1000), ``bytes`` metered (≤ 1 MiB),
        ``until`` exclusive timestamp (ms). ``wait`` (seconds; S2 takes whole seconds, so it
        is rounded up, capped at 60) is always sent, so the read long-polls only when asked.
        Raises ``RangeNotSatisfiableError`` (416: start past the tail, or at the tail with
        ``wait=0``, even with ``clamp``), ``StreamNotFoundError``, ``S2InvalidError`` (422,
        e.g. two start parameters), ``S2UnavailableError``.
        """
        params: dict[str, str | int] = {}
        for key, value in (
            ("seq_num", seq_num),
            ("timestamp", timestamp),
            ("tail_offset", tail_offset),
            ("count", count),
            ("bytes", bytes),
            ("until", until),
        ):
            if value is not None:
                params[key] = value
        if clamp:
            params["clamp"] = "true"
        wait_s = _wait_param(wait)
        params["wait"] = wait_s
        url = self._stream_url(stream, "/records")
        headers = {**self._stream_headers, "Accept": _JSON}
        timeout = self._timeout_s + wait_s

        async def call() -> httpx.Response:
            return await self._call(
                "read", "GET", url, stream=stream, headers=headers, params=params, timeout_s=timeout
            )

        response = await self._creating(stream, call)
        return _decode_batch(response.content)

    async def check_tail(self, stream: str) -> StreamPosition:
        """The stream's tail (S2 REST v1 ``GET /streams/{stream}/records/tail``).

        Returns the next seq_num to be assigned and the last record's timestamp (ms). Raises
        ``StreamNotFoundError`` (unless ``create_missing_streams``), ``S2AuthError``,
        ``S2UnavailableError``.
        """
        url = self._stream_url(stream, "/records/tail")

        async def call() -> httpx.Response:
            return await self._call("check_tail", "GET", url, stream=stream)

        response = await self._creating(stream, call)
        try:
            return WireTailResponse.model_validate_json(response.content).tail.to_position()
        except ValidationError as exc:
            raise S2Error(f"malformed TailResponse from S2: {exc}") from exc

    async def follow(
        self, stream: str, *, seq_num: int = 0, clamp: bool = False
    ) -> AsyncGenerator[ReadBatch, None]:
        """Read from ``seq_num`` on and follow live (S2 REST v1 SSE read session).

        Yields non-empty :class:`ReadBatch` es in seq_num order. Events: ``batch`` (a
        ``ReadBatch``), ``ping`` (heartbeat), ``error`` (the session failed: reconnect) and
        ``data: [DONE]`` (the server ended the session). A dropped connection, an ``error``
        event, a retryable status or ``heartbeat_timeout_s`` of silence reconnects with an
        explicit ``seq_num=<last delivered + 1>`` (never ``Last-Event-ID``), so nothing is
        skipped or repeated; ``max_attempts`` failures in a row without progress raise
        ``S2UnavailableError``. On the first connection a start past the tail raises
        ``RangeNotSatisfiableError`` unless ``clamp``, and any 4xx other than 408/429 fails
        at once. The follow ends quietly (returns) when the server ends the session or the
        stream disappears (deleted) after the first connection, or after :meth:`aclose`.
        """
        url = self._stream_url(stream, "/records")
        headers = {**self._stream_headers, "Accept": "text/event-stream"}
        timeout = httpx.Timeout(
            self._timeout_s, read=self._heartbeat_timeout_s, pool=self._timeout_s
        )
        next_seq = seq_num
        delivered = False  # next_seq is a delivered record's successor (not a clamped start)
        connected_once = False
        created = False
        failures = 0
        while not self._closed:
            failure: _Failure | None = None
            params: dict[str, str | int] = {"seq_num": next_seq}
            if clamp:
                params["clamp"] = "true"
            try:
                async with self._client.stream(
                    "GET", url, params=params, headers=headers, timeout=timeout
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        failure = _failure_from_response(response, stream)
                    else:
                        connected_once = True
                        async for sse in EventSource(response).aiter_sse():
                            if sse.event == "batch":
                                batch = _decode_batch(sse.data)
                                records = batch.records
                                if delivered:  # never repeat a record after a reconnect
                                    records = [r for r in records if r.seq_num >= next_seq]
                                failures = 0
                                if records:
                                    delivered = True
                                    next_seq = records[-1].seq_num + 1
                                    yield ReadBatch(records, batch.tail)
                            elif sse.event == "ping":
                                failures = 0
                            elif sse.event == "error":
                                failure = self._error_event(sse.data)
                                break
                            elif sse.data.strip() == "[DONE]":
                                return
                        else:
                            failure = _Failure(S2Error("S2 read session ended early"), True)
            except httpx.TransportError as exc:
                failure = _transport_failure(exc)
            except S2Error as exc:  # a malformed batch: treat like a broken connection
                failure = _Failure(exc, True)
            if self._closed:
                return
            assert failure is not None
            error = failure.error
            if connected_once and isinstance(error, StreamNotFoundError | RangeNotSatisfiableError):
                return  # the stream was deleted (and maybe recreated) under us
            if (
                isinstance(error, StreamNotFoundError)
                and self.create_missing_streams
                and not created
            ):
                created = True
                await self.create_stream(stream)
                continue
            failures += 1
            if not failure.retryable or failures >= self.retry.max_attempts:
                raise failure.final("read session", failures)
            logger.debug("follow %s: reconnecting at seq_num %d (%s)", stream, next_seq, error)
            await asyncio.sleep(self.retry.delay_s(failures, failure.retry_after_s))

    @staticmethod
    def _error_event(data: str) -> _Failure:
        """An SSE ``error`` event: retryable, as the TypeScript SDK treats it (503)."""
        try:
            info = WireErrorInfo.model_validate_json(data)
        except ValidationError:
            info = WireErrorInfo(message=data[:200])
        message = f"read session error {info.code or ''}: {info.message or ''}".strip()
        return _Failure(S2Error(message, code=info.code), retryable=True)

    async def create_stream(self, stream: str) -> None:
        """Create ``stream`` if missing (S2 REST v1 ``POST /streams``; 409
        ``resource_already_exists`` counts as success, and 409 ``stream_deletion_pending`` is
        retried). Raises ``S2InvalidError`` (bad name), ``S2AuthError``, ``S2UnavailableError``.
        """
        content = json.dumps({"stream": stream}).encode()
        headers = {**self._stream_headers, "Content-Type": _JSON}
        try:
            await self._call(
                "create_stream",
                "POST",
                f"{self._basin_url}/streams",
                stream=stream,
                headers=headers,
                content=content,
                retry_codes=frozenset({"stream_deletion_pending"}),
            )
        except S2Error as exc:
            if exc.status == 409 and exc.code == "resource_already_exists":
                return
            raise

    async def delete_stream(self, stream: str) -> None:
        """Delete ``stream`` (S2 REST v1 ``DELETE /streams/{stream}``, 202; deletion finishes
        asynchronously on S2). A missing stream, or one already being deleted, is not an error.
        """
        try:
            await self._call("delete_stream", "DELETE", self._stream_url(stream), stream=stream)
        except StreamNotFoundError:
            return
        except S2Error as exc:
            if exc.status == 409 and exc.code == "stream_deletion_pending":
                return
            raise

    # -- start-up check --------------------------------------------------------------------

    async def check(self, stream: str) -> None:
        """One cheap request proving that S2 answers, accepts the token and has the basin.

        S2 REST v1 ``GET /streams/{stream}/records/tail`` on ``stream`` (a probe name, see
        :func:`~resumable_chat.s2.check.check_basin`), with the usual retries of transient
        failures; a missing stream is success and is not created here (a basin with
        *create stream on read* may create it: an empty stream, which costs nothing).

        Raises:
            S2AuthError: S2 refused the token (401/403); the message names
                ``S2_ACCESS_TOKEN``.
            BasinNotFoundError: the basin does not exist (404 ``basin_not_found``).
            S2UnavailableError: S2 could not be reached (connection refused, DNS, timeout) or
                kept failing (5xx) past the retry budget; the message names the endpoint.
            S2InvalidError / S2Error: S2 refused the request for another reason.
        """
        endpoint = self._basin_url.removesuffix("/v1")
        try:
            await self._call(
                "check", "GET", self._stream_url(stream, "/records/tail"), stream=stream
            )
        except StreamNotFoundError:
            return
        except BasinNotFoundError as exc:
            raise BasinNotFoundError(
                f"S2 basin {self.name!r} does not exist at {endpoint} ({exc.message}): create "
                "it, or set S2_BASIN to an existing basin",
                status=exc.status,
                code=exc.code,
            ) from None
        except S2UnavailableError as exc:
            what = "did not answer" if exc.status is None else "is unavailable"
            raise S2UnavailableError(
                f"S2 at {endpoint} {what} ({exc.message}): check S2_BASIN_ENDPOINT "
                "(and S2_ACCOUNT_ENDPOINT) and the network",
                status=exc.status,
                code=exc.code,
            ) from None

    # -- account level ---------------------------------------------------------------------

    async def create_basin(
        self,
        *,
        create_stream_on_append: bool | None = None,
        create_stream_on_read: bool | None = None,
    ) -> None:
        """Create this basin (S2 REST v1 ``POST /basins`` on the account endpoint).

        The flags set the basin config of the same names when given. An existing basin (409
        ``resource_already_exists``) is success. Raises ``S2InvalidError`` (bad basin name:
        8-48 of ``[a-z0-9-]``), ``S2AuthError``, ``S2UnavailableError``.
        """
        config: dict[str, bool] = {}
        if create_stream_on_append is not None:
            config["create_stream_on_append"] = create_stream_on_append
        if create_stream_on_read is not None:
            config["create_stream_on_read"] = create_stream_on_read
        body: dict[str, Any] = {"basin": self.name}
        if config:
            body["config"] = config
        headers = {**self._account_headers, "Content-Type": _JSON}
        try:
            await self._call(
                "create_basin",
                "POST",
                f"{self._account_url}/basins",
                headers=headers,
                content=json.dumps(body).encode(),
            )
        except S2Error as exc:
            if exc.status == 409 and exc.code == "resource_already_exists":
                return
            raise

    async def delete_basin(self) -> None:
        """Delete this basin and all its streams (S2 REST v1 ``DELETE /basins/{basin}``, 202).

        A missing basin is not an error. Raises ``S2AuthError``, ``S2UnavailableError``.
        """
        try:
            await self._call(
                "delete_basin",
                "DELETE",
                f"{self._account_url}/basins/{quote(self.name, safe='')}",
                headers=self._account_headers,
            )
        except BasinNotFoundError:
            return

    async def aclose(self) -> None:
        """Stop live follows and close the ``httpx.AsyncClient`` if this basin created it.

        Idempotent. A client passed in by the caller is left open.
        """
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()
