"""Durable AG-UI runs on a TanStack session log: start, replay from a cursor, find, hydrate.

The server half of ``fetchServerSentEvents``' delivery durability (
``@tanstack/ai`` 0.58 ``stream-durability.js``), on the chat core's log instead of a
per-run log: one S2 stream per thread, each run one generation on it (claim fence, the stored
turn, ``CUSTOM run.accepted``, the model's ``StreamChunk`` s, terminal fence). SSE ids are the
chat core's cursors (``seq_num + 1`` of the record), so a reconnect with ``Last-Event-ID: N``
reads the log from seq_num ``N`` and never calls the model again.

A join (``GET ?offset=-1&runId=…``) names only the run, so every run id is bound to its thread
by a one-record *run index* stream (default ``agui-run-<runId>``), written with
``match_seq_num=0`` before the run is claimed: the first thread to use a run id owns it on
every instance, and a POST on another thread that reuses it is refused (409).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from resumable_chat.chat.core import ResumableChat, WaitUntil
from resumable_chat.chat.dialect import Chunk, TurnState
from resumable_chat.chat.producer import StopSignal, decode_chunk
from resumable_chat.log import Generation, RecordKind, classify, latest_generation, read_range
from resumable_chat.log.fragments import join_fragments
from resumable_chat.log.scan import records_backwards
from resumable_chat.protocols.agui.dialect import RUN_ACCEPTED, apply_approval_responses
from resumable_chat.s2.errors import (
    RangeNotSatisfiableError,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from resumable_chat.s2.records import AppendInput, AppendRecord, SequencedRecord
from resumable_chat.sse import event_frame

__all__ = ["CursorPastEndError", "DurableRuns", "RunIdTakenError", "RunLocation"]

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


class RunIdTakenError(Exception):
    """A POST named a run id that already belongs to another thread (HTTP 409).

    ``run_id``: the id; ``thread_id``: the thread that owns it."""

    def __init__(self, run_id: str, thread_id: str | None) -> None:
        super().__init__(f"run id {run_id!r} belongs to another thread")
        self.run_id = run_id
        self.thread_id = thread_id


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

    async def _bind(self, run_id: str, stream: str, thread_id: str) -> None:
        """Bind ``run_id`` to ``thread_id`` in its run index stream (first writer wins, a
        conditional append at seq_num 0), or check the existing binding. Raises
        :class:`RunIdTakenError` when the id belongs to another thread, ``S2Error``."""
        cached = self._cache.get(run_id)
        if cached is not None and cached[1] == thread_id:
            return
        body = json.dumps({"stream": stream, "threadId": thread_id}, separators=(",", ":"))
        request = AppendInput([AppendRecord(body.encode())], match_seq_num=0)
        try:
            await self.basin.append(self.run_index_stream(run_id), request)
        except SeqNumMismatchError:
            bound = await self._indexed(run_id)
            if bound is None or bound[1] != thread_id:
                raise RunIdTakenError(run_id, None if bound is None else bound[1]) from None
        self._remember(run_id, stream, thread_id)

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
        """Bind ``run_id`` to the thread, claim ``stream`` and start the run; the response
        reads :func:`~resumable_chat.chat.producer.live_channel`.

        ``accepted`` (``CUSTOM run.accepted``) is stored and sent first, before the model is
        called. Raises :class:`RunIdTakenError` (409) when another thread owns the run id,
        ``StreamInUseError`` (409) when a run is live on the thread and ``S2Error`` when S2
        fails.
        """
        await self._bind(run_id, stream, thread_id)
        return await self.chat.start_generation(
            stream,
            source,
            turn=turn,
            prelude=prelude,
            announce=[accepted],
            live=True,
            wait_until=wait_until,
        )

    # -- replay ----------------------------------------------------------------------------

    async def check_cursor(self, stream: str, cursor: int) -> None:
        """Raise :class:`CursorPastEndError` when ``cursor`` (an SSE id) is past the tail
        and no run is live to write up to it; S2 errors propagate."""
        latest = await latest_generation(self.basin, stream)
        if cursor > latest.tail.seq_num and not latest.active:
            if not self.chat.engine.sent_live(stream, cursor):
                raise CursorPastEndError(cursor, latest.tail.seq_num)

    async def replay(
        self, stream: str, start: int, *, cursor: int | None = None
    ) -> AsyncIterator[bytes]:
        """SSE frames of the stored run from seq_num ``start`` on, live, until its end.

        ``cursor``: the client's last SSE id; events up to it are not sent again. Each record
        is ``id: <id>`` + ``data: <stored body>``; stored user turns, command records and
        heartbeats are skipped. Ends at the run's terminal fence (``end-`` / ``error-``, or
        the next claim); waits (with the keep-alive of the response) while the run is live,
        also for records not stored yet. A run whose writer went silent for a lease is closed
        with its error terminal by the engine's watchdog, which ends the replay too.
        """
        user_turns = _UserTurnFilter()
        follow = self.chat.engine.follow(stream, start, until_closed=True, skip_ids_through=cursor)
        async with contextlib.aclosing(follow) as batches:
            async for events in batches:
                frames: list[bytes] = []
                ended = False
                for event in events:
                    if event.kind is not RecordKind.DATA:
                        if event.kind.boundary:
                            ended = True
                            break
                        continue
                    if not user_turns.skip(event.body):
                        frames.append(event_frame(event.body, event.id))
                if frames:
                    yield b"".join(frames)
                if ended:
                    return

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
        try:
            tail = (await self.basin.check_tail(stream)).seq_num
        except StreamNotFoundError:
            return None
        async with contextlib.aclosing(records_backwards(self.basin, stream, tail)) as records:
            async for record in records:
                kind = classify(record)
                if kind is not RecordKind.DATA:
                    if found is not None and kind.boundary:
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
        latest = await latest_generation(self.basin, stream)
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
        records, _ = join_fragments(await read_range(self.basin, stream, 0))
        chunks: list[Chunk] = []
        claimed_at = 0  # index in ``chunks`` where the latest generation starts
        fence: SequencedRecord | None = None  # the latest claim or terminal fence
        for record in records:
            kind = classify(record)
            if kind.boundary:
                fence = record
                if kind is RecordKind.CLAIM:
                    claimed_at = len(chunks)
                continue
            if kind is not RecordKind.DATA:
                continue
            chunk = decode_chunk(record.body)
            if chunk is not None:
                chunks.append(self.chat.dialect.history_chunk(chunk, record.timestamp))
        messages = apply_approval_responses(self.chat.dialect.fold(chunks), chunks)
        latest = chunks[claimed_at:] if fence is not None else []
        active_run: dict[str, str] | None = None
        interrupts: dict[str, Any] | None = None
        if fence is not None and classify(fence) is RecordKind.CLAIM:
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
