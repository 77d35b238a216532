"""Chunks stored across several records: cut, joined, and what readers do with a chunk cut off."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from resumable_chat.log import (
    LogConfig,
    LogEngine,
    RecordKind,
    latest_generation,
    read_range,
    record_id,
)
from resumable_chat.log.fragments import (
    FRAGMENT_HEADER,
    MAX_FRAGMENTS,
    fragment_records,
    join_fragments,
)
from resumable_chat.log.records import MAX_DATA_BODY_BYTES, SSE_ID_HEADER
from resumable_chat.log.takeover import close_lost
from resumable_chat.s2 import AppendInput, AppendRecord, MemoryBasin, fence_record
from resumable_chat.s2.records import (
    MAX_BATCH_METERED_BYTES,
    ReadBatch,
    SequencedRecord,
    metered_bytes,
    trim_record,
)

BIG = bytes(range(256)) * 9_000  # about 2.2 MiB: three fragments


def _sequenced(records: list[AppendRecord], start: int = 0) -> list[SequencedRecord]:
    return [SequencedRecord(start + i, 1, tuple(r.headers), r.body) for i, r in enumerate(records)]


def test_fragments_fit_a_record_and_join_to_the_body() -> None:
    records = fragment_records(BIG)
    assert records is not None and len(records) == 3
    assert [r.headers for r in records] == [
        ((FRAGMENT_HEADER, f"{i}/3".encode()),) for i in range(3)
    ]
    for record in records:  # room for the sse-id header a stop may add
        moved = AppendRecord(record.body, (*record.headers, (SSE_ID_HEADER, b"9" * 20)))
        assert metered_bytes(moved) <= MAX_BATCH_METERED_BYTES
    joined, pending = join_fragments(_sequenced(records, 5))
    assert pending is None
    assert joined == [SequencedRecord(7, 1, (), BIG)]


def test_a_body_just_over_one_record_is_two_fragments() -> None:
    records = fragment_records(b"x" * (MAX_DATA_BODY_BYTES + 1))
    assert records is not None and len(records) == 2


def test_a_body_over_the_limit_is_not_cut() -> None:
    assert fragment_records(b"x" * (MAX_DATA_BODY_BYTES * (MAX_FRAGMENTS + 1))) is None


def _fence(token: str, seq: int) -> SequencedRecord:
    record = fence_record(token)
    return SequencedRecord(seq, 1, tuple(record.headers), record.body)


def _log(*items: object) -> list[SequencedRecord]:
    """Records in order: bytes → a data record, str → a fence, list → fragments."""
    out: list[SequencedRecord] = []
    for item in items:
        if isinstance(item, bytes):
            out.append(SequencedRecord(len(out), 1, (), item))
        elif isinstance(item, str):
            out.append(_fence(item, len(out)))
        else:
            assert isinstance(item, list)
            out += _sequenced(item, len(out))
    return out


def _bodies(records: list[SequencedRecord]) -> list[bytes]:
    return [r.body for r in records if not r.headers]


def test_a_stop_request_or_a_heartbeat_between_fragments_keeps_the_chunk() -> None:
    parts = fragment_records(BIG)
    assert parts is not None
    log = _log(
        "session-a", b"{1}", parts[:1], "stop-a", parts[1:2], b"", parts[2:], b"{2}", "end-a"
    )
    joined, pending = join_fragments(log)
    assert pending is None
    assert _bodies(joined) == [b"{1}", b"", BIG, b"{2}"]


def test_a_chunk_cut_off_by_a_terminal_or_a_claim_is_dropped() -> None:
    parts = fragment_records(BIG)
    assert parts is not None
    for boundary in ("error-a", "session-b", "end-a"):
        joined, pending = join_fragments(_log("session-a", parts[:2], boundary, b"{next}"))
        assert pending is None
        assert [r.body for r in joined][1:] == [fence_record(boundary).body, b"{next}"]


def test_a_reader_starting_inside_a_chunk_skips_it_and_reads_on() -> None:
    parts = fragment_records(BIG)
    assert parts is not None
    joined, pending = join_fragments(_sequenced([*parts[1:], AppendRecord(b"{n}"), *parts], 10))
    assert [r.body for r in joined] == [b"{n}", BIG]
    assert pending is None


def test_records_ending_inside_a_chunk_say_where_it_began() -> None:
    parts = fragment_records(BIG)
    assert parts is not None
    joined, pending = join_fragments(_log("session-a", b"{1}", parts[:2], "stop-a"))
    assert pending == 2
    assert [r.body for r in joined] == [
        fence_record("session-a").body,
        b"{1}",
        fence_record("stop-a").body,
    ]


def test_odd_fragments_never_join() -> None:
    parts = fragment_records(BIG)
    assert parts is not None
    bad = [
        [parts[0], parts[0], parts[1]],  # a repeated index: the chunk restarts
        [parts[0], parts[2]],  # a gap
        [AppendRecord(b"x", ((FRAGMENT_HEADER, b"0/1"),))],  # one of one
        [AppendRecord(b"x", ((FRAGMENT_HEADER, b"zero"),)), parts[1], parts[2]],
        [AppendRecord(b"x", ((FRAGMENT_HEADER, b"3/3"),))],
    ]
    for records in bad:
        joined, _ = join_fragments(_sequenced(records))
        assert BIG not in [r.body for r in joined], records
    joined, _ = join_fragments(_sequenced([parts[0], *parts]))
    assert [r.body for r in joined] == [BIG]  # a first fragment again starts the chunk again


def test_the_joined_record_keeps_the_sse_id_of_its_last_fragment() -> None:
    parts = fragment_records(BIG)
    assert parts is not None
    moved = [AppendRecord(p.body, (*p.headers, (SSE_ID_HEADER, b"41"))) for p in parts]
    (joined,), _ = join_fragments(_sequenced(moved, 40))
    assert joined.headers == ((SSE_ID_HEADER, b"41"),) and record_id(joined) == 41


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(min_size=1, max_size=4).map(lambda b: ("data", b)),
            st.integers(2, 4).map(lambda n: ("chunk", n)),
            st.sampled_from([("stop", b""), ("heartbeat", b"")]),
        ),
        max_size=12,
    )
)
def test_whole_chunks_come_back_in_order_among_anything_else(
    items: list[tuple[str, object]],
) -> None:
    """Fragments are cut small here (their joining does not depend on their size)."""
    records: list[AppendRecord] = []
    expected: list[bytes] = []
    for index, (kind, value) in enumerate(items):
        if kind == "data":
            assert isinstance(value, bytes)
            records.append(AppendRecord(value))
            expected.append(value)
        elif kind == "chunk":
            assert isinstance(value, int)
            body = f"chunk {index} ".encode() * 3
            size = -(-len(body) // value)
            records += [
                AppendRecord(
                    body[i * size : (i + 1) * size], ((FRAGMENT_HEADER, f"{i}/{value}".encode()),)
                )
                for i in range(value)
            ]
            expected.append(body)
        elif kind == "stop":
            records.append(fence_record("stop-x"))
        else:
            records.append(AppendRecord(b""))
    joined, pending = join_fragments(_sequenced(records))
    assert pending is None
    assert [r.body for r in joined if not r.headers and r.body] == expected


class BatchCountingBasin(MemoryBasin):
    """A MemoryBasin whose live reads say when the reader took a batch and asked for more."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: asyncio.Queue[int] = asyncio.Queue()

    async def follow(  # type: ignore[override]
        self, stream: str, *, seq_num: int = 0, clamp: bool = False
    ) -> AsyncGenerator[ReadBatch, None]:
        async for batch in super().follow(stream, seq_num=seq_num, clamp=clamp):
            yield batch
            self.taken.put_nowait(len(batch.records))


