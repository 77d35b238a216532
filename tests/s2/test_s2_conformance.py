"""One conformance suite for every basin: ``memory``, ``http`` (the test server) and ``s2``.

Each test takes the ``basin`` fixture, so it runs against ``MemoryBasin``, against
``HttpBasin`` talking to the bundled S2 test server, and against real S2 when
``S2_ACCESS_TOKEN`` and ``S2_BASIN`` are set. The expected behaviour is S2 REST v1 as
documented in ``reference/s2-rest-api.md`` (s2-lite's semantics).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import pytest
from s2_helpers import append, collect, recs, seq_nums

from helpers import eventually
from resumable_chat.s2 import (
    AppendInput,
    AppendRecord,
    Basin,
    FencingTokenMismatchError,
    RangeNotSatisfiableError,
    ReadBatch,
    S2Error,
    S2InvalidError,
    SeqNumMismatchError,
    fence_record,
    trim_record,
)
from resumable_chat.s2.records import FENCE_HEADER, TRIM_HEADER

MiB = 1024 * 1024


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def eventually_s2(check: Callable[[], Awaitable[None]]) -> None:
    """Retry an async assertion until it passes: real S2 trims and deletes asynchronously."""

    async def passes() -> bool:
        await check()
        return True

    await eventually(passes, every_s=0.2, retry_on=(AssertionError, S2Error))


# -- append ----------------------------------------------------------------------------------


async def test_append_ack_shape(basin: Basin, stream: str) -> None:
    before = _now_ms()
    ack = await append(basin, stream, "a", "b", "c")
    assert (ack.start.seq_num, ack.end.seq_num, ack.tail.seq_num) == (0, 3, 3)
    assert before - 1000 <= ack.start.timestamp <= ack.end.timestamp <= _now_ms() + 1000
    assert ack.tail.timestamp == ack.end.timestamp
    second = await append(basin, stream, "d")
    assert (second.start.seq_num, second.end.seq_num, second.tail.seq_num) == (3, 4, 4)
    assert second.start.timestamp >= ack.end.timestamp


async def test_seq_nums_start_at_zero_without_gaps(basin: Basin, stream: str) -> None:
    await append(basin, stream, "a")
    await basin.append(stream, AppendInput([fence_record("w1"), *recs("b", "c")]))
    await append(basin, stream, "d", fencing_token="w1")
    batch = await basin.read(stream, seq_num=0)
    assert [r.seq_num for r in batch.records] == [0, 1, 2, 3, 4]
    assert [r.body for r in batch.records] == [b"a", b"w1", b"b", b"c", b"d"]
    timestamps = [r.timestamp for r in batch.records]
    assert timestamps == sorted(timestamps)


async def test_client_timestamps_are_kept_and_made_monotonic(basin: Basin, stream: str) -> None:
    base = _now_ms() - 60_000
    records = [AppendRecord(b"x", timestamp=base + 10), AppendRecord(b"y", timestamp=base)]
    ack = await basin.append(stream, AppendInput(records))
    assert ack.start.timestamp == base + 10
    batch = await basin.read(stream, seq_num=0)
    assert [r.timestamp for r in batch.records] == [base + 10, base + 10]
    # a batch of one record (the embedded basin's own path) follows the same rule
    alone = await basin.append(stream, AppendInput([AppendRecord(b"z", timestamp=base + 5)]))
    assert (alone.start.timestamp, alone.end.timestamp) == (base + 10, base + 10)


async def test_match_seq_num(basin: Basin, stream: str) -> None:
    await append(basin, stream, "a", "b", match_seq_num=0)
    with pytest.raises(SeqNumMismatchError) as info:
        await append(basin, stream, "c", match_seq_num=5)
    assert info.value.expected_seq_num == 2
    assert info.value.status == 412
    ack = await append(basin, stream, "c", match_seq_num=2)
    assert ack.start.seq_num == 2
    assert (await basin.check_tail(stream)).seq_num == 3


async def test_fencing(basin: Basin, stream: str) -> None:
    # A new stream's token is "": matching it works, anything else is a 412 naming "".
    await append(basin, stream, "a", fencing_token="")
    with pytest.raises(FencingTokenMismatchError) as info:
        await append(basin, stream, "b", fencing_token="nope")
    assert info.value.expected_fencing_token == ""
    # A fence sets the token for later batches.
    await basin.append(stream, AppendInput([fence_record("writer-1")], fencing_token=""))
    with pytest.raises(FencingTokenMismatchError) as info:
        await append(basin, stream, "c", fencing_token="")
    assert info.value.expected_fencing_token == "writer-1"
    await append(basin, stream, "c", fencing_token="writer-1")
    # Unconditional appends are always allowed; fencing is cooperative.
    await append(basin, stream, "d")
    # The token is checked before match_seq_num.
    with pytest.raises(FencingTokenMismatchError):
        await append(basin, stream, "e", fencing_token="wrong", match_seq_num=99)
    # Takeover without the old token, then an empty fence clears it.
    await basin.append(stream, AppendInput([fence_record("writer-2")]))
    await basin.append(stream, AppendInput([fence_record("")], fencing_token="writer-2"))
    await append(basin, stream, "f", fencing_token="")
    batch = await basin.read(stream, seq_num=0)
    fences = [r for r in batch.records if r.headers == (FENCE_HEADER,)]
    assert [r.body for r in fences] == [b"writer-1", b"writer-2", b""]
    assert (await basin.check_tail(stream)).seq_num == 7


async def test_trim(basin: Basin, stream: str) -> None:
    await append(basin, stream, "0", "1", "2", "3", "4")
    ack = await basin.append(stream, AppendInput([trim_record(3)]))
    assert ack.start.seq_num == 5

    async def trimmed() -> None:
        batch = await basin.read(stream, seq_num=0)
        assert [r.seq_num for r in batch.records] == [3, 4, 5]

    await eventually_s2(trimmed)
    batch = await basin.read(stream, seq_num=5)
    assert batch.records[0].headers == (TRIM_HEADER,)
    assert batch.records[0].body == (3).to_bytes(8, "big")
    # A lower trim has no effect; the tail is unaffected by trimming.
    await basin.append(stream, AppendInput([trim_record(1)]))
    await eventually_s2(_first_is(basin, stream, 3))
    assert (await basin.check_tail(stream)).seq_num == 7


def _first_is(basin: Basin, stream: str, seq_num: int) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        batch = await basin.read(stream, seq_num=0)
        assert batch.records[0].seq_num == seq_num

    return check


async def test_command_record_validation(basin: Basin, stream: str) -> None:
    await append(basin, stream, "keep")
    invalid = [
        AppendRecord(b"x", headers=((b"", b"nope"),)),  # unknown command
        AppendRecord(b"x", headers=((b"", b"fence"), (b"k", b"v"))),  # empty name, 2 headers
        AppendRecord(b"1234567", headers=(TRIM_HEADER,)),  # trim body is not 8 bytes
        AppendRecord(b"t" * 37, headers=(FENCE_HEADER,)),  # token longer than 36 bytes
    ]
    for record in invalid:
        with pytest.raises(S2InvalidError) as info:
            await basin.append(stream, AppendInput([*recs("ok"), record]))
        assert info.value.status in (400, 422)
    with pytest.raises(S2InvalidError):
        await append(basin, stream, "x", fencing_token="t" * 37)
    # Nothing of the rejected batches was written.
    assert (await basin.check_tail(stream)).seq_num == 1


async def test_batch_limits(basin: Basin, stream: str) -> None:
    ack = await basin.append(stream, AppendInput(recs(*(str(i) for i in range(1000)))))
    assert ack.end.seq_num == 1000
    with pytest.raises(S2InvalidError):
        await basin.append(stream, AppendInput(recs(*(str(i) for i in range(1001)))))
    with pytest.raises(S2InvalidError):
        await basin.append(stream, AppendInput([]))
    # Exactly 1 MiB metered (8 bytes of overhead per record) is allowed; one byte more is not.
    exact = [AppendRecord(b"x" * (MiB // 2 - 8)), AppendRecord(b"y" * (MiB // 2 - 8))]
    ack = await basin.append(stream, AppendInput(exact))
    assert ack.end.seq_num == 1002
    over = [AppendRecord(b"x" * (MiB // 2 - 8)), AppendRecord(b"y" * (MiB // 2 - 7))]
    with pytest.raises(S2InvalidError):
        await basin.append(stream, AppendInput(over))
    assert (await basin.check_tail(stream)).seq_num == 1002
    # one record alone has the same limit
    ack = await basin.append(stream, AppendInput([AppendRecord(b"z" * (MiB - 8))]))
    assert ack.end.seq_num == 1003
    with pytest.raises(S2InvalidError):
        await basin.append(stream, AppendInput([AppendRecord(b"z" * (MiB - 7))]))
    assert (await basin.check_tail(stream)).seq_num == 1003


# -- read ------------------------------------------------------------------------------------


async def test_read_start_rules(basin: Basin, stream: str) -> None:
    base = _now_ms() - 60_000
    records = [AppendRecord(str(i).encode(), timestamp=base + 10 * i) for i in range(5)]
    await basin.append(stream, AppendInput(records))

    async def starts(**kw: object) -> list[int]:
        batch = await basin.read(stream, **kw)  # type: ignore[arg-type]
        return [r.seq_num for r in batch.records]

    assert await starts(seq_num=2) == [2, 3, 4]
    assert await starts(tail_offset=2) == [3, 4]
    assert await starts(tail_offset=100) == [0, 1, 2, 3, 4]
    assert await starts(timestamp=base + 15) == [2, 3, 4]
    assert await starts(timestamp=base + 40) == [4]
    assert await starts(seq_num=0, until=base + 20) == [0, 1]
    # At the tail a read that cannot wait is 416, clamp or not; so is a start past the tail.
    for kw in (
        {},
        {"tail_offset": 0},
        {"seq_num": 5},
        {"seq_num": 5, "clamp": True},
        {"seq_num": 9},
        {"seq_num": 9, "clamp": True},
        {"timestamp": base + 41},
        {"timestamp": base + 41, "clamp": True},
    ):
        with pytest.raises(RangeNotSatisfiableError) as info:
            await basin.read(stream, **kw)  # type: ignore[arg-type]
        assert info.value.tail.seq_num == 5, kw
        assert info.value.tail.timestamp == base + 40
    with pytest.raises(S2InvalidError):
        await basin.read(stream, seq_num=0, tail_offset=1)
    with pytest.raises(S2InvalidError):
        await basin.read(stream, timestamp=base + 20, until=base + 20)


async def test_timestamp_start_resolving_to_the_tail_reads_nothing(
    basin: Basin, stream: str
) -> None:
    # s2-lite's 416 for "at the tail and cannot wait" applies to seq_num starts only: a
    # timestamp with no record at or after it (on a fresh stream, 0) gives an empty batch.
    assert (await basin.read(stream, timestamp=0)).records == []


async def test_read_long_polls_with_wait(basin: Basin, stream: str) -> None:
    await append(basin, stream, "a")

    async def later() -> None:
        await asyncio.sleep(0.2)
        await append(basin, stream, "b")

    task = asyncio.create_task(later())
    started = time.monotonic()
    batch = await basin.read(stream, seq_num=5, clamp=True, wait=5)
    assert [r.body for r in batch.records] == [b"b"]
    assert time.monotonic() - started < 3
    await task
    # Nothing arrives: an empty batch once ``wait`` (whole seconds on the wire) ran out.
    started = time.monotonic()
    batch = await basin.read(stream, seq_num=2, wait=1)
    assert batch.records == []
    assert 0.8 < time.monotonic() - started < 5


async def test_count_and_bytes_limits(basin: Basin, stream: str) -> None:
    await append(basin, stream, *(f"record-{i:02d}" for i in range(10)))  # 9 bytes + 8 = 17
    assert len((await basin.read(stream, seq_num=0, count=3)).records) == 3
    assert len((await basin.read(stream, seq_num=0, bytes=40)).records) == 2
    assert len((await basin.read(stream, seq_num=0, bytes=34)).records) == 2
    assert len((await basin.read(stream, seq_num=0, bytes=33)).records) == 1
    assert (await basin.read(stream, seq_num=0, bytes=10)).records == []
    assert (await basin.read(stream, seq_num=0, count=0)).records == []
    await basin.append(stream, AppendInput(recs(*("x" for _ in range(1000)))))
    batch = await basin.read(stream, seq_num=0, count=5000)
    assert len(batch.records) == 1000  # unary reads are capped at 1000 records


async def test_check_tail(basin: Basin, stream: str) -> None:
    tail = await basin.check_tail(stream)
    assert tail.seq_num == 0
    ack = await append(basin, stream, "a", "b")
    tail = await basin.check_tail(stream)
    assert (tail.seq_num, tail.timestamp) == (2, ack.end.timestamp)


async def test_streams_are_created_on_append_and_read(basin: Basin, s2_stream_name: str) -> None:
    names = [f"{s2_stream_name}-{kind}" for kind in ("append", "read", "follow", "explicit")]
    try:
        ack = await append(basin, names[0], "first")
        assert ack.start.seq_num == 0
        with pytest.raises(RangeNotSatisfiableError) as info:
            await basin.read(names[1], seq_num=0)
        assert info.value.tail.seq_num == 0
        batches = await collect_after_append(basin, names[2])
        assert seq_nums(batches) == [0]
        await basin.create_stream(names[3])
        await basin.create_stream(names[3])  # idempotent
        assert (await basin.check_tail(names[3])).seq_num == 0
    finally:
        for name in names:
            with contextlib.suppress(S2Error):
                await basin.delete_stream(name)


async def collect_after_append(basin: Basin, stream: str) -> list[ReadBatch]:
    """Follow a stream that does not exist yet, then append to it."""
    task = asyncio.create_task(collect(basin, stream, 1))
    await asyncio.sleep(0.2)
    await append(basin, stream, "x")
    return await task


# -- follow ----------------------------------------------------------------------------------


async def test_follow_receives_live_records_without_polling(basin: Basin, stream: str) -> None:
    await append(basin, stream, "old")
    received: list[tuple[float, int]] = []

    async def follower() -> None:
        async with contextlib.aclosing(basin.follow(stream, seq_num=0)) as follow:
            async for batch in follow:
                received.extend((time.monotonic(), r.seq_num) for r in batch.records)
                if len(received) >= 3:
                    return

    task = asyncio.create_task(follower())
    await asyncio.sleep(0.3)
    sent = time.monotonic()
    await append(basin, stream, "live-1")
    await asyncio.sleep(0.3)
    sent2 = time.monotonic()
    await append(basin, stream, "live-2")
    async with asyncio.timeout(10):
        await task
    assert [s for _, s in received] == [0, 1, 2]
    assert received[1][0] - sent < 1.0  # pushed, not polled (pings are 5 s apart)
    assert received[2][0] - sent2 < 1.0


async def test_follow_from_the_middle(basin: Basin, stream: str) -> None:
    await append(basin, stream, "0", "1", "2", "3", "4")
    task = asyncio.create_task(collect(basin, stream, 5, seq_num=2))
    await asyncio.sleep(0.1)
    await append(basin, stream, "5", "6")
    batches = await task
    assert seq_nums(batches) == [2, 3, 4, 5, 6]
    assert all(batch.records for batch in batches)


async def test_follow_past_the_tail(basin: Basin, stream: str) -> None:
    await append(basin, stream, "0", "1")
    with pytest.raises(RangeNotSatisfiableError) as info:
        await collect(basin, stream, 1, seq_num=10)
    assert info.value.tail.seq_num == 2
    follow = basin.follow(stream, seq_num=10, clamp=True)
    async with contextlib.aclosing(follow):
        task = asyncio.create_task(anext(follow))
        await asyncio.sleep(0.2)
        await append(basin, stream, "2")
        async with asyncio.timeout(10):
            batch = await task
    assert [r.seq_num for r in batch.records] == [2]


async def test_follow_at_the_tail_waits(basin: Basin, stream: str) -> None:
    await append(basin, stream, "0")
    task = asyncio.create_task(collect(basin, stream, 1, seq_num=1))
    await asyncio.sleep(0.3)
    assert not task.done()
    await append(basin, stream, "1")
    assert seq_nums(await task) == [1]


async def test_followers_wake_on_appends_from_another_task(basin: Basin, stream: str) -> None:
    total = 40
    followers = [asyncio.create_task(collect(basin, stream, total)) for _ in range(3)]
    await asyncio.sleep(0.2)

    async def writer() -> None:
        for i in range(0, total, 2):
            await append(basin, stream, str(i), str(i + 1), match_seq_num=i)
            await asyncio.sleep(0.005)

    await writer()
    for task in followers:
        assert seq_nums(await task) == list(range(total))


async def test_stream_deletion(basin: Basin, stream: str) -> None:
    await append(basin, stream, "a", "b")
    follower = asyncio.create_task(collect(basin, stream, 3))
    await asyncio.sleep(0.2)
    await basin.delete_stream(stream)
    await basin.delete_stream(stream)  # deleting a missing stream is fine
    # The follower saw the old records and then stopped: no record of a later stream.
    async with asyncio.timeout(10):
        with contextlib.suppress(S2Error):
            batches = await follower
            assert seq_nums(batches) == [0, 1]

    async def recreated() -> None:
        assert (await basin.check_tail(stream)).seq_num == 0

    await eventually_s2(recreated)
    ack = await append(basin, stream, "new")
    assert ack.start.seq_num == 0
