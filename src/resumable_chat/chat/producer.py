"""The chat core's side of a generation: the tee of a model stream to the live client and the log.

:class:`ChatProducer` is the :class:`~resumable_chat.log.generation.Producer` the chat core runs
on the log engine. For each chunk it encodes JSON once, pushes the framed bytes to the
:class:`LiveChannel` of the live response and appends the record. Neither branch waits on the
other: the client never waits on S2, and a client that disconnects stops only its channel,
never the generation or its persistence. The protocol's conventions (opening chunk, stop and
error terminals, storage form, chunk validation) come from the dialect's
:class:`~resumable_chat.chat.dialect.TurnState`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, cast

from resumable_chat.chat.dialect import Chunk, Dialect, TurnState
from resumable_chat.log import generation as log_generation
from resumable_chat.log.fragments import MAX_FRAGMENTS, fragment_records
from resumable_chat.log.generation import (
    Generation,
    Outcome,
    Output,
    Producer,
    StopSignal,
    close_source,
)
from resumable_chat.log.records import MAX_DATA_BODY_BYTES
from resumable_chat.loop_totals import LoopCounter, loop_counter
from resumable_chat.s2.records import MAX_BATCH_METERED_BYTES, AppendRecord, metered_bytes
from resumable_chat.scalar_values import scalar_value_json
from resumable_chat.sse import COALESCE_WINDOW_S, event_frame

__all__ = [
    "ChatProducer",
    "ChunkTooLargeError",
    "LiveChannel",
    "PrefetchedSource",
    "SourceError",
    "SourceFactory",
    "StopSignal",
    "decode_chunk",
    "encode_chunk",
    "encode_live",
    "live_backlog_bytes",
    "live_channel",
]

logger = logging.getLogger("resumable_chat.generation")

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


#: What ``JSONEncoder.iterencode`` passes CPython's C encoder factory after the ``markers``
#: dict, for ``_encoder``'s settings: default, string encoder, indent, key and item
#: separators, sort_keys, skipkeys, allow_nan.
_C_ENCODER_ARGS = (
    _encoder.default,
    json.encoder.encode_basestring,
    None,
    ":",
    ",",
    False,
    False,
    False,
)


def _c_make_encoder_or_none() -> Callable[..., Any] | None:
    """CPython's C encoder factory (``json.encoder.c_make_encoder``) when it is there and
    takes :data:`_C_ENCODER_ARGS` as ``JSONEncoder.iterencode`` gives them in this Python
    (checked on a sample), else ``None``."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    sample = {"type": "text-delta", "delta": "é\n", "n": [1, 2.5, None, True]}
    try:
        made = "".join(make({}, *_C_ENCODER_ARGS)(sample, 0))
    except Exception:
        return None
    return make if made == _encoder.encode(sample) else None


_c_make_encoder = _c_make_encoder_or_none()

#: The C encoder without a circular-reference check (``markers`` None, as
#: ``json.dumps(check_circular=False)`` makes it): it keeps no state between calls, so one
#: serves every chunk; ``None`` where :data:`_c_make_encoder` is.
_c_encoder = None if _c_make_encoder is None else _c_make_encoder(None, *_C_ENCODER_ARGS)


def encode_chunk(chunk: Chunk) -> bytes:
    """Compact UTF-8 JSON of one chunk, as stored and as sent (``JSON.stringify`` style).

    Raises ``TypeError`` for a value JSON cannot hold, ``ValueError`` for NaN or infinity and
    for a circular reference, ``RecursionError`` for nesting deeper than the interpreter's
    recursion limit, ``UnicodeEncodeError`` for a lone surrogate (as
    ``json.JSONEncoder(ensure_ascii=False, allow_nan=False)`` would). On CPython the C encoder
    is called directly, as ``JSONEncoder.iterencode`` does, without its Python layers (about
    a third of the cost of a small chunk), and without the circular-reference check, which
    costs a fresh ``markers`` dict and a lookup per container: a circular chunk recurses to
    the recursion limit instead, and only then is the chunk encoded again with the check, to
    tell a circular reference (``ValueError``) from deep nesting (``RecursionError``).
    """
    encoder = _c_encoder
    if encoder is None:  # pragma: no cover - PyPy and other builds without _json
        return _encoder.encode(chunk).encode()
    try:
        return "".join(encoder(chunk, 0)).encode()
    except RecursionError:
        assert _c_make_encoder is not None  # set with _c_encoder
        return "".join(_c_make_encoder({}, *_C_ENCODER_ARGS)(chunk, 0)).encode()


