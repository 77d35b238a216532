"""A producer's iterator whose reader is stuck with a chunk (a client that stopped reading)
holds a bounded backlog of the source's output, and its reader loses nothing: past the bound
it reads the rest from the log, from after the last chunk it took, and still ends as a
producer's iterator does (the source's exception last, when it raised)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from resumable_chat.text_streams import context as context_module
from resumable_chat.text_streams.context import ResumableStreamContext, live_backlog_chars

COUNT = 400
PIECE = 3000  # characters of each chunk after its index


def text(i: int) -> str:
    return f"{i:05d}" + "é" * PIECE  # two bytes a character as stored


class Source:
    """``COUNT`` chunks as fast as the loop allows; ``fail``: raise after them."""

    def __init__(self, fail: bool = False) -> None:
        self.finished = asyncio.Event()
        self.fail = fail
        self.most_waiting = 0  # the most characters made but not yet taken by the reader

    async def make(self) -> AsyncIterator[str]:
        try:
            for i in range(COUNT):
                yield text(i)
                await asyncio.sleep(0)
            if self.fail:
                raise RuntimeError("the model failed")
        finally:
            self.finished.set()


@pytest.mark.parametrize("fail", [False, True])
async def test_a_stuck_reader_holds_a_bounded_backlog_and_reads_the_rest_from_the_log(
    make_context: Callable[..., ResumableStreamContext],
    monkeypatch: pytest.MonkeyPatch,
    fail: bool,
) -> None:
    monkeypatch.setattr(context_module, "LIVE_BACKLOG_CHARS", 20 * PIECE)
    context = make_context()
    source = Source(fail)
    stream = await context.resumable_stream("stuck", source.make)
    assert stream is not None and stream.role == "producer"
    got = [await anext(stream)]  # the reader takes one chunk, then is stuck with it
    await asyncio.wait_for(source.finished.wait(), 30)
    branch = stream._chunks.ag_frame.f_locals["self"]  # type: ignore[attr-defined]
    assert branch._backlog <= 20 * PIECE + len(text(0))  # not the 1.2 M characters made
    with pytest.raises(RuntimeError, match="the model failed") if fail else _nothing():
        async for chunk in stream:
            got.append(chunk)
    assert "".join(got) == "".join(text(i) for i in range(COUNT))
    await stream.wait_persisted() if not fail else None


async def test_stuck_readers_together_hold_at_most_the_loop_total(
    make_context: Callable[..., ResumableStreamContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two producers' readers stuck with a chunk each, each under its own bound: what waits
    for them together stays within the loop's total (not twice the 1.2 M characters made),
    and each still reads its whole output, the rest from the log."""
    monkeypatch.setattr(context_module, "LIVE_BACKLOG_CHARS", 10**9)  # alone: no bound
    monkeypatch.setattr(context_module, "LIVE_BACKLOG_TOTAL_CHARS", 30 * PIECE)
    context = make_context()
    sources = [Source(), Source()]
    streams = []
    for i, source in enumerate(sources):
        stream = await context.resumable_stream(f"stuck-{i}", source.make)
        assert stream is not None and stream.role == "producer"
        streams.append(stream)
    got = [[await anext(stream)] for stream in streams]  # then stuck with it
    await asyncio.wait_for(asyncio.gather(*(s.finished.wait() for s in sources)), 30)
    branches = [stream._chunks.ag_frame.f_locals["self"] for stream in streams]  # type: ignore[attr-defined]
    assert sum(branch._backlog for branch in branches) <= 30 * PIECE + 2 * len(text(0))
    assert live_backlog_chars() <= 30 * PIECE + len(text(0))
    for chunks, stream in zip(got, streams, strict=True):
        chunks += [chunk async for chunk in stream]
        assert "".join(chunks) == "".join(text(i) for i in range(COUNT))
    assert live_backlog_chars() == 0


async def test_a_reader_that_keeps_up_reads_from_the_source_only(
    make_context: Callable[..., ResumableStreamContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A burst while the reader waits for its next chunk is not "behind": nothing is read
    back from the log."""
    monkeypatch.setattr(context_module, "LIVE_BACKLOG_CHARS", 10)
    context = make_context()
    read_back: list[int] = []
    original = ResumableStreamContext._rest

    def spy(self: ResumableStreamContext, name: str, start: int) -> AsyncIterator[tuple[str, int]]:
        read_back.append(start)
        return original(self, name, start)

    monkeypatch.setattr(ResumableStreamContext, "_rest", spy)

    async def burst() -> AsyncIterator[str]:
        for i in range(50):
            yield text(i)  # no await in between: one loop turn

    stream = await context.resumable_stream("burst", burst)
    assert stream is not None
    assert "".join([chunk async for chunk in stream]) == "".join(text(i) for i in range(50))
    assert read_back == []


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
