"""The load generator of ``bench/run.py``: one scenario per process, results as JSON on stdout.

It only talks HTTP to 127.0.0.1 (a server started by ``run.py``: ``bench/app.py`` or the peer
in ``bench/peer/``), is bounded in requests and time, and measures on its own clock:

    python bench/loadgen.py ttfb --base http://127.0.0.1:8100 --count 200 --concurrency 1
    python bench/loadgen.py resume --base ... --count 200 --concurrency 50
    python bench/loadgen.py throughput --base ... --n 100000
    python bench/loadgen.py lag --base ... --n 500 --interval-ms 10
    python bench/loadgen.py concurrent --base ... --chats 500 --n 100
    python bench/loadgen.py memory --base ... --followers 1000
    python bench/loadgen.py history --base ... --short 10 --long 1000 --count 100

Times are milliseconds. "First chunk" is the arrival of the first SSE ``data:`` frame. Timed
windows run with this process's garbage collector paused (:func:`client_gc_paused`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import httpx

BODY = {"messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]}
HOLD_S = 120  # a held generation stays silent this long unless stopped


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def client(connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0, connect=30.0))


BODY_BYTES = json.dumps(BODY).encode()


async def open_stream(
    method: str, url: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, bytes]:
    """Send one HTTP/1.1 request on a new connection (``Connection: close``); read the head.

    Returns the reader, the writer, the status and the body bytes read with the head. A
    minimal client on purpose: the measurements are of the server, not of the client's HTTP
    stack (httpx costs about a millisecond of CPU per request, and both share the machine).
    The body stays chunked-encoded; whole SSE frames never straddle a chunk, so counting
    ``data:`` on the raw bytes is exact.
    """
    parsed = httpx.URL(url)
    reader, writer = await asyncio.open_connection(parsed.host, parsed.port, limit=1 << 20)
    status, rest = await send_request(reader, writer, method, url)
    return reader, writer, status, rest


async def send_request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    method: str,
    url: str,
    *,
    close: bool = True,
) -> tuple[int, bytes]:
    """Send one request on an open connection and read the response head: the status and
    the body bytes read with it. ``close``: ask the server to close after this response."""
    parsed = httpx.URL(url)
    head = f"{method} {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {parsed.host}:{parsed.port}\r\n"
    body = b""
    if method == "POST":
        body = BODY_BYTES
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = await reader.read(65536)
        if not piece:
            writer.close()
            raise ConnectionError(f"{method} {url}: connection closed before the response head")
        data += piece
    status_head, _, rest = data.partition(b"\r\n\r\n")
    return int(status_head.split(b" ", 2)[1]), rest


async def accepted_connection(
    base: str,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A keep-alive connection to ``base`` that the server has accepted: opened and used for
    one ``GET /ping`` (204, no body), ready for the next request.

    A browser or a proxy reuses its connections; a load test that opens one per request
    measures the server's accept loop instead (uvloop accepts one connection per loop turn,
    libuv PR #3696, so a burst of new connections waits seconds in the listen queue of a
    busy process).
    """
    parsed = httpx.URL(base)
    reader, writer = await asyncio.open_connection(parsed.host, parsed.port, limit=1 << 20)
    status, rest = await send_request(reader, writer, "GET", f"{base}/ping", close=False)
    if status != 204 or rest:
        writer.close()
        raise ConnectionError(f"GET {base}/ping: {status} {rest[:80]!r}")
    return reader, writer


