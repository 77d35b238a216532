"""Stop from another instance: two ResumableChat objects on one basin (two "servers")."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from helpers import eventually
from resumable_chat import create_resumable_chat
from resumable_chat.chat.producer import encode_chunk, live_channel
from resumable_chat.log import Ownership, RecordKind, classify, read_range, record_id
from resumable_chat.log.records import stop_token
from resumable_chat.s2 import MemoryBasin, is_terminal_fence
from resumable_chat.s2.records import AppendInput, AppendRecord, fence_record, is_stop_fence
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan


def _chunks(protocol: str, i: int) -> dict[str, Any]:
    if protocol == "ai-sdk":
        return {"type": "text-delta", "id": "t", "delta": f"w{i} "}
    return {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a1", "delta": f"w{i} "}


@pytest.mark.parametrize("protocol", ["ai-sdk", "tanstack"])
async def test_a_stop_on_b_stops_the_generation_on_a(basin, protocol) -> None:  # type: ignore[no-untyped-def]
    # two instances: each has its own ownership registry, as two processes would
    a = create_resumable_chat(protocol=protocol, mode="session", basin=basin, ownership=Ownership())
    b = create_resumable_chat(protocol=protocol, mode="session", basin=basin, ownership=Ownership())
    produced = 0
    closed = asyncio.Event()
    running = asyncio.Event()
    signals: list[asyncio.Event] = []

    async def model(signal: asyncio.Event) -> Any:
        nonlocal produced
        signals.append(signal)
        try:
            if protocol == "ai-sdk":
                yield {"type": "start", "messageId": "m1"}
                yield {"type": "text-start", "id": "t"}
            else:
                yield {"type": "RUN_STARTED", "runId": "r1"}
                yield {"type": "TEXT_MESSAGE_START", "messageId": "a1", "role": "assistant"}
            for i in range(500):
                await asyncio.sleep(0.01)
                produced += 1
                if produced == 5:
                    running.set()
                yield _chunks(protocol, i)
        finally:
            closed.set()

    generation, live = await _answering(a, "chat-x", model)
    await running.wait()
    assert (await b.stop_session("chat-x")).status_code == 202
    async with asyncio.timeout(5):
        await closed.wait()
        await generation.task
    assert produced < 500 and signals[0].is_set()
    frames = [
        json.loads(line[6:]) for line in (await live).splitlines() if line.startswith("data: {")
    ]
    records = await read_range(basin, "chat-x", 0)
    stored = [json.loads(r.body) for r in records if classify(r) is RecordKind.DATA]
    if protocol == "ai-sdk":
        assert frames[-1] == {"type": "abort"}
        assert frames[-2] == {"type": "message-metadata", "messageMetadata": {"stopped": True}}
        assert frames[-3] == {"type": "text-end", "id": "t"}
    else:
        assert frames[-1]["type"] == "RUN_FINISHED" and frames[-1]["runId"] == "r1"
        assert frames[-1]["finishReason"] == "stop"
    assert stored == frames  # nothing the client saw is missing from the log
    assert sum(is_stop_fence(r) for r in records) == 1
    assert is_terminal_fence(records[-1]) and records[-1].body.startswith(b"end-")
    assert (await b.stop_session("chat-x")).status_code == 204
    assert (await b.replay("chat-x")).status_code in (204, 200)
    await a.aclose()
    await b.aclose()


async def test_stop_elsewhere_with_nothing_running_is_204(basin) -> None:  # type: ignore[no-untyped-def]
    b = create_resumable_chat(basin=basin)
    assert (await b.stop_session("chat-none")).status_code == 204
    await b.aclose()


async def _answering(chat: Any, stream: str, model: Any) -> tuple[Any, asyncio.Task[str]]:
    """Start ``model`` on ``stream`` through ``chat``: its generation, and a task collecting
    its live response."""
    await chat.make_resumable(stream, model)
    generation = chat.running(stream)
    assert generation is not None
    return generation, asyncio.create_task(_collect(live_channel(generation).frames()))


async def _collect(frames: Any) -> str:
    out = b""
    async for frame in frames:
        out += frame
    return out.decode()


async def test_live_ids_match_the_log_after_a_remote_stop() -> None:
    """A's appends are held while its model goes on (those frames go out live with the ids
    the records would get); B's stop fence lands first, so A's held records end up one
    position later. They keep the ids their live frames carried: a client resuming from any
    live id gets exactly what came after it, never a repeat."""
    memory = MemoryBasin()
    plan = FaultPlan()
    a = create_resumable_chat(
        protocol="tanstack", basin=FaultPlanBasin(memory, plan), ownership=Ownership()
    )
    b = create_resumable_chat(protocol="tanstack", basin=memory, ownership=Ownership())
    go_on = asyncio.Event()

    async def model(signal: asyncio.Event) -> Any:
        yield {"type": "RUN_STARTED", "runId": "r1", "threadId": "t"}
        yield {"type": "TEXT_MESSAGE_START", "messageId": "a1", "role": "assistant"}
        for i in range(50):
            if i == 3:
                await go_on.wait()
            yield {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a1", "delta": f"w{i} "}
            await asyncio.sleep(0.005)

    response = await a.make_resumable("tanstack-t", model)
    frames = response.body_iterator  # type: ignore[attr-defined]
    live: list[tuple[int | None, str]] = []

    async def read_live() -> None:
        async for data in frames:
            live.extend(_sse(data))

    reader = asyncio.create_task(read_live())
    while len(live) < 5:  # noqa: ASYNC110 - waits on the live reader
        await asyncio.sleep(0.01)
    hold = plan.hold("append")  # A's writer can no longer store...
    go_on.set()
    while len(live) < 12:  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # ...while its live client gets more
    assert (await b.stop_session("tanstack-t")).status_code == 202
    hold.release()
    await asyncio.wait_for(reader, 5)
    generation = a.running("tanstack-t")
    if generation is not None:
        await asyncio.wait_for(generation.task, 5)

    records = await read_range(memory, "tanstack-t", 0)
    stored = {record_id(r): r.body.decode() for r in records if classify(r) is RecordKind.DATA}
    with_ids = [(i, d) for i, d in live if i is not None]
    assert any(r.headers and classify(r) is RecordKind.DATA for r in records), "none displaced"
    for sse_id, data in with_ids:
        assert stored[sse_id] == data, f"live id {sse_id} names another record in the log"
    for cut in range(len(with_ids)):
        cursor = with_ids[cut][0]
        assert cursor is not None
        replay = await b.replay("tanstack-t", from_seq_num=cursor)
        got: list[tuple[int | None, str]] = []
        with contextlib.suppress(TimeoutError):  # a session replay follows forever
            async with asyncio.timeout(0.2):
                async for data in replay.body_iterator:  # type: ignore[attr-defined]
                    got.extend(_sse(data))
        assert got == with_ids[cut + 1 :], f"resumed after id {cursor}"
    await a.aclose()
    await b.aclose()


def _sse(data: bytes) -> list[tuple[int | None, str]]:
    out: list[tuple[int | None, str]] = []
    for block in data.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            out.append((int(fields["id"]) if "id" in fields else None, fields["data"]))
    return out


async def test_a_stop_naming_the_claim_stops_the_model_before_the_writer_reads() -> None:
    """B's stop fence carries A's claim (``stop_token``), so A's writer knows from the failed
    append alone that its own generation was stopped: the model stops while the read that
    adopts the stop is still held. The answer then ends as any stopped answer does."""
    memory = MemoryBasin()
    plan = FaultPlan()
    a = create_resumable_chat(basin=FaultPlanBasin(memory, plan), ownership=Ownership())
    b = create_resumable_chat(basin=memory, ownership=Ownership())
    running = asyncio.Event()
    closed = asyncio.Event()

    async def model(signal: asyncio.Event) -> Any:
        try:
            yield {"type": "start", "messageId": "m1"}
            yield {"type": "text-start", "id": "t"}
            for i in range(500):
                if i == 3:
                    running.set()
                yield {"type": "text-delta", "id": "t", "delta": f"w{i} "}
                await asyncio.sleep(0.005)
        finally:
            closed.set()

    generation, live = await _answering(a, "chat-s", model)
    await running.wait()
    held = plan.hold("read")  # A's writer cannot read what stopped it
    assert (await b.stop_session("chat-s")).status_code == 202
    async with asyncio.timeout(5):
        await closed.wait()  # the model stopped with the read still held
    assert held.fired >= 1 and not generation.task.done()
    held.release()
    async with asyncio.timeout(5):
        await generation.task
    frames = [json.loads(x[6:]) for x in (await live).splitlines() if x.startswith("data: {")]
    assert frames[-1] == {"type": "abort"}
    records = await read_range(memory, "chat-s", 0)
    stops = [r for r in records if is_stop_fence(r)]
    claim = next(r for r in records if classify(r) is RecordKind.CLAIM)
    assert [r.body for r in stops] == [stop_token(claim.body.decode()).encode()]
    assert [json.loads(r.body) for r in records if classify(r) is RecordKind.DATA] == frames
    assert is_terminal_fence(records[-1]) and records[-1].body.startswith(b"end-")
    await a.aclose()
    await b.aclose()


async def test_a_stop_during_a_losing_claim_stops_the_generation_that_holds_the_stream() -> None:
    """B runs an answer. A gets a new turn, and while A's claim is in flight (its read held),
    a stop reaches A. A's claim then loses (409), so the stop goes on to B's answer: it ends
    with the stop terminal, and the 202 was not a lie."""
    memory = MemoryBasin()
    plan = FaultPlan()
    a = create_resumable_chat(basin=FaultPlanBasin(memory, plan), ownership=Ownership())
    b = create_resumable_chat(basin=memory, ownership=Ownership(), heartbeat_ms=50)
    release = asyncio.Event()

    async def long_model(signal: asyncio.Event) -> Any:
        yield {"type": "start", "messageId": "m1"}
        yield {"type": "text-start", "id": "t"}
        await release.wait()  # silent until stopped (the heartbeat meets the stop fence)
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}

    async def never_called(signal: asyncio.Event) -> Any:
        raise AssertionError("A's claim lost: its model must not be called")
        yield {}

    generation, live = await _answering(b, "chat-l", long_model)
    held = plan.hold("read", times=1)  # A's claim reads the stream's last record
    post = asyncio.create_task(a.make_resumable("chat-l", never_called))

    async def claim_in_flight() -> bool:
        return held.fired == 1

    await eventually(claim_in_flight)
    stop = asyncio.create_task(a.stop_session("chat-l"))  # waits for A's claim to be decided
    held.release()
    assert (await post).status_code == 409
    assert (await stop).status_code == 202
    async with asyncio.timeout(5):
        await generation.task  # stopped, not left running
    release.set()
    frames = [json.loads(x[6:]) for x in (await live).splitlines() if x.startswith("data: {")]
    assert frames[-1] == {"type": "abort"}
    await a.aclose()
    await b.aclose()


@pytest.mark.parametrize(("stop_on", "post_on"), [("b", "b"), ("b", "a"), ("a", "b")])
async def test_a_turn_sent_right_after_a_stop_is_answered_on_either_instance(
    basin: Any, stop_on: str, post_on: str
) -> None:
    """A's model is quiet (waiting for its first token), so A's writer learns of B's stop
    only at its next heartbeat. A turn sent the moment the stop answered 202 waits for A to
    end the stopped answer and is answered, wherever the stop and the turn land (before, it
    got 409 until A had written its end: about a second on S2 Standard)."""
    chats = {
        name: create_resumable_chat(
            protocol="ai-sdk", basin=basin, ownership=Ownership(), lease_ms=2000, heartbeat_ms=400
        )
        for name in ("a", "b")
    }
    quiet = asyncio.Event()

    async def waiting_model(signal: asyncio.Event) -> Any:
        yield {"type": "start", "messageId": "m1"}
        await quiet.wait()  # never set: the model has not answered when the stop comes

    async def next_model(signal: asyncio.Event) -> Any:
        yield {"type": "start", "messageId": "m2"}
        yield {"type": "finish"}

    generation, live = await _answering(chats["a"], "chat-s", waiting_model)
    assert (await chats[stop_on].stop_session("chat-s")).status_code == 202
    response = await chats[post_on].make_resumable("chat-s", next_model)
    assert response.status_code == 200, getattr(response, "body", b"")[:200]
    assert (await live).rstrip().endswith('data: {"type":"abort"}')  # the stopped answer
    await generation.task
    for chat in chats.values():
        await chat.aclose()
    records = await read_range(basin, "chat-s", 0)
    claims = [r for r in records if classify(r) is RecordKind.CLAIM]
    assert len(claims) == 2 and records[-1].body.startswith(b"end-")


@pytest.mark.parametrize("loaded", ["after the moved records", "before the moved records"])
async def test_a_first_load_snapshot_is_before_a_run_whose_records_a_stop_moved(
    loaded: str,
) -> None:
    """A stop fence landed before the running run's first records were stored, so they sit
    one position later and keep the ids their live frames carried (``sse-id``). The
    snapshot's id must come before the run's ``RUN_STARTED``, whether the tab loads once
    they are stored or while the log still ends with the stop fence: a tab that reconnects
    from the snapshot's id gets the run from its start, ``RUN_STARTED`` included."""
    basin = MemoryBasin()
    chat = create_resumable_chat(protocol="tanstack", basin=basin, ownership=Ownership())

    async def first_turn(signal: asyncio.Event) -> Any:
        yield {"type": "RUN_STARTED", "runId": "r1", "threadId": "t"}
        yield {"type": "TEXT_MESSAGE_START", "messageId": "a1", "role": "assistant"}
        yield {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a1", "delta": "one"}
        yield {"type": "TEXT_MESSAGE_END", "messageId": "a1"}
        yield {"type": "RUN_FINISHED", "runId": "r1", "finishReason": "stop"}

    await chat.make_resumable("tanstack-t", first_turn)
    generation = chat.running("tanstack-t")
    assert generation is not None
    await generation.task
    # the next run as a writer stores it when a stop fence got in before its first records
    tail = (await basin.check_tail("tanstack-t")).seq_num
    moved = AppendInput(
        [
            AppendRecord(encode_chunk(chunk), ((b"sse-id", str(tail + 2 + i).encode()),))
            for i, chunk in enumerate(
                [
                    {"type": "RUN_STARTED", "runId": "r2", "threadId": "t"},
                    {"type": "TEXT_MESSAGE_START", "messageId": "a2", "role": "assistant"},
                ]
            )
        ]
    )
    fences = [fence_record("session-AAAAAAAAAAA="), fence_record("stop-AAAAAAAAAAA=")]
    await basin.append("tanstack-t", AppendInput(fences))
    if loaded == "after the moved records":
        await basin.append("tanstack-t", moved)
    response = await chat.replay("tanstack-t")
    frames_in = response.body_iterator  # type: ignore[attr-defined]
    head = await anext(frames_in)
    if loaded == "before the moved records":
        await basin.append("tanstack-t", moved)
    while b"a2" not in head:
        head += await anext(frames_in)
    events = _sse(head)
    (snapshot_id, snapshot), (run_id, run) = events[0], events[1]
    assert json.loads(snapshot)["type"] == "MESSAGES_SNAPSHOT"
    assert json.loads(run)["type"] == "RUN_STARTED" and run_id == tail + 2
    assert snapshot_id is not None and snapshot_id < run_id
    await frames_in.aclose()
    again = await chat.replay("tanstack-t", from_seq_num=snapshot_id)
    async for frames in again.body_iterator:  # type: ignore[attr-defined]
        assert json.loads(_sse(frames)[0][1])["type"] == "RUN_STARTED"
        break
    await chat.aclose()
