"""A producer that raises while the generation ends does not leave the log open.

The engine calls the producer's ``stopped`` / ``failed`` (its terminal chunks), ``aclose``
(its source) and ``finished`` (its live side) as the answer ends. When one of them raises, the
log still gets its terminal fence at once and the next turn is claimed at once: without it,
the stream stayed open with no writer, and every reader and the next turn waited out a lease.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from resumable_chat.log import (
    LogConfig,
    LogEngine,
    Output,
    Producer,
    RecordKind,
    classify,
    read_range,
)
from resumable_chat.s2 import MemoryBasin


class Broken(Exception):
    pass


class FlawedProducer(Producer):
    """Appends two records, then fails or waits for a stop; raises in the hook ``flaw``."""

    def __init__(self, flaw: str, *, fail: bool) -> None:
        self.flaw = flaw
        self.fail = fail
        self.hooks: list[str] = []
        self.waiting = asyncio.Event()  # set once run() appended both and waits for a stop

    def _hook(self, name: str) -> None:
        self.hooks.append(name)
        if name == self.flaw:
            raise Broken(name)

    async def run(self, output: Output) -> None:
        output.append(b"{one}")
        output.append(b"{two}")
        if self.fail:
            raise RuntimeError("the model failed")
        self.waiting.set()
        await asyncio.Event().wait()  # until stopped

    def stopped(self, output: Output) -> None:
        self._hook("stopped")

    def failed(self, error: BaseException, output: Output) -> None:
        output.append(b"{error}")  # part of the terminal made before the flaw
        self._hook("failed")

    def finished(self, outcome: str) -> None:  # type: ignore[override]
        self._hook("finished")

    async def aclose(self) -> None:
        self._hook("aclose")


def _kinds(records: list) -> list[RecordKind]:  # type: ignore[type-arg]
    return [classify(record) for record in records]


@pytest.mark.parametrize("flaw", ["failed", "finished", "aclose"])
async def test_a_hook_that_raises_after_a_failure_still_ends_the_log(
    flaw: str, caplog: pytest.LogCaptureFixture
) -> None:
    basin = MemoryBasin()
    engine = LogEngine(basin, LogConfig(lease_ms=60_000, heartbeat_ms=30_000))
    producer = FlawedProducer(flaw, fail=True)
    with caplog.at_level(logging.ERROR, "resumable_chat.log"):
        generation = await engine.start("s", producer)
        await asyncio.wait_for(asyncio.shield(generation.task), 5)
    assert generation.task.exception() is None
    assert generation.outcome == "error"
    assert producer.hooks == ["failed", "aclose", "finished"]
    records = await read_range(basin, "s", 0)
    assert _kinds(records) == [RecordKind.CLAIM, *[RecordKind.DATA] * 3, RecordKind.ERROR]
    assert [r.body for r in records[1:4]] == [b"{one}", b"{two}", b"{error}"]
    assert f"Broken: {flaw}" in caplog.text  # logged with its traceback, not swallowed
    # the next turn is claimed at once: nothing waits out the 60 s lease
    nxt = await asyncio.wait_for(engine.start("s", FlawedProducer("none", fail=True)), 5)
    await asyncio.wait_for(asyncio.shield(nxt.task), 5)
    await engine.aclose()


async def test_a_stop_terminal_that_raises_still_ends_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    basin = MemoryBasin()
    engine = LogEngine(basin, LogConfig(lease_ms=60_000, heartbeat_ms=30_000))
    producer = FlawedProducer("stopped", fail=False)
    with caplog.at_level(logging.ERROR, "resumable_chat.log"):
        generation = await engine.start("s", producer)
        await asyncio.wait_for(producer.waiting.wait(), 5)
        assert generation.stop()
        await asyncio.wait_for(asyncio.shield(generation.task), 5)
    assert generation.task.exception() is None
    assert generation.outcome == "stopped"
    assert producer.hooks == ["stopped", "aclose", "finished"]
    records = await read_range(basin, "s", 0)
    assert _kinds(records) == [RecordKind.CLAIM, RecordKind.DATA, RecordKind.DATA, RecordKind.END]
    assert "Broken: stopped" in caplog.text
    await engine.aclose()


class SelfCancellingProducer(Producer):
    """Appends a record, then raises ``CancelledError`` though nobody cancelled its task:
    what a source does when a library it uses leaks one (a cancel scope, a future another
    task cancelled)."""

    def __init__(self) -> None:
        self.failed_with: BaseException | None = None

    async def run(self, output: Output) -> None:
        output.append(b"{one}")
        raise asyncio.CancelledError

    def failed(self, error: BaseException, output: Output) -> None:
        self.failed_with = error
        output.append(b"{error}")


async def test_a_cancelled_error_nobody_sent_ends_the_answer_as_a_failure() -> None:
    basin = MemoryBasin()
    engine = LogEngine(basin, LogConfig(lease_ms=60_000, heartbeat_ms=30_000))
    producer = SelfCancellingProducer()
    generation = await engine.start("s", producer)
    await asyncio.wait_for(asyncio.shield(generation.task), 5)
    assert not generation.task.cancelled()
    assert generation.outcome == "error"
    assert isinstance(producer.failed_with, asyncio.CancelledError)
    records = await read_range(basin, "s", 0)
    assert _kinds(records) == [RecordKind.CLAIM, RecordKind.DATA, RecordKind.DATA, RecordKind.ERROR]
    nxt = await asyncio.wait_for(engine.start("s", SelfCancellingProducer()), 5)
    await asyncio.wait_for(asyncio.shield(nxt.task), 5)
    await engine.aclose()


async def test_a_shutdown_cancel_still_abandons_the_answer() -> None:
    """A real cancel of the generation's task (shutdown) stores nothing more, as before."""
    basin = MemoryBasin()
    engine = LogEngine(basin, LogConfig(lease_ms=60_000, heartbeat_ms=30_000))
    producer = FlawedProducer("none", fail=False)
    generation = await engine.start("s", producer)
    await asyncio.wait_for(producer.waiting.wait(), 5)
    writer = generation.writer
    assert writer.durable_seq_num == writer.next_seq_num  # the embedded log took both at once
    generation.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await generation.task
    assert generation.outcome == "abandoned"
    assert _kinds(await read_range(basin, "s", 0)) == [RecordKind.CLAIM, *[RecordKind.DATA] * 2]
    await engine.aclose()
