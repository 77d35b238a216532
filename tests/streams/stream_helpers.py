"""Helpers for the resumable text stream tests: a hand-driven source, readers, a faulty basin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from helpers import eventually  # noqa: F401  (re-exported)
from resumable_chat.s2 import (
    AppendAck,
    AppendInput,
    Basin,
    ReadBatch,
    S2UnavailableError,
    SequencedRecord,
    StreamPosition,
)
from resumable_chat.text_streams.context import ResumableStream

#: Upper bound (s) for any single wait in these tests.
TIMEOUT_S = 10.0

_END = object()


class TestingStream:
    """A source driven by hand, like Vercel's ``createTestingStream``: ``write``, ``close``,
    ``fail``. ``make`` is the ``make_stream`` factory; ``calls`` counts how often it ran."""

    __test__ = False  # not a test class

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.calls = 0
        self.closed = False

    def write(self, text: str) -> None:
        self.queue.put_nowait(text)

    def close(self) -> None:
        self.queue.put_nowait(_END)

    def fail(self, exc: BaseException) -> None:
        self.queue.put_nowait(exc)

    def make(self) -> AsyncIterator[str]:
        self.calls += 1
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[str]:
        try:
            while True:
                item = await self.queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.closed = True


def never_called() -> AsyncIterator[str]:
    """A ``make_stream`` that must not run (upstream test "should return null if stream is
    done")."""
    raise AssertionError("make_stream should never be called")


async def read(stream: ResumableStream | None, chunks: int | None = None) -> str:
    """Read ``chunks`` chunks (all when ``None``) from ``stream`` and join them."""
    assert stream is not None, "expected a stream, got None"
    out: list[str] = []

    async def go() -> None:
        while chunks is None or len(out) < chunks:
            try:
                out.append(await anext(stream))
            except StopAsyncIteration:
                return

    await asyncio.wait_for(go(), TIMEOUT_S)
    return "".join(out)


async def read_chunks(stream: ResumableStream | None) -> list[str]:
    """All remaining chunks of ``stream``, as a list."""
    assert stream is not None, "expected a stream, got None"

    async def go() -> list[str]:
        return [chunk async for chunk in stream]

    return await asyncio.wait_for(go(), TIMEOUT_S)


async def all_records(basin: Basin, stream: str) -> list[SequencedRecord]:
    """Every record of ``stream`` (missing or empty: ``[]``)."""
    from resumable_chat.log import read_range

    return await read_range(basin, stream, 0)


class FaultyBasin(Basin):
    """Delegates to ``inner``; raises ``S2UnavailableError`` where the flags say so.

    ``fail_reads`` (unary reads and tail checks), ``fail_follow_after`` (a follow raises after
    yielding that many batches), ``fail_appends``; ``hold_appends``: when set to an event,
    appends wait for it (a store that is stuck).
    """

    def __init__(self, inner: Basin) -> None:
        self.inner = inner
        self.name = inner.name
        self.fail_reads = False
        self.fail_appends = False
        self.fail_follow_after: int | None = None
        self.hold_appends: asyncio.Event | None = None

    @staticmethod
    def _error() -> S2UnavailableError:
        return S2UnavailableError("injected: S2 is unavailable", status=503, code="unavailable")

    async def append(self, stream: str, input: AppendInput) -> AppendAck:
        if self.fail_appends:
            raise self._error()
        if self.hold_appends is not None:
            await self.hold_appends.wait()
        return await self.inner.append(stream, input)

    async def read(self, stream: str, **kw: Any) -> ReadBatch:
        if self.fail_reads:
            raise self._error()
        return await self.inner.read(stream, **kw)

    async def check_tail(self, stream: str) -> StreamPosition:
        if self.fail_reads:
            raise self._error()
        return await self.inner.check_tail(stream)

    async def follow(
        self, stream: str, *, seq_num: int = 0, clamp: bool = False
    ) -> AsyncGenerator[ReadBatch, None]:
        if self.fail_reads:
            raise self._error()
        delivered = 0
        follow = self.inner.follow(stream, seq_num=seq_num, clamp=clamp)
        try:
            async for batch in follow:
                if self.fail_follow_after is not None and delivered >= self.fail_follow_after:
                    raise self._error()
                delivered += 1
                yield batch
        finally:
            await follow.aclose()

    async def create_stream(self, stream: str) -> None:
        await self.inner.create_stream(stream)

    async def delete_stream(self, stream: str) -> None:
        await self.inner.delete_stream(stream)
