"""Generic resumable text streams: the ``resumable-stream`` API on S2 (or the embedded log).

:func:`create_resumable_stream_context` gives Python the union of two generic resumers for
plain ``str`` streams (any SSE body, any text): Vercel ``resumable-stream``
(``resumableStream``, ``createNewResumableStream``, ``resumeExistingStream``,
``hasExistingStream``, ``skipCharacters``; Vercel ``resumable-stream`` ``src/runtime.ts``) and the
generic resumer of ``@s2-dev/resumable-stream`` 2.1 (``createResumableStreamContext`` on S2,
``S2_BATCH_SIZE`` / ``S2_LINGER_DURATION_MS``; ``@s2-dev/resumable-stream`` ``src/index.ts``). The
crash handling
(``"failed"``, partial output readable, the next producer reclaims the id) is the one of the
Postgres transport of Vercel ``resumable-stream``.

Storage layout
--------------
One S2 stream per stream id, named ``key_prefix + stream_id``. A *generation* (one producer's
output) is the chat core's layout (see the docs page "Concepts"), which the JavaScript
``@s2-dev/resumable-stream`` resumer also reads:

- a claim fence ``session-<rand>``, appended with ``match_seq_num`` = the tail the claimer saw
  and ``fencing_token`` = the stream's current token, so of two racing producers exactly one
  wins and the other resumes;
- one data record per ``str`` chunk (its UTF-8 bytes, no headers; a chunk over 1 MiB is split
  into several records), written by :class:`~resumable_chat.log.LogWriter` with the claim
  token and an exact ``match_seq_num`` that starts at the claim ack's ``end.seq_num`` (the fix
  of upstream bug #309, where a pre-populated stream silently lost every record);
- empty records as heartbeats while the source is silent (every reader skips empty bodies), so
  a live producer's lease stays fresh;
- a terminal fence ``end-<rand>`` (the source finished) or ``error-<rand>`` (the source
  raised, or the producer went silent for a lease and another process closed it);
- when the claim replaced an earlier generation (done or failed), a trim of everything before
  the claim fence, ``trim_delay_ms`` after the terminal (readers only ever read from the latest
  claim, so the id starts fresh at once; the delay lets followers of the old output finish).

Statuses (:meth:`ResumableStreamContext.has_existing_stream`)
---------------------------------------------------------------
- ``None``: no generation (the stream is missing, empty or holds no fence);
- ``"active"``: the latest generation has no terminal fence and its last record is younger
  than the lease (``lease_ms``, default 10 s);
- ``"done"``: the latest generation ended with ``end-``;
- ``"failed"``: it ended with ``error-`` (the source raised), or it has no terminal fence and
  has been silent for the lease (the producer crashed). Its output stays readable, and the next
  producing call reclaims the id with a fence conditioned on the dead generation's token.

The lease's age is the last record's S2 timestamp against this host's clock, so a status is as
right as the two clocks agree. A producing call checks it: it reclaims the id only when the
tail also stays still for two heartbeat intervals, and follows the generation when it does
not (a producer that lives, judged by a clock ahead of S2's).

Resuming
--------
A resume returns the generation's output from its first chunk, minus ``resume_at``: the amount
of output the client already has, counted in characters (Python ``str`` code points, ``len()``
of what it received) and skipped across chunk boundaries; ``resume_at_unit="utf-16"`` counts
JavaScript ``string.length`` units instead (they differ for characters outside the BMP, such as
most emoji). A live generation is followed until its terminal fence; a failed one is read up
to its last stored record. A ``"done"`` stream (and an unknown id) gives ``None``, which the
FastAPI helper answers with 422 ``Stream is already done`` as the seeds' routes do. A producing
call's own iterator is the live branch of a tee and never waits on S2; resumers see a chunk
once it is stored (at most ``linger_ms`` plus one append later).

Errors of the store are raised (``S2Error`` subclasses), never reported as "done" or as
"nothing to resume" (upstream bug #312); ``make_stream`` is only called after a won claim, so
a resumer never opens a source (upstream bug #237); a resume never hangs on a stream that
cannot be read (upstream bug #194: the error is raised instead).

Retention: no cleanup job
-------------------------
The seeds' stores need a cleanup job (Redis keys with a 24 h TTL; the Postgres transport's
``postgres:cleanup`` script or ``pg_cron``). On S2 retention is a property of the basin or
stream, enforced by S2 itself:

- ``retention_policy`` (``{"age": <seconds>}``, S2's default is 7 days) deletes records older
  than the age. Choose an age well above your longest stream plus how long clients may come
  back to resume it (``86400`` matches Vercel's 24 h sentinel TTL).
- ``delete_on_empty`` (``{"min_age_secs": <seconds>}``) deletes a stream once it has been empty
  for that long, so an id whose records all expired disappears too. A stream whose records
  expired reads as "no stream" here, and the next producer call for that id starts fresh.

Set both in the basin's ``default_stream_config`` (S2 dashboard, CLI or API) together with
create-stream-on-append/read. :meth:`ResumableStreamContext.delete_stream` removes one id at
once (on S2 the deletion completes asynchronously, and the name cannot be reused until then;
to restart an id, call :meth:`~ResumableStreamContext.create_new_resumable_stream` instead,
which replaces the old output). The embedded :class:`~resumable_chat.s2.memory.MemoryBasin` has
no retention: its data lives as long as the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
)
from types import TracebackType
from typing import Any, Final, Literal

from resumable_chat.clock import SYSTEM_CLOCK, Clock
from resumable_chat.log import (
    PROCESS_OWNERSHIP,
    LatestGeneration,
    LogConfig,
    LogEngine,
    Outcome,
    Output,
    Ownership,
    Producer,
    RecordKind,
    StreamInUseError,
    classify,
    close_source,
    read_range,
)
from resumable_chat.log import engine as log_engine
from resumable_chat.log.read_on import read_on
from resumable_chat.log.records import MAX_DATA_BODY_BYTES
from resumable_chat.loop_totals import LoopCounter, loop_counter
from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import S2ConfigError
from resumable_chat.s2.records import MAX_BATCH_RECORDS
from resumable_chat.scalar_values import scalar_value_string

__all__ = [
    "BATCH_SIZE_ENV",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LEASE_MS",
    "DEFAULT_LINGER_MS",
    "LINGER_MS_ENV",
    "ResumableStream",
    "ResumableStreamContext",
    "ResumableStreamError",
    "SourceCancelledError",
    "StreamActiveError",
    "StreamSource",
    "StreamStatus",
    "create_resumable_stream_context",
    "live_backlog_chars",
]

logger = logging.getLogger("resumable_chat.streams")

#: What :meth:`ResumableStreamContext.has_existing_stream` reports besides ``None``.
StreamStatus = Literal["active", "done", "failed"]
#: The unit of ``resume_at``: Python ``str`` characters (code points) or UTF-16 code units
#: (JavaScript ``string.length``).
ResumeAtUnit = Literal["characters", "utf-16"]
#: ``make_stream``: called once, only by the producer, to open the source of ``str`` chunks
#: (an async iterable, or an awaitable of one).
StreamSource = Callable[[], AsyncIterable[str] | Awaitable[AsyncIterable[str]]]
#: ``wait_until``: called with the producer's persistence task (serverless-style hosts).
WaitUntil = Callable[[Awaitable[None]], object]

#: Environment variable for the records per append (``@s2-dev/resumable-stream``).
BATCH_SIZE_ENV = "S2_BATCH_SIZE"
#: Environment variable for the linger in ms (``@s2-dev/resumable-stream`` 2.x).
LINGER_MS_ENV = "S2_LINGER_DURATION_MS"
#: Default records per append when ``S2_BATCH_SIZE`` is unset (``@s2-dev/resumable-stream``
#: ``src/index.ts``).
DEFAULT_BATCH_SIZE = 10
#: Default linger (ms) when ``S2_LINGER_DURATION_MS`` is unset (``@s2-dev/resumable-stream``
#: ``src/index.ts``).
DEFAULT_LINGER_MS = 500.0
#: Default lease (ms): a generation without a terminal fence that wrote nothing for this long
#: is "failed". A live producer writes a heartbeat after ``lease_ms / 4`` of silence.
DEFAULT_LEASE_MS = 10_000

#: Largest body of one record (bytes): S2's 1 MiB metered limit less the 8-byte overhead and
#: room for the writer's ``sse-id`` header (:data:`MAX_DATA_BODY_BYTES`).
_MAX_BODY_BYTES = MAX_DATA_BODY_BYTES
#: Characters per piece when a chunk is split (≤ 4 UTF-8 bytes per character).
_PIECE_CHARS = _MAX_BODY_BYTES // 4
#: Claim attempts before giving up under contention (each one follows a lost race).
_CLAIM_ATTEMPTS = 5


class ResumableStreamError(Exception):
    """Base class of the errors of this module (S2 failures stay ``S2Error`` subclasses)."""


class SourceCancelledError(ResumableStreamError, RuntimeError):
    """The stream's source raised ``asyncio.CancelledError`` though nobody cancelled its
    producer (a cancel scope of a library it uses leaking one), or ``GeneratorExit`` though
    nobody closed it. The stream is ``"failed"``, as after any source error, and the
    producer's readers get this error instead (its ``__cause__`` is the source's): either
    raised in a reader's task would look like a cancel or a close of that task."""


