"""What a stop from another instance, a refresh on another instance and a history read cost
in S2 round trips.

On S2 Standard storage a round trip is about 400 ms (https://s2.dev/docs, storage classes),
so every extra one is a user-visible wait: a stop button that takes seconds to end the
answer, a page that loads its history late. Virtual time makes the counts exact.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from helpers import paced_answer, user_message
from resumable_chat import create_resumable_chat
from resumable_chat.log import RecordKind, classify, read_range
from resumable_chat.s2 import MemoryBasin
from resumable_chat.s2.basin import Basin
from resumable_chat.s2.records import AppendAck, AppendInput, ReadBatch
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan
from resumable_chat.testing.virtual_time import run_virtual

LATENCY_S = 0.4  # S2 Standard


class CallLog(FaultPlanBasin):
    """The plan's faults, and a list of (start, end, operation, outcome) of every call."""

    def __init__(self, basin: Basin, plan: FaultPlan) -> None:
        super().__init__(basin, plan)
        self.calls: list[tuple[float, float, str, str]] = []

    async def append(self, stream: str, input: AppendInput) -> AppendAck:
        start = asyncio.get_running_loop().time()
        try:
            ack = await super().append(stream, input)
        except Exception as exc:
            self._log(start, "append", type(exc).__name__)
            raise
        self._log(start, "append", "ok")
        return ack

    async def read(self, stream: str, **kwargs: Any) -> ReadBatch:  # type: ignore[override]
        start = asyncio.get_running_loop().time()
        try:
            batch = await super().read(stream, **kwargs)
        except Exception as exc:
            self._log(start, "read", type(exc).__name__)
            raise
        self._log(start, "read", "ok")
        return batch

    def _log(self, start: float, operation: str, outcome: str) -> None:
        self.calls.append((start, asyncio.get_running_loop().time(), operation, outcome))


_model = paced_answer(2000, 0.02)  # 40 s of answer at 50 chunks/s


def test_a_remote_stop_ends_the_live_answer_within_three_round_trips_of_being_stored() -> None:
    """The instance running the answer meets the stop at its next append (at most one round
    trip), reads what follows its position (one), and stores its held chunks, the stop
    terminal and the end fence in one append (one). It used to take five: the read went on
    to a second read answered 416, and the terminal waited for an append of its own."""

    async def main() -> tuple[float, float, float, list[tuple[float, float, str, str]], Any]:
        storage = MemoryBasin()
        plan = FaultPlan()
        plan.delay((), LATENCY_S)
        here = CallLog(storage, plan)
        a = create_resumable_chat(basin=here)
        b = create_resumable_chat(basin=FaultPlanBasin(storage, plan))
        loop = asyncio.get_running_loop()
        try:
            live = await a.make_resumable("chat-s", _model, message=user_message(), new_chat=True)
            body = b""
            done_at: float | None = None

            async def read_live() -> None:
                nonlocal body, done_at
                async for frame in live.body_iterator:  # type: ignore[attr-defined]
                    body += frame
                done_at = loop.time()

            reader = asyncio.create_task(read_live())
            await asyncio.sleep(3)  # 150 chunks in: the claim is far behind the tail
            assert (await b.stop_session("chat-s")).status_code == 202
            stored_at = loop.time()
            await asyncio.wait_for(reader, 10)
            assert done_at is not None
            records = await read_range(storage, "chat-s", 0)
            return stored_at, done_at, loop.time(), here.calls, (body, records)
        finally:
            await a.aclose()
            await b.aclose()

    stored_at, done_at, _, calls, (body, records) = run_virtual(main())
    assert done_at - stored_at <= 3 * LATENCY_S + 0.05, (done_at - stored_at, calls[-4:])
    after = [(op, outcome) for start, end, op, outcome in calls if end > stored_at]
    assert after == [
        ("append", "FencingTokenMismatchError"),
        ("read", "ok"),
        ("append", "ok"),
    ]
    assert b'"type":"abort"' in body and body.endswith(b"data: [DONE]\n\n")
    kinds = [classify(r) for r in records]
    assert kinds[-1] is RecordKind.END and RecordKind.STOP in kinds
    assert records[-2].body == b'{"type":"abort"}'


def test_a_short_chat_s_history_is_one_read() -> None:
    """``load_messages`` of a log that fits one read costs one S2 round trip (the read
    reports the tail it reached), not a second read answered 416."""

    async def main() -> tuple[list[dict[str, Any]], list[tuple[float, float, str, str]]]:
        storage = MemoryBasin()
        plan = FaultPlan()
        here = CallLog(storage, plan)
        chat = create_resumable_chat(basin=here)
        short = paced_answer(1)

        try:
            live = await chat.make_resumable("chat-h", short, message=user_message(), new_chat=True)
            async for _ in live.body_iterator:  # type: ignore[attr-defined]
                pass
            plan.delay((), LATENCY_S)
            here.calls.clear()
            messages = await chat.load_messages("chat-h")
            return messages, list(here.calls)
        finally:
            await chat.aclose()

    messages, calls = run_virtual(main())
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert [(op, outcome) for _, _, op, outcome in calls] == [("read", "ok")]


