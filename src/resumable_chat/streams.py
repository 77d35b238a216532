"""Generic resumable text streams: the ``resumable-stream`` API on S2 (or the embedded log).

:func:`create_resumable_stream_context` gives Python the union of two generic resumers for
plain ``str`` streams (any SSE body, any text): Vercel ``resumable-stream``
(``resumableStream``, ``createNewResumableStream``, ``resumeExistingStream``,
``hasExistingStream``, ``skipCharacters``; seed 003, reference ``peers.md`` §2.1) and the
generic resumer of ``@s2-dev/resumable-stream`` 2.1 (``createResumableStreamContext`` on S2,
``S2_BATCH_SIZE`` / ``S2_LINGER_DURATION_MS``; seeds 000-002, reference §2). The crash handling
(``"failed"``, partial output readable, the next producer reclaims the id) is the one of the
Postgres transport described in seed 003.

Storage layout
--------------
One S2 stream per stream id, named ``key_prefix + stream_id``. A *generation* (one producer's
output) is the chat core's layout (reference §1.1, §1.7), which the JavaScript
``@s2-dev/resumable-stream`` resumer also reads:

- a claim fence ``session-<rand>``, appended with ``match_seq_num`` = the tail the claimer saw
  and ``fencing_token`` = the stream's current token, so of two racing producers exactly one
  wins and the other resumes;
- when the claim replaces an earlier generation (done or failed), a trim of everything before
  the claim fence: the id starts fresh;
- one data record per ``str`` chunk (its UTF-8 bytes, no headers; a chunk over 1 MiB is split
  into several records), written by :class:`~resumable_chat.writer.LogWriter` with the claim
  token and an exact ``match_seq_num`` that starts at the claim ack's ``end.seq_num`` (the fix
  of upstream bug #309, where a pre-populated stream silently lost every record);
- empty records as heartbeats while the source is silent (every reader skips empty bodies), so
  a live producer's lease stays fresh;
- a terminal fence ``end-<rand>`` (the source finished) or ``error-<rand>`` (the source
  raised).

Statuses (:meth:`ResumableStreamContext.has_existing_stream`)
---------------------------------------------------------------
- ``None``: no generation (the stream is missing, empty or holds no fence);
- ``"active"``: the latest generation has no terminal fence and its last record is younger
  than the lease (``lease_ms``, default 10 s);
- ``"done"``: the latest generation ended with ``end-``;
- ``"failed"``: it ended with ``error-`` (the source raised), or it has no terminal fence and
  has been silent for the lease (the producer crashed). Its output stays readable, and the next
  producing call reclaims the id with a fence conditioned on the dead generation's token.

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
which trims the old output). The embedded :class:`~resumable_chat.s2.memory.MemoryBasin` has
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
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from .claims import new_token, read_range
from .failure_terminal import append_failure_terminal
from .s2.basin import Basin
from .s2.errors import (
    FencingTokenMismatchError,
    RangeNotSatisfiableError,
    S2ConfigError,
    S2Error,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from .s2.records import (
    MAX_BATCH_METERED_BYTES,
    MAX_BATCH_RECORDS,
    AppendInput,
    AppendRecord,
    SequencedRecord,
    StreamPosition,
    fence_record,
    is_command_record,
    is_fence,
    is_terminal_fence,
    now_ms,
    trim_record,
)
from .s2.silence import follow_reporting_silence
from .writer import LogWriter

__all__ = [
    "BATCH_SIZE_ENV",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LEASE_MS",
    "DEFAULT_LINGER_MS",
    "LINGER_MS_ENV",
    "ResumableStream",
    "ResumableStreamContext",
    "ResumableStreamError",
    "StreamActiveError",
    "StreamSource",
    "StreamStatus",
    "create_resumable_stream_context",
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
#: Default records per append when ``S2_BATCH_SIZE`` is unset (reference §2.1).
DEFAULT_BATCH_SIZE = 10
#: Default linger (ms) when ``S2_LINGER_DURATION_MS`` is unset (reference §2.1).
DEFAULT_LINGER_MS = 500.0
#: Default lease (ms): a generation without a terminal fence that wrote nothing for this long
#: is "failed". A live producer writes a heartbeat after ``lease_ms / 4`` of silence.
DEFAULT_LEASE_MS = 10_000

#: Largest body of one record (bytes): S2's 1 MiB metered limit minus the 8-byte overhead.
_MAX_BODY_BYTES = MAX_BATCH_METERED_BYTES - 8
#: Characters per piece when a chunk is split (≤ 4 UTF-8 bytes per character).
_PIECE_CHARS = _MAX_BODY_BYTES // 4
#: Claim attempts before giving up under contention (each one follows a lost race).
_CLAIM_ATTEMPTS = 5


class ResumableStreamError(Exception):
    """Base class of the errors of this module (S2 failures stay ``S2Error`` subclasses)."""


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


def _decode(record: SequencedRecord) -> str:
    return record.body.decode("utf-8", errors="replace")


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
    raises ``S2Error`` subclasses when the store fails. Close it with :meth:`aclose` (or
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


class _LiveBranch:
    """The producer's live branch of the tee: chunks buffered until its one reader takes them.

    ``push`` never blocks; once the reader goes away, chunks are dropped.
    """

    __slots__ = ("_closed", "_detached", "_error", "_items", "_ready")

    def __init__(self) -> None:
        self._items: deque[str] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._detached = False
        self._error: BaseException | None = None

    def push(self, text: str) -> None:
        if self._detached or self._closed:
            return
        self._items.append(text)
        self._ready.set()

    def close(self, error: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._ready.set()

    async def chunks(self) -> AsyncGenerator[str, None]:
        try:
            while True:
                if self._items:
                    yield self._items.popleft()
                    continue
                if self._closed:
                    if self._error is not None:
                        raise self._error
                    return
                self._ready.clear()
                await self._ready.wait()
        finally:
            self._detached = True
            self._items.clear()


@dataclass(frozen=True, slots=True)
class _Claim:
    token: str
    fence_seq_num: int
    start_seq_num: int


@dataclass(frozen=True, slots=True)
class _Generation:
    """The latest generation as the tail of the stream shows it.

    ``claim``: its opening fence (``None`` when there is no generation, or its opening fence
    was trimmed or expired); ``terminal``: its ``end-``/``error-`` fence (``None`` while it
    runs or after a crash); ``tail``: the stream's tail; ``last_record``: the stream's last
    record.
    """

    claim: SequencedRecord | None
    terminal: SequencedRecord | None
    tail: StreamPosition
    last_record: SequencedRecord | None

    @property
    def newest_fence(self) -> SequencedRecord | None:
        """The stream's latest fence: its body is the stream's current fencing token."""
        return self.terminal if self.terminal is not None else self.claim


async def _latest_generation(
    basin: Basin, name: str, *, want_claim: bool = False, first_window: int = 64
) -> _Generation:
    """Read backwards from the tail in growing windows (×4) to the latest generation's fences.

    Without ``want_claim`` the scan stops at the newest fence (enough for the status and for
    a claim), so a finished generation's claim fence is not looked for. Costs O(records of the
    latest generation), never O(history). A missing stream is empty.
    """
    try:
        tail = await basin.check_tail(name)
    except StreamNotFoundError:
        return _Generation(None, None, StreamPosition(0, 0), None)
    end = tail.seq_num
    window = first_window
    last_record: SequencedRecord | None = None
    terminal: SequencedRecord | None = None
    while end > 0:
        start = max(0, end - window)
        records = await read_range(basin, name, start, end)
        if last_record is None and records:
            last_record = records[-1]
        for record in reversed(records):
            if not is_fence(record):
                continue
            if terminal is None and is_terminal_fence(record):
                terminal = record
                if want_claim:
                    continue
                return _Generation(None, terminal, tail, last_record)
            return _Generation(record, terminal, tail, last_record)
        if not records or records[0].seq_num > start:
            break  # trimmed below: nothing earlier exists
        end = start
        window *= 4
    return _Generation(None, terminal, tail, last_record)


class _Producer:
    """One producing generation: a task pumps the source into the live branch and the writer."""

    def __init__(
        self,
        context: ResumableStreamContext,
        stream_id: str,
        name: str,
        claim: _Claim,
        make_stream: StreamSource,
    ) -> None:
        self.stream_id = stream_id
        self.name = name
        self.claim = claim
        self.writer = LogWriter(
            context.basin,
            name,
            fencing_token=claim.token,
            match_seq_num=claim.start_seq_num,
            batch_size=context.batch_size,
            linger_ms=context.linger_ms,
            heartbeat_ms=context.lease_ms / 4,
        )
        self.live = _LiveBranch()
        self._make_stream = make_stream
        self.task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self._run(), name=f"resumable-chat stream {name}"
        )

    async def _pump(self) -> None:
        writer = self.writer
        live = self.live
        iterator: AsyncIterator[Any] | None = None
        try:
            source: Any = self._make_stream()
            if inspect.isawaitable(source):
                source = await source
            iterator = aiter(source)
            async for chunk in iterator:
                if not isinstance(chunk, str):
                    raise TypeError(
                        f"a resumable stream's source must yield str, got {type(chunk).__name__}"
                    )
                if not chunk:
                    continue
                live.push(chunk)
                for piece in _pieces(chunk):
                    writer.submit(AppendRecord(piece))
                if writer.pending_bytes > writer.max_pending_bytes:
                    await writer.wait_writable()
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                try:
                    result = close()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.debug("closing the source of %s failed", self.name, exc_info=True)

    async def _run(self) -> None:
        self.writer.start()  # heartbeats from now on, even before the first chunk
        failure: Exception | None = None
        try:
            try:
                await self._pump()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = exc
                logger.warning("the source of stream %s failed: %r", self.name, exc)
            self.live.close(failure)
            prefix = "error-" if failure is not None else "end-"
            try:
                await self.writer.close([fence_record(new_token(prefix, 4))])
            except FencingTokenMismatchError:
                logger.info("stream %s was taken over before its producer ended", self.name)
            except S2Error:
                # S2 failed past the retry budget: end the log with error- once S2 is back,
                # so the stream reads as "failed", never "done".
                terminal = [fence_record(new_token("error-", 4))]
                token = self.writer.fencing_token
                if not await append_failure_terminal(self.writer.basin, self.name, token, terminal):
                    raise
        except asyncio.CancelledError:
            # Abandoned (shutdown, delete_stream): like a crash, no terminal fence is written;
            # readers see "failed" once the lease runs out.
            self.live.close()
            await self.writer.aclose()
            raise


class ResumableStreamContext:
    """Resumable ``str`` streams on one basin; build it with
    :func:`create_resumable_stream_context`.

    Safe to share across the requests of one event loop. Close it with :meth:`aclose` (e.g.
    in a FastAPI lifespan) so running producers finish persisting.
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
    ) -> None:
        self.basin = basin
        self._owns_basin = owns_basin
        self.batch_size = batch_size
        self.linger_ms = linger_ms
        self.wait_until = wait_until
        self.key_prefix = key_prefix
        self.lease_ms = lease_ms
        self.resume_at_unit: ResumeAtUnit = resume_at_unit
        self._producers: set[_Producer] = set()
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"ResumableStreamContext(basin={self.basin!r}, key_prefix={self.key_prefix!r}, "
            f"lease_ms={self.lease_ms})"
        )

    # -- helpers ---------------------------------------------------------------------------

    def stream_name(self, stream_id: str) -> str:
        """The S2 stream holding ``stream_id``: ``key_prefix + stream_id``.

        Raises ``ValueError`` for an empty ``stream_id``.
        """
        if not stream_id:
            raise ValueError("stream_id must not be empty")
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

    def _status_of(self, latest: _Generation) -> StreamStatus | None:
        if latest.terminal is not None:
            return "done" if latest.terminal.body.startswith(b"end-") else "failed"
        if latest.claim is None:
            return None
        last = latest.last_record.timestamp if latest.last_record is not None else 0
        return "active" if now_ms() - last < self.lease_ms else "failed"

    async def _claim(self, name: str, latest: _Generation) -> _Claim:
        """Append the claim fence (and the trim of an earlier generation); 412 propagates."""
        token = new_token("session-", 8)
        newest = latest.newest_fence
        current = newest.body.decode() if newest is not None else ""
        fence = fence_record(token, now_ms())
        tail = latest.tail.seq_num
        try:
            ack = await self.basin.append(
                name, AppendInput([fence], match_seq_num=tail, fencing_token=current)
            )
        except FencingTokenMismatchError as exc:
            if newest is not None:
                raise
            # No fence left to read (all records expired under retention, or were trimmed) but
            # the stream still carries a token. The tail condition keeps this safe: if anyone
            # appended since we looked, this fails with a seq_num mismatch.
            ack = await self.basin.append(
                name,
                AppendInput([fence], match_seq_num=tail, fencing_token=exc.expected_fencing_token),
            )
        fence_seq = ack.start.seq_num
        start = ack.end.seq_num
        if newest is not None and fence_seq > 0:
            # Reclaiming an id: the earlier generation (done or failed) is dropped, so readers
            # and retention see only the new one.
            trim_ack = await self.basin.append(
                name,
                AppendInput([trim_record(fence_seq)], match_seq_num=start, fencing_token=token),
            )
            start = trim_ack.end.seq_num
        return _Claim(token, fence_seq, start)

    async def _acquire(
        self, stream_id: str, name: str, *, replace_done: bool
    ) -> _Claim | _Generation | None:
        """Claim ``name``, or say why not: the active generation, or ``None`` when done."""
        for _ in range(_CLAIM_ATTEMPTS):
            latest = await _latest_generation(self.basin, name)
            status = self._status_of(latest)
            if status == "active":
                return latest
            if status == "done" and not replace_done:
                return None
            try:
                return await self._claim(name, latest)
            except (FencingTokenMismatchError, SeqNumMismatchError):
                continue  # another claimer moved the stream on: look again
        raise ResumableStreamError(
            f"could not claim stream {stream_id!r}: it changed under {_CLAIM_ATTEMPTS} attempts"
        )

    def _start_producer(
        self, stream_id: str, name: str, claim: _Claim, make: StreamSource
    ) -> ResumableStream:
        producer = _Producer(self, stream_id, name, claim, make)
        self._producers.add(producer)
        wait_until = self.wait_until

        def done(task: asyncio.Task[None]) -> None:
            self._producers.discard(producer)
            producer.live.close()  # a task cancelled before its first step never ran _run
            if wait_until is None and not task.cancelled() and task.exception() is not None:
                logger.error("persisting stream %s failed", name, exc_info=task.exception())

        producer.task.add_done_callback(done)
        if wait_until is not None:
            wait_until(producer.task)
        return ResumableStream(stream_id, "producer", producer.live.chunks(), producer.task)

    def _resumer(
        self, stream_id: str, name: str, latest: _Generation, resume_at: int, *, live: bool
    ) -> ResumableStream:
        # Without its claim fence (trimmed or expired), a generation's output is whatever
        # precedes its terminal fence: reads below the first record start at that record.
        fence_seq = latest.claim.seq_num if latest.claim is not None else -1
        chunks = self._follow(name, fence_seq) if live else self._backlog(name, fence_seq)
        if resume_at:
            chunks = _skip(chunks, _Skipper(resume_at, self.resume_at_unit))
        return ResumableStream(stream_id, "resumer", chunks)

    async def _backlog(self, name: str, fence_seq: int) -> AsyncGenerator[str, None]:
        """The stored output of a failed generation, up to the stream's current tail."""
        cursor = fence_seq + 1
        while True:
            try:
                batch = await self.basin.read(name, seq_num=cursor, count=MAX_BATCH_RECORDS)
            except (RangeNotSatisfiableError, StreamNotFoundError):
                return
            if not batch.records:
                return
            for record in batch.records:
                if record.seq_num <= fence_seq:
                    continue
                if is_fence(record):
                    return
                if is_command_record(record) or not record.body:
                    continue
                yield _decode(record)
            cursor = batch.records[-1].seq_num + 1

    async def _follow(self, name: str, fence_seq: int) -> AsyncGenerator[str, None]:
        """Follow a live generation until the next fence, with a lease watchdog."""
        follow = follow_reporting_silence(
            self.basin, name, seq_num=fence_seq + 1, silence_s=self.lease_ms / 1000
        )
        position = fence_seq + 1
        async with contextlib.aclosing(follow) as batches:
            async for batch in batches:
                if batch is None:
                    if await self._generation_stopped(name, position):
                        return
                    continue
                for record in batch.records:
                    position = record.seq_num + 1
                    if record.seq_num <= fence_seq:
                        continue
                    if is_fence(record):
                        return  # the generation's terminal fence, or a takeover
                    if is_command_record(record) or not record.body:
                        continue
                    yield _decode(record)

    async def _generation_stopped(self, name: str, position: int) -> bool:
        """After a lease of silence: has the producer stopped writing for good?"""
        try:
            tail = await self.basin.check_tail(name)
        except StreamNotFoundError:
            return True
        if tail.seq_num > position:
            return False  # records exist that the follow has not delivered yet
        if tail.seq_num < position:
            return True  # deleted (and maybe recreated)
        return now_ms() - tail.timestamp >= self.lease_ms

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
            ValueError: an empty ``stream_id`` or a negative ``resume_at``.
            S2Error: the store failed (never reported as done).
            ResumableStreamError: the claim kept losing races (extreme contention).
            RuntimeError: the context is closed.
        """
        self._check_open()
        skip = self._check_resume_at(resume_at)
        name = self.stream_name(stream_id)
        outcome = await self._acquire(stream_id, name, replace_done=False)
        if outcome is None:
            return None
        if isinstance(outcome, _Generation):
            return self._resumer(stream_id, name, outcome, skip, live=True)
        return self._start_producer(stream_id, name, outcome, make_stream)

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
            ValueError: an empty ``stream_id`` or a negative ``resume_at``.
            S2Error: the store failed.
            ResumableStreamError: the claim kept losing races.
            RuntimeError: the context is closed.
        """
        self._check_open()
        self._check_resume_at(resume_at)
        name = self.stream_name(stream_id)
        outcome = await self._acquire(stream_id, name, replace_done=True)
        if not isinstance(outcome, _Claim):
            raise StreamActiveError(stream_id)
        return self._start_producer(stream_id, name, outcome, make_stream)

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
            ValueError: an empty ``stream_id`` or a negative ``resume_at``.
            S2Error: the store failed, before or while reading (never a silent ``None`` or a
                hang: upstream bugs #312 and #194).
            RuntimeError: the context is closed.
        """
        self._check_open()
        skip = self._check_resume_at(resume_at)
        name = self.stream_name(stream_id)
        latest = await _latest_generation(self.basin, name, want_claim=True)
        status = self._status_of(latest)
        if status is None or status == "done":
            return None
        return self._resumer(stream_id, name, latest, skip, live=status == "active")

    async def has_existing_stream(self, stream_id: str) -> StreamStatus | None:
        """The status of ``stream_id``: ``None``, ``"active"``, ``"done"`` or ``"failed"``.

        From Vercel ``resumable-stream`` ``hasExistingStream`` (``null | true | "DONE"``) and
        the ``failed`` status of its Postgres transport; see the module docstring for the
        exact rules. Costs O(records of the latest generation) to read, never O(history).

        Raises:
            ValueError: an empty ``stream_id``.
            S2Error: the store failed.
        """
        name = self.stream_name(stream_id)
        return self._status_of(await _latest_generation(self.basin, name))

    async def delete_stream(self, stream_id: str) -> None:
        """Delete ``stream_id``'s S2 stream and all its output.

        Producers of this id running in this context are abandoned first (their source is
        closed and their live readers end). A missing stream is not an error. On S2 the
        deletion completes asynchronously; the name cannot be reused until it has. For
        routine cleanup, prefer S2 retention (module docstring).

        Raises:
            ValueError: an empty ``stream_id``.
            S2Error: the store failed.
        """
        name = self.stream_name(stream_id)
        running = [p for p in self._producers if p.name == name]
        for producer in running:
            producer.task.cancel()
        if running:
            await asyncio.gather(*(p.task for p in running), return_exceptions=True)
        await self.basin.delete_stream(name)

    async def aclose(self, *, drain_timeout_s: float = 10.0) -> None:
        """Wait up to ``drain_timeout_s`` (seconds) for producers to finish, then abandon the
        rest (no terminal fence: they read as ``"failed"`` after the lease) and close the
        basin if this context created it. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        tasks = {p.task for p in self._producers}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=drain_timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
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


def create_resumable_stream_context(
    basin: Basin | None = None,
    batch_size: int | None = None,
    linger_ms: float | None = None,
    wait_until: WaitUntil | None = None,
    key_prefix: str = "",
    *,
    lease_ms: int = DEFAULT_LEASE_MS,
    resume_at_unit: ResumeAtUnit = "characters",
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
        from .s2.config import basin_from_env

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
    )
