"""Following a generation log live, with the lease watchdog.

:func:`follow_log` reads a stream from a position and keeps following it (S2 read session),
yielding lists of :class:`LogEvent` (one list per S2 read batch, never empty, so a reader
frames and sends a batch at once): data records with their SSE ids, and the generation
boundaries (claims and terminal fences). Heartbeats, stop requests and trims are skipped. It
ends after the first closing fence when asked (``until_closed``), else it follows forever.

Local tee: when this process's engine runs the generation on the stream, the follow takes the
records from its writer as S2 acknowledged them (:meth:`~.writer.LogWriter.listen`); what was
stored before it joined comes from the writer's memory too
(:meth:`~.writer.LogWriter.acknowledged_since`), or from the log when the writer no longer keeps
all of it (a long answer), and it reads the log again once the
writer has ended (after a takeover, from where the writer's records stopped). What it yields is
the same contiguous slice of the log as a read of S2 gives, one S2 round trip sooner, and the
process holds no read session for an answer it writes itself.

Shutdown: :meth:`LogEngine.aclose` ends every follow of its engine (without a closing fence:
the reader sees the end of the follow, as when the stream is deleted).

Faults: the basin's follow resumes dropped read sessions itself (``HttpBasin`` reconnects at
the next seq_num); when it gives up, its error is raised here, so a reader never hangs on a
log it cannot read (its client resumes later; the generation itself is not judged for it).

A chunk stored in several records (:mod:`~resumable_chat.log.fragments`) is yielded as one
data event, with the last fragment's seq_num and SSE id, once its last fragment is read; a
chunk cut off by a claim or terminal is not yielded. A follow from a resume cursor that
points inside such a chunk (an id no frame carried) reads the log again from the chunk's
first fragment (one read session more per step back over a stop request or heartbeat
between its fragments), so the chunk, whose id is above the cursor, comes whole; when its
first fragment is no longer kept (trimmed), it is left out.

Records missing in the middle (trimmed or expired under the reader) raise
:class:`~resumable_chat.log.errors.LogGapError` instead of being skipped silently (single-use
and shared modes trim a while after a generation ends, so only a reader that lags that long
meets one).

Lease watchdog: while a generation is open, a reader that hears nothing (no record, not even a
heartbeat) for ``lease_ms`` asks the engine to judge the generation
(:meth:`LogEngine.close_if_lost`), in a task of its own; a lost one is closed with its error
terminal, which then arrives through the follow like any record. The engine never judges a
generation this process runs. The reader also drops its read session for a new one from
where it is: a session on a connection that stalled would otherwise hold it until the
session's own heartbeat timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from resumable_chat.log.errors import LogGapError
from resumable_chat.log.fragments import MAX_FRAGMENTS, FragmentJoiner, fragment_of
from resumable_chat.log.records import RecordKind, classify, record_id
from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import RangeNotSatisfiableError, StreamNotFoundError
from resumable_chat.s2.records import MAX_BATCH_RECORDS, SequencedRecord
from resumable_chat.tasks import forget_cancellation

if TYPE_CHECKING:
    from resumable_chat.log.engine import LogEngine
    from resumable_chat.log.writer import LogWriter

__all__ = ["LogEvent", "follow_log"]

logger = logging.getLogger("resumable_chat.log")


@dataclass(slots=True)
class LogEvent:
    """One record a reader acts on: ``kind`` (``DATA``, ``CLAIM``, ``END``, ``ERROR`` or
    ``FOREIGN_FENCE``), its ``seq_num``, its SSE ``id`` (data records) and its ``body``.

    Not frozen (one is made per record followed, and a frozen dataclass costs about three
    times as much to construct); treat it as read-only. It compares by value.
    """

    kind: RecordKind
    seq_num: int
    id: int
    body: bytes


_DATA = RecordKind.DATA
_SKIPPED = frozenset(
    {RecordKind.HEARTBEAT, RecordKind.STOP, RecordKind.TRIM, RecordKind.OTHER_COMMAND}
)


def _head_of(record: SequencedRecord, rewound_to: int | None) -> int | None:
    """Where to read again from to find the first fragment of ``record``'s chunk, when
    ``record`` is a fragment past the first and the first of a follow's chunks; else
    ``None``. Stop requests and heartbeats may lie between fragments, so the first
    fragment lies at ``index`` records before it or earlier: each rewind reads from below
    the last (``rewound_to``) until the first fragment is the first record read."""
    part = fragment_of(record)
    if part is None or part[0] <= 0:
        return None
    head = record.seq_num - part[0]
    if rewound_to is not None:
        head = min(head, rewound_to - 1)
    return head if head >= 0 else None


class _Feed:
    """The follow's batches, pulled by one task per reader into a queue (a list of records
    per batch; an exception when the follow failed; ``None`` when it ended).

    With ``writer`` (the local generation's), records come from it while it runs (see the
    module docstring), then from the log. Without one, ``known`` records (read from ``start``
    already, contiguous) come first and the log is followed from after them."""

    def __init__(
        self,
        basin: Basin,
        stream: str,
        start: int,
        writer: LogWriter | None = None,
        stuck_s: float | None = None,
        known: Sequence[SequencedRecord] = (),
    ) -> None:
        self.items: deque[list[SequencedRecord] | BaseException | None] = deque()
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None  # the reader waiting in next()
        self._deadline = 0.0  # when next() gives up waiting (loop time)
        self._timer: asyncio.TimerHandle | None = None
        self._timed_out = False
        self._stuck_s = stuck_s
        self._basin, self._stream = basin, stream
        self._retired: list[asyncio.Task[None]] = []  # pulls replaced by restart()
        if writer is None and known and known[0].seq_num == start:
            self._put(list(known))  # the reader takes them at once, with no S2 round trip
            start = known[-1].seq_num + 1
        self.task = self._loop.create_task(
            self._pull(basin, stream, start, writer), name=f"resumable-chat follow {stream}"
        )
        self.task.add_done_callback(forget_cancellation)  # see resumable_chat.tasks

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _put(self, item: list[SequencedRecord] | BaseException | None) -> None:
        self.items.append(item)
        self._wake()

    async def _from_writer(self, basin: Basin, stream: str, start: int, writer: LogWriter) -> int:
        """Feed from the log up to where ``writer`` joins, then from ``writer`` until it
        ends, or until it has held records unacknowledged for ``stuck_s`` by its own account
        (:attr:`LogWriter.unacknowledged_since`, which may begin before this reader joined):
        its appends keep failing or their acknowledgements were lost, and what it wrote may
        be in the log already. Returns the seq_num to follow the log from afterwards."""
        held: list[list[SequencedRecord]] = []  # acknowledged while we catch up
        catching_up = True
        position = start
        ended = asyncio.Event()

        def listener(records: list[SequencedRecord] | None) -> None:
            nonlocal position
            if records is None:
                ended.set()
            elif catching_up:
                held.append(records)
            else:  # straight into the queue: no task wake-up between the ack and the reader
                self._put(records)
                position = records[-1].seq_num + 1

        joined = writer.listen(listener)
        if joined is None:
            return start
        try:
            kept = writer.acknowledged_since(position)  # stored before we joined: from memory
            if kept:
                self._put(kept)
                position = joined
            while position < joined:  # or from the log
                batch = await basin.read(
                    stream, seq_num=position, count=min(MAX_BATCH_RECORDS, joined - position)
                )
                records = [r for r in batch.records if r.seq_num < joined]
                if not records:
                    break
                self._put(records)
                position = records[-1].seq_num + 1
            position = max(position, joined)
            for records in held:
                self._put(records)
                position = records[-1].seq_num + 1
            held.clear()
            catching_up = False
            while not ended.is_set():
                # stuck: records unacknowledged for stuck_s by the writer's own account, so
                # a reader that joins a writer stuck for a while reads the log at once
                since, stuck_s = writer.unacknowledged_since, self._stuck_s
                wait: float | None = stuck_s
                if stuck_s is not None and since is not None:
                    wait = since + stuck_s - self._loop.time()
                if wait is not None and wait <= 0:
                    logger.debug("%s: the writer is stuck; following the log instead", stream)
                    break
                with contextlib.suppress(TimeoutError):  # not wait_for: on Python 3.11
                    async with asyncio.timeout(wait):  # it can swallow a cancel
                        await ended.wait()
            return position
        finally:
            writer.unlisten(listener)

    async def _pull(self, basin: Basin, stream: str, start: int, writer: LogWriter | None) -> None:
        try:
            if writer is not None:
                start = await self._from_writer(basin, stream, start, writer)
        except asyncio.CancelledError:
            raise
        except (RangeNotSatisfiableError, StreamNotFoundError):
            self._put(None)  # deleted under us: the follow ends
            return
        except Exception as exc:
            self._put(exc)
            return
        batches = basin.follow(stream, seq_num=start, clamp=True)
        try:
            async with contextlib.aclosing(batches):
                async for batch in batches:
                    if batch.records:
                        self._put(batch.records)
        except asyncio.CancelledError:
            raise
        except (RangeNotSatisfiableError, StreamNotFoundError):
            pass  # deleted under us: the follow ends
        except Exception as exc:
            self._put(exc)
            return
        self._put(None)

    async def next(
        self, timeout_s: float
    ) -> list[SequencedRecord] | BaseException | Literal[False] | None:
        """The next queued item, or False after ``timeout_s`` seconds with none.

        One timer serves every call: it is armed for the current deadline and, when it fires
        after a later call moved the deadline, re-armed for that one (a timer per batch cost
        more than the rest of this method). Whether the wait is over is told by the deadline
        the timer was armed for, not by comparing clocks: asyncio runs timers up to its clock
        resolution early."""
        if self.items:
            return self.items.popleft()
        self._deadline = self._loop.time() + timeout_s
        self._timed_out = False
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._fire, self._deadline)
        while not self.items:
            if self._timed_out:
                return False
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self.items.popleft()

    def _fire(self, armed_for: float) -> None:
        self._timer = None
        if self._deadline == armed_for:
            self._timed_out = True
            self._wake()
        else:  # a later call moved the deadline: wait for that one
            self._timer = self._loop.call_at(self._deadline, self._fire, self._deadline)

    def restart(self, start: int) -> None:
        """Follow the log again from ``start`` on a new read session, dropping the one open:
        it may be stalled (a connection S2 no longer answers on is noticed by the session's
        own heartbeat timeout only after about 30 s; S2 pings every 5-15 s). Queued items
        stay; records the reader has already come again and are skipped. No-op once the
        follow has ended or failed."""
        old = self.task
        if old.done():
            return
        old.cancel()
        self._retired.append(old)
        old.add_done_callback(self._retired.remove)
        self.task = self._loop.create_task(
            self._pull(self._basin, self._stream, start, None),
            name=f"resumable-chat follow {self._stream}",
        )
        self.task.add_done_callback(forget_cancellation)

    def end(self) -> None:
        """End the follow from outside (the engine is closing): stop reading; the reader gets
        what is queued, then the end."""
        if not self.task.done():
            self.task.cancel()
        self._put(None)

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = self.task
        if not task.done():
            task.cancel()
        # Wait for the read sessions to be released even if we are being cancelled too.
        await asyncio.shield(asyncio.wait([task, *self._retired]))


async def follow_log(
    engine: LogEngine,
    stream: str,
    start: int,
    *,
    until_closed: bool,
    open_generation: bool | None = None,
    skip_ids_through: int | None = None,
    from_oldest_kept: bool = False,
    known: Sequence[SequencedRecord] = (),
) -> AsyncGenerator[list[LogEvent], None]:
    """Follow ``stream`` from seq_num ``start``; see the module docstring.

    Args:
        engine: the log engine (basin, lease, ownership).
        start: the first seq_num to read (a position past the tail waits for it).
        until_closed: end after the first closing fence (``END``, ``ERROR``, foreign), which
            is yielded; ``False`` follows across generations forever.
        open_generation: whether a generation is known to be open at ``start`` (``None``:
            unknown, the watchdog asks the log).
        skip_ids_through: skip data records whose SSE id is at most this (a resume cursor:
            records a remote stop displaced keep their lower ids). With it, a ``start``
            inside a chunk stored in fragments reads that chunk from its first fragment.
        from_oldest_kept: ``start`` may lie below the oldest record left (a generation whose
            claim was trimmed away is read from its first kept record); otherwise a first
            record past ``start`` means records vanished there, and is a ``LogGapError``
            like any other gap.
        known: records from ``start`` on, contiguous, that the caller read already (e.g.
            :attr:`~.scan.LatestGeneration.since_claim`): yielded first, and the log is read
            from after them. Ignored when this process runs the generation (its writer
            serves the records) or when they do not begin at ``start``.

    Yields non-empty lists of :class:`LogEvent` in log order (one per read batch). Raises
    ``LogGapError`` when records vanish under it and ``S2Error`` for permanent S2 failures.
    Close it with ``aclose()``.
    """
    lease_s = engine.config.lease_ms / 1000
    local = engine.generation(stream)
    writer = local.writer if local is not None else None
    feed = _Feed(engine.basin, stream, start, writer, stuck_s=lease_s, known=known)
    engine.opened(feed)
    position = start
    delivered = False
    joiner = FragmentJoiner()
    # From a cursor, the first record may be a fragment past the first of its chunk (a
    # cursor no frame carried): the chunk is read again from its first fragment (rewind).
    seeking = skip_ids_through is not None and start > 0
    rewound_to: int | None = None  # where the last rewind started reading
    rewinds_left = MAX_FRAGMENTS
    # The watchdog judges in its own task, so a slow S2 never holds up delivery.
    judging: asyncio.Task[bool] | None = None
    try:
        while True:
            if judging is not None and judging.done():
                still_open, judging = judging.result(), None
                if not still_open:
                    if until_closed:
                        return  # its end is out of reach (trimmed under us)
                    open_generation = False
            item = await feed.next(lease_s)
            if item is False:
                if open_generation is not False and judging is None:
                    # A live writer heartbeats: a lease of silence means it is gone, or our
                    # read session stalled (its own heartbeat timeout is ~30 s): judge the
                    # generation, and read on over a new session meanwhile.
                    feed.restart(position)
                    judging = asyncio.get_running_loop().create_task(
                        engine.judge(stream, position), name=f"resumable-chat watchdog {stream}"
                    )
                continue
            if item is None:
                return  # the follow ended: stream deleted, basin closed
            if isinstance(item, BaseException):
                raise item
            events: list[LogEvent] = []
            closed = False
            rewind: int | None = None
            for record in item:
                if record.seq_num < position:
                    continue
                if record.seq_num > position and (delivered or not from_oldest_kept):
                    if position != rewound_to or record.seq_num > start:
                        if events:
                            yield events
                        raise LogGapError(stream, position, record.seq_num)
                    seeking = False  # the chunk's head is no longer kept: it stays dropped
                delivered = True
                position = record.seq_num + 1
                if not record.headers and record.body:  # a chunk, as a generation writes it
                    seeking = False
                    if joiner.pending_from is not None:
                        joiner.add(record)  # the unfinished chunk before it is dropped
                    if (skip_ids_through is None or position > skip_ids_through) and (
                        record.seq_num >= start
                    ):
                        events.append(LogEvent(_DATA, record.seq_num, position, record.body))
                    continue
                if record.headers:
                    if seeking:
                        rewind = _head_of(record, rewound_to)
                        if rewind is not None and rewinds_left > 0:
                            break
                        rewind = None
                        seeking = classify(record) in _SKIPPED
                    whole = joiner.add(record)  # a chunk stored in fragments, joined
                    if whole is None:
                        continue
                    record = whole
                if record.seq_num < start:
                    continue  # read again only to find a chunk's first fragment
                kind = classify(record)
                if kind in _SKIPPED:
                    continue
                if kind is _DATA:
                    sse_id = record_id(record)
                    if skip_ids_through is not None and sse_id <= skip_ids_through:
                        continue
                    events.append(LogEvent(kind, record.seq_num, sse_id, record.body))
                    continue
                open_generation = kind is RecordKind.CLAIM
                events.append(LogEvent(kind, record.seq_num, 0, record.body))
                if until_closed and kind.closes:
                    closed = True
                    break
            if events:
                yield events
            if closed:
                return
            if rewind is not None:
                # a new feed from the log, the old one closed first (its queue and its
                # writer's listener with it)
                rewinds_left -= 1
                engine.closed(feed)
                await feed.aclose()
                feed = _Feed(engine.basin, stream, rewind, None, stuck_s=lease_s)
                engine.opened(feed)
                position = rewound_to = rewind
                joiner = FragmentJoiner()
    finally:
        engine.closed(feed)
        if judging is not None and not judging.done():
            judging.cancel()
            await asyncio.shield(asyncio.wait([judging]))
        await feed.aclose()
