"""The chat core: ``create_resumable_chat`` and :class:`ResumableChat`.

Claims per mode, the generation lifecycle, the tee, replay, the stop registry and the
background tasks (DESIGN.md §2–§3; behaviour of ``@s2-dev/resumable-stream`` 2.1 ``createChat``,
reference §3–§4, with the fixes listed in DESIGN.md §6).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal

from starlette.responses import PlainTextResponse, Response

from .claims import (
    MODES,
    Claim,
    LatestGeneration,
    Mode,
    StaleGenerationError,
    StreamInUseError,
    claim_stream,
    find_latest_generation,
    new_token,
    read_range,
)
from .generation import (
    MAX_SAFE_INTEGER,
    Generation,
    PrefetchedSource,
    SourceFactory,
    StopSignal,
    decode_chunk,
    encode_chunk,
)
from .protocols.ai_sdk import AiSdkDialect
from .protocols.base import DEFAULT_ERROR_TEXT, Chunk, Dialect, TurnState
from .protocols.tanstack import TanStackDialect, normalize_messages
from .s2.basin import Basin
from .s2.errors import (
    FencingTokenMismatchError,
    S2Error,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from .s2.prefixed import PrefixedBasin, check_stream_prefix
from .s2.records import (
    AppendInput,
    AppendRecord,
    fence_record,
    is_fence,
    is_stop_fence,
    is_terminal_fence,
    now_ms,
    trim_record,
)
from .s2.silence import follow_reporting_silence
from .sse import DEFAULT_KEEPALIVE_S, sse_response
from .writer import LogWriter

__all__ = [
    "DEFAULT_ERROR_TEXT",
    "LOST_GENERATION_ERROR_TEXT",
    "GenerationLostError",
    "ResumableChat",
    "create_resumable_chat",
]

logger = logging.getLogger("resumable_chat")

Protocol = Literal["ai-sdk", "tanstack"]
WaitUntil = Callable[[Awaitable[None]], Any]

_NO_STORE = {"Cache-Control": "no-store"}

#: The error text that closes a generation whose writer crashed (when no ``on_error`` is set).
LOST_GENERATION_ERROR_TEXT = "The answer was interrupted: the server generating it stopped."


class GenerationLostError(Exception):
    """Handed to ``on_error`` when a generation is closed because its writer crashed (it
    wrote nothing, not even a heartbeat, for a lease). ``stream``: the chat's S2 stream.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(f"the generation on {stream} stopped writing (its process died)")
        self.stream = stream


def _dialect_for(protocol: str) -> Dialect:
    if protocol == "ai-sdk":
        return AiSdkDialect()
    if protocol == "tanstack":
        return TanStackDialect()
    raise ValueError(f"protocol must be 'ai-sdk' or 'tanstack', got {protocol!r}")


def _cursor_past_tail(cursor: int, tail: int) -> Response:
    return PlainTextResponse(
        f"cursor {cursor} is past the end of the stream (next seq_num {tail})",
        status_code=416,
        headers=_NO_STORE,
    )


def _chunk_type(body: bytes) -> str | None:
    chunk = decode_chunk(body)
    return None if chunk is None else str(chunk["type"])


class _PendingClaim:
    """Stands in the stop registry while a claim is in flight, so a stop is not lost."""

    __slots__ = ("stopped",)

    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> bool:
        self.stopped = True
        return True


