"""Durable AG-UI runs on a TanStack session log: start, replay from a cursor, find, hydrate.

The server half of ``fetchServerSentEvents``' delivery durability (``reference/wire-protocols.md``
§B.9, ``@tanstack/ai`` 0.58 ``stream-durability.js``), on the chat core's log instead of a
per-run log: one S2 stream per thread, each run one generation on it (claim fence, the stored
turn, ``CUSTOM run.accepted``, the model's ``StreamChunk`` s, terminal fence). SSE ids are the
chat core's cursors (``seq_num + 1`` of the record), so a reconnect with ``Last-Event-ID: N``
reads the log from seq_num ``N`` and never calls the model again.

A join (``GET ?offset=-1&runId=…``) names only the run, so every run also gets a one-record
*run index* stream (default ``agui-run-<runId>``) that names its thread's stream, written
when the run's source starts; a process also remembers the runs it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from .chat import ResumableChat, WaitUntil
from .claims import find_latest_generation, read_range
from .generation import Generation, StopSignal, decode_chunk
from .protocols.agui import RUN_ACCEPTED, apply_approval_responses
from .protocols.base import Chunk, TurnState
from .s2.errors import (
    RangeNotSatisfiableError,
    S2Error,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from .s2.records import (
    AppendInput,
    AppendRecord,
    SequencedRecord,
    is_fence,
    is_stop_fence,
    is_terminal_fence,
)
from .s2.silence import follow_reporting_silence
from .sse import event_frame

__all__ = ["CursorPastEndError", "DurableRuns", "RunLocation"]

logger = logging.getLogger("resumable_chat.durable_runs")

#: Runs a process remembers (run id → thread stream) besides the run index streams.
DEFAULT_CACHE_SIZE = 4096


class CursorPastEndError(Exception):
    """A resume cursor lies past the end of the stream and no run is writing there (416).

    ``cursor`` and ``tail`` are seq_nums (the tail: the next seq_num to be assigned).
    """

    def __init__(self, cursor: int, tail: int) -> None:
        super().__init__(f"cursor {cursor} is past the end of the stream (next seq_num {tail})")
        self.cursor = cursor
        self.tail = tail


@dataclass(frozen=True, slots=True)
class RunLocation:
    """Where a run lives: its thread's ``stream``, the ``thread_id`` the index recorded and
    ``start``, the seq_num of the run's first event (``run.accepted`` or ``RUN_STARTED``)."""

    stream: str
    thread_id: str | None
    start: int


def _run_id_of(chunk: Chunk) -> str | None:
    """The run a ``run.accepted`` or ``RUN_STARTED`` chunk opens, else ``None``."""
    if chunk.get("type") == "RUN_STARTED":
        run_id = chunk.get("runId")
    elif chunk.get("type") == "CUSTOM" and chunk.get("name") == RUN_ACCEPTED:
        value = chunk.get("value")
        run_id = value.get("runId") if isinstance(value, dict) else None
    else:
        return None
    return run_id if isinstance(run_id, str) else None


class _UserTurnFilter:
    """Drops a stored user turn (``TEXT_MESSAGE_*`` of a ``role: "user"`` message) from a
    replay: the client that sent it already shows it, and replaying it would append its text
    to that message again."""

    __slots__ = ("_ids",)

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def skip(self, body: bytes) -> bool:
        if b"TEXT_MESSAGE_" not in body:
            return False
        chunk = decode_chunk(body)
        if chunk is None:
            return False
        message_id = chunk.get("messageId")
        if chunk.get("type") == "TEXT_MESSAGE_START" and chunk.get("role") == "user":
            if isinstance(message_id, str):
                self._ids.add(message_id)
            return True
        return message_id in self._ids


