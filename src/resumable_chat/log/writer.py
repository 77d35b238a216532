"""The fenced batching writer: one generation's records, appended in order, exactly once.

One append in flight per stream; whatever is submitted meanwhile forms the next batch (at most
``batch_size`` records and 1 MiB metered); an optional linger holds the first record of an
empty batch for up to ``linger_ms``, and two appends start at least ``append_spacing_ms``
apart, or further when the basin's append budget is shared by many writers
(:mod:`resumable_chat.s2.pacing`), unless a whole batch waits. Every batch carries the
generation's fencing token and an exact ``match_seq_num`` (S2 REST v1 append conditions), so
no other writer can interleave and a retried append cannot duplicate. Submitting is a deque
append: the live path never waits on S2.
On a basin that appends synchronously (the embedded basin) the writer's task is not woken
for a chat-paced answer's chunks: a record without headers submitted to an idle writer is
stored within :meth:`LogWriter.submit`
(:meth:`~resumable_chat.s2.basin.Basin.append_body_nowait`: one record, no batch or ack
objects), and records queued otherwise are stored from a loop callback
(:meth:`~resumable_chat.s2.basin.Basin.append_nowait`); whatever needs the task (the
spacing, a linger, a heartbeat, a close, a fault, a stop or a takeover's 412) falls back to
it with the records kept in order.

Faults: a transient failure (timeout, 408/429/5xx, a dropped connection) is retried with
backoff for as long as the writer lives, so an answer whose writer stays alive is complete in
the log once S2 answers again; a condition mismatch reads the range back to tell "our batch
landed, its ack was lost" (after an ambiguous failure, ours or one the basin retried by itself)
from "someone else wrote". A permanent failure (auth, invalid request, missing basin) or a
takeover by another instance (a fence we did not write) ends the writer;
:attr:`LogWriter.error` says why.

A stop request from another instance is a ``stop-`` fence conditioned on our token. The writer
notices it at its next append, adopts its token, keeps every record and calls
``on_stop_requested`` (already at the failed append when the stop's token names our claim,
so the model stops one read sooner). Records it had already handed to the live path carry ids
one position too low by then; they are stored with an ``sse-id`` header holding the id they
were sent with.

Heartbeat: with ``heartbeat_ms`` set, a writer with nothing to append for that long appends an
empty record, so a generation whose model is silent keeps its lease and still notices a stop.

Listeners (:meth:`LogWriter.listen`) get every record as S2 acknowledged it, in log order, with
its seq_num: the writer's own batches and the stop requests it adopted. A reader on the same
process follows the generation from them instead of reading S2 again; the newest
:data:`KEPT_ACKED_BYTES` of them stay in memory (:meth:`LogWriter.acknowledged_since`), so a
reader that joins late catches up without a read either. (Not on a basin that stores a record
as it is submitted, the embedded one: its log is in this process already.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from array import array
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from itertools import repeat
from typing import TypeVar

from resumable_chat.log.errors import FencedOutError
from resumable_chat.log.faults import is_transient
from resumable_chat.log.records import (
    SSE_ID_HEADER,
    RecordKind,
    classify,
    fence_token,
    stop_token,
)
from resumable_chat.log.scan import read_range
from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import FencingTokenMismatchError, S2Error, SeqNumMismatchError
from resumable_chat.s2.records import (
    MAX_BATCH_METERED_BYTES,
    MAX_BATCH_RECORDS,
    AppendAck,
    AppendInput,
    AppendRecord,
    SequencedRecord,
    StreamPosition,
    metered_bytes,
)
from resumable_chat.tasks import forget_cancellation

__all__ = [
    "DEFAULT_MAX_PENDING_BYTES",
    "KEPT_ACKED_BYTES",
    "AckedRecords",
    "LogWriter",
    "WriterClosedError",
]

logger = logging.getLogger("resumable_chat.log")

#: Default cap of metered bytes waiting to be appended before :meth:`LogWriter.wait_writable`
#: makes the producer wait (64 MiB): memory stays bounded when S2 is far slower than the model.
DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024

#: Metered bytes of acknowledged records a writer keeps (the newest), so a reader on the same
#: process catches up from memory instead of reading S2 (1 MiB: a long chat answer).
KEPT_ACKED_BYTES = 1024 * 1024

#: Default ms (≥ 0) from the start of one append to the start of the next on a busy stream.
#: A model that yields a chunk per event-loop turn fills a batch in this time, so a fast S2
#: (the embedded basin, an S2 endpoint a millisecond away) gets one append per this many ms
#: instead of one per chunk; appends further apart than this never wait.
DEFAULT_APPEND_SPACING_MS = 1.0

#: A queued record: the record, its metered size, the seq_num it was submitted at.
_Entry = tuple[AppendRecord, int, int]


def _moved_bytes(entry: _Entry, seq_num: int) -> int:
    """Metered bytes ``entry`` gains when stored at ``seq_num``: the ``sse-id`` header that
    :meth:`LogWriter._records` adds to a record stored at another position than it was
    submitted at (2 + name + value; counted for every kind of record, a bound)."""
    submitted = entry[2]
    if submitted == seq_num:
        return 0
    return 2 + len(SSE_ID_HEADER) + len(str(submitted + 1))


_T = TypeVar("_T")

#: The retry jitter of writers given no ``rng``: one generator for all (seeding one per
#: writer read 2.5 KB from the OS for every answer).
_JITTER = random.Random()

#: An acknowledged record kept: its body when it has no headers (see :meth:`LogWriter._keep`).
_Kept = bytes | AppendRecord | SequencedRecord
_NOT_FENCES = (RecordKind.DATA, RecordKind.HEARTBEAT)


#: A listener: called with each acknowledged run of records (seq_nums contiguous, in log order),
#: then once with ``None`` when the writer has ended (all stored, failed, or abandoned).
AckedRecords = Callable[[list[SequencedRecord] | None], object]


class WriterClosedError(RuntimeError):
    """Raised by :meth:`LogWriter.submit` after :meth:`LogWriter.close` was called."""


class LogWriter:
    """Appends one generation's records to ``stream`` in order, fenced and batched.

    Args:
        basin: where to append.
        stream: the S2 stream name.
        fencing_token: the generation's token (≤ 36 bytes); every batch carries it.
        match_seq_num: the seq_num the first submitted record must get (one past the claim).
        batch_size: records per append, 1 to 1000.
        linger_ms: ms (≥ 0) the first record of an empty batch may wait for more.
        append_spacing_ms: ms (≥ 0) at least between the starts of two appends (see
            :data:`DEFAULT_APPEND_SPACING_MS`): a batch due sooner waits, collecting more
            records, unless the writer is closing or the batch is full; 0: no spacing. The
            basin's :attr:`~resumable_chat.s2.basin.Basin.pacing`, when it has one, may space
            them further (the writer joins it while its task runs).
        max_pending_bytes: metered bytes queued before :meth:`wait_writable` waits.
        heartbeat_ms: ms (> 0) of idleness after which an empty record is appended; ``None``:
            no heartbeat.
        retry_base_ms: the first backoff (ms) after a transient failure; it doubles up to
            ``retry_max_ms``, with up to 25 % jitter.
        retry_max_ms: the longest backoff (ms). Keep it at or below the heartbeat, so that a
            writer lands within a heartbeat of S2's return.
        append_timeout_ms: ms (> 0) after which an append still unanswered (or the read-back
            after a 412) is abandoned and sent again as a new request, once per batch (later
            tries wait as long as the basin lets them): a request stuck on a stalled
            connection must not keep the writer silent past its lease while S2 itself
            answers. The abandoned request may still land; the new one is conditioned on the
            same ``match_seq_num``, so the batch is stored once. ``None``: no bound here.
        rng: source of the jitter (seeded in simulations); ``None``: one shared by every
            writer of the process.

    Raises ``ValueError`` for a ``batch_size`` outside 1..1000, a negative ``linger_ms`` or
    ``append_spacing_ms``, or a ``heartbeat_ms`` or ``append_timeout_ms`` that is not positive.
    """

    # Slots, not a __dict__: a writer has more attributes than CPython's key-sharing
    # dicts hold (30), and each chunk of an answer reads a dozen of them, from a
    # different writer each time under load.
    __slots__ = (
        "_append_timeout_s",
        "_beat",
        "_beat_now",
        "_closing",
        "_drained",
        "_event_loop",
        "_fast",
        "_flush",
        "_kept",
        "_kept_bytes",
        "_kept_first",
        "_kept_head",
        "_kept_sizes",
        "_kept_times",
        "_last_append",
        "_last_start",
        "_listeners",
        "_next_append_seq",
        "_next_submit_seq",
        "_nowait",
        "_own_stop",
        "_pacing",
        "_parked",
        "_pending_bytes",
        "_queue",
        "_retry_base_s",
        "_retry_max_s",
        "_rng",
        "_spaced",
        "_task",
        "_unacked_since",
        "_wakeup",
        "append_spacing_s",
        "basin",
        "batch_size",
        "error",
        "fencing_token",
        "heartbeat_s",
        "linger_s",
        "max_pending_bytes",
        "on_failed",
        "on_stop_requested",
        "stream",
    )

    def __init__(
        self,
        basin: Basin,
        stream: str,
        *,
        fencing_token: str,
        match_seq_num: int,
        batch_size: int = MAX_BATCH_RECORDS,
        linger_ms: float = 0,
        append_spacing_ms: float = DEFAULT_APPEND_SPACING_MS,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        heartbeat_ms: float | None = None,
        retry_base_ms: float = 50,
        retry_max_ms: float = 1000,
        append_timeout_ms: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_RECORDS:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH_RECORDS}, got {batch_size}")
        if not linger_ms >= 0:
            raise ValueError(f"linger_ms must be ≥ 0, got {linger_ms}")
        if not append_spacing_ms >= 0:
            raise ValueError(f"append_spacing_ms must be ≥ 0, got {append_spacing_ms}")
        if heartbeat_ms is not None and not heartbeat_ms > 0:
            raise ValueError(f"heartbeat_ms must be > 0, got {heartbeat_ms}")
        if append_timeout_ms is not None and not append_timeout_ms > 0:
            raise ValueError(f"append_timeout_ms must be > 0, got {append_timeout_ms}")
        self.basin = basin
        self.stream = stream
        self.fencing_token = fencing_token
        self._own_stop = stop_token(fencing_token)  # a stop of this generation (engine)
        self.batch_size = batch_size
        self.linger_s = linger_ms / 1000
        self.append_spacing_s = append_spacing_ms / 1000
        self.max_pending_bytes = max_pending_bytes
        self.heartbeat_s = None if heartbeat_ms is None else heartbeat_ms / 1000
        self._retry_base_s = retry_base_ms / 1000
        self._retry_max_s = retry_max_ms / 1000
        self._append_timeout_s = None if append_timeout_ms is None else append_timeout_ms / 1000
        self._rng = rng if rng is not None else _JITTER
        self._queue: deque[_Entry] = deque()
        self._pending_bytes = 0
        self._unacked_since: float | None = None  # loop time, see unacknowledged_since
        self._next_submit_seq = match_seq_num
        self._next_append_seq = match_seq_num
        self._wakeup = asyncio.Event()
        self._beat: asyncio.TimerHandle | None = None  # the heartbeat timer, when armed
        self._beat_now = False
        self._drained = asyncio.Event()
        self._closing = False
        self._last_append = 0.0
        self._last_start = -math.inf  # loop time the last append began
        self._spaced: asyncio.Future[None] | None = None  # the spacing wait, while it runs
        self._pacing = basin.pacing  # the basin's append budget, if it has one
        #: the basin may append synchronously (the embedded basin: Basin.append_nowait)
        self._nowait = type(basin).append_nowait is not Basin.append_nowait
        self._parked = False  # the task waits for a record with nothing queued
        self._flush: asyncio.Handle | None = None  # an append without the task, scheduled
        #: one record appended synchronously with no batch or ack objects, when the basin
        #: can (Basin.append_body_nowait: the embedded basin)
        self._fast = (
            basin.append_body_nowait
            if type(basin).append_body_nowait is not Basin.append_body_nowait
            else None
        )
        #: the loop the task runs on (set by :meth:`start`): asking asyncio for the running
        #: loop costs a getpid() system call each time on CPython 3.11 (its fork check)
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        #: Called (in the writer's task) when another instance asked the generation to stop:
        #: at the failed append when the stop carries this generation's claim
        #: (:func:`~resumable_chat.log.records.stop_token`), and again when it is adopted.
        self.on_stop_requested: Callable[[], object] | None = None
        #: Called once (in the writer's task) when the writer fails; see :attr:`error`.
        self.on_failed: Callable[[BaseException], object] | None = None
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[AckedRecords] = []
        # The newest acknowledged records, oldest first, from index _kept_head on (see _keep):
        # the record (its body when it has no headers), S2's timestamp, metered bytes.
        self._kept: list[_Kept] = []
        self._kept_times = array("q")
        self._kept_sizes = array("q")
        self._kept_head = 0
        self._kept_first = 0  # seq_num of _kept[_kept_head]
        self._kept_bytes = 0

    @property
    def next_seq_num(self) -> int:
        """The seq_num the next submitted record gets (its SSE id is this + 1)."""
        return self._next_submit_seq

    @property
    def durable_seq_num(self) -> int:
        """One past the last record S2 has acknowledged."""
        return self._next_append_seq

    @property
    def pending_bytes(self) -> int:
        """Metered bytes submitted but not yet acknowledged."""
        return self._pending_bytes

    @property
    def unacknowledged_since(self) -> float | None:
        """Event-loop time (s, ``loop.time()``) since which submitted records have waited
        with no batch acknowledged (the later of the first one's submission and the last
        acknowledgement), or ``None`` when every record is acknowledged or dropped. A
        reader judges from it whether the writer is stuck (its appends keep failing)."""
        return self._unacked_since

    @property
    def running(self) -> bool:
        """True until the writer's task has ended (all stored, failed or abandoned)."""
        return self._task is None or not self._task.done()

    def submit(self, record: AppendRecord) -> int:
        """Queue ``record`` for the next batch and return the seq_num it will get (on the
        embedded basin, a record without headers submitted to an idle writer is stored
        before this returns: see the module docstring).

        Never blocks and never raises S2 errors; after the writer failed the record is dropped
        (see :attr:`error`). Raises :class:`WriterClosedError` after :meth:`close` and
        ``ValueError`` for a record over 1 MiB metered.
        """
        if record.headers or record.timestamp is not None:
            return self._enqueue(record)
        return self.submit_body(record.body)

    def submit_body(self, body: bytes) -> int:
        """:meth:`submit` of a record of ``body`` alone (no headers, no timestamp): what
        every chunk of an answer is. Returns its seq_num; raises as :meth:`submit`."""
        fast = self._fast
        if (
            fast is not None
            and self._parked
            and not self._queue
            and self._flush is None
            and not self._closing
            and not self._beat_now
            and self.error is None
            and self.linger_s == 0
            and self._next_submit_seq == self._next_append_seq
            and not self._wakeup.is_set()
        ):
            # what _append_soon would do at once, without a callback, a batch or an ack
            seq = self._next_submit_seq
            loop = self._event_loop
            assert loop is not None  # set by start(), before the task parks
            now = loop.time()
            spacing = self.append_spacing_s if self._pacing is None else self._spacing_s()
            if now >= self._last_start + spacing:
                timestamp = fast(
                    self.stream, body, match_seq_num=seq, fencing_token=self.fencing_token
                )
                if timestamp is not None:
                    self._next_submit_seq = self._next_append_seq = seq + 1
                    self._last_start = self._last_append = now
                    if self._kept or self._listeners or not self._drained.is_set():
                        self._stored_one(seq, timestamp, body)
                    return seq
        return self._enqueue(AppendRecord(body))

    def _enqueue(self, record: AppendRecord) -> int:
        """:meth:`submit` by the task: queued for its next batch."""
        if self._closing:
            raise WriterClosedError("the writer is closed")
        size = metered_bytes(record) if record.headers else 8 + len(record.body)
        if size > MAX_BATCH_METERED_BYTES:
            raise ValueError(f"record is {size} metered bytes; S2 allows at most 1 MiB")
        seq = self._next_submit_seq
        self._next_submit_seq = seq + 1
        if self.error is not None:
            return seq
        self._queue.append((record, size, seq))
        self._pending_bytes += size
        if self._unacked_since is None:
            self._unacked_since = (self._event_loop or asyncio.get_running_loop()).time()
        if self._task is None:
            self.start()
        spaced = self._spaced
        if spaced is not None and not spaced.done() and self._batch_full():
            spaced.set_result(None)  # a whole batch waits: append it now
        if self._wakeup.is_set():
            pass  # the task is on its way
        elif self._parked and self._nowait:
            if self._flush is None:  # stored without waking the task (_append_soon)
                self._flush = (self._event_loop or asyncio.get_running_loop()).call_soon(
                    self._append_soon
                )
        else:
            self._wakeup.set()
        return seq

    def _stored_one(self, seq: int, timestamp: int, body: bytes) -> None:
        """Book the record of ``body`` alone, which the basin stored synchronously at ``seq``
        (:meth:`submit_body`, which has advanced the positions), as :meth:`_acknowledged`
        books a batch: for the listeners, the window and a producer waiting to write."""
        # Not kept (_keep): this basin holds the log in this process, and a reader that
        # joins late reads it there as fast. What was kept is no longer contiguous with
        # what is stored: forgotten, so acknowledged_since never returns a gap.
        if self._kept:
            self._forget_kept(seq + 1)
        if self._listeners:
            self._publish([SequencedRecord(seq, timestamp, (), body)])
        if not self._drained.is_set():
            self._drained.set()

    def listen(self, listener: AckedRecords) -> int | None:
        """Call ``listener`` with every record acknowledged from now on (see
        :data:`AckedRecords`), until the writer ends.

        Returns:
            the seq_num of the first record the listener will get (every record before it is
            already stored), or ``None`` when the writer has ended or is closing without a
            task (the listener is not kept).
        """
        if (self._task is not None and self._task.done()) or (self._task is None and self._closing):
            return None
        self._listeners.append(listener)
        return self._next_append_seq

    def acknowledged_since(self, seq_num: int) -> list[SequencedRecord] | None:
        """The acknowledged records from ``seq_num`` up to :attr:`durable_seq_num`, as the
        log holds them, when the writer still keeps them all (the newest
        :data:`KEPT_ACKED_BYTES` metered bytes); else ``None`` (read them from S2)."""
        end = self._next_append_seq
        if seq_num >= end:
            return [] if seq_num == end else None
        kept, head, first = self._kept, self._kept_head, self._kept_first
        if head >= len(kept) or first > seq_num:
            return None
        times = self._kept_times
        out: list[SequencedRecord] = []
        for index in range(head + seq_num - first, len(kept)):
            position = first + index - head
            record = kept[index]
            if isinstance(record, bytes):
                out.append(SequencedRecord(position, times[index], (), record))
            elif isinstance(record, SequencedRecord):
                out.append(record)
            else:
                out.append(
                    SequencedRecord(position, times[index], tuple(record.headers), record.body)
                )
        return out

    def _forget_kept(self, first: int) -> None:
        """Empty the window of kept records; the next kept record will be at ``first``."""
        del self._kept[:], self._kept_times[:], self._kept_sizes[:]
        self._kept_head, self._kept_first, self._kept_bytes = 0, first, 0

    def _keep(
        self, start: int, timestamp: int, records: Sequence[AppendRecord | SequencedRecord]
    ) -> None:
        """Keep stored records (seq_nums from ``start``, contiguous with those kept) for
        :meth:`acknowledged_since`, then forget the oldest beyond :data:`KEPT_ACKED_BYTES`.

        Kept flat: a list of records (a record without headers, every chunk of an answer, as
        its body: bytes, which the collector never tracks) and arrays of timestamps and sizes.
        Keeping a record allocates no container, so a running answer brings the next young
        collection no closer, and the records kept by every running generation never reach
        the old generation. Kept as a tuple per batch, each chunk's append allocated two
        containers that outlived it: with 400 concurrent answers, half the process's young
        collections came from them; kept as ``AppendRecord`` objects in per-batch lists,
        they were up to three tracked objects per chunk (300 answers at 50 chunks/s doubled
        the objects a full collection visits, 135,000 against 66,000).
        """
        kept, sizes = self._kept, self._kept_sizes
        if start != self._kept_first + len(kept) - self._kept_head:  # first, or not contiguous
            self._forget_kept(start)
        if len(records) == 1:  # the common case under load: one chunk per append
            record = records[0]
            if record.headers:
                kept.append(record)
                added = metered_bytes(record)
            else:
                kept.append(record.body)
                added = 8 + len(record.body)
            sizes.append(added)
            self._kept_times.append(timestamp)
        else:
            items = [r if r.headers else r.body for r in records]
            kept.extend(items)
            batch_sizes = [
                8 + len(item) if isinstance(item, bytes) else metered_bytes(item) for item in items
            ]
            sizes.extend(batch_sizes)
            added = sum(batch_sizes)
            self._kept_times.extend(repeat(timestamp, len(items)))
        self._kept_bytes += added
        head = self._kept_head
        while self._kept_bytes > KEPT_ACKED_BYTES and head < len(kept) - 1:
            self._kept_bytes -= sizes[head]
            head += 1
        if head != self._kept_head:
            self._kept_first += head - self._kept_head
            if head > 1024 and head * 2 > len(kept):  # compact: drop what was forgotten
                del kept[:head], self._kept_times[:head], sizes[:head]
                head = 0
            self._kept_head = head

    def unlisten(self, listener: AckedRecords) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _publish(self, records: list[SequencedRecord] | None) -> None:
        for listener in list(self._listeners):
            listener(records)

    def _ended(self, task: asyncio.Task[None] | None) -> None:
        pacing = self._pacing
        if pacing is not None:
            pacing.leave()
        self._publish(None)
        self._listeners.clear()
        # Nothing is called back from now on: let go of the callbacks (bound methods of the
        # generation that owns this writer), so the two are freed by reference counting when
        # the answer ends, not at a full collection of the cyclic garbage collector with every
        # record they hold (see resumable_chat.tasks).
        self.on_stop_requested = self.on_failed = None
        if task is not None:
            forget_cancellation(task)

    def start(self) -> None:
        """Start the writer's task now (it also starts with the first record), so heartbeats
        run before the model's first chunk. Idempotent; needs a running loop."""
        if self._task is None and not self._closing:
            loop = self._event_loop = asyncio.get_running_loop()
            self._last_append = loop.time()
            self._task = loop.create_task(self._run(), name=f"resumable-chat writer {self.stream}")
            self._task.add_done_callback(self._ended)
            pacing = self._pacing
            if pacing is not None:  # left in _ended, once the task is done
                pacing.join()

    async def wait_writable(self) -> None:
        """Wait while more than ``max_pending_bytes`` are queued (bounded memory)."""
        while self._pending_bytes > self.max_pending_bytes and self.error is None:
            self._drained.clear()
            await self._drained.wait()

    async def close(self, final_records: Sequence[AppendRecord] = ()) -> None:
        """Submit ``final_records`` after everything queued and wait until all is stored.

        Waits as long as S2 keeps failing transiently (the writer retries). Raises
        :attr:`error` when the writer failed (:class:`FencedOutError` after a takeover).
        Idempotent once closed.
        """
        if not self._closing:
            for record in final_records:
                self.submit(record)
            self._closing = True
            if self._spaced is not None:
                _resolve(self._spaced)  # the rest goes out now
            if self._task is None and self._queue:
                self._task = asyncio.get_running_loop().create_task(self._run())
                self._task.add_done_callback(self._ended)
            self._wakeup.set()
        if self._task is None:
            self._ended(None)  # nothing was ever written: listeners are done too
        else:
            await asyncio.shield(self._task)
        if self.error is not None:
            raise self.error

    def cancel(self) -> None:
        """Like :meth:`aclose` without waiting: cancel the writer's task if it still runs."""
        self._closing = True
        if self._task is None:
            self._ended(None)
        elif not self._task.done():
            self._task.cancel()

    async def aclose(self) -> None:
        """Stop at once, dropping whatever is not stored yet (shutdown). Never raises."""
        self._closing = True
        task = self._task
        if task is None:
            self._ended(None)
        elif not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    # -- the writer's task ------------------------------------------------------------------

    async def _idle(self, seconds: float) -> None:
        """Wait until woken (a submit, close) or ``seconds`` pass; one timer, no task.

        At least 1 ms: a remainder that float rounding keeps just above zero must not spin."""
        loop = asyncio.get_running_loop()
        handle = loop.call_later(max(seconds, 0.001), self._wakeup.set)
        try:
            await self._wakeup.wait()
        finally:
            handle.cancel()

    async def _space(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        """Wait ``seconds`` before the next append, or until :meth:`close`. Records submitted
        meanwhile join the batch without waking the task (a submit sets ``_wakeup`` only)."""
        spaced = self._spaced = loop.create_future()
        handle = loop.call_later(seconds, _resolve, spaced)
        try:
            await spaced
        finally:
            handle.cancel()
            self._spaced = None

    def _spacing_s(self) -> float:
        """Seconds at least between the starts of two appends: ``append_spacing_ms``, or the
        basin's pacing when that is longer (:mod:`resumable_chat.s2.pacing`), the pacing
        held to half the heartbeat, so a busy answer's records stay as close together as an
        idle one's heartbeats (a lease is at least two heartbeats)."""
        pacing = self._pacing
        if pacing is None:
            return self.append_spacing_s
        paced = pacing.spacing_s()
        if self.heartbeat_s is not None:
            paced = min(paced, self.heartbeat_s / 2)
        return max(self.append_spacing_s, paced)

    def _batch_full(self) -> bool:
        """Enough is queued for a whole batch (``batch_size`` records, or S2's 1 MiB metered)."""
        queued = self._pending_bytes  # nothing is in flight while the writer spaces its appends
        return len(self._queue) >= self.batch_size or queued >= MAX_BATCH_METERED_BYTES

    def _beat_due(self, armed_for: float) -> None:
        """The heartbeat timer fired (armed for ``_last_append`` == ``armed_for``)."""
        self._beat = None
        if self._last_append == armed_for:  # nothing appended since: time to beat
            self._beat_now = True
        self._wakeup.set()  # else the loop re-arms for the new deadline

    def _arm_heartbeat(self, loop: asyncio.AbstractEventLoop) -> None:
        """One timer per heartbeat period, not one per wake-up: armed for the current
        ``_last_append`` and re-armed only when it fires after a newer append."""
        assert self.heartbeat_s is not None
        if self._beat is None:
            when = max(self._last_append + self.heartbeat_s, loop.time() + 0.001)
            self._beat = loop.call_at(when, self._beat_due, self._last_append)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self._loop(loop)
        finally:
            if self._beat is not None:
                self._beat.cancel()
                self._beat = None
            if self._flush is not None:  # an append without the task, due after its end
                self._flush.cancel()
                self._flush = None

    async def _loop(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                if self._beat_now:
                    self._beat_now = False
                    self.submit(AppendRecord(b""))  # heartbeat: keeps the lease fresh
                    continue
                self._wakeup.clear()
                if self.heartbeat_s is not None:
                    self._arm_heartbeat(loop)
                self._parked = True
                try:
                    await self._wakeup.wait()
                finally:
                    self._parked = False
                continue
            if self.linger_s > 0 and not self._closing and len(self._queue) < self.batch_size:
                deadline = loop.time() + self.linger_s
                while len(self._queue) < self.batch_size and not self._closing:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._wakeup.clear()
                    await self._idle(remaining)
            spacing = self._last_start + self._spacing_s() - loop.time()
            if spacing > 0 and not self._closing and not self._batch_full():
                await self._space(loop, spacing)
            entries, size = self._take_batch()
            self._last_start = loop.time()
            self._last_append = loop.time()
            stored = await self._store(entries, size)
            del entries  # not kept alive by this frame while the task waits for the next
            if not stored:
                return
            self._last_append = loop.time()

    def _append_soon(self) -> None:
        """Store what was queued while the task was parked, in this callback, when the basin
        appends synchronously (:meth:`Basin.append_nowait`) and nothing needs the task (the
        spacing, a linger, a heartbeat, the close). Otherwise, when the basin declines, or
        when the append fails (a condition mismatch: a stop or a takeover), the records go
        back to the head of the queue and the task takes over, as if it had been woken."""
        self._flush = None
        loop = self._event_loop or asyncio.get_running_loop()
        if (
            not self._parked
            or self._wakeup.is_set()
            or not self._queue
            or self._closing
            or self.error is not None
            or self.linger_s > 0
            or self._beat_now
            or loop.time()
            < self._last_start
            + (self.append_spacing_s if self._pacing is None else self._spacing_s())
        ):
            self._wakeup.set()
            return
        queue = self._queue
        if len(queue) == 1 and queue[0][2] == self._next_append_seq:  # one chunk, its own id
            entries = [queue.popleft()]
            size, records = entries[0][1], [entries[0][0]]
        else:
            entries, size = self._take_batch()
            records = self._records(entries)
        request = AppendInput(
            records, match_seq_num=self._next_append_seq, fencing_token=self.fencing_token
        )
        try:
            ack = self.basin.append_nowait(self.stream, request)
        except Exception:  # the task retries it and tells the failures apart
            ack = None
        if ack is None:
            self._queue.extendleft(reversed(entries))
            self._wakeup.set()
            return
        self._last_start = self._last_append = loop.time()
        self._acknowledged(ack, records, size)
        if self._queue:
            self._wakeup.set()

    def _take_batch(self) -> tuple[list[_Entry], int]:
        """The next batch off the queue (at most ``batch_size`` records and 1 MiB metered as
        appended, :meth:`_top_up`) and its size as submitted."""
        batch: list[_Entry] = []
        return batch, self._top_up(batch, 0)  # the first record always goes

    def _top_up(self, entries: list[_Entry], size: int) -> int:
        """Move queued records onto the batch ``entries`` (``size`` metered bytes as
        submitted) while it stays within ``batch_size`` records and 1 MiB metered as it will
        be appended at ``_next_append_seq`` (a record moved by an adopted stop gains an
        ``sse-id`` header: :func:`_moved_bytes`); return its new size as submitted (what
        :attr:`pending_bytes` counts)."""
        queue = self._queue
        seq = self._next_append_seq + len(entries)
        metered = self._metered(entries)
        while queue and len(entries) < self.batch_size:
            entry = queue[0]
            grown = entry[1] + _moved_bytes(entry, seq)
            if metered + grown > MAX_BATCH_METERED_BYTES and entries:
                break
            entries.append(queue.popleft())
            metered += grown
            size += entry[1]
            seq += 1
        return size

    def _metered(self, entries: list[_Entry]) -> int:
        """Metered bytes of the batch ``entries`` appended at ``_next_append_seq``."""
        seq = self._next_append_seq
        return sum(entry[1] + _moved_bytes(entry, seq + i) for i, entry in enumerate(entries))

    def _refit(self, entries: list[_Entry], size: int) -> int:
        """The batch ``entries`` (``size`` bytes as submitted) after an adopted stop moved
        its position: its tail back at the head of the queue while the records, grown by
        their ``sse-id`` headers, are over 1 MiB metered (the first one always stays), then
        topped up (:meth:`_top_up`); its new size as submitted."""
        seq = self._next_append_seq
        metered = 0
        for i, entry in enumerate(entries):
            metered += entry[1] + _moved_bytes(entry, seq + i)
            if metered > MAX_BATCH_METERED_BYTES and i > 0:
                back = entries[i:]
                del entries[i:]
                self._queue.extendleft(reversed(back))
                size -= sum(moved[1] for moved in back)
                break
        return self._top_up(entries, size)

    def _records(self, entries: list[_Entry]) -> list[AppendRecord]:
        """The batch as appended at ``_next_append_seq``: a data record stored later than
        the seq_num it was submitted at carries the id its live frame had."""
        out: list[AppendRecord] = []
        seq = self._next_append_seq
        for record, _, submitted in entries:
            if submitted != seq and classify(record) is RecordKind.DATA:
                header = (SSE_ID_HEADER, str(submitted + 1).encode())
                record = AppendRecord(record.body, (*record.headers, header), record.timestamp)
            out.append(record)
            seq += 1
        return out

    async def _store(self, entries: list[_Entry], size: int) -> bool:
        """Append ``entries`` (``size`` metered bytes) until stored; False when the writer
        failed (see :attr:`error`)."""
        records = self._records(entries)
        delay = self._retry_base_s
        bounded = self._append_timeout_s is not None  # until this batch abandoned a call
        while True:
            request = AppendInput(
                records, match_seq_num=self._next_append_seq, fencing_token=self.fencing_token
            )
            try:
                sent = await self._attempt(self.basin.append(self.stream, request), bounded)
                if isinstance(sent, _Abandoned):
                    bounded = False
                    delay = await self._backoff(delay)
                    continue
                ack = sent
            except (FencingTokenMismatchError, SeqNumMismatchError) as exc:
                if (
                    isinstance(exc, FencingTokenMismatchError)
                    and exc.expected_fencing_token == self._own_stop
                    and self.on_stop_requested is not None
                ):
                    self.on_stop_requested()  # now; the read below adopts the stop
                try:
                    verdict = await self._attempt(self._after_mismatch(records), bounded)
                    if isinstance(verdict, _Abandoned):
                        bounded = False
                        delay = await self._backoff(delay)
                        continue
                except S2Error as read_error:
                    if not is_transient(read_error):
                        self._fail(read_error)
                        return False
                    delay = await self._backoff(delay)
                    continue
                if isinstance(verdict, AppendAck):
                    ack = verdict
                elif verdict == "stopped":
                    # what was queued meanwhile (the stop terminal, the end fence) joins the
                    # batch: one append, not one round trip more
                    size = self._refit(entries, size)
                    records = self._records(entries)  # positions moved: ids change
                    continue
                else:
                    self._fail(FencedOutError(self.stream, verdict or _token_of(exc)))
                    return False
            except asyncio.CancelledError:
                raise
            except S2Error as exc:
                if not is_transient(exc):
                    self._fail(exc)
                    return False
                logger.debug("append to %s failed (%r); retrying", self.stream, exc)
                delay = await self._backoff(delay)
                continue
            except Exception as exc:
                self._fail(exc)
                return False
            self._acknowledged(ack, records, size)
            return True

    async def _attempt(self, call: Awaitable[_T], bounded: bool) -> _T | _Abandoned:
        """Await ``call``; when ``bounded``, give up on it after ``append_timeout_ms`` and
        return :data:`_ABANDONED` (it is cancelled: a request on a stalled connection is
        dropped with its connection)."""
        timeout_s = self._append_timeout_s
        if not bounded or timeout_s is None:
            return await call
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                return await call
        except TimeoutError:
            if not deadline.expired():
                raise
            logger.debug(
                "%s: no answer from S2 within %.3g s; sending again", self.stream, timeout_s
            )
            return _ABANDONED

    def _acknowledged(self, ack: AppendAck, records: list[AppendRecord], size: int) -> None:
        """Book a stored batch: kept, published to the listeners, the durable position."""
        self._keep(ack.start.seq_num, ack.end.timestamp, records)
        if self._listeners:
            start, timestamp = ack.start.seq_num, ack.end.timestamp
            self._publish(
                [
                    SequencedRecord(start + i, timestamp, r.headers, r.body)
                    for i, r in enumerate(records)
                ]
            )
        self._next_append_seq = ack.end.seq_num
        pending = self._pending_bytes = self._pending_bytes - size
        if pending > 0:
            self._unacked_since = (self._event_loop or asyncio.get_running_loop()).time()
        else:
            self._unacked_since = None
        if pending <= self.max_pending_bytes and not self._drained.is_set():
            self._drained.set()  # cleared only by a producer waiting in wait_writable

    async def _backoff(self, delay: float) -> float:
        await asyncio.sleep(delay * (1 + self._rng.random() / 4))
        return min(delay * 2, self._retry_max_s)

    async def _after_mismatch(self, records: list[AppendRecord]) -> AppendAck | str | None:
        """After a 412, read what follows our position and decide.

        Returns the rebuilt ack when our batch is there (an earlier attempt landed),
        ``"stopped"`` after adopting stop requests (only ``stop-`` fences follow us), or the
        stream's token (``None`` if unknown) when someone else wrote: we are fenced out.
        Raises ``S2Error`` when the read fails.
        """
        start = self._next_append_seq
        found = await read_range(self.basin, self.stream, start)
        # Our batch at our position can only be ours (only we hold the token it was
        # conditioned on): an earlier attempt landed, its ack lost, by our retry or by one the
        # basin made itself before a stop or a takeover fenced the stream behind it.
        if len(found) >= len(records):
            landed = found[: len(records)]
            if landed[0].seq_num == start and all(
                sent.body == got.body and tuple(sent.headers) == tuple(got.headers)
                for sent, got in zip(records, landed, strict=True)
            ):
                end = StreamPosition(start + len(records), landed[-1].timestamp)
                return AppendAck(StreamPosition(start, landed[0].timestamp), end, end)
        if found and found[0].seq_num == start:
            if all(classify(r) is RecordKind.STOP for r in found):
                self._publish(list(found))
                for record in found:
                    self._keep(record.seq_num, record.timestamp, (record,))
                self._adopt_stop(fence_token(found[-1]), len(found))
                return "stopped"
        tokens = [fence_token(r) for r in found if classify(r) not in _NOT_FENCES]
        return tokens[-1] if tokens else None

    def _adopt_stop(self, token: str, foreign: int) -> None:
        self._next_append_seq += foreign
        self._next_submit_seq += foreign
        self.fencing_token = token
        if self.on_stop_requested is not None:
            self.on_stop_requested()

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        dropped = len(self._queue)
        self._queue.clear()
        self._pending_bytes = 0
        self._unacked_since = None
        self._drained.set()
        if isinstance(exc, FencedOutError) and not exc.deleted:
            logger.info("%s; %d records dropped", exc, dropped)
        elif isinstance(exc, FencedOutError):
            logger.warning("%s under a running answer; %d records dropped", exc, dropped)
        else:
            logger.warning(
                "append to %s failed (%r); %d records dropped", self.stream, exc, dropped
            )
        if self.on_failed is not None:
            self.on_failed(exc)


class _Abandoned:
    """What :meth:`LogWriter._attempt` returns for a call it gave up on."""


_ABANDONED = _Abandoned()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _token_of(exc: S2Error) -> str | None:
    return exc.expected_fencing_token if isinstance(exc, FencingTokenMismatchError) else None
