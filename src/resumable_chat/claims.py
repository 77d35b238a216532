"""Claims: how a generation takes a chat's stream, per mode, and how readers find it.

Record layout and claim rules of ``@s2-dev/resumable-stream`` 2.1 (reference §1, §3.2): a
generation is a fence ``session-<rand>`` (the claim), data records, and a terminal fence
``end-<rand>`` or ``error-<rand>``. Every claim is an S2 conditional append, so two claimers
racing on different processes are decided by S2: one wins, the other gets 412 → 409.

Finding the latest generation reads backwards from the tail in growing windows, so it costs
O(answer), never O(history) (DESIGN.md §6.3).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Literal

from .s2.basin import Basin
from .s2.errors import (
    FencingTokenMismatchError,
    RangeNotSatisfiableError,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from .s2.records import (
    AppendInput,
    SequencedRecord,
    StreamPosition,
    fence_record,
    is_fence,
    is_stop_fence,
    is_terminal_fence,
    now_ms,
    trim_record,
)

__all__ = [
    "Claim",
    "LatestGeneration",
    "Mode",
    "StaleGenerationError",
    "StreamInUseError",
    "claim_stream",
    "find_latest_generation",
    "new_token",
    "read_range",
]

Mode = Literal["single-use", "shared", "session"]
MODES: tuple[Mode, ...] = ("single-use", "shared", "session")


class StreamInUseError(Exception):
    """The stream could not be claimed: a generation is running (HTTP 409)."""


class StaleGenerationError(StreamInUseError):
    """The stream holds a generation without a terminal fence whose writer has written
    nothing for a lease: it crashed. Close it (an error terminal and an ``error-`` fence,
    conditioned on its token) and claim again. ``idle_ms``: ms since its last record.
    """

    def __init__(self, stream: str, idle_ms: int) -> None:
        super().__init__(stream)
        self.idle_ms = idle_ms


def new_token(prefix: str, random_bytes: int) -> str:
    """``prefix`` + standard base64 of ``random_bytes`` random bytes (reference §1.7)."""
    return prefix + base64.b64encode(secrets.token_bytes(random_bytes)).decode()


@dataclass(frozen=True, slots=True)
class Claim:
    """A won claim: the generation's ``token`` and the seq_num its first record gets."""

    token: str
    start_seq_num: int
    fence_seq_num: int


@dataclass(frozen=True, slots=True)
class LatestGeneration:
    """What the tail of a chat's stream says about its latest generation.

    ``fence``: the latest generation's fence, claim or terminal (``None`` when the stream
    has none); ``tail``: the stream's tail (its ``timestamp`` is the last record's, in ms);
    ``last_record``: the stream's last record (``None`` when empty); ``token``: the stream's
    current fencing token, the body of the newest fence of any kind, stop requests included
    (``""`` when there is none).
    """

    fence: SequencedRecord | None
    tail: StreamPosition
    last_record: SequencedRecord | None
    token: str = ""

    @property
    def active(self) -> bool:
        """True while the latest generation has no terminal fence."""
        return self.fence is not None and not is_terminal_fence(self.fence)


async def read_range(
    basin: Basin, stream: str, start: int, end: int | None = None
) -> list[SequencedRecord]:
    """All records with ``start <= seq_num < end`` (``end=None``: up to the current tail).

    Loops over unary reads (≤ 1000 records / 1 MiB each). A missing stream is empty.
    """
    out: list[SequencedRecord] = []
    cursor = start
    while end is None or cursor < end:
        count = 1000 if end is None else min(1000, end - cursor)
        try:
            batch = await basin.read(stream, seq_num=cursor, count=count, wait=0)
        except (RangeNotSatisfiableError, StreamNotFoundError):
            break
        if not batch.records:
            break
        out.extend(batch.records)
        cursor = batch.records[-1].seq_num + 1
    return out


