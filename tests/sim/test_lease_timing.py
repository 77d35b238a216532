"""Lease, heartbeat and takeover timing, asserted to the millisecond in virtual time.

Two chat instances (each its own ownership registry, as two processes) share one embedded
basin; everything runs on :func:`~resumable_chat.testing.virtual_time.run_virtual`, so a
model silent for a minute costs no real time and the bounds below are exact, not sleeps that
hope to be long enough. A "crash" makes every call of one instance hang and cancels its
tasks, which is what a killed process leaves behind.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cluster import EPOCH_MS, MESSAGE, STREAM, Cluster, model, now_ms, read_chunks
from cluster import run as run_cluster

from resumable_chat.log import RecordKind, classify, read_range

LEASE_MS = 1000
HEARTBEAT_MS = 250
CONFIRM_MS = 2 * HEARTBEAT_MS  # the default confirm window: two heartbeats


def run(scenario: Any) -> Any:
    return run_cluster(scenario, lease_ms=LEASE_MS, heartbeat_ms=HEARTBEAT_MS)


def test_heartbeats_hold_the_lease_through_three_leases_of_model_silence() -> None:
    async def scenario(cluster: Cluster) -> None:
        a, b = cluster.chats
        live = await a.make_resumable(STREAM, model(silent_s=3 * LEASE_MS / 1000), message=MESSAGE)
        assert live.status_code == 200
        reader = cluster.spawn(read_chunks(live))
        await asyncio.sleep(3 * LEASE_MS / 1000 - 0.1)  # virtual: just before the model speaks
        # another instance sees a live generation: its turn is refused and nothing is closed
        refused = await b.make_resumable(STREAM, model(silent_s=0), message=MESSAGE)
        assert refused.status_code == 409
        chunks = [c for _, c in await reader]
        assert [c["type"] for c in chunks][-2:] == ["text-end", "finish"]
        assert chunks[-1] == {"type": "finish"}  # its own end (no finishReason for ai 5 and 6)
        kinds = [classify(r) for r in await read_range(cluster.memory, STREAM, 0)]
        assert kinds.count(RecordKind.HEARTBEAT) >= 3 * LEASE_MS // HEARTBEAT_MS - 2
        assert RecordKind.ERROR not in kinds

    run(scenario)


def test_a_stop_from_another_instance_reaches_a_silent_model_within_a_heartbeat() -> None:
    async def scenario(cluster: Cluster) -> None:
        a, b = cluster.chats
        live = await a.make_resumable(STREAM, model(silent_s=60), message=MESSAGE)
        reader = cluster.spawn(read_chunks(live))
        await asyncio.sleep(0.05)
        stopped_at = now_ms()
        assert (await b.stop_session(STREAM)).status_code == 202
        chunks = await reader
        ended_at, last = chunks[-1]
        assert last == {"type": "abort"}
        # the writer adopts the stop at its next append: a heartbeat at the latest
        assert ended_at - stopped_at <= HEARTBEAT_MS + 10

    run(scenario)


@pytest.mark.parametrize("crash_after_ms", [10, 400, 900])
def test_a_follower_gets_the_error_terminal_a_lease_and_a_confirm_window_after_a_crash(
    crash_after_ms: int,
) -> None:
    async def scenario(cluster: Cluster) -> None:
        a, b = cluster.chats
        live = await a.make_resumable(STREAM, model(silent_s=60), message=MESSAGE)
        cluster.spawn(read_chunks(live))
        await asyncio.sleep(0.005)
        follower = await b.replay(STREAM)
        assert follower.status_code == 200
        reader = cluster.spawn(read_chunks(follower))
        await asyncio.sleep(crash_after_ms / 1000)
        crashed_at = now_ms()
        await cluster.crash(0)
        last_record_ms = (await cluster.memory.check_tail(STREAM)).timestamp - EPOCH_MS
        assert crashed_at - last_record_ms <= HEARTBEAT_MS  # the writer was alive till then
        chunks = await reader
        ended_at, last = chunks[-1]
        assert last["type"] == "error"
        # a lease of silence after the writer's last record, then the confirm window: never
        # earlier, and at most a few ms later
        silent = ended_at - last_record_ms
        assert LEASE_MS + CONFIRM_MS <= silent <= LEASE_MS + CONFIRM_MS + 10
        # and the chat takes a new turn on the survivor
        nxt = await b.make_resumable(STREAM, model(silent_s=0), message=MESSAGE)
        assert nxt.status_code == 200
        assert [c["type"] for _, c in await read_chunks(nxt)][-1] == "finish"

    run(scenario)


def test_a_new_turn_after_a_crash_waits_out_the_lease_then_wins() -> None:
    async def scenario(cluster: Cluster) -> None:
        a, b = cluster.chats
        live = await a.make_resumable(STREAM, model(silent_s=60), message=MESSAGE)
        cluster.spawn(read_chunks(live))
        await asyncio.sleep(0.1)
        crashed_at = now_ms()
        await cluster.crash(0)
        refused = await b.make_resumable(STREAM, model(silent_s=0), message=MESSAGE)
        assert refused.status_code == 409  # within the lease: it may only be slow
        while True:
            await asyncio.sleep(HEARTBEAT_MS / 1000)
            response = await b.make_resumable(STREAM, model(silent_s=0), message=MESSAGE)
            if response.status_code == 200:
                break
            assert now_ms() - crashed_at <= LEASE_MS + CONFIRM_MS + 2 * HEARTBEAT_MS
        chunks = [c for _, c in await read_chunks(response)]
        assert chunks[-1]["type"] == "finish"
        assert LEASE_MS - HEARTBEAT_MS <= now_ms() - crashed_at
        await asyncio.sleep(0.1)  # the end fence follows the last chunk sent live
        fences = [
            k
            for k in (classify(r) for r in await read_range(cluster.memory, STREAM, 0))
            if k.boundary
        ]
        assert fences[-3:] == [RecordKind.ERROR, RecordKind.CLAIM, RecordKind.END]

    run(scenario)
