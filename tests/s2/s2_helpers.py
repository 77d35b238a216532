"""Helpers for the S2 log-port tests: record builders and an httpx transport that injects faults."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import httpx2

from resumable_chat.s2 import AppendAck, AppendInput, AppendRecord, Basin, ReadBatch

Forward = Callable[[httpx2.Request], Awaitable[httpx2.Response]]
Script = Callable[[httpx2.Request, Forward], Awaitable[httpx2.Response]]


def recs(*bodies: bytes | str) -> list[AppendRecord]:
    """Plain records with these bodies (``str`` is UTF-8 encoded)."""
    return [AppendRecord(b.encode() if isinstance(b, str) else b) for b in bodies]


async def append(
    basin: Basin,
    stream: str,
    *bodies: bytes | str,
    match_seq_num: int | None = None,
    fencing_token: str | None = None,
) -> AppendAck:
    """Append one batch of plain records."""
    return await basin.append(
        stream, AppendInput(recs(*bodies), match_seq_num=match_seq_num, fencing_token=fencing_token)
    )


async def collect(
    basin: Basin, stream: str, count: int, *, seq_num: int = 0, limit_s: float = 10.0
) -> list[ReadBatch]:
    """Follow ``stream`` from ``seq_num`` until ``count`` records arrived; the batches."""
    batches: list[ReadBatch] = []
    seen = 0
    async with asyncio.timeout(limit_s):
        async with contextlib.aclosing(basin.follow(stream, seq_num=seq_num)) as follow:
            async for batch in follow:
                batches.append(batch)
                seen += len(batch.records)
                if seen >= count:
                    break
    return batches


def seq_nums(batches: Sequence[ReadBatch]) -> list[int]:
    """All seq_nums of ``batches``, in order."""
    return [r.seq_num for b in batches for r in b.records]


class ScriptedTransport(httpx2.AsyncBaseTransport):
    """Forwards requests to a real transport; ``script`` may fail, delay or cut exchanges.

    ``script(request, forward)`` returns the response to give the client; ``forward`` sends the
    request on for real. Every request is recorded in ``requests``.
    """

    def __init__(self, script: Script | None = None) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.script = script
        self.requests: list[httpx2.Request] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if self.script is None:
            return await self.inner.handle_async_request(request)
        return await self.script(request, self.inner.handle_async_request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def matching(self, method: str, path_suffix: str) -> list[httpx2.Request]:
        """Recorded requests with this method whose path ends with ``path_suffix``."""
        return [r for r in self.requests if r.method == method and r.url.path.endswith(path_suffix)]


class CutStream(httpx2.AsyncByteStream):
    """A response body that breaks like a dropped connection partway through.

    It passes bytes through until ``cut_after`` bytes past the ``nth`` (1-based) occurrence of
    ``marker``, then raises ``httpx2.RemoteProtocolError`` (a cut in the middle of an event).
    """

    def __init__(
        self, inner: httpx2.AsyncByteStream, *, marker: bytes, nth: int, cut_after: int = 20
    ) -> None:
        self.inner = inner
        self.marker = marker
        self.nth = nth
        self.cut_after = cut_after

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = b""
        async for chunk in self.inner:
            start = len(seen)
            seen += chunk
            index = -1
            for _ in range(self.nth):
                index = seen.find(self.marker, index + 1)
                if index < 0:
                    break
            if index >= 0:
                cut = index + self.cut_after
                if cut < len(seen):
                    yield seen[start:cut]
                    raise httpx2.RemoteProtocolError("peer closed connection (test cut)")
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


def error_response(status: int, code: str, **headers: str) -> httpx2.Response:
    """An S2 ``ErrorInfo`` response."""
    return httpx2.Response(
        status, json={"code": code, "message": f"injected {code}"}, headers=headers
    )