def encode_live(chunk: Chunk) -> bytes:
    """:func:`encode_chunk` for a chunk sent live only (a live-only terminal, or the live
    form of a chunk whose stored form differs): a string that holds a surrogate is sent as a
    scalar value string (:func:`~resumable_chat.scalar_values.scalar_value_json`: a pair
    joined, any other surrogate U+FFFD), as :class:`ChatProducer` stores such a chunk,
    instead of raising ``UnicodeEncodeError``. Raises the other errors of
    :func:`encode_chunk`."""
    try:
        return encode_chunk(chunk)
    except UnicodeEncodeError:
        return encode_chunk(scalar_value_json(chunk))


def decode_chunk(body: bytes) -> Chunk | None:
    """The chunk a stored record's ``body`` holds, or ``None`` when it is not one (not JSON,
    or not an object with a string ``type``: a heartbeat, a foreign record)."""
    try:
        chunk = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return chunk if isinstance(chunk, dict) and isinstance(chunk.get("type"), str) else None


class SourceError(TypeError):
    """The source yielded something that is not a chunk (a ``dict`` with a string ``type``),
    or a chunk the client's schema rejects (:meth:`Dialect.chunk_problem`)."""


class ChunkTooLargeError(SourceError, ValueError):
    """The source yielded a chunk too large to store: over the 64 records
    (:data:`~resumable_chat.log.fragments.MAX_FRAGMENTS`, about 64 MiB as stored) that one
    chunk may span, when the dialect cannot cut it into smaller chunks
    (:meth:`Dialect.split_chunk`: deltas are cut, a tool output or a data part is not), or a
    piece the dialect cut still over one record (1 MiB metered, S2's per-record limit:
    https://s2.dev/docs/platform/limits). The answer ends with the protocol's error chunk;
    nothing of that chunk is sent or stored.

    Attributes:
        chunk_type: the chunk's ``type``.
        size: its stored size in bytes (compact UTF-8 JSON).
    """

    def __init__(self, chunk_type: str, size: int) -> None:
        super().__init__(
            f"the source yielded a {chunk_type!r} chunk of {size} bytes as stored; a chunk "
            f"that cannot be cut into smaller chunks is stored in at most {MAX_FRAGMENTS} "
            f"records of {MAX_DATA_BODY_BYTES} bytes: keep such values smaller (store large "
            "data elsewhere and send a reference)"
        )
        self.chunk_type = chunk_type
        self.size = size


SourceFactory = Callable[[StopSignal], AsyncIterable[Chunk]]

#: Metered bytes kept free for the claim's fence when the prelude joins its append.
_FENCE_ROOM = 1024


#: Bytes of frames a live response may fall behind its answer by (made but not yet handed to
#: the server's ``send``) before it stops taking frames from the producer and reads the rest
#: of the answer from the log instead, from the last frame it was handed, as a follower does
#: (:meth:`LiveChannel.behind_from`): a client that stops reading costs the server this much
#: memory, not the whole answer, and loses nothing.
LIVE_BACKLOG_BYTES = 1024 * 1024

#: Bytes of frames all the live responses served by one event loop (one server process) may
#: hold together for clients that fell behind, however many there are: past it, the response
#: whose frame goes over stops taking frames and reads the rest of its answer from the log,
#: as past :data:`LIVE_BACKLOG_BYTES`. A thousand stalled tabs then cost 64 MiB, not 1 GiB.
LIVE_BACKLOG_TOTAL_BYTES = 64 * 1024 * 1024

#: The :func:`~resumable_chat.loop_totals.loop_counter` of the bytes counted against
#: :data:`LIVE_BACKLOG_TOTAL_BYTES`.
_HELD_COUNTER = "live response frames held for clients behind (bytes)"


