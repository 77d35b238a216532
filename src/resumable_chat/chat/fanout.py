"""One log reader per running answer per process, shared by all its local followers.

A follower of a running answer (``ResumableChat.replay``) does not read S2 itself: the
first one opens an :class:`AnswerTap` on the answer, which follows the log once from the
answer's first record and frames each stored chunk once (``id:`` + ``data:``); every
follower on this process reads those frames from its own position and takes all that
arrived since its last look as one write. A slow follower holds up nobody. When the tap's
window (``max_frames`` frames, ``max_bytes`` bytes) has moved past a follower's position,
that follower reads the log itself from there, as it would without a tap. Followers on
other instances have their own taps. The frames are the log's records (acknowledged
appends) in log order, so what a follower sees is a contiguous slice of the log, exactly as
when it reads the log itself.

A follower whose response is idle gets the new frames sent by the tap's own task
(:class:`FrameSink`, :meth:`~resumable_chat.sse.SseResponse.send_now`) instead of being woken
to send them: one task step per stored batch for all of an answer's followers, not one each.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
from array import array
from collections.abc import AsyncIterator, Callable, Sequence

from resumable_chat.log import LogEngine, RecordKind
from resumable_chat.s2.records import SequencedRecord
from resumable_chat.sse import COALESCE_WINDOW_S, event_frame
from resumable_chat.tasks import forget_cancellation

__all__ = [
    "DEFAULT_LINGER_S",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FRAMES",
    "AnswerTap",
    "AnswerTaps",
    "FrameSink",
]

#: Frames a tap keeps at most; past it, the oldest eighth is dropped (a follower behind
#: them reads S2 itself).
DEFAULT_MAX_FRAMES = 50_000

#: Bytes of frames a tap keeps at most (8 MiB); past it, the oldest frames are dropped until
#: an eighth of it is free. The frame bound alone let an answer of large chunks (tool
#: outputs, data parts: a record holds up to 1 MiB) keep gigabytes per running answer.
DEFAULT_MAX_BYTES = 8 * 1024 * 1024

#: Seconds a tap stays open after its last follower left.
DEFAULT_LINGER_S = 5.0

_DATA = RecordKind.DATA

#: ``fallback(seq_num)``: the answer's frames from ``seq_num`` read from the log directly,
#: up to and including the done frame.
Fallback = Callable[[int], AsyncIterator[bytes]]


def _check_window(max_frames: int, max_bytes: int) -> None:
    """Raise ``ValueError`` unless both bounds of a tap's window are at least 1."""
    if max_frames < 1 or max_bytes < 1:
        raise ValueError(f"max_frames and max_bytes must be ≥ 1, got {max_frames}, {max_bytes}")


class FrameSink:
    """Where a follower's frames may be sent from the tap's task: ``send_now`` is set to the
    follower's response's :meth:`~resumable_chat.sse.SseResponse.send_now` once that response
    exists (``None`` until then: the follower sends its frames itself)."""

    __slots__ = ("send_now",)

    def __init__(self) -> None:
        self.send_now: Callable[[bytes], bool] | None = None


class _Follower:
    """One follower's place in a tap: the next seq_num it wants, the SSE ids it skips, the
    loop time of its last send, its wait for new frames while it waits, its sink."""

    __slots__ = ("last", "position", "sink", "skip_ids_through", "waiter")

    def __init__(self, position: int, skip_ids_through: int | None, sink: FrameSink | None):
        self.position = position
        self.skip_ids_through = skip_ids_through
        self.sink = sink
        self.last = -math.inf
        self.waiter: asyncio.Future[None] | None = None