async def test_a_follower_gets_a_chunk_whose_fragments_arrive_in_separate_appends() -> None:
    """Live: each fragment its own read batch: one event, when the last fragment arrives,
    with the last fragment's id; a chunk cut off by the error terminal is never yielded."""
    basin = BatchCountingBasin()
    engine = LogEngine(basin, LogConfig(lease_ms=60_000, heartbeat_ms=30_000))
    parts = fragment_records(BIG)
    assert parts is not None

    async def append(*records: AppendRecord) -> None:
        await basin.append("s", AppendInput(list(records)))

    await append(fence_record("session-a"))
    events: list[tuple[RecordKind, int, bytes]] = []

    async def follow() -> None:
        async with contextlib.aclosing(engine.follow("s", 0, until_closed=True)) as batches:
            async for batch in batches:
                events.extend((e.kind, e.id, e.body) for e in batch)

    reader = asyncio.create_task(follow())
    assert await basin.taken.get() == 1  # the claim
    for part in parts:
        await append(part)
        assert await basin.taken.get() == 1  # read alone, in a batch of its own
    await append(AppendRecord(b"{after}"), parts[0])
    await append(parts[1])
    await append(fence_record("error-a"))
    await asyncio.wait_for(reader, 10)
    await engine.aclose()
    assert [(k, i) for k, i, _ in events] == [
        (RecordKind.CLAIM, 0),
        (RecordKind.DATA, 4),
        (RecordKind.DATA, 5),
        (RecordKind.ERROR, 0),
    ]
    assert events[1][2] == BIG and events[2][2] == b"{after}"