async def accepted_connections(
    bases: list[str], count: int, parallel: int = 100
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``count`` accepted keep-alive connections, the i-th to ``bases[i % len(bases)]``,
    at most ``parallel`` being opened at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one(index: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with gate:
            return await accepted_connection(bases[index % len(bases)])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


#: The end of a chunked body (the last chunk has size 0). A server may keep the connection
#: open although the request said ``Connection: close`` (node:http does when the response
#: sets ``Connection: keep-alive``), so the end of the body is read from the framing.
CHUNKED_END = b"\r\n0\r\n\r\n"


async def count_to_end(reader: asyncio.StreamReader, buf: bytes = b"") -> int:
    """Read to the end of the (chunked) response: how many SSE ``data:`` frames it had.
    ``buf``: what was read of the body already (empty: nothing yet)."""
    frames, _ = await count_to_end_timed(reader, buf)
    return frames


async def count_to_end_timed(
    reader: asyncio.StreamReader, buf: bytes = b"", mark: int = 0
) -> tuple[int, float | None]:
    """:func:`count_to_end`, and when (``time.perf_counter()``, s) the response had ``mark``
    ``data:`` frames (``None``: it never had that many, or ``mark`` is 0)."""
    frames = 0
    carry = b""
    reached: float | None = None
    piece = buf or await reader.read(1 << 18)
    while piece:
        chunk = carry + piece
        frames += chunk.count(b"data: ")
        carry = chunk[-7:]
        frames -= carry.count(b"data: ")
        if mark and reached is None and frames + carry.count(b"data: ") >= mark:
            reached = time.perf_counter()
        if chunk.endswith(CHUNKED_END) or chunk == b"0\r\n\r\n":
            break
        piece = await reader.read(1 << 18)
    return frames + carry.count(b"data: "), reached


async def first_chunk_ms(method: str, url: str, *, drain: bool = True) -> tuple[float, int]:
    """Time (ms) from opening the connection to the first ``data:`` frame, and the status.

    With ``drain`` the rest of the body is read (and thrown away); otherwise the connection
    is closed after the first frame.
    """
    start = time.perf_counter()
    reader, writer, status, buf = await open_stream(method, url)
    return await _first_frame(reader, writer, status, buf, start, drain)


async def first_chunk_on(
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], method: str, url: str
) -> tuple[float, int]:
    """Like :func:`first_chunk_ms` on an accepted keep-alive connection (see
    :func:`accepted_connection`): the time runs from sending the request; the connection is
    closed after the first frame."""
    reader, writer = connection
    start = time.perf_counter()
    status, buf = await send_request(reader, writer, method, url)
    return await _first_frame(reader, writer, status, buf, start, False)


async def _first_frame(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    status: int,
    buf: bytes,
    start: float,
    drain: bool,
) -> tuple[float, int]:
    try:
        elapsed = -1.0
        if status == 200:
            while b"data: " not in buf:
                piece = await reader.read(65536)
                if not piece:
                    break
                buf = buf[-5:] + piece
            else:
                elapsed = (time.perf_counter() - start) * 1000
        else:
            elapsed = (time.perf_counter() - start) * 1000
        if drain:
            await count_to_end(reader, buf)
        return elapsed, status
    finally:
        writer.close()


@contextlib.contextmanager
def client_gc_paused() -> Iterator[None]:
    """No garbage collection in this process while timing: a full collection here pauses
    every request in flight for 10-20 ms, which is the client's time, not the server's
    (collected before, and after the block)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


async def run_bounded(jobs: list[Callable[[], Awaitable[Any]]], concurrency: int) -> list[Any]:
    """Run ``jobs`` with at most ``concurrency`` at a time; results in job order."""
    results: list[Any] = [None] * len(jobs)
    queue = list(enumerate(jobs))
    queue.reverse()

    async def worker() -> None:
        while queue:
            index, job = queue.pop()
            results[index] = await job()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


class Held:
    """A generation kept running on the server: its live POST is read in the background."""

    def __init__(self, http: httpx.AsyncClient, base: str, chat_id: str, query: str) -> None:
        self.http, self.base, self.chat_id, self.query = http, base, chat_id, query
        self.started = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        url = f"{self.base}/resumable/{self.chat_id}?{self.query}"
        async with self.http.stream("POST", url, json=BODY) as response:
            async for piece in response.aiter_raw():
                if b"data: " in piece:
                    self.started.set()

    async def __aenter__(self) -> Held:
        self.task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.started.wait(), 30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(httpx.HTTPError):
            await self.http.delete(f"{self.base}/resumable/{self.chat_id}/stream")
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await self.task


# -- scenarios ---------------------------------------------------------------------------------


async def ttfb(args: argparse.Namespace) -> dict[str, Any]:
    """Time to first chunk of plain vs resumable POSTs, interleaved, same source."""
    query = f"n={args.n}&first_ms={args.first_ms}"

    def job(kind: str) -> Callable[[], Awaitable[tuple[float, int]]]:
        extra = "&early=1" if args.early and kind == "resumable" else ""
        return lambda: first_chunk_ms("POST", f"{args.base}/{kind}/{new_id('t')}?{query}{extra}")

    warm = [job(k) for _ in range(args.warmup) for k in ("plain", "resumable")]
    await run_bounded(warm, args.concurrency)
    jobs = [job(k) for _ in range(args.count) for k in ("plain", "resumable")]
    with client_gc_paused():
        results = await run_bounded(jobs, args.concurrency)
    # non-200 answers are errors, counted beside the latencies, never inside them
    plain = [ms for ms, status in results[0::2] if status == 200]
    resumable = [ms for ms, status in results[1::2] if status == 200]
    errors = sum(1 for _, status in results if status != 200)
    return {"plain": plain, "resumable": resumable, "errors": errors}


async def resume(args: argparse.Namespace) -> dict[str, Any]:
    """Time to the first replayed chunk of a running answer, in rounds of ``concurrency``.
    With ``--plain``, the same requests to the floor route (fixed frames, no storage). With
    ``--kept-alive``, each round's connections are opened and accepted first and the time
    runs from the request (see :func:`accepted_connection`); else from the connect."""
    chat_id = new_id("r")
    route = "plain" if args.plain else "resumable"
    async with client(args.concurrency + 2) as http:
        held = Held(http, args.base, chat_id, f"n=5&hold_s={HOLD_S}")
        async with contextlib.nullcontext() if args.plain else held:
            await asyncio.sleep(args.join_after_s)  # a wait, not a synchronisation
            base = args.follow_base or args.base
            url = f"{base}/{route}/{chat_id}/stream"

            def job() -> Awaitable[tuple[float, int]]:
                return first_chunk_ms("GET", url, drain=False)

            await run_bounded([job for _ in range(args.warmup)], 1)
            out: list[float] = []
            errors = 0
            for _ in range(args.rounds):
                jobs: list[Awaitable[tuple[float, int]]]
                if args.kept_alive:
                    connections = await accepted_connections([base], args.concurrency)
                    jobs = [first_chunk_on(c, "GET", url) for c in connections]
                else:
                    jobs = [job() for _ in range(args.concurrency)]
                with client_gc_paused():
                    results = await asyncio.gather(*jobs)
                out += [ms for ms, status in results if status == 200]
                errors += sum(1 for _, status in results if status != 200)
    return {"ms": out, "errors": errors}


async def count_frames(response: httpx.Response) -> tuple[int, float]:
    """Read an SSE body to its end: (``data:`` frames, ms when the last byte arrived)."""
    frames = 0
    carry = b""
    async for piece in response.aiter_raw():
        buf = carry + piece
        frames += buf.count(b"data: ")
        carry = buf[-5:]
        frames -= carry.count(b"data: ")
    frames += carry.count(b"data: ")
    return frames, time.perf_counter() * 1000


async def throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Chunks/s of one answer: plain, and resumable with one live follower (until it ends)."""
    query = f"n={args.n}&size={args.size}&yield_every={args.yield_every}"
    async with client(4) as http:
        # plain
        start = time.perf_counter() * 1000
        async with http.stream("POST", f"{args.base}/plain/{new_id('p')}?{query}", json=BODY) as r:
            plain_frames, plain_end = await count_frames(r)
        plain_ms = plain_end - start
        # resumable + one follower, started once the answer has begun
        chat_id = new_id("f")
        started = asyncio.Event()
        follower_result: dict[str, Any] = {}

        async def follow() -> None:
            await started.wait()
            url = f"{args.base}/resumable/{chat_id}/stream"
            async with http.stream("GET", url) as r:
                follower_result["status"] = r.status_code
                follower_result["frames"], follower_result["end"] = await count_frames(r)

        follower = asyncio.create_task(follow())
        start = time.perf_counter() * 1000
        async with http.stream("POST", f"{args.base}/resumable/{chat_id}?{query}", json=BODY) as r:
            frames = 0
            carry = b""
            async for piece in r.aiter_raw():
                if not started.is_set() and b"data: " in piece:
                    started.set()
                buf = carry + piece
                frames += buf.count(b"data: ")
                carry = buf[-5:]
                frames -= carry.count(b"data: ")
            frames += carry.count(b"data: ")
            live_end = time.perf_counter() * 1000
        await follower
    return {
        "n": args.n,
        "plain_ms": plain_ms,
        "plain_frames": plain_frames,
        "live_ms": live_end - start,
        "live_frames": frames,
        "follower_ms": follower_result["end"] - start,
        "follower_frames": follower_result["frames"],
        "follower_status": follower_result["status"],
    }


def parse_stamps(buf: bytes, now_ns: int, lags: list[float]) -> bytes:
    """Append the lag (ms) of every complete stamped text-delta frame in ``buf``; the rest."""
    *complete, rest = buf.split(b"\n\n")
    for frame in complete:
        at = frame.find(b'"delta":"')
        if at >= 0 and b"text-delta" in frame:
            stamp = frame[at + 9 : frame.index(b";", at)]
            lags.append((now_ns - int(stamp)) / 1e6)
    return rest


async def lag(args: argparse.Namespace) -> dict[str, Any]:
    """Append → follower delivery lag (ms) of stamped chunks paced at ``interval_ms``."""
    chat_id = new_id("l")
    query = f"n={args.n}&interval_ms={args.interval_ms}&stamp=1&first_ms=200"
    lags: list[float] = []
    async with client(4) as http:
        post = asyncio.create_task(_drain(http, "POST", f"{args.base}/resumable/{chat_id}?{query}"))
        url = f"{args.follow_base or args.base}/resumable/{chat_id}/stream"
        await _wait_for_claim(http, url)  # the source waits 200 ms for its first chunk
        with client_gc_paused():
            async with http.stream("GET", url) as r:
                status = r.status_code
                rest = b""
                async for piece in r.aiter_raw():
                    rest = parse_stamps(rest + piece, time.time_ns(), lags)
        await post
    return {"ms": lags, "status": status, "expected": args.n}


async def _wait_for_claim(http: httpx.AsyncClient, url: str, timeout_s: float = 10.0) -> None:
    """Poll ``url`` (the resume route) until it answers 200: the answer has been claimed.
    A fixed sleep was too short on a loaded S2 path (the follower got 204 and no samples)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with http.stream("GET", url) as r:
            if r.status_code == 200:
                return
        await asyncio.sleep(0.005)


async def _drain(http: httpx.AsyncClient, method: str, url: str) -> tuple[int, int]:
    async with http.stream(method, url, json=BODY if method == "POST" else None) as r:
        frames, _ = await count_frames(r)
        return r.status_code, frames


async def concurrent(args: argparse.Namespace) -> dict[str, Any]:
    """``chats`` answers at once, paced at ``interval_ms``; each stored answer is then checked
    against the log (``GET /resumable/{id}/log``), and with ``with_follower`` each also has a
    live follower joining after its first chunk.

    Every connection is opened, accepted and kept alive before the first chat starts (see
    :func:`accepted_connection`), then starts are spread over ``ramp_s``. Reports the
    server's event-loop lag over the run, how late each chat's first chunk came after its
    request (``start_p99_ms``), and every answer whose live stream, follower or log missed
    a chunk.
    """
    query = f"n={args.n}&interval_ms={args.interval_ms}"
    expected = args.n + 5  # start, text-start, deltas, text-end, finish, [DONE]
    stored = args.n + 5  # the turn's message, start, text-start, deltas, text-end, finish
    bases = args.bases.split(",") if args.bases else [args.base]
    route = "plain" if args.plain else "resumable"
    following = args.with_follower and not args.plain
    lives = await accepted_connections(bases, args.chats)
    follows = await accepted_connections(bases, args.chats) if following else []
    chat_ids = [new_id("c") for _ in range(args.chats)]
    starts: list[float] = []
    paces: list[float] = []  # each live answer's first-to-last chunk time over the paced time
    async with client(min(args.chats, 100) + 4) as http:
        for base in bases:
            await http.post(f"{base}/stats/reset")

        async def one(index: int) -> tuple[bool, str]:
            await asyncio.sleep(args.ramp_s * index / args.chats)
            base = bases[index % len(bases)]
            chat_id = chat_ids[index]
            started = asyncio.Event()

            async def live() -> tuple[int, int]:
                reader, writer = lives[index]
                try:
                    at = time.perf_counter()
                    url = f"{base}/{route}/{chat_id}?{query}"
                    status, buf = await send_request(reader, writer, "POST", url)
                    while not buf:
                        buf = await reader.read(65536)
                        if not buf:
                            break
                    first = time.perf_counter()
                    starts.append((first - at) * 1000)
                    started.set()
                    # paced: from the first delta to the last (frames 3 and n + 2)
                    frames, last = await count_to_end_timed(reader, buf, args.n + 2)
                    if args.interval_ms > 0 and args.n > 1 and last is not None:
                        paced = (args.n - 1) * args.interval_ms / 1000
                        paces.append((last - first) / paced)
                    return status, frames
                finally:
                    started.set()
                    writer.close()

            async def follow() -> tuple[int, int]:
                reader, writer = follows[index]
                try:
                    url = f"{base}/resumable/{chat_id}/stream"
                    status, buf = await send_request(reader, writer, "GET", url)
                    return status, await count_to_end(reader, buf or await reader.read(65536))
                finally:
                    writer.close()

            live_task = asyncio.create_task(live())
            if following:
                await started.wait()
                status, frames = await follow()
                # It joins after the first chunk and replays from `start`, so it sees all.
                if status != 200 or frames != expected:
                    live_task.cancel()
                    return False, f"follower {status} {frames}/{expected}"
            live_status, live_frames = await live_task
            if live_status != 200 or live_frames != expected:
                return False, f"live {live_status} {live_frames}/{expected}"
            return True, ""

        start = time.perf_counter()
        own_lag: list[float] = []

        async def probe() -> None:  # the load generator's own event-loop lag
            loop = asyncio.get_running_loop()
            while True:
                at = loop.time()
                await asyncio.sleep(0.01)
                own_lag.append((loop.time() - at - 0.01) * 1000)

        prober = asyncio.create_task(probe())
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(one(i) for i in range(args.chats)), return_exceptions=True),
                args.timeout_s,
            )
        except TimeoutError:
            results = [TimeoutError("scenario timed out")]
        finally:
            prober.cancel()
        elapsed = time.perf_counter() - start
        for _, writer in lives + follows:  # those a failed chat left open
            writer.close()
        own_lag.sort()
        every = [(await http.get(f"{base}/stats")).json() for base in bases]
        stats = max(every, key=lambda st: st["lag_p99_ms"])  # the most loaded process
        failures = [
            repr(r) if isinstance(r, BaseException) else r[1]
            for r in results
            if not (isinstance(r, tuple) and r[0])
        ]
        if not args.plain:  # after the run: what each chat's log holds

            async def check(index: int) -> str:
                base = bases[index % len(bases)]
                log = (await http.get(f"{base}/resumable/{chat_ids[index]}/log")).json()
                if log == {"data": stored, "end": "end"}:
                    return ""
                return f"log {log} (expected {stored} data records and an end)"

            checks = await run_bounded(
                [functools.partial(check, i) for i in range(args.chats)], min(args.chats, 100)
            )
            failures += [c for c in checks if c]
    starts.sort()
    paces.sort()
    return {
        "chats": args.chats,
        "followers": following,
        "elapsed_s": elapsed,
        "failures": len(failures),
        "failure_examples": failures[:3],
        "start_p99_ms": starts[int(len(starts) * 0.99)] if starts else None,
        "pace_p50": paces[len(paces) // 2] if paces else None,
        "pace_p99": paces[int(len(paces) * 0.99)] if paces else None,
        "loadgen_lag_p99_ms": own_lag[int(len(own_lag) * 0.99)] if own_lag else 0.0,
        "loadgen_lag_max_ms": own_lag[-1] if own_lag else 0.0,
        **stats,
    }


async def memory(args: argparse.Namespace) -> dict[str, Any]:
    """Server RSS growth per follower parked on the live replay of a silent answer."""
    chat_id = new_id("m")
    async with client(args.followers + 4) as http:
        async with Held(http, args.base, chat_id, f"n=5&hold_s={HOLD_S}"):
            url = f"{args.base}/resumable/{chat_id}/stream"
            # warm up: one follower in and out, so first-use allocations are not counted
            await first_chunk_ms("GET", url, drain=False)
            before = (await http.get(f"{args.base}/stats")).json()["rss_kib"]
            opened: list[asyncio.StreamWriter] = []
            try:
                for _ in range(args.followers):
                    reader, writer, status, buf = await open_stream("GET", url)
                    opened.append(writer)
                    assert status == 200, status
                    while b"data: " not in buf:  # replayed: the follower is now parked
                        buf += await reader.read(65536)
                await asyncio.sleep(0.5)
                after = (await http.get(f"{args.base}/stats")).json()["rss_kib"]
            finally:
                for writer in opened:
                    writer.close()
    return {"followers": args.followers, "rss_before_kib": before, "rss_after_kib": after}


async def history(args: argparse.Namespace) -> dict[str, Any]:
    """Resume time of a running answer in a chat with ``short`` vs ``long`` finished turns."""
    conflicts = 0
    async with client(8) as http:
        chats = {}
        for label, turns in (("short", args.short), ("long", args.long)):
            chat_id = new_id(label)
            for _ in range(turns):  # turns of one chat are sequential
                url = f"{args.base}/resumable/{chat_id}?n=3"
                while True:
                    status, _ = await _drain(http, "POST", url)
                    if status != 409:
                        break
                    # The live response ended before the answer's end fence was stored.
                    conflicts += 1
                    await asyncio.sleep(0.001)
                assert status == 200, status
            chats[label] = chat_id
        out: dict[str, list[float]] = {"short": [], "long": []}
        async with (
            Held(http, args.base, chats["short"], f"n=5&hold_s={HOLD_S}"),
            Held(http, args.base, chats["long"], f"n=5&hold_s={HOLD_S}"),
        ):
            for i in range(args.count + args.warmup):
                for label in ("short", "long"):
                    url = f"{args.base}/resumable/{chats[label]}/stream"
                    ms, status = await first_chunk_ms("GET", url, drain=False)
                    assert status == 200, status
                    if i >= args.warmup:
                        out[label].append(ms)
    return {**out, "conflicts": conflicts, "turns": args.short + args.long}


#: The AI SDK stop terminal in a live response (``{"type":"abort"}``).
STOP_TERMINAL = b'{"type":"abort"}'


async def stopping(args: argparse.Namespace) -> dict[str, Any]:
    """Stop latency (ms): a DELETE sent to ``stop_base`` (another instance) until the live
    response of a steadily streaming answer on ``base`` shows the stop terminal (``abort``:
    what the user sees stop) and until it ends (its stop stored), ``count`` times."""
    out: list[float] = []
    aborts: list[float] = []
    stop_base = args.stop_base or args.base
    query = f"n=100000&interval_ms={args.interval_ms}"
    async with client(8) as http:
        for _ in range(args.count):
            chat_id = new_id("s")
            url = f"{args.base}/resumable/{chat_id}?{query}"
            reader, writer, status, buf = await open_stream("POST", url)
            try:
                assert status == 200, status
                while buf.count(b"data: ") < 5:
                    buf += await reader.read(65536)
                await _wait_for_claim(http, f"{stop_base}/resumable/{chat_id}/stream")
                start = time.perf_counter()
                stop = await http.delete(f"{stop_base}/resumable/{chat_id}/stream")
                assert stop.status_code == 202, stop.status_code
                seen = b""
                while STOP_TERMINAL not in seen:
                    piece = await reader.read(65536)
                    if not piece:
                        break
                    seen = seen[-len(STOP_TERMINAL) :] + piece
                else:
                    aborts.append((time.perf_counter() - start) * 1000)
                    if not seen.endswith(CHUNKED_END):
                        await count_to_end(reader, b"")
                out.append((time.perf_counter() - start) * 1000)
            finally:
                writer.close()
    return {"ms": out, "abort_ms": aborts}


SCENARIOS = {
    "stopping": stopping,
    "ttfb": ttfb,
    "resume": resume,
    "throughput": throughput,
    "lag": lag,
    "concurrent": concurrent,
    "memory": memory,
    "history": history,
}


def run_scenario(scenario: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run ``scenario`` on uvloop when it is installed (the ``bench`` extra's
    ``uvicorn[standard]`` brings it), else on asyncio's own loop.

    The load generator shares the machine with the server it measures, and its own loop is
    part of every time it takes: asyncio's selector loop spent about 30 µs of this process's
    CPU per SSE frame read, uvloop 16-20 µs, and 50 concurrent resumes measured
    8.2-11.0 ms at p50 on asyncio's loop against 6.6 ms on uvloop (the server unchanged).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows, or the bench extra not installed
        return asyncio.run(scenario)
    return uvloop.run(scenario)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--base", required=True)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--first-ms", type=float, default=0)
    parser.add_argument("--interval-ms", type=float, default=10)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--ramp-s", type=float, default=1.0)
    parser.add_argument("--timeout-s", type=float, default=120)
    parser.add_argument("--followers", type=int, default=100)
    parser.add_argument("--short", type=int, default=10)
    parser.add_argument("--long", type=int, default=1000)
    parser.add_argument("--yield-every", type=int, default=1, help="source yields per N chunks")
    parser.add_argument("--follow-base", default=None, help="lag, resume: follow on this instance")
    parser.add_argument(
        "--join-after-s", type=float, default=0, help="resume: followers join this late"
    )
    parser.add_argument("--stop-base", default=None, help="stopping: DELETE on this instance")
    parser.add_argument("--bases", default=None, help="concurrent: spread chats over these")
    parser.add_argument("--plain", action="store_true", help="concurrent, resume: plain routes")
    parser.add_argument(
        "--with-follower", action="store_true", help="concurrent: a live follower per chat"
    )
    parser.add_argument(
        "--kept-alive", action="store_true", help="resume: on connections opened beforehand"
    )
    parser.add_argument(
        "--early", action="store_true", help="ttfb: resumable with respond_before_claim"
    )
    args = parser.parse_args()
    result = run_scenario(SCENARIOS[args.scenario](args))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
