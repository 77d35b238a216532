"""One generation: the tee of a model stream to the live client and to the log.

A single task pumps the source. For each chunk it encodes JSON once, queues the record on
the :class:`~resumable_chat.writer.LogWriter` and pushes the same bytes, framed, to the
:class:`LiveChannel` of the POST response. Neither branch waits on the other: the client
never waits on S2, and a client that disconnects stops only its channel, never the
generation or its persistence.

Stop: :meth:`Generation.stop` sets the stop signal and cancels the pump where it waits on the
source, which closes the source's iterator (and with it the HTTP request to the model
provider); the answer then ends with the dialect's stop terminal and an ``end-`` fence.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

from .claims import Claim, new_token
from .failure_terminal import append_failure_terminal
from .protocols.base import Chunk, Dialect, TurnState
from .s2.errors import FencingTokenMismatchError, S2Error
from .s2.records import (
    MAX_BATCH_METERED_BYTES,
    AppendRecord,
    fence_record,
    metered_bytes,
    trim_record,
)
from .sse import event_frame
from .writer import LogWriter

__all__ = [
    "Generation",
    "LiveChannel",
    "PrefetchedSource",
    "SourceError",
    "StopSignal",
    "encode_chunk",
]

logger = logging.getLogger("resumable_chat.generation")

#: ``Number.MAX_SAFE_INTEGER``: the single-use end-of-generation trim target (reference §1.1).
MAX_SAFE_INTEGER = 9007199254740991

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_chunk(chunk: Chunk) -> bytes:
    """Compact UTF-8 JSON of one chunk, as stored and as sent (``JSON.stringify`` style)."""
    return _encoder.encode(chunk).encode()


def decode_chunk(body: bytes) -> Chunk | None:
    """The chunk a stored record's ``body`` holds, or ``None`` when it is not one (not JSON,
    or not an object with a string ``type``: a heartbeat, a foreign record)."""
    try:
        chunk = json.loads(body)
    except ValueError:
        return None
    return chunk if isinstance(chunk, dict) and isinstance(chunk.get("type"), str) else None


class StopSignal(asyncio.Event):
    """Set when the generation is asked to stop; sources may check it or ``await wait()``."""


class SourceError(TypeError):
    """The source yielded something that is not a chunk (a ``dict`` with a string ``type``),
    or a chunk the client's schema rejects (:meth:`Dialect.chunk_problem`)."""


class LiveChannel:
    """The live branch of the tee: frames for one response, buffered until it reads them.

    One reader. ``push`` never blocks; after the reader goes away, frames are dropped.
    """

    __slots__ = ("_closed", "_detached", "_frames", "_ready")

    def __init__(self) -> None:
        self._frames: list[bytes] = []
        self._ready = asyncio.Event()
        self._closed = False
        self._detached = False

    def push(self, frame: bytes) -> None:
        """Queue ``frame`` (SSE bytes) for the reader."""
        if self._detached:
            return
        self._frames.append(frame)
        if not self._ready.is_set():
            self._ready.set()

    def close(self) -> None:
        """No more frames; the reader ends after the queued ones."""
        self._closed = True
        self._ready.set()

    async def frames(self) -> AsyncIterator[bytes]:
        """Yield everything queued since the last read, joined, until closed."""
        try:
            while True:
                if self._frames:
                    out = b"".join(self._frames)
                    self._frames.clear()
                    yield out
                    continue
                if self._closed:
                    return
                self._ready.clear()
                await self._ready.wait()
        finally:
            self._detached = True
            self._frames.clear()


SourceFactory = Callable[[StopSignal], AsyncIterable[Chunk]]