async def test_a_takeover_builds_the_terminal_without_a_chunk_cut_off() -> None:
    """The writer died after two of three fragments: the lost terminal is built from the
    whole chunks only, and the log then reads as if the cut-off chunk was never stored."""
    basin = MemoryBasin()
    parts = fragment_records(BIG)
    assert parts is not None
    await basin.append("s", AppendInput([fence_record("session-a"), AppendRecord(b"{1}")]))
    await basin.append("s", AppendInput([parts[0]], fencing_token="session-a"))
    await basin.append("s", AppendInput([parts[1]], fencing_token="session-a"))
    seen: list[list[bytes]] = []

    def terminal(stream: str, bodies: list[bytes]) -> list[AppendRecord]:
        seen.append(bodies)
        return [AppendRecord(b"{lost}")]

    latest = await latest_generation(basin, "s")
    assert await close_lost(basin, "s", latest, terminal)
    assert seen == [[b"{1}"]]
    joined, pending = join_fragments(await read_range(basin, "s", 0))
    assert pending is None
    assert [r.body for r in joined if not r.headers] == [b"{1}", b"{lost}"]


async def _stored_log(basin: MemoryBasin) -> None:
    """Stream ``s``: a claim, a chunk, a chunk in three fragments with a stop request and a
    heartbeat between them (seq_nums 2, 4, 6: its id 7), a chunk, the end."""
    parts = fragment_records(BIG)
    assert parts is not None and len(parts) == 3
    records = [
        fence_record("session-a"),
        AppendRecord(b"{1}"),
        parts[0],
        fence_record("stop-a"),
        parts[1],
        AppendRecord(b""),
        parts[2],
        AppendRecord(b"{2}"),
        fence_record("end-a"),
    ]
    for record in records:  # one append each, as a writer stores them
        await basin.append("s", AppendInput([record]))


async def test_a_follow_from_any_cursor_gets_every_chunk_after_it_whole() -> None:
    """A resume cursor may be an id no frame carried (a client made it up), one that points
    between the fragments of a chunk: the follow reads that chunk from its first fragment,
    so it gets every chunk whose id is above the cursor, whole, and nothing below it."""
    basin = MemoryBasin()
    engine = LogEngine(basin, LogConfig(lease_ms=60_000, heartbeat_ms=30_000))
    await _stored_log(basin)
    end = (RecordKind.END, 0, fence_record("end-a").body)
    for cursor in range(1, 9):
        chunks = [
            (RecordKind.DATA, 2, b"{1}"),
            (RecordKind.DATA, 7, BIG),
            (RecordKind.DATA, 8, b"{2}"),
        ]
        expected = [*(chunk for chunk in chunks if chunk[1] > cursor), end]
        events = await asyncio.wait_for(_follow_events(engine, cursor, cursor), 10)
        assert events == expected, cursor
    await engine.aclose()


