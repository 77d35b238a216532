"""``read_on``: a read that breaks off on an S2 failure that may pass is read on from the
position after the last item given, never repeating or skipping one; a permanent failure,
or failures that last ``retry_s``, are raised. On virtual time: no real waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from resumable_chat.log.read_on import read_on
from resumable_chat.s2.errors import S2InvalidError, S2UnavailableError
from resumable_chat.testing.virtual_time import run_virtual


class Flaky:
    """Items 0..9, each with the position after it; the reads listed in ``fail_at`` break
    off with ``error`` once their position is reached."""

    def __init__(self, fail_at: list[int], error: Exception | None = None) -> None:
        self.fail_at = fail_at
        self.error = error or S2UnavailableError("S2 read failed: 503", status=503)
        self.starts: list[int] = []
        self.closed = 0

    async def read(self, start: int) -> AsyncGenerator[tuple[int, int], None]:
        self.starts.append(start)
        try:
            for item in range(start, 10):
                if self.fail_at and self.fail_at[0] == item:
                    self.fail_at.pop(0)
                    raise self.error
                yield item, item + 1
        finally:
            self.closed += 1


async def _all(flaky: Flaky, retry_s: float = 30.0) -> tuple[list[int], float]:
    loop = asyncio.get_running_loop()
    began = loop.time()
    items = [item async for item in read_on(flaky.read, 0, retry_s=retry_s)]
    return items, loop.time() - began


def test_transient_failures_are_read_on_from_the_last_item_given() -> None:
    flaky = Flaky(fail_at=[3, 3, 7])
    items, took = run_virtual(_all(flaky))
    assert items == list(range(10))  # none repeated, none skipped
    assert flaky.starts == [0, 3, 3, 7]
    assert flaky.closed == 4  # every read closed
    assert took == pytest.approx(0.1 + 0.2 + 0.1)  # backoff doubles, then starts over


def test_a_permanent_failure_is_raised_at_once() -> None:
    flaky = Flaky(fail_at=[2], error=S2InvalidError("bad request", status=400))
    with pytest.raises(S2InvalidError):
        run_virtual(_all(flaky))
    assert flaky.starts == [0]


def test_failures_in_a_row_for_retry_s_are_raised() -> None:
    flaky = Flaky(fail_at=[5] * 100)

    async def main() -> tuple[list[int], float]:
        got: list[int] = []
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(S2UnavailableError):
            async for item in read_on(flaky.read, 0, retry_s=5.0):
                got.append(item)
        return got, loop.time() - began

    got, took = run_virtual(main())
    assert got == [0, 1, 2, 3, 4]
    assert 5.0 <= took <= 7.0  # waits of 0.1 doubling to 2 s, until 5 s of failures
