"""The chat core: ``create_resumable_chat`` and :class:`ResumableChat`.

Live answers, session turns, replays, stops and history for one client protocol, on the log
engine (:mod:`resumable_chat.log`), which owns claims, the fenced writer, heartbeats, takeover
and following. Behaviour of ``@s2-dev/resumable-stream`` 2.1 ``createChat``
(``packages/resumable-stream/src/adapter.ts``), with its races closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
)
from typing import Any, Literal

from starlette.responses import JSONResponse, PlainTextResponse, Response

from resumable_chat.chat.dialect import DEFAULT_ERROR_TEXT, Chunk, Dialect, TurnState, dialect_for
from resumable_chat.chat.fanout import AnswerTaps, FrameSink
from resumable_chat.chat.history_tags import history_tag, tag_matches
from resumable_chat.chat.producer import (
    ChatProducer,
    LiveChannel,
    PrefetchedSource,
    SourceFactory,
    StopSignal,
    decode_chunk,
    encode_chunk,
    live_channel,
)
from resumable_chat.clock import SYSTEM_CLOCK, Clock
from resumable_chat.log import (
    MODES,
    PROCESS_OWNERSHIP,
    Generation,
    GenerationLostError,
    LogConfig,
    LogEngine,
    Mode,
    Ownership,
    RecordKind,
    StreamInUseError,
    classify,
    read_range,
    record_id,
)
from resumable_chat.log.fragments import MAX_FRAGMENTS, fragment_records, join_fragments
from resumable_chat.log.read_on import read_on
from resumable_chat.log.records import MAX_DATA_BODY_BYTES, turn_key
from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import StreamNotFoundError
from resumable_chat.s2.prefixed import PrefixedBasin, check_stream_prefix
from resumable_chat.s2.records import (
    AppendRecord,
    SequencedRecord,
    StreamPosition,
    metered_bytes,
)
from resumable_chat.scalar_values import scalar_value_string
from resumable_chat.sse import DEFAULT_KEEPALIVE_S, event_frame, sse_response

__all__ = [
    "DEFAULT_ERROR_TEXT",
    "LOST_GENERATION_ERROR_TEXT",
    "GenerationLostError",
    "ResumableChat",
    "create_resumable_chat",
]

logger = logging.getLogger("resumable_chat")


class MessageNotStorableError(ValueError):
    """The turn's message cannot be stored in the log as UTF-8 JSON: a string holds a lone
    surrogate (``"\\ud83d"``: valid JSON, what ``JSON.stringify`` writes for a string cut
    inside an emoji, but not Unicode text), or a number is ``NaN`` or infinite.

    :meth:`ResumableChat.make_resumable` and :meth:`ResumableChat.make_session_response`
    answer it with 400 before anything is claimed or stored;
    :meth:`ResumableChat.start_generation` raises it (the routers answer 400).
    """


class MessageTooLargeError(MessageNotStorableError):
    """The turn's message is larger, as stored, than the records one chunk may span
    (:data:`~resumable_chat.log.fragments.MAX_FRAGMENTS` records of 1 MiB metered, S2 REST v1
    limits), so it cannot be kept in the log. (A message over one record is stored in
    fragment records, :mod:`resumable_chat.log.fragments`.)

    ``metered_bytes``: the record's size. :meth:`ResumableChat.make_resumable` and
    :meth:`ResumableChat.make_session_response` answer it with 413 before anything is claimed
    or stored; :meth:`ResumableChat.start_generation` raises it (the routers answer 413).
    """

    def __init__(self, metered_bytes: int) -> None:
        super().__init__(
            f"the message is {metered_bytes} bytes when stored; it may take at most "
            f"{MAX_FRAGMENTS} S2 records of {MAX_DATA_BODY_BYTES} bytes of JSON"
        )
        self.metered_bytes = metered_bytes


Protocol = Literal["ai-sdk", "ai-sdk-v7", "tanstack"]
WaitUntil = Callable[[Awaitable[None]], Any]

_NO_STORE = {"Cache-Control": "no-store"}
#: The history route's responses: kept, but checked again (``If-None-Match``) before each use.
_NO_CACHE = {"Cache-Control": "no-cache"}

#: The error text that closes a generation whose writer crashed (when no ``on_error`` is set).
LOST_GENERATION_ERROR_TEXT = "The answer was interrupted: the server generating it stopped."

#: The longest error text an answer ends with, in characters (16 Ki): a longer text from
#: ``on_error`` (an exception quoting a whole model response) is cut to this, ending in
#: ``"…"``, so the error chunk always fits one stored record and the answer ends with it.
MAX_ERROR_TEXT_CHARS = 16 * 1024


#: Seconds a live response that reads the rest of its answer from the log (its client fell
#: behind: :class:`~resumable_chat.chat.producer.LiveChannel`) retries transient S2 failures
#: since the last frame it sent, before it breaks off.
LIVE_LOG_RETRY_S = 30.0


def _cursor_past_tail(cursor: int, tail: int) -> Response:
    """416 with a JSON ``{"detail": ...}`` body, like every other 4xx of the routes."""
    return JSONResponse(
        {"detail": f"cursor {cursor} is past the end of the stream (next seq_num {tail})"},
        status_code=416,
        headers=_NO_STORE,
    )


def _without_running_answer(
    records: list[SequencedRecord], is_history_record: Callable[[bytes], bool]
) -> list[SequencedRecord]:
    """``records`` without the answer of the latest generation when it is still running (no
    closing fence after its claim): its data records other than history records (the stored
    turn message) are left out."""
    for index in range(len(records) - 1, -1, -1):
        kind = classify(records[index])
        if kind.closes:
            return records
        if kind is RecordKind.CLAIM:
            running = [
                r
                for r in records[index:]
                if classify(r) is not RecordKind.DATA or is_history_record(r.body)
            ]
            return records[:index] + running
    return records


def _chunks(records: list[SequencedRecord], dialect: Dialect) -> list[Chunk]:
    """The chunks of the data records, as the history fold takes them
    (:meth:`Dialect.history_chunk`)."""
    out: list[Chunk] = []
    for record in records:
        if classify(record) is RecordKind.DATA:
            chunk = decode_chunk(record.body)
            if chunk is not None:
                out.append(dialect.history_chunk(chunk, record.timestamp))
    return out


#: The error text of a live answer whose claim was lost after it began
#: (``respond_before_claim``); the body of the 409 otherwise.
IN_USE_TEXT = "Stream already in use"
#: The error text of a live answer whose claim failed on S2 after it began.
STORAGE_FAILED_TEXT = "chat storage is unavailable, try again later"


class _StopOnShutdown:
    """``on_shutdown`` of a response begun before its claim was decided: stops the
    generation, at once or as soon as the claim gives it one."""

    __slots__ = ("generation", "requested")

    def __init__(self) -> None:
        self.generation: Generation | None = None
        self.requested = False

    def __call__(self) -> None:
        self.requested = True
        if self.generation is not None:
            self.generation.stop()


class ResumableChat:
    """Resumable, followable, stoppable chat streams on one basin. Use
    :func:`create_resumable_chat` to build one.

    One instance serves many chats (one S2 stream each) and is safe to share across requests
    of one event loop. Close it with :meth:`aclose` (FastAPI lifespan) to drain persistence.
    ``engine`` is its :class:`~resumable_chat.log.LogEngine`.
    """

    def __init__(
        self,
        *,
        dialect: Dialect,
        mode: Mode,
        enable_stop: bool,
        basin: Basin,
        owns_basin: bool,
        batch_size: int,
        linger_ms: float,
        lease_ms: int,
        heartbeat_ms: float,
        keepalive_s: float,
        on_error: Callable[[BaseException], str] | None,
        overlap_claim: bool = True,
        respond_before_claim: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        ownership: Ownership = PROCESS_OWNERSHIP,
        rng: random.Random | None = None,
        trim_delay_ms: float = 30_000,
    ) -> None:
        self.dialect = dialect
        self.mode: Mode = mode
        self.enable_stop = enable_stop
        self.basin = basin
        self._owns_basin = owns_basin
        self.lease_ms = lease_ms
        self.heartbeat_ms = heartbeat_ms
        self.keepalive_s = keepalive_s
        self._on_error = on_error
        self.overlap_claim = overlap_claim
        if respond_before_claim and not overlap_claim:
            raise ValueError("respond_before_claim needs overlap_claim=True")
        self.respond_before_claim = respond_before_claim
        self._starting: set[asyncio.Future[Generation]] = set()
        config = LogConfig(
            mode=mode,
            lease_ms=lease_ms,
            heartbeat_ms=heartbeat_ms,
            batch_size=batch_size,
            linger_ms=linger_ms,
            trim_delay_ms=trim_delay_ms,
        )
        self.engine = LogEngine(
            basin,
            config,
            lost_terminal=self._lost_terminal,
            clock=clock,
            ownership=ownership,
            rng=rng,
        )
        self._rng = rng if rng is not None else random.Random()  # retry jitter
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop it serves
        self._taps = AnswerTaps(self.engine, self.dialect.is_history_record)

    # -- helpers ---------------------------------------------------------------------------

    def _error_text(self, exc: BaseException) -> str:
        if self._on_error is None:
            return DEFAULT_ERROR_TEXT
        try:
            text = self._on_error(exc)
        except Exception:
            logger.exception("on_error raised; using the default error text")
            return DEFAULT_ERROR_TEXT
        if not isinstance(text, str):
            logger.error(
                "on_error returned %s, not the error text (a str); using the default error text",
                type(text).__name__,
            )
            return DEFAULT_ERROR_TEXT
        if len(text) > MAX_ERROR_TEXT_CHARS:
            logger.warning(
                "on_error returned %d characters; the error chunk keeps the first %d",
                len(text),
                MAX_ERROR_TEXT_CHARS - 1,
            )
            text = text[: MAX_ERROR_TEXT_CHARS - 1] + "\u2026"
        # a text with a surrogate (from an exception quoting what a model sent) is kept as
        # a scalar value string: UTF-8 cannot hold it, and the answer must still end
        return scalar_value_string(text)

    def _lost_text(self, stream: str) -> str:
        if self._on_error is None:
            return LOST_GENERATION_ERROR_TEXT
        return self._error_text(GenerationLostError(stream))

    def _lost_terminal(self, stream: str, bodies: list[bytes]) -> list[AppendRecord]:
        """The error terminal of a generation closed after its writer went silent: the
        dialect's turn rebuilt from its stored chunks (AI SDK: open parts closed, then
        ``error``; TanStack: ``RUN_ERROR`` with the run's id)."""
        turn = self.dialect.new_turn(message_id=None)
        for body in bodies:
            chunk = decode_chunk(body)
            if chunk is not None:
                turn.observe(chunk)
        storage_form = self.dialect.storage_form
        return [
            AppendRecord(encode_chunk(storage_form(chunk)))
            for chunk in turn.lost_chunks(self._lost_text(stream))
        ]

    def _check_open(self) -> None:
        """Raise ``RuntimeError`` after :meth:`aclose`, or when called from another event
        loop than the one the chat serves while that one still runs (its generations, tasks
        and basin belong to that loop). A chat whose loop was closed moves to the caller's."""
        if self._closed:
            raise RuntimeError("this ResumableChat is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this ResumableChat is in use on another event loop; create one per event "
                "loop (e.g. in the app's lifespan), and close it there"
            )

    def running(self, stream_name: str) -> Generation | None:
        """The generation this process runs on ``stream_name`` through this chat, if any."""
        return self.engine.generation(stream_name)

    async def _start(
        self,
        stream_name: str,
        source: AsyncIterable[Chunk] | SourceFactory,
        *,
        wait_until: WaitUntil | None,
        prelude: list[Chunk] | None,
        turn: TurnState,
        live: bool,
        announce: list[Chunk] | None = None,
        prefetch: bool = False,
        new_chat: bool = False,
        once: bool = False,
    ) -> Generation:
        """Claim and start a generation (``StreamInUseError`` on a conflict).

        ``prefetch``: start fetching the source's first chunk while the claim is in flight
        (:class:`PrefetchedSource`), unless a generation of this process holds the stream;
        a lost claim closes the source unread.
        """
        producer, signal = self._producer(
            stream_name,
            source,
            prelude=prelude,
            turn=turn,
            live=live,
            announce=announce,
            prefetch=prefetch,
            once=once,
        )
        return await self._claim_and_run(stream_name, producer, signal, wait_until, new_chat)

    async def _claim_and_run(
        self,
        stream_name: str,
        producer: ChatProducer,
        signal: StopSignal,
        wait_until: WaitUntil | None,
        new_chat: bool,
    ) -> Generation:
        """``engine.start`` of ``producer``'s generation (its turn key with it)."""
        return await self.engine.start(
            stream_name,
            producer,
            signal=signal,
            wait_until=wait_until,
            new_chat=new_chat,
            turn_key=producer.turn_key,
        )

    def _producer(
        self,
        stream_name: str,
        source: AsyncIterable[Chunk] | SourceFactory,
        *,
        prelude: list[Chunk] | None,
        turn: TurnState,
        live: bool = True,
        announce: list[Chunk] | None = None,
        prefetch: bool = True,
        once: bool = False,
    ) -> tuple[ChatProducer, StopSignal]:
        """The producer of a new generation, and its stop signal (see :meth:`_start`);
        ``once``: the turn (its ``prelude``) is answered once per message."""
        self._check_open()
        stored = _storable(prelude or [])  # encoded once, checked before the claim
        if announce:  # sent and stored with the claim: checked before it too
            _storable(announce)
        signal = StopSignal()
        local = self.engine.generation(stream_name)
        if prefetch and (local is None or local.outcome is not None):
            source = PrefetchedSource(source, signal)
        producer = ChatProducer(
            source=source,
            dialect=self.dialect,
            turn=turn,
            error_text=self._error_text,
            lost_text=lambda: self._lost_text(stream_name),
            prelude=stored,
            announce=announce,
            live=live,
            signal=signal,
            turn_key=turn_key(stored) if once and stored else None,
        )
        return producer, signal

    async def _start_live(
        self,
        stream_name: str,
        source: AsyncIterable[Chunk] | SourceFactory,
        *,
        wait_until: WaitUntil | None,
        prelude: list[Chunk] | None,
        turn: TurnState,
        new_chat: bool,
        once: bool = False,
    ) -> Response:
        """:meth:`make_resumable` with ``respond_before_claim``: the claim and the model's
        first chunk race; whichever comes first decides the answer. The claim: 200 (or 409)
        as without the option. The first chunk: 200 at once, the chunks go live while the
        claim is in flight, and a claim then lost (or failed) ends the response with the
        dialect's error terminal."""
        producer, signal = self._producer(
            stream_name, source, prelude=prelude, turn=turn, once=once
        )
        prefetched = producer.prefetched
        fetching = prefetched.fetching if prefetched is not None else None
        if prefetched is not None and fetching is not None:
            # The source's fetch gets the next loop turn before the claim starts: a model
            # with its first chunk ready at once (a cached answer) then has it sent on that
            # turn, before the claim's request is built and sent (the claim starts a turn
            # later, microseconds against its S2 round trip).
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                await prefetched.aclose()
                raise
        start = asyncio.ensure_future(
            self._claim_and_run(stream_name, producer, signal, wait_until, new_chat)
        )
        if fetching is not None and not fetching.done():
            try:
                await asyncio.wait([start, fetching], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                start.cancel()
                raise
        if start.done() or prefetched is None or not prefetched.has_chunk():
            try:
                generation = await start
            except StreamInUseError:
                return PlainTextResponse(IN_USE_TEXT, status_code=409)
            return self.live_response(generation)
        producer.send_ahead()
        self._starting.add(start)
        shutdown = _StopOnShutdown()

        def claimed(task: asyncio.Future[Generation]) -> None:
            self._starting.discard(task)
            if task.cancelled():
                producer.claim_failed(STORAGE_FAILED_TEXT)
                return
            exc = task.exception()
            if exc is None:
                shutdown.generation = task.result()
                if shutdown.requested:
                    shutdown.generation.stop()
                return
            if isinstance(exc, StreamInUseError):
                producer.claim_failed(IN_USE_TEXT)
                return
            logger.warning("claiming %s failed after its answer began: %r", stream_name, exc)
            producer.claim_failed(STORAGE_FAILED_TEXT)

        start.add_done_callback(claimed)
        assert producer.live is not None
        response = sse_response(
            self._live_frames(start, producer.live),
            headers=self.dialect.response_headers,
            keepalive_s=self.keepalive_s,
            on_shutdown=shutdown,
        )
        producer.live.send_now = response.send_now
        return response

    # -- public API ------------------------------------------------------------------------

    async def start_generation(
        self,
        stream_name: str,
        source: AsyncIterable[Chunk] | SourceFactory,
        *,
        turn: TurnState,
        prelude: list[Chunk] | None = None,
        announce: list[Chunk] | None = None,
        live: bool = True,
        wait_until: WaitUntil | None = None,
    ) -> Generation:
        """Claim ``stream_name`` and start a generation; the caller frames the response.

        The building block of :meth:`make_resumable` and :meth:`make_session_response` for
        protocols with their own response shape (AG-UI durable runs,
        :mod:`resumable_chat.fastapi.agui`).

        Args:
            stream_name: the chat's S2 stream.
            source: the model's chunks, or a factory called with the stop signal (called only
                after the claim succeeded).
            turn: the dialect's per-generation state (e.g. a TanStack turn that pins run ids).
            prelude: records stored before the answer, not sent live.
            announce: chunks stored and sent live before the source is opened.
            live: keep a live channel (:func:`~resumable_chat.chat.producer.live_channel`).
            wait_until: as in :meth:`make_resumable`.

        Returns:
            the running :class:`~resumable_chat.log.Generation` (its ``claim`` holds the
            fence's seq_num; SSE ids of its records are ``seq_num + 1``).

        Raises:
            StreamInUseError: a generation holds the stream (HTTP 409).
            MessageTooLargeError: a ``prelude`` chunk is over the 64 S2 records a chunk may
                span (nothing claimed; one over a single record is stored in fragments).
            MessageNotStorableError: a ``prelude`` or ``announce`` chunk does not encode as
                UTF-8 JSON (nothing claimed).
            S2Error: S2 failed during the claim.
            RuntimeError: the chat is closed.
        """
        return await self._start(
            stream_name,
            source,
            wait_until=wait_until,
            prelude=prelude,
            turn=turn,
            live=live,
            announce=announce,
        )

    async def make_resumable(
        self,
        stream_name: str,
        chunks: AsyncIterable[Chunk] | SourceFactory,
        *,
        wait_until: WaitUntil | None = None,
        message: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        new_chat: bool = False,
        once_per_message: bool = False,
    ) -> Response:
        """Claim ``stream_name``, then stream ``chunks`` live and persist them.

        Args:
            stream_name: the chat's S2 stream (e.g. ``"chat-<id>"``).
            chunks: the model's chunks (dicts in the protocol's shape), or a factory called
                with the :class:`~resumable_chat.log.StopSignal` that returns them.
                The first chunk is pulled while the claim is in flight (``overlap_claim``,
                the default) or after it succeeds; on a 409 the source is closed.
            wait_until: called with the persistence task (an awaitable) for serverless-style
                hosts; without it the chat owns the task and :meth:`aclose` drains it.
            message: the turn's message (AI SDK ``UIMessage``) stored before the answer so
                :meth:`load_messages` can rebuild history from the log alone.
            message_id: the answer's message id (the continued assistant message's id on a
                tool-result continuation); ``start.messageId`` is set to it.
            new_chat: the request holds the chat's first message only, so its stream is
                probably unused: the claim is first tried in one S2 round trip (conditioned
                on an empty stream) instead of two; a wrong guess costs one round trip more.
                The routers set it from the request's messages.
            once_per_message: ``message`` is answered once: when the chat's latest answer
                ended (stopped included; not failed) having answered exactly this message
                (the same stored bytes), the request gets 409 instead of a second answer. A
                duplicate of one request (two tabs, one turn sent to two instances, a retry)
                that arrives after the other's whole answer is then refused. The AI SDK
                router sets it for bodies naming ``trigger: "submit-message"`` (as
                ``DefaultChatTransport`` sends them, ``ai`` ``src/ui/http-chat-transport.ts``),
                not for ``regenerate-message``, which asks for a new answer to the same
                message, nor for bodies without a trigger, which cannot be told from one.

        Returns:
            200 SSE: every chunk as ``id: <seq_num+1>`` + ``data: <json>`` as the model
            produces it (never waiting on S2), ending with ``data: [DONE]`` for the AI SDK
            once the answer's end is in the log (at most a lease later, see
            :meth:`live_response`); 409 ``Stream already in use`` (text) when a generation
            holds the stream (with ``respond_before_claim``, when that is known before the
            model's first chunk; a claim lost later ends the 200 with the dialect's error
            terminal instead); 413
            JSON ``{"detail"}`` when ``message`` is larger stored than 64 S2 records, 400
            when it cannot be stored as UTF-8 JSON (nothing is claimed or stored). A client
            that disconnects does not stop the generation or its persistence.

        Raises:
            S2Error: S2 failed during the claim (not a conflict).
            RuntimeError: the chat is closed.
        """
        prelude = self.dialect.message_records(message) if message is not None else None
        turn = self.dialect.new_turn(message_id=message_id)
        try:
            if self.respond_before_claim:
                return await self._start_live(
                    stream_name,
                    chunks,
                    wait_until=wait_until,
                    prelude=prelude,
                    turn=turn,
                    new_chat=new_chat,
                    once=once_per_message,
                )
            generation = await self._start(
                stream_name,
                chunks,
                wait_until=wait_until,
                prelude=prelude,
                turn=turn,
                live=True,
                prefetch=self.overlap_claim,
                new_chat=new_chat,
                once=once_per_message,
            )
        except StreamInUseError:
            return PlainTextResponse(IN_USE_TEXT, status_code=409)
        except MessageNotStorableError as exc:
            return not_storable_response(exc)
        return self.live_response(generation)

    def live_response(self, generation: Generation) -> Response:
        """The 200 SSE response of a live generation (started with ``live=True``).

        When the server shuts down (SIGTERM), the answer keeps streaming for up to 10 s;
        then it is stopped, so the live client gets the protocol's stop terminal rather than
        a cut connection. Everything it sent is in the log either way.

        Chunks go out as the model makes them, never waiting on S2; only the end of the
        response (AI SDK ``data: [DONE]``) waits until the answer's end is in the log, for
        at most a lease (one or two S2 round trips after the last chunk): a client that sends
        its next turn the moment the answer ends then finds the chat free on every instance,
        and the chat's history holds the answer.

        A client that reads slower than the model writes is not waited for (the model and
        the log never are): its frames wait in memory, up to
        :data:`~resumable_chat.chat.producer.LIVE_BACKLOG_BYTES` (1 MiB) while it is still
        being sent the ones before, and all the live responses of the process together up to
        :data:`~resumable_chat.chat.producer.LIVE_BACKLOG_TOTAL_BYTES` (64 MiB); past that,
        the response reads the rest of the answer from the log at the client's pace, from
        the last frame it was sent, as :meth:`replay` with that cursor would (stored bodies,
        the same SSE ids).
        """
        channel = live_channel(generation)
        response = sse_response(
            self._live_frames(generation, channel),
            headers=self.dialect.response_headers,
            keepalive_s=self.keepalive_s,
            on_shutdown=generation.stop,
        )
        channel.send_now = response.send_now  # the producer sends while the response waits
        return response

    async def _live_frames(
        self, generation: Generation | asyncio.Future[Generation], channel: LiveChannel
    ) -> AsyncIterator[bytes]:
        """The live channel's frames, then (when the answer ended rather than being
        abandoned) the done frame once the answer's end is stored, at most a lease later.
        ``generation`` may be the claim still in flight (``respond_before_claim``): a claim
        lost or failed has ended the response itself (:meth:`ChatProducer.claim_failed`)."""
        async for frames in channel.frames():
            yield frames
        behind = channel.behind_from
        if behind is None and not channel.complete:
            return  # abandoned at shutdown: no done frame
        if isinstance(generation, asyncio.Future):
            if not generation.done() or generation.cancelled() or generation.exception():
                return
            generation = generation.result()
        if behind is not None:
            async with contextlib.aclosing(self._live_rest_from_log(generation, behind)) as rest:
                async for frames in rest:
                    yield frames
            return
        # generation.task ends once the terminal fence is acknowledged (or the writer gave
        # up); it is not cancelled when this response is (asyncio.wait never cancels).
        await asyncio.wait([generation.task], timeout=self.lease_ms / 1000)
        if self.dialect.done_frame:
            yield self.dialect.done_frame

    async def _live_rest_from_log(
        self, generation: Generation, cursor: int
    ) -> AsyncGenerator[bytes, None]:
        """The rest of a live answer whose client fell too far behind (:class:`LiveChannel`):
        its frames from the log after SSE id ``cursor`` (``0``: from the answer's start), as
        a reconnect with that cursor gets them, then the done frame; S2 failures that may
        pass are retried from the last frame sent for up to :data:`LIVE_LOG_RETRY_S`
        (:func:`~resumable_chat.log.read_on.read_on`), then raised (the response breaks
        off)."""

        def frames_after(cursor: int) -> AsyncGenerator[tuple[bytes, int], None]:
            return self._replay_batches(
                generation.stream,
                cursor or generation.claim.start_seq_num,
                skip_ids_through=cursor or None,
            )

        reading = read_on(frames_after, cursor, retry_s=LIVE_LOG_RETRY_S, rng=self._rng)
        async with contextlib.aclosing(reading) as batches:
            async for frames in batches:
                yield frames

    async def make_session_response(
        self,
        stream_name: str,
        *,
        messages: object,
        source: Callable[[list[dict[str, Any]], StopSignal], AsyncIterable[Chunk]],
        wait_until: WaitUntil | None = None,
    ) -> Response:
        """Start a turn whose chunks go to the log only; readers follow it with :meth:`replay`.

        ``@s2-dev/resumable-stream/tanstack-ai`` ``makeSessionResponse``: ``messages`` are
        normalised by the dialect (TanStack:
        :func:`~resumable_chat.protocols.tanstack.dialect.normalize_messages`); when the
        last one is a user message it is stored first (TanStack: three text events), then the
        chunks of ``source(messages, signal)``. ``source`` is called only after the claim
        succeeds, never when the stop comes first, and not at all for an empty list.

        Returns:
            202 (``Cache-Control: no-store``, no body): without ``wait_until`` after the turn
            is persisted (as ``@s2-dev/resumable-stream`` does), with it at once; 409
            ``Stream already in use`` while a generation runs (the running one stays
            stoppable); 413 JSON ``{"detail"}`` when the last message is larger stored than
            64 S2 records, 400 when it cannot be stored as UTF-8 JSON (nothing is claimed
            or stored).

        Raises:
            ValueError: the chat's mode is not ``"session"``.
            S2Error: S2 failed during the claim.
        """
        if self.mode != "session":
            raise ValueError('make_session_response requires mode="session"')
        normalized = self.dialect.session_messages(messages)

        async def session_source(signal: StopSignal) -> AsyncIterator[Chunk]:
            if not normalized:
                return
            async for chunk in source(normalized, signal):
                yield chunk

        last = normalized[-1] if normalized else None
        try:
            generation = await self._start(
                stream_name,
                session_source,
                wait_until=wait_until,
                prelude=self.dialect.message_records(last) if last is not None else None,
                turn=self.dialect.new_turn(message_id=None),
                live=False,
                new_chat=len(normalized) == 1,
            )
        except StreamInUseError:
            return PlainTextResponse(IN_USE_TEXT, status_code=409)
        except MessageNotStorableError as exc:
            return not_storable_response(exc)
        if wait_until is None:
            await asyncio.shield(generation.task)
        return Response(status_code=202, headers=_NO_STORE)

    async def replay(self, stream_name: str, from_seq_num: int | None = None) -> Response:
        """Replay the running answer from its first chunk, then follow it live.

        Args:
            stream_name: the chat's S2 stream.
            from_seq_num: a cursor (an SSE ``id`` a client saw): only records after it are
                sent. ``None``: from the answer's first chunk (AI SDK
                ``DefaultChatTransport`` reconnect replays the whole answer).

        Returns:
            204 (``Cache-Control: no-store``) when no generation runs (one whose writer died
            is closed first); 416 (JSON ``detail``) when this process runs the answer and never sent
            ``from_seq_num``; otherwise 200 SSE with the stored bodies verbatim as
            ``id: <id>`` + ``data:`` frames after the cursor, ending after the generation's
            terminal fence with ``data: [DONE]`` (AI SDK). A cursor past the log's tail while
            another instance runs the answer is honoured: that instance sends live frames
            before S2 stores them, so the log catches up with it; a cursor no instance sent
            gets only the end.

        Raises:
            ValueError: ``from_seq_num`` is negative.
            S2Error: S2 failed while looking for the generation.
            RuntimeError: the chat is closed.
        """
        self._check_open()
        if from_seq_num is not None and from_seq_num < 0:
            raise ValueError("from_seq_num must be ≥ 0")
        if self.mode == "session" and self.dialect.session_replay == "snapshot":
            return await self._session_replay(stream_name, from_seq_num)
        answer_start = self._taps.running_answer(stream_name, from_seq_num)
        read_from = from_seq_num if from_seq_num is not None else 0
        known: tuple[SequencedRecord, ...] = ()  # the answer's records read already
        local = self.engine.generation(stream_name)
        if answer_start is None and local is not None and local.writer.error is None:
            # This process runs the answer: where it starts is known without asking the log
            # (which may lag the model by S2's latency, or by seconds when S2 is overloaded).
            if from_seq_num is not None and not local.sent_live(from_seq_num):
                return _cursor_past_tail(from_seq_num, local.writer.next_seq_num)
            # its writer's first record (the turn's message, stored with the claim, is
            # history: never sent), from where the writer's memory serves a catch-up
            answer_start = local.claim.start_seq_num
        if answer_start is None:
            # No answer this process is following already: ask the log (one read).
            latest = await self.engine.latest(stream_name, settle=True)
            if not latest.active:
                return Response(status_code=204, headers=_NO_STORE)
            answer_start = latest.data_start
            known = latest.since_claim  # served at once; the follow starts after them
            if from_seq_num is not None and from_seq_num > latest.tail.seq_num:
                # Another instance runs the answer and sends its live frames before S2
                # stores them: a cursor from its response may be ahead of the log here by
                # S2's latency (or by a backlog while S2 is slow). Read on from the tail,
                # skipping what the client has; a cursor nobody sent sees only the end.
                read_from = latest.tail.seq_num
        start = answer_start if from_seq_num is None else max(answer_start, read_from)
        sink = FrameSink()
        frames = self._taps.frames(
            stream_name,
            answer_start,
            start,
            skip_ids_through=from_seq_num,
            done_frame=self.dialect.done_frame,
            fallback=lambda seq_num: self._replay_frames(
                stream_name, seq_num, skip_ids_through=from_seq_num
            ),
            sink=sink,
            known=known,
        )
        response = sse_response(
            frames, headers=self.dialect.response_headers, keepalive_s=self.keepalive_s
        )
        sink.send_now = response.send_now  # the tap sends new frames while the response waits
        return response

    async def _session_replay(self, stream: str, from_seq_num: int | None) -> Response:
        """TanStack session replay (the behaviour of ``@s2-dev/resumable-stream``
        ``tanstack-ai``): snapshot first load, or raw from a cursor."""
        if from_seq_num is not None:
            try:
                tail = (await self.basin.check_tail(stream)).seq_num
            except StreamNotFoundError:
                tail = 0
            start, ahead = from_seq_num, False
            if from_seq_num > tail and not self.engine.sent_live(stream, from_seq_num):
                # a run on another instance sends live before S2 stores: read on from the
                # tail, skipping what the client has; with no run open the log is complete
                if not (await self.engine.latest(stream)).active:
                    return _cursor_past_tail(from_seq_num, tail)
                start, ahead = tail, True
            # ahead: only to the running run's end, so a cursor that this log never reached
            # (a tab of a log that was reset) is not followed forever, skipping everything:
            # the client's reconnect then finds the run over and gets 416
            frames = self._replay_frames(
                stream, start, until_closed=ahead, skip_ids_through=from_seq_num
            )
        else:
            head, next_seq = await self._snapshot_head(stream)
            frames = self._head_then_follow(stream, head, next_seq)
        return sse_response(
            frames, headers=self.dialect.response_headers, keepalive_s=self.keepalive_s
        )

    async def _snapshot_head(self, stream: str) -> tuple[bytes, int]:
        """The first frames of a first-load session replay and the seq_num to follow from.

        Completed history folded into one snapshot, then the running run raw from its
        start (:meth:`Dialect.is_run_start`). Read before the response starts, so an S2
        failure is an error the route can answer (503), not a 200 that breaks off.
        """
        records, pending_from = join_fragments(await read_range(self.basin, stream, 0))
        next_seq = records[-1].seq_num + 1 if records else 0
        if pending_from is not None:  # the log ends inside a chunk: follow from its start
            next_seq = pending_from
        active_from = len(records)
        for index in range(len(records) - 1, -1, -1):
            kind = classify(records[index])
            if kind.boundary:
                if kind is RecordKind.CLAIM:
                    active_from = index + 1
                break
        raw_from = len(records)  # first record of the running run
        for index in range(active_from, len(records)):
            record = records[index]
            if classify(record) is RecordKind.DATA and self.dialect.is_run_start(record.body):
                raw_from = index
                break
        head: list[bytes] = []
        messages = self.dialect.fold(_chunks(records[:raw_from], self.dialect))
        if messages:
            # the id just before the run's first record: a reconnect from it gets the run
            # whole (a record a stop moved keeps the lower id its live frame carried)
            if raw_from < len(records):
                cursor = record_id(records[raw_from]) - 1
            else:  # none stored yet: those a stop fence at the end moves keep lower ids
                cursor = next_seq
                for record in reversed(records[active_from:]):
                    if classify(record) is not RecordKind.STOP:
                        break
                    cursor = min(cursor, record.seq_num)
            head.append(event_frame(encode_chunk(self.dialect.snapshot_frame(messages)), cursor))
        for record in records[raw_from:]:
            if classify(record) is RecordKind.DATA:
                head.append(event_frame(record.body, record_id(record)))
        return b"".join(head), next_seq

    async def _head_then_follow(
        self, stream: str, head: bytes, start: int
    ) -> AsyncGenerator[bytes, None]:
        """``head``, then every record from ``start`` on, live."""
        if head:
            yield head
        following = self._replay_frames(stream, start, until_closed=False)
        async with contextlib.aclosing(following):
            async for frames in following:
                yield frames

    async def _replay_frames(
        self,
        stream: str,
        start: int,
        *,
        until_closed: bool = True,
        skip_ids_through: int | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """Stored data records from ``start`` as SSE frames, live; end at the generation's
        terminal when ``until_closed`` (then the dialect's done frame)."""
        batches = self._replay_batches(
            stream, start, until_closed=until_closed, skip_ids_through=skip_ids_through
        )
        async with contextlib.aclosing(batches):  # closed with this, its follow too
            async for frames, _ in batches:
                yield frames

    async def _replay_batches(
        self,
        stream: str,
        start: int,
        *,
        until_closed: bool = True,
        skip_ids_through: int | None = None,
    ) -> AsyncGenerator[tuple[bytes, int], None]:
        """:meth:`_replay_frames`, each batch of frames with the SSE id of the last data
        record read so far (``0`` before any)."""
        is_history = self.dialect.is_history_record
        last_id = 0
        follow = self.engine.follow(
            stream,
            start,
            until_closed=until_closed,
            open_generation=True if until_closed else None,
            skip_ids_through=skip_ids_through,
        )
        ended = False
        async with contextlib.aclosing(follow) as batches:
            async for events in batches:
                frames: list[bytes] = []
                for event in events:
                    if event.kind is RecordKind.DATA:
                        last_id = event.id
                        if not is_history(event.body):
                            frames.append(event_frame(event.body, event.id))
                    elif until_closed and event.kind.boundary:
                        ended = True
                        break
                if frames:
                    yield b"".join(frames), last_id
                if ended:
                    break
        if ended and self.dialect.done_frame:
            yield self.dialect.done_frame, last_id

    async def stop_session(self, stream_name: str) -> Response:
        """Stop the generation running on ``stream_name``, in this process or another.

        Here: the source is cancelled at once. Elsewhere: a ``stop-`` fence conditioned on
        the running generation's claim token goes to the stream; the generating instance's
        writer sees it at its next append (within about a heartbeat when the model is
        silent), adopts it and stops its source. Either way the source's iterator is closed
        (so is the model request), the answer ends with the protocol's stop terminal (AI SDK:
        its open parts and step closed, then ``abort``; TanStack ``RUN_FINISHED`` with the
        run's id) and an ``end-`` fence.

        Returns 202 when a generation was running, 204 otherwise (``Cache-Control:
        no-store``); always 204 when ``enable_stop`` is off. Raises ``S2Error`` when S2 fails
        and ``RuntimeError`` after :meth:`aclose`.
        """
        self._check_open()
        if not self.enable_stop:
            return Response(status_code=204, headers=_NO_STORE)
        stopped = await self.engine.request_stop(stream_name)
        return Response(status_code=202 if stopped else 204, headers=_NO_STORE)

    async def load_messages(
        self, stream_name: str, *, include_running: bool | None = None
    ) -> list[dict[str, Any]]:
        """Fold every stored chunk of ``stream_name`` into the client's messages.

        For the AI SDK: ``UIMessage`` dicts (user messages included), as the client's
        ``processUIMessageStream`` would build them. A missing stream gives ``[]``. Reads the
        whole log (O(history)); in shared mode the history is the latest generation (the
        turn it answers and the answer).

        Args:
            stream_name: the chat's S2 stream.
            include_running: whether the answer of a generation still running (claimed, no
                terminal fence yet) is folded in; its stored turn message always is.
                ``None``: the dialect's choice (:attr:`Dialect.history_includes_running`):
                left out for the AI SDK, whose ``useChat({resume: true})`` replays it (the
                AI SDK's own persistence pattern: history holds finished answers, the
                resume brings the running one), folded in for TanStack.

        Raises ``S2Error`` when S2 fails and ``RuntimeError`` after :meth:`aclose`.
        """
        self._check_open()
        messages, _ = await self._read_history(stream_name, include_running)
        return messages

    async def messages_response(
        self, stream_name: str, *, if_none_match: str | None = None
    ) -> Response:
        """The history route's response: :meth:`load_messages` as JSON, with an ``ETag``.

        The tag names the log's tail (:func:`~resumable_chat.chat.history_tags.history_tag`):
        the log only grows, so the same tag means the same history. Sent with
        ``Cache-Control: no-cache``, so a browser asks again each time, with the tag in
        ``If-None-Match`` (RFC 9110 §13.1.2, weak comparison), and a page polling the history
        costs one S2 check-tail while nothing changed instead of a read of the whole log.

        Args:
            stream_name: the chat's S2 stream.
            if_none_match: the request's ``If-None-Match`` header, if any.

        Returns:
            304 (no body, the ``ETag``) when ``if_none_match`` names the current tag;
            otherwise 200 JSON: the messages (``UIMessage`` dicts for the AI SDK), the
            running answer left out or folded in as :meth:`load_messages` decides.

        Raises ``S2Error`` when S2 fails and ``RuntimeError`` after :meth:`aclose`.
        """
        self._check_open()
        if if_none_match is not None:
            try:
                tail = await self.basin.check_tail(stream_name)
            except StreamNotFoundError:
                tail = StreamPosition(0, 0)
            tag = history_tag(tail)
            if tag_matches(if_none_match, tag):
                return Response(status_code=304, headers={"ETag": tag, **_NO_CACHE})
        messages, tail = await self._read_history(stream_name, None)
        return JSONResponse(messages, headers={"ETag": history_tag(tail), **_NO_CACHE})

    async def _read_history(
        self, stream_name: str, include_running: bool | None
    ) -> tuple[list[dict[str, Any]], StreamPosition]:
        """:meth:`load_messages`, and the tail its read implies (after its last record; the
        tail's timestamp is that record's)."""
        records = await read_range(self.basin, stream_name, 0)
        last = records[-1] if records else None
        tail = (
            StreamPosition(0, 0)
            if last is None
            else StreamPosition(last.seq_num + 1, last.timestamp)
        )
        records, _ = join_fragments(records)
        if self.mode == "shared":  # the latest generation only (the rest awaits its trim)
            claims = [i for i, r in enumerate(records) if classify(r) is RecordKind.CLAIM]
            records = records[claims[-1] :] if claims else records
        if include_running is None:
            include_running = self.dialect.history_includes_running
        if not include_running:
            records = _without_running_answer(records, self.dialect.is_history_record)
        return self.dialect.fold(_chunks(records, self.dialect)), tail

    async def aclose(self, *, drain_timeout_s: float = 10.0) -> None:
        """Wait up to ``drain_timeout_s`` (s) for running generations, stop the rest, close.

        Stopped generations still write their stop terminal and end fence. The basin is
        closed when the chat created it. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        if self._starting:  # claims of answers begun before them (respond_before_claim)
            await asyncio.wait(set(self._starting), timeout=drain_timeout_s)
            late = list(self._starting)
            for start in late:
                start.cancel()
            if late:
                await asyncio.wait(late)  # their producers are closed
        await self.engine.aclose(drain_timeout_s=drain_timeout_s)
        await self._taps.aclose()
        if self._owns_basin:
            await self.basin.aclose()

    async def check(self) -> None:
        """Check the chat's storage with one cheap S2 request (nothing to do when embedded).

        The FastAPI routers call it at start-up (their lifespan); call it yourself from your
        own lifespan otherwise. See :func:`resumable_chat.s2.check.check_basin`.

        Raises:
            S2Error: ``S2AuthError`` (token refused), ``BasinNotFoundError`` (no such
                basin), ``S2UnavailableError`` (S2 unreachable); the message names the cause
                and the setting to fix.
        """
        from resumable_chat.s2.check import check_basin

        await check_basin(self.basin)


def create_resumable_chat(
    protocol: Protocol = "ai-sdk",
    mode: Mode = "session",
    enable_stop: bool = True,
    basin: Basin | None = None,
    *,
    batch_size: int = 1000,
    linger_ms: float = 0,
    lease_ms: int = 5000,
    heartbeat_ms: float | None = None,
    keepalive_s: float = DEFAULT_KEEPALIVE_S,
    on_error: Callable[[BaseException], str] | None = None,
    overlap_claim: bool = True,
    respond_before_claim: bool = False,
    stream_prefix: str = "",
    clock: Clock = SYSTEM_CLOCK,
    ownership: Ownership | None = None,
    rng: random.Random | None = None,
    trim_delay_ms: float = 30_000,
) -> ResumableChat:
    """Build a :class:`ResumableChat`.

    Args:
        protocol: ``"ai-sdk"`` (Vercel AI SDK UI message stream, ``ai`` 5 and 6 clients),
            ``"ai-sdk-v7"`` (the same for ``ai`` 7 clients: its new chunk types, and
            ``finishReason: "interrupted"`` for an answer whose server stopped) or
            ``"tanstack"``.
        mode: ``"session"`` (one stream per chat, many turns), ``"shared"`` (like session, but
            a turn replaces the earlier ones: they are trimmed ``trim_delay_ms`` after it ends)
            or ``"single-use"`` (one stream per answer, trimmed ``trim_delay_ms`` after it
            ends), as in ``@s2-dev/resumable-stream`` 2.1.
        enable_stop: :meth:`ResumableChat.stop_session` stops generations (else it answers 204).
        basin: where logs live. ``None``: S2 from ``S2_ACCESS_TOKEN`` + ``S2_BASIN``, else
            the embedded in-process log (one log line says which).
        batch_size: records per append, 1 to 1000.
        linger_ms: ms the first record of an empty batch may wait for more (0: none).
        lease_ms: ms without any record (data or heartbeat) after which another instance may
            close a running generation as crashed (all modes): the next claimer, a follower
            or a stop closes it with the protocol's error terminal and an ``error-`` fence,
            after waiting two heartbeat intervals more for a sign of life. A process never
            closes a generation it runs itself, however long S2 is slow or down. The lease
            compares S2's record timestamps with this host's clock, so keep it in sync (NTP):
            a clock behind S2's makes a new turn or a stop close a crashed generation later,
            by the difference (a follower judges by its own wait); one ahead closes it
            sooner, yet not one whose writer lives (its heartbeats move the tail within the
            two heartbeat intervals).
        heartbeat_ms: ms of writer idleness after which it appends an empty record, keeping
            the lease fresh while the model is silent; it also bounds how long a stop from
            another instance waits while the model is silent. Default: ``min(1000,
            lease_ms / 4)``; must be at most ``lease_ms / 2``.
        keepalive_s: seconds between SSE keep-alive comments on idle responses (0: off).
        on_error: maps a source exception to the error chunk's text; by default the text is
            ``"An error occurred."`` so provider details do not leak. A text over
            :data:`MAX_ERROR_TEXT_CHARS` (16 Ki characters) is cut to it, ending in ``"…"``;
            one that is not a ``str``, or an ``on_error`` that raises, gets the default.
        overlap_claim: :meth:`~ResumableChat.make_resumable` starts pulling the source's
            first chunk while the claim's S2 round trips are in flight, so they hide in the
            model's time to first token. A claim lost to another instance (409) then closes
            the just-opened model request unread; a conflict known in this process never
            calls the source. ``False``: the source is called only after the claim.
        respond_before_claim: :meth:`~ResumableChat.make_resumable` answers 200 and sends
            the model's chunks as soon as the first one arrives, even while the claim's S2
            round trips are still in flight (chunks sent before the claim carry no SSE
            ``id``), so S2's latency is never added to the time to first chunk (on S2
            Standard, appends take about 400 ms). The price: a claim lost after the answer
            began (another instance's generation holds the chat) ends the live answer with
            the protocol's error terminal, text ``"Stream already in use"``, instead of a
            409, and nothing of it is stored; a conflict known before the first chunk still
            gets 409. ``False`` (the default): the first chunk waits for the claim, so a
            conflict is always a 409 (the HTTP contract of ``@s2-dev/resumable-stream``).
            Needs ``overlap_claim``.
        stream_prefix: prepended to every S2 stream name the chat uses (``""`` keeps the
            names as they are), so two apps can share one basin: with ``"app1/"`` the chat
            ``chat-42`` lives on S2 stream ``app1/chat-42``. Up to 200 of
            ``A-Z a-z 0-9 _ - . : /``. The chat's ``basin`` is then a
            :class:`~resumable_chat.s2.prefixed.PrefixedBasin` over the given one.
        clock: the time source (:mod:`resumable_chat.clock`); tests and simulations pass a
            virtual one.
        ownership: the registry of generations "this process" runs
            (:class:`~resumable_chat.log.Ownership`; default: the process's). A simulation
            gives each simulated instance its own.
        rng: randomness for fencing tokens and retry jitter; a seeded one makes simulations
            reproducible (default: secure tokens).
        trim_delay_ms: single-use and shared modes trim a finished answer's stream this many
            ms after its end fence (upstream trims at once, which cut the end off followers
            that were still a few records behind); on shutdown the trim is skipped and S2
            retention removes the records.

    Raises:
        ValueError: an unknown protocol or mode, or a bad batch size, linger, lease,
            heartbeat or stream prefix, or ``respond_before_claim`` without
            ``overlap_claim``.
        S2ConfigError: the S2 environment variables are half set.
    """
    dialect = dialect_for(protocol)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if heartbeat_ms is None:
        heartbeat_ms = min(1000, lease_ms / 4)
    LogConfig(mode, lease_ms, heartbeat_ms, batch_size, linger_ms)  # validates
    check_stream_prefix(stream_prefix)
    owns = basin is None
    if basin is None:
        from resumable_chat.s2.config import basin_from_env

        basin = basin_from_env()
    if stream_prefix:
        basin = PrefixedBasin(basin, stream_prefix)
    return ResumableChat(
        dialect=dialect,
        mode=mode,
        enable_stop=enable_stop,
        basin=basin,
        owns_basin=owns,
        batch_size=batch_size,
        linger_ms=linger_ms,
        lease_ms=lease_ms,
        heartbeat_ms=heartbeat_ms,
        keepalive_s=keepalive_s,
        on_error=on_error,
        overlap_claim=overlap_claim,
        respond_before_claim=respond_before_claim,
        clock=clock,
        ownership=ownership if ownership is not None else PROCESS_OWNERSHIP,
        rng=rng,
        trim_delay_ms=trim_delay_ms,
    )


def _storable(chunks: list[Chunk]) -> list[bytes]:
    """``chunks`` as the bodies of the records that store them (a body over one record is
    stored in fragments); raises :class:`MessageNotStorableError` when one does not encode as
    UTF-8 JSON (a lone surrogate, ``NaN``) and :class:`MessageTooLargeError` when one needs
    more records than a chunk may span."""
    bodies: list[bytes] = []
    for chunk in chunks:
        try:
            body = encode_chunk(chunk)
        except ValueError as exc:  # UnicodeEncodeError (a lone surrogate), NaN
            raise MessageNotStorableError(f"the message cannot be stored: {exc}") from None
        if len(body) > MAX_DATA_BODY_BYTES and fragment_records(body) is None:
            raise MessageTooLargeError(metered_bytes(AppendRecord(body)))
        bodies.append(body)
    return bodies


def not_storable_response(exc: MessageNotStorableError) -> Response:
    """The answer to a message the log cannot keep: 413 when it is too large, else 400, with
    ``{"detail": <why>}``."""
    status = 413 if isinstance(exc, MessageTooLargeError) else 400
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=_NO_STORE)
