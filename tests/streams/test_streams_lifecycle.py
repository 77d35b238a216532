"""Resumable text streams beyond the upstream suites: races, cut points, crashes and leases,
reclaiming an id, heartbeats, retention leftovers, configuration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from stream_helpers import TestingStream, all_records, eventually, read, read_chunks

from resumable_chat import create_resumable_stream_context
from resumable_chat.log import engine as log_engine
from resumable_chat.s2 import (
    AppendInput,
    AppendRecord,
    Basin,
    MemoryBasin,
    S2ConfigError,
    fence_record,
    is_fence,
    trim_record,
)
from resumable_chat.text_streams.context import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LEASE_MS,
    DEFAULT_LINGER_MS,
    ResumableStreamContext,
    SourceCancelledError,
    StreamActiveError,
)

CHUNKS = ["Hel", "lo, ", "wörld", " 🎉🎉", "\n", "bye"]
FULL = "".join(CHUNKS)


# -- races -------------------------------------------------------------------------------------


async def test_two_concurrent_producers_exactly_one_produces(
    make_context: Callable[..., ResumableStreamContext],
) -> None:
    a, b = make_context(), make_context()
    source_a, source_b = TestingStream(), TestingStream()
    stream_a, stream_b = await asyncio.gather(
        a.resumable_stream("race", source_a.make), b.resumable_stream("race", source_b.make)
    )
    assert stream_a is not None and stream_b is not None
    assert {stream_a.role, stream_b.role} == {"producer", "resumer"}
    winner = source_a if stream_a.role == "producer" else source_b
    for chunk in CHUNKS:
        winner.write(chunk)
    winner.close()
    assert await read(stream_a) == FULL
    assert await read(stream_b) == FULL
    assert (source_a.calls, source_b.calls) == ((1, 0) if winner is source_a else (0, 1))


async def test_two_concurrent_create_new_one_wins_one_is_refused(
    make_context: Callable[..., ResumableStreamContext],
) -> None:
    a, b = make_context(), make_context()
    source_a, source_b = TestingStream(), TestingStream()
    results = await asyncio.gather(
        a.create_new_resumable_stream("race", source_a.make),
        b.create_new_resumable_stream("race", source_b.make),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], StreamActiveError)
    winner = source_b if isinstance(results[0], BaseException) else source_a
    winner.close()
    streams = [r for r in results if not isinstance(r, BaseException)]
    assert await read(streams[0]) == ""
    assert (source_a.calls, source_b.calls) == ((1, 0) if winner is source_a else (0, 1))


async def test_create_new_restarts_a_done_stream_fresh(context: ResumableStreamContext) -> None:
    first = TestingStream()
    stream = await context.create_new_resumable_stream("again", first.make)
    first.write("old output")
    first.close()
    await read(stream)
    await stream.wait_persisted()
    assert await context.has_existing_stream("again") == "done"
    second = TestingStream()
    stream2 = await context.create_new_resumable_stream("again", second.make)
    assert await context.has_existing_stream("again") == "active"
    resumer = await context.resume_existing_stream("again")
    second.write("new")
    second.close()
    assert await read(stream2) == "new"
    assert await read(resumer) == "new"


# -- cut points --------------------------------------------------------------------------------


async def test_a_consumer_joining_at_every_cut_point_sees_no_gap_and_no_duplicate(
    context: ResumableStreamContext,
) -> None:
    """Join after k chunks (k = 0..n) with every ``resume_at`` (0..len): the output is exactly
    ``FULL[resume_at:]``. One joiner per k reads live while the rest is produced."""
    source = TestingStream()
    producer = await context.resumable_stream("cuts", source.make)
    assert producer is not None
    producer_reading = asyncio.create_task(read(producer))
    joined: list[tuple[int, object]] = []
    live: list[tuple[int, asyncio.Task[str]]] = []
    received = 0
    for k in range(len(CHUNKS) + 1):
        for resume_at in range(len(FULL) + 1):
            joined.append(
                (resume_at, await context.resumable_stream("cuts", source.make, resume_at))
            )
        live_stream = await context.resume_existing_stream("cuts", received)
        live.append((received, asyncio.create_task(read(live_stream))))
        if k < len(CHUNKS):
            source.write(CHUNKS[k])
            received += len(CHUNKS[k])
            await asyncio.sleep(0.002)
    source.close()
    assert await producer_reading == FULL
    for resume_at, task in live:
        assert await task == FULL[resume_at:], resume_at
    assert source.calls == 1
    for resume_at, stream in joined:
        assert await read(stream) == FULL[resume_at:], resume_at  # type: ignore[arg-type]


async def test_resume_at_counts_utf16_units_when_asked(
    make_context: Callable[..., ResumableStreamContext],
) -> None:
    """JavaScript ``string.length`` counts an emoji as 2: ``resume_at_unit="utf-16"``. An
    offset inside a surrogate pair skips the whole character."""
    context = make_context(resume_at_unit="utf-16")
    source = TestingStream()
    producer = await context.resumable_stream("js", source.make)
    units = [len(FULL[:i].encode("utf-16-le")) // 2 for i in range(len(FULL) + 1)]
    resumers = [(i, await context.resume_existing_stream("js", u)) for i, u in enumerate(units)]
    emoji_at = FULL.index("🎉")
    middle = units[emoji_at] + 1
    assert middle not in units
    half = await context.resume_existing_stream("js", middle)
    for chunk in CHUNKS:
        source.write(chunk)
    source.close()
    assert await read(producer) == FULL
    for i, resumer in resumers:
        assert await read(resumer) == FULL[i:]
    assert await read(half) == FULL[emoji_at + 1 :]


async def test_surrogates_in_a_chunk_are_stored_and_sent_as_javascript_would(
    make_context: Callable[..., ResumableStreamContext],
) -> None:
    """A ``str`` may hold surrogate code points, which UTF-8 cannot: a lone one (JSON's
    ``"\\ud800"``) goes out as U+FFFD and a pair as the one character it encodes, live and
    stored alike (as ``TextEncoder`` does in the JavaScript package), instead of failing
    the stream; lengths in UTF-16 units stay the same, so cursors agree."""
    context = make_context(resume_at_unit="utf-16")
    source = TestingStream()
    producer = await context.resumable_stream("sur", source.make)
    resumers = [await context.resume_existing_stream("sur", at) for at in (0, 4, 5)]
    chunks = ["a\ud800", "\udc00b", "\ud83d\ude00c", "x" * 300_000 + "\ud83d"]
    for chunk in chunks:
        source.write(chunk)
    source.close()
    sent = ["a\ufffd", "\ufffdb", "\U0001f600c", "x" * 300_000 + "\ufffd"]
    assert await read_chunks(producer) == sent
    whole = "".join(sent)
    units = len("".join(chunks).encode("utf-16-le", "surrogatepass")) // 2
    assert len(whole.encode("utf-16-le")) // 2 == units
    from_start, from_emoji, inside_emoji = [await read(resumer) for resumer in resumers]
    assert (from_start, from_emoji, inside_emoji) == (whole, whole[4:], whole[5:])


@pytest.mark.parametrize("bad", [-1, True, 1.5])
async def test_resume_at_must_be_a_non_negative_int(
    context: ResumableStreamContext, bad: object
) -> None:
    with pytest.raises(ValueError, match="resume_at"):
        await context.resume_existing_stream("x", bad)  # type: ignore[arg-type]


# -- crashes, leases and reclaiming ------------------------------------------------------------


async def test_killed_producer_is_failed_after_the_lease_and_the_next_producer_reclaims(
    make_context: Callable[..., ResumableStreamContext], basin: Basin
) -> None:
    lease_ms = 400
    doomed = make_context(lease_ms=lease_ms)  # "process 1"
    survivor = make_context(lease_ms=lease_ms, trim_delay_ms=50)  # "process 2"
    source = TestingStream()
    producer = await doomed.resumable_stream("crash", source.make)
    source.write("par")
    source.write("tial")
    follower = await survivor.resume_existing_stream("crash")
    assert await read(follower, 2) == "partial"  # stored

    await doomed.aclose(drain_timeout_s=0)  # abandoned: no terminal fence
    assert source.closed
    assert await read(producer) == "partial"  # its own reader ends quietly
    records = await all_records(basin, survivor.stream_name("crash"))
    assert not any(is_fence(r) and not r.body.startswith(b"session-") for r in records)

    started = time.monotonic()
    assert await read(follower) == ""  # the live follower ends after a lease of silence
    assert time.monotonic() - started < 4 * lease_ms / 1000 + 1

    async def failed() -> bool:
        return await survivor.has_existing_stream("crash") == "failed"

    await eventually(failed)
    backlog = await survivor.resume_existing_stream("crash")
    assert backlog is not None and backlog.role == "resumer"
    assert await read(backlog) == "partial"  # the partial output stays readable, then ends
    assert await read(await survivor.resume_existing_stream("crash", 3)) == "tial"

    fresh = TestingStream()
    restarted = await survivor.resumable_stream("crash", fresh.make)
    assert restarted is not None and restarted.role == "producer"
    assert await survivor.has_existing_stream("crash") == "active"
    resumer = await survivor.resume_existing_stream("crash")
    fresh.write("fresh")
    fresh.close()
    assert await read(restarted) == "fresh"
    assert await read(resumer) == "fresh"  # only the new generation
    assert fresh.calls == 1
    await restarted.wait_persisted()

    async def trimmed() -> bool:  # the failed output is trimmed once the new one ended
        bodies = [r.body for r in await all_records(basin, survivor.stream_name("crash"))]
        return b"par" not in bodies and b"tial" not in bodies

    await eventually(trimmed)


async def test_a_stream_left_by_a_dead_process_is_failed_and_reclaimed(
    context: ResumableStreamContext, basin: Basin
) -> None:
    """The state a crashed producer leaves behind (claim fence, some data, no terminal fence,
    nothing written for longer than the lease), written directly."""
    name = context.stream_name("dead")
    old = int(time.time() * 1000) - 10 * DEFAULT_LEASE_MS
    await basin.append(
        name,
        AppendInput(
            [fence_record("session-dead", old), AppendRecord(b"left ", timestamp=old)],
            match_seq_num=0,
            fencing_token="",
        ),
    )
    await basin.append(name, AppendInput([AppendRecord(b"behind", timestamp=old)]))
    assert await context.has_existing_stream("dead") == "failed"
    assert await read(await context.resume_existing_stream("dead")) == "left behind"
    source = TestingStream()
    stream = await context.resumable_stream("dead", source.make)
    assert stream is not None and stream.role == "producer"
    source.write("new")
    source.close()
    assert await read(stream) == "new"
    await stream.wait_persisted()
    assert await context.has_existing_stream("dead") == "done"


@pytest.mark.parametrize(
    ("failure", "raised"),
    [
        (ConnectionError("provider went away"), ConnectionError),
        (asyncio.CancelledError(), SourceCancelledError),
        (GeneratorExit(), SourceCancelledError),
    ],
    ids=["error", "cancelled-error", "generator-exit"],
)
async def test_an_error_terminated_stream_is_failed_readable_and_reclaimed(
    context: ResumableStreamContext, failure: BaseException, raised: type[BaseException]
) -> None:
    """A source that raises ends its stream as failed at once, readable and reclaimable.
    A ``CancelledError`` the source raises though nobody cancelled it is such a failure too
    (it used to be taken for a shutdown: nothing stored, the stream active until a lease ran
    out), and so is a ``GeneratorExit`` it raises itself (its task died, the stream stayed
    active for good); the producer's reader gets ``SourceCancelledError`` chained from it,
    not an exception that would look like a cancel or close of its own task."""
    source = TestingStream()
    stream = await context.resumable_stream("err", source.make)
    source.write("half an answer")
    source.fail(failure)
    with pytest.raises(raised) as caught:
        await read(stream)
    if raised is SourceCancelledError:
        assert caught.value.__cause__ is failure
    assert stream is not None
    await stream.wait_persisted()
    assert await context.has_existing_stream("err") == "failed"
    assert await read(await context.resume_existing_stream("err")) == "half an answer"
    retry = TestingStream()
    again = await context.resumable_stream("err", retry.make)
    assert again is not None and again.role == "producer"
    retry.write("a whole answer")
    retry.close()
    assert await read(again) == "a whole answer"


async def test_heartbeats_keep_a_silent_producer_active(
    make_context: Callable[..., ResumableStreamContext], basin: Basin
) -> None:
    lease_ms = 300
    context = make_context(lease_ms=lease_ms)
    observer = make_context(lease_ms=lease_ms)
    source = TestingStream()
    producer = await context.resumable_stream("slow", source.make)
    source.write("a")
    follower = await observer.resume_existing_stream("slow")
    assert await read(follower, 1) == "a"
    for _ in range(12):  # 3.6 leases of silence from the source
        await asyncio.sleep(lease_ms / 4000)
        assert await observer.has_existing_stream("slow") == "active"
    source.write("b")
    source.close()
    assert await read(follower) == "b"  # the follower did not give up
    assert await read(producer) == "ab"
    assert producer is not None
    await producer.wait_persisted()
    records = await all_records(basin, context.stream_name("slow"))
    assert sum(1 for r in records if not r.headers and not r.body) >= 2  # heartbeats


async def test_a_takeover_ends_the_old_generation_for_its_readers(
    make_context: Callable[..., ResumableStreamContext],
) -> None:
    """A producer wrongly judged dead (another context with a tiny lease) is fenced out: its
    own reader still gets everything, its persistence stops quietly."""
    slow = make_context(lease_ms=60_000)
    hasty = make_context(lease_ms=50)
    source = TestingStream()
    old = await slow.resumable_stream("take", source.make)
    source.write("a")
    follower = await slow.resume_existing_stream("take")
    assert await read(follower, 1) == "a"
    await asyncio.sleep(0.15)
    assert await hasty.has_existing_stream("take") == "failed"
    source2 = TestingStream()
    new = await hasty.resumable_stream("take", source2.make)
    assert new is not None and new.role == "producer"
    source.write("b")
    source.close()
    assert await read(old) == "ab"
    assert old is not None
    await old.wait_persisted()  # the fencing mismatch is expected, not raised
    assert await read(follower) == ""  # ended at the new generation's fence
    source2.write("new")
    source2.close()
    assert await read(new) == "new"


# -- storage details ---------------------------------------------------------------------------


async def test_a_stream_whose_records_expired_starts_fresh(
    context: ResumableStreamContext, basin: Basin, basin_kind: str
) -> None:
    """Retention emptied the stream but it still carries the old token: claim with it."""
    if basin_kind == "s2":
        pytest.skip("S2 applies trims asynchronously; this emulates retention with a trim")
    name = context.stream_name("expired")
    await basin.append(
        name, AppendInput([fence_record("session-a"), AppendRecord(b"x"), fence_record("end-a")])
    )
    await basin.append(name, AppendInput([trim_record(2**63)]))
    assert await all_records(basin, name) == []
    assert await context.has_existing_stream("expired") is None
    source = TestingStream()
    stream = await context.resumable_stream("expired", source.make)
    assert stream is not None and stream.role == "producer"
    source.write("again")
    source.close()
    assert await read(stream) == "again"


async def test_chunks_over_one_mebibyte_are_split_and_read_back_whole(
    context: ResumableStreamContext, basin: Basin
) -> None:
    big = "é" * 700_000 + "🎉" + "z" * 10  # 1.4 MB of UTF-8 in one chunk
    source = TestingStream()
    stream = await context.resumable_stream("big", source.make)
    resumer = await context.resume_existing_stream("big", 5)
    source.write(big)
    source.write("tail")
    source.close()
    assert await read(stream) == big + "tail"
    assert "".join(await read_chunks(resumer)) == big[5:] + "tail"
    assert stream is not None
    await stream.wait_persisted()
    data = [r for r in await all_records(basin, context.stream_name("big")) if not r.headers]
    assert len(data) >= 3 and all(len(r.body) <= 1024 * 1024 for r in data)


async def test_empty_chunks_are_not_stored(context: ResumableStreamContext, basin: Basin) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("empty", source.make)
    for chunk in ["", "a", "", "b"]:
        source.write(chunk)
    source.close()
    assert await read_chunks(stream) == ["a", "b"]
    assert stream is not None
    await stream.wait_persisted()
    records = await all_records(basin, context.stream_name("empty"))
    assert [r.body for r in records if not r.headers] == [b"a", b"b"]


async def test_the_producers_reader_may_leave_early(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("leave", source.make)
    source.write("one")
    assert stream is not None
    assert await anext(stream) == "one"
    await stream.aclose()  # the client went away
    source.write("two")
    source.close()
    await stream.wait_persisted()
    assert await context.has_existing_stream("leave") == "done"
    assert source.closed


async def test_delete_stream_abandons_the_local_producer_and_removes_the_output(
    context: ResumableStreamContext, basin_kind: str
) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("gone", source.make)
    source.write("x")
    assert await read(stream, 1) == "x"
    await context.delete_stream("gone")
    assert source.closed
    assert await read(stream) == ""  # the producer's reader ends
    if basin_kind != "s2":  # S2 finishes deletions asynchronously
        assert await context.has_existing_stream("gone") is None
    await context.delete_stream("never-existed")


async def test_a_producer_abandoned_before_it_started_ends_its_reader(
    context: ResumableStreamContext,
) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("early", source.make)
    await context.delete_stream("early")  # cancels the producer task before its first step
    assert await read(stream) == ""
    assert source.calls == 0


async def test_aclose_drains_running_producers(
    make_context: Callable[..., ResumableStreamContext],
) -> None:
    context = make_context()
    observer = make_context()
    source = TestingStream()
    await context.resumable_stream("drain", source.make)
    source.write("x")
    asyncio.get_running_loop().call_later(0.05, source.close)
    await context.aclose(drain_timeout_s=5)
    assert await observer.has_existing_stream("drain") == "done"
    with pytest.raises(RuntimeError, match="closed"):
        await context.resumable_stream("drain", source.make)


async def test_a_closed_context_refuses_every_call(
    make_context: Callable[..., ResumableStreamContext],
) -> None:
    """After ``aclose`` every method that touches the log raises ``RuntimeError`` naming the
    closed context. Before, ``has_existing_stream`` and ``delete_stream`` still ran (on a
    basin the app passed in they deleted streams; on the one the context created they failed
    with httpx's "the client has been closed")."""
    context = make_context()
    source = TestingStream()
    await context.resumable_stream("closed", source.make)
    source.close()
    await context.aclose()
    calls = {
        "has_existing_stream": lambda: context.has_existing_stream("closed"),
        "delete_stream": lambda: context.delete_stream("closed"),
        "resume_existing_stream": lambda: context.resume_existing_stream("closed"),
        "create_new_resumable_stream": lambda: context.create_new_resumable_stream(
            "other", source.make
        ),
    }
    for name, call in calls.items():
        with pytest.raises(RuntimeError, match="ResumableStreamContext is closed"):
            await call()
            pytest.fail(f"{name} answered after aclose")


async def test_delete_stream_ends_in_bounded_time_when_the_source_ignores_cancellation(
    make_context: Callable[..., ResumableStreamContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``delete_stream`` abandons this context's producer of the id first; one whose source
    swallows every cancel is given ``CLOSE_GRACE_S`` and then left behind (its writer
    stopped), and the stream is deleted. Before, ``delete_stream`` awaited it forever."""
    monkeypatch.setattr(log_engine, "CLOSE_GRACE_S", 0.1)
    released = asyncio.Event()  # lets the source end once the test is over

    async def deaf() -> AsyncIterator[str]:
        yield "x"
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                pass

    context = make_context()
    stream = await context.resumable_stream("deaf", deaf)
    assert stream is not None
    assert await anext(stream) == "x"
    generation = context.engine.generation(context.stream_name("deaf"))
    assert generation is not None
    valve = asyncio.get_running_loop().call_later(8, released.set)  # so a failure ends
    try:
        async with asyncio.timeout(5):  # a bound for the failure, not a synchronisation
            await context.delete_stream("deaf")
        assert not generation.writer.running
        assert await context.has_existing_stream("deaf") is None
    finally:
        valve.cancel()
        released.set()
        await asyncio.wait([generation.task])
        await stream.aclose()


async def test_key_prefix_names_the_s2_stream(basin: Basin, key_prefix: str) -> None:
    context = create_resumable_stream_context(basin=basin, linger_ms=0, key_prefix=key_prefix)
    assert context.stream_name("abc") == key_prefix + "abc"
    with pytest.raises(ValueError, match="empty"):
        context.stream_name("")
    await context.aclose()


# -- configuration -----------------------------------------------------------------------------


def test_config_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2_BATCH_SIZE", "3")
    monkeypatch.setenv("S2_LINGER_DURATION_MS", "7")
    context = create_resumable_stream_context(basin=MemoryBasin())
    assert (context.batch_size, context.linger_ms) == (3, 7.0)
    explicit = create_resumable_stream_context(basin=MemoryBasin(), batch_size=5, linger_ms=1)
    assert (explicit.batch_size, explicit.linger_ms) == (5, 1)


def test_config_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("S2_BATCH_SIZE", "S2_LINGER_DURATION_MS", "S2_ACCESS_TOKEN", "S2_BASIN"):
        monkeypatch.delenv(name, raising=False)
    context = create_resumable_stream_context()
    assert isinstance(context.basin, MemoryBasin)
    assert (context.batch_size, context.linger_ms) == (DEFAULT_BATCH_SIZE, DEFAULT_LINGER_MS)
    assert context.lease_ms == DEFAULT_LEASE_MS and context.key_prefix == ""


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("S2_BATCH_SIZE", "ten"),
        ("S2_BATCH_SIZE", "0"),
        ("S2_BATCH_SIZE", "1001"),
        ("S2_LINGER_DURATION_MS", "soon"),
        ("S2_LINGER_DURATION_MS", "-1"),
    ],
)
def test_bad_environment_values_are_config_errors(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(S2ConfigError, match=env):
        create_resumable_stream_context(basin=MemoryBasin())


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 0},
        {"linger_ms": -1},
        {"lease_ms": 0},
        {"linger_ms": 100, "lease_ms": 399},
        {"resume_at_unit": "bytes"},
    ],
)
def test_bad_arguments_are_value_errors(options: dict[str, object]) -> None:
    options.setdefault("linger_ms", 0)
    with pytest.raises(ValueError):
        create_resumable_stream_context(basin=MemoryBasin(), **options)  # type: ignore[arg-type]


async def test_context_without_a_basin_owns_and_closes_the_embedded_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("S2_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("S2_BASIN", raising=False)
    async with create_resumable_stream_context(linger_ms=0) as context:
        source = TestingStream()
        stream = await context.resumable_stream("own", source.make)
        source.write("x")
        source.close()
        assert await read(stream) == "x"
    assert isinstance(context.basin, MemoryBasin)
    assert context.basin._closed  # closed by the context that created it


async def test_wait_persisted_of_an_abandoned_producer_raises(
    context: ResumableStreamContext,
) -> None:
    from resumable_chat.text_streams.context import ResumableStreamError

    source = TestingStream()
    stream = await context.resumable_stream("abandoned", source.make)
    assert stream is not None
    await context.delete_stream("abandoned")
    with pytest.raises(ResumableStreamError, match="abandoned"):
        await stream.wait_persisted()


async def test_a_resumer_cancelled_while_waiting_leaves_no_task_behind(
    context: ResumableStreamContext,
) -> None:
    """A client that disconnects cancels its reader mid-wait: the read is released and the
    producer carries on."""
    source = TestingStream()
    producer = await context.resumable_stream("cancel", source.make)
    source.write("a")
    resumer = await context.resume_existing_stream("cancel")
    assert await read(resumer, 1) == "a"
    before = asyncio.all_tasks()
    assert resumer is not None
    waiting = asyncio.create_task(anext(resumer))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0)
    leftovers = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert not leftovers
    source.write("b")
    source.close()
    assert await read(producer) == "ab"