class DurableRuns:
    """AG-UI durable runs served from a TanStack session chat's log.

    Args:
        chat: a ``ResumableChat`` with ``protocol="tanstack", mode="session"``.
        run_index_stream: run id → the S2 stream of its index record.
        cache_size: run locations remembered in this process (runs).

    Raises ``ValueError`` when ``chat`` is not a TanStack session chat.
    """

    def __init__(
        self,
        chat: ResumableChat,
        *,
        run_index_stream: Callable[[str], str] = lambda run_id: f"agui-run-{run_id}",
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if chat.dialect.name != "tanstack" or chat.mode != "session":
            raise ValueError('durable runs need a chat with protocol="tanstack", mode="session"')
        self.chat = chat
        self.basin = chat.basin
        self.run_index_stream = run_index_stream
        self._cache: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._cache_size = cache_size

    # -- start -----------------------------------------------------------------------------

    def _remember(self, run_id: str, stream: str, thread_id: str) -> None:
        self._cache[run_id] = (stream, thread_id)
        self._cache.move_to_end(run_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _write_index(self, run_id: str, stream: str, thread_id: str) -> None:
        body = json.dumps({"stream": stream, "threadId": thread_id}, separators=(",", ":"))
        request = AppendInput([AppendRecord(body.encode())], match_seq_num=0)
        try:
            await self.basin.append(self.run_index_stream(run_id), request)
        except SeqNumMismatchError:
            logger.warning("run id %r was used before; its index keeps the first thread", run_id)
        except S2Error:
            logger.exception(
                "writing the run index of %r failed; joins by run id will miss", run_id
            )

    async def start(
        self,
        stream: str,
        source: Callable[[StopSignal], AsyncIterable[Chunk]],
        *,
        run_id: str,
        thread_id: str,
        turn: TurnState,
        prelude: list[Chunk],
        accepted: Chunk,
        wait_until: WaitUntil | None = None,
    ) -> Generation:
        """Claim ``stream`` and start the run; the response reads ``generation.live``.

        ``accepted`` (``CUSTOM run.accepted``) is stored and sent first, before the model is
        called. The run index record is written while the model starts, in the generation's
        own task. Raises ``StreamInUseError`` (409) when a run is live on the thread and
        ``S2Error`` when the claim fails.
        """

        async def indexed_source(signal: StopSignal) -> AsyncIterator[Chunk]:
            index = asyncio.ensure_future(self._write_index(run_id, stream, thread_id))
            try:
                async for chunk in source(signal):
                    yield chunk
            finally:
                await asyncio.shield(index)

        generation = await self.chat.start_generation(
            stream,
            indexed_source,
            turn=turn,
            prelude=prelude,
            announce=[accepted],
            live=True,
            wait_until=wait_until,
        )
        self._remember(run_id, stream, thread_id)
        return generation

    # -- replay ----------------------------------------------------------------------------

    async def check_cursor(self, stream: str, cursor: int) -> None:
        """Raise :class:`CursorPastEndError` when ``cursor`` (a seq_num) is past the tail
        and no run is live to write up to it; S2 errors propagate."""
        latest = await find_latest_generation(self.basin, stream)
        if cursor > latest.tail.seq_num and not latest.active:
            raise CursorPastEndError(cursor, latest.tail.seq_num)

    async def replay(self, stream: str, start: int) -> AsyncIterator[bytes]:
        """SSE frames of the stored run from seq_num ``start`` on, live, until its end.

        Each record is ``id: <seq_num+1>`` + ``data: <stored body>``; stored user turns,
        command records and empty heartbeats are skipped. Ends after the run's terminal
        fence (``end-`` / ``error-``, or the next claim); waits (with the SSE keep-alive of
        the response) while the run is live, also for records not appended yet. A cursor past
        the tail (records the client saw live but the log lost, e.g. after a crash) starts
        at the tail; the run's end still ends the replay. A run whose writer went silent for
        a lease (crashed) is closed with its error terminal, which ends the replay too.
        """
        follow = follow_reporting_silence(
            self.basin, stream, seq_num=start, silence_s=self.chat.lease_ms / 1000
        )
        user_turns = _UserTurnFilter()
        position: int | None = None  # the follow's position once a batch came
        async with contextlib.aclosing(follow) as batches:
            async for batch in batches:
                if batch is None:  # a lease of silence: has the run's writer crashed?
                    if position is None:
                        position = await self._tail(stream)
                    # The chat core's lease watchdog (the same one its own replays use): it
                    # closes a crashed run with RUN_ERROR + error fence, which ends this loop.
                    await self.chat.still_running(stream, position)
                    continue
                position = batch.records[-1].seq_num + 1 if batch.records else position
                frames: list[bytes] = []
                ended = False
                for record in batch.records:
                    if record.headers:
                        if is_fence(record) and not is_stop_fence(record):
                            ended = True
                            break
                        continue
                    body = record.body
                    if record.seq_num < start or not body or user_turns.skip(body):
                        continue
                    frames.append(event_frame(body, record.seq_num + 1))
                if frames:
                    yield b"".join(frames)
                if ended:
                    return

    async def _tail(self, stream: str) -> int:
        try:
            return (await self.basin.check_tail(stream)).seq_num
        except StreamNotFoundError:
            return 0

    # -- find ------------------------------------------------------------------------------

    async def _indexed(self, run_id: str) -> tuple[str, str | None] | None:
        cached = self._cache.get(run_id)
        if cached is not None:
            return cached
        try:
            batch = await self.basin.read(self.run_index_stream(run_id), seq_num=0, count=1)
        except (StreamNotFoundError, RangeNotSatisfiableError):
            return None
        if not batch.records:
            return None
        try:
            entry = json.loads(batch.records[0].body)
        except ValueError:
            return None
        stream = entry.get("stream") if isinstance(entry, dict) else None
        if not isinstance(stream, str):
            return None
        thread_id = entry.get("threadId")
        return stream, thread_id if isinstance(thread_id, str) else None

    async def _reversed(self, stream: str) -> AsyncGenerator[SequencedRecord, None]:
        """The stream's records from the tail backwards, read in windows growing ×4."""
        try:
            end = (await self.basin.check_tail(stream)).seq_num
        except StreamNotFoundError:
            return
        window = 64
        while end > 0:
            start = max(0, end - window)
            records = await read_range(self.basin, stream, start, end)
            for record in reversed(records):
                yield record
            if not records or records[0].seq_num > start:
                return  # trimmed below: nothing earlier exists
            end = start
            window *= 4

    async def locate(self, run_id: str) -> RunLocation | None:
        """Find run ``run_id``: its thread (run index, or this process's memory) and the
        seq_num of its first event, read backwards from the thread's tail (O(records since
        the run started)). ``None`` when the run is unknown; S2 errors propagate."""
        indexed = await self._indexed(run_id)
        if indexed is None:
            return None
        stream, thread_id = indexed
        needle = run_id.encode()
        found: int | None = None
        async with contextlib.aclosing(self._reversed(stream)) as records:
            async for record in records:
                if record.headers:
                    if found is not None and is_fence(record) and not is_stop_fence(record):
                        break
                    continue
                if needle not in record.body:
                    continue
                chunk = decode_chunk(record.body)
                if chunk is not None and _run_id_of(chunk) == run_id:
                    found = record.seq_num
        if found is None:
            return None
        return RunLocation(stream, thread_id, found)

    async def live_tail(self, stream: str) -> int | None:
        """The stream's tail seq_num while a run is live on it, else ``None``."""
        latest = await find_latest_generation(self.basin, stream)
        return latest.tail.seq_num if latest.active else None

    # -- hydrate ---------------------------------------------------------------------------

    async def hydrate(self, stream: str) -> dict[str, Any]:
        """``ChatHydrationResult`` of the thread, from one read of its whole log (O(history)).

        Returns ``{"messages", "activeRun", "interrupts", "page"}``: ``messages`` folded with
        the snapshot fold (``UIMessage`` s, the live run's partial answer included), with
        approvals answered in a ``resume`` applied; ``activeRun: {"runId"}`` while the latest
        run is live, else ``None``; ``interrupts: {"runId", "pending": [...]}`` when the
        latest run ended waiting on interrupts (``RUN_FINISHED.outcome``), else ``None``;
        ``page: {"truncated": False}`` (the whole history, always).
        """
        records = await read_range(self.basin, stream, 0)
        chunks: list[Chunk] = []
        claimed_at = 0  # index in ``chunks`` where the latest generation starts
        fence: SequencedRecord | None = None  # the latest claim or terminal fence
        for record in records:
            if record.headers:
                if is_fence(record) and not is_stop_fence(record):
                    fence = record
                    if not is_terminal_fence(record):
                        claimed_at = len(chunks)
                continue
            if not record.body:
                continue
            chunk = decode_chunk(record.body)
            if chunk is not None:
                chunks.append(chunk)
        messages = apply_approval_responses(self.chat.dialect.fold(chunks), chunks)
        latest = chunks[claimed_at:] if fence is not None else []
        active_run: dict[str, str] | None = None
        interrupts: dict[str, Any] | None = None
        if fence is not None and not is_terminal_fence(fence):
            run_id = next((r for r in map(_run_id_of, latest) if r is not None), None)
            if run_id is not None:
                active_run = {"runId": run_id}
        else:
            terminal = next(
                (c for c in reversed(latest) if c.get("type") in ("RUN_FINISHED", "RUN_ERROR")),
                None,
            )
            outcome = terminal.get("outcome") if terminal is not None else None
            pending = outcome.get("interrupts") if isinstance(outcome, dict) else None
            if (
                terminal is not None
                and terminal.get("type") == "RUN_FINISHED"
                and isinstance(outcome, dict)
                and outcome.get("type") == "interrupt"
                and isinstance(pending, list)
                and pending
                and isinstance(terminal.get("runId"), str)
            ):
                interrupts = {"runId": terminal["runId"], "pending": pending}
        return {
            "messages": messages,
            "activeRun": active_run,
            "interrupts": interrupts,
            "page": {"truncated": False},
        }
