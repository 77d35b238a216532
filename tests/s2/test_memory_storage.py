"""MemoryBasin's record storage (sealed blocks of untracked tuples): any mix of appends, trims
and reads gives exactly what a plain list of records gives, across block boundaries; and a
basin full of records costs the garbage collector nothing per record."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resumable_chat.s2 import MemoryBasin, SequencedRecord
from resumable_chat.s2 import memory as memory_module
from resumable_chat.s2.records import AppendInput, AppendRecord, fence_record, trim_record

# each step: ("append", n records) or ("trim", to seq_num) or ("read", from seq_num, count)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 9), st.just(0)),
        st.tuples(st.just("trim"), st.integers(0, 60), st.just(0)),
        st.tuples(st.just("read"), st.integers(0, 60), st.integers(1, 20)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps)
def test_blocks_read_like_a_plain_list(steps: list[tuple[str, int, int]]) -> None:
    async def run() -> None:
        basin = MemoryBasin("b")
        model: list[bytes] = []  # every record ever appended, by seq_num
        first = 0  # the oldest seq_num still kept
        for kind, value, count in steps:
            if kind == "append":
                bodies = [f"r{len(model) + i}".encode() for i in range(value)]
                await basin.append("s", AppendInput([AppendRecord(body=b) for b in bodies]))
                model += bodies
            elif kind == "trim":
                await basin.append("s", AppendInput([trim_record(value)]))
                model.append(b"")  # the trim command is a record too
                first = max(first, min(value, len(model)))
            elif max(value, first) < len(model):
                batch = await basin.read("s", seq_num=value, count=count)
                start = max(value, first)
                expected = list(range(start, min(len(model), start + count)))
                assert [r.seq_num for r in batch.records] == expected
                for record in batch.records:
                    if record.headers == ():
                        assert record.body == model[record.seq_num]
        if first < len(model):
            tail = await basin.check_tail("s")
            assert tail.seq_num == len(model)
            batch = await basin.read("s", seq_num=0, count=1000)
            assert [r.seq_num for r in batch.records] == list(range(first, len(model)))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory_module, "_BLOCK", 4)
        asyncio.run(run())


def test_follow_crosses_blocks_and_trims() -> None:
    async def run() -> list[int]:
        basin = MemoryBasin("b")
        for _ in range(3):
            await basin.append("s", AppendInput([AppendRecord(body=b"x")] * 5))
        await basin.append("s", AppendInput([trim_record(7)]))
        seen: list[int] = []
        async for batch in basin.follow("s", seq_num=0):
            seen += [r.seq_num for r in batch.records]
            if seen[-1] == 15:
                return seen
        return seen

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory_module, "_BLOCK", 4)
        assert asyncio.run(run()) == list(range(7, 16))


def test_stored_records_are_not_tracked_by_the_garbage_collector() -> None:
    async def fill() -> MemoryBasin:
        basin = MemoryBasin("b")
        for _ in range(20):
            batch = [AppendRecord(body=b'{"type":"text-delta"}', headers=((b"k", b"v"),))]
            await basin.append("s", AppendInput(batch * 1000))
        return basin

    gc.collect()
    before = len(gc.get_objects())
    basin = asyncio.run(fill())
    gc.collect()
    gc.collect()
    added = len(gc.get_objects()) - before
    assert added < 1000, f"{added} tracked objects for 20,000 records"
    (record,) = asyncio.run(basin.read("s", seq_num=19_999, count=1)).records
    body = b'{"type":"text-delta"}'
    assert record == SequencedRecord(19_999, record.timestamp, ((b"k", b"v"),), body)


def test_a_finished_trimmed_stream_costs_little() -> None:
    """The embedded basin keeps a stream whose records were all trimmed (single-use mode trims
    every answer): S2 semantics need its tail and token. What it keeps is bounded per
    stream: under 700 bytes for a claimed, answered, ended and trimmed stream (the stream
    name, its state, its token). Before, every stream also held an ``asyncio.Event`` for
    followers to wait on, whether any ever waited or not: ~1,330 bytes per stream, about
    1.3 MB per 1,000 single-use chats for as long as the process lives."""

    async def run() -> int:
        basin = MemoryBasin("b")

        async def one(index: int) -> None:
            stream = f"chat-{index:06d}"
            await basin.append(stream, AppendInput([fence_record("session-abcdefgh")]))
            await basin.append(stream, AppendInput([AppendRecord(b'{"type":"x"}')] * 20))
            await basin.append(
                stream, AppendInput([fence_record("end-abcdefgh"), trim_record(2**53 - 1)])
            )

        for index in range(100):  # warm-up: dict growth, caches
            await one(index)
        gc.collect()
        tracemalloc.start()
        try:
            for index in range(100, 2100):
                await one(index)
            gc.collect()
            return tracemalloc.get_traced_memory()[0] // 2000
        finally:
            tracemalloc.stop()

    per_stream = asyncio.run(run())
    assert per_stream < 700, f"{per_stream} bytes per trimmed stream"


def test_records_stored_one_at_a_time_cross_blocks_and_wake_a_follower() -> None:
    """``append_body_nowait`` (every chunk of an answer on the embedded basin) seals blocks
    as batched appends do, keeps timestamps non-decreasing, and wakes a follower waiting at
    the tail."""

    async def run() -> tuple[list[int], list[bytes]]:
        basin = MemoryBasin("b")
        await basin.append("s", AppendInput([fence_record("tok")]))
        seen: list[int] = []

        async def follower() -> None:
            async for batch in basin.follow("s", seq_num=0):
                seen.extend(r.seq_num for r in batch.records)
                if seen[-1] == 10:
                    return

        task = asyncio.create_task(follower())
        await asyncio.sleep(0)
        for seq in range(1, 11):
            stamp = basin.append_body_nowait(
                "s", b"r%d" % seq, match_seq_num=seq, fencing_token="tok"
            )
            assert stamp is not None
            await asyncio.sleep(0)  # the follower waits at the tail between records
        await asyncio.wait_for(task, 5)
        assert basin.append_body_nowait("s", b"x", match_seq_num=3, fencing_token="tok") is None
        batch = await basin.read("s", seq_num=1, count=100)
        stamps = [r.timestamp for r in batch.records]
        assert stamps == sorted(stamps)
        return seen, [r.body for r in batch.records]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory_module, "_BLOCK", 4)
        seen, bodies = asyncio.run(run())
    assert seen == list(range(11))
    assert bodies == [b"r%d" % seq for seq in range(1, 11)]