class PrefetchedSource:
    """A source whose first chunk is fetched at once, in its own task.

    The chat core builds one before the claim of a live answer so the model's time to first
    token overlaps the claim's S2 round trips; the :class:`Generation` then iterates it like
    any source. :meth:`aclose` cancels the fetch and closes the source (the claim was lost,
    or the generation stopped before it started).

    Args:
        source: the model's chunks, or a factory called here with ``signal``.
        signal: the generation's stop signal.
    """

    __slots__ = ("_first", "_iterator")

    def __init__(self, source: AsyncIterable[Chunk] | SourceFactory, signal: StopSignal) -> None:
        if callable(source) and not hasattr(source, "__aiter__"):
            source = source(signal)
        self._iterator: AsyncIterator[Chunk] = aiter(source)
        self._first: asyncio.Task[Chunk] | None = asyncio.get_running_loop().create_task(
            self._fetch_first(), name="resumable-chat first chunk"
        )

    async def _fetch_first(self) -> Chunk:
        return await anext(self._iterator)

    def __aiter__(self) -> PrefetchedSource:
        return self

    async def __anext__(self) -> Chunk:
        first = self._first
        if first is None:
            return await anext(self._iterator)
        self._first = None
        return await first  # StopAsyncIteration when the source was empty

    async def aclose(self) -> None:
        """Cancel the first-chunk fetch if it is still running and close the source."""
        first, self._first = self._first, None
        if first is not None:
            first.cancel()
            await asyncio.wait([first])
            if not first.cancelled():
                first.exception()  # retrieved: the source is being discarded
        close = getattr(self._iterator, "aclose", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result


class Generation:
    """A running generation on one stream (created by the chat core after a won claim).

    Args:
        stream: the S2 stream name.
        claim: the won claim (token and first seq_num).
        source: the model's chunks, or a factory called with the :class:`StopSignal`.
        dialect / turn: the protocol's conventions and this answer's state.
        writer: the fenced writer for this generation.
        single_use: append ``trim(MAX_SAFE_INTEGER)`` before the terminal fence.
        error_text: maps a source exception to the text of the error chunk.
        prelude: records stored before the answer (the turn's message); skipped when the
            generation is stopped before its pump starts.
        announce: chunks stored *and* sent live right after the prelude, before the source is
            opened (e.g. AG-UI ``CUSTOM run.accepted``), so a reader sees the run at once
            even while the model is slow to answer; skipped like the prelude.
        live: keep a :class:`LiveChannel` for a live response (``False`` for 202 replies).
        signal: the stop signal (a new one by default); pass the one a
            :class:`PrefetchedSource` was built with.
    """

    def __init__(
        self,
        *,
        stream: str,
        claim: Claim,
        source: AsyncIterable[Chunk] | SourceFactory,
        dialect: Dialect,
        turn: TurnState,
        writer: LogWriter,
        single_use: bool,
        error_text: Callable[[BaseException], str],
        prelude: list[Chunk] | None = None,
        announce: list[Chunk] | None = None,
        live: bool = True,
        signal: StopSignal | None = None,
    ) -> None:
        self.stream = stream
        self.claim = claim
        self.signal = signal if signal is not None else StopSignal()
        self._source = source
        self.dialect = dialect
        self._storage_form = dialect.storage_form
        self.turn = turn
        self.writer = writer
        writer.on_stop_requested = self.stop
        self.single_use = single_use
        self.error_text = error_text
        self.live = LiveChannel() if live else None
        self.outcome: str | None = None
        self._stopping = False
        self._running = False
        self._prelude = prelude or []
        self._announce = announce or []
        self.task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self._run(), name=f"resumable-chat generation {stream}"
        )

    def stop(self) -> bool:
        """Ask the generation to stop.

        Returns True when the source was still running (the answer will end with the stop
        terminal), False when it had already ended. A stop before the pump starts means the
        source is never called.
        """
        if self.outcome is not None or self.task.done():
            return False
        if self._stopping:
            return True
        self._stopping = True
        self.signal.set()
        if self._running:
            self.task.cancel("stop")
        return True

    def _emit(self, chunk: Chunk) -> None:
        stored = self._storage_form(chunk)
        body = encode_chunk(stored)
        record = AppendRecord(body)
        live = self.live
        if live is None:
            self.writer.submit(record)
            return
        if metered_bytes(record) > MAX_BATCH_METERED_BYTES:
            self.writer.submit(record)  # raises the writer's ValueError; nothing was sent
        # The live frame is queued before the record, so the response's task wakes before
        # the writer's: the client never waits behind the encoding of an S2 append.
        live_body = body if stored is chunk else encode_chunk(chunk)
        live.push(event_frame(live_body, self.writer.next_seq_num + 1))
        self.writer.submit(record)

    def _open_source(self) -> AsyncIterator[Chunk]:
        source = self._source
        if callable(source) and not hasattr(source, "__aiter__"):
            source = source(self.signal)
        return aiter(source)

    async def _pump(self) -> None:
        turn = self.turn
        writer = self.writer
        emit = self._emit
        chunk_problem = self.dialect.chunk_problem
        iterator: AsyncIterator[Any] | None = None
        first = True
        for record in self._prelude:
            self.writer.submit(AppendRecord(encode_chunk(record)))
        for chunk in self._announce:
            turn.observe(chunk)
            emit(chunk)
        try:
            iterator = self._open_source()
            async for chunk in iterator:
                if not isinstance(chunk, dict) or not isinstance(chunk.get("type"), str):
                    raise SourceError(
                        "a source must yield dicts with a string 'type', "
                        f"got {type(chunk).__name__}"
                    )
                problem = chunk_problem(chunk)
                if problem is not None:
                    raise SourceError(f"the source yielded a chunk the client rejects: {problem}")
                if first:
                    first = False
                    for opening in turn.opening(chunk):
                        turn.observe(opening)
                        emit(opening)
                turn.observe(chunk)
                emit(chunk)
                if writer.pending_bytes > writer.max_pending_bytes:
                    await writer.wait_writable()
        finally:
            if iterator is not None:
                close = getattr(iterator, "aclose", None)
                if close is not None:
                    result = close()
                    if inspect.isawaitable(result):
                        try:
                            await result
                        except Exception:
                            logger.debug(
                                "closing the source of %s failed", self.stream, exc_info=True
                            )
        if first:
            for opening in turn.opening(None):
                turn.observe(opening)
                emit(opening)

    async def _run(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        failure: BaseException | None = None
        self._running = True
        self.writer.start()  # heartbeats while the model is silent, from the claim on
        try:
            if self._stopping:
                if isinstance(self._source, PrefetchedSource):
                    await self._source.aclose()
                raise asyncio.CancelledError("stop")
            await self._pump()
            self.outcome = "end"
        except asyncio.CancelledError:
            if not self._stopping:
                await self._abandon()
                raise
            while task.cancelling():
                task.uncancel()
            self.outcome = "stopped"
            for chunk in self.turn.stop_chunks():
                self._emit(chunk)
        except Exception as exc:
            failure = exc
            self.outcome = "error"
            logger.warning("source of %s failed: %r", self.stream, exc)
            for chunk in self.turn.error_chunks(self.error_text(exc)):
                self._emit(chunk)
        await self._finish(failure)

    async def _finish(self, failure: BaseException | None) -> None:
        final: list[AppendRecord] = []
        if self.single_use:
            final.append(trim_record(MAX_SAFE_INTEGER))
        prefix = "error-" if failure is not None else "end-"
        final.append(fence_record(new_token(prefix, 4)))
        if self.live is not None:
            if self.dialect.done_frame:
                self.live.push(self.dialect.done_frame)
            self.live.close()
        try:
            await self.writer.close(final)
        except FencingTokenMismatchError:
            logger.info(
                "generation on %s was fenced by another writer before it ended", self.stream
            )
        except S2Error as exc:
            await self._end_after_write_failure(exc)

    async def _end_after_write_failure(self, exc: S2Error) -> None:
        """S2 failed past the writer's retry budget; the live answer already completed.

        The log holds the records acknowledged before the failure: end it with the
        dialect's error chunk(s) and an ``error-`` fence once S2 answers again
        (:func:`~resumable_chat.failure_terminal.append_failure_terminal`), so replays end
        with an error, never as a finished answer. Re-raises ``exc`` (to ``wait_until`` or
        the chat's error log) when even that fails.
        """
        writer = self.writer
        lost = writer.next_seq_num - writer.durable_seq_num
        records = [
            AppendRecord(encode_chunk(self._storage_form(chunk)))
            for chunk in self.turn.error_chunks(self.error_text(exc))
        ]
        records.append(fence_record(new_token("error-", 4)))
        if not await append_failure_terminal(
            writer.basin, self.stream, writer.fencing_token, records
        ):
            raise exc
        logger.warning(
            "persisting %s failed (%s); %d records were not stored and the log ends with an "
            "error terminal",
            self.stream,
            exc,
            lost,
        )

    async def _abandon(self) -> None:
        """Shutdown without a stop: end the live response, drop unpersisted records."""
        if self.live is not None:
            self.live.close()
        await self.writer.aclose()