class AnswerTap:
    """The frames of one answer (the generation whose records start at ``start``), read once.

    Args:
        engine: the log engine to follow with (its lease watchdog closes a lost answer, whose
            terminal then reaches the tap like any other).
        stream: the chat's S2 stream.
        start: seq_num of the answer's first record (``LatestGeneration.data_start``).
        is_history: the dialect's test for stored records that are not part of the answer
            (a turn's user message); they are never sent.
        max_frames: frames (records) kept at most, ≥ 1; older ones leave the window.
        max_bytes: bytes of frames kept at most, ≥ 1; older ones leave the window (all of
            them when the newest frame alone is larger).
        known: the answer's records from ``start`` on that the caller read already
            (``LatestGeneration.since_claim``): the tap starts with them and reads the log
            from after them, so its first followers need no S2 round trip more.

    Raises ``ValueError`` for a ``max_frames`` or ``max_bytes`` below 1.

    ``seq_nums[i]``, ``ids[i]`` and ``frames[i]`` are the log position, SSE id and framed
    bytes of a kept data record; ``floor`` is the lowest seq_num from which every data record
    is kept. ``ended`` becomes true at the answer's terminal fence; ``error`` holds what ended
    the follow otherwise (``LogGapError``, ``S2Error``); ``done`` when the follow is over.
    """

    def __init__(
        self,
        engine: LogEngine,
        stream: str,
        start: int,
        is_history: Callable[[bytes], bool],
        *,
        max_frames: int = DEFAULT_MAX_FRAMES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        known: Sequence[SequencedRecord] = (),
    ) -> None:
        _check_window(max_frames, max_bytes)
        self.stream = stream
        self.start = start
        self.floor = start
        self.position = start  # past the last record the follow delivered
        # arrays, not lists of ints: nothing for the garbage collector to visit per frame
        self.seq_nums = array("q")
        self.ids = array("q")
        self.frames: list[bytes] = []
        self.ended = False
        self.done = False
        self.error: BaseException | None = None
        self.followers = 0
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._bytes = 0  # of the kept frames
        self._is_history = is_history
        self._waiting: list[_Follower] = []  # followers waiting for new frames
        # kept: asking asyncio for the running loop costs a getpid() call on CPython 3.11
        self._event_loop = asyncio.get_running_loop()
        self.task = self._event_loop.create_task(
            self._read(engine, known), name=f"resumable-chat answer tap {stream}"
        )
        self.task.add_done_callback(forget_cancellation)  # see resumable_chat.tasks

    async def _read(self, engine: LogEngine, known: Sequence[SequencedRecord]) -> None:
        follow = engine.follow(
            self.stream, self.start, until_closed=True, open_generation=True, known=known
        )
        try:
            is_history = self._is_history
            add_seq_num, add_id, add_frame = (
                self.seq_nums.append,
                self.ids.append,
                self.frames.append,
            )
            async with contextlib.aclosing(follow) as batches:
                async for events in batches:
                    self.position = events[-1].seq_num + 1
                    for event in events:
                        if event.kind is _DATA:
                            if not is_history(event.body):
                                frame = event_frame(event.body, event.id)
                                add_seq_num(event.seq_num)
                                add_id(event.id)
                                add_frame(frame)
                                self._bytes += len(frame)
                        elif event.kind.boundary:
                            self.ended = True
                            break  # what follows belongs to another generation
                    self._trim()
                    self._wake()
                    if self.ended:
                        return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = exc
        finally:
            self.done = True
            self._wake()

    def _trim(self) -> None:
        """Past ``max_frames``, drop the oldest eighth of the window at once: dropping one
        frame per record appended moved the whole window each time (a long answer slowed
        down as it grew past the window). Past ``max_bytes``, drop the oldest frames until
        an eighth of it is free."""
        frames = self.frames
        extra = 0
        if len(frames) > self._max_frames:
            extra = len(frames) - self._max_frames + max(1, self._max_frames // 8)
        dropped = sum(len(frame) for frame in frames[:extra]) if extra else 0
        if self._bytes - dropped > self._max_bytes:
            free_to = self._max_bytes - self._max_bytes // 8
            while extra < len(frames) and self._bytes - dropped > free_to:
                dropped += len(frames[extra])
                extra += 1
        if extra:
            self.floor = self.seq_nums[extra - 1] + 1
            del self.seq_nums[:extra], self.ids[:extra], frames[:extra]
            self._bytes -= dropped

    def _wake(self) -> None:
        """New frames (or the end): each waiting follower whose response is idle and whose
        last send was not just now gets them sent from here and keeps waiting; the others
        are woken to send them themselves (and so to send the end, or to fall back)."""
        waiting, self._waiting = self._waiting, []
        now = self._event_loop.time()
        for follower in waiting:
            waiter = follower.waiter
            if waiter is None or waiter.done():
                continue  # the follower left (its wait was cancelled)
            sink = follower.sink
            send_now = sink.send_now if sink is not None else None
            if (
                send_now is not None
                and not self.done
                and follower.position >= self.floor
                and now - follower.last >= COALESCE_WINDOW_S
            ):
                data, position = self._next(follower)
                if data is None or send_now(data):
                    follower.position = position
                    if data is not None:
                        follower.last = now
                    self._waiting.append(follower)
                    continue
            follower.waiter = None
            waiter.set_result(None)

    def _next(self, follower: _Follower) -> tuple[bytes | None, int]:
        """The frames the follower has not had yet (joined; ``None`` when none is due) and
        the position past them; the follower's position must be ≥ ``floor``."""
        first = bisect.bisect_left(self.seq_nums, follower.position)
        if first >= len(self.frames):
            return None, follower.position
        batch = self.frames[first:]
        skip = follower.skip_ids_through
        if skip is not None:
            ids = self.ids[first:]
            batch = [f for f, i in zip(batch, ids, strict=True) if i > skip]
        return (b"".join(batch) if batch else None), self.seq_nums[-1] + 1

    async def _changed(self, follower: _Follower) -> None:
        waiter = follower.waiter = self._event_loop.create_future()
        self._waiting.append(follower)
        try:
            await waiter
        finally:
            follower.waiter = None

    async def follow(
        self,
        start: int,
        *,
        skip_ids_through: int | None,
        done_frame: bytes | None,
        fallback: Fallback,
        sink: FrameSink | None = None,
    ) -> AsyncIterator[bytes]:
        """The answer's frames from seq_num ``start`` (≥ the tap's ``start``), live, each
        wake-up's worth joined into one ``bytes``; after the terminal, ``done_frame``.

        Args:
            start: the first seq_num wanted.
            skip_ids_through: leave out frames whose SSE id is at most this (a resume cursor).
            done_frame: the dialect's end-of-stream frame (``None``: none).
            fallback: reads the log from a seq_num when the window has moved past it
                (filtering by ``skip_ids_through`` too, so that a position inside a chunk
                stored in fragments, from a cursor no frame carried, still gets that chunk:
                :func:`~resumable_chat.log.follow.follow_log`).
            sink: where the tap's task may send frames while this iterator waits; what it
                sends there is not yielded.

        Raises what ended the tap's follow (``LogGapError``, ``S2Error``). Ends without the
        done frame when the follow ended before a terminal (the stream was deleted).
        """
        me = _Follower(start, skip_ids_through, sink)
        loop = self._event_loop
        while True:
            if me.position < self.floor:  # the window moved past us: read the log ourselves
                async for stored in fallback(me.position):
                    yield stored
                return
            data, position = self._next(me)
            if position != me.position:
                me.position = position
                if data is not None:
                    me.last = loop.time()
                    yield data
                continue
            if self.done:
                if self.error is not None:
                    raise self.error
                if self.ended and done_frame:
                    yield done_frame
                return
            await self._changed(me)
            if loop.time() - me.last < COALESCE_WINDOW_S and not self.done:
                await asyncio.sleep(0)  # busy answer: one more turn's frames in this send

    async def aclose(self) -> None:
        """Stop the tap's follow and wait until its read is released."""
        if not self.task.done():
            self.task.cancel()
        await asyncio.wait([self.task])


class AnswerTaps:
    """The :class:`AnswerTap` s of one chat object, one per running answer it is asked to
    follow. A tap whose last follower left stays open ``linger_s`` seconds (a reconnecting
    client or the next wave of followers finds it), then closes; one that saw its answer's
    end closes then too.

    Args:
        engine: the log engine the taps follow with.
        is_history: the dialect's test for stored records that are not part of an answer.
        linger_s: seconds a tap stays open after its last follower left.
        max_frames: each tap's window in frames (see :class:`AnswerTap`).
        max_bytes: each tap's window in bytes of frames (see :class:`AnswerTap`).

    Raises ``ValueError`` for a ``max_frames`` or ``max_bytes`` below 1.
    """

    def __init__(
        self,
        engine: LogEngine,
        is_history: Callable[[bytes], bool],
        *,
        linger_s: float = DEFAULT_LINGER_S,
        max_frames: int = DEFAULT_MAX_FRAMES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        _check_window(max_frames, max_bytes)
        self._engine = engine
        self._is_history = is_history
        self._linger_s = linger_s
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._taps: dict[tuple[str, int], AnswerTap] = {}
        self._newest: dict[str, AnswerTap] = {}  # the newest tap opened on each stream
        self._idle: dict[AnswerTap, asyncio.TimerHandle] = {}
        self._open: set[AnswerTap] = set()  # every tap whose read may still run

    def __len__(self) -> int:
        return len(self._taps)

    def running_answer(self, stream: str, cursor: int | None) -> int | None:
        """The first seq_num of the answer on ``stream`` that a tap here follows and has not
        seen end, when a follower from ``cursor`` (``None``: from the answer's start) can be
        served from it without asking the log; else ``None``.

        A tap's follow has a lease watchdog, so an answer it follows is known to be running
        or about to show its end; a cursor past what the tap has read needs the log's tail.
        """
        tap = self._newest.get(stream)
        if tap is None or tap.done or tap.ended:
            return None
        return tap.start if cursor is None or cursor <= tap.position else None

    def _tap(self, stream: str, answer_start: int, known: Sequence[SequencedRecord]) -> AnswerTap:
        key = (stream, answer_start)
        tap = self._taps.get(key)
        if tap is None or (tap.done and not tap.ended):  # a failed or cancelled tap: anew
            tap = AnswerTap(
                self._engine,
                stream,
                answer_start,
                self._is_history,
                max_frames=self._max_frames,
                max_bytes=self._max_bytes,
                known=known,
            )
            self._taps[key] = self._newest[stream] = tap
            self._open.add(tap)
            tap.task.add_done_callback(lambda _: self._open.discard(tap))
        idle = self._idle.pop(tap, None)
        if idle is not None:
            idle.cancel()
        return tap

    def _expire(self, tap: AnswerTap) -> None:
        self._idle.pop(tap, None)
        if tap.followers:
            return
        key = (tap.stream, tap.start)
        if self._taps.get(key) is tap:
            del self._taps[key]
        if self._newest.get(tap.stream) is tap:
            del self._newest[tap.stream]
        if not tap.task.done():
            tap.task.cancel()  # awaited by aclose() if it has not ended by then

    async def frames(
        self,
        stream: str,
        answer_start: int,
        start: int,
        *,
        skip_ids_through: int | None,
        done_frame: bytes | None,
        fallback: Fallback,
        sink: FrameSink | None = None,
        known: Sequence[SequencedRecord] = (),
    ) -> AsyncIterator[bytes]:
        """:meth:`AnswerTap.follow` on the tap of the answer of ``stream`` whose records
        start at ``answer_start`` (opened on first use, starting from ``known``: see
        :class:`AnswerTap`)."""
        tap = self._tap(stream, answer_start, known)
        tap.followers += 1
        try:
            async for data in tap.follow(
                start,
                skip_ids_through=skip_ids_through,
                done_frame=done_frame,
                fallback=fallback,
                sink=sink,
            ):
                yield data
        finally:
            tap.followers -= 1
            if tap.followers == 0 and tap not in self._idle:
                loop = asyncio.get_running_loop()
                self._idle[tap] = loop.call_later(self._linger_s, self._expire, tap)

    async def aclose(self) -> None:
        """Stop every tap's read and wait until each is released; their followers end
        (without the done frame)."""
        for handle in self._idle.values():
            handle.cancel()
        self._idle.clear()
        self._taps.clear()
        self._newest.clear()
        for tap in list(self._open):
            await tap.aclose()
