"""The log engine: the one implementation of the generation protocol over an S2 basin.

claim (per mode) → fenced, ordered data appends with heartbeats → a terminal fence (end, error,
stop) or a takeover after a lease of silence → readers that follow to the terminal. The chat
core (both protocols and the AG-UI runs) and the generic text streams run on it; it never sees
a protocol: the layer above gives it a :class:`~.generation.Producer` per generation and a
:data:`~.takeover.LostTerminal` for closing lost generations.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from resumable_chat.clock import SYSTEM_CLOCK, Clock
from resumable_chat.log.abandoned import settle_abandoned_claim
from resumable_chat.log.claims import MODES, Claim, Mode, claim_stream
from resumable_chat.log.errors import StreamInUseError
from resumable_chat.log.faults import is_transient
from resumable_chat.log.follow import LogEvent, follow_log
from resumable_chat.log.generation import Generation, Producer, StopSignal
from resumable_chat.log.ownership import PROCESS_OWNERSHIP, Ownership
from resumable_chat.log.records import (
    CLAIM_PREFIX,
    MAX_SAFE_INTEGER,
    STOP_PREFIX,
    RecordKind,
    classify,
    fence_token,
    stop_token,
)
from resumable_chat.log.scan import (
    LatestGeneration,
    OpenGeneration,
    latest_generation,
    latest_generation_or_token,
)
from resumable_chat.log.takeover import LostTerminal, close_lost, confirm_silence
from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import (
    FencingTokenMismatchError,
    S2Error,
    S2UnavailableError,
    SeqNumMismatchError,
)
from resumable_chat.s2.records import AppendInput, SequencedRecord, fence_record, trim_record

__all__ = [
    "CLOSE_GRACE_S",
    "MAX_ABANDONED_CLAIMS",
    "MAX_SAFE_INTEGER",
    "LogConfig",
    "LogEngine",
    "Status",
]

#: Abandoned claims one engine watches at most (:meth:`LogEngine.abandoned_claim`).
MAX_ABANDONED_CLAIMS = 1000

logger = logging.getLogger("resumable_chat.log")

#: Streams whose end after their last stored terminal the engine remembers (claim hints).
CLAIM_HINTS = 10_000

#: Seconds :meth:`LogEngine.aclose` gives stopped generations to store their terminal, and
#: then cancelled ones to end, before it gives up on them.
CLOSE_GRACE_S = 2.0


#: What :meth:`LogEngine.status` reports besides ``None``.
Status = Literal["active", "done", "failed"]
WaitUntil = Callable[[Awaitable[None]], Any]


@dataclass(frozen=True, slots=True)
class LogConfig:
    """How an engine runs generations.

    ``mode``: claim rules (:mod:`.claims`). ``lease_ms``: ms without any record after which
    another instance may judge a generation lost. ``heartbeat_ms``: ms of writer idleness
    before it appends an empty record (≤ ``lease_ms / 2``). ``batch_size`` (records, 1-1000)
    and ``linger_ms`` (ms ≥ 0): the writer's batching. ``confirm_ms``: the long-poll window
    in which a judge waits for a record before closing a silent generation (default: two
    heartbeat intervals, :attr:`confirm_s`). ``trim_delay_ms``: single-use and shared modes
    trim this long after a generation's terminal (:meth:`LogEngine.trim_later`).
    """

    mode: Mode = "session"
    lease_ms: int = 5000
    heartbeat_ms: float = 1000
    batch_size: int = 1000
    linger_ms: float = 0
    confirm_ms: float | None = None
    trim_delay_ms: float = 30_000

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not 1 <= self.batch_size <= 1000:
            raise ValueError(f"batch_size must be 1 to 1000, got {self.batch_size}")
        if not self.linger_ms >= 0:
            raise ValueError(f"linger_ms must be ≥ 0, got {self.linger_ms}")
        if not self.lease_ms > 0:
            raise ValueError(f"lease_ms must be > 0, got {self.lease_ms}")
        if not 0 < self.heartbeat_ms <= self.lease_ms / 2:
            raise ValueError(
                f"heartbeat_ms must be > 0 and ≤ lease_ms / 2, got {self.heartbeat_ms}"
            )

    @property
    def confirm_s(self) -> float:
        """The confirmation window in seconds: ``confirm_ms``, by default two heartbeat
        intervals (``2 * heartbeat_ms``).

        A live writer appends at least a heartbeat every ``heartbeat_ms``, so within the
        default window its tail always moves, whatever the judge's clock says: a judge whose
        clock runs ahead of S2's (which stamps the records) sees the lease expire too early,
        and the window still keeps it from closing a writer that lives. It is also at least
        two of the writer's longest retry backoffs (``min(heartbeat_ms, 1000)`` ms each), so a
        writer that was cut off from S2 lands first once S2 answers again."""
        ms = self.confirm_ms if self.confirm_ms is not None else 2 * self.heartbeat_ms
        return ms / 1000


class _Follow(Protocol):
    """What the engine holds of an open follow (:class:`~.follow._Feed`)."""

    def end(self) -> None: ...


class _PendingClaim:
    """Stands in the local registry while a claim is in flight, so a stop is not lost;
    ``settled`` is set once the claim is decided; ``failure`` is the S2 error it failed
    with, if it did."""

    __slots__ = ("failure", "settled", "stopped")

    def __init__(self) -> None:
        self.stopped = False
        self.settled = asyncio.Event()
        self.failure: S2Error | None = None

    def stop(self) -> bool:
        self.stopped = True
        return True


class LogEngine:
    """Generations on one basin (see the module docstring).

    Args:
        basin: where the logs live.
        config: the :class:`LogConfig`.
        lost_terminal: builds the terminal records of a generation closed after its writer
            went silent (:data:`~.takeover.LostTerminal`).
        clock: the time source (record timestamps vs lease).
        ownership: the process's registry of running generations (one per simulated instance
            in simulations).
        rng: randomness for tokens and jitter (seeded in simulations; ``None``: secure
            tokens, unseeded jitter).
    """

    def __init__(
        self,
        basin: Basin,
        config: LogConfig,
        *,
        lost_terminal: LostTerminal = lambda stream, bodies: [],
        clock: Clock = SYSTEM_CLOCK,
        ownership: Ownership = PROCESS_OWNERSHIP,
        rng: random.Random | None = None,
    ) -> None:
        self.basin = basin
        self.config = config
        self.lost_terminal = lost_terminal
        self.clock = clock
        self.ownership = ownership
        self.rng = rng
        self._local: dict[str, Generation | _PendingClaim] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._claim_hints: dict[str, tuple[int, str]] = {}  # oldest first
        self._abandoned: dict[str, str] = {}  # claim token -> stream (abandoned_claim)
        self._follows: set[_Follow] = set()  # the feeds of open follows (follow.py)

    # -- judging -------------------------------------------------------------------------

    def lease_expired(self, timestamp_ms: int) -> bool:
        """True when a record written at ``timestamp_ms`` is a lease old or older."""
        return self.clock.now_ms() - timestamp_ms >= self.config.lease_ms

    async def close_if_lost(
        self, stream: str, latest: LatestGeneration, *, watched_silent: bool = False
    ) -> bool:
        """Close ``latest`` if it is lost (:mod:`.takeover`: not ours, a lease silent, and
        silent through the confirmation window; or a claim this process gave up on,
        :meth:`abandoned_claim`, at once: nothing runs under it). Returns True when it is
        closed now (by us or by someone else meanwhile), False while it stands. Raises
        ``S2Error``.

        ``watched_silent``: the caller read the stream and got no record for a lease of this
        event loop's time, and ``latest`` was read after that with nothing past what it got
        (a follower's watchdog, :meth:`judge`). The lease is then over whatever this host's
        wall clock says of the records' S2 timestamps, so a clock behind S2's does not
        delay the close; the confirmation window still applies."""
        if not latest.active:
            return True
        if self.ownership.runs(latest.claim_token):
            return False
        if latest.claim_token not in self._abandoned:
            if not watched_silent and not self.lease_expired(latest.tail.timestamp):
                return False
            if not await confirm_silence(self.basin, stream, latest.tail, self.config.confirm_s):
                # The tail moved: the writer came back, or another instance closed it.
                return not (await latest_generation(self.basin, stream)).active
        if await close_lost(self.basin, stream, latest, self.lost_terminal, rng=self.rng):
            return True
        return not (await latest_generation(self.basin, stream)).active

    def abandoned_claim(self, stream: str, request: AppendInput) -> None:
        """The claim ``request`` on ``stream`` failed with a transient S2 error and may
        still land: watch for it and close it as soon as it does
        (:func:`~.abandoned.settle_abandoned_claim`, in a task this engine owns), and let
        :meth:`close_if_lost` close it at once while it is watched. At most
        :data:`MAX_ABANDONED_CLAIMS` are watched at a time (an outage fails many turns);
        past that, a landed one waits for the takeover. Never raises; no-op after
        :meth:`aclose`."""
        if self._closed or len(self._abandoned) >= MAX_ABANDONED_CLAIMS or not request.records:
            return
        token = fence_token(request.records[0])
        self._abandoned[token] = stream
        task = asyncio.get_running_loop().create_task(
            settle_abandoned_claim(self, stream, request),
            name=f"resumable-chat abandoned claim {stream}",
        )
        self._tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self._abandoned.pop(token, None)

        task.add_done_callback(done)

    async def judge(self, stream: str, position: int) -> bool:
        """For a reader at ``position`` that heard nothing for a lease: is a generation still
        open, or its end still ahead of the reader? Closes a lost one first (its terminal then
        reaches the reader), judging the lease by the reader's own wait when the tail is at
        ``position`` (``watched_silent`` of :meth:`close_if_lost`). S2 errors are logged and
        count as open (keep following).

        A generation that ended while the reader waited is "open" for it as long as the
        terminal is at or past ``position``: the reader must still get the records up to it
        (the verdict can arrive after the terminal was stored, before the reader has it)."""
        try:
            latest = await latest_generation(self.basin, stream)
            if not latest.active:
                terminal = latest.terminal
                return terminal is not None and terminal.seq_num >= position
            if latest.tail.seq_num > position:
                return True  # records the follow has not delivered yet
            # nothing past what the reader got, which it got a lease ago or more
            await self.close_if_lost(stream, latest, watched_silent=latest.tail.seq_num == position)
        except S2Error as exc:
            logger.warning("checking %s for a lost generation failed: %r", stream, exc)
        return True

    async def latest(self, stream: str, *, settle: bool = False) -> LatestGeneration:
        """The latest generation of ``stream``; with ``settle``, a lost one is closed first
        and the result read again. Raises ``S2Error``."""
        latest = await latest_generation(self.basin, stream)
        if settle and latest.active and await self.close_if_lost(stream, latest):
            latest = await latest_generation(self.basin, stream)
        return latest

    async def status(self, stream: str) -> Status | None:
        """``None`` (no generation), ``"active"``, ``"done"`` (ended with ``end-``) or
        ``"failed"`` (``error-``, or open and silent for a lease in another process).
        Writes nothing. Raises ``S2Error``.

        The lease is judged by this host's clock alone (:meth:`lease_expired`), with no
        confirmation window: on a host whose clock runs ahead of S2's, a live generation of
        another process may read ``"failed"``; a claim (:meth:`close_if_lost`) confirms
        before it closes anything."""
        latest = await latest_generation(self.basin, stream)
        if latest.terminal is not None:
            return "done" if classify(latest.terminal) is RecordKind.END else "failed"
        if latest.claim is None:
            return None
        if self.ownership.runs(latest.claim_token) or not self.lease_expired(latest.tail.timestamp):
            return "active"
        return "failed"

    # -- generations ---------------------------------------------------------------------

    def generation(self, stream: str) -> Generation | None:
        """The generation this engine runs on ``stream``, if any."""
        entry = self._local.get(stream)
        return entry if isinstance(entry, Generation) else None

    async def claim(
        self,
        stream: str,
        *,
        new_chat: bool = False,
        records: Sequence[bytes] = (),
        turn_key: str | None = None,
    ) -> Claim:
        """Claim ``stream`` (:func:`~.claims.claim_stream`), storing ``records`` (data
        record bodies) in the claim's append; ``turn_key``: refuse when the latest answer
        answered this turn (see there). Raises ``StreamInUseError`` or ``S2Error``."""
        return await claim_stream(
            self, stream, new_chat=new_chat, records=records, turn_key=turn_key
        )

    def claim_hint(self, stream: str) -> tuple[int, str] | None:
        """``(tail seq_num, fencing token)`` of ``stream`` right after the last terminal this
        engine stored on it, if it remembers one (a guess for a one-round-trip claim)."""
        return self._claim_hints.get(stream)

    def remember_claim_hint(self, stream: str, tail: int, token: str) -> None:
        """Remember ``stream``'s end after a terminal this engine stored (the most recent
        :data:`CLAIM_HINTS` streams are kept)."""
        hints = self._claim_hints
        hints.pop(stream, None)
        hints[stream] = (tail, token)
        if len(hints) > CLAIM_HINTS:
            del hints[next(iter(hints))]

    def forget_claim_hint(self, stream: str) -> None:
        """Drop ``stream``'s hint (it proved wrong, or the stream changed)."""
        self._claim_hints.pop(stream, None)

    async def start(
        self,
        stream: str,
        producer: Producer,
        *,
        signal: StopSignal | None = None,
        wait_until: WaitUntil | None = None,
        new_chat: bool = False,
        turn_key: str | None = None,
    ) -> Generation:
        """Claim ``stream`` and run ``producer`` as its new generation.

        ``new_chat``: the caller expects an unused stream (see :func:`~.claims.claim_stream`).
        ``turn_key``: the turn is answered once (:func:`~.records.turn_key` of its message):
        the claim is refused when the stream's latest answer ended having answered it, and
        this answer's ``end-`` terminal carries it (see :func:`~.claims.claim_stream`).

        A generation of this engine whose answer ended or is being stopped (here, or by a
        ``stop-`` fence another instance appended, which is checked with one S2 read) is
        waited for (up to a lease), so a turn sent right after the previous answer's end or a
        stop's 202 does not get 409; when S2 has not stored its end by then,
        ``S2UnavailableError`` (the routes answer 503 with ``Retry-After``). ``wait_until``
        gets the generation's task (serverless hosts); when it raises, the generation is
        stopped (its stop terminal still stored) and the error propagates.

        Raises :class:`StreamInUseError` (the producer is closed unread), ``S2Error`` (the
        claim failed, or the previous end is not stored; the producer is closed) or
        ``RuntimeError`` after :meth:`aclose`.
        """
        if self._closed:
            await producer.aclose()
            raise RuntimeError("this engine is closed")
        running = self._local.get(stream)
        if isinstance(running, Generation) and running.outcome is None and not running.stopping:
            # busy, unless another instance asked it to stop (its writer adopts that at its
            # next append): then stop it now and wait for its end like any ending answer
            if not await self._stop_requested(stream):
                await producer.aclose()
                raise StreamInUseError(stream)
            running.stop()
        if isinstance(running, Generation) and (running.outcome is not None or running.stopping):
            await asyncio.wait([running.task], timeout=self.config.lease_ms / 1000)
            if self._closed:
                await producer.aclose()
                raise RuntimeError("this engine is closed")
            if self._local.get(stream) is running:
                # The answer has ended, S2 has not stored its end yet: not a chat in use
                # (409 tells the client to give up) but a slow S2 (503, try again).
                await producer.aclose()
                raise S2UnavailableError(
                    f"the previous answer on {stream!r} is still being stored: S2 has not "
                    f"acknowledged its end within {self.config.lease_ms} ms"
                )
        if stream in self._local:
            await producer.aclose()
            raise StreamInUseError(stream)
        pending = self._local[stream] = _PendingClaim()
        try:
            if not self.basin.in_memory:
                # One loop turn before the claim's request: a task the caller started for
                # this answer (the chat core's first fetch from the model) sends its own
                # request first. Building an S2 request takes 1.5-4 ms of CPU after an idle
                # spell (bench: added first-chunk time at S2 Standard latency, 1 s first
                # token: +5.7-6.5 ms before, +1.4-2.1 ms with this, one request at a time);
                # the model's time to first token should not start after it. An in-memory
                # claim lands within this step: no turn. The stream is marked pending
                # already, so a second turn on it meanwhile gets StreamInUseError before its
                # model is called.
                await asyncio.sleep(0)
            claim = await self.claim(
                stream, new_chat=new_chat, records=producer.claim_records(), turn_key=turn_key
            )
        except BaseException as exc:
            if isinstance(exc, S2Error):
                pending.failure = exc
            await producer.aclose()
            raise
        finally:
            if self._local.get(stream) is pending:
                del self._local[stream]
            pending.settled.set()  # waiters run after the generation below is registered
        generation = Generation(self, stream, claim, producer, signal=signal, turn_key=turn_key)
        if pending.stopped:
            generation.stop()
        self._local[stream] = generation
        self._tasks.add(generation.task)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            if self._local.get(stream) is generation:
                del self._local[stream]
            if wait_until is None and not task.cancelled() and task.exception() is not None:
                logger.error("persisting %s failed", stream, exc_info=task.exception())

        generation.task.add_done_callback(done)
        if wait_until is not None:
            try:
                wait_until(generation.task)
            except BaseException:
                # nobody will answer with it or keep it alive: end it (its stop is stored)
                generation.stop()
                raise
        return generation

    async def claim_settled(self, stream: str) -> None:
        """Wait until a claim this engine has in flight on ``stream`` is decided (at once
        when there is none): then :meth:`generation` and the log say who won."""
        pending = self._local.get(stream)
        if isinstance(pending, _PendingClaim):
            await pending.settled.wait()

    async def _stop_requested(self, stream: str) -> bool:
        """Whether the stream's fencing token is a ``stop-`` fence (a stop request for the
        generation this process runs on it, not adopted yet); False when S2 cannot tell."""
        try:
            found = await latest_generation_or_token(self.basin, stream)
        except S2Error:
            return False
        return (found.token or "").startswith(STOP_PREFIX)

    async def request_stop(self, stream: str) -> bool:
        """Stop the generation on ``stream``, wherever it runs.

        Here: its source is cancelled at once (while this process's claim is in flight, once
        the claim is decided: a won claim's generation stops before its model is called, and
        after a lost one the generation that holds the stream is stopped). Elsewhere: a
        ``stop-`` fence naming the generation's claim
        (:func:`~resumable_chat.log.records.stop_token`) and conditioned on its claim token
        goes to the stream; the writer there sees it at its next append
        (within a heartbeat when the model is silent), stops its model and adopts it. A lost
        generation is closed instead. Returns True when a running generation was asked to
        stop (or already was), False when none runs. Raises ``S2Error``;
        ``S2UnavailableError`` at once when this process's claim in flight failed on a
        transient S2 error (S2 is not answering: a stop would wait a deadline again).
        """
        local = self._local.get(stream)
        if isinstance(local, _PendingClaim):
            # Our claim decides who runs the answer: if it wins, stop ours (before its model
            # is called); if it loses, the running generation is elsewhere: stop that one.
            local.stop()
            await local.settled.wait()
            if local.failure is not None and is_transient(local.failure):
                # S2 did not answer that claim within its deadline: the stop would wait as
                # long again (the route's 503 comes now; the claim, if S2 stores it later,
                # is closed by abandoned_claim)
                raise S2UnavailableError(
                    f"S2 did not answer the claim in flight on {stream!r}: the stop cannot "
                    "be stored now"
                ) from local.failure
            local = self._local.get(stream)
        if local is not None:
            stopped = local.stop()
            if (
                stopped
                and isinstance(local, Generation)
                and asyncio.current_task() is not local.task
            ):
                # answered once the stopped answer's end is stored (up to a lease), so the
                # next turn, on any instance, finds the chat free
                await asyncio.wait([local.task], timeout=self.config.lease_ms / 1000)
            return stopped
        found = await latest_generation_or_token(self.basin, stream)
        if isinstance(found, OpenGeneration):  # a long answer: its claim is far behind
            token = found.token
            if token.startswith(STOP_PREFIX):
                return True  # a stop request is already in the log
            if not token.startswith(CLAIM_PREFIX):
                return False  # it ended since (or a foreign writer fenced the stream)
            if self.ownership.runs(token) or not self.lease_expired(found.tail.timestamp):
                return await self._append_stop(stream, token)
            found = await latest_generation(self.basin, stream)  # judged with its claim
        latest = found
        claim = latest.claim_token
        if not latest.active or claim is None:
            return False
        if latest.token != claim:
            return True  # a stop request is already in the log
        if not self.ownership.runs(claim) and self.lease_expired(latest.tail.timestamp):
            if await self.close_if_lost(stream, latest):
                return False
        return await self._append_stop(stream, claim)

    async def _append_stop(self, stream: str, claim: str) -> bool:
        """Append the ``stop-`` fence of the generation claimed with ``claim``, conditioned
        on that token; True when it landed or another stop did first."""
        request = AppendInput([fence_record(stop_token(claim))], fencing_token=claim)
        try:
            await self.basin.append(stream, request)
        except FencingTokenMismatchError as exc:
            return exc.expected_fencing_token.startswith(STOP_PREFIX)
        return True

    def trim_later(self, stream: str, token: str, end: int, below: int) -> None:
        """Trim records below seq_num ``below`` of ``stream`` after ``trim_delay_ms``,
        conditioned on the finished generation's terminal ``token`` and tail ``end`` (a newer
        generation's own trim covers more); skipped on shutdown (S2 retention cleans up).

        Single-use mode trims everything (``below`` = ``MAX_SAFE_INTEGER``), shared mode the
        generations before the finished one. Trimming later than upstream (which trims at
        the claim or the end) lets followers that are a few records behind read to the end.
        """

        async def trim() -> None:
            await asyncio.sleep(self.config.trim_delay_ms / 1000)
            request = AppendInput([trim_record(below)], match_seq_num=end, fencing_token=token)
            try:
                ack = await self.basin.append(stream, request)
            except (FencingTokenMismatchError, SeqNumMismatchError):
                return
            except S2Error as exc:
                logger.info("trimming the finished stream %s failed: %r", stream, exc)
                return
            if self.claim_hint(stream) == (end, token):  # the trim record moved the tail
                self.remember_claim_hint(stream, ack.end.seq_num, token)

        task = asyncio.get_running_loop().create_task(trim(), name=f"resumable-chat trim {stream}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- reading -------------------------------------------------------------------------

    def follow(
        self,
        stream: str,
        start: int,
        *,
        until_closed: bool,
        open_generation: bool | None = None,
        skip_ids_through: int | None = None,
        from_oldest_kept: bool = False,
        known: Sequence[SequencedRecord] = (),
    ) -> AsyncGenerator[list[LogEvent], None]:
        """Follow ``stream`` from ``start``, a list of events per read batch
        (:func:`~.follow.follow_log`; ``known``: records from ``start`` read already)."""
        return follow_log(
            self,
            stream,
            start,
            until_closed=until_closed,
            open_generation=open_generation,
            skip_ids_through=skip_ids_through,
            from_oldest_kept=from_oldest_kept,
            known=known,
        )

    def opened(self, follow: _Follow) -> None:
        """A follow of this engine started (:func:`~.follow.follow_log`); :meth:`aclose` ends
        it. One that starts after :meth:`aclose` is ended at once."""
        self._follows.add(follow)
        if self._closed:
            follow.end()

    def closed(self, follow: _Follow) -> None:
        """A follow of this engine ended."""
        self._follows.discard(follow)

    def sent_live(self, stream: str, cursor: int) -> bool:
        """Whether SSE id ``cursor`` may have been sent live by this engine's running
        generation on ``stream`` but not stored yet."""
        generation = self.generation(stream)
        return generation is not None and generation.sent_live(cursor)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> list[Generation]:
        """The generations this engine runs now."""
        return [g for g in self._local.values() if isinstance(g, Generation)]

    @property
    def claiming(self) -> list[str]:
        """The streams this engine has a claim in flight on (see :meth:`claim_settled`)."""
        return [stream for stream, g in self._local.items() if isinstance(g, _PendingClaim)]

    async def aclose(self, *, drain_timeout_s: float = 10.0, stop_remaining: bool = True) -> None:
        """Wait up to ``drain_timeout_s`` (s) for running generations, stop the rest (with
        ``stop_remaining``; they still store their stop terminal, given :data:`CLOSE_GRACE_S`
        more), then cancel what is left (no terminal: another instance closes them after the
        lease), waiting up to :data:`CLOSE_GRACE_S` more for them to end: a generation whose
        source ignores cancellation is left behind (its live response ends, its writer
        stops). Idempotent.

        Claims in flight are part of the drain: they are waited for within the same
        ``drain_timeout_s``, and a won one's generation is drained like the others. A claim
        still undecided then is marked stopped, so if it wins, its generation stores the stop
        terminal without calling the model."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout_s
        claims = {
            loop.create_task(entry.settled.wait()): entry
            for entry in self._local.values()
            if isinstance(entry, _PendingClaim)
        }
        if claims:
            _, undecided = await asyncio.wait(claims, timeout=drain_timeout_s)
            for waiter in undecided:
                waiter.cancel()
                claims[waiter].stop()
        tasks = {g.task for g in self.running}
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            left_s = max(0.0, deadline - loop.time())
            _, pending = await asyncio.wait(tasks, timeout=left_s)
            if stop_remaining and pending:
                for generation in self.running:
                    generation.stop()
                _, pending = await asyncio.wait(pending, timeout=CLOSE_GRACE_S)
            for task in pending:
                task.cancel()
            if pending:
                _, pending = await asyncio.wait(pending, timeout=CLOSE_GRACE_S)
            for generation in self.running:
                if generation.task in pending:
                    # Its source swallows cancellation: waiting on it could hang forever.
                    logger.error(
                        "the generation on %s did not end when cancelled (its source ignores "
                        "cancellation); it is abandoned",
                        generation.stream,
                    )
                    await generation.abandon()
        for follow in list(self._follows):  # readers end (no terminal): we are closing
            follow.end()
        leftover = [task for task in self._tasks if task not in pending]
        for task in leftover:
            task.cancel()
        if leftover:
            done, _ = await asyncio.wait(leftover, timeout=CLOSE_GRACE_S)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved: the engine is closing