def live_backlog_bytes() -> int:
    """Bytes of frames the live responses of the running event loop hold for clients that
    fell behind (counted against :data:`LIVE_BACKLOG_TOTAL_BYTES`): a gauge for metrics.

    Raises ``RuntimeError`` outside an event loop."""
    return loop_counter(_HELD_COUNTER).value


class LiveChannel:
    """The live branch of the tee: frames for one response, buffered until it reads them.

    One reader. ``push`` never blocks; after the reader goes away, frames are dropped.
    ``complete``: the answer ended (stop, error and takeover included) rather than being
    abandoned at shutdown, so the response ends with the dialect's done frame.

    With :attr:`send_now` set (the response's :meth:`~resumable_chat.sse.SseResponse.send_now`),
    a frame pushed while the reader waits and nothing is queued is offered to it first, so
    the pushing task sends it and the reader is not woken; frames that come back to back
    (within :data:`~resumable_chat.sse.COALESCE_WINDOW_S` of the last send) are queued
    instead, for the reader to send several at once.

    Bounded: when more than ``max_backlog_bytes`` of frames wait while the reader is still
    sending the ones it took (a client that stopped reading), or the frame that comes takes
    what all the channels of the event loop hold so past :data:`LIVE_BACKLOG_TOTAL_BYTES`,
    they are dropped and so is every later frame;
    :meth:`frames` then ends and :attr:`behind_from` says where the reader's frames stopped,
    for it to read the rest from the log. Not while the last frame handed over has no SSE
    id (sent before the claim was decided): there is no position to read from then.

    Args:
        max_backlog_bytes: bytes, ≥ 1; ``None``: :data:`LIVE_BACKLOG_BYTES`.

    Raises:
        ValueError: ``max_backlog_bytes`` < 1.
    """

    __slots__ = (
        "_backlog",
        "_behind",
        "_closed",
        "_detached",
        "_event_loop",
        "_frames",
        "_handed",
        "_held",
        "_in_send",
        "_last_send",
        "_max_backlog",
        "_queued_at",
        "_waiter",
        "complete",
        "send_now",
    )

    def __init__(self, max_backlog_bytes: int | None = None) -> None:
        if max_backlog_bytes is None:
            max_backlog_bytes = LIVE_BACKLOG_BYTES  # read now: a test may set it
        if max_backlog_bytes < 1:
            raise ValueError(f"max_backlog_bytes must be ≥ 1, got {max_backlog_bytes}")
        self._frames: list[bytes] = []
        #: the reader's wait for a frame, while it waits
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._detached = False
        self.complete = False
        #: offered each frame pushed while the reader waits: True when it took the frame
        self.send_now: Callable[[bytes], bool] | None = None
        self._last_send = -math.inf  # loop time of the last send (the reader's or send_now's)
        self._event_loop: asyncio.AbstractEventLoop | None = None  # the reader's
        self._max_backlog = max_backlog_bytes
        self._backlog = 0  # bytes queued since the reader went into its send
        self._held: LoopCounter | None = None  # the reader's loop's total, counting _backlog
        # SSE id of the last frame queued / handed to the reader (0: none yet; -1: a frame
        # without one)
        self._queued_at = 0
        self._handed = 0
        self._behind = False
        self._in_send = False  # the reader has handed frames to the server and not come back

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def push(self, frame: bytes, cursor: int = -1, *, direct: bool = True) -> None:
        """Queue ``frame`` (SSE bytes) for the reader, or send it now through
        :attr:`send_now` (see the class). ``cursor``: the frame's SSE id (``-1`` for a frame
        without one). ``direct=False`` always queues it: for a caller that is not a task (a
        loop callback), where the server's ``send`` must not run."""
        if self._detached or self._closed or self._behind:
            return
        frames = self._frames
        if self._waiter is not None:
            send_now = self.send_now
            if send_now is not None and direct and not frames:
                loop = self._event_loop
                assert loop is not None  # set by the waiting reader
                now = loop.time()
                if now - self._last_send >= COALESCE_WINDOW_S and send_now(frame):
                    self._last_send = now
                    self._handed = cursor
                    return
            frames.append(frame)
            self._queued_at = cursor
            self._wake()
            return
        frames.append(frame)
        self._queued_at = cursor
        if self._in_send:  # the reader is away with the frames it took: count what waits
            size = len(frame)
            self._backlog += size
            held = self._held
            assert held is not None  # set by the reader, before its first send
            held.value += size
            if (
                self._backlog > self._max_backlog or held.value > LIVE_BACKLOG_TOTAL_BYTES
            ) and self._handed >= 0:
                self._behind = True  # the reader reads the log from where its frames stopped
                frames.clear()
                self._release()
                self._wake()

    def _release(self) -> None:
        """The frames counted in ``_backlog`` are no longer held here: off the total."""
        if self._backlog:
            held = self._held
            assert held is not None  # a backlog is only counted with it
            held.value -= self._backlog
            self._backlog = 0

    @property
    def behind_from(self) -> int | None:
        """``None`` while the reader gets every frame; once it fell too far behind (see the
        class), the SSE id of the last frame it was handed (``0``: none yet), from which
        the answer must be read on from the log."""
        return self._handed if self._behind else None

    def close(self, *, complete: bool = False) -> None:
        """No more frames; the reader ends after the queued ones (``complete``: see the
        class)."""
        self._closed = True
        self.complete = complete
        self._wake()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    async def frames(self) -> AsyncIterator[bytes]:
        """Yield everything queued since the last read, joined, until closed.

        On a busy answer (frames again within :data:`~resumable_chat.sse.COALESCE_WINDOW_S`
        of the last read) it waits until that long after the last read, so a model that
        yields a chunk per turn has its chunks sent many to one send and none waits much
        longer than the window (a send for every chunk or two was most of the CPU such an
        answer cost). Before the first frame it lets the tasks already scheduled run once before it
        waits: the generation started with the response then pushes the first frame in the
        same loop turn, which the response sends at once instead of a turn later (under load
        a turn is every other request's work)."""
        loop = self._event_loop = asyncio.get_running_loop()
        self._held = loop_counter(_HELD_COUNTER, loop)
        frames = self._frames
        try:
            if not frames and not self._closed:
                await asyncio.sleep(0)
            while True:
                if self._behind:
                    return
                if frames:
                    now = loop.time()
                    if now - self._last_send < COALESCE_WINDOW_S and not self._closed:
                        await asyncio.sleep(self._last_send + COALESCE_WINDOW_S - now)
                        now = loop.time()
                        if self._behind:
                            return
                    self._last_send = now
                    out = frames[0] if len(frames) == 1 else b"".join(frames)
                    frames.clear()
                    self._handed = self._queued_at
                    self._release()
                    self._in_send = True
                    yield out
                    self._in_send = False
                    continue
                if self._closed:
                    return
                waiter = self._waiter = loop.create_future()
                try:
                    await waiter
                finally:
                    self._waiter = None
        finally:
            self._detached = True
            self.send_now = None
            frames.clear()
            self._release()


