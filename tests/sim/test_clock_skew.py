"""Takeover when the instances' clocks disagree with S2's, in virtual time.

S2 stamps each record with its arrival time, and an instance judges a generation's lease by
comparing the last record's timestamp with its own clock. Here the basin keeps true time and
instance ``b`` runs its clock ahead of it or behind it. The lease and heartbeat are the text
streams' defaults (10 s, a heartbeat every 2.5 s): a live writer's records come seldom, and
the confirmation window must still see one before any close.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cluster import EPOCH_MS, MESSAGE, STREAM, Cluster, chunk_types, model, now_ms
from cluster import run as run_cluster

from resumable_chat import create_resumable_stream_context
from resumable_chat.clock import LoopClock
from resumable_chat.log import Ownership, RecordKind
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.virtual_time import run_virtual
from resumable_chat.text_streams.context import StreamActiveError

LEASE_MS = 10_000
HEARTBEAT_MS = 2_500
CONFIRM_MS = 2 * HEARTBEAT_MS  # the default confirmation window: two heartbeat intervals


def run(skew_ms: int, scenario: Any) -> Any:
    """``scenario`` on instance ``a`` on S2's time and ``b`` ``skew_ms`` ahead of it."""
    return run_cluster(
        scenario, lease_ms=LEASE_MS, heartbeat_ms=HEARTBEAT_MS, clock_offsets=(0, skew_ms)
    )


async def crash_a_mid_answer(cluster: Cluster) -> float:
    """Start an answer on ``a`` whose model falls silent, crash ``a`` 3 s in; returns the
    virtual ms at which the answer's last record arrived."""
    live = await cluster.chats[0].make_resumable(STREAM, model(silent_s=600), message=MESSAGE)
    cluster.spawn(chunk_types(live))
    await asyncio.sleep(3.0)
    await cluster.crash(0)
    return await cluster.last_record_ms()


def test_a_judge_whose_clock_runs_a_minute_ahead_never_closes_a_live_writer() -> None:
    """Every look from ``b`` finds the lease expired by its clock; the writer's heartbeats,
    a quarter lease apart, still move the tail within each confirmation window, so the
    silent answer ends as its model ends it, for its client and for ``b``'s follower."""

    async def scenario(cluster: Cluster) -> None:
        a, b = cluster.chats
        silent_s = 3 * LEASE_MS / 1000
        live = await a.make_resumable(STREAM, model(silent_s=silent_s), message=MESSAGE)
        assert live.status_code == 200
        reader = cluster.spawn(chunk_types(live))
        follower = await b.replay(STREAM)
        assert follower.status_code == 200
        following = cluster.spawn(chunk_types(follower))

        async def turn_after(delay_s: float) -> int:
            await asyncio.sleep(delay_s)
            response = await b.make_resumable(STREAM, model(silent_s=0), message=MESSAGE)
            return response.status_code

        # new turns on b at every phase of the heartbeat cycle while the model is silent
        turns = [cluster.spawn(turn_after(0.1 + i * 0.23)) for i in range(100)]
        assert set(await asyncio.gather(*turns)) == {409}
        assert (await reader)[-2:] == ["text-end", "finish"]
        assert (await following)[-2:] == ["text-end", "finish"]
        kinds = await cluster.kinds()
        assert RecordKind.ERROR not in kinds
        assert kinds[-1] is RecordKind.END

    run(60_000, scenario)


def test_a_judge_whose_clock_runs_ahead_closes_a_crashed_writer_after_the_window() -> None:
    """A clock a minute ahead shortens the lease, not the confirmation window: ``b`` closes
    the crashed answer no sooner than a window after its last record."""

    async def scenario(cluster: Cluster) -> None:
        last = await crash_a_mid_answer(cluster)
        response = await cluster.chats[1].make_resumable(STREAM, model(silent_s=0), message=MESSAGE)
        assert response.status_code == 200
        assert (await chunk_types(response))[-1] == "finish"
        assert CONFIRM_MS <= now_ms() - last <= CONFIRM_MS + HEARTBEAT_MS + 50
        fences = [k for k in await cluster.kinds() if k.boundary]
        assert fences[-3:] == [RecordKind.ERROR, RecordKind.CLAIM, RecordKind.END]

    run(60_000, scenario)


