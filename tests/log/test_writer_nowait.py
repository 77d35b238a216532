"""The writer on a basin that appends synchronously (``Basin.append_nowait``, the embedded
basin): records are stored without waking the writer's task, and everything that needs the
task (a stop, a takeover, a fault, an overridden ``append``) still gets it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resumable_chat.log import FencedOutError
from resumable_chat.log.records import SSE_ID_HEADER, stop_token
from resumable_chat.log.writer import LogWriter
from resumable_chat.s2 import AppendInput, AppendRecord, Basin, MemoryBasin, fence_record, is_fence
from resumable_chat.s2.records import AppendAck, SequencedRecord
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan
from resumable_chat.testing.virtual_time import run_virtual


class NowaitCounting(MemoryBasin):
    """The embedded basin, noting the size of each append it took synchronously (a batch,
    or one record alone: ``one_at_a_time`` counts those)."""

    def __init__(self) -> None:
        super().__init__()
        self.nowait: list[int] = []
        self.one_at_a_time = 0

    def append_nowait(self, stream: str, input: AppendInput) -> AppendAck | None:
        ack = super().append_nowait(stream, input)
        if ack is not None:
            self.nowait.append(len(input.records))
        return ack

    def append_body_nowait(
        self, stream: str, body: bytes, *, match_seq_num: int, fencing_token: str
    ) -> int | None:
        timestamp = super().append_body_nowait(
            stream, body, match_seq_num=match_seq_num, fencing_token=fencing_token
        )
        if timestamp is not None:
            self.nowait.append(1)
            self.one_at_a_time += 1
        return timestamp


async def _claimed(basin: Basin, token: str = "session-mine") -> int:
    ack = await basin.append(
        "s", AppendInput([fence_record(token)], match_seq_num=0, fencing_token="")
    )
    return ack.end.seq_num


async def _writer(basin: Basin, memory: MemoryBasin | None = None, **options: Any) -> LogWriter:
    """A writer on ``basin`` of a stream claimed in ``memory`` (default: ``basin``), with no
    append spacing (nothing waits on the clock)."""
    claimed = await _claimed(memory if memory is not None else basin)
    return LogWriter(
        basin,
        "s",
        fencing_token="session-mine",
        match_seq_num=claimed,
        append_spacing_ms=0,
        **options,
    )


async def _stored(writer: LogWriter, seq_num: int) -> None:
    """Wait until the writer has acknowledged every record before ``seq_num`` (its
    listener says so)."""
    done = asyncio.Event()

    def heard(records: list[SequencedRecord] | None) -> None:
        if records is None or records[-1].seq_num + 1 >= seq_num:
            done.set()

    if writer.durable_seq_num >= seq_num:
        return
    writer.listen(heard)
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        writer.unlisten(heard)


async def _parked(writer: LogWriter) -> None:
    """Give the loop the turns the writer's task takes to finish its append and park (it
    waits for a record then); no clock involved."""
    for _ in range(10):
        if writer._parked:
            return
        await asyncio.sleep(0)  # one loop turn, not a timed wait
    raise AssertionError("the writer's task did not park")


async def test_chat_paced_records_are_stored_synchronously_in_order() -> None:
    basin = NowaitCounting()
    writer = await _writer(basin)
    heard: list[bytes] = []
    writer.listen(lambda records: heard.extend(r.body for r in records or ()))
    for i in range(20):
        seq = writer.submit(AppendRecord(b"%d" % i))
        await _stored(writer, seq + 1)
    await writer.close([fence_record("end-mine")])
    bodies = [r.body for r in (await basin.read("s", seq_num=0, count=100)).records]
    assert bodies[1:-1] == [b"%d" % i for i in range(20)]
    assert heard[:20] == bodies[1:-1]
    # the first record starts the task; the later ones never wake it
    assert basin.nowait == [1] * 19


async def test_a_chunk_to_an_idle_writer_is_stored_before_submit_returns() -> None:
    """A record without headers submitted to a parked writer is stored and heard by the
    writer's listeners within ``submit`` (one record, no batch): no loop turn in between. The
    writer keeps no copy of it: the log is in this process."""
    basin = NowaitCounting()
    writer = await _writer(basin)
    await _stored(writer, writer.submit(AppendRecord(b"first")) + 1)  # starts the task
    await _parked(writer)
    heard: list[tuple[int, bytes]] = []
    writer.listen(lambda records: heard.extend((r.seq_num, r.body) for r in records or ()))
    before = basin.one_at_a_time
    seq = writer.submit(AppendRecord(b"second"))
    assert writer.durable_seq_num == seq + 1 and heard == [(seq, b"second")]
    assert basin.one_at_a_time == before + 1
    # not kept in the writer: a follower that joins late reads it from the basin, in memory
    assert writer.acknowledged_since(seq) is None
    assert [r.body for r in (await basin.read("s", seq_num=seq, count=10)).records] == [b"second"]
    await writer.close([fence_record("end-mine")])
    records = (await basin.read("s", seq_num=0, count=100)).records
    assert [r.body for r in records[1:-1]] == [b"first", b"second"]
    assert records[seq].timestamp >= records[seq - 1].timestamp


def test_records_submitted_together_still_go_in_one_batch_after_the_spacing() -> None:
    """With the default spacing (1 ms), the first of several records submitted at once is
    stored alone in ``submit``; the others wait for the spacing and go in one batch
    (virtual time)."""

    async def main() -> tuple[list[int], list[bytes]]:
        basin = NowaitCounting()
        writer = LogWriter(
            basin, "s", fencing_token="session-mine", match_seq_num=await _claimed(basin)
        )
        writer.start()
        await asyncio.sleep(0.01)  # the task parks, long after any append
        batches: list[int] = []
        writer.listen(lambda records: batches.append(len(records or ())))
        for i in range(5):
            writer.submit(AppendRecord(b"%d" % i))
        await writer.close()
        records = (await basin.read("s", seq_num=1, count=100)).records
        return batches, [r.body for r in records]

    batches, bodies = run_virtual(main())
    assert batches == [1, 4, 0]  # the last: the writer ended
    assert bodies == [b"0", b"1", b"2", b"3", b"4"]


async def test_records_the_one_record_path_cannot_take_go_the_usual_way() -> None:
    """A record with headers, one with its own timestamp and one submitted while a linger
    holds the batch are stored by the other paths, in order."""
    basin = NowaitCounting()
    writer = await _writer(basin)
    await _stored(writer, writer.submit(AppendRecord(b"first")) + 1)
    await _parked(writer)
    before = basin.one_at_a_time
    writer.submit(AppendRecord(b"headed", ((b"k", b"v"),)))
    writer.submit(AppendRecord(b"stamped", timestamp=1))
    await _stored(writer, writer.next_seq_num)
    other = NowaitCounting()
    lingering = await _writer(other, linger_ms=1)
    await _stored(lingering, lingering.submit(AppendRecord(b"first")) + 1)
    await _parked(lingering)
    await _stored(lingering, lingering.submit(AppendRecord(b"held")) + 1)
    await writer.close()
    await lingering.close()
    assert basin.one_at_a_time == before and other.one_at_a_time == 0
    records = (await basin.read("s", seq_num=1, count=100)).records
    assert [(r.body, r.headers) for r in records] == [
        (b"first", ()),
        (b"headed", ((b"k", b"v"),)),
        (b"stamped", ()),
    ]


async def test_a_stop_from_another_instance_is_adopted_by_the_task() -> None:
    """The synchronous append meets the stop's 412: the task takes the records back, sees
    the stop of its own claim and stores them after it, with the ids they were sent with."""
    basin = NowaitCounting()
    writer = await _writer(basin)
    stops: list[str] = []
    writer.on_stop_requested = lambda: stops.append(writer.fencing_token)
    await _stored(writer, writer.submit(AppendRecord(b"first")) + 1)
    await basin.append(  # another instance's stop request
        "s", AppendInput([fence_record(stop_token("session-mine"))], fencing_token="session-mine")
    )
    sent_as = writer.submit(AppendRecord(b"second")) + 1
    await writer.close([fence_record("end-mine")])
    assert stops == ["session-mine", stop_token("session-mine")]
    records = (await basin.read("s", seq_num=0, count=100)).records
    data = [r for r in records if not is_fence(r)]
    assert [r.body for r in data] == [b"first", b"second"]
    assert data[1].headers == ((SSE_ID_HEADER, str(sent_as).encode()),)
    assert basin.nowait == []  # the first started the task; the second met the stop


async def test_a_takeover_fences_the_writer_out_and_nothing_is_stored_after_it() -> None:
    basin = MemoryBasin()
    writer = await _writer(basin)
    await _stored(writer, writer.submit(AppendRecord(b"kept")) + 1)
    await basin.append("s", AppendInput([fence_record("error-taken")]))
    writer.submit(AppendRecord(b"dropped"))
    with pytest.raises(FencedOutError):
        await writer.close([fence_record("end-mine")])
    records = (await basin.read("s", seq_num=0, count=100)).records
    assert [r.body for r in records if not is_fence(r)] == [b"kept"]


async def test_planned_append_faults_still_reach_the_writer() -> None:
    """A fault plan's append rule makes the basin decline the synchronous path, so the fault
    happens and the writer retries; once the rule is spent, appends are synchronous again."""
    memory = NowaitCounting()
    plan = FaultPlan()
    basin = FaultPlanBasin(memory, plan)
    writer = await _writer(basin, memory, retry_base_ms=1)
    await _stored(writer, writer.submit(AppendRecord(b"a")) + 1)
    rule = plan.fail("append", status=503, times=1)
    await _stored(writer, writer.submit(AppendRecord(b"b")) + 1)
    assert rule.fired == 1 and memory.nowait == []
    await _stored(writer, writer.submit(AppendRecord(b"c")) + 1)
    assert memory.nowait == [1]
    await writer.close()
    records = (await memory.read("s", seq_num=0, count=100)).records
    assert [r.body for r in records if not is_fence(r)] == [b"a", b"b", b"c"]


async def test_a_subclass_that_overrides_append_is_always_called() -> None:
    calls: list[int] = []

    class Instrumented(MemoryBasin):
        async def append(self, stream: str, input: AppendInput) -> AppendAck:
            calls.append(len(input.records))
            return await super().append(stream, input)

    basin = Instrumented()
    writer = await _writer(basin)
    for i in range(3):
        await _stored(writer, writer.submit(AppendRecord(b"%d" % i)) + 1)
    await writer.close()
    assert calls == [1, 1, 1, 1]  # the claim and the three records
    assert basin.append_nowait("s", AppendInput([AppendRecord(b"x")])) is None


def test_unacknowledged_since_tells_how_long_records_have_waited() -> None:
    """``None`` with nothing pending; the submission time of the first pending record; the
    time of the last acknowledgement while more wait (virtual time)."""

    async def main() -> list[float | None]:
        basin = MemoryBasin()
        plan = FaultPlan()
        faulty = FaultPlanBasin(basin, plan)
        writer = LogWriter(
            faulty, "s", fencing_token="session-mine", match_seq_num=await _claimed(basin)
        )
        loop = asyncio.get_running_loop()
        seen = [writer.unacknowledged_since]
        plan.delay("append", 0.010, times=2)
        await asyncio.sleep(1)
        t0 = loop.time()
        writer.submit(AppendRecord(b"a"))  # in flight 10 ms
        await asyncio.sleep(0.001)
        writer.submit(AppendRecord(b"b"))  # waits for the next append
        seen.append(writer.unacknowledged_since - t0)  # type: ignore[operator]
        await _stored(writer, writer.durable_seq_num + 1)
        seen.append(writer.unacknowledged_since - t0)  # type: ignore[operator]
        await writer.close()
        seen.append(writer.unacknowledged_since)
        return seen

    seen = run_virtual(main())
    assert seen[0] is None and seen[1] == 0 and seen[3] is None
    assert seen[2] is not None and abs(seen[2] - 0.010) < 1e-6  # the first ack, 10 ms on
