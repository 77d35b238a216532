"""``HttpBasin``: the log port over S2 REST v1 (JSON, and SSE read sessions on their own pool).

It speaks to s2.dev, to s2-lite and to the bundled test server
(:mod:`resumable_chat.testing.s2_server`) alike:

- paths under ``/v1``; the basin endpoint is ``https://{basin}.b.s2.dev`` by default, and when
  it has no ``{basin}`` placeholder (s2-lite, the test server) every ``/v1/streams*`` request
  carries ``S2-Basin: <basin>`` (https://s2.dev/docs/api);
- ``s2-format: base64`` on every request: header names, values and bodies travel as standard
  padded base64, while ``fencing_token`` stays a plain JSON string (S2's ``s2-format`` header);
- typed errors from :mod:`resumable_chat.s2.errors` for every documented failure (https://s2.dev/docs/api);
- retries with exponential backoff and jitter honouring ``retry-after-ms``
  (https://s2.dev/docs/api, the Rust SDK's
  policy); appends are retried only when ``match_seq_num`` makes a retry safe, or when the
  failure guarantees nothing was written; a lost acknowledgement is detected by reading the
  range back, never by writing twice;
- live following over an SSE read session that resumes with an explicit ``seq_num`` after a
  drop, so no record is skipped or repeated (like the TypeScript SDK's
  ``RetryReadSession``).

HTTP goes through ``httpx2`` (pydantic's maintained successor of ``httpx``, on ``httpcore2``).
Its connection pool hands an idle connection to one request at a time; httpcore 1.0.9, the
last release under ``httpx`` 0.28-0.29, could hand one to several that then raced for it and
retried, each race costing turns of a busy event loop (encode/httpcore#822, fixed in
pydantic/httpx2#1075), and kept for good a connection a cancelled request left half-made
(encode/httpcore#1093, fixed in pydantic/httpx2#983). With 100 answers appending over one
process, appends took 80-280 ms (p50) and 0.9-2 s (p99) there against 20 ms and 0.4 s here.

The pydantic ``Wire*`` models describe the JSON shapes (``extra="ignore"``, optional fields, as
the API still grows fields); they are converted to the dataclasses of
:mod:`resumable_chat.s2.records` at this boundary. Append bodies are built from plain dicts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx2
from pydantic import ValidationError

from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import (
    BasinNotFoundError,
    FencingTokenMismatchError,
    RangeNotSatisfiableError,
    S2Error,
    S2UnavailableError,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from resumable_chat.s2.names import check_basin_name
from resumable_chat.s2.pacing import DEFAULT_APPENDS_PER_S, AppendPacing
from resumable_chat.s2.records import (
    AppendAck,
    AppendInput,
    ReadBatch,
    StreamPosition,
    is_fence,
)
from resumable_chat.s2.retries import (
    ACCESS_TOKEN_ENV,
    AttemptFailure,
    RetryPolicy,
    failure_from_response,
    retrying,
    transport_failure,
)
from resumable_chat.s2.wire import (
    WireAppendAck,
    WireErrorInfo,
    WireTailResponse,
    decode_batch,
    encode_append_input,
)

__all__ = [
    "ACCESS_TOKEN_ENV",
    "DEFAULT_ACCOUNT_ENDPOINT",
    "DEFAULT_BASIN_ENDPOINT",
    "HttpBasin",
    "RetryPolicy",
]

logger = logging.getLogger(__name__)

#: Connections each of the basin's own ``httpx2`` pools opens at most, and keeps idle at most.
#: A steady load's spare connections fit in 20; a burst beyond opens new ones. (Under httpx
#: 0.28's httpcore 1.0.9 every idle connection cost a poll of its socket on each request, and
#: more than 20 in the pool closed every idle one: encode/httpcore PR #928 and #1035, open.)
POOL_MAX_CONNECTIONS = 1000
POOL_MAX_KEEPALIVE = 20
#: Account endpoint of s2.dev (the SDKs' default; https://s2.dev/docs/api).
DEFAULT_ACCOUNT_ENDPOINT: Final = "https://a.s2.dev"
#: Basin endpoint template of s2.dev; ``{basin}`` is replaced by the basin name.
DEFAULT_BASIN_ENDPOINT: Final = "https://{basin}.b.s2.dev"

#: Unary reads may long-poll at most this many seconds (S2 caps ``wait`` at 60).
_MAX_WAIT_S: Final = 60

#: The largest SSE event a read session may carry, in bytes. S2 sends at most 1 MiB of
#: records (metered) in one ``batch`` event, about 1.4 MiB as base64 JSON; a larger event
#: fails the follow with ``S2Error`` at once (not retried: a server that sent it would send
#: it again) instead of being buffered without bound.
_MAX_EVENT_BYTES: Final = 8 * 1024 * 1024
_JSON: Final = "application/json"

T = TypeVar("T")


def _wait_param(wait: float) -> int:
    """``wait`` in whole seconds as S2 takes it (rounded up; 0 to 60)."""
    if wait <= 0:
        return 0
    return min(math.ceil(wait), _MAX_WAIT_S)


def _moves_fencing_token(input: AppendInput) -> bool:
    """Whether ``input`` is conditioned on a fencing token and sets another with a fence
    command: once it lands, S2 refuses the same batch again (412 on the old token), so a
    retry after an ambiguous failure cannot write it twice (S2 REST v1 append, "fence"
    command records and ``fencing_token``)."""
    if input.fencing_token is None:
        return False
    fences = [record.body for record in input.records if is_fence(record)]
    return bool(fences) and fences[-1] != input.fencing_token.encode()


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
        client: a shared ``httpx2.AsyncClient`` to use for every request; when ``None`` the
            basin creates two and closes them in :meth:`aclose`: one for appends, unary reads
            and tail checks, and one for live read sessions (:meth:`follow`), so long-lived
            sessions can never take the connections appends need (each opens at most
            :data:`POOL_MAX_CONNECTIONS` and keeps at most :data:`POOL_MAX_KEEPALIVE` idle). A
            passed client is never closed here.
        max_attempts: tries per call, including the first (:class:`RetryPolicy`).
        create_missing_streams: an append, read or check-tail that gets 404
            ``stream_not_found`` creates the stream and retries once (as if the basin had
            ``create_stream_on_append`` / ``create_stream_on_read``).
        retry_base_s: backoff base in seconds: retry ``n`` waits ``min(retry_max_backoff_s,
            retry_base_s * 2**(n-1))`` plus up to ``retry_base_s`` of jitter
            (:class:`RetryPolicy`).
        retry_max_backoff_s: the longest backoff between retries, in seconds.
        timeout_s: per-request timeout in seconds (a unary read adds its ``wait``): short
            enough that a request stuck on a stalled connection is retried on another within
            ``deadline_s``.
        deadline_s: the most one call may take in seconds, all its retries included (a unary
            read adds its ``wait``), so an outage surfaces as ``S2UnavailableError`` in bounded
            time; each attempt's timeout is cut to what is left of it.
        heartbeat_timeout_s: a live follow that hears nothing (no batch, no ping) for this
            many seconds reconnects; S2 pings every 5-15 s.
        appends_per_s: append batches per second that this process's log writers share on
            this basin before each spaces its appends further apart
            (:mod:`resumable_chat.s2.pacing`; default :data:`DEFAULT_APPENDS_PER_S`, 200);
            ``None``: no budget, each writer appends as soon as its last append was
            acknowledged.

    Raises:
        S2NameError: ``basin`` is not a valid S2 basin name (8 to 48 of ``a-z 0-9 -``, no
            leading or trailing hyphen; :mod:`resumable_chat.s2.names`). It is a
            ``ValueError``.
        ValueError: ``max_attempts`` below 1, ``deadline_s`` or ``appends_per_s`` not
            positive.
        TypeError: ``client`` is not an ``httpx2.AsyncClient`` (an ``httpx.AsyncClient``
            is not one).
    """

    def __init__(
        self,
        basin: str,
        *,
        access_token: str | None,
        account_endpoint: str | None = None,
        basin_endpoint: str | None = None,
        client: httpx2.AsyncClient | None = None,
        max_attempts: int = 4,
        create_missing_streams: bool = True,
        retry_base_s: float = 0.1,
        retry_max_backoff_s: float = 1.0,
        timeout_s: float = 5.0,
        heartbeat_timeout_s: float = 30.0,
        deadline_s: float = 10.0,
        appends_per_s: float | None = DEFAULT_APPENDS_PER_S,
    ) -> None:
        check_basin_name(basin)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not deadline_s > 0:
            raise ValueError("deadline_s must be > 0")
        if client is not None and not isinstance(client, httpx2.AsyncClient):
            raise TypeError(
                f"client must be an httpx2.AsyncClient, got {type(client).__module__}."
                f"{type(client).__qualname__} (HttpBasin runs on httpx2)"
            )
        self.deadline_s: float = deadline_s
        self.pacing = None if appends_per_s is None else AppendPacing(appends_per_s)
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
        self._session_client = client if client is not None else self._new_client()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # where its clients' pools live

    def __repr__(self) -> str:
        # getattr: a traceback may show a basin whose __init__ raised before setting these
        name, endpoint = getattr(self, "name", None), getattr(self, "_basin_url", None)
        return f"HttpBasin(name={name!r}, endpoint={endpoint!r})"

    @staticmethod
    def _new_client() -> httpx2.AsyncClient:
        limits = httpx2.Limits(
            max_connections=POOL_MAX_CONNECTIONS, max_keepalive_connections=POOL_MAX_KEEPALIVE
        )
        return httpx2.AsyncClient(limits=limits, timeout=httpx2.Timeout(30.0))

    # -- plumbing --------------------------------------------------------------------------

    def _on_this_loop(self) -> None:
        """Bind the basin to the running event loop. Clients it created on a loop that has
        stopped since (one ``asyncio.run`` after another) are replaced: their pooled
        connections belong to that loop. Raises ``RuntimeError`` while its loop still runs
        in another thread (httpx clients are not thread-safe)."""
        loop = asyncio.get_running_loop()
        old = self._loop
        if old is loop:
            return
        if old is not None and old.is_running():
            raise RuntimeError("this HttpBasin is in use on another event loop that still runs")
        if old is not None and self._owns_client:
            self._client = self._new_client()
            self._session_client = self._new_client()
        self._loop = loop

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
    ) -> httpx2.Response | AttemptFailure:
        """One HTTP exchange: the response on 2xx, else the classified failure."""
        self._on_this_loop()
        try:
            response = await self._client.request(
                method,
                url,
                headers=headers,
                params=params,
                content=content,
                timeout=timeout_s if timeout_s is not None else self._timeout_s,
            )
        except httpx2.TransportError as exc:
            return transport_failure(exc)
        if response.is_success:
            return response
        return failure_from_response(response, stream)

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
        check: Callable[[httpx2.Response], S2Error | None] | None = None,
    ) -> httpx2.Response:
        """An idempotent request with retries; ``retry_codes`` adds retryable S2 codes;
        ``check`` is called with each 2xx response and returns the error of a body that
        cannot be used (cut or garbled on its way), which is retried like a dropped
        connection."""
        hdrs = headers if headers is not None else self._stream_headers
        budget = self.deadline_s + (timeout_s - self._timeout_s if timeout_s else 0.0)

        async def attempt(left_s: float) -> httpx2.Response | AttemptFailure:
            outcome = await self._attempt(
                method,
                url,
                stream=stream,
                headers=hdrs,
                params=params,
                content=content,
                timeout_s=left_s,
            )
            if isinstance(outcome, AttemptFailure) and outcome.error.code in retry_codes:
                outcome.retryable = True
            elif check is not None and isinstance(outcome, httpx2.Response):
                unusable = check(outcome)
                if unusable is not None:
                    return AttemptFailure(unusable, retryable=True)
            return outcome

        outcome, attempts = await retrying(
            attempt,
            policy=self.retry,
            deadline_s=budget,
            timeout_s=timeout_s or self._timeout_s,
            may_retry=lambda failure: failure.retryable,
        )
        if isinstance(outcome, httpx2.Response):
            return outcome
        try:
            raise outcome.final(op, attempts)
        finally:
            del outcome  # the error's traceback keeps this frame: no cycle back to the error

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
        duplicate), and so is a batch conditioned on a ``fencing_token`` that it replaces with
        a fence command (a ``stop-`` fence): once such a batch lands the token has changed, so
        a retry is refused with 412 (``FencingTokenMismatchError`` naming the batch's own
        fence) instead of writing it twice. Any other batch is retried only after failures
        that guarantee nothing was written (429, 502 ``hot_server``, 409
        ``transaction_conflict``, connection never made). When a guarded
        retry gets 412 after an ambiguous failure (500, timeout, dropped connection) and the
        412 says the batch may already be there (the tail is past it, or the fencing token
        changed: to the batch's own fence, or to a fence written after it), the range is read
        back: if it holds exactly the records sent (headers and body), the lost ack is
        rebuilt and returned.
        """
        content = encode_append_input(input)
        return await self._creating(stream, lambda: self._append(stream, input, content))

    async def _append(self, stream: str, input: AppendInput, content: bytes) -> AppendAck:
        guarded = input.match_seq_num is not None or _moves_fencing_token(input)
        headers = {**self._stream_headers, "Content-Type": _JSON}
        url = self._stream_url(stream, "/records")
        # A failure that may have written the batch makes a later 412 ambiguous.
        ambiguous = False
        landed_maybe = False

        async def attempt(left_s: float) -> httpx2.Response | AttemptFailure:
            nonlocal ambiguous, landed_maybe
            outcome = await self._attempt(
                "POST", url, stream=stream, headers=headers, content=content, timeout_s=left_s
            )
            if isinstance(outcome, AttemptFailure):
                landed_maybe = ambiguous and self._may_have_landed(input, outcome.error)
                if outcome.retryable and not outcome.no_side_effect:
                    ambiguous = True
            return outcome

        def may_retry(failure: AttemptFailure) -> bool:
            return not landed_maybe and failure.retryable and (guarded or failure.no_side_effect)

        outcome, attempts = await retrying(
            attempt,
            policy=self.retry,
            deadline_s=self.deadline_s,
            timeout_s=self._timeout_s,
            may_retry=may_retry,
        )
        if isinstance(outcome, httpx2.Response):
            try:
                return WireAppendAck.model_validate_json(outcome.content).to_ack()
            except ValidationError as exc:
                raise S2Error(f"malformed AppendAck from S2: {exc}") from exc
        if landed_maybe:
            ack = await self._recover_lost_ack(stream, input)
            if ack is not None:
                logger.info("append to %s: ack was lost, the batch is in the log", stream)
                return ack
            try:
                raise outcome.error
            finally:
                del outcome  # no cycle through the traceback (see _call)
        if outcome.retryable and not (guarded or outcome.no_side_effect):
            raise S2UnavailableError(
                f"S2 append failed ({outcome.error.message}) and was not retried: "
                "without match_seq_num (or a fence replacing its fencing_token) a retry "
                "could write the batch twice",
                status=outcome.error.status,
                code=outcome.error.code,
            )
        try:
            raise outcome.final("append", attempts)
        finally:
            del outcome  # no cycle through the traceback (see _call)

    @staticmethod
    def _may_have_landed(input: AppendInput, error: S2Error) -> bool:
        """Whether a 412 on a retry may be explained by an earlier attempt having been
        written: the tail is past the batch's end, or the fencing token changed (to the
        batch's own fence, or to another writer's fence appended after the batch landed:
        a stop request right behind it)."""
        if input.match_seq_num is None:
            return False
        if isinstance(error, SeqNumMismatchError):
            return error.expected_seq_num >= input.match_seq_num + len(input.records)
        return isinstance(error, FencingTokenMismatchError)

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
        e.g. two start parameters), ``S2UnavailableError`` (also when every attempt's body
        was not a valid ``ReadBatch``: a body cut or garbled on its way is read again, as a
        dropped connection is).
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

        decoded: list[ReadBatch] = []

        def check(response: httpx2.Response) -> S2Error | None:
            try:
                decoded[:] = [decode_batch(response.content)]
            except S2Error as exc:
                logger.warning("read of %s: %s; reading again", stream, exc.message)
                return exc
            return None

        async def call() -> httpx2.Response:
            return await self._call(
                "read",
                "GET",
                url,
                stream=stream,
                headers=headers,
                params=params,
                timeout_s=timeout,
                check=check,
            )

        await self._creating(stream, call)
        return decoded[0]

    async def check_tail(self, stream: str) -> StreamPosition:
        """The stream's tail (S2 REST v1 ``GET /streams/{stream}/records/tail``).

        Returns the next seq_num to be assigned and the last record's timestamp (ms). Raises
        ``StreamNotFoundError`` (unless ``create_missing_streams``), ``S2AuthError``,
        ``S2UnavailableError``.
        """
        url = self._stream_url(stream, "/records/tail")

        async def call() -> httpx2.Response:
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
        skipped or repeated; failures in a row without progress raise ``S2UnavailableError``
        once there were ``max_attempts`` of them over at least ``deadline_s`` (a follower
        rides out an outage as long as a unary call would, not just its first attempts). On
        the first connection a start past the tail raises ``RangeNotSatisfiableError`` unless
        ``clamp``, and any 4xx other than 408/429 fails at once. The follow ends quietly
        (returns) when the server ends the session or the stream disappears (deleted) after
        the first connection, or after :meth:`aclose`.
        """
        url = self._stream_url(stream, "/records")
        headers = {**self._stream_headers, "Accept": "text/event-stream"}
        timeout = httpx2.Timeout(
            self._timeout_s, read=self._heartbeat_timeout_s, pool=self._timeout_s
        )
        next_seq = seq_num
        delivered = False  # next_seq is a delivered record's successor (not a clamped start)
        connected_once = False
        created = False
        failures = 0
        failing_since = 0.0  # loop time of the first of the failures in a row
        while not self._closed:
            failure: AttemptFailure | None = None
            params: dict[str, str | int] = {"seq_num": next_seq}
            if clamp:
                params["clamp"] = "true"
            self._on_this_loop()
            try:
                async with self._session_client.stream(
                    "GET", url, params=params, headers=headers, timeout=timeout
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        failure = failure_from_response(response, stream)
                    else:
                        connected_once = True
                        async for sse in httpx2.EventSource(response, _MAX_EVENT_BYTES):
                            if sse.event == "batch":
                                batch = decode_batch(sse.data)
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
                            failure = AttemptFailure(S2Error("S2 read session ended early"), True)
            except httpx2.TransportError as exc:
                failure = transport_failure(exc)
            except S2Error as exc:  # a malformed batch: treat like a broken connection
                failure = AttemptFailure(exc, True)
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
            now = asyncio.get_running_loop().time()
            if failures == 1:
                failing_since = now
            if not failure.retryable or (
                failures >= self.retry.max_attempts and now - failing_since >= self.deadline_s
            ):
                try:
                    raise failure.final("read session", failures)
                finally:
                    del failure, error  # no cycle through the traceback (see _call)
            logger.debug("follow %s: reconnecting at seq_num %d (%s)", stream, next_seq, error)
            await asyncio.sleep(self.retry.delay_s(failures, failure.retry_after_s))

    @staticmethod
    def _error_event(data: str) -> AttemptFailure:
        """An SSE ``error`` event: retryable, as the TypeScript SDK treats it (503)."""
        try:
            info = WireErrorInfo.model_validate_json(data)
        except ValidationError:
            info = WireErrorInfo(message=data[:200])
        message = f"read session error {info.code or ''}: {info.message or ''}".strip()
        return AttemptFailure(S2Error(message, code=info.code), retryable=True)

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
        """Stop live follows and close the ``httpx2.AsyncClient`` if this basin created it.

        Idempotent. A client passed in by the caller is left open.
        """
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self._on_this_loop()  # clients of a loop that is gone cannot be closed on this one
            await self._client.aclose()
            await self._session_client.aclose()
