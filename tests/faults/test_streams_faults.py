"""Generic resumable text streams when S2 stays down past the S2 client's retry budget: the
producer's own iterator still gets everything, the status is never "done" while the log lacks
the end, and the producer's writer keeps retrying, so once S2 answers again the whole output
and its ``end-`` fence are stored."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fault_helpers import FaultyS2

from resumable_chat import create_resumable_stream_context
from resumable_chat.s2.records import is_fence

pytestmark = pytest.mark.timeout(60)


async def test_outage_past_the_budget_completes_once_s2_returns(faulty_s2: FaultyS2) -> None:
    basin = faulty_s2.basin(max_attempts=2)
    ctx = create_resumable_stream_context(basin=basin, batch_size=1, linger_ms=0)
    words = [f"w{i} " for i in range(20)]

    async def produce() -> AsyncIterator[str]:
        for word in words:
            yield word

    faulty_s2.plan.fail("append", status=503, skip=2, times=None)  # claim and one batch pass
    stream = await ctx.resumable_stream("job", produce)
    assert stream is not None
    got = [chunk async for chunk in stream]
    assert "".join(got) == "".join(words), "the producer's own iterator got everything"
    assert await ctx.has_existing_stream("job") == "active"  # not "done": no terminal yet
    # The S2 client gives up after 2 attempts; the writer retries on its own.
    await faulty_s2.plan.wait_injected(5, "status")
    assert await ctx.has_existing_stream("job") == "active"

    faulty_s2.plan.end_outage()
    await stream.wait_persisted()
    assert await ctx.has_existing_stream("job") == "done"
    stored = await faulty_s2.stored(basin, "job")
    assert [r.body for r in stored if not r.headers and r.body] == [w.encode() for w in words]
    assert is_fence(stored[-1]) and stored[-1].body.startswith(b"end-")
    await ctx.aclose()