async def find_latest_generation(
    basin: Basin, stream: str, *, first_window: int = 64
) -> LatestGeneration:
    """Find the latest generation's fence by reading backwards from the tail in windows that
    grow ×4 each time (``first_window`` records first).

    Costs O(records since the latest fence), never O(history). A missing stream is empty.
    Raises ``S2Error`` when S2 fails.
    """
    try:
        tail = await basin.check_tail(stream)
    except StreamNotFoundError:
        return LatestGeneration(None, StreamPosition(0, 0), None)
    end = tail.seq_num
    window = first_window
    last_record: SequencedRecord | None = None
    token: str | None = None
    first = True
    while end > 0:
        start = max(0, end - window)
        records = await read_range(basin, stream, start, end)
        if first and records:
            last_record = records[-1]
        first = False
        for record in reversed(records):
            if is_fence(record):
                if token is None:
                    token = record.body.decode()
                if not is_stop_fence(record):
                    return LatestGeneration(record, tail, last_record, token)
        if not records or records[0].seq_num > start:
            break  # trimmed below: nothing earlier exists
        end = start
        window *= 4
    return LatestGeneration(None, tail, last_record, token or "")


async def _last_record(basin: Basin, stream: str) -> SequencedRecord | None:
    try:
        batch = await basin.read(stream, tail_offset=1, count=1, wait=0)
    except (RangeNotSatisfiableError, StreamNotFoundError):
        return None
    return batch.records[-1] if batch.records else None


async def _tail_seq_num(basin: Basin, stream: str) -> int:
    try:
        return (await basin.check_tail(stream)).seq_num
    except StreamNotFoundError:
        return 0


async def claim_stream(basin: Basin, stream: str, mode: Mode, *, lease_ms: int) -> Claim:
    """Claim ``stream`` for a new generation with a conditional fence append.

    - ``single-use``: only an empty, never-used stream (``match_seq_num=0``).
    - ``session``: the stream is empty (never used, or all its records expired or were
      trimmed) or its last record is a terminal fence; the new fence is conditioned on that
      fence's token and position (on the tail alone when no record is left).
    - ``shared``: like session; the claim then trims everything before its fence.

    Returns the :class:`Claim`. Raises :class:`StaleGenerationError` when the stream holds a
    generation whose last record is ``lease_ms`` (ms) old or older (its writer crashed: close
    it, then claim again), :class:`StreamInUseError` when a live generation holds the stream or
    a concurrent claimer won; other S2 errors propagate.
    """
    token = new_token("session-", 8)
    now = now_ms()
    try:
        if mode == "single-use":
            ack = await basin.append(
                stream, AppendInput([fence_record(token, now)], match_seq_num=0, fencing_token="")
            )
            return Claim(token, ack.end.seq_num, ack.start.seq_num)
        if mode == "session":
            last = await _last_record(basin, stream)
            if last is None:
                # Never used (tail 0), or every record expired or was trimmed: no generation
                # can be live (a live writer's heartbeats are fresh), and the stream's token
                # is unknown, so only the position is conditioned.
                tail = await _tail_seq_num(basin, stream)
                ack = await basin.append(
                    stream,
                    AppendInput(
                        [fence_record(token, now)],
                        match_seq_num=tail,
                        fencing_token="" if tail == 0 else None,
                    ),
                )
            elif is_terminal_fence(last):
                ack = await basin.append(
                    stream,
                    AppendInput(
                        [fence_record(token, now)],
                        match_seq_num=last.seq_num + 1,
                        fencing_token=last.body.decode(),
                    ),
                )
            elif now - last.timestamp >= lease_ms:
                raise StaleGenerationError(stream, now - last.timestamp)
            else:
                raise StreamInUseError(stream)
            return Claim(token, ack.end.seq_num, ack.start.seq_num)
        # shared
        latest = await find_latest_generation(basin, stream)
        current: str | None
        if latest.fence is None:
            current = "" if latest.tail.seq_num == 0 else None  # empty, or all expired
        elif is_terminal_fence(latest.fence):
            current = latest.fence.body.decode()
        else:
            idle_ms = now - latest.tail.timestamp
            if idle_ms >= lease_ms:
                raise StaleGenerationError(stream, idle_ms)
            raise StreamInUseError(stream)
        ack = await basin.append(
            stream,
            AppendInput(
                [fence_record(token, now)],
                match_seq_num=latest.tail.seq_num,
                fencing_token=current,
            ),
        )
        start = ack.end.seq_num
        if ack.start.seq_num > 0:
            trim_ack = await basin.append(
                stream,
                AppendInput(
                    [trim_record(ack.start.seq_num)], match_seq_num=start, fencing_token=token
                ),
            )
            start = trim_ack.end.seq_num
        return Claim(token, start, ack.start.seq_num)
    except (FencingTokenMismatchError, SeqNumMismatchError) as exc:
        raise StreamInUseError(stream) from exc
