"""Counters per event loop (``resumable_chat.loop_totals``): the bounds that hold for a whole
process (the live backlog totals) count on them."""

from __future__ import annotations

import asyncio

import pytest

from resumable_chat.loop_totals import loop_counter


async def test_one_counter_per_name_and_loop() -> None:
    counter = loop_counter("test: things")
    assert counter is loop_counter("test: things")
    assert counter is not loop_counter("test: other things")
    counter.value += 3
    other_loop = asyncio.new_event_loop()
    try:
        assert loop_counter("test: things", other_loop).value == 0
        assert loop_counter("test: things", asyncio.get_running_loop()).value == 3
    finally:
        other_loop.close()


def test_without_a_running_loop_name_one() -> None:
    with pytest.raises(RuntimeError):
        loop_counter("test: things")