async def test_a_cursor_inside_a_chunk_whose_first_fragment_was_trimmed_reads_on() -> None:
    """The chunk's first fragments are gone (trimmed): the chunk cannot be read whole, so it
    is left out, and the follow goes on with the next chunk, as before it looked."""
    basin = MemoryBasin()
    engine = LogEngine(basin, LogConfig(lease_ms=60_000, heartbeat_ms=30_000))
    await _stored_log(basin)
    await basin.append("s", AppendInput([trim_record(4)]))
    assert (await read_range(basin, "s", 0))[0].seq_num == 4
    events = await asyncio.wait_for(_follow_events(engine, 5, 5), 10)
    assert [(kind, sse_id) for kind, sse_id, _ in events] == [
        (RecordKind.DATA, 8),
        (RecordKind.END, 0),
    ]
    await engine.aclose()


_BETWEEN = st.lists(st.sampled_from(["stop", "heartbeat"]), max_size=2)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(min_size=1, max_size=4).map(lambda b: ("data", b)),
            st.lists(_BETWEEN, min_size=2, max_size=4).map(lambda gaps: ("chunk", gaps)),
            st.sampled_from([("stop", None), ("heartbeat", None)]),
        ),
        max_size=8,
    ),
    st.integers(1, 40),
)
def test_a_follow_from_any_cursor_gets_exactly_the_chunks_after_it(
    items: list[tuple[str, Any]], cursor: int
) -> None:
    """Any log of chunks, chunks in fragments with stop requests and heartbeats between
    them, and any cursor (one a frame carried or not): a follow from the cursor yields
    exactly the chunks whose ids are above it, each whole, then the end."""
    records: list[AppendRecord] = [fence_record("session-a")]
    filler = {"stop": fence_record("stop-a"), "heartbeat": AppendRecord(b"")}
    for index, (kind, value) in enumerate(items):
        if kind == "data":
            records.append(AppendRecord(value))
        elif kind == "chunk":
            body = f"chunk {index} ".encode() * 3
            count = len(value)
            size = -(-len(body) // count)
            for i, gap in enumerate(value):
                part = body[i * size : (i + 1) * size]
                records.append(AppendRecord(part, ((FRAGMENT_HEADER, f"{i}/{count}".encode()),)))
                if i < count - 1:
                    records += [filler[name] for name in gap]
        else:
            records.append(filler[kind])
    records.append(fence_record("end-a"))
    joined, _ = join_fragments(_sequenced(records))
    expected = [
        (record_id(r), r.body)
        for r in joined
        if r.body and not any(name == b"" for name, _ in r.headers) and record_id(r) > cursor
    ]

    async def follow() -> list[tuple[int, bytes]]:
        basin = MemoryBasin()
        engine = LogEngine(basin, LogConfig(lease_ms=60_000, heartbeat_ms=30_000))
        for record in records:
            await basin.append("s", AppendInput([record]))
        start = min(cursor, len(records) - 1)  # a cursor past the end: only the end
        try:
            events = await asyncio.wait_for(_follow_events(engine, start, cursor), 10)
        finally:
            await engine.aclose()
        assert events[-1][0] is RecordKind.END
        return [(sse_id, body) for kind, sse_id, body in events if kind is RecordKind.DATA]

    assert asyncio.run(follow()) == expected


async def _follow_events(
    engine: LogEngine, start: int, cursor: int
) -> list[tuple[RecordKind, int, bytes]]:
    """What a follow of stream ``s`` from ``start`` with the resume cursor ``cursor`` yields,
    to the end."""
    follow = engine.follow("s", start, until_closed=True, skip_ids_through=cursor)
    events: list[tuple[RecordKind, int, bytes]] = []
    async with contextlib.aclosing(follow) as batches:
        async for batch in batches:
            events.extend((e.kind, e.id, e.body) for e in batch)
    return events
