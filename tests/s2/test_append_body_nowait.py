"""``MemoryBasin.append_body_nowait``: one record stored synchronously with its conditions,
exactly as ``append`` of the same one-record batch stores it, or nothing written and ``None``
whenever ``append`` would not store it as asked."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resumable_chat.s2 import MemoryBasin
from resumable_chat.s2.errors import S2Error
from resumable_chat.s2.prefixed import PrefixedBasin
from resumable_chat.s2.records import (
    MAX_BATCH_METERED_BYTES,
    AppendAck,
    AppendInput,
    AppendRecord,
    fence_record,
)
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan

# an operation: (stream index, body, match_seq_num offset from the tail, token choice);
# a fence resets the token of its stream to its body
_OPS = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.one_of(st.binary(max_size=8), st.sampled_from([b"", b"x" * 64])),
        st.sampled_from([0, 0, 0, -1, 1]),
        st.sampled_from(["right", "right", "wrong", "fence"]),
    ),
    max_size=40,
)


async def _replay(ops: list[tuple[int, bytes, int, str]], fast: bool) -> list[object]:
    """Run ``ops`` on a fresh basin: each as ``append_body_nowait`` (then ``append`` of the
    same batch when it declines) or as ``append`` only; what each op gave, then every
    stream's records."""
    basin = MemoryBasin()
    tokens = ["", "", ""]
    outcomes: list[object] = []
    for index, body, offset, token_choice in ops:
        stream = f"s{index}"
        if token_choice == "fence":
            await basin.append(stream, AppendInput([fence_record(f"t{len(outcomes)}")]))
            tokens[index] = f"t{len(outcomes)}"
            outcomes.append("fenced")
            continue
        tail = (await basin.check_tail(stream)).seq_num
        match = max(0, tail + offset)
        token = tokens[index] if token_choice == "right" else "not-the-token"
        if fast:
            stamp = basin.append_body_nowait(stream, body, match_seq_num=match, fencing_token=token)
            if stamp is not None:
                outcomes.append(("stored", match))
                continue
        request = AppendInput([AppendRecord(body)], match_seq_num=match, fencing_token=token)
        try:
            ack = await basin.append(stream, request)
        except S2Error as exc:
            outcomes.append(type(exc).__name__)
        else:
            outcomes.append(("stored", ack.start.seq_num))
    for index in range(3):
        stream = f"s{index}"
        if (await basin.check_tail(stream)).seq_num == 0:
            outcomes.append([])
            continue
        batch = await basin.read(stream, seq_num=0, count=1000)
        outcomes.append([(r.seq_num, r.headers, r.body) for r in batch.records])
    return outcomes


@settings(max_examples=150, deadline=None)
@given(_OPS)
def test_it_stores_what_append_stores_and_declines_what_append_refuses(
    ops: list[tuple[int, bytes, int, str]],
) -> None:
    assert asyncio.run(_replay(ops, fast=True)) == asyncio.run(_replay(ops, fast=False))


async def test_it_declines_without_writing() -> None:
    basin = MemoryBasin()
    assert basin.append_body_nowait("new", b"x", match_seq_num=0, fencing_token="") is None
    assert basin.stream_names() == []  # a missing stream is not created here
    await basin.append("s", AppendInput([fence_record("mine")]))
    too_large = b"x" * (MAX_BATCH_METERED_BYTES - 7)
    for body, match, token in [(b"x", 0, "mine"), (b"x", 1, "other"), (too_large, 1, "mine")]:
        assert basin.append_body_nowait("s", body, match_seq_num=match, fencing_token=token) is None
    assert (await basin.check_tail("s")).seq_num == 1
    stamp = basin.append_body_nowait("s", b"ok", match_seq_num=1, fencing_token="mine")
    records = (await basin.read("s", seq_num=0, count=10)).records
    assert [(r.seq_num, r.body, r.timestamp) for r in records[1:]] == [(1, b"ok", stamp)]


async def test_a_subclass_that_overrides_append_and_the_views_keep_their_meaning() -> None:
    class Instrumented(MemoryBasin):
        async def append(self, stream: str, input: AppendInput) -> AppendAck:
            return await super().append(stream, input)

    overriding = Instrumented()
    await overriding.append("s", AppendInput([fence_record("mine")]))
    assert overriding.append_body_nowait("s", b"x", match_seq_num=1, fencing_token="mine") is None

    memory = MemoryBasin()
    view = PrefixedBasin(memory, "p-")
    await view.append("s", AppendInput([fence_record("mine")]))
    assert view.append_body_nowait("s", b"x", match_seq_num=1, fencing_token="mine") is not None
    assert [r.body for r in (await memory.read("p-s", seq_num=1)).records] == [b"x"]

    plan = FaultPlan()
    faulty = FaultPlanBasin(memory, plan)
    rule = plan.fail("append", status=503, times=1)
    assert faulty.append_body_nowait("p-s", b"y", match_seq_num=2, fencing_token="mine") is None
    assert rule.fired == 0  # declined, not counted: the append through the plan fails
    with pytest.raises(S2Error):
        await faulty.append("p-s", AppendInput([AppendRecord(b"y")], fencing_token="mine"))
    assert faulty.append_body_nowait("p-s", b"y", match_seq_num=2, fencing_token="mine")
