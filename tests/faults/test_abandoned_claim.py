"""A turn answered 503 leaves no claim behind that locks the chat.

When S2 hangs past the deadline, the claim's append may still be applied once S2 recovers (S2
had received it). The instance that answered 503 runs nothing under that claim, yet it is an
open generation: every turn on the chat was refused with 409 until another instance judged
it lost, a lease of silence and the confirmation window later (about 11 s with a 5 s lease).
Now the instance that gave up on the claim watches for it and closes it the moment S2
answers, so the client's retry is accepted at once, on any instance.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from helpers import paced_answer, user_message
from resumable_chat import create_resumable_chat
from resumable_chat.clock import LoopClock
from resumable_chat.log import Ownership, RecordKind, classify, read_range
from resumable_chat.s2 import MemoryBasin
from resumable_chat.s2.errors import S2Error, S2UnavailableError
from resumable_chat.s2.records import AppendAck, AppendInput, ReadBatch, StreamPosition
from resumable_chat.testing.virtual_time import run_virtual

LEASE_MS = 5000
CLOCK = LoopClock()  # S2's timestamps and the lease on the virtual loop's time


class HungS2(MemoryBasin):
    """While ``hung``, every call fails as a client sees S2 hang past its deadline; appends
    sent meanwhile were received, and S2 applies them when it recovers (:meth:`recover`),
    in the order sent, unless ``drop`` (they were lost on the way)."""

    def __init__(self) -> None:
        super().__init__(clock=CLOCK)
        self.hung = False
        self.received: list[tuple[str, AppendInput]] = []

    async def append(self, stream: str, input: AppendInput) -> AppendAck:
        if self.hung:
            self.received.append((stream, input))
            raise S2UnavailableError("S2 did not answer within the deadline")
        return await super().append(stream, input)

    async def read(self, stream: str, **kwargs: Any) -> ReadBatch:  # type: ignore[override]
        if self.hung:
            raise S2UnavailableError("S2 did not answer within the deadline")
        return await super().read(stream, **kwargs)

    async def check_tail(self, stream: str) -> StreamPosition:
        if self.hung:
            raise S2UnavailableError("S2 did not answer within the deadline")
        return await super().check_tail(stream)

    def recover(self, *, drop: bool = False) -> None:
        self.hung = False
        received, self.received = self.received, []
        for stream, input in [] if drop else received:
            try:
                self._append(stream, input)
            except S2Error:
                pass  # its condition failed: S2 rejected it


_model = paced_answer(1)


@pytest.mark.parametrize("hang_s", [3, 25], ids=["S2 hangs 3 s", "S2 hangs 5 leases"])
@pytest.mark.parametrize("retry_on", ["same instance", "other instance"])
@pytest.mark.parametrize("turn", ["first turn", "later turn"])
def test_a_claim_s2_stores_after_the_turn_got_503_is_closed_at_once(
    retry_on: str, turn: str, hang_s: float
) -> None:
    """However long S2 hangs (the watch lasts two leases from S2's last failure, not from
    the turn's: before, a claim S2 stored after more than two leases locked the chat for a
    lease more)."""

    async def main() -> tuple[float, int, list[Any]]:
        basin = HungS2()
        a = create_resumable_chat(
            basin=basin, ownership=Ownership(), lease_ms=LEASE_MS, clock=CLOCK
        )
        b = create_resumable_chat(
            basin=basin, ownership=Ownership(), lease_ms=LEASE_MS, clock=CLOCK
        )
        loop = asyncio.get_running_loop()
        try:
            new_chat = turn == "first turn"
            if not new_chat:
                first = await a.make_resumable("chat-h", _model, message=user_message())
                async for _ in first.body_iterator:  # type: ignore[attr-defined]
                    pass
            basin.hung = True
            with pytest.raises(S2UnavailableError):
                await a.make_resumable(
                    "chat-h", _model, message=user_message("again"), new_chat=new_chat
                )
            await asyncio.sleep(hang_s)  # S2 hangs on
            basin.recover()  # ...and stores the claim it had received
            recovered = loop.time()
            assert (await a.engine.latest("chat-h")).active, "the abandoned claim landed"
            retrying = a if retry_on == "same instance" else b
            while True:  # the client retries every second (Retry-After: 1)
                answer = await retrying.make_resumable(
                    "chat-h", _model, message=user_message("again")
                )
                if answer.status_code != 409:
                    break
                await asyncio.sleep(1)
            async for _ in answer.body_iterator:  # type: ignore[attr-defined]
                pass
            records = await read_range(basin, "chat-h", 0)
            return loop.time() - recovered, answer.status_code, records
        finally:
            await a.aclose()
            await b.aclose()

    waited, status, records = run_virtual(main())
    assert status == 200
    assert waited < 2, f"the retry was accepted {waited:.1f} s after S2 recovered"
    kinds = [classify(r) for r in records]
    assert kinds.count(RecordKind.ERROR) == 1, "the abandoned claim is closed as lost"
    assert kinds[-1] is RecordKind.END


def test_a_claim_s2_never_stored_leaves_nothing_behind() -> None:
    async def main() -> tuple[int, list[Any]]:
        basin = HungS2()
        a = create_resumable_chat(
            basin=basin, ownership=Ownership(), lease_ms=LEASE_MS, clock=CLOCK
        )
        try:
            basin.hung = True
            with pytest.raises(S2UnavailableError):
                await a.make_resumable("chat-n", _model, message=user_message(), new_chat=True)
            basin.recover(drop=True)
            answer = await a.make_resumable("chat-n", _model, message=user_message())
            async for _ in answer.body_iterator:  # type: ignore[attr-defined]
                pass
            await asyncio.sleep(2 * LEASE_MS / 1000 + 1)  # the watch has ended by now
            return answer.status_code, await read_range(basin, "chat-n", 0)
        finally:
            await a.aclose()

    status, records = run_virtual(main())
    assert status == 200
    assert [classify(r) for r in records].count(RecordKind.ERROR) == 0


class FrozenS2(MemoryBasin):
    """S2 frozen: every call waits the client's whole deadline, then fails."""

    deadline_s = 10.0

    async def append(self, stream: str, input: AppendInput) -> AppendAck:
        await asyncio.sleep(self.deadline_s)
        raise S2UnavailableError("S2 did not answer within the deadline")

    async def read(self, stream: str, **kwargs: Any) -> ReadBatch:  # type: ignore[override]
        await asyncio.sleep(self.deadline_s)
        raise S2UnavailableError("S2 did not answer within the deadline")


def test_a_stop_during_a_claim_s2_does_not_answer_fails_within_one_deadline() -> None:
    """A DELETE that arrives while the turn's claim is in flight waits for that claim; when
    the claim failed because S2 did not answer, the stop answers 503 then, instead of
    spending a whole deadline more on S2 calls of its own (20 s in all, before)."""

    async def main() -> float:
        basin = FrozenS2(clock=CLOCK)
        chat = create_resumable_chat(basin=basin, lease_ms=LEASE_MS, clock=CLOCK)
        loop = asyncio.get_running_loop()
        try:
            turn = asyncio.create_task(
                chat.make_resumable("chat-f", _model, message=user_message(), new_chat=True)
            )
            await asyncio.sleep(0.5)
            asked = loop.time()
            with pytest.raises(S2UnavailableError):
                await chat.stop_session("chat-f")
            took = loop.time() - asked
            with pytest.raises(S2UnavailableError):
                await turn
            return took
        finally:
            await chat.aclose()

    took = run_virtual(main())
    assert took <= FrozenS2.deadline_s, took