#: Stream ids a text stream may not take: the chat routers name their S2 streams
#: ``chat-<id>`` (AI SDK), ``tanstack-<id>`` (TanStack and AG-UI threads) and
#: ``agui-run-<id>`` (the AG-UI run index) by default, so a text stream with such an id would
#: be a chat's log, readable and replaceable (its history trimmed) by whoever can name a
#: text stream. Case-sensitive, as S2 stream names are.
RESERVED_STREAM_ID_PREFIXES: Final = ("chat-", "tanstack-", "agui-")


class ReservedStreamIdError(ResumableStreamError, ValueError):
    """A stream id starts with one of :data:`RESERVED_STREAM_ID_PREFIXES`: it names a chat's
    log, not a text stream. Refused whatever the ``key_prefix`` (a chat may use the same
    prefix: ``create_resumable_chat(stream_prefix=...)``). The FastAPI router answers 400.

    ``stream_id`` is the id.
    """

    def __init__(self, stream_id: str) -> None:
        reserved = ", ".join(repr(prefix) for prefix in RESERVED_STREAM_ID_PREFIXES)
        super().__init__(
            f"stream id {stream_id[:100]!r} is reserved: ids starting with {reserved} name "
            "the chat logs of resumable-chat's chat routers; choose another id"
        )
        self.stream_id = stream_id


