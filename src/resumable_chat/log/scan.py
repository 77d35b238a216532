"""Reading a generation log: ranges, the last record with the tail in one read, and the latest
generation found backwards from the tail.

Finding the latest generation reads backwards in windows that grow ×4, so it costs
O(records since the latest claim), never O(history).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass

from resumable_chat.log.records import RecordKind, classify, fence_token
from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import (
    FencingTokenMismatchError,
    RangeNotSatisfiableError,
    S2Error,
    StreamNotFoundError,
)
from resumable_chat.s2.records import AppendInput, AppendRecord, SequencedRecord, StreamPosition

__all__ = [
    "PROBE_TOKEN",
    "LatestGeneration",
    "OpenGeneration",
    "last_record",
    "latest_generation",
    "latest_generation_or_token",
    "read_range",
    "records_backwards",
]


async def read_range(
    basin: Basin, stream: str, start: int, end: int | None = None
) -> list[SequencedRecord]:
    """All records with ``start <= seq_num < end`` (``end=None``: up to the current tail).

    Loops over unary reads (≤ 1000 records / 1 MiB each), and stops at the read whose batch
    reaches the tail it reports (S2 returns ``tail`` with a read that reaches recent records;
    https://s2.dev/docs/api, read), so a range that fits one read costs one S2 round trip,
    not a second read answered 416. A missing stream is empty; records trimmed below
    ``start`` are simply absent. Raises ``S2Error`` when S2 fails.
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
        if batch.tail is not None and batch.tail.seq_num <= cursor:
            break  # this read reached the tail: a next one would only be answered 416
    return out


async def last_record(basin: Basin, stream: str) -> tuple[SequencedRecord | None, StreamPosition]:
    """The stream's last record and its tail, from ONE read (``tail_offset=1, count=1``).

    S2 returns the tail with a read that reaches the end, and the tail in the 416 body of a
    read that starts at it (an empty stream), so the pair is one consistent observation: an
    append conditioned on ``match_seq_num=tail`` fails if anything was appended since. A
    missing stream is ``(None, (0, 0))``. Raises ``S2Error`` when S2 fails.
    """
    try:
        batch = await basin.read(stream, tail_offset=1, count=1, wait=0)
    except RangeNotSatisfiableError as exc:
        return None, exc.tail
    except StreamNotFoundError:
        return None, StreamPosition(0, 0)
    if not batch.records:  # a count-bounded empty read: nothing at the tail
        return None, batch.tail if batch.tail is not None else StreamPosition(0, 0)
    record = batch.records[-1]
    tail = batch.tail
    if tail is None or tail.seq_num <= record.seq_num:
        tail = StreamPosition(record.seq_num + 1, record.timestamp)
    return record, tail


@dataclass(frozen=True, slots=True)
class LatestGeneration:
    """What the tail of a stream says about its latest generation.

    ``claim``: the latest claim fence (``None`` when none is left: never used, or trimmed);
    ``terminal``: the terminal fence after it, if any (also set when the newest boundary is a
    terminal whose claim was trimmed away); ``token``: the stream's current fencing token (the
    newest fence of any kind, stop requests included; ``None`` when no fence is left to read,
    which is ``""`` for a never-fenced stream); ``tail``: the stream's tail at the time of the
    read (its ``timestamp`` is the last record's, ms); ``last``: the last record;
    ``since_claim``: the records after the claim up to the tail, oldest first, as this read
    met them (at most :data:`SINCE_CLAIM_KEPT`; empty when there were more, or no claim), so
    a reader of the running generation starts from them without reading them again.
    """

    claim: SequencedRecord | None
    terminal: SequencedRecord | None
    token: str | None
    tail: StreamPosition
    last: SequencedRecord | None
    since_claim: tuple[SequencedRecord, ...] = ()

    @property
    def active(self) -> bool:
        """True while the latest generation has a claim and no terminal fence."""
        return self.claim is not None and self.terminal is None

    @property
    def claim_token(self) -> str | None:
        """The latest generation's claim token (its identity), or ``None``."""
        return None if self.claim is None else fence_token(self.claim)

    @property
    def data_start(self) -> int:
        """The seq_num of the latest generation's first record after its claim (the tail when
        there is no claim)."""
        return self.claim.seq_num + 1 if self.claim is not None else self.tail.seq_num


async def records_backwards(
    basin: Basin, stream: str, end: int, *, first_window: int = 64
) -> AsyncGenerator[SequencedRecord, None]:
    """The records below seq_num ``end``, newest first, read in windows that grow ×4.

    Stops at the oldest record left (trimmed or expired below). Raises ``S2Error``.
    """
    window = first_window
    while end > 0:
        start = max(0, end - window)
        records = await read_range(basin, stream, start, end)
        for record in reversed(records):
            yield record
        if not records or records[0].seq_num > start:
            return  # trimmed below: nothing earlier exists
        end = start
        window *= 4


#: Records after the claim that :func:`latest_generation` keeps for a reader at most
#: (``LatestGeneration.since_claim``): one S2 read's worth.
SINCE_CLAIM_KEPT = 1000

#: Records the first read of :func:`latest_generation` takes from the tail.
TAIL_WINDOW = 64


async def _tail_window(
    basin: Basin, stream: str, window: int
) -> tuple[list[SequencedRecord], StreamPosition] | None:
    """The last ``window`` records and the tail from ONE read (``tail_offset=window``,
    ``count=window``), or ``None`` when that read did not reach the tail (records too large
    for one read's 1 MiB) or came without one. A read from before the first record starts
    at the first record that still exists (S2 REST v1, read); an empty or missing stream is
    ``([], tail)``.
    """
    try:
        batch = await basin.read(stream, tail_offset=window, count=window, wait=0)
    except RangeNotSatisfiableError as exc:
        return [], exc.tail
    except StreamNotFoundError:
        return [], StreamPosition(0, 0)
    records, tail = batch.records, batch.tail
    if tail is None:
        return None
    if records and tail.seq_num != records[-1].seq_num + 1:
        return None
    return records, tail


async def latest_generation(basin: Basin, stream: str) -> LatestGeneration:
    """Read backwards from the tail to the latest generation's boundary fences.

    Stops at the newest claim (or at a terminal whose claim is gone). The first read takes
    the last :data:`TAIL_WINDOW` records together with the tail, so a claim among them costs
    one S2 round trip; older records are read in windows growing ×4. Costs O(records since
    that fence). A missing stream is empty. Raises ``S2Error`` when S2 fails.
    """
    found = await _latest(basin, stream, probe=False)
    assert isinstance(found, LatestGeneration)
    return found


@dataclass(frozen=True, slots=True)
class OpenGeneration:
    """The latest generation is open and its claim lies before the last :data:`TAIL_WINDOW`
    records (none of them is a boundary fence): ``token`` is the stream's fencing token (the
    claim's, or a stop request's) and ``tail`` the tail read with those records."""

    token: str
    tail: StreamPosition


#: The fencing token of the append :func:`latest_generation_or_token` sends to learn the
#: stream's token: none of ours (claims, stops, terminals) and no S2 default ever has it.
PROBE_TOKEN = "resumable-chat-token-probe"


async def latest_generation_or_token(
    basin: Basin, stream: str
) -> LatestGeneration | OpenGeneration:
    """:func:`latest_generation`, or, when the claim lies further back than the first read
    reaches (a long answer), the stream's fencing token instead: one append conditioned on
    :data:`PROBE_TOKEN`, which S2 rejects with 412 and the current token
    (https://s2.dev/docs/api, append: ``fencing_token_mismatch``). Two S2 round trips
    however many records the answer has, instead of a read per window (records too large
    for :data:`TAIL_WINDOW` of them in one read still take the windows, and so does a probe
    that failed transiently: it is not retried, the reads are); for a caller that needs only
    the token (a stop request). Raises ``S2Error`` when S2 fails for good or past its
    retries.
    """
    return await _latest(basin, stream, probe=True)


async def _current_token(basin: Basin, stream: str) -> str | None:
    """The stream's fencing token, from an append S2 rejects; ``None`` when the probe did
    not tell it, and the caller reads the log back to the claim instead.

    A transient failure of the probe (503, a timeout, a lost answer) gives ``None``: a basin
    does not retry an append that is neither conditioned on a seq_num nor moves the token
    (it could land twice), though this one can never land, and the reads that replace it
    are retried. A permanent failure is raised. ``None`` also in the impossible case that
    it lands (the stream's token was :data:`PROBE_TOKEN`: it stored an empty record, which
    readers skip like a heartbeat)."""
    try:
        await basin.append(stream, AppendInput([AppendRecord(b"")], fencing_token=PROBE_TOKEN))
    except FencingTokenMismatchError as exc:
        return exc.expected_fencing_token
    except S2Error as exc:
        if exc.permanent:
            raise
    return None


async def _latest(basin: Basin, stream: str, *, probe: bool) -> LatestGeneration | OpenGeneration:
    newest: list[SequencedRecord] = []
    window = await _tail_window(basin, stream, TAIL_WINDOW)
    if window is None:
        last, tail = await last_record(basin, stream)
        older_end = tail.seq_num
    else:
        newest, tail = window
        last = newest[-1] if newest else None
        older_end = newest[0].seq_num if newest else 0
        if newest and older_end > max(0, tail.seq_num - TAIL_WINDOW):
            older_end = 0  # the read started past a trim: nothing older exists
    if last is None:
        return LatestGeneration(None, None, "" if tail.seq_num == 0 else None, tail, None)
    scan = _BoundaryScan()
    met: list[SequencedRecord] = []  # newer than the boundary found, newest first
    if not _scan(scan, reversed(newest), met):
        if probe and newest and older_end > 0 and scan.terminal is None:
            # open, its claim further back: a stop request among the records read names the
            # token, else S2 tells it
            token = scan.token if scan.token is not None else await _current_token(basin, stream)
            if token is not None:
                return OpenGeneration(token, tail)
        older = records_backwards(basin, stream, older_end, first_window=TAIL_WINDOW * 4)
        async with contextlib.aclosing(older) as records:
            async for record in records:
                if scan.done_after(record):
                    break
                if len(met) <= SINCE_CLAIM_KEPT:
                    met.append(record)
    since_claim: tuple[SequencedRecord, ...] = ()
    claim = scan.claim
    if claim is not None and len(met) <= SINCE_CLAIM_KEPT:
        met.reverse()
        contiguous = not met or (
            met[0].seq_num == claim.seq_num + 1
            and met[-1].seq_num + 1 == tail.seq_num
            and len(met) == tail.seq_num - met[0].seq_num
        )
        if contiguous:
            since_claim = tuple(met)
    return LatestGeneration(claim, scan.terminal, scan.token, tail, last, since_claim)


def _scan(
    scan: _BoundaryScan, records: Iterable[SequencedRecord], met: list[SequencedRecord]
) -> bool:
    """Feed ``records`` (newest first) to ``scan`` until it is done (True), adding those
    newer than the boundary to ``met``."""
    for record in records:
        if scan.done_after(record):
            return True
        met.append(record)
    return False


class _BoundaryScan:
    """The boundary fences met going backwards from the tail (see :func:`latest_generation`)."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.terminal: SequencedRecord | None = None
        self.claim: SequencedRecord | None = None

    def done_after(self, record: SequencedRecord) -> bool:
        """Take the next older record; True once the latest generation's start is found."""
        kind = classify(record)
        if not (kind.boundary or kind is RecordKind.STOP):
            return False
        if self.token is None:
            self.token = fence_token(record)
        if kind is RecordKind.STOP:
            return False
        if kind is RecordKind.CLAIM:
            self.claim = record
            return True
        if self.terminal is not None:
            return True  # two terminals in a row: the claim of the newer one is gone
        self.terminal = record
        return False
