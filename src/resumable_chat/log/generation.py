"""One running generation: the producer's records through the fenced writer, and its end.

The engine starts a :class:`Generation` after a won claim. Its task calls the layer above's
:class:`Producer` to pump the model's output (the producer also feeds its live response:
persistence never sits on the live path), then ends the log with a terminal fence. How it ends
is its :data:`Outcome`:

- ``"end"``: the producer finished; ``end-`` fence.
- ``"stopped"``: a stop (here, or a ``stop-`` fence from another instance that the writer
  adopted) cancelled the producer; it appends its stop terminal; ``end-`` fence.
- ``"error"``: the producer raised, or S2 refused its records for good (auth, an invalid
  request, a missing basin: the writer failed with an error that retrying cannot cure, and
  the source is cancelled, as a stop cancels it); it appends its error terminal; ``error-``
  fence (tried once after such a failure). The live answer thus ends with the error the log
  holds instead of running on to an end no reader of the log will ever see.
- ``"lost"``: another instance took the stream over (after a lease of silence in the log);
  the writer is fenced out, the producer's live side ends with its error terminal, which is
  not stored (the taker stored its own).
- ``"abandoned"``: shutdown cancelled it before its end; nothing more is stored.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Literal

from resumable_chat.log.errors import FencedOutError
from resumable_chat.log.records import (
    END_PREFIX,
    ERROR_PREFIX,
    MAX_SAFE_INTEGER,
    fence,
    fence_token,
)
from resumable_chat.log.writer import LogWriter
from resumable_chat.s2.errors import S2Error
from resumable_chat.s2.records import AppendInput
from resumable_chat.tasks import forget_cancellation

if TYPE_CHECKING:
    from resumable_chat.log.claims import Claim
    from resumable_chat.log.engine import LogEngine

__all__ = [
    "SOURCE_CLOSE_TIMEOUT_S",
    "Generation",
    "Outcome",
    "Output",
    "Producer",
    "StopSignal",
    "close_source",
]

logger = logging.getLogger("resumable_chat.log")

Outcome = Literal["end", "stopped", "error", "lost", "abandoned"]

#: Seconds a source is given to end after a stop or takeover cancelled it; one still running
#: then (its cleanup on cancel hangs) is cancelled again, and again each such period.
SOURCE_CLOSE_TIMEOUT_S = 5.0


class StopSignal(asyncio.Event):
    """Set when the generation is asked to stop; sources may check it or ``await wait()``."""


class Output:
    """What a :class:`Producer` writes through: the generation's writer and stop signal."""

    __slots__ = ("signal", "writer")

    def __init__(self, writer: LogWriter, signal: StopSignal) -> None:
        self.writer = writer
        self.signal = signal

    def append(self, body: bytes) -> int:
        """Queue a data record with ``body`` (never blocks) and return its seq_num; its SSE
        id is that + 1. Raises ``ValueError`` for a record over 1 MiB metered."""
        return self.writer.submit_body(body)

    @property
    def next_seq_num(self) -> int:
        """The seq_num the next appended record gets."""
        return self.writer.next_seq_num

    async def wait_writable(self) -> None:
        """Wait while too many bytes are waiting for S2 (bounded memory)."""
        if self.writer.pending_bytes > self.writer.max_pending_bytes:
            await self.writer.wait_writable()


class Producer(ABC):
    """The layer above's side of one generation (the chat core's tee, a text stream's pump).

    The engine calls :meth:`run` (unless a stop came first), then at most one of
    :meth:`stopped` / :meth:`failed`, then :meth:`aclose` and :meth:`finished`, once each (an
    answer that ends normally closes its source first; one abandoned at shutdown ends its
    live side first). An exception from a hook after :meth:`run` is logged: the log gets
    its terminal fence all the same.
    """

    def claim_records(self) -> list[bytes]:
        """Bodies of data records to store in the claim's own append, right after its fence
        (the turn's message): they land atomically with the claim, so no reader ever sees a
        claimed turn without them. Called once, before the claim; default: none."""
        return []

    @abstractmethod
    async def run(self, output: Output) -> None:
        """Pump the source into ``output`` (and the live response). A stop cancels it; once
        ``output.signal`` is set it returns at the source's next item without using it (a
        source that swallowed the cancel still stops)."""

    def stopped(self, output: Output) -> None:  # noqa: B027 - optional hook
        """Append the stop terminal (the generation was stopped)."""

    def failed(self, error: BaseException, output: Output) -> None:  # noqa: B027
        """Append the error terminal for ``error`` (the source raised)."""

    def finished(self, outcome: Outcome) -> None:  # noqa: B027
        """The answer is over: end the live response (``"lost"``: with the error terminal,
        live only)."""

    async def aclose(self) -> None:  # noqa: B027
        """Release the source (called last, also when :meth:`run` never ran)."""


