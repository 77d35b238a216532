"""``AppendInput`` refuses records that are not ``AppendRecord`` objects at construction, with a
``TypeError`` that says what to do, instead of an ``AttributeError`` deep in a basin's append."""

from __future__ import annotations

from typing import Any

import pytest

from resumable_chat.s2 import MemoryBasin
from resumable_chat.s2.records import AppendInput, AppendRecord, SequencedRecord


@pytest.mark.parametrize(
    "record", [b"hello", "hello", {"body": b"hello"}, SequencedRecord(0, 0, (), b"hello")]
)
def test_a_record_of_another_type_is_a_type_error(record: Any) -> None:
    with pytest.raises(TypeError, match=r"AppendRecord\(body=\.\.\.\)") as caught:
        AppendInput([AppendRecord(b"first"), record])
    assert type(record).__name__ in str(caught.value)


async def test_append_records_are_accepted_and_stored() -> None:
    basin = MemoryBasin()
    ack = await basin.append("s", AppendInput([AppendRecord(b"a"), AppendRecord(b"b")]))
    assert (ack.start.seq_num, ack.end.seq_num) == (0, 2)
