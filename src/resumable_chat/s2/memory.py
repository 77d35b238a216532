"""``MemoryBasin``: the embedded log, an in-process basin with S2's semantics.

It is the default when no S2 account is configured and the store behind the bundled
S2-compatible test server. Behaviour follows S2 REST v1 as implemented by s2-lite
(``lite/src/backend``): gap-free seq_nums from 0, fencing checked before ``match_seq_num``,
fence and trim command records, client-prefer capped monotonic timestamps, the 416 rules of
unary reads, create-on-append and create-on-read. Live followers wake on append through an
``asyncio.Event`` per stream that has a waiting reader: no polling.
"""

from __future__ import annotations

import asyncio
import bisect
from array import array
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from resumable_chat.clock import SYSTEM_CLOCK, Clock
from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import (
    FencingTokenMismatchError,
    RangeNotSatisfiableError,
    S2InvalidError,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from resumable_chat.s2.records import (
    MAX_BATCH_METERED_BYTES,
    MAX_BATCH_RECORDS,
    MAX_FENCING_TOKEN_BYTES,
    MAX_STREAM_NAME_BYTES,
    AppendAck,
    AppendInput,
    AppendRecord,
    Header,
    ReadBatch,
    SequencedRecord,
    StreamPosition,
    is_command_record,
    is_fence,
    is_trim,
    metered_bytes,
    trim_target,
)

__all__ = ["MemoryBasin", "validate_stream_name"]

_MAX_WAIT_S = 60.0


def validate_stream_name(stream: str) -> None:
    """Raise ``S2InvalidError`` unless ``stream`` is 1 to 512 UTF-8 bytes (S2 stream names)."""
    size = len(stream.encode())
    if not 1 <= size <= MAX_STREAM_NAME_BYTES:
        raise S2InvalidError(
            f"stream name must be 1 to {MAX_STREAM_NAME_BYTES} bytes, got {size}",
            status=422,
            code="invalid",
        )


def _check_headers(record: AppendRecord) -> None:
    """Raise ``S2InvalidError`` (422) for a record S2 rejects for its headers: a command
    record that is not a valid fence or trim, or a header with an empty name (S2 REST v1
    "command records")."""
    if is_command_record(record):
        if is_fence(record):
            if len(record.body) > MAX_FENCING_TOKEN_BYTES:
                raise S2InvalidError(
                    "fencing token longer than 36 bytes", status=422, code="invalid"
                )
            try:
                record.body.decode()
            except UnicodeDecodeError:
                raise S2InvalidError(
                    "fencing token is not UTF-8", status=422, code="invalid"
                ) from None
        elif is_trim(record):
            if len(record.body) != 8:
                raise S2InvalidError("trim body must be 8 bytes", status=422, code="invalid")
        else:
            raise S2InvalidError("unknown command record", status=422, code="invalid")
    elif any(name == b"" for name, _ in record.headers):
        raise S2InvalidError("header name is empty", status=422, code="invalid")


#: A stored record as a reader gets it: ``(seq_num, timestamp, headers, body)``.
_Stored = tuple[int, int, tuple[Header, ...], bytes]
#: A record as kept: its body when it has no headers (every chunk of an answer), else
#: ``(headers, body)``; seq_num and timestamp follow from its position.
_Kept = bytes | tuple[tuple[Header, ...], bytes]
#: Records per sealed block of a stream's storage.
_BLOCK = 1024


@dataclass(slots=True)
class _Stream:
    """One stream's records and state.

    Records are kept out of the garbage collector's way: a record without headers is its
    body (bytes: never tracked, and no new object), one with headers a tuple of bytes, which
    CPython stops tracking after its first look; they are sealed in tuples of :data:`_BLOCK`
    records (also untracked), with timestamps in an ``array`` and seq_nums implied by position.
    A full collection then visits one object per block instead of several per record: at
    400,000 records a full collection took ~100 ms with a tracked object per record, and paused
    every request of the process. And an append allocates no container that outlives it, so it
    brings the next young collection no closer (one kept tuple per record made an answer's
    appends trigger one every ~700 chunks, with a full one every few hundred thousand).
    """

    blocks: list[tuple[_Kept, ...]] = field(default_factory=list)  # sealed, _BLOCK each
    open: list[_Kept] = field(default_factory=list)  # the newest, fewer than _BLOCK
    dead: int = 0  # trimmed records still at the front of blocks[0]
    timestamps: array[int] = field(default_factory=lambda: array("q"))  # of live records
    next_seq_num: int = 0
    last_timestamp: int = 0
    fencing_token: str = ""
    trim_point: int = 0
    waiter: asyncio.Event | None = None  # set on the next change; made when someone waits

    @property
    def count(self) -> int:
        """How many records are kept (not trimmed)."""
        return len(self.blocks) * _BLOCK + len(self.open) - self.dead

    @property
    def first_seq_num(self) -> int:
        return self.next_seq_num - self.count

    def tail(self) -> StreamPosition:
        return StreamPosition(self.next_seq_num, self.last_timestamp)

    def index_of(self, seq_num: int) -> int:
        """Index (among kept records) of the first record with seq_num ≥ ``seq_num``."""
        return max(0, seq_num - self.first_seq_num)

    def add(self, timestamp: int, headers: tuple[Header, ...], body: bytes) -> None:
        """Keep the record at seq_num :attr:`next_seq_num` (the caller advances it)."""
        self.open.append((headers, body) if headers else body)
        self.timestamps.append(timestamp)
        if len(self.open) == _BLOCK:
            self._seal()

    def _seal(self) -> None:
        """Seal the open records, :data:`_BLOCK` of them, into a block."""
        self.blocks.append(tuple(self.open))
        self.open = []

    def add_body(self, timestamp: int, body: bytes) -> int:
        """Keep a record without headers at the tail, timestamped ``timestamp`` (ms) or the
        last record's timestamp if that is later (S2 keeps a stream's timestamps
        non-decreasing); wake the readers; return the timestamp it got.

        Every chunk of a running answer on the embedded basin comes here: :meth:`add` is
        written out in it, a call less per chunk."""
        if timestamp < self.last_timestamp:
            timestamp = self.last_timestamp
        kept = self.open
        kept.append(body if type(body) is bytes else bytes(body))
        self.timestamps.append(timestamp)
        if len(kept) == _BLOCK:
            self._seal()
        self.next_seq_num += 1
        self.last_timestamp = timestamp
        if self.waiter is not None:
            self.wake()
        return timestamp

    def get(self, index: int) -> _Stored:
        """The kept record at ``index`` (0 ≤ index < :attr:`count`)."""
        block, offset = divmod(index + self.dead, _BLOCK)
        kept = self.blocks[block][offset] if block < len(self.blocks) else self.open[offset]
        seq_num = self.next_seq_num - self.count + index
        if isinstance(kept, bytes):
            return (seq_num, self.timestamps[index], (), kept)
        return (seq_num, self.timestamps[index], kept[0], kept[1])

    def drop(self, n: int) -> None:
        """Forget the ``n`` oldest kept records (a trim)."""
        n = min(n, self.count)
        del self.timestamps[:n]
        whole, self.dead = divmod(self.dead + n, _BLOCK)
        if whole > len(self.blocks):  # into the open records too
            self.dead += (whole - len(self.blocks)) * _BLOCK
            whole = len(self.blocks)
        del self.blocks[:whole]
        if not self.blocks and self.dead:
            del self.open[: self.dead]
            self.dead = 0

    def changed(self) -> asyncio.Event:
        """An event set at the stream's next change (append, trim, deletion, close). Made
        only when a reader waits: most streams never have one (no memory for an event per
        stream, and none made per append)."""
        if self.waiter is None:
            self.waiter = asyncio.Event()
        return self.waiter

    def wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter.set()


class MemoryBasin(Basin):
    """An in-process basin with the semantics of S2 (see the module docstring).

    Data lives only as long as the object. Not thread-safe: use it from one event loop.

    Args:
        name: a label for ``repr`` and logs (the basin name of S2).
        create_stream_on_append: mirrors the S2 basin setting: with it off, an append to a
            missing stream raises ``StreamNotFoundError``.
        create_stream_on_read: likewise for reads and check-tail.
        clock: where arrival timestamps come from (a virtual clock in simulations).
    """

    in_memory = True

    def __init__(
        self,
        name: str = "embedded",
        *,
        create_stream_on_append: bool = True,
        create_stream_on_read: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = name
        self.clock = clock
        self.create_stream_on_append = create_stream_on_append
        self.create_stream_on_read = create_stream_on_read
        self._streams: dict[str, _Stream] = {}
        self._closed = False
        # append_body_nowait stands in for append(): not in a subclass that overrides it
        self._own_append = type(self).append is MemoryBasin.append

    def __repr__(self) -> str:
        return f"MemoryBasin(name={self.name!r}, streams={len(self._streams)})"

    # -- helpers ---------------------------------------------------------------------------

    def _get(self, stream: str, *, create: bool) -> _Stream:
        validate_stream_name(stream)
        state = self._streams.get(stream)
        if state is None:
            if not create:
                raise StreamNotFoundError(stream)
            state = self._streams[stream] = _Stream()
        return state

    def stream_names(self) -> list[str]:
        """Names of the streams that exist, sorted (a convenience for tests and tools)."""
        return sorted(self._streams)

    # -- Basin -----------------------------------------------------------------------------

    async def create_stream(self, stream: str) -> None:
        """Create ``stream`` if missing (idempotent)."""
        self._get(stream, create=True)

    async def delete_stream(self, stream: str) -> None:
        """Delete ``stream``; followers of it see no more records. Missing is not an error."""
        state = self._streams.pop(stream, None)
        if state is not None:
            state.wake()

    async def check_tail(self, stream: str) -> StreamPosition:
        """The tail of ``stream``.

        Raises ``StreamNotFoundError`` if it is missing and not auto-created.
        """
        return self._get(stream, create=self.create_stream_on_read).tail()

    async def append(self, stream: str, input: AppendInput) -> AppendAck:
        """Append one atomic batch (S2 REST v1 append semantics; see :meth:`Basin.append`)."""
        return self._append(stream, input)

    def append_nowait(self, stream: str, input: AppendInput) -> AppendAck | None:
        """:meth:`append` synchronously (see :meth:`Basin.append_nowait`); ``None`` in a
        subclass that overrides :meth:`append`, so its override is never bypassed."""
        if not self._own_append:
            return None
        return self._append(stream, input)

    def append_body_nowait(
        self, stream: str, body: bytes, *, match_seq_num: int, fencing_token: str
    ) -> int | None:
        """:meth:`Basin.append_body_nowait`: the record is stored at once when the stream
        exists, holds ``fencing_token``, has its tail at ``match_seq_num`` and the record
        fits a batch; else ``None`` (nothing written; :meth:`append` raises what S2 would).
        Also ``None`` in a subclass that overrides :meth:`append`."""
        state = self._streams.get(stream)
        if (
            state is None
            or state.next_seq_num != match_seq_num
            or state.fencing_token != fencing_token
            or len(body) > MAX_BATCH_METERED_BYTES - 8
            or not self._own_append
        ):
            return None
        return state.add_body(self.clock.now_ms(), body)

    def _append(self, stream: str, input: AppendInput) -> AppendAck:
        records = input.records
        if len(records) == 1 and not records[0].headers:
            return self._append_data(stream, input, records[0])
        if not 1 <= len(records) <= MAX_BATCH_RECORDS:
            raise S2InvalidError(
                f"a batch holds 1 to {MAX_BATCH_RECORDS} records, got {len(records)}",
                status=422,
                code="invalid",
            )
        total = 0
        for record in records:
            if record.headers:
                _check_headers(record)
                total += metered_bytes(record)
            else:  # a plain data record: nothing to check, 8 bytes of overhead
                total += 8 + len(record.body)
        state = self._admit(stream, input, total)
        arrival = self.clock.now_ms()
        start_seq = state.next_seq_num
        first_ts: int | None = None
        trim_to: int | None = None
        add = state.add
        for record in records:
            ts = arrival if record.timestamp is None else min(record.timestamp, arrival)
            if ts < state.last_timestamp:
                ts = state.last_timestamp
            seq = state.next_seq_num
            headers = record.headers
            add(ts, tuple(headers) if headers else (), bytes(record.body))
            state.next_seq_num = seq + 1
            state.last_timestamp = ts
            if first_ts is None:
                first_ts = ts
            if not headers:
                continue
            if is_fence(record):
                state.fencing_token = record.body.decode()
            elif is_trim(record):
                target = min(trim_target(record), seq + 1)
                trim_to = target if trim_to is None else max(trim_to, target)
        if trim_to is not None and trim_to > state.trim_point:
            state.trim_point = trim_to
            state.drop(state.index_of(trim_to))
        state.wake()
        assert first_ts is not None
        end = StreamPosition(state.next_seq_num, state.last_timestamp)
        return AppendAck(start=StreamPosition(start_seq, first_ts), end=end, tail=end)

    def _admit(self, stream: str, input: AppendInput, metered: int) -> _Stream:
        """The stream a batch of ``metered`` bytes (its records already checked) may be
        appended to, after S2's checks in S2's order: the 1 MiB limit and the token's 36
        bytes (422), then the stream (created or ``StreamNotFoundError``), then the
        ``fencing_token`` and ``match_seq_num`` conditions (412)."""
        if metered > MAX_BATCH_METERED_BYTES:
            raise S2InvalidError(
                f"batch is {metered} metered bytes; the limit is {MAX_BATCH_METERED_BYTES}",
                status=422,
                code="invalid",
            )
        token = input.fencing_token
        if token is not None and len(token.encode()) > MAX_FENCING_TOKEN_BYTES:
            raise S2InvalidError("fencing token longer than 36 bytes", status=422, code="invalid")
        state = self._streams.get(stream)  # an existing stream's name was checked already
        if state is None:
            state = self._get(stream, create=self.create_stream_on_append)
        if token is not None and token != state.fencing_token:
            raise FencingTokenMismatchError(state.fencing_token)
        if input.match_seq_num is not None and input.match_seq_num != state.next_seq_num:
            raise SeqNumMismatchError(state.next_seq_num)
        return state

    def _append_data(self, stream: str, input: AppendInput, record: AppendRecord) -> AppendAck:
        """:meth:`_append` of a batch of one record without headers (a chunk of an answer:
        the writer's common case), with the same checks and outcome, and no loop over the
        batch."""
        body = record.body
        state = self._admit(stream, input, 8 + len(body))
        seq = state.next_seq_num
        arrival = self.clock.now_ms()
        ts = state.add_body(
            arrival if record.timestamp is None else min(record.timestamp, arrival), body
        )
        end = StreamPosition(seq + 1, ts)
        return AppendAck(StreamPosition(seq, ts), end, end)

    def _start_index(
        self,
        state: _Stream,
        seq_num: int | None,
        timestamp: int | None,
        tail_offset: int | None,
        clamp: bool,
    ) -> tuple[int, bool]:
        """Resolve the start to a seq_num, raising 416 when it is past the tail.

        The flag is true when the start came from ``timestamp`` (not clamped): s2-lite
        (``read_start_seq_num``) applies its "at the tail and cannot wait" 416 only to a
        seq_num start, so a timestamp that resolves to the tail reads an empty batch.
        """
        given = sum(x is not None for x in (seq_num, timestamp, tail_offset))
        if given > 1:
            raise S2InvalidError(
                "at most one of seq_num, timestamp, tail_offset", status=422, code="invalid"
            )
        tail = state.next_seq_num
        if seq_num is not None:
            if seq_num < 0:
                raise S2InvalidError("seq_num must be ≥ 0", status=422, code="invalid")
            if seq_num > tail:
                if not clamp:
                    raise RangeNotSatisfiableError(state.tail())
                return tail, False
            return seq_num, False
        if timestamp is not None:
            if timestamp > state.last_timestamp:
                if not clamp:
                    raise RangeNotSatisfiableError(state.tail())
                return tail, False
            idx = bisect.bisect_left(state.timestamps, timestamp)
            return state.first_seq_num + idx, True
        offset = tail_offset or 0
        if offset < 0:
            raise S2InvalidError("tail_offset must be ≥ 0", status=422, code="invalid")
        return max(0, tail - offset), False

    def _collect(
        self,
        state: _Stream,
        start: int,
        count: int,
        limit_bytes: int,
        until: int | None,
    ) -> tuple[list[SequencedRecord], bool]:
        """Records from ``start`` within the limits; the flag says a limit stopped it."""
        out: list[SequencedRecord] = []
        used = 0
        i = state.index_of(start)
        kept = state.count
        while i < kept:
            stored = state.get(i)
            if until is not None and stored[1] >= until:
                return out, True
            record = SequencedRecord(*stored)
            size = 8 + len(stored[3])  # metered_bytes(record), inline: reads are hot
            for name, value in stored[2]:
                size += 2 + len(name) + len(value)
            # s2-lite (``backend/read.rs``) stops at the first record that would break the
            # count or bytes limit, even when nothing was collected yet.
            if len(out) >= count or used + size > limit_bytes:
                return out, True
            out.append(record)
            used += size
            i += 1
        return out, False

    async def read(
        self,
        stream: str,
        *,
        seq_num: int | None = None,
        timestamp: int | None = None,
        tail_offset: int | None = None,
        count: int | None = None,
        bytes: int | None = None,
        until: int | None = None,
        clamp: bool = False,
        wait: float = 0,
    ) -> ReadBatch:
        """One bounded read with S2's start, limit and 416 rules (see :meth:`Basin.read`)."""
        if (count is not None and count < 0) or (bytes is not None and bytes < 0):
            raise S2InvalidError("count and bytes must be ≥ 0", status=422, code="invalid")
        if timestamp is not None and until is not None and timestamp >= until:
            raise S2InvalidError("timestamp must be below until", status=422, code="invalid")
        state = self._get(stream, create=self.create_stream_on_read)
        start, by_timestamp = self._start_index(state, seq_num, timestamp, tail_offset, clamp)
        start = max(start, state.first_seq_num)
        limit_count = min(count if count is not None else MAX_BATCH_RECORDS, MAX_BATCH_RECORDS)
        limit_bytes = min(
            bytes if bytes is not None else MAX_BATCH_METERED_BYTES, MAX_BATCH_METERED_BYTES
        )
        wait = min(max(wait, 0.0), _MAX_WAIT_S)
        if start >= state.next_seq_num:
            if wait <= 0:
                if by_timestamp:
                    return ReadBatch([], None)
                raise RangeNotSatisfiableError(state.tail())
            if limit_count == 0 or limit_bytes == 0:
                return ReadBatch([], state.tail())
            changed = state.changed()
            try:
                await asyncio.wait_for(changed.wait(), wait)
            except TimeoutError:
                return ReadBatch([], state.tail())
            state = self._streams.get(stream, state)
            start = max(start, state.first_seq_num)
        records, _ = self._collect(state, start, limit_count, limit_bytes, until)
        reached = not records or records[-1].seq_num + 1 >= state.next_seq_num
        return ReadBatch(records, state.tail() if reached else None)

    async def follow(
        self, stream: str, *, seq_num: int = 0, clamp: bool = False
    ) -> AsyncGenerator[ReadBatch, None]:
        """Yield batches from ``seq_num`` on and wait for appends live (no polling)."""
        state = self._get(stream, create=self.create_stream_on_read)
        if seq_num > state.next_seq_num:
            if not clamp:
                raise RangeNotSatisfiableError(state.tail())
            seq_num = state.next_seq_num
        position = seq_num
        while not self._closed:
            if self._streams.get(stream) is not state:
                return  # deleted
            position = max(position, state.first_seq_num)
            if position < state.next_seq_num:
                i = state.index_of(position)
                end = min(state.count, i + MAX_BATCH_RECORDS)
                records = [SequencedRecord(*state.get(j)) for j in range(i, end)]
                position = records[-1].seq_num + 1
                yield ReadBatch(records, state.tail())
                continue
            await state.changed().wait()  # no await since the check: no change is missed

    async def aclose(self) -> None:
        """Stop every live follower. The data stays readable."""
        self._closed = True
        for state in self._streams.values():
            state.wake()