async def close_source(iterator: object) -> None:
    """Close a source's iterator (``aclose()``, awaited if it returns an awaitable), which
    ends the model request behind it; an exception while closing is logged, not raised."""
    close = getattr(iterator, "aclose", None)
    if close is None:
        return
    try:
        result = close()
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.debug("closing a source failed", exc_info=True)


def _stepping(task: asyncio.Task[None]) -> bool:
    """Whether the running event loop is stepping ``task`` now; False when no loop runs (a
    coroutine closed by the garbage collector after its loop was closed)."""
    try:
        return asyncio.current_task() is task
    except RuntimeError:
        return False


class Generation:
    """A generation this process runs on ``stream`` (built by :meth:`LogEngine.start`).

    ``claim``: the won claim; ``outcome``: how the answer ended (``None`` while it runs);
    ``task``: ends when the log is complete (or the writer gave up); ``signal``: the stop
    signal the producer's source sees.
    """

    def __init__(
        self,
        engine: LogEngine,
        stream: str,
        claim: Claim,
        producer: Producer,
        *,
        signal: StopSignal | None = None,
        turn_key: str | None = None,
    ) -> None:
        self.engine = engine
        #: the answered turn's key, carried by an ``end-`` terminal (answered once per message)
        self.turn_key = turn_key
        self.stream = stream
        self.claim = claim
        self.producer = producer
        self.signal = signal if signal is not None else StopSignal()
        config = engine.config
        self.writer = LogWriter(
            engine.basin,
            stream,
            fencing_token=claim.token,
            match_seq_num=claim.start_seq_num,
            batch_size=config.batch_size,
            linger_ms=config.linger_ms,
            heartbeat_ms=config.heartbeat_ms,
            retry_max_ms=min(1000, config.heartbeat_ms),
            # a request stuck on a stalled connection is sent again while half of what the
            # lease leaves after a heartbeat remains, so the retry lands before the lease ends
            append_timeout_ms=(config.lease_ms - config.heartbeat_ms) / 2,
            rng=engine.rng,
        )
        self.writer.on_stop_requested = self.stop
        self.writer.on_failed = self._writer_failed
        self.output = Output(self.writer, self.signal)
        self.outcome: Outcome | None = None
        self._stopping = False
        self._lost = False
        #: the writer's permanent failure (not a takeover) that ended the answer, if any
        self._storage_error: BaseException | None = None
        self._running = False
        self._finished = False
        self._abandoned = False  # given up on by abandon(): its end stores nothing
        self._again: asyncio.TimerHandle | None = None  # see _cancel_again_later
        engine.ownership.add(claim.token)
        self.task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self._run(), name=f"resumable-chat generation {stream}"
        )
        self.task.add_done_callback(self._done)

    def _finish(self, outcome: Outcome) -> None:
        """Set the outcome and end the producer's live side, once."""
        if self.outcome is None:
            self.outcome = outcome
        if not self._finished:
            self._finished = True
            try:
                self.producer.finished(self.outcome)
            except Exception:  # a bug above: the log's end must not depend on it
                logger.exception("ending the live side of the generation on %s failed", self.stream)

    def _done(self, task: asyncio.Task[None]) -> None:
        forget_cancellation(task)  # abandoned: no cycle through its traceback (see there)
        if self._again is not None:
            self._again.cancel()
        # A task cancelled before its first step never ran _run: end its live side here.
        self._finish("abandoned")
        self.writer.cancel()  # cancelled while storing its terminal: the writer goes too
        self.engine.ownership.discard(self.claim.token)

    @property
    def stopping(self) -> bool:
        """True once the generation was asked to stop (its answer is ending)."""
        return self._stopping

    def stop(self) -> bool:
        """Ask the generation to stop. True when its source was still running (the answer
        ends with the stop terminal), False when it had already ended."""
        if self.outcome is not None or self.task.done() or self._lost:
            return False
        if self._stopping:
            return True
        self._stopping = True
        self.signal.set()
        if self._running:
            self.task.cancel("stop")
            self._cancel_again_later()
        return True

    def _cancel_again_later(self) -> None:
        """After a stop's (or takeover's) cancel, cancel the source again every
        :data:`SOURCE_CLOSE_TIMEOUT_S` while it runs: a source whose cleanup on cancel awaits
        something that never comes (a model client that does not answer) is interrupted
        there, and the answer ends."""

        def again() -> None:
            if self._running and not self.task.done():
                logger.warning(
                    "the source of %s is still running %s s after it was cancelled; "
                    "cancelling it again",
                    self.stream,
                    SOURCE_CLOSE_TIMEOUT_S,
                )
                self.task.cancel("stop")
                self._cancel_again_later()

        if self._again is not None:
            self._again.cancel()
        self._again = asyncio.get_running_loop().call_later(SOURCE_CLOSE_TIMEOUT_S, again)

    async def abandon(self) -> None:
        """Give up on a generation whose task does not end (its source ignores cancellation):
        end its live response and stop its writer, so its lease runs out and another instance
        closes it; nothing more is stored."""
        self._abandoned = True
        self._finish("abandoned")
        await self.writer.aclose()
        self.engine.ownership.discard(self.claim.token)

    def sent_live(self, cursor: int) -> bool:
        """Whether SSE id ``cursor`` may have been sent live already (live frames go out
        before their records are stored)."""
        return cursor <= self.writer.next_seq_num

    def _writer_failed(self, error: BaseException) -> None:
        """The writer gave up: a takeover (``FencedOutError``) makes the answer lost; any
        other failure (S2 refused the records for good) ends it with the error terminal,
        unless it is already ending (stopped, lost, ended)."""
        if self.outcome is not None or self._lost:
            return
        if isinstance(error, FencedOutError):
            self._lost = True
        elif self._stopping or self._storage_error is not None:
            return
        else:
            self._storage_error = error
        self.signal.set()
        if self._running:
            self.task.cancel("lost" if self._lost else "storage failed")
            self._cancel_again_later()

    def _ended_early(self) -> bool:
        """True when a stop, a takeover or a storage failure cancelled the source."""
        return self._stopping or self._lost or self._storage_error is not None

    def _early_outcome(self, output: Output) -> Outcome:
        """The outcome of an answer cut short (:meth:`_ended_early`), its terminal chunks
        emitted: lost (none: the taker stored its own), failed storage (the error terminal,
        live only), or stopped (the stop terminal)."""
        if self._lost:
            return "lost"
        if self._storage_error is not None:
            self._terminal_chunks(output, self._storage_error)
            return "error"
        self._terminal_chunks(output, None)
        return "stopped"

    def _terminal_chunks(self, output: Output, error: BaseException | None) -> None:
        """Have the producer append its error terminal for ``error``, or its stop terminal
        (``None``). A producer that raises while it makes them (a bug above it, an error
        text it cannot encode) is logged and the answer ends without them: its log still
        gets the terminal fence and its live response still ends, so readers and the next
        turn do not wait out a lease for a generation that is over."""
        try:
            if error is None:
                self.producer.stopped(output)
            else:
                self.producer.failed(error, output)
        except Exception:
            logger.exception(
                "the %s terminal of the generation on %s could not be made; its log ends"
                " with the fence alone",
                "stop" if error is None else "error",
                self.stream,
            )

    async def _run(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        producer, output = self.producer, self.output
        self.writer.start()  # heartbeats while the model is silent, from the claim on
        outcome: Outcome
        try:
            if self._ended_early():
                outcome = self._early_outcome(output)
            else:
                self._running = True
                try:
                    await producer.run(output)
                    if self._ended_early():
                        # The source swallowed the cancel of a stop, takeover or storage
                        # failure; the producer returned at its next chunk (Producer.run): end
                        # as the cancel would.
                        while task.cancelling():
                            task.uncancel()
                    if self._abandoned:
                        outcome = "abandoned"  # left behind by aclose: store nothing
                    elif self._ended_early():
                        outcome = self._early_outcome(output)
                    else:
                        outcome = "end"
                except asyncio.CancelledError as exc:
                    if self._abandoned or (task.cancelling() and not self._ended_early()):
                        await self._abandon()  # shutdown
                        raise
                    if self._ended_early():
                        while task.cancelling():
                            task.uncancel()
                        outcome = self._early_outcome(output)
                    else:
                        # Nobody cancelled this task: the source raised a CancelledError
                        # of its own (a cancel scope of a library it uses, a future another
                        # task cancelled). A failure of the source, not a shutdown: ended
                        # as one, or the log stays open until a lease runs out.
                        outcome = "error"
                        logger.warning("source of %s failed: %r", self.stream, exc)
                        self._terminal_chunks(output, exc)
                except (Exception, GeneratorExit) as exc:
                    if isinstance(exc, GeneratorExit) and not _stepping(task):
                        raise  # this coroutine is being closed (its loop is gone): no awaits
                    # (a GeneratorExit raised while the loop steps this task came from the
                    # source itself: a failure like any other, or the writer would keep
                    # heartbeating an answer nobody runs and the chat answer 409 for good)
                    if self._abandoned:
                        outcome = "abandoned"
                    elif self._storage_error is not None:
                        # the source raised on its cancel (storage failed): that error stands
                        outcome = self._early_outcome(output)
                    else:
                        outcome = "error"
                        logger.warning("source of %s failed: %r", self.stream, exc)
                        self._terminal_chunks(output, exc)
                finally:
                    self._running = False
        finally:
            try:
                await producer.aclose()
            except Exception:  # the source's own close errors are logged by close_source
                logger.exception("releasing the source of %s failed", self.stream)
        self._finish(outcome)
        if outcome != "abandoned":
            await self._store_terminal(outcome)

    async def _store_terminal(self, outcome: Outcome) -> None:
        engine, writer = self.engine, self.writer
        if outcome == "lost":
            await writer.aclose()
            return
        if outcome == "error":
            terminal = fence(ERROR_PREFIX, engine.rng)
        else:
            terminal = fence(END_PREFIX, engine.rng, turn_key=self.turn_key)
        try:
            await writer.close([terminal])
        except FencedOutError as exc:
            if exc.deleted:
                logger.warning(
                    "the stream of the generation on %s was deleted before its answer ended; "
                    "the answer is not stored",
                    self.stream,
                )
            else:
                logger.info("generation on %s was taken over before it ended", self.stream)
            return
        except S2Error as exc:
            await self._end_after_permanent_failure(exc)
            return
        engine.remember_claim_hint(self.stream, writer.durable_seq_num, fence_token(terminal))
        mode = engine.config.mode
        if mode == "single-use" or (mode == "shared" and self.claim.fence_seq_num > 0):
            below = MAX_SAFE_INTEGER if mode == "single-use" else self.claim.fence_seq_num
            engine.trim_later(self.stream, fence_token(terminal), writer.durable_seq_num, below)

    async def _end_after_permanent_failure(self, exc: S2Error) -> None:
        """S2 refused an append for good (auth, invalid, missing basin): try once to close the
        log with an ``error-`` fence, so readers see a failed answer, and log the cause."""
        writer = self.writer
        try:
            await self.engine.basin.append(
                self.stream,
                AppendInput(
                    [fence(ERROR_PREFIX, self.engine.rng)], fencing_token=writer.fencing_token
                ),
            )
        except S2Error:
            pass
        logger.error(
            "persisting %s failed (%s); %d records were not stored",
            self.stream,
            exc,
            writer.next_seq_num - writer.durable_seq_num,
        )

    async def _abandon(self) -> None:
        """Shutdown without a stop: end the live response, drop unpersisted records."""
        try:
            self._finish("abandoned")
        finally:
            await self.writer.aclose()
