"""One instance, S2 down far longer than the lease mid-answer: nothing is lost.

The regression of "a process closes its own running answer as crashed when it is only slow":
the same process's new-turn, follow and watchdog paths must treat its own generation as live
however long S2 is down, and once S2 answers again the log holds every event the live client
received. Over real HTTP: ``HttpBasin`` → the bundled S2 server with a ``FaultPlan`` outage.
"""

from __future__ import annotations

import asyncio

import pytest
from fault_helpers import FaultyS2, data_records, parse_sse, recorded_chat_app, recording

from resumable_chat.log import RecordKind, classify
from resumable_chat.s2 import HttpBasin

pytestmark = pytest.mark.timeout(90)

LONG_TEXT = "openai-gpt-4.1-nano-long-text.jsonl"
LEASE_MS = 1000
OUTAGE_S = 5.0  # five leases


async def stored_chunks(faulty_s2: FaultyS2, basin: HttpBasin) -> int:
    try:
        return len(data_records(await faulty_s2.stored(basin, "chat-c1")))
    except KeyError:  # the basin exists once the first request arrived
        return 0


async def test_an_outage_of_five_leases_loses_nothing(faulty_s2: FaultyS2) -> None:
    basin = faulty_s2.basin(max_attempts=2, deadline_s=1.0)
    options = {"lease_ms": LEASE_MS, "heartbeat_ms": LEASE_MS / 4}
    async with recorded_chat_app(basin, recording(LONG_TEXT), delay_ms=15, **options) as app:
        live = asyncio.create_task(app.post("c1"))
        while await stored_chunks(faulty_s2, basin) < 20:  # noqa: ASYNC110 - polls S2
            await asyncio.sleep(0.02)
        faulty_s2.plan.outage()
        began = asyncio.get_running_loop().time()
        await asyncio.sleep(LEASE_MS / 1000 * 1.5)
        # The process knows its writer is alive: a new turn is refused, nothing is closed.
        assert (await app.post("c1", "meanwhile")).status_code == 409
        # The live answer's chunks never wait on S2; its end waits for the log at most a
        # lease (here the whole outage would be far longer), then comes anyway.
        response = await live
        assert asyncio.get_running_loop().time() - began < OUTAGE_S + LEASE_MS / 1000
        await asyncio.sleep(OUTAGE_S - (asyncio.get_running_loop().time() - began))
        # The answer has ended, its end is not stored yet: try again (not "in use").
        meanwhile = await app.post("c1", "meanwhile")
        assert (meanwhile.status_code, meanwhile.headers.get("retry-after")) == (503, "1")
        faulty_s2.plan.end_outage()

        # A client resuming now (a reload) gets the whole answer: nothing was closed early.
        followed = await asyncio.wait_for(app.client.get("/api/chat/c1/stream"), 30)
        live_events = parse_sse(response.text)
        assert live_events[-1] == (None, "[DONE]") and len(live_events) > 100
        if followed.status_code == 200:  # (204 if the writer already stored the end)
            assert parse_sse(followed.text) == live_events, "the resume got the whole answer"
        for _ in range(200):
            if app.chat.running("chat-c1") is None:
                break
            await asyncio.sleep(0.05)
        stored = await faulty_s2.stored(basin, "chat-c1")
        assert data_records(stored) == [data for _, data in live_events[:-1]]
        assert classify(stored[-1]) is RecordKind.END, "its own end, not a takeover's error"
        assert (await app.post("c1", "after")).status_code == 200
