"""Finding the latest generation from the tail: what it finds, and in how many S2 reads."""

from __future__ import annotations

from typing import Any

from resumable_chat.log.scan import (
    TAIL_WINDOW,
    LatestGeneration,
    OpenGeneration,
    latest_generation,
    latest_generation_or_token,
)
from resumable_chat.s2 import AppendInput, AppendRecord, MemoryBasin, fence_record, trim_record
from resumable_chat.s2.basin import Basin
from resumable_chat.s2.records import ReadBatch


class ReadCountingBasin(MemoryBasin):
    """A MemoryBasin that counts reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def read(self, stream: str, **kwargs: Any) -> ReadBatch:  # type: ignore[override]
        self.reads += 1
        return await super().read(stream, **kwargs)


async def _append(basin: MemoryBasin, *records: AppendRecord) -> None:
    await basin.append("s", AppendInput(list(records)))


def _data(n: int, size: int = 10) -> list[AppendRecord]:
    return [AppendRecord(b"x" * size) for _ in range(n)]


async def test_a_claim_among_the_last_records_costs_one_read() -> None:
    basin = ReadCountingBasin()
    await _append(basin, fence_record("session-a"), *_data(5), fence_record("end-a"))
    await _append(basin, fence_record("session-b"), *_data(TAIL_WINDOW - 2))
    latest = await latest_generation(basin, "s")
    assert basin.reads == 1
    assert latest.active and latest.claim_token == "session-b" and latest.token == "session-b"
    assert latest.claim is not None and latest.claim.seq_num == 7
    assert latest.tail.seq_num == 8 + TAIL_WINDOW - 2
    assert latest.last is not None and latest.last.seq_num == latest.tail.seq_num - 1


async def test_a_claim_further_back_is_found_in_growing_windows() -> None:
    basin = ReadCountingBasin()
    await _append(basin, fence_record("session-a"), *_data(5), fence_record("end-a"))
    await _append(basin, fence_record("session-b"), fence_record("stop-b"))
    for _ in range(3):
        await _append(basin, *_data(300))
    latest = await latest_generation(basin, "s")
    assert latest.claim_token == "session-b" and latest.token == "stop-b" and latest.active
    assert basin.reads == 3  # the tail window, then 256, then 1024 records back


async def test_an_ended_generation_an_empty_stream_and_a_missing_one() -> None:
    basin = ReadCountingBasin()
    await _append(basin, fence_record("session-a"), *_data(3), fence_record("end-a"))
    latest = await latest_generation(basin, "s")
    assert not latest.active and latest.terminal is not None and latest.token == "end-a"
    empty = await latest_generation(basin, "missing")
    assert empty.claim is None and empty.last is None and empty.tail.seq_num == 0
    assert empty.token == ""


async def test_a_trimmed_stream_stops_at_what_is_left() -> None:
    basin = ReadCountingBasin()
    await _append(basin, fence_record("session-a"), *_data(100), fence_record("end-a"))
    await _append(basin, fence_record("session-b"), *_data(10))
    await _append(basin, trim_record(102))
    latest = await latest_generation(basin, "s")
    assert latest.claim_token == "session-b" and latest.active
    await _append(basin, trim_record(110))  # the claim itself is gone now
    basin.reads = 0
    latest = await latest_generation(basin, "s")
    assert latest.claim is None and basin.reads == 1  # nothing older is read for


async def test_records_too_large_for_one_read_take_the_two_step_way() -> None:
    basin = ReadCountingBasin()
    big = _data(TAIL_WINDOW, size=100_000)  # 64 × 100 kB: beyond one read's 1 MiB
    await _append(basin, fence_record("session-a"))
    for i in range(0, len(big), 8):
        await _append(basin, *big[i : i + 8])
    latest = await latest_generation(basin, "s")
    assert latest.claim_token == "session-a" and latest.active
    assert latest.last is not None and latest.last.seq_num == TAIL_WINDOW
    assert latest.tail.seq_num == TAIL_WINDOW + 1
    assert [r.seq_num for r in latest.since_claim] == list(range(1, TAIL_WINDOW + 1))


async def test_the_records_since_the_claim_come_with_it() -> None:
    """``since_claim`` is what a reader of the running answer would read next: every record
    after the claim, in order, up to the tail; empty past one read's worth."""
    basin = ReadCountingBasin()
    await _append(basin, fence_record("session-a"), *_data(5), fence_record("end-a"))
    await _append(basin, fence_record("session-b"), *_data(10))
    latest = await latest_generation(basin, "s")
    assert [r.seq_num for r in latest.since_claim] == list(range(8, 18))
    await _append(basin, *_data(300))  # the claim is now behind the first window
    basin.reads = 0
    latest = await latest_generation(basin, "s")
    assert basin.reads == 2
    assert [r.seq_num for r in latest.since_claim] == list(range(8, latest.tail.seq_num))
    await _append(basin, fence_record("stop-b"), *_data(1))  # a stop request is a record too
    latest = await latest_generation(basin, "s")
    assert latest.since_claim[-1].seq_num == latest.tail.seq_num - 1
    for _ in range(4):
        await _append(basin, *_data(300))
    latest = await latest_generation(basin, "s")
    assert latest.claim_token == "session-b" and latest.since_claim == ()
    await _append(basin, fence_record("session-c"))
    latest = await latest_generation(basin, "s")
    assert latest.claim_token == "session-c" and latest.since_claim == ()


