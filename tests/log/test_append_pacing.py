"""The append budget writers share on a basin whose appends cost a request each
(:mod:`resumable_chat.s2.pacing`): many answers at once get fewer, larger batches; one answer
is not slowed; a whole batch and a close never wait."""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

from helpers import append_lags
from resumable_chat.log.writer import LogWriter
from resumable_chat.s2 import AppendInput, AppendRecord, HttpBasin, MemoryBasin, fence_record
from resumable_chat.s2.pacing import DEFAULT_APPENDS_PER_S, MAX_SPACING_S, AppendPacing
from resumable_chat.s2.prefixed import PrefixedBasin
from resumable_chat.testing.virtual_time import run_virtual


class PacedBasin(MemoryBasin):
    """A MemoryBasin with an append budget (as ``HttpBasin`` has) that notes, per stream, the
    loop time and size of every append batch. It appends only through the task (as
    ``HttpBasin`` does), never synchronously."""

    def __init__(self, appends_per_s: float) -> None:
        super().__init__()
        self.pacing = AppendPacing(appends_per_s)
        self.appends: dict[str, list[tuple[float, int]]] = {}

    def append_nowait(self, stream, input):  # type: ignore[no-untyped-def]
        return None

    async def append(self, stream, input):  # type: ignore[no-untyped-def]
        now = asyncio.get_running_loop().time()
        self.appends.setdefault(stream, []).append((now, len(input.records)))
        return await super().append(stream, input)


async def _writer(basin: PacedBasin, stream: str, **options: int) -> LogWriter:
    """A writer on ``stream``, claimed, its claim's append left out of the basin's notes."""
    ack = await basin.append(
        stream, AppendInput([fence_record("session-t")], match_seq_num=0, fencing_token="")
    )
    basin.appends.pop(stream)
    writer = LogWriter(
        basin, stream, fencing_token="session-t", match_seq_num=ack.end.seq_num, **options
    )
    writer.start()
    return writer


async def _bodies(basin: MemoryBasin, stream: str) -> list[bytes]:
    batch = await basin.read(stream, seq_num=0, count=1000)
    return [r.body for r in batch.records[1:]]


def test_many_answers_at_once_share_the_budget_in_fewer_larger_batches() -> None:
    """Ten answers yielding a chunk every 20 ms against a budget of 100 appends/s: each
    writer starts its appends at least 10 / 100 s apart, so the ten together send about 100
    a second instead of 500, and every chunk is stored, in order."""

    async def main() -> tuple[PacedBasin, dict[str, list[bytes]]]:
        basin = PacedBasin(100)
        streams = [f"s{i}" for i in range(10)]
        writers = [await _writer(basin, s) for s in streams]
        assert basin.pacing.writers == 10
        for i in range(50):  # 1 s of answers
            for writer in writers:
                writer.submit(AppendRecord(b"%d" % i))
            await asyncio.sleep(0.020)
        for writer in writers:
            await writer.close([AppendRecord(b"end")])
        await asyncio.sleep(0)  # the writers' tasks end
        return basin, {s: await _bodies(basin, s) for s in streams}

    basin, stored = run_virtual(main())
    expected = [b"%d" % i for i in range(50)] + [b"end"]
    assert all(bodies == expected for bodies in stored.values())
    for appends in basin.appends.values():
        starts = [at for at, _ in appends[:-1]]  # the close's append does not wait
        assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(starts))
        assert len(appends) <= 12  # 1 s at one append per 0.1 s, and the close's
    assert basin.pacing.writers == 0  # each left the budget as it ended


def test_one_answer_is_not_slowed() -> None:
    """A lone writer against the default budget waits at most 5 ms between appends, so a
    chunk every 20 ms is appended the moment it comes."""

    async def main() -> list[float]:
        basin = PacedBasin(DEFAULT_APPENDS_PER_S)
        writer = await _writer(basin, "s")
        return await append_lags(writer, lambda: basin.appends["s"][-1][0])

    assert run_virtual(main()) == [0.0] * 10


def test_a_whole_batch_and_the_close_never_wait_for_the_spacing() -> None:
    """With the spacing at its longest, records enough for a batch are appended at once, and
    so is what remains at the close."""

    async def main() -> tuple[list[tuple[float, int]], float, float, list[bytes]]:
        basin = PacedBasin(1)  # one writer: 1 s, held to MAX_SPACING_S
        writer = await _writer(basin, "s", batch_size=10)
        loop = asyncio.get_running_loop()
        writer.submit(AppendRecord(b"first"))
        await asyncio.sleep(0.01)  # appended at once: the stream was idle
        began = loop.time()
        for i in range(25):  # two whole batches and five records
            writer.submit(AppendRecord(b"%d" % i))
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        closed = loop.time()
        await writer.close()
        return basin.appends["s"], began, closed, await _bodies(basin, "s")

    appends, began, closed, bodies = run_virtual(main())
    assert bodies == [b"first"] + [b"%d" % i for i in range(25)]
    # none waited out the 0.5 s: the whole batches went as they filled, the rest at the close
    assert appends == [(0.0, 1), (began, 10), (began, 10), (closed, 5)]


def test_the_spacing_grows_with_the_writers_up_to_its_bound() -> None:
    pacing = AppendPacing(200)
    assert pacing.spacing_s() == 0
    for _ in range(10):
        pacing.join()
    assert pacing.spacing_s() == pytest.approx(0.05)
    for _ in range(1000):
        pacing.join()
    assert pacing.spacing_s() == MAX_SPACING_S
    for _ in range(2000):
        pacing.leave()
    assert pacing.writers == 0 and pacing.spacing_s() == 0


@pytest.mark.parametrize("bad", [0, -1, math.nan])
def test_a_budget_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="appends_per_s"):
        AppendPacing(bad)
    with pytest.raises(ValueError, match="appends_per_s"):
        HttpBasin("paced-basin", access_token=None, appends_per_s=bad)


async def test_an_http_basin_has_the_default_budget_which_its_views_share() -> None:
    async with HttpBasin("paced-basin", access_token=None) as basin:
        assert basin.pacing is not None
        assert basin.pacing.appends_per_s == DEFAULT_APPENDS_PER_S
        assert PrefixedBasin(basin, "chat/").pacing is basin.pacing
    async with HttpBasin("paced-basin", access_token=None, appends_per_s=None) as unpaced:
        assert unpaced.pacing is None
    assert MemoryBasin().pacing is None


def test_the_spacing_stays_within_half_the_heartbeat() -> None:
    """A short lease (heartbeat 100 ms) with the budget's spacing at 0.5 s: a busy answer's
    appends still start at most 50 ms apart, so another instance never finds its last record
    older than a heartbeat while it streams."""

    async def main() -> list[tuple[float, int]]:
        basin = PacedBasin(1)
        writer = await _writer(basin, "s", heartbeat_ms=100)
        for i in range(20):  # a chunk every 10 ms
            writer.submit(AppendRecord(b"%d" % i))
            await asyncio.sleep(0.010)
        await writer.close()
        return basin.appends["s"]

    appends = run_virtual(main())
    starts = [at for at, _ in appends]
    assert max(b - a for a, b in itertools.pairwise(starts)) <= 0.050 + 1e-9
    assert len(appends) < 20  # still batched: more than one chunk an append