def test_a_judge_whose_clock_runs_behind_closes_a_crashed_writer_later_by_the_skew() -> None:
    skew_ms = -4_000

    async def scenario(cluster: Cluster) -> None:
        last = await crash_a_mid_answer(cluster)
        while True:
            response = await cluster.chats[1].make_resumable(
                STREAM, model(silent_s=0), message=MESSAGE
            )
            if response.status_code == 200:
                break
            assert response.status_code == 409
            await asyncio.sleep(0.1)
        assert (await chunk_types(response))[-1] == "finish"
        waited = now_ms() - last
        assert LEASE_MS - skew_ms + CONFIRM_MS <= waited <= LEASE_MS - skew_ms + CONFIRM_MS + 150

    run(skew_ms, scenario)


def test_text_streams_a_context_whose_clock_runs_ahead_follows_a_live_producer() -> None:
    """The text streams' defaults (a 10 s lease, heartbeats a quarter of it apart) with a
    second context a minute ahead of S2: it sees the silent producer's lease expired, yet
    ``resumable_stream`` follows the producer instead of failing or closing it, and
    ``create_new_resumable_stream`` is refused as for any live producer."""

    async def scenario() -> None:
        memory = MemoryBasin(clock=LoopClock())
        contexts = [
            create_resumable_stream_context(
                memory, clock=LoopClock(EPOCH_MS + offset), ownership=Ownership()
            )
            for offset in (0, 60_000)
        ]
        a, b = contexts
        assert a.lease_ms == 10_000
        released = asyncio.Event()

        async def source() -> AsyncIterator[str]:
            yield "first "
            await released.wait()
            yield "last"

        async def never() -> AsyncIterator[str]:
            raise AssertionError("a live producer was replaced")
            yield ""  # pragma: no cover - makes this an async generator

        try:
            producer = await a.resumable_stream("s", source)
            assert producer is not None and producer.role == "producer"
            produced = asyncio.create_task(_text(producer))
            await asyncio.sleep(3 * a.lease_ms / 1000)  # virtual: the source is silent

            async def follow_after(delay_s: float) -> str:
                await asyncio.sleep(delay_s)
                follower = await b.resumable_stream("s", never)
                assert follower is not None and follower.role == "resumer"
                with pytest.raises(StreamActiveError):
                    await b.create_new_resumable_stream("s", never)
                return await _text(follower)

            # at every phase of the producer's heartbeat cycle
            followers = [asyncio.create_task(follow_after(i * 0.23)) for i in range(30)]
            await asyncio.sleep(30 * 0.23 + 2 * a.lease_ms / 1000)
            assert await b.has_existing_stream("s") == "failed"  # its clock alone says so
            released.set()
            assert await produced == "first last"
            assert await asyncio.gather(*followers) == ["first last"] * 30
            assert await b.has_existing_stream("s") == "done"
        finally:
            for context in contexts:
                await context.aclose(drain_timeout_s=0.1)

    run_virtual(scenario())


async def _text(stream: Any) -> str:
    return "".join([chunk async for chunk in stream])


def test_a_follower_whose_clock_runs_behind_closes_a_crashed_writer_after_its_own_wait() -> None:
    """A follower on ``b`` (a minute behind S2) that got nothing for a lease of its own
    waiting, and finds nothing past what it got, closes the crashed answer a lease and a
    confirmation window after its last record, as with clocks in step: its own wait is the
    lease, whatever its clock says of the records' timestamps."""

    async def scenario(cluster: Cluster) -> None:
        live = await cluster.chats[0].make_resumable(STREAM, model(silent_s=600), message=MESSAGE)
        cluster.spawn(chunk_types(live))
        await asyncio.sleep(0.01)
        follower = await cluster.chats[1].replay(STREAM)
        assert follower.status_code == 200
        following = cluster.spawn(chunk_types(follower))
        await asyncio.sleep(3.0)
        await cluster.crash(0)
        last = await cluster.last_record_ms()
        assert (await following)[-1] == "error"
        waited = now_ms() - last  # the timestamp is whole ms: within 1 ms of the append
        assert LEASE_MS + CONFIRM_MS - 1 <= waited <= LEASE_MS + CONFIRM_MS + 50
        assert (await cluster.kinds())[-1] is RecordKind.ERROR

    run(-60_000, scenario)