class CallCountingBasin(ReadCountingBasin):
    """Counts reads and appends."""

    def __init__(self) -> None:
        super().__init__()
        self.appends = 0

    async def append(self, stream: str, input: AppendInput) -> Any:
        self.appends += 1
        return await super().append(stream, input)


async def test_the_token_of_a_long_open_generation_costs_one_read_and_one_rejected_append() -> None:
    """For a stop request: when the claim lies behind the first read, S2's 412 names the
    stream's token at once instead of reading back window by window; the log is unchanged."""
    basin = CallCountingBasin()
    await _append(basin, fence_record("session-a"), *_data(5), fence_record("end-a"))
    await _append(basin, fence_record("session-b"))
    for _ in range(4):
        await _append(basin, *_data(300))
    tail = await basin.check_tail("s")
    basin.reads = basin.appends = 0
    found = await latest_generation_or_token(basin, "s")
    assert found == OpenGeneration("session-b", tail)
    assert (basin.reads, basin.appends) == (1, 1)
    assert await basin.check_tail("s") == tail  # the probe stored nothing
    assert (await latest_generation(basin, "s")).claim_token == "session-b"

    await _append(basin, fence_record("stop-b"), *_data(10))  # a stop among the last records
    basin.reads = basin.appends = 0
    found = await latest_generation_or_token(basin, "s")
    assert isinstance(found, OpenGeneration) and found.token == "stop-b"
    assert (basin.reads, basin.appends) == (1, 0)

    await _append(basin, fence_record("end-b"))  # ended: the whole generation is read
    found = await latest_generation_or_token(basin, "s")
    assert isinstance(found, LatestGeneration) and not found.active
    assert found.claim_token == "session-b"


async def test_a_claim_among_the_last_records_needs_no_probe() -> None:
    basin = CallCountingBasin()
    await _append(basin, fence_record("session-a"), *_data(10))
    basin.reads = basin.appends = 0
    found = await latest_generation_or_token(basin, "s")
    assert isinstance(found, LatestGeneration) and found.claim_token == "session-a"
    assert (basin.reads, basin.appends) == (1, 0)


async def test_the_token_probe_over_http(basin: Basin) -> None:
    """The probe's 412 carries the token on the bundled S2 server too (``HttpBasin`` reads
    ``fencing_token_mismatch``), and it stores nothing."""
    await basin.append("p", AppendInput([fence_record("session-h")]))
    await basin.append("p", AppendInput(_data(TAIL_WINDOW + 10)))
    tail = await basin.check_tail("p")
    assert await latest_generation_or_token(basin, "p") == OpenGeneration("session-h", tail)
    assert await basin.check_tail("p") == tail
