"""The fenced batching writer: ordered, exactly-once appends of one generation's records.

DESIGN.md §3 and reference §1.5: one append in flight per stream; whatever is submitted while
it is in flight goes into the next batch (at most ``batch_size`` records and 1 MiB metered); an
optional linger timer holds the first record of an empty batch for up to ``linger_ms``. Every
batch carries the generation's fencing token and an exact ``match_seq_num``, so no other
writer can interleave and a retried append cannot duplicate records.

Submitting is synchronous and cheap (a deque append): the live path never waits on S2. One
task per writer does all the appending; there is no task or request per record.

Heartbeat (DESIGN.md §6.2): with ``heartbeat_ms`` set, a writer with nothing to append for that
long appends an empty record, so a generation whose model is silent keeps its lease fresh (a
claimer or follower takes a generation over only after a lease with no record) and still
notices a stop request from another instance within about ``heartbeat_ms``. Every reader skips
records with an empty body.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

from .s2.basin import Basin
from .s2.errors import FencingTokenMismatchError, S2Error
from .s2.records import (
    MAX_BATCH_METERED_BYTES,
    MAX_BATCH_RECORDS,
    AppendInput,
    AppendRecord,
    is_stop_fence,
    metered_bytes,
)

__all__ = ["LogWriter", "WriterClosedError"]

logger = logging.getLogger("resumable_chat.writer")

#: Default cap of metered bytes waiting to be appended before :meth:`LogWriter.wait_writable`
#: makes the producer wait (64 MiB): memory stays bounded when S2 is far slower than the model.
DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024


class WriterClosedError(RuntimeError):
    """Raised by :meth:`LogWriter.submit` after :meth:`LogWriter.close` was called."""


class LogWriter:
    """Appends one generation's records to ``stream`` in order, fenced and batched.

    Args:
        basin: where to append.
        stream: the S2 stream name.
        fencing_token: the generation's token (≤ 36 bytes); every batch carries it.
        match_seq_num: the seq_num the first submitted record must get (the claim's
            ``ack.end.seq_num``); later batches continue from it.
        batch_size: records per append, 1 to 1000.
        linger_ms: how long (ms, ≥ 0) the first record of an empty batch may wait for more
            before the batch is sent. 0 sends at once; batching then comes from records
            submitted while the previous append is in flight.
        max_pending_bytes: metered bytes queued before :meth:`wait_writable` blocks.
        heartbeat_ms: after this many ms (> 0) with nothing submitted, append an empty
            record; ``None`` (default): no heartbeat. Starts with :meth:`start` or the first
            submitted record and ends with :meth:`close`.

    After an append fails, later records are dropped and :attr:`error` holds the failure;
    a :class:`FencingTokenMismatchError` there means another writer took the stream over.
    A stop request from another instance (a ``stop-`` fence conditioned on this token) is
    not a failure: the writer adopts its token, keeps every record, and calls
    :attr:`on_stop_requested`. It notices the request at its next append.

    Raises ``ValueError`` for a ``batch_size`` outside 1..1000, a negative ``linger_ms`` or a
    ``heartbeat_ms`` that is not positive.
    """

    def __init__(
        self,
        basin: Basin,
        stream: str,
        *,
        fencing_token: str,
        match_seq_num: int,
        batch_size: int = MAX_BATCH_RECORDS,
        linger_ms: float = 0,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        heartbeat_ms: float | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_RECORDS:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH_RECORDS}, got {batch_size}")
        if not linger_ms >= 0:
            raise ValueError(f"linger_ms must be ≥ 0, got {linger_ms}")
        if heartbeat_ms is not None and not heartbeat_ms > 0:
            raise ValueError(f"heartbeat_ms must be > 0, got {heartbeat_ms}")
        self.basin = basin
        self.stream = stream
        self.fencing_token = fencing_token
        self.batch_size = batch_size
        self.linger_s = linger_ms / 1000
        self.max_pending_bytes = max_pending_bytes
        self.heartbeat_s = None if heartbeat_ms is None else heartbeat_ms / 1000
        self._last_append = 0.0
        self._queue: deque[tuple[AppendRecord, int]] = deque()
        self._pending_bytes = 0
        self._next_submit_seq = match_seq_num
        self._next_append_seq = match_seq_num
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._closing = False
        self.error: BaseException | None = None
        #: Called (in the writer's task) when another instance asked this generation to stop.
        self.on_stop_requested: Callable[[], object] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def next_seq_num(self) -> int:
        """The seq_num the next submitted record will get if every append succeeds."""
        return self._next_submit_seq

    @property
    def durable_seq_num(self) -> int:
        """One past the last record S2 has acknowledged."""
        return self._next_append_seq

    @property
    def pending_bytes(self) -> int:
        """Metered bytes submitted but not yet acknowledged."""
        return self._pending_bytes

    def submit(self, record: AppendRecord) -> int:
        """Queue ``record`` for the next batch and return the seq_num it will get.

        Never blocks and never raises S2 errors; after a failed append the record is
        dropped (see :attr:`error`). Raises :class:`WriterClosedError` after :meth:`close`
        and ``ValueError`` for a record over 1 MiB metered.
        """
        if self._closing:
            raise WriterClosedError("the writer is closed")
        size = metered_bytes(record)
        if size > MAX_BATCH_METERED_BYTES:
            raise ValueError(f"record is {size} metered bytes; S2 allows at most 1 MiB")
        seq = self._next_submit_seq
        self._next_submit_seq = seq + 1
        if self.error is not None:
            return seq
        self._queue.append((record, size))
        self._pending_bytes += size
        if self._task is None:
            self.start()
        if not self._wakeup.is_set():
            self._wakeup.set()
        return seq

    def start(self) -> None:
        """Start the writer's task now (it also starts with the first record), so the
        heartbeat runs even before the model's first chunk. Idempotent; needs a running loop.
        """
        if self._task is None and not self._closing:
            loop = asyncio.get_running_loop()
            self._last_append = loop.time()
            self._task = loop.create_task(self._run(), name=f"resumable-chat writer {self.stream}")

    async def wait_writable(self) -> None:
        """Wait while more than ``max_pending_bytes`` are queued (bounded memory)."""
        while self._pending_bytes > self.max_pending_bytes and self.error is None:
            self._drained.clear()
            await self._drained.wait()

    async def close(self, final_records: Sequence[AppendRecord] = ()) -> None:
        """Submit ``final_records`` after everything queued, flush, and wait for the acks.

        Raises the first append error, if any (e.g. :class:`FencingTokenMismatchError` when
        the stream was taken over). Idempotent once closed.
        """
        if not self._closing:
            for record in final_records:
                self.submit(record)
            self._closing = True
            if self._task is None and self._queue:
                self._task = asyncio.get_running_loop().create_task(self._run())
            self._wakeup.set()
        if self._task is not None:
            await asyncio.shield(self._task)
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        """Stop appending at once, dropping queued records (shutdown). Never raises."""
        self._closing = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def _take_batch(self) -> list[AppendRecord]:
        batch: list[AppendRecord] = []
        used = 0
        queue = self._queue
        while queue and len(batch) < self.batch_size:
            record, size = queue[0]
            if batch and used + size > MAX_BATCH_METERED_BYTES:
                break
            queue.popleft()
            batch.append(record)
            used += size
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                if self.heartbeat_s is None:
                    await self._wakeup.wait()
                    continue
                idle_for = loop.time() - self._last_append
                if idle_for >= self.heartbeat_s:
                    self.submit(AppendRecord(b""))  # heartbeat: keeps the lease fresh
                    continue
                try:
                    async with asyncio.timeout(self.heartbeat_s - idle_for):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass
                continue
            if self.linger_s > 0 and not self._closing and len(self._queue) < self.batch_size:
                deadline = loop.time() + self.linger_s
                while len(self._queue) < self.batch_size and not self._closing:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), remaining)
                    except TimeoutError:
                        break
            batch = self._take_batch()
            self._last_append = loop.time()
            batch_bytes = sum(metered_bytes(r) for r in batch)
            try:
                ack = await self.basin.append(
                    self.stream,
                    AppendInput(
                        batch,
                        match_seq_num=self._next_append_seq,
                        fencing_token=self.fencing_token,
                    ),
                )
            except asyncio.CancelledError:
                raise
            except FencingTokenMismatchError as exc:
                token = exc.expected_fencing_token
                if token.startswith("stop-") and await self._adopt_stop(token):
                    self._queue.extendleft(reversed([(r, metered_bytes(r)) for r in batch]))
                    continue
                self._fail(exc)
                return
            except Exception as exc:
                self._fail(exc)
                return
            self._next_append_seq = ack.end.seq_num
            self._pending_bytes -= batch_bytes
            if self._pending_bytes <= self.max_pending_bytes:
                self._drained.set()

    async def _adopt_stop(self, token: str) -> bool:
        """Take over a stop request's token when only stop fences were appended since us.

        Returns False (the writer then fails) when anything else was written.
        """
        try:
            tail = (await self.basin.check_tail(self.stream)).seq_num
            cursor, foreign = self._next_append_seq, 0
            while cursor < tail:
                batch = await self.basin.read(
                    self.stream, seq_num=cursor, count=min(1000, tail - cursor), wait=0
                )
                if not batch.records:
                    return False
                for record in batch.records:
                    if not is_stop_fence(record):
                        return False
                    foreign += 1
                cursor = batch.records[-1].seq_num + 1
        except S2Error:
            return False
        self._next_append_seq += foreign
        self._next_submit_seq += foreign
        self.fencing_token = token
        if self.on_stop_requested is not None:
            self.on_stop_requested()
        return True

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        dropped = len(self._queue)
        self._queue.clear()
        self._pending_bytes = 0
        self._drained.set()
        if isinstance(exc, FencingTokenMismatchError):
            logger.info(
                "stream %s was fenced by another writer; %d records dropped", self.stream, dropped
            )
        else:
            logger.warning(
                "append to %s failed (%r); %d records dropped", self.stream, exc, dropped
            )