@pytest.mark.parametrize(("join_s", "cursor"), [(1.0, None), (1.0, 20), (4.0, None), (4.0, 150)])
def test_a_refresh_on_another_instance_gets_its_first_chunk_one_round_trip_later(
    join_s: float, cursor: int | None
) -> None:
    """Instance B looks for the running answer with one read from the tail (more, in growing
    windows, when its claim lies further back) and sends what that read found at once; the
    log is followed from after it. The first chunk used to wait for a second read. The
    frames are those of a replay once the answer is over: same ids, same bodies."""

    async def main() -> tuple[float, float, bytes, bytes, bytes]:
        storage = MemoryBasin()
        plan = FaultPlan()
        plan.delay((), LATENCY_S)
        a = create_resumable_chat(basin=FaultPlanBasin(storage, plan))
        b = create_resumable_chat(basin=CallLog(storage, plan))
        loop = asyncio.get_running_loop()
        model = paced_answer(300, 0.02)

        try:
            live = await a.make_resumable("chat-r", model, message=user_message(), new_chat=True)
            live_body = b""

            async def read_live() -> None:
                nonlocal live_body
                async for frame in live.body_iterator:  # type: ignore[attr-defined]
                    live_body += frame

            reader = asyncio.create_task(read_live())
            await asyncio.sleep(join_s)
            asked = loop.time()
            resumed = await b.replay("chat-r", from_seq_num=cursor)
            assert resumed.status_code == 200
            frames = aiter(resumed.body_iterator)  # type: ignore[attr-defined]
            body = await anext(frames)
            first = loop.time()
            async for frame in frames:
                body += frame
            await reader
            again = await b.replay("chat-r", from_seq_num=cursor)  # the answer is over
            assert again.status_code == 204
            records = await read_range(storage, "chat-r", 0)
            log = b"".join(
                f"id: {r.seq_num + 1}\ndata: ".encode() + r.body + b"\n\n"
                for r in records
                if classify(r) is RecordKind.DATA and b'"ui-message"' not in r.body
            )
            return asked, first, body, live_body, log
        finally:
            await a.aclose()
            await b.aclose()

    asked, first, body, live_body, log = run_virtual(main())
    windows = 1 if join_s < 1.2 else 2  # the claim among the last 64 records, or 256
    assert first - asked <= windows * LATENCY_S + 0.01, first - asked
    assert body.endswith(b"data: [DONE]\n\n") and live_body.endswith(b"data: [DONE]\n\n")
    expected = log if cursor is None else log[log.index(f"id: {cursor + 1}\n".encode()) :]
    assert body == expected + b"data: [DONE]\n\n"


@pytest.mark.parametrize("into_s", [2.0, 12.0, 30.0])
def test_a_remote_stop_is_stored_within_two_round_trips_however_long_the_answer(
    into_s: float,
) -> None:
    """The stopping instance reads the tail (one round trip); when the answer's claim is not
    among those records, S2's answer to an append conditioned on a token nobody holds names
    the claim's token (one more, instead of a read per window growing back to the claim);
    then the stop fence (one). 100, 600 and 1,500 records into the answer: three round
    trips; it used to be three, four and five."""

    async def main() -> tuple[float, list[tuple[float, float, str, str]], int]:
        storage = MemoryBasin()
        plan = FaultPlan()
        plan.delay((), LATENCY_S)
        there = CallLog(storage, plan)
        a = create_resumable_chat(basin=FaultPlanBasin(storage, plan))
        b = create_resumable_chat(basin=there)
        loop = asyncio.get_running_loop()
        try:
            live = await a.make_resumable("chat-l", _model, message=user_message(), new_chat=True)
            reader = asyncio.create_task(_drain(live))
            await asyncio.sleep(into_s)
            asked = loop.time()
            assert (await b.stop_session("chat-l")).status_code == 202
            took = loop.time() - asked
            await asyncio.wait_for(reader, 10)
            records = await read_range(storage, "chat-l", 0)
            return took, there.calls, len(records)
        finally:
            await a.aclose()
            await b.aclose()

    took, calls, stored = run_virtual(main())
    assert took <= 3 * LATENCY_S + 0.01, (took, calls)
    assert stored > into_s * 40  # the answer was that long


async def _drain(response: Any) -> bytes:
    body = b""
    async for frame in response.body_iterator:
        body += frame
    return body
