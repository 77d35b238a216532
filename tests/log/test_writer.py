"""The fenced batching writer: order, batching, fencing and terminal records."""

from __future__ import annotations

import asyncio
import gc
import itertools

import pytest

from helpers import append_lags
from resumable_chat.log import FencedOutError
from resumable_chat.log.records import stop_token
from resumable_chat.log.scan import read_range
from resumable_chat.log.writer import KEPT_ACKED_BYTES, LogWriter, WriterClosedError
from resumable_chat.s2 import (
    AppendInput,
    AppendRecord,
    Basin,
    MemoryBasin,
    SequencedRecord,
    fence_record,
    is_fence,
)
from resumable_chat.testing.virtual_time import run_virtual


class CountingBasin(MemoryBasin):
    """A MemoryBasin that records the size of every append batch, optionally slowed down."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.delay_s = delay_s

    async def append(self, stream, input):  # type: ignore[no-untyped-def]
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        ack = await super().append(stream, input)
        self.batches.append(len(input.records))
        return ack


class AckedBasin(MemoryBasin):
    """A MemoryBasin that stores nothing at submit (no ``append_body_nowait``): every
    record goes in a batch and is acknowledged, as over HTTP, so the writer keeps its window
    of acknowledged records (on the embedded basin the log itself is in memory)."""

    append_body_nowait = Basin.append_body_nowait


async def _claimed(basin: MemoryBasin, stream: str, token: str = "session-t") -> int:
    ack = await basin.append(
        stream, AppendInput([fence_record(token)], match_seq_num=0, fencing_token="")
    )
    return ack.end.seq_num


async def _bodies(basin: MemoryBasin, stream: str) -> list[bytes]:
    batch = await basin.read(stream, seq_num=0, count=1000)
    return [r.body for r in batch.records if not r.headers]


async def test_records_land_in_order_with_predicted_seq_nums() -> None:
    basin = CountingBasin()
    start = await _claimed(basin, "s")
    writer = LogWriter(basin, "s", fencing_token="session-t", match_seq_num=start)
    seqs = [writer.submit(AppendRecord(f"r{i}".encode())) for i in range(50)]
    await writer.close([fence_record("end-x")])
    assert seqs == list(range(1, 51))
    batch = await basin.read("s", seq_num=0, count=1000)
    assert [r.seq_num for r in batch.records] == list(range(52))
    assert [r.body for r in batch.records[1:51]] == [f"r{i}".encode() for i in range(50)]
    assert is_fence(batch.records[-1]) and batch.records[-1].body == b"end-x"


async def test_one_append_in_flight_batches_what_queued_meanwhile() -> None:
    basin = CountingBasin(delay_s=0.02)
    start = await _claimed(basin, "s")
    basin.batches.clear()
    writer = LogWriter(basin, "s", fencing_token="session-t", match_seq_num=start)
    writer.submit(AppendRecord(b"first"))
    await asyncio.sleep(0.005)  # the first append is in flight now
    for i in range(30):
        writer.submit(AppendRecord(b"x%d" % i))
    await writer.close()
    assert basin.batches == [1, 30]


async def test_batch_size_and_linger() -> None:
    basin = CountingBasin()
    start = await _claimed(basin, "s")
    basin.batches.clear()
    writer = LogWriter(
        basin, "s", fencing_token="session-t", match_seq_num=start, batch_size=7, linger_ms=30
    )
    for i in range(20):
        writer.submit(AppendRecord(b"%d" % i))
    await writer.close()
    assert basin.batches == [7, 7, 6]
    assert len(await _bodies(basin, "s")) == 20


async def test_linger_holds_a_lone_record_then_sends_it() -> None:
    basin = CountingBasin()
    start = await _claimed(basin, "s")
    writer = LogWriter(basin, "s", fencing_token="session-t", match_seq_num=start, linger_ms=40)
    writer.submit(AppendRecord(b"a"))
    await asyncio.sleep(0.01)
    assert await _bodies(basin, "s") == []
    await asyncio.sleep(0.08)
    assert await _bodies(basin, "s") == [b"a"]
    await writer.close()


async def test_batches_respect_one_mebibyte_metered() -> None:
    basin = CountingBasin(delay_s=0.01)
    start = await _claimed(basin, "s")
    basin.batches.clear()
    writer = LogWriter(basin, "s", fencing_token="session-t", match_seq_num=start)
    writer.submit(AppendRecord(b"0"))
    big = b"x" * (300 * 1024)
    for _ in range(7):
        writer.submit(AppendRecord(big))
    await writer.close()
    assert basin.batches == [4, 3, 1]  # 3 x 300 KiB + a small one fit in 1 MiB; 4 do not


async def test_a_foreign_fence_stops_the_writer_and_close_raises() -> None:
    basin = MemoryBasin()
    start = await _claimed(basin, "s")
    writer = LogWriter(basin, "s", fencing_token="session-t", match_seq_num=start)
    writer.submit(AppendRecord(b"kept"))
    await asyncio.sleep(0.01)
    await basin.append("s", AppendInput([fence_record("end-stolen")]))
    writer.submit(AppendRecord(b"dropped"))
    with pytest.raises(FencedOutError) as raised:
        await writer.close([fence_record("end-mine")])
    assert raised.value.token == "end-stolen"
    assert await _bodies(basin, "s") == [b"kept"]
    assert isinstance(writer.error, FencedOutError)


async def test_submit_after_close_and_bad_arguments() -> None:
    basin = MemoryBasin()
    writer = LogWriter(basin, "s", fencing_token="", match_seq_num=0)
    await writer.close()
    with pytest.raises(WriterClosedError):
        writer.submit(AppendRecord(b"late"))
    with pytest.raises(ValueError):
        LogWriter(basin, "s", fencing_token="", match_seq_num=0, batch_size=1001)
    with pytest.raises(ValueError):
        LogWriter(basin, "s", fencing_token="", match_seq_num=0, linger_ms=-1)
    with pytest.raises(ValueError):
        LogWriter(basin, "s", fencing_token="", match_seq_num=0).submit(
            AppendRecord(b"x" * (1024 * 1024))
        )


async def _stored_through(writer: LogWriter, end: int) -> None:
    """Wait (on the writer's acknowledgements, not on time) until every record below seq_num
    ``end`` is stored."""
    if writer.durable_seq_num >= end:
        return
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def heard(records: list[SequencedRecord] | None) -> None:
        if not done.done() and (records is None or records[-1].seq_num + 1 >= end):
            done.set_result(None)

    writer.listen(heard)
    try:
        await asyncio.wait_for(done, 5)
    finally:
        writer.unlisten(heard)


async def test_listeners_get_exactly_the_acknowledged_records_then_the_end() -> None:
    """What a listener gets equals what the log holds from where it joined: every batch, the
    stop requests the writer adopted (another instance's ``stop-`` fence) and the terminal,
    with their seq_nums; then ``None``."""
    basin = CountingBasin(delay_s=0.001)
    start = await _claimed(basin, "s")
    writer = LogWriter(basin, "s", fencing_token="session-t", match_seq_num=start)
    got: list[object] = []
    writer.submit(AppendRecord(b"before"))
    await _stored_through(writer, 2)
    joined = writer.listen(lambda records: got.append(records))
    assert joined == 2
    writer.submit(AppendRecord(b"a"))
    await _stored_through(writer, 3)
    stop = AppendInput([fence_record("stop-other")], match_seq_num=3, fencing_token="session-t")
    await basin.append("s", stop)  # another instance asks this generation to stop
    writer.submit(AppendRecord(b"b"))
    await writer.close([fence_record("end-x")])
    assert got[-1] is None
    delivered = [r for batch in got[:-1] for r in batch]  # type: ignore[union-attr]
    stored = (await basin.read("s", seq_num=joined, count=100)).records
    assert [(r.seq_num, r.body, r.headers) for r in delivered] == [
        (r.seq_num, r.body, r.headers) for r in stored
    ]
    assert [r.body for r in stored] == [b"a", b"stop-other", b"b", b"end-x"]
    assert writer.listen(lambda records: None) is None  # ended: nobody is kept


async def test_acknowledged_records_kept_in_memory_equal_the_log() -> None:
    """``acknowledged_since`` gives what the log holds from a position (the writer's batches
    and an adopted stop request, with their seq_nums and headers) while the writer keeps it
    all; past :data:`KEPT_ACKED_BYTES` the oldest are dropped and it says ``None``."""
    basin = AckedBasin()
    start = await _claimed(basin, "s")
    writer = LogWriter(basin, "s", fencing_token="session-t", match_seq_num=start)
    writer.submit(AppendRecord(b"a"))
    await _stored_through(writer, 2)
    stop = AppendInput([fence_record("stop-other")], match_seq_num=2, fencing_token="session-t")
    await basin.append("s", stop)
    writer.submit(AppendRecord(b"b"))
    await _stored_through(writer, 4)

    async def matches(seq_num: int) -> bool:
        kept = writer.acknowledged_since(seq_num)
        stored = (await basin.read("s", seq_num=seq_num, count=1000)).records
        assert kept is not None
        return [(r.seq_num, r.headers, r.body) for r in kept] == [
            (r.seq_num, r.headers, r.body) for r in stored
        ]

    assert [await matches(n) for n in (1, 2, 3)] == [True, True, True]
    assert writer.acknowledged_since(4) == []
    assert writer.acknowledged_since(5) is None  # past the tail
    assert writer.acknowledged_since(0) is None  # the claim is not the writer's

    big = b"x" * (KEPT_ACKED_BYTES // 4)
    for _ in range(6):
        writer.submit(AppendRecord(big))
        await _stored_through(writer, writer.next_seq_num)
    assert writer.acknowledged_since(1) is None  # dropped: a reader reads S2 instead
    assert await matches(writer.durable_seq_num - 2)
    await writer.close()


async def test_kept_records_add_nothing_for_the_garbage_collector_to_visit() -> None:
    """A running writer keeps its newest records (for readers on the same process), but a
    stored chunk leaves no object the cyclic collector tracks: full collections, which pause
    the whole process, cost the same with 2,000 chunks kept as with none. Records with
    headers (an id moved by a stop) are kept as they are and still read back as the log."""
    basin = AckedBasin()
    start = await _claimed(basin, "s")
    writer = LogWriter(basin, "s", fencing_token="session-t", match_seq_num=start)

    async def store(count: int) -> None:
        for i in range(count):
            writer.submit(AppendRecord(b"chunk %d" % i))
            if i % 7 == 0:
                await asyncio.sleep(0)  # batches of one and of several
        await _stored_through(writer, writer.next_seq_num)

    await store(100)  # the first use imports and caches what it needs
    gc.collect()
    before = len(gc.get_objects())
    await store(2000)
    gc.collect()
    assert len(gc.get_objects()) - before < 200  # kept as objects: 3 per record
    mixed = [AppendRecord(b"plain"), AppendRecord(b"with id", ((b"id", b"7"),))]
    for record in mixed:
        writer.submit(record)
    await _stored_through(writer, writer.next_seq_num)
    kept = writer.acknowledged_since(1)
    stored = await read_range(basin, "s", 1)
    assert kept is not None and len(kept) == 2102
    assert [(r.seq_num, r.timestamp, r.headers, r.body) for r in kept] == [
        (r.seq_num, r.timestamp, r.headers, r.body) for r in stored
    ]
    await writer.close()


async def test_the_kept_window_slides_and_still_equals_the_log() -> None:
    """Far past :data:`KEPT_ACKED_BYTES` (the window forgets thousands of records and
    compacts), in batches of every size: from any position still kept, the records read back
    as the log holds them; from one forgotten, ``None``."""
    basin = AckedBasin()
    start = await _claimed(basin, "s")
    writer = LogWriter(basin, "s", fencing_token="session-t", match_seq_num=start)
    body = b"y" * 200
    for i in range(16_000):  # 3.3 MB metered
        writer.submit(AppendRecord(body + b"%d" % i))
        if i % 13 == 0:
            await asyncio.sleep(0)
    await _stored_through(writer, writer.next_seq_num)
    end = writer.durable_seq_num
    first_kept = next(n for n in range(start, end) if writer.acknowledged_since(n) is not None)
    assert end - first_kept < 6000  # about 1 MiB of 220-byte records
    assert writer.acknowledged_since(first_kept - 1) is None
    for position in (first_kept, first_kept + 1, (first_kept + end) // 2, end - 1):
        kept = writer.acknowledged_since(position)
        stored = await read_range(basin, "s", position)
        assert kept is not None
        assert [(r.seq_num, r.timestamp, r.body) for r in kept] == [
            (r.seq_num, r.timestamp, r.body) for r in stored
        ]
    await writer.close()


async def test_storing_chunks_brings_no_young_collection_closer() -> None:
    """Appending a chunk allocates no container that outlives it, in the writer's window or
    in the embedded basin: CPython starts a young collection after 700 more container
    allocations than deallocations, so 7,000 stored chunks cause (almost) none. With kept
    tuples per record (two in the window, one in the basin), they caused 13."""
    basin = MemoryBasin()
    start = await _claimed(basin, "s")
    writer = LogWriter(basin, "s", fencing_token="session-t", match_seq_num=start)
    writer.submit(AppendRecord(b"warm-up"))
    await _stored_through(writer, writer.next_seq_num)
    young: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 0:
            young.append(1)

    gc.collect()
    gc.callbacks.append(count)
    try:
        for i in range(7000):
            writer.submit(AppendRecord(b"chunk %d" % i))
            await asyncio.sleep(0)  # one append per chunk, as from a paced model
        await _stored_through(writer, writer.next_seq_num)
    finally:
        gc.callbacks.remove(count)
    assert len(young) <= 3, len(young)
    await writer.close()


async def test_a_writer_closed_before_writing_releases_its_listeners() -> None:
    basin = MemoryBasin()
    for end in ("close", "cancel", "aclose"):
        writer = LogWriter(basin, "s", fencing_token="", match_seq_num=0)
        got: list[object] = []
        assert writer.listen(got.append) == 0
        if end == "close":
            await writer.close()
        elif end == "cancel":
            writer.cancel()
        else:
            await writer.aclose()
        assert got == [None], end


async def _watched_writer(basin: MemoryBasin) -> tuple[LogWriter, list[str], asyncio.Event]:
    """A writer of stream ``s`` claimed as ``session-mine``, the tokens it held each time it
    was told of a stop, and an event set at each acknowledgement."""
    start = await _claimed(basin, "s", "session-mine")
    writer = LogWriter(basin, "s", fencing_token="session-mine", match_seq_num=start)
    stops: list[str] = []
    writer.on_stop_requested = lambda: stops.append(writer.fencing_token)
    stored = asyncio.Event()
    writer.listen(lambda records: stored.set())
    return writer, stops, stored


async def test_a_stop_of_a_later_generation_is_not_taken_for_ours() -> None:
    """Taken over, then the next generation was stopped: the stream's token is a stop that
    names the other claim, so the writer neither stops early nor adopts it; it is fenced out.
    A stop naming our claim is seen at the failed append (and again when adopted)."""
    basin = MemoryBasin()
    writer, stops, stored = await _watched_writer(basin)
    writer.submit(AppendRecord(b"kept"))
    await asyncio.wait_for(stored.wait(), 5)  # acknowledged
    for token, condition in (
        ("error-taken", "session-mine"),
        ("session-next", "error-taken"),
        (stop_token("session-next"), "session-next"),
    ):
        await basin.append("s", AppendInput([fence_record(token)], fencing_token=condition))
    writer.submit(AppendRecord(b"dropped"))
    with pytest.raises(FencedOutError):
        await writer.close([fence_record("end-mine")])
    assert stops == []
    assert await _bodies(basin, "s") == [b"kept"]

    other = MemoryBasin()
    start = await _claimed(other, "s", "session-mine")
    writer = LogWriter(other, "s", fencing_token="session-mine", match_seq_num=start)
    writer.on_stop_requested = lambda: stops.append(writer.fencing_token)
    await other.append(
        "s", AppendInput([fence_record(stop_token("session-mine"))], fencing_token="session-mine")
    )
    writer.submit(AppendRecord(b"after the stop"))
    await writer.close([fence_record("end-mine")])
    assert stops == ["session-mine", stop_token("session-mine")]  # at the 412, then adopted
    stored = (await other.read("s", seq_num=0, count=10)).records
    assert [r.body for r in stored if not is_fence(r)] == [b"after the stop"]


class StopBehindLandedBasin(MemoryBasin):
    """A basin whose next data append lands, is followed at once by a stop of the claim, and
    is answered with the 412 of a retry that the basin made by itself (an ack lost on the
    wire, as ``HttpBasin`` retries it)."""

    def __init__(self, claim: str) -> None:
        super().__init__()
        self.claim = claim
        self.armed = False

    async def append(self, stream, input):  # type: ignore[no-untyped-def]
        if not self.armed or input.fencing_token != self.claim:
            return await super().append(stream, input)
        self.armed = False
        await super().append(stream, input)
        stop = AppendInput([fence_record(stop_token(self.claim))], fencing_token=self.claim)
        await super().append(stream, stop)
        return await super().append(stream, input)  # the retry: FencingTokenMismatchError


async def test_a_landed_batch_with_a_stop_behind_it_is_kept_and_the_stop_adopted() -> None:
    """The basin's own retry of a batch whose ack was lost meets the stop written right
    behind it: the writer finds its batch at its position, keeps it (not taken for another
    writer's) and then adopts the stop; nothing is dropped or written twice."""
    basin = StopBehindLandedBasin("session-mine")
    writer, stops, stored = await _watched_writer(basin)
    basin.armed = True
    writer.submit(AppendRecord(b"landed"))
    await asyncio.wait_for(stored.wait(), 5)
    writer.submit(AppendRecord(b"after the stop"))
    await writer.close([fence_record("end-mine")])
    assert writer.error is None
    assert stops and stops[-1] == stop_token("session-mine")
    records = (await basin.read("s", seq_num=0, count=10)).records
    assert [(r.body, is_fence(r)) for r in records] == [
        (b"session-mine", True),
        (b"landed", False),
        (stop_token("session-mine").encode(), True),
        (b"after the stop", False),
        (b"end-mine", True),
    ]


async def test_records_moved_by_an_adopted_stop_still_fit_s2_batches() -> None:
    """A stop from another instance lands while a full batch (1 MiB metered) waits: the
    records move one position and each gains an ``sse-id`` header, so the batch no longer
    fits one S2 append. It is cut again (S2 would refuse it with 422 and the answer would
    end without its records or its terminal): every record is stored, with the id it was
    sent with, and the stop and the end follow."""
    basin = MemoryBasin()
    writer, stops, _ = await _watched_writer(basin)
    await basin.append(
        "s", AppendInput([fence_record(stop_token("session-mine"))], fencing_token="session-mine")
    )
    bodies = [b"%04d" % i + b"x" * 1036 for i in range(1000)]  # 1,048 metered bytes each
    ids = [writer.submit(AppendRecord(body)) + 1 for body in bodies]
    await writer.close([fence_record("end-mine")])
    assert writer.error is None
    assert stops and stops[-1] == stop_token("session-mine")
    records = await read_range(basin, "s", 0)  # more than one read's 1 MiB
    data = [r for r in records if not is_fence(r)]
    assert [r.body for r in data] == bodies
    assert [dict(r.headers).get(b"sse-id") for r in data] == [str(i).encode() for i in ids]
    assert [r.body for r in records if is_fence(r)][-1] == b"end-mine"


async def test_fragments_moved_by_an_adopted_stop_join_with_the_id_they_were_sent_with() -> None:
    """A stop lands while a chunk's fragments wait: each moves one position and gains an
    ``sse-id`` header beside its ``rc-part`` one, still fits a record, and the fragments
    join to the chunk with the id its live frame carried (the last fragment's as submitted)."""
    from resumable_chat.log.fragments import fragment_records, join_fragments
    from resumable_chat.log.records import record_id

    basin = MemoryBasin()
    writer, stops, _ = await _watched_writer(basin)
    await basin.append(
        "s", AppendInput([fence_record(stop_token("session-mine"))], fencing_token="session-mine")
    )
    body = bytes(range(256)) * 9_000
    fragments = fragment_records(body)
    assert fragments is not None
    live_id = [writer.submit(record) for record in fragments][-1] + 1
    await writer.close([fence_record("end-mine")])
    assert writer.error is None and stops
    joined, pending = join_fragments(await read_range(basin, "s", 0))
    assert pending is None
    (chunk,) = [r for r in joined if not is_fence(r)]
    assert chunk.body == body and record_id(chunk) == live_id
    assert chunk.seq_num == live_id  # stored one position later than it was sent


def test_stop_tokens_name_the_claim_within_the_token_limit() -> None:
    assert stop_token("session-AbCdEfGh12+/") == "stop-AbCdEfGh12+/"
    long = stop_token("session-" + "é" * 40)
    assert long.startswith("stop-") and len(long.encode()) <= 36
    assert stop_token("other") == "stop-other"


class TimedBasin(MemoryBasin):
    """A MemoryBasin that notes the loop time and size of every append batch."""

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[tuple[float, int]] = []

    async def append(self, stream, input):  # type: ignore[no-untyped-def]
        self.appends.append((asyncio.get_running_loop().time(), len(input.records)))
        return await super().append(stream, input)


async def _spaced_writer(spacing_ms: float) -> tuple[TimedBasin, LogWriter]:
    """A writer with ``append_spacing_ms`` on a claimed stream, its basin's notes cleared."""
    basin = TimedBasin()
    start = await _claimed(basin, "s")
    basin.appends.clear()
    writer = LogWriter(
        basin, "s", fencing_token="session-t", match_seq_num=start, append_spacing_ms=spacing_ms
    )
    return basin, writer


def test_a_busy_stream_gets_one_append_per_spacing_not_one_per_record() -> None:
    """A source yielding a record per loop turn: appends start at least append_spacing_ms
    apart and carry what queued meanwhile; the log holds every record in order."""

    async def main() -> tuple[list[tuple[float, int]], list[bytes]]:
        basin, writer = await _spaced_writer(5)
        loop = asyncio.get_running_loop()
        until = loop.time() + 0.050
        i = 0
        while loop.time() < until:  # a record every 0.1 ms of virtual time
            writer.submit(AppendRecord(b"%d" % i))
            i += 1
            await asyncio.sleep(0.0001)
        await writer.close()
        return basin.appends, await _bodies(basin, "s")

    appends, bodies = run_virtual(main())
    assert bodies == [b"%d" % i for i in range(len(bodies))] and len(bodies) > 400
    starts = [at for at, _ in appends]
    assert all(b - a >= 0.005 - 1e-9 for a, b in itertools.pairwise(starts[:-1]))
    assert len(appends) <= 12  # 50 ms at one append per 5 ms, and the close's
    assert appends[0][1] == 1  # the first record of an idle stream never waits


def test_records_further_apart_than_the_spacing_never_wait() -> None:
    """A chat-paced source (one record per 20 ms): each record is appended the moment it is
    submitted, as without spacing."""

    async def main() -> list[float]:
        basin, writer = await _spaced_writer(5)
        return await append_lags(writer, lambda: basin.appends[-1][0])

    assert run_virtual(main()) == [0.0] * 10


def test_a_close_does_not_wait_out_the_spacing() -> None:
    async def main() -> float:
        basin, writer = await _spaced_writer(1000)
        writer.submit(AppendRecord(b"a"))
        await asyncio.sleep(0.1)  # the first append is done
        writer.submit(AppendRecord(b"b"))  # the writer waits 0.9 s more before this one
        await asyncio.sleep(0.1)
        assert await _bodies(basin, "s") == [b"a"]
        loop = asyncio.get_running_loop()
        began = loop.time()
        await writer.close([AppendRecord(b"c")])
        assert await _bodies(basin, "s") == [b"a", b"b", b"c"]
        return loop.time() - began

    assert run_virtual(main()) == 0.0


def test_append_spacing_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="append_spacing_ms"):
        LogWriter(MemoryBasin(), "s", fencing_token="", match_seq_num=0, append_spacing_ms=-1)


async def _bounded_writer() -> tuple[CountingBasin, LogWriter]:
    """A writer of a claimed stream on a basin taking 50 ms per append, no spacing, and at
    most 100 bytes unacknowledged before producers wait."""
    basin = CountingBasin(delay_s=0.050)
    claimed = await _claimed(basin, "s")
    writer = LogWriter(
        basin,
        "s",
        fencing_token="session-t",
        match_seq_num=claimed,
        append_spacing_ms=0,
        max_pending_bytes=100,
    )
    return basin, writer


def test_wait_writable_holds_the_producer_until_stored_bytes_bring_it_under_the_limit() -> None:
    """Bounded memory: past ``max_pending_bytes`` a producer waits, and goes on as soon as an
    acknowledgement brings the unacknowledged bytes back under the limit, not before and not
    a batch later (virtual time, 50 ms per append)."""

    async def main() -> list[tuple[float, int]]:
        basin, writer = await _bounded_writer()
        loop = asyncio.get_running_loop()
        began = loop.time()
        seen = []
        for _ in range(2):  # twice: the first wait must not leave the writer throttled
            await asyncio.sleep(0.010)  # the writer waits for records
            writer.submit(AppendRecord(b"x" * 40))  # 48 metered bytes
            await asyncio.sleep(0.001)  # its append is in flight
            for _ in range(4):
                writer.submit(AppendRecord(b"x" * 40))  # 240 bytes pending in all
            await writer.wait_writable()
            seen.append((round(loop.time() - began, 6), writer.pending_bytes))
        await writer.close()
        assert basin.batches == [1, 1, 4, 1, 4]  # the claim, then ours
        return seen

    # 50 ms in: one record stored, 192 bytes still pending; 100 ms in: the other four
    assert run_virtual(main()) == [(0.11, 0), (0.22, 0)]


def test_wait_writable_returns_when_the_writer_fails() -> None:
    """A producer held by backpressure is released when the writer fails (its records are
    dropped, see ``LogWriter.error``) instead of waiting for ever."""

    async def main() -> BaseException | None:
        basin, writer = await _bounded_writer()
        for _ in range(5):
            writer.submit(AppendRecord(b"x" * 40))
        await asyncio.sleep(0)
        # another instance takes the stream over while our first append is in flight
        await MemoryBasin.append(basin, "s", AppendInput([fence_record("session-other")]))
        await asyncio.wait_for(writer.wait_writable(), 1)
        return writer.error

    assert isinstance(run_virtual(main()), FencedOutError)


class StallingBasin(MemoryBasin):
    """A MemoryBasin whose appends take ``delay_s`` each, except the ones listed in
    ``stall``: the n-th append (counting from 1) waits forever, after storing its batch when
    ``lands`` (its answer lost on a stalled connection) or before (never sent)."""

    def __init__(self, delay_s: float = 0.0, stall: frozenset[int] = frozenset(), *, lands: bool):
        super().__init__()
        self.delay_s = delay_s
        self.stall = stall
        self.lands = lands
        self.calls: list[float] = []  # loop time each append began

    async def append(self, stream, input):  # type: ignore[no-untyped-def]
        self.calls.append(asyncio.get_running_loop().time())
        if len(self.calls) in self.stall:
            if self.lands:
                await super().append(stream, input)
            await asyncio.Event().wait()  # cancelled by the writer's bound
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return await super().append(stream, input)

    def append_nowait(self, stream, input):  # type: ignore[no-untyped-def]
        return None  # every append goes through append(), as over HTTP


async def _stalling_writer(basin: StallingBasin) -> LogWriter:
    claimed = await MemoryBasin.append(
        basin, "s", AppendInput([fence_record("session-t")], match_seq_num=0, fencing_token="")
    )
    return LogWriter(
        basin,
        "s",
        fencing_token="session-t",
        match_seq_num=claimed.end.seq_num,
        append_spacing_ms=0,
        append_timeout_ms=2000,
        retry_base_ms=50,
    )


@pytest.mark.parametrize("lands", [False, True], ids=["lost-request", "lost-answer"])
def test_a_stalled_append_is_sent_again_before_the_lease_runs_out(lands: bool) -> None:
    """The second append hangs (a stalled connection): 2 s later it is abandoned and sent
    again, and the record is stored (once) about 2.05 s after it was submitted, not when a
    basin-level deadline ends the stalled call; the writer goes on as before."""

    async def main() -> tuple[float, list[bytes], int]:
        basin = StallingBasin(stall=frozenset({2}), lands=lands)
        writer = await _stalling_writer(basin)
        loop = asyncio.get_running_loop()
        stored: list[tuple[float, int]] = []
        writer.listen(lambda records: records and stored.append((loop.time(), len(records))))
        writer.submit(AppendRecord(b"a"))
        await asyncio.sleep(0.1)
        began = loop.time()
        writer.submit(AppendRecord(b"b"))
        await asyncio.sleep(5)
        writer.submit(AppendRecord(b"c"))
        await writer.close([fence_record("end-t")])
        return stored[1][0] - began, await _bodies(basin, "s"), len(basin.calls)

    took, bodies, calls = run_virtual(main())
    assert 2.0 <= took < 2.2
    assert bodies == [b"a", b"b", b"c"]
    # a; b (abandoned); b again (when the first had landed: 412, read back); c with the end
    assert calls == 4


def test_a_uniformly_slow_basin_is_waited_for_after_one_abandoned_try() -> None:
    """Every append takes 3 s, longer than the 2 s bound: each batch is sent again once and
    then waited for, so records are stored (once each) instead of being abandoned forever."""

    async def main() -> tuple[list[bytes], int]:
        basin = StallingBasin(delay_s=3.0, lands=False)
        writer = await _stalling_writer(basin)
        for body in (b"a", b"b", b"c"):
            writer.submit(AppendRecord(body))
            await asyncio.sleep(10)
        await writer.close([fence_record("end-t")])
        return await _bodies(basin, "s"), len(basin.calls)

    bodies, calls = run_virtual(main())
    assert bodies == [b"a", b"b", b"c"]
    assert calls == 8  # two tries for each of the three records and the end fence


def test_append_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="append_timeout_ms"):
        LogWriter(MemoryBasin(), "s", fencing_token="", match_seq_num=0, append_timeout_ms=0)