class ResumableChat:
    """Resumable, followable, stoppable chat streams on one basin. Use
    :func:`create_resumable_chat` to build one.

    One instance serves many chats (one S2 stream each) and is safe to share across requests
    of one event loop. Close it with :meth:`aclose` (FastAPI lifespan) to drain persistence.
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
    ) -> None:
        self.dialect = dialect
        self.mode: Mode = mode
        self.enable_stop = enable_stop
        self.basin = basin
        self._owns_basin = owns_basin
        self.batch_size = batch_size
        self.linger_ms = linger_ms
        self.lease_ms = lease_ms
        self.heartbeat_ms = heartbeat_ms
        self.keepalive_s = keepalive_s
        self._on_error = on_error
        self.overlap_claim = overlap_claim
        self._generations: dict[str, Generation | _PendingClaim] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- helpers ---------------------------------------------------------------------------

    def _error_text(self, exc: BaseException) -> str:
        if self._on_error is None:
            return DEFAULT_ERROR_TEXT
        try:
            return self._on_error(exc)
        except Exception:
            logger.exception("on_error raised; using the default error text")
            return DEFAULT_ERROR_TEXT

    def _track(self, stream: str, generation: Generation, wait_until: WaitUntil | None) -> None:
        task = generation.task
        self._tasks.add(task)
        if self.enable_stop:
            self._generations[stream] = generation

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if self._generations.get(stream) is generation:
                del self._generations[stream]
            if wait_until is None and not t.cancelled() and t.exception() is not None:
                logger.error("persisting %s failed", stream, exc_info=t.exception())

        task.add_done_callback(done)
        if wait_until is not None:
            wait_until(task)

    def running(self, stream_name: str) -> Generation | None:
        """The generation this process runs on ``stream_name``, if any (needs ``enable_stop``)."""
        entry = self._generations.get(stream_name)
        return entry if isinstance(entry, Generation) else None

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
    ) -> Generation | str:
        """Claim and start a generation; on a conflict return the 409 text instead.

        ``prefetch``: start fetching the source's first chunk while the claim is in flight
        (:class:`PrefetchedSource`); a lost claim closes the source unread.
        """
        if self._closed:
            raise RuntimeError("this ResumableChat is closed")
        pending: _PendingClaim | None = None
        if self.enable_stop:
            running = self._generations.get(stream_name)
            if isinstance(running, Generation) and running.outcome is not None:
                # Its answer has ended and its end fence is being stored: a turn sent right
                # after [DONE] (a tool-result continuation) waits for it instead of a 409.
                await asyncio.wait([running.task], timeout=self.lease_ms / 1000)
            if stream_name in self._generations:
                return "Stream already in use"  # known locally: no S2 round trip
            pending = self._generations[stream_name] = _PendingClaim()
        signal = StopSignal()
        # make_resumable: the model starts while the claim is in flight, so the claim's S2
        # round trips hide in its time to first token; a lost claim closes it unread.
        prefetched = PrefetchedSource(source, signal) if prefetch else None
        try:
            claim = await self._claim(stream_name)
        except BaseException as exc:
            if prefetched is not None:
                await prefetched.aclose()
            if isinstance(exc, StreamInUseError):
                return "Stream already in use"
            raise
        finally:
            if pending is not None and self._generations.get(stream_name) is pending:
                del self._generations[stream_name]
        writer = LogWriter(
            self.basin,
            stream_name,
            fencing_token=claim.token,
            match_seq_num=claim.start_seq_num,
            batch_size=self.batch_size,
            linger_ms=self.linger_ms,
            heartbeat_ms=self.heartbeat_ms,
        )
        generation = Generation(
            stream=stream_name,
            claim=claim,
            source=prefetched if prefetched is not None else source,
            dialect=self.dialect,
            turn=turn,
            writer=writer,
            single_use=self.mode == "single-use",
            error_text=self._error_text,
            prelude=prelude,
            announce=announce,
            live=live,
            signal=signal,
        )
        if pending is not None and pending.stopped:
            generation.stop()
        self._track(stream_name, generation, wait_until)
        return generation

    async def _claim(self, stream: str) -> Claim:
        """Claim ``stream``; a crashed generation holding it is closed first (one retry)."""
        try:
            return await claim_stream(self.basin, stream, self.mode, lease_ms=self.lease_ms)
        except StaleGenerationError:
            await self._close_lost(stream)
        try:
            return await claim_stream(self.basin, stream, self.mode, lease_ms=self.lease_ms)
        except StaleGenerationError as exc:  # closed and crashed again meanwhile: rare
            raise StreamInUseError(stream) from exc

    def _is_lost(self, latest: LatestGeneration) -> bool:
        """True when ``latest`` is a running generation whose last record is a lease old."""
        return latest.active and now_ms() - latest.tail.timestamp >= self.lease_ms

    async def _close_lost(self, stream: str, latest: LatestGeneration | None = None) -> bool:
        """Close a generation whose writer died: its error terminal, then an ``error-`` fence.

        The terminal comes from the dialect's :class:`TurnState` rebuilt from the generation's
        stored chunks (AI SDK: open parts closed, then ``error``; TanStack: ``RUN_ERROR`` with
        the run's id), so every reader ends the answer properly. The append is conditioned on
        the stream's current fencing token and tail: if the writer came back, or another
        instance closed it first, nothing is written. Reads O(answer) records.

        Returns True when this call closed it. Raises ``S2Error`` when S2 fails.
        """
        if latest is None:
            latest = await find_latest_generation(self.basin, stream)
        if not latest.active or latest.fence is None:
            return False
        turn = self.dialect.new_turn(message_id=None)
        for record in await read_range(
            self.basin, stream, latest.fence.seq_num + 1, latest.tail.seq_num
        ):
            if not record.headers and record.body:
                chunk = decode_chunk(record.body)
                if chunk is not None:
                    turn.observe(chunk)
        lost = GenerationLostError(stream)
        text = LOST_GENERATION_ERROR_TEXT if self._on_error is None else self._error_text(lost)
        storage_form = self.dialect.storage_form
        final = [AppendRecord(encode_chunk(storage_form(c))) for c in turn.error_chunks(text)]
        if self.mode == "single-use":
            final.append(trim_record(MAX_SAFE_INTEGER))
        final.append(fence_record(new_token("error-", 4)))
        request = AppendInput(final, match_seq_num=latest.tail.seq_num, fencing_token=latest.token)
        try:
            await self.basin.append(stream, request)
        except (FencingTokenMismatchError, SeqNumMismatchError):
            return False
        logger.warning(
            "closed the generation on %s: its writer wrote nothing for %d ms (crashed?)",
            stream,
            now_ms() - latest.tail.timestamp,
        )
        return True

    async def still_running(self, stream: str, position: int) -> bool:
        """For a reader following ``stream`` that heard nothing for a lease (``lease_ms``):
        is a generation still open there?

        Args:
            stream: the chat's S2 stream.
            position: the seq_num the reader's follow will deliver next.

        Returns True while the latest generation has no terminal fence. When the stream's
        tail is at ``position`` (its writer wrote nothing, not even a heartbeat, for a lease),
        the generation is closed first with its error terminal and an ``error-`` fence
        (DESIGN.md §6.2), which then reach the reader through its follow. S2 errors are
        logged, not raised (the answer is then True: keep following).
        """
        try:
            latest = await find_latest_generation(self.basin, stream)
            if not latest.active:
                return False
            if latest.tail.seq_num == position:
                await self._close_lost(stream, latest)
        except S2Error as exc:
            logger.warning("checking %s for a crashed generation failed: %r", stream, exc)
        return True

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
        :mod:`resumable_chat.fastapi_agui`).

        Args:
            stream_name: the chat's S2 stream.
            source: the model's chunks, or a factory called with the stop signal (called only
                after the claim succeeded).
            turn: the dialect's per-generation state (e.g. a TanStack turn that pins run ids).
            prelude: records stored before the answer, not sent live.
            announce: chunks stored and sent live before the source is opened.
            live: keep a live channel (``generation.live.frames()``) for the response.
            wait_until: as in :meth:`make_resumable`.

        Returns:
            the running :class:`~resumable_chat.generation.Generation` (its ``claim`` holds
            the fence's seq_num; SSE ids of its records are ``seq_num + 1``).

        Raises:
            StreamInUseError: a generation holds the stream (HTTP 409).
            S2Error: S2 failed during the claim.
            RuntimeError: the chat is closed.
        """
        started = await self._start(
            stream_name,
            source,
            wait_until=wait_until,
            prelude=prelude,
            turn=turn,
            live=live,
            announce=announce,
        )
        if isinstance(started, str):
            raise StreamInUseError(stream_name)
        return started

    async def make_resumable(
        self,
        stream_name: str,
        chunks: AsyncIterable[Chunk] | SourceFactory,
        *,
        wait_until: WaitUntil | None = None,
        message: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> Response:
        """Claim ``stream_name``, then stream ``chunks`` live and persist them.

        Args:
            stream_name: the chat's S2 stream (e.g. ``"chat-<id>"``).
            chunks: the model's chunks (dicts in the protocol's shape), or a factory called
                with the :class:`~resumable_chat.generation.StopSignal` that returns them.
                The first chunk is pulled while the claim is in flight (``overlap_claim``,
                the default) or after it succeeds; on a 409 the source is closed.
            wait_until: called with the persistence task (an awaitable) for serverless-style
                hosts; without it the chat owns the task and :meth:`aclose` drains it.
            message: the turn's message (AI SDK ``UIMessage``) stored before the answer so
                :meth:`load_messages` can rebuild history from the log alone.
            message_id: the answer's message id (the continued assistant message's id on a
                tool-result continuation); ``start.messageId`` is set to it.

        Returns:
            200 SSE: every chunk as ``id: <seq_num+1>`` + ``data: <json>`` as the model
            produces it (never waiting on S2), ending with ``data: [DONE]`` for the AI SDK;
            409 ``Stream already in use`` (text) when a generation holds the stream.
            A client that disconnects does not stop the generation or its persistence.

        Raises:
            S2Error: S2 failed during the claim (not a conflict).
            RuntimeError: the chat is closed.
        """
        started = await self._start(
            stream_name,
            chunks,
            wait_until=wait_until,
            prelude=self.dialect.message_records(message) if message is not None else None,
            turn=self.dialect.new_turn(message_id=message_id),
            live=True,
            prefetch=self.overlap_claim,
        )
        if isinstance(started, str):
            return PlainTextResponse(started, status_code=409)
        generation = started
        assert generation.live is not None
        return sse_response(
            generation.live.frames(),
            headers=self.dialect.response_headers,
            keepalive_s=self.keepalive_s,
        )

    async def make_session_response(
        self,
        stream_name: str,
        *,
        messages: object,
        source: Callable[[list[dict[str, Any]], StopSignal], AsyncIterable[Chunk]],
        wait_until: WaitUntil | None = None,
    ) -> Response:
        """Start a turn whose chunks go to the log only; readers follow it with :meth:`replay`.

        ``@s2-dev/resumable-stream/tanstack-ai`` ``makeSessionResponse`` (reference §5.3):
        ``messages`` are normalised (:func:`~resumable_chat.protocols.tanstack.normalize_messages`);
        when the last one is a user message it is stored first (TanStack: three text events),
        then the chunks of ``source(messages, signal)``. ``source`` is called only after the
        claim succeeds, never when the stop comes first, and not at all for an empty list.

        Returns:
            202 (``Cache-Control: no-store``, no body): without ``wait_until`` after the turn
            is persisted (reference behaviour), with it at once; 409 ``Stream already in use``
            while a generation runs (the running one stays stoppable).

        Raises:
            ValueError: the chat's mode is not ``"session"``.
            S2Error: S2 failed during the claim.
        """
        if self.mode != "session":
            raise ValueError('make_session_response requires mode="session"')
        normalized = normalize_messages(messages)

        async def session_source(signal: StopSignal) -> AsyncIterator[Chunk]:
            if not normalized:
                return
            async for chunk in source(normalized, signal):
                yield chunk

        last = normalized[-1] if normalized else None
        started = await self._start(
            stream_name,
            session_source,
            wait_until=wait_until,
            prelude=self.dialect.message_records(last) if last is not None else None,
            turn=self.dialect.new_turn(message_id=None),
            live=False,
        )
        if isinstance(started, str):
            return PlainTextResponse(started, status_code=409)
        if wait_until is None:
            await asyncio.shield(started.task)
        return Response(status_code=202, headers=_NO_STORE)

    async def replay(self, stream_name: str, from_seq_num: int | None = None) -> Response:
        """Replay the running answer from its first chunk, then follow it live.

        Args:
            stream_name: the chat's S2 stream.
            from_seq_num: a cursor (an SSE ``id`` a client saw): only records at or after
                it are sent. ``None``: from the answer's first chunk (AI SDK
                ``DefaultChatTransport`` reconnect replays the whole answer).

        Returns:
            204 (``Cache-Control: no-store``) when no generation runs; 416 (text) when
            ``from_seq_num`` is past the stream's tail (unless this process's live response
            may have sent it: live frames go out before they are stored); otherwise 200 SSE with
            the stored bodies verbatim as ``id: <seq_num+1>`` + ``data:`` frames, ending after
            the generation's terminal fence with ``data: [DONE]`` (AI SDK).

        Raises:
            ValueError: ``from_seq_num`` is negative.
            S2Error: S2 failed while looking for the generation.
        """
        if from_seq_num is not None and from_seq_num < 0:
            raise ValueError("from_seq_num must be ≥ 0")
        if self.mode == "session" and self.dialect.session_replay == "snapshot":
            return await self._session_replay(stream_name, from_seq_num)
        latest = await find_latest_generation(self.basin, stream_name)
        if self._is_lost(latest):
            await self._close_lost(stream_name, latest)
            return Response(status_code=204, headers=_NO_STORE)
        if not latest.active or latest.fence is None:
            return Response(status_code=204, headers=_NO_STORE)
        start = latest.fence.seq_num + 1
        if from_seq_num is not None:
            if from_seq_num > latest.tail.seq_num and not self._sent_live(
                stream_name, from_seq_num
            ):
                return _cursor_past_tail(from_seq_num, latest.tail.seq_num)
            start = max(start, from_seq_num)
        return sse_response(
            self._replay_frames(stream_name, start),
            headers=self.dialect.response_headers,
            keepalive_s=self.keepalive_s,
        )

    def _sent_live(self, stream: str, cursor: int) -> bool:
        """Whether ``cursor`` is one this process's live response may have sent already.

        Live frames go out before their records are stored, so a client that resumes at
        once can hold a cursor past the stored tail; it is valid up to the running
        generation's next seq_num.
        """
        entry = self._generations.get(stream)
        return isinstance(entry, Generation) and cursor <= entry.writer.next_seq_num

    async def _session_replay(self, stream: str, from_seq_num: int | None) -> Response:
        """TanStack session replay (reference §5.5): snapshot first load, or raw from a cursor."""
        if from_seq_num is not None:
            try:
                tail = (await self.basin.check_tail(stream)).seq_num
            except StreamNotFoundError:
                tail = 0
            if from_seq_num > tail:
                return _cursor_past_tail(from_seq_num, tail)
            frames = self._replay_frames(stream, from_seq_num, until_fence=False)
        else:
            head, next_seq = await self._snapshot_head(stream)
            frames = self._head_then_follow(stream, head, next_seq)
        return sse_response(
            frames, headers=self.dialect.response_headers, keepalive_s=self.keepalive_s
        )

    async def _snapshot_head(self, stream: str) -> tuple[bytes, int]:
        """The first frames of a first-load session replay and the seq_num to follow from.

        Completed history folded into one snapshot, then the running run raw from its
        ``RUN_STARTED``. Read before the response starts, so an S2 failure is an error the
        route can answer (503), not a 200 that breaks off.
        """
        records = await read_range(self.basin, stream, 0)
        next_seq = records[-1].seq_num + 1 if records else 0
        active_from = len(records)
        for index in range(len(records) - 1, -1, -1):
            record = records[index]
            if is_fence(record) and not is_stop_fence(record):
                if not is_terminal_fence(record):
                    active_from = index + 1
                break
        raw_from = len(records)  # first record of the running run, from its RUN_STARTED
        for index in range(active_from, len(records)):
            record = records[index]
            if not record.headers and _chunk_type(record.body) == "RUN_STARTED":
                raw_from = index
                break
        history: list[Chunk] = []
        for record in records[:raw_from]:
            if record.headers or not record.body:
                continue
            chunk = decode_chunk(record.body)
            if chunk is not None:
                history.append(chunk)
        head: list[bytes] = []
        messages = self.dialect.fold(history)
        if messages:
            cursor = records[raw_from].seq_num if raw_from < len(records) else next_seq
            snapshot = encode_chunk(self.dialect.snapshot_frame(messages))
            head.append(b"id: %d\ndata: %b\n\n" % (cursor, snapshot))
        head.extend(
            b"id: %d\ndata: %b\n\n" % (r.seq_num + 1, r.body)
            for r in records[raw_from:]
            if not r.headers and r.body
        )
        return b"".join(head), next_seq

    async def _head_then_follow(self, stream: str, head: bytes, start: int) -> AsyncIterator[bytes]:
        """``head``, then every record from ``start`` on, live."""
        if head:
            yield head
        async for frames in self._replay_frames(stream, start, until_fence=False):
            yield frames

    async def _replay_frames(
        self, stream: str, start: int, *, until_fence: bool = True
    ) -> AsyncIterator[bytes]:
        """Stored data records from ``start`` as SSE frames, live; stop at a fence if asked.

        A lease of silence while a generation is open triggers :meth:`still_running`, so a
        generation whose writer crashed ends with its error terminal instead of hanging.
        """
        is_history = self.dialect.is_history_record
        follow = follow_reporting_silence(
            self.basin, stream, seq_num=start, silence_s=self.lease_ms / 1000
        )
        ended = False
        generation_open: bool | None = True if until_fence else None  # None: not known yet
        position = start
        async with contextlib.aclosing(follow) as batches:
            async for batch in batches:
                if batch is None:
                    if generation_open is not False:
                        generation_open = await self.still_running(stream, position)
                    continue
                frames: list[bytes] = []
                position = batch.records[-1].seq_num + 1
                for record in batch.records:
                    if record.seq_num < start:
                        continue  # clamped to a tail below a cursor the live client saw
                    if record.headers:
                        if is_fence(record) and not is_stop_fence(record):
                            generation_open = not is_terminal_fence(record)
                            if until_fence:
                                ended = True
                                break
                        continue
                    body = record.body
                    if not body or is_history(body):
                        continue
                    frames.append(b"id: %d\ndata: %b\n\n" % (record.seq_num + 1, body))
                if frames:
                    yield b"".join(frames)
                if ended:
                    break
        if ended and self.dialect.done_frame:
            yield self.dialect.done_frame

    async def stop_session(self, stream_name: str) -> Response:
        """Stop the generation running on ``stream_name``, in this process or another.

        Here: the source is cancelled at once. Elsewhere: a ``stop-`` fence conditioned on
        the running generation's token goes to the stream; the generating instance's writer
        sees it at its next append (about one S2 round trip plus the next model chunk and the
        writer's linger), adopts it and stops its source. Either way the source's iterator is
        closed (so is the model request), the answer ends with the protocol's stop terminal
        (AI SDK ``finish``; TanStack ``RUN_FINISHED`` with the run's id) and an ``end-`` fence.

        Returns 202 when a generation was running, 204 otherwise (``Cache-Control:
        no-store``); always 204 when ``enable_stop`` is off. Raises ``S2Error`` when S2 fails.
        """
        if not self.enable_stop:
            return Response(status_code=204, headers=_NO_STORE)
        generation = self._generations.get(stream_name)
        if generation is not None:
            stopped = generation.stop()
            return Response(status_code=202 if stopped else 204, headers=_NO_STORE)
        latest = await find_latest_generation(self.basin, stream_name)
        if self._is_lost(latest):
            await self._close_lost(stream_name, latest)
            return Response(status_code=204, headers=_NO_STORE)
        if not latest.active or latest.fence is None:
            return Response(status_code=204, headers=_NO_STORE)
        request = AppendInput(
            [fence_record(new_token("stop-", 8))], fencing_token=latest.fence.body.decode()
        )
        try:
            await self.basin.append(stream_name, request)
        except FencingTokenMismatchError:
            return Response(status_code=204, headers=_NO_STORE)  # it ended, or a stop is pending
        return Response(status_code=202, headers=_NO_STORE)

    async def load_messages(self, stream_name: str) -> list[dict[str, Any]]:
        """Fold every stored chunk of ``stream_name`` into the client's messages.

        For the AI SDK: ``UIMessage`` dicts (user messages included), as the client's
        ``processUIMessageStream`` would build them. A missing stream gives ``[]``. Reads the
        whole log (O(history)).
        """
        records = await read_range(self.basin, stream_name, 0)
        chunks: list[Chunk] = []
        for record in records:
            if record.headers or not record.body:
                continue
            chunk = decode_chunk(record.body)
            if chunk is not None:
                chunks.append(chunk)
        return self.dialect.fold(chunks)

    async def aclose(self, *, drain_timeout_s: float = 10.0) -> None:
        """Wait up to ``drain_timeout_s`` (s) for running generations, stop the rest, close.

        Stopped generations still write their stop terminal and end fence. The basin is
        closed when the chat created it. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        tasks = set(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=drain_timeout_s)
            for generation in list(self._generations.values()):
                generation.stop()
            if pending:
                _, pending = await asyncio.wait(pending, timeout=2.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if self._owns_basin:
            await self.basin.aclose()


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
    stream_prefix: str = "",
) -> ResumableChat:
    """Build a :class:`ResumableChat` (DESIGN.md §2).

    Args:
        protocol: ``"ai-sdk"`` (Vercel AI SDK UI message stream) or ``"tanstack"``.
        mode: ``"session"`` (one stream per chat, many turns), ``"shared"`` (like session,
            and a silent generation is taken over after ``lease_ms``) or ``"single-use"`` (one
            stream per answer, trimmed when done); reference §3.2.
        enable_stop: track running generations so :meth:`ResumableChat.stop_session` works.
        basin: where logs live. ``None``: S2 from ``S2_ACCESS_TOKEN`` + ``S2_BASIN``, else
            the embedded in-process log (one log line says which).
        batch_size: records per append, 1 to 1000.
        linger_ms: ms the first record of an empty batch may wait for more (0: none).
        lease_ms: ms without any record (data or heartbeat) after which a running
            generation counts as crashed (all modes): the next claimer, a follower or a stop
            closes it with the protocol's error terminal and an ``error-`` fence, so the chat
            takes new turns and readers stop waiting (DESIGN.md §6.2). Clocks of the app
            hosts and S2 should agree to well within ``lease_ms - heartbeat_ms``.
        heartbeat_ms: ms of writer idleness after which it appends an empty record, keeping
            the lease fresh while the model is silent; it also bounds how long a stop from
            another instance waits while the model is silent. Default: ``min(1000,
            lease_ms / 4)``; must be at most ``lease_ms / 2``.
        keepalive_s: seconds between SSE keep-alive comments on idle responses (0: off).
        on_error: maps a source exception to the error chunk's text; by default the text is
            ``"An error occurred."`` so provider details do not leak.
        overlap_claim: :meth:`~ResumableChat.make_resumable` starts pulling the source's
            first chunk while the claim's S2 round trips are in flight, so they hide in the
            model's time to first token. A claim lost to another instance (409) then closes
            the just-opened model request unread; a conflict known in this process never
            calls the source. ``False``: the source is called only after the claim.
        stream_prefix: prepended to every S2 stream name the chat uses (``""`` keeps the
            names as they are), so two apps can share one basin: with ``"app1/"`` the chat
            ``chat-42`` lives on S2 stream ``app1/chat-42``. Up to 200 of
            ``A-Z a-z 0-9 _ - . : /``. The chat's ``basin`` is then a
            :class:`~resumable_chat.s2.prefixed.PrefixedBasin` over the given one.

    Raises:
        ValueError: an unknown protocol or mode, or a bad batch size, linger, lease,
            heartbeat or stream prefix.
        S2ConfigError: the S2 environment variables are half set.
    """
    dialect = _dialect_for(protocol)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not 1 <= batch_size <= 1000:
        raise ValueError(f"batch_size must be 1 to 1000, got {batch_size}")
    if not linger_ms >= 0:
        raise ValueError(f"linger_ms must be ≥ 0, got {linger_ms}")
    if not lease_ms > 0:
        raise ValueError(f"lease_ms must be > 0, got {lease_ms}")
    if heartbeat_ms is None:
        heartbeat_ms = min(1000, lease_ms / 4)
    if not 0 < heartbeat_ms <= lease_ms / 2:
        raise ValueError(f"heartbeat_ms must be > 0 and ≤ lease_ms / 2, got {heartbeat_ms}")
    check_stream_prefix(stream_prefix)
    owns = basin is None
    if basin is None:
        from .s2.config import basin_from_env

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
    )
