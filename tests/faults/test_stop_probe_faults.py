"""A stop sent to another instance while a long answer runs, when S2 fails once.

Once the answer's claim lies further back than the first read of the stop reaches (64
records), the stopping instance learns the stream's fencing token with an append S2 must
reject (``PROBE_TOKEN``). That append is neither conditioned on a seq_num nor moves the token,
so the basin does not retry it after a 503 (it could land twice, were it any other append);
a single transient failure of it made the stop answer 503 while the answer ran on to its
end. The probe now gives way to reading the log back to the claim (reads are retried).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fault_helpers import FaultyS2

from helpers import eventually, parse_sse
from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.log import Ownership
from resumable_chat.log.scan import LatestGeneration, OpenGeneration, latest_generation_or_token
from resumable_chat.s2 import AppendInput, AppendRecord, S2AuthError, fence_record

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("status", [503, 500, 408, 429])
async def test_a_probe_that_fails_once_gives_way_to_reads(faulty_s2: FaultyS2, status: int) -> None:
    basin = faulty_s2.basin()
    await basin.append("p", AppendInput([fence_record("session-h")]))
    await basin.append("p", AppendInput([AppendRecord(b"x")] * 300))
    tail = await basin.check_tail("p")
    faulty_s2.plan.fail("append", status=status, times=1)
    found = await latest_generation_or_token(basin, "p")
    if status == 429:  # S2 wrote nothing: the basin retries the probe itself
        assert found == OpenGeneration("session-h", tail)
    else:  # the log was read back to the claim
        assert isinstance(found, LatestGeneration)
        assert found.claim_token == "session-h" and found.active and found.tail == tail
    assert faulty_s2.plan.injected == [("append", "status")]
    assert await basin.check_tail("p") == tail  # nothing stored by the probe


async def test_a_probe_refused_for_good_is_raised(faulty_s2: FaultyS2) -> None:
    """A permanent failure (403: the token lost access) is not hidden behind reads."""
    basin = faulty_s2.basin()
    await basin.append("p", AppendInput([fence_record("session-h")]))
    await basin.append("p", AppendInput([AppendRecord(b"x")] * 300))
    faulty_s2.plan.fail("append", status=403, times=1)
    with pytest.raises(S2AuthError):
        await latest_generation_or_token(basin, "p")


async def test_a_stop_from_another_instance_survives_one_failed_append(
    faulty_s2: FaultyS2,
) -> None:
    """The answer runs on one instance, 200 chunks in (its claim far behind the tail), and
    the model is silent; the stop goes to another instance and S2 fails its next append
    once. The stop answers 202, and the answer ends with the AI SDK's ``abort`` at the
    running instance's next chunk."""
    options: dict[str, Any] = {"lease_ms": 60_000, "heartbeat_ms": 20_000}
    running = create_resumable_chat(basin=faulty_s2.basin(), **options)
    name = faulty_s2.basins[0].name
    other = create_resumable_chat(basin=faulty_s2.basin(name), ownership=Ownership(), **options)
    more = asyncio.Event()
    body: asyncio.Task[bytes] | None = None

    async def source(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        for i in range(200):
            yield {"type": "text-delta", "id": "t", "delta": f"w{i} "}
        await more.wait()  # a silent model
        while True:
            yield {"type": "text-delta", "id": "t", "delta": "more "}
            await asyncio.sleep(0.01)

    try:
        response = await running.make_resumable("chat-1", source)

        async def read_body() -> bytes:
            return b"".join([frame async for frame in response.body_iterator])  # type: ignore[attr-defined]

        body = asyncio.create_task(asyncio.wait_for(read_body(), 30))

        async def stored_all() -> bool:
            return (await faulty_s2.basins[0].check_tail("chat-1")).seq_num >= 203

        await eventually(stored_all)  # the writer is idle: the next append is the stop's
        faulty_s2.plan.fail("append", status=503, times=1)
        stopped = await other.stop_session("chat-1")
        assert stopped.status_code == 202, stopped.body
        assert faulty_s2.plan.injected == [("append", "status")]
        more.set()
        events = parse_sse((await body).decode())
        assert events[-1] == (None, "[DONE]")
        assert '"type":"abort"' in events[-2][1]
    finally:
        more.set()
        await other.aclose()
        await running.aclose()
        if body is not None and not body.done():
            body.cancel()
            await asyncio.gather(body, return_exceptions=True)