class PrefetchedSource:
    """A source whose first chunk is fetched at once, in its own task.

    The chat core builds one before the claim of a live answer so the model's time to first
    token overlaps the claim's S2 round trips. :meth:`aclose` cancels the fetch and closes the
    source (the claim was lost, or the generation stopped before it started).

    With :meth:`send_ahead`, every chunk that arrives is handed to a callback at once, each
    fetch starting when the previous one ends, until :meth:`stop_ahead`: the chat core's
    ``respond_before_claim`` sends them live while the claim is still in flight. A chunk the
    callback declines, a failure and the source's end stay for :meth:`__anext__`.

    Args:
        source: the model's chunks, or a factory called here with ``signal``.
        signal: the generation's stop signal.
    """

    __slots__ = ("_ahead", "_iterator", "_next")

    def __init__(self, source: AsyncIterable[Chunk] | SourceFactory, signal: StopSignal) -> None:
        if callable(source) and not hasattr(source, "__aiter__"):
            source = source(signal)
        self._iterator: AsyncIterator[Chunk] = aiter(source)
        self._ahead: Callable[[Chunk], bool] | None = None
        #: the fetch in flight or done and not yet taken
        self._next: asyncio.Task[Chunk] | None = self._fetch()

    def _fetch(self) -> asyncio.Task[Chunk]:
        return asyncio.get_running_loop().create_task(
            self._fetch_next(), name="resumable-chat source chunk"
        )

    async def _fetch_next(self) -> Chunk:
        return await anext(self._iterator)

    @property
    def fetching(self) -> asyncio.Task[Chunk] | None:
        """The fetch in flight or done and not yet taken (``None`` once taken)."""
        return self._next

    def has_chunk(self) -> bool:
        """True when a chunk has arrived and waits to be taken (not an end or a failure)."""
        task = self._next
        return (
            task is not None and task.done() and not task.cancelled() and task.exception() is None
        )

    def send_ahead(self, deliver: Callable[[Chunk], bool]) -> None:
        """Hand every chunk that arrives to ``deliver`` (synchronously, in arrival order)
        until :meth:`stop_ahead`; a chunk it declines (``False``) ends this and stays for
        :meth:`__anext__`. A chunk already waiting is delivered before this returns."""
        self._ahead = deliver
        task = self._next
        if task is None:
            task = self._next = self._fetch()
        if task.done():
            self._fetched(task)
        else:
            task.add_done_callback(self._fetched)

    def stop_ahead(self) -> None:
        """Stop handing chunks out; what arrives from now on waits for :meth:`__anext__`."""
        self._ahead = None

    def _fetched(self, task: asyncio.Task[Chunk]) -> None:
        deliver = self._ahead
        if deliver is None or task is not self._next or not self.has_chunk():
            return  # taken over by __anext__, or an end or a failure: left for __anext__
        if not deliver(task.result()):
            self._ahead = None
            return
        self._next = following = self._fetch()
        following.add_done_callback(self._fetched)

    def passthrough(self) -> AsyncIterator[Chunk] | None:
        """The source's own iterator once nothing is fetched ahead or handed out any more
        (every later chunk would only pass through this object), else ``None``."""
        return self._iterator if self._next is None and self._ahead is None else None

    def __aiter__(self) -> PrefetchedSource:
        return self

    async def __anext__(self) -> Chunk:
        self._ahead = None
        task = self._next
        if task is None:
            return await anext(self._iterator)
        self._next = None
        return await task  # StopAsyncIteration when the source ended

    async def aclose(self) -> None:
        """Cancel a fetch still running and close the source.

        A fetch still running :data:`~resumable_chat.log.generation.SOURCE_CLOSE_TIMEOUT_S`
        after the cancel (the source's cleanup hangs) is cancelled once more and then left
        behind, so a lost claim's 409 never waits on it for longer."""
        self._ahead = None
        task, self._next = self._next, None
        if task is not None:
            for _ in range(2):
                task.cancel()
                await asyncio.wait([task], timeout=log_generation.SOURCE_CLOSE_TIMEOUT_S)
                if task.done():
                    break
                logger.warning(
                    "a source's chunk fetch is still running %s s after it was cancelled",
                    log_generation.SOURCE_CLOSE_TIMEOUT_S,
                )
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the source is being discarded
        await close_source(self._iterator)


