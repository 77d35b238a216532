"""One-round-trip claims: a guess of the stream's end (a new chat, or what this process left
after its own last answer) is tried as the claim's only condition; a wrong guess falls back to
reading the tail, and two claimers can still never both win.

What a user sees: on S2 Standard (about 400 ms a round trip) the first chunk of a new chat's
answer, or of a turn on the instance that served the previous one, comes one round trip
sooner; nothing else changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.chat.core import ResumableChat
from resumable_chat.log import RecordKind, StreamInUseError, classify, read_range
from resumable_chat.s2 import MemoryBasin
from resumable_chat.s2.errors import S2UnavailableError
from resumable_chat.s2.records import AppendAck, AppendInput, AppendRecord, ReadBatch

STREAM = "chat-claims"


class LoggingBasin(MemoryBasin):
    """Logs each append and unary read (a claim's round trips), in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def append(self, stream: str, request: AppendInput) -> AppendAck:
        self.calls.append("append")
        return await super().append(stream, request)

    async def read(self, stream: str, **options: Any) -> ReadBatch:
        self.calls.append("read")
        return await super().read(stream, **options)


async def _answer(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "text-start", "id": "t"}
    yield {"type": "text-delta", "id": "t", "delta": "hi"}
    yield {"type": "text-end", "id": "t"}
    yield {"type": "finish"}


async def _turn(chat: ResumableChat, *, new_chat: bool) -> int:
    response = await chat.make_resumable(STREAM, _answer, new_chat=new_chat)
    if response.status_code == 200:
        async for _ in response.body_iterator:  # type: ignore[attr-defined]
            pass
        generation = chat.running(STREAM)
        if generation is not None:
            await generation.task
    return response.status_code


def _claims(records: list[Any]) -> int:
    return sum(classify(r) is RecordKind.CLAIM for r in records)


async def test_a_new_chat_and_the_next_turn_here_claim_in_one_round_trip() -> None:
    basin = LoggingBasin()
    chat = create_resumable_chat(basin=basin)
    for new_chat in (True, False):  # the second turn: this process stored the first's end
        basin.calls.clear()
        assert await _turn(chat, new_chat=new_chat) == 200
        assert basin.calls[0] == "append"  # the claim, with no read before it
    assert _claims(await read_range(basin, STREAM, 0)) == 2
    await chat.aclose()


async def test_without_a_guess_the_claim_reads_the_tail_first() -> None:
    basin = LoggingBasin()
    chat = create_resumable_chat(basin=basin)
    await basin.append(STREAM, AppendInput([AppendRecord(b"not a chat chunk")]))
    basin.calls.clear()
    assert await _turn(chat, new_chat=False) == 200
    assert basin.calls[0] == "read"  # the tail and last record, then the claim
    await chat.aclose()


async def test_a_wrong_guess_falls_back_and_is_never_a_false_conflict() -> None:
    basin = MemoryBasin()
    a = create_resumable_chat(basin=basin)
    b = create_resumable_chat(basin=basin)
    assert await _turn(a, new_chat=True) == 200
    # b guesses a new chat (wrong: a answered), then a's hint is stale (b answered)
    assert await _turn(b, new_chat=True) == 200
    assert await _turn(a, new_chat=False) == 200
    assert await _turn(b, new_chat=False) == 200
    assert _claims(await read_range(basin, STREAM, 0)) == 4
    await a.aclose()
    await b.aclose()


@pytest.mark.parametrize("new_chat", [True, False])
async def test_two_instances_guessing_alike_never_both_win(new_chat: bool) -> None:
    basin = MemoryBasin()
    chats = [create_resumable_chat(basin=basin) for _ in range(2)]
    if not new_chat:  # both remember the same end: each answered once, in turn
        await _turn(chats[0], new_chat=True)
        hint = chats[0].engine.claim_hint(STREAM)
        assert hint is not None
        chats[1].engine.remember_claim_hint(STREAM, *hint)
    gate = asyncio.Event()

    async def held(signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        await gate.wait()
        async for chunk in _answer(signal):
            yield chunk

    results = await asyncio.gather(
        *(c.make_resumable(STREAM, held, new_chat=new_chat) for c in chats),
        return_exceptions=True,
    )
    statuses = sorted(r.status_code for r in results if not isinstance(r, BaseException))
    assert statuses == [200, 409], results
    gate.set()
    for chat in chats:
        generation = chat.running(STREAM)
        if generation is not None:
            await generation.task
        await chat.aclose()
    records = await read_range(basin, STREAM, 0)
    assert _claims(records) == (1 if new_chat else 2)
    assert not any(isinstance(r, StreamInUseError) for r in results)


class AckLosingBasin(LoggingBasin):
    """Records every append batch; the first one lands but its acknowledgement is lost."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[bytes]] = []

    async def append(self, stream: str, request: AppendInput) -> AppendAck:
        ack = await super().append(stream, request)
        self.batches.append([r.body for r in request.records])
        if len(self.batches) == 1:
            raise S2UnavailableError("S2 append failed: the connection broke (ack lost)")
        return ack


async def test_the_turns_message_is_stored_in_the_claims_own_append() -> None:
    """The user message lands atomically with the claim (no reader sees the claimed turn
    without it), also when the claim's acknowledgement is lost and read back; the answer
    follows right after it."""
    for basin in (LoggingBasin(), AckLosingBasin()):
        chat = create_resumable_chat(basin=basin)
        message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
        response = await chat.make_resumable(STREAM, _answer, message=message, new_chat=True)
        assert response.status_code == 200
        generation = chat.running(STREAM)
        assert generation is not None
        await generation.task
        records = await read_range(basin, STREAM, 0)
        assert classify(records[0]) is RecordKind.CLAIM
        assert b'"role":"user"' in records[1].body
        assert b'"type":"start"' in records[2].body  # the writer's first record
        assert generation.claim.start_seq_num == 2
        history = await chat.load_messages(STREAM)
        assert [m["role"] for m in history] == ["user", "assistant"]
        if isinstance(basin, AckLosingBasin):
            assert len(basin.batches[0]) == 2  # fence + message, one atomic batch
        await chat.aclose()