class StreamActiveError(ResumableStreamError):
    """:meth:`ResumableStreamContext.create_new_resumable_stream` found a live producer.

    ``stream_id`` is the id. The FastAPI helper answers 409 ``Stream already in use``.
    """

    def __init__(self, stream_id: str) -> None:
        super().__init__(f"stream {stream_id!r} already has an active producer")
        self.stream_id = stream_id


def _env_number(environ: Mapping[str, str], name: str) -> float | None:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        return float(int(raw.strip()))
    except ValueError:
        raise S2ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _pieces(chunk: str) -> list[bytes]:
    body = chunk.encode()
    if len(body) <= _MAX_BODY_BYTES:
        return [body]
    return [chunk[i : i + _PIECE_CHARS].encode() for i in range(0, len(chunk), _PIECE_CHARS)]


def _decode(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


class _Skipper:
    """Drops the first ``count`` units of a sequence of chunks, across chunk boundaries."""

    __slots__ = ("remaining", "utf16")

    def __init__(self, count: int, unit: ResumeAtUnit) -> None:
        self.remaining = count
        self.utf16 = unit == "utf-16"

    def cut(self, text: str) -> str:
        if self.remaining <= 0:
            return text
        if not self.utf16:
            if len(text) <= self.remaining:
                self.remaining -= len(text)
                return ""
            out = text[self.remaining :]
            self.remaining = 0
            return out
        for i, char in enumerate(text):
            if self.remaining <= 0:
                return text[i:]
            # A character outside the BMP is a surrogate pair in UTF-16: two units. An offset
            # inside a pair skips the whole character (a client never holds half of one).
            self.remaining -= 2 if ord(char) > 0xFFFF else 1
        self.remaining = max(self.remaining, 0)
        return ""


async def _skip(chunks: AsyncGenerator[str, None], skipper: _Skipper) -> AsyncGenerator[str, None]:
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            text = skipper.cut(chunk)
            if text:
                yield text


class ResumableStream(AsyncIterator[str]):
    """The text of one stream, as an async iterator of ``str`` chunks.

    Returned by the :class:`ResumableStreamContext` methods. ``role`` is ``"producer"`` when
    this call started the source (the chunks come straight from it, never waiting on S2) or
    ``"resumer"`` when it reads the stored output (the chunks come from the log, one per
    stored record, and follow a live producer until its terminal fence).

    A producer's iterator raises the source's exception after the chunks before it; a
    resumer's iterator ends quietly at the generation's end (done, failed or taken over) and
    raises ``S2Error`` subclasses when the store fails. A producer's iterator read too
    slowly (more than :data:`LIVE_BACKLOG_CHARS` made while its reader holds the last chunk it
    took) reads the rest from the log as a resumer does, so it may then raise ``S2Error``
    too, after :data:`LIVE_LOG_RETRY_S` of transient failures. Close it with :meth:`aclose` (or
    ``async with``) when you stop early; closing never stops a producer's source or its
    persistence.
    """

    def __init__(
        self,
        stream_id: str,
        role: Literal["producer", "resumer"],
        chunks: AsyncGenerator[str, None],
        persisted: asyncio.Task[None] | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.role: Literal["producer", "resumer"] = role
        self._chunks = chunks
        self._persisted = persisted

    def __repr__(self) -> str:
        return f"ResumableStream({self.stream_id!r}, role={self.role!r})"

    def __aiter__(self) -> ResumableStream:
        return self

    async def __anext__(self) -> str:
        """The next chunk (``str``); ``StopAsyncIteration`` at the end."""
        return await anext(self._chunks)

    async def aclose(self) -> None:
        """Stop reading and release the read (idempotent). A producer's source keeps running."""
        await self._chunks.aclose()

    async def __aenter__(self) -> ResumableStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def wait_persisted(self) -> None:
        """For a producer: wait until its output and terminal fence are stored.

        Returns at once for a resumer. Raises what persisting raised (``S2Error``), except a
        takeover by another producer, which only ends persistence early, and
        :class:`ResumableStreamError` when the producer was abandoned (``aclose`` timeout,
        ``delete_stream``) before its terminal fence was stored.
        """
        task = self._persisted
        if task is None:
            return
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise ResumableStreamError(
                    f"the producer of stream {self.stream_id!r} was abandoned before its "
                    "output was stored"
                ) from None
            raise


#: Characters of output a producer's iterator may fall behind its source by (made but not yet
#: taken while its reader is busy with the chunk before, e.g. sending it to a client that
#: stopped reading) before it stops holding them and reads the rest from the log, from after
#: the last chunk it gave (as a resumer would): memory per stalled reader stays bounded and
#: nothing is lost.
LIVE_BACKLOG_CHARS = 1024 * 1024

#: Characters all the producers' iterators of one event loop (one server process) may hold
#: together that way, however many there are: past it, the iterator whose chunk goes over
#: reads the rest from the log, as past :data:`LIVE_BACKLOG_CHARS`.
LIVE_BACKLOG_TOTAL_CHARS = 64 * 1024 * 1024

#: The :func:`~resumable_chat.loop_totals.loop_counter` of the characters counted against
#: :data:`LIVE_BACKLOG_TOTAL_CHARS`.
_HELD_COUNTER = "producer text held for readers behind (characters)"


def live_backlog_chars() -> int:
    """Characters the producers' iterators of the running event loop hold for readers that
    are busy with the chunk before (counted against :data:`LIVE_BACKLOG_TOTAL_CHARS`): a
    gauge for metrics.

    Raises ``RuntimeError`` outside an event loop."""
    return loop_counter(_HELD_COUNTER).value


#: Seconds a producer's iterator that reads the rest from the log retries transient S2
#: failures since the last chunk it gave, before it raises.
LIVE_LOG_RETRY_S = 30.0

#: ``rest(seq_num)``: the output stored from ``seq_num`` to the terminal, each chunk with the
#: seq_num after its last record.
_Rest = Callable[[int], AsyncGenerator[tuple[str, int], None]]


class _LiveBranch:
    """The producer's live branch of the tee: chunks buffered until its one reader takes them.

    ``push`` never blocks; once the reader goes away, chunks are dropped. Past
    :data:`LIVE_BACKLOG_CHARS` of chunks waiting while the reader is away with the last one it
    took, or when a chunk that comes meanwhile takes what the branches of the event loop
    hold so past :data:`LIVE_BACKLOG_TOTAL_CHARS`, the waiting chunks and every later one are
    dropped, and the reader reads the rest from the log (``rest``), from after the last
    chunk it took.
    """

    __slots__ = (
        "_backlog",
        "_behind",
        "_closed",
        "_counted",
        "_detached",
        "_error",
        "_handed",
        "_held",
        "_in_use",
        "_items",
        "_max_backlog",
        "_ready",
    )

    def __init__(self, max_backlog_chars: int | None = None) -> None:
        self._items: deque[tuple[str, int]] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._detached = False
        self._error: BaseException | None = None
        self._max_backlog = LIVE_BACKLOG_CHARS if max_backlog_chars is None else max_backlog_chars
        self._backlog = 0  # characters in _items
        self._counted = 0  # characters pushed while the reader was away: in _held
        self._held: LoopCounter | None = None  # the reader's loop's total
        self._handed = 0  # seq_num after the records of the last chunk the reader took
        self._in_use = False  # the reader took a chunk and has not asked for the next yet
        self._behind = False

    def push(self, text: str, end_seq_num: int) -> None:
        """Queue ``text``, whose records end before ``end_seq_num``."""
        if self._detached or self._closed or self._behind:
            return
        self._items.append((text, end_seq_num))
        size = len(text)
        self._backlog += size
        if self._in_use:  # the reader is away with the chunk it took: count what waits
            held = self._held
            assert held is not None  # set by the reader, before it took a chunk
            self._counted += size
            held.value += size
            if self._backlog > self._max_backlog or held.value > LIVE_BACKLOG_TOTAL_CHARS:
                self._behind = True  # the reader reads on from the log
                self._items.clear()
                self._backlog = 0
                self._release()
        self._ready.set()

    def _release(self) -> None:
        """What was counted in the loop's total is no longer waiting for an absent reader."""
        if self._counted:
            held = self._held
            assert held is not None  # counted only with it
            held.value -= self._counted
            self._counted = 0

    def close(self, error: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._ready.set()

    async def chunks(self, rest: _Rest) -> AsyncGenerator[str, None]:
        self._held = loop_counter(_HELD_COUNTER)
        try:
            while not self._behind:
                if self._items:
                    text, self._handed = self._items.popleft()
                    self._backlog -= len(text)
                    self._in_use = True
                    yield text
                    self._in_use = False
                    self._release()
                    continue
                if self._closed:
                    if self._error is not None:
                        raise self._error
                    return
                self._ready.clear()
                await self._ready.wait()
            self._items.clear()
            reading = read_on(rest, self._handed, retry_s=LIVE_LOG_RETRY_S)
            async with contextlib.aclosing(reading) as texts:
                async for text in texts:
                    yield text
            while not self._closed:  # the terminal is stored: the outcome comes right after
                self._ready.clear()
                await self._ready.wait()
            if self._error is not None:
                raise self._error
        finally:
            self._detached = True
            self._items.clear()
            self._release()


class _TextProducer(Producer):
    """One producing generation of a text stream: the source's ``str`` chunks go to the
    producer's own iterator (the live branch) and, split to fit S2's record limit, to the log.

    The live branch ends with the source's exception when it raised; when another instance
    took the stream over, it ends early (the text has no error terminal of its own).
    """

    def __init__(self, make_stream: StreamSource) -> None:
        self.live = _LiveBranch()
        self._make_stream = make_stream
        self._error: BaseException | None = None

    async def run(self, output: Output) -> None:
        live = self.live
        iterator: AsyncIterator[Any] | None = None
        try:
            source: Any = self._make_stream()
            if inspect.isawaitable(source):
                source = await source
            iterator = aiter(source)
            async for chunk in iterator:
                if output.signal.is_set():
                    return  # stopped or lost, and the source swallowed the cancel: drop it
                if not isinstance(chunk, str):
                    raise TypeError(
                        f"a resumable stream's source must yield str, got {type(chunk).__name__}"
                    )
                if not chunk:
                    continue
                try:
                    pieces = _pieces(chunk)
                except UnicodeEncodeError:  # surrogates: as a JavaScript producer stores them
                    chunk = scalar_value_string(chunk)
                    pieces = _pieces(chunk)
                live.push(chunk, output.writer.next_seq_num + len(pieces))
                for piece in pieces:
                    output.append(piece)
                await output.wait_writable()
        finally:
            await close_source(iterator)

    def failed(self, error: BaseException, output: Output) -> None:
        if isinstance(error, asyncio.CancelledError | GeneratorExit):
            cancelled = SourceCancelledError(
                f"the stream's source raised {type(error).__name__} though nobody cancelled"
                " or closed it"
            )
            cancelled.__cause__ = error
            error = cancelled
        self._error = error

    def finished(self, outcome: Outcome) -> None:
        self.live.close(self._error if outcome == "error" else None)


class ResumableStreamContext:
    """Resumable ``str`` streams on one basin; build it with
    :func:`create_resumable_stream_context`.

    Safe to share across the requests of one event loop. Close it with :meth:`aclose` (e.g.
    in a FastAPI lifespan) so running producers finish persisting. ``engine`` is its
    :class:`~resumable_chat.log.LogEngine` (mode ``"shared"``: each new producer trims the
    previous output).
    """

    def __init__(
        self,
        *,
        basin: Basin,
        owns_basin: bool,
        batch_size: int,
        linger_ms: float,
        wait_until: WaitUntil | None,
        key_prefix: str,
        lease_ms: int,
        resume_at_unit: ResumeAtUnit,
        clock: Clock = SYSTEM_CLOCK,
        ownership: Ownership = PROCESS_OWNERSHIP,
        trim_delay_ms: float = 30_000,
    ) -> None:
        self.basin = basin
        self._owns_basin = owns_basin
        self.batch_size = batch_size
        self.linger_ms = linger_ms
        self.wait_until = wait_until
        self.key_prefix = key_prefix
        self.lease_ms = lease_ms
        self.resume_at_unit: ResumeAtUnit = resume_at_unit
        config = LogConfig(
            mode="shared",
            lease_ms=lease_ms,
            heartbeat_ms=lease_ms / 4,
            batch_size=batch_size,
            linger_ms=linger_ms,
            trim_delay_ms=trim_delay_ms,
        )
        self.engine = LogEngine(basin, config, clock=clock, ownership=ownership)
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"ResumableStreamContext(basin={self.basin!r}, key_prefix={self.key_prefix!r}, "
            f"lease_ms={self.lease_ms})"
        )

    # -- helpers ---------------------------------------------------------------------------

    def stream_name(self, stream_id: str) -> str:
        """The S2 stream holding ``stream_id``: ``key_prefix + stream_id``.

        Raises ``ValueError`` for an empty ``stream_id``, :class:`ReservedStreamIdError` (a
        ``ValueError``) for one starting with :data:`RESERVED_STREAM_ID_PREFIXES`.
        """
        if not stream_id:
            raise ValueError("stream_id must not be empty")
        if stream_id.startswith(RESERVED_STREAM_ID_PREFIXES):
            raise ReservedStreamIdError(stream_id)
        return self.key_prefix + stream_id

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this ResumableStreamContext is closed")

    @staticmethod
    def _check_resume_at(resume_at: int | None) -> int:
        if resume_at is None:
            return 0
        if isinstance(resume_at, bool) or not isinstance(resume_at, int) or resume_at < 0:
            raise ValueError(f"resume_at must be an int ≥ 0, got {resume_at!r}")
        return resume_at

    async def _acquire(
        self, stream_id: str, name: str, make: StreamSource, *, replace_done: bool
    ) -> ResumableStream | LatestGeneration | None:
        """Produce ``name``, or say why not: its active generation, or ``None`` when done."""
        for _ in range(_CLAIM_ATTEMPTS):
            status = await self.engine.status(name)
            if status == "active":
                return await self.engine.latest(name)
            if status == "done" and not replace_done:
                return None
            producer = _TextProducer(make)
            try:
                generation = await self.engine.start(name, producer, wait_until=self.wait_until)
            except StreamInUseError:
                # another producer moved the stream on, or a claim of this process is in
                # flight (its status is not in the log yet): look again once it is decided
                await self.engine.claim_settled(name)
                if status == "failed":
                    # This clock judged its lease expired, yet the claim did not close it:
                    # its producer's records moved the tail within the confirmation window
                    # (this host's clock runs ahead of S2's), or a new one won. It lives:
                    # follow it, which judges it again should it fall silent.
                    latest = await self.engine.latest(name)
                    if latest.active:
                        return latest
                continue
            chunks = producer.live.chunks(lambda start: self._rest(name, start))
            return ResumableStream(stream_id, "producer", chunks, generation.task)
        raise ResumableStreamError(
            f"could not claim stream {stream_id!r}: it changed under {_CLAIM_ATTEMPTS} attempts"
        )

    def _resumer(
        self, stream_id: str, name: str, latest: LatestGeneration, resume_at: int, *, live: bool
    ) -> ResumableStream:
        # Without its claim fence (trimmed or expired), a generation's output is whatever
        # precedes its terminal fence: reads below the first record start at that record.
        start = latest.data_start if latest.claim is not None else 0
        trimmed = latest.claim is None
        chunks = self._follow(name, start, trimmed) if live else self._backlog(name, start)
        if resume_at:
            chunks = _skip(chunks, _Skipper(resume_at, self.resume_at_unit))
        return ResumableStream(stream_id, "resumer", chunks)

    async def _backlog(self, name: str, start: int) -> AsyncGenerator[str, None]:
        """The stored output of a failed generation, up to its terminal fence."""
        for record in await read_range(self.basin, name, start):
            kind = classify(record)
            if kind.boundary:
                return
            if kind is RecordKind.DATA:
                yield _decode(record.body)

    async def _follow(self, name: str, start: int, trimmed: bool) -> AsyncGenerator[str, None]:
        """Follow a live generation until its terminal (the engine's lease watchdog closes a
        generation whose producer died, which ends this too); ``trimmed``: its claim is gone,
        so the follow starts at the first record left."""
        follow = self.engine.follow(
            name, start, until_closed=True, open_generation=True, from_oldest_kept=trimmed
        )
        async with contextlib.aclosing(follow) as batches:
            async for events in batches:
                for event in events:
                    if event.kind is RecordKind.DATA:
                        yield _decode(event.body)
                    elif event.kind.boundary:
                        return

    async def _rest(self, name: str, start: int) -> AsyncGenerator[tuple[str, int], None]:
        """A producer's output from ``start`` to its terminal, each chunk with the seq_num
        after its record (for a producer's iterator that fell behind: :class:`_LiveBranch`)."""
        follow = self.engine.follow(name, start, until_closed=True, open_generation=True)
        async with contextlib.aclosing(follow) as batches:
            async for events in batches:
                for event in events:
                    if event.kind is RecordKind.DATA:
                        yield _decode(event.body), event.seq_num + 1
                    elif event.kind.boundary:
                        return

    # -- public API ------------------------------------------------------------------------

    async def resumable_stream(
        self, stream_id: str, make_stream: StreamSource, resume_at: int | None = None
    ) -> ResumableStream | None:
        """Produce ``stream_id`` if nobody does, else resume it (idempotent).

        From Vercel ``resumable-stream`` ``resumableStream(streamId, makeStream,
        skipCharacters)`` and ``@s2-dev/resumable-stream`` ``resumableStream``.

        Args:
            stream_id: the stream's id (the S2 stream is ``key_prefix + stream_id``).
            make_stream: called with no arguments, only when this call wins the claim, to open
                the source: an async iterable of ``str`` (or an awaitable of one).
            resume_at: how much output the caller already has, in ``resume_at_unit``
                (characters by default); a resuming call skips that much, across chunk
                boundaries. A producing call starts at the new output's first character and
                ignores it (as upstream does).

        Returns:
            - a producer :class:`ResumableStream` (``role="producer"``) when there was no
              stream, or the last one ``"failed"`` (reclaimed: the output starts fresh);
            - a resumer (``role="resumer"``) following the ``"active"`` producer;
            - ``None`` when the stream is ``"done"`` (``make_stream`` is not called).

        Raises:
            ValueError: an empty or reserved ``stream_id`` (:class:`ReservedStreamIdError`),
                or a negative ``resume_at``.
            S2Error: the store failed (never reported as done).
            ResumableStreamError: the claim kept losing races (extreme contention).
            RuntimeError: the context is closed.
        """
        self._check_open()
        skip = self._check_resume_at(resume_at)
        name = self.stream_name(stream_id)
        outcome = await self._acquire(stream_id, name, make_stream, replace_done=False)
        if isinstance(outcome, LatestGeneration):
            return self._resumer(stream_id, name, outcome, skip, live=True)
        return outcome

    async def create_new_resumable_stream(
        self, stream_id: str, make_stream: StreamSource, resume_at: int | None = None
    ) -> ResumableStream:
        """Start a new generation of ``stream_id`` and return its live output.

        From Vercel ``resumable-stream`` ``createNewResumableStream``: an id that is
        ``"done"`` or ``"failed"`` is reclaimed and starts fresh (its old output is trimmed).
        Unlike upstream, a live producer is never hijacked.

        Args:
            stream_id: the stream's id.
            make_stream: opens the source (see :meth:`resumable_stream`); called once.
            resume_at: accepted for signature parity with upstream and checked (int ≥ 0);
                a new stream's output always starts at its first character.

        Returns:
            The producer :class:`ResumableStream`.

        Raises:
            StreamActiveError: a live producer holds the id (the FastAPI helper answers 409).
            ValueError: an empty or reserved ``stream_id`` (:class:`ReservedStreamIdError`),
                or a negative ``resume_at``.
            S2Error: the store failed.
            ResumableStreamError: the claim kept losing races.
            RuntimeError: the context is closed.
        """
        self._check_open()
        self._check_resume_at(resume_at)
        name = self.stream_name(stream_id)
        outcome = await self._acquire(stream_id, name, make_stream, replace_done=True)
        if not isinstance(outcome, ResumableStream):
            raise StreamActiveError(stream_id)
        return outcome

    async def resume_existing_stream(
        self, stream_id: str, resume_at: int | None = None
    ) -> ResumableStream | None:
        """Read the output of ``stream_id`` without ever producing it.

        From Vercel ``resumable-stream`` ``resumeExistingStream`` (``null`` when done,
        ``undefined`` when unknown: both are ``None`` here; :meth:`has_existing_stream` tells
        them apart) and ``@s2-dev/resumable-stream`` ``resumeStream``.

        Args:
            stream_id: the stream's id.
            resume_at: how much output the caller already has, in ``resume_at_unit``
                (characters by default): that much is skipped, across chunk boundaries.

        Returns:
            - ``"active"``: a resumer with the generation's output from its start (minus
              ``resume_at``), then live until the terminal fence. If the producer dies, it
              ends after a lease of silence;
            - ``"failed"``: a resumer with the stored partial output, ending at the tail;
            - ``None`` when the stream is ``"done"`` or does not exist.

        Raises:
            ValueError: an empty or reserved ``stream_id`` (:class:`ReservedStreamIdError`),
                or a negative ``resume_at``.
            S2Error: the store failed, before or while reading (never a silent ``None`` or a
                hang: upstream bugs #312 and #194).
            RuntimeError: the context is closed.
        """
        self._check_open()
        skip = self._check_resume_at(resume_at)
        name = self.stream_name(stream_id)
        status = await self.engine.status(name)
        if status is None or status == "done":
            return None
        latest = await self.engine.latest(name)
        return self._resumer(stream_id, name, latest, skip, live=status == "active")

    async def has_existing_stream(self, stream_id: str) -> StreamStatus | None:
        """The status of ``stream_id``: ``None``, ``"active"``, ``"done"`` or ``"failed"``.

        From Vercel ``resumable-stream`` ``hasExistingStream`` (``null | true | "DONE"``) and
        the ``failed`` status of its Postgres transport; see the module docstring for the
        exact rules. Costs O(records of the latest generation) to read, never O(history).

        Raises:
            ValueError: an empty or reserved ``stream_id`` (:class:`ReservedStreamIdError`).
            S2Error: the store failed.
            RuntimeError: the context is closed.
        """
        self._check_open()
        name = self.stream_name(stream_id)
        return await self.engine.status(name)

    async def delete_stream(self, stream_id: str) -> None:
        """Delete ``stream_id``'s S2 stream and all its output.

        Producers of this id running in this context are abandoned first (their source is
        closed and their live readers end; one whose source ignores cancellation is left
        behind after :data:`~resumable_chat.log.engine.CLOSE_GRACE_S`, its writer stopped).
        A missing stream is not an error. On S2 the deletion completes asynchronously; the
        name cannot be reused until it has. For routine cleanup, prefer S2 retention (module
        docstring).

        Raises:
            ValueError: an empty or reserved ``stream_id`` (:class:`ReservedStreamIdError`).
            S2Error: the store failed.
            RuntimeError: the context is closed.
        """
        self._check_open()
        name = self.stream_name(stream_id)
        running = self.engine.generation(name)
        if running is not None:
            running.task.cancel()
            await asyncio.wait([running.task], timeout=log_engine.CLOSE_GRACE_S)
            if running.task.done():
                if not running.task.cancelled():
                    running.task.exception()  # retrieved: the producer is discarded
            else:  # its source ignores cancellation: leave it behind, writer stopped
                logger.error("the producer of %s did not end when cancelled; it is abandoned", name)
                await running.abandon()
        await self.basin.delete_stream(name)

    async def aclose(self, *, drain_timeout_s: float = 10.0) -> None:
        """Wait up to ``drain_timeout_s`` (seconds) for producers to finish, then abandon the
        rest (no terminal fence: they read as ``"failed"`` after the lease) and close the
        basin if this context created it. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        await self.engine.aclose(drain_timeout_s=drain_timeout_s, stop_remaining=False)
        if self._owns_basin:
            await self.basin.aclose()

    async def __aenter__(self) -> ResumableStreamContext:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def check(self) -> None:
        """Check the context's storage with one cheap S2 request (nothing to do when
        embedded); :func:`resumable_chat.s2.check.check_basin` under ``key_prefix``.

        Raises:
            S2Error: ``S2AuthError`` (token refused), ``BasinNotFoundError`` (no such
                basin), ``S2UnavailableError`` (S2 unreachable); the message names the cause
                and the setting to fix.
        """
        from resumable_chat.s2.check import PROBE_STREAM, check_basin

        await check_basin(self.basin, probe_stream=self.key_prefix + PROBE_STREAM)


def create_resumable_stream_context(
    basin: Basin | None = None,
    batch_size: int | None = None,
    linger_ms: float | None = None,
    wait_until: WaitUntil | None = None,
    key_prefix: str = "",
    *,
    lease_ms: int = DEFAULT_LEASE_MS,
    resume_at_unit: ResumeAtUnit = "characters",
    clock: Clock = SYSTEM_CLOCK,
    ownership: Ownership | None = None,
    trim_delay_ms: float = 30_000,
) -> ResumableStreamContext:
    """Build a :class:`ResumableStreamContext` (``createResumableStreamContext`` of Vercel
    ``resumable-stream`` and ``@s2-dev/resumable-stream``).

    Args:
        basin: where streams live. ``None``: S2 from ``S2_ACCESS_TOKEN`` + ``S2_BASIN``, else
            the embedded in-process log (:func:`~resumable_chat.s2.config.basin_from_env`);
            the context then closes it in :meth:`~ResumableStreamContext.aclose`.
        batch_size: records per append, 1 to 1000; ``None`` reads ``S2_BATCH_SIZE``
            (default 10).
        linger_ms: how long (ms) the first record of a batch may wait for more;
            ``None`` reads ``S2_LINGER_DURATION_MS`` (default 500). Resumers see output at
            most this much later than the producer's own reader, which never waits.
        wait_until: called with each producer's persistence task (an awaitable), like
            ``waitUntil``/``after`` on serverless hosts. The context tracks the task either way.
        key_prefix: prepended to every stream id to form the S2 stream name. The default
            ``""`` names streams exactly like ``@s2-dev/resumable-stream`` does; use e.g.
            ``"rs/"`` to keep them apart from other streams of the basin.
        lease_ms: ms of silence after which a generation without a terminal fence counts as
            ``"failed"`` (crashed producer). Live producers write a heartbeat record after
            ``lease_ms / 4`` of silence; must be ≥ ``4 * linger_ms``.
        resume_at_unit: the unit of ``resume_at``: ``"characters"`` (Python ``str``
            characters, i.e. code points, ``len()`` of what the client received) or
            ``"utf-16"`` (JavaScript ``string.length``; the two differ only for characters
            outside the Basic Multilingual Plane, such as most emoji).
        clock: the time source (:mod:`resumable_chat.clock`).
        ownership: the registry of producers "this process" runs (default: the process's;
            give each simulated process its own in tests, :class:`~resumable_chat.log.Ownership`).
        trim_delay_ms: ms after a replacing generation's terminal before the output it
            replaced is trimmed from S2 (storage only: readers see the new output at once).

    Raises:
        ValueError: a bad ``batch_size``, ``linger_ms``, ``lease_ms``, ``resume_at_unit``.
        S2ConfigError: ``S2_BATCH_SIZE`` / ``S2_LINGER_DURATION_MS`` are not integers, or the
            S2 variables are half set.
    """
    environ = os.environ
    if batch_size is None:
        from_env = _env_number(environ, BATCH_SIZE_ENV)
        batch_size = DEFAULT_BATCH_SIZE if from_env is None else int(from_env)
        if not 1 <= batch_size <= MAX_BATCH_RECORDS:
            raise S2ConfigError(f"{BATCH_SIZE_ENV} must be 1 to 1000, got {batch_size}")
    if linger_ms is None:
        from_env = _env_number(environ, LINGER_MS_ENV)
        linger_ms = DEFAULT_LINGER_MS if from_env is None else from_env
        if linger_ms < 0:
            raise S2ConfigError(f"{LINGER_MS_ENV} must be ≥ 0, got {linger_ms:g}")
    if not 1 <= batch_size <= MAX_BATCH_RECORDS:
        raise ValueError(f"batch_size must be 1 to 1000, got {batch_size}")
    if not linger_ms >= 0:
        raise ValueError(f"linger_ms must be ≥ 0, got {linger_ms}")
    if not lease_ms > 0 or lease_ms < 4 * linger_ms:
        raise ValueError(
            f"lease_ms must be > 0 and ≥ 4 × linger_ms ({4 * linger_ms:g}), got {lease_ms}"
        )
    if resume_at_unit not in ("characters", "utf-16"):
        raise ValueError(f"resume_at_unit must be 'characters' or 'utf-16', got {resume_at_unit!r}")
    owns = basin is None
    if basin is None:
        from resumable_chat.s2.config import basin_from_env

        basin = basin_from_env()
    return ResumableStreamContext(
        basin=basin,
        owns_basin=owns,
        batch_size=batch_size,
        linger_ms=linger_ms,
        wait_until=wait_until,
        key_prefix=key_prefix,
        lease_ms=lease_ms,
        resume_at_unit=resume_at_unit,
        clock=clock,
        ownership=ownership if ownership is not None else PROCESS_OWNERSHIP,
        trim_delay_ms=trim_delay_ms,
    )