class ChatProducer(Producer):
    """One answer of the chat core on the log engine.

    Args:
        source: the model's chunks, or a factory called with the stop signal (only once the
            claim is won, never when a stop came first).
        dialect: the protocol's conventions.
        turn: this answer's state (the dialect's :class:`TurnState`).
        error_text: maps a source exception to the error chunk's text.
        lost_text: gives the error text when another instance took the generation over
            (called only then: it may call the app's ``on_error``).
        prelude: records stored before the answer and not sent (the turn's message), as
            encoded bodies (:func:`encode_chunk`).
        announce: chunks stored and sent right after the prelude, before the source opens.
        live: keep a :class:`LiveChannel` for a live response (``False`` for 202 replies).
        signal: the stop signal the source sees.
        turn_key: the turn's key when it is answered once per message
            (:func:`~resumable_chat.log.records.turn_key` of ``prelude``), else ``None``.
    """

    def __init__(
        self,
        *,
        source: AsyncIterable[Chunk] | SourceFactory | PrefetchedSource,
        dialect: Dialect,
        turn: TurnState,
        error_text: Callable[[BaseException], str],
        lost_text: Callable[[], str],
        prelude: list[bytes] | None = None,
        announce: list[Chunk] | None = None,
        live: bool = True,
        signal: StopSignal,
        turn_key: str | None = None,
    ) -> None:
        self._source = source
        self.turn_key = turn_key
        self.dialect = dialect
        self.turn = turn
        self._storage_form = dialect.storage_form
        self._error_text = error_text
        self._lost_text = lost_text
        self._prelude = prelude or []
        self._announce = announce or []
        #: how many of the announced chunks the claim's append stored (see claim_records)
        self._announced_with_claim = 0
        self.signal = signal
        self.live = LiveChannel() if live else None
        self._opened = False
        self._begun = False
        #: records of the chunks sent live before the claim (``respond_before_claim``)
        self._ahead: list[bytes] | None = None
        self._sent_ahead = False

    def _emit(self, output: Output, chunk: Chunk, body: bytes | None = None) -> None:
        """Send ``chunk`` live and store it; ``body``: its stored form, already encoded (a
        piece of a chunk too large for one record, :meth:`_split`)."""
        if body is None:
            stored = self._storage_form(chunk)
            try:
                body = encode_chunk(stored)
            except UnicodeEncodeError:  # a surrogate: kept as a JavaScript producer would
                chunk = scalar_value_json(chunk)
                stored = self._storage_form(chunk)
                body = encode_chunk(stored)
            if len(body) > MAX_DATA_BODY_BYTES:
                pieces = self._split(chunk, len(body))
                if pieces is None:
                    self._emit_fragments(output, chunk, body if stored is chunk else None, body)
                    return
                for piece, piece_body in pieces:
                    self._emit(output, piece, piece_body)
                return
            live_body = body if stored is chunk else None
        else:
            live_body = None
        live = self.live
        if live is None:
            output.append(body)
            return
        # The live frame is queued before the record, so the response's task wakes before
        # the writer's: the client never waits behind the encoding of an S2 append.
        writer = output.writer
        cursor = writer.next_seq_num + 1
        live.push(event_frame(live_body or encode_live(chunk), cursor), cursor)
        writer.submit_body(body)  # Output.append, one call less per chunk

    def _emit_fragments(
        self, output: Output, chunk: Chunk, live_body: bytes | None, body: bytes
    ) -> None:
        """Send ``chunk`` live as one event and store its stored form ``body`` (too large for
        one record, and of a type the dialect cannot cut) in fragment records
        (:mod:`resumable_chat.log.fragments`); the event's SSE id is the last fragment's.
        ``live_body``: the live form already encoded, if it is ``body``. Raises
        :class:`ChunkTooLargeError` when it needs more records than a chunk may span."""
        records = fragment_records(body)
        if records is None:
            raise ChunkTooLargeError(chunk["type"], len(body))
        writer = output.writer
        live = self.live
        if live is not None:
            last_id = writer.next_seq_num + len(records)
            live.push(event_frame(live_body or encode_live(chunk), last_id), last_id)
        for record in records:
            writer.submit(record)

    def _split(self, chunk: Chunk, size: int) -> list[tuple[Chunk, bytes]] | None:
        """``chunk`` (``size`` bytes as stored, too many for a record) cut by the dialect
        into chunks that each fit one, each with its stored body; ``None`` when the dialect
        cannot cut it; raises :class:`ChunkTooLargeError` when a piece does not fit."""
        storage_form = self._storage_form
        pieces = self.dialect.split_chunk(
            chunk, MAX_DATA_BODY_BYTES, lambda piece: len(encode_chunk(storage_form(piece)))
        )
        if pieces is None:
            return None
        encoded = [(piece, encode_chunk(storage_form(piece))) for piece in pieces]
        if any(len(body) > MAX_DATA_BODY_BYTES for _, body in encoded):
            raise ChunkTooLargeError(chunk["type"], size)
        return encoded

    @property
    def prefetched(self) -> PrefetchedSource | None:
        """The source, when it is a :class:`PrefetchedSource`."""
        source = self._source
        return source if isinstance(source, PrefetchedSource) else None

    def send_ahead(self) -> None:
        """Send the source's chunks live from now on, before the claim is decided (the chat
        core's ``respond_before_claim``): framed without SSE ids (their seq_nums are not
        known yet) and kept, to be stored right after the prelude once the claim is won
        (:meth:`run`, :meth:`stopped`, :meth:`failed`) or dropped when it is lost
        (:meth:`claim_failed`).

        Raises ``ValueError`` when the source is not a :class:`PrefetchedSource`, there is
        no live channel or there are chunks to announce.
        """
        source = self._source
        if not isinstance(source, PrefetchedSource) or self.live is None or self._announce:
            raise ValueError("send_ahead needs a prefetched source, a live channel, no announce")
        self._ahead = []
        source.send_ahead(self._deliver_ahead)

    def _deliver_ahead(self, chunk: Chunk) -> bool:
        """One chunk that arrived before the claim was decided: sent live now, stored later.
        ``False`` (nothing sent) for a chunk :meth:`run` must reject or fail on, so it does
        so the usual way once the claim is won."""
        ahead, live = self._ahead, self.live
        if ahead is None or live is None:
            return False
        if not isinstance(chunk, dict) or not isinstance(chunk.get("type"), str):
            return False
        try:
            if self.dialect.chunk_problem(chunk) is not None:
                return False
            chunk = self.dialect.client_form(chunk)
            stored = self._storage_form(chunk)
            body = encode_chunk(stored)
            live_body = body if stored is chunk else encode_chunk(chunk)
        except Exception:  # run() meets the same error and reports it
            return False
        if len(body) > MAX_DATA_BODY_BYTES:
            return False  # run() cuts it or fails on it
        turn = self.turn
        # a loop callback (the fetch's end), not a task: the response's task sends these
        if not ahead:
            for opening in turn.opening(chunk):
                turn.observe(opening)
                opened = self._storage_form(opening)
                ahead.append(encode_chunk(opened))
                live.push(event_frame(encode_chunk(opening)), direct=False)
        turn.observe(chunk)
        ahead.append(body)
        live.push(event_frame(live_body), direct=False)
        return True

    def claim_failed(self, error_text: str) -> None:
        """End a live response begun before its claim was decided, now that the claim is
        lost (or failed): the dialect's error terminal with ``error_text``, live only (the
        log never held this answer), then the done frame."""
        self._ahead = None
        live = self.live
        if live is None or live.closed:
            return
        for chunk in self.turn.error_chunks(error_text):  # from a loop callback: queued
            live.push(event_frame(encode_live(chunk)), direct=False)
        if self.dialect.done_frame:
            live.push(self.dialect.done_frame, direct=False)
        live.close()

    def _open(self) -> AsyncIterator[Any]:
        self._opened = True
        source = self._source
        if callable(source) and not hasattr(source, "__aiter__"):
            source = source(self.signal)
        return aiter(source)

    def claim_records(self) -> list[bytes]:
        """The prelude (the turn's message), then the announced chunks, to be stored in the
        claim's own append when they fit there with the fence (1 MiB metered in all), so no
        reader ever sees the claim without them (an AG-UI run's ``run.accepted``, which
        joins look the run up by); what does not fit is stored first thing by :meth:`run`
        (or before an early stop or error terminal)."""
        size = sum(metered_bytes(AppendRecord(body)) for body in self._prelude)
        if size + _FENCE_ROOM > MAX_BATCH_METERED_BYTES:
            return []
        records, self._prelude = self._prelude, []
        if self._announce:
            announced = [encode_chunk(self._storage_form(chunk)) for chunk in self._announce]
            more = sum(metered_bytes(AppendRecord(body)) for body in announced)
            if size + more + _FENCE_ROOM <= MAX_BATCH_METERED_BYTES and all(
                len(body) <= MAX_DATA_BODY_BYTES for body in announced
            ):
                records += announced
                self._announced_with_claim = len(announced)
        return records

    def _begin(self, output: Output) -> None:
        """Store the prelude (unless the claim did) and emit the announcement, once: in
        :meth:`run`, or before the stop or error terminal when the generation ends before it
        ran (a stop that came first still keeps the turn's message)."""
        if self._begun:
            return
        self._begun = True
        for body in self._prelude:
            if len(body) > MAX_DATA_BODY_BYTES:  # a message with large attachments
                for record in fragment_records(body) or ():  # its size was checked
                    output.writer.submit(record)
            else:
                output.append(body)
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            cast(PrefetchedSource, self._source).stop_ahead()
            for body in ahead:
                output.append(body)
            self._sent_ahead = bool(ahead)
        stored_with_claim = self._announced_with_claim
        first_id = output.writer.next_seq_num - stored_with_claim + 1  # ids of those records
        for index, chunk in enumerate(self._announce):
            self.turn.observe(chunk)
            if index >= stored_with_claim:
                self._emit(output, chunk)
            elif self.live is not None:  # stored with the claim: sent live only
                cursor = first_id + index
                self.live.push(event_frame(encode_live(chunk), cursor), cursor)

    async def run(self, output: Output) -> None:
        """Store the prelude, emit the announcement, then pump the source (see the class)."""
        turn = self.turn
        chunk_problem = self.dialect.chunk_problem
        client_form = self.dialect.client_form
        self._begin(output)
        first = not self._sent_ahead
        # yield once after the first chunk, so the response sends it on the next loop turn
        # before this task takes the next ones: a source with several chunks ready at once (a
        # cached answer, a burst from one network read) otherwise has the whole burst, and
        # its end, produced before the client gets its first byte
        hand_over = first and self.live is not None
        iterator = self._open()
        prefetched = iterator if isinstance(iterator, PrefetchedSource) else None
        signal = output.signal
        writer = output.writer
        try:
            while True:
                if prefetched is not None:
                    inner = prefetched.passthrough()
                    if inner is not None:  # read the source itself from now on
                        iterator, prefetched = inner, None
                try:
                    chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                if signal.is_set():
                    return  # stopped or lost, and the source swallowed the cancel: drop it
                if not isinstance(chunk, dict) or not isinstance(chunk.get("type"), str):
                    raise SourceError(
                        "a source must yield dicts with a string 'type', "
                        f"got {type(chunk).__name__}"
                    )
                problem = chunk_problem(chunk)
                if problem is not None:
                    raise SourceError(f"the source yielded a chunk the client rejects: {problem}")
                chunk = client_form(chunk)
                if first:
                    first = False
                    for opening in turn.opening(chunk):
                        turn.observe(opening)
                        self._emit(output, opening)
                turn.observe(chunk)
                self._emit(output, chunk)
                if hand_over:
                    hand_over = False
                    await asyncio.sleep(0)
                if writer.pending_bytes > writer.max_pending_bytes:
                    await output.wait_writable()
        finally:
            await close_source(iterator)
        if first:
            for opening in turn.opening(None):
                turn.observe(opening)
                self._emit(output, opening)

    def stopped(self, output: Output) -> None:
        """The dialect's stop terminal (AI SDK ``finish``; TanStack ``RUN_FINISHED``)."""
        self._begin(output)
        for chunk in self.turn.stop_chunks():
            self._emit(output, chunk)

    def failed(self, error: BaseException, output: Output) -> None:
        """The dialect's error terminal with ``error_text(error)``."""
        self._begin(output)
        for chunk in self.turn.error_chunks(self._error_text(error)):
            self._emit(output, chunk)

    def finished(self, outcome: Outcome) -> None:
        """Close the live channel: the error terminal first when the generation was lost
        (live only, with no SSE id: the log holds the taker's terminal). The response adds
        the dialect's done frame (``ResumableChat.live_response``)."""
        live = self.live
        if live is None:
            return
        try:
            if outcome == "lost":
                for chunk in self.turn.lost_chunks(self._lost_text()):
                    live.push(event_frame(encode_live(chunk)))
        finally:
            live.close(complete=outcome != "abandoned")  # the response ends whatever came

    async def aclose(self) -> None:
        """Close a prefetched source that :meth:`run` never opened."""
        if not self._opened and isinstance(self._source, PrefetchedSource):
            await self._source.aclose()


def live_channel(generation: Generation) -> LiveChannel:
    """The live channel of a generation the chat core started with ``live=True``.

    Raises ``ValueError`` when it has none (a 202 session turn)."""
    producer = cast(ChatProducer, generation.producer)
    if producer.live is None:
        raise ValueError("this generation has no live response")
    return producer.live
