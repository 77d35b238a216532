"""``@s2-dev/resumable-stream`` 2.1's generic resumer: its e2e list (reference §9,
``resumability.e2e.test.ts``, ``issue-194.test.ts``), the stored layout (§1.5-§1.6, §2.3) and
the upstream bugs that must not come back (#309, #312, #237, #194; reference §10).

Deliberate difference: upstream's ``resumeStream`` replays a finished stream from seq 0; here
(as in Vercel's API, which the issue asks for) a resume of a done stream is ``None``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from stream_helpers import FaultyBasin, TestingStream, all_records, never_called, read

from resumable_chat import create_resumable_stream_context
from resumable_chat.s2 import (
    AppendInput,
    AppendRecord,
    Basin,
    S2UnavailableError,
    fence_record,
    is_fence,
    is_trim,
    trim_record,
)
from resumable_chat.text_streams.context import ResumableStreamContext

WORDS = ["The ", "quick ", "brown ", "fox ", "jumps."]


async def _produce(source: TestingStream, chunks: list[str]) -> None:
    for chunk in chunks:
        source.write(chunk)
        await asyncio.sleep(0.005)
    source.close()


# -- resumability.e2e.test.ts ------------------------------------------------------------------


async def test_pub_sub(context: ResumableStreamContext) -> None:
    source = TestingStream()
    publisher = await context.resumable_stream("pubsub", source.make)
    resumer = await context.resume_existing_stream("pubsub")
    producing = asyncio.create_task(_produce(source, WORDS))
    assert await read(publisher) == "".join(WORDS)
    await producing
    assert resumer is not None
    assert [chunk async for chunk in resumer] == WORDS  # one chunk per stored record


async def test_concurrent_creators_make_a_single_stream(context: ResumableStreamContext) -> None:
    source = TestingStream()
    streams = await asyncio.gather(
        *(context.resumable_stream("creators", source.make) for _ in range(3))
    )
    assert sorted(s.role for s in streams if s is not None) == ["producer", "resumer", "resumer"]
    await _produce(source, WORDS)
    for stream in streams:
        assert await read(stream) == "".join(WORDS)  # exactly one copy, in order
    assert source.calls == 1


async def test_concurrent_creators_on_separate_contexts(
    make_context: Callable[..., ResumableStreamContext],
) -> None:
    """Three "processes" (contexts) on one basin: S2's conditional append picks one producer."""
    contexts = [make_context() for _ in range(3)]
    sources = [TestingStream() for _ in contexts]
    streams = await asyncio.gather(
        *(c.resumable_stream("creators", s.make) for c, s in zip(contexts, sources, strict=True))
    )
    roles = [s.role if s is not None else None for s in streams]
    assert sorted(roles) == ["producer", "resumer", "resumer"]  # type: ignore[type-var]
    producer = sources[roles.index("producer")]
    await _produce(producer, WORDS)
    for stream in streams:
        assert await read(stream) == "".join(WORDS)
    assert [s.calls for s in sources] == [1 if s is producer else 0 for s in sources]


async def test_concurrent_readers(context: ResumableStreamContext) -> None:
    source = TestingStream()
    publisher = await context.resumable_stream("readers", source.make)
    readers = [await context.resume_existing_stream("readers") for _ in range(3)]
    reading = [asyncio.create_task(read(r)) for r in readers]
    await _produce(source, WORDS)
    assert await read(publisher) == "".join(WORDS)
    assert await asyncio.gather(*reading) == ["".join(WORDS)] * 3


# -- stored layout (protocol.test.ts, §2.3 step 5) ---------------------------------------------


async def test_stored_layout_claim_data_end_fence(
    context: ResumableStreamContext, basin: Basin
) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("layout", source.make)
    source.write("alpha")
    source.write("beta")
    source.close()
    assert await read(stream) == "alphabeta"
    assert stream is not None
    await stream.wait_persisted()
    records = await all_records(basin, context.stream_name("layout"))
    assert [r.seq_num for r in records] == [0, 1, 2, 3]
    assert is_fence(records[0]) and records[0].body.startswith(b"session-")
    assert [r.body for r in records[1:3]] == [b"alpha", b"beta"]
    assert all(not r.headers for r in records[1:3])
    assert is_fence(records[3]) and records[3].body.startswith(b"end-")
    assert all(len(r.body) <= 36 for r in (records[0], records[3]))


async def test_source_error_writes_error_fence_and_raises_to_the_producer(
    context: ResumableStreamContext, basin: Basin
) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("boom", source.make)
    assert stream is not None
    source.write("alpha")
    source.fail(RuntimeError("model exploded"))
    assert await anext(stream) == "alpha"
    with pytest.raises(RuntimeError, match="model exploded"):
        await anext(stream)
    await stream.wait_persisted()
    records = await all_records(basin, context.stream_name("boom"))
    assert [r.body for r in records[1:-1]] == [b"alpha"]
    assert is_fence(records[-1]) and records[-1].body.startswith(b"error-")
    assert await context.has_existing_stream("boom") == "failed"
    assert source.closed


async def test_non_str_chunks_are_a_source_error(context: ResumableStreamContext) -> None:
    async def numbers() -> object:
        yield "ok"
        yield 42

    stream = await context.resumable_stream("types", numbers)  # type: ignore[arg-type]
    assert stream is not None
    assert await anext(stream) == "ok"
    with pytest.raises(TypeError, match="must yield str"):
        await anext(stream)
    await stream.wait_persisted()
    assert await context.has_existing_stream("types") == "failed"


# -- upstream bugs -----------------------------------------------------------------------------


async def test_309_prepopulated_stream_keeps_every_record(
    context: ResumableStreamContext, basin: Basin
) -> None:
    """#309: the writer must start at the claim ack's seq_num, not 1. Records that were there
    before (not ours) are left alone."""
    name = context.stream_name("prepopulated")
    await basin.append(name, AppendInput([AppendRecord(b"foreign-%d" % i) for i in range(5)]))
    source = TestingStream()
    stream = await context.resumable_stream("prepopulated", source.make)
    assert stream is not None and stream.role == "producer"
    resumer = await context.resume_existing_stream("prepopulated")
    for word in WORDS:
        source.write(word)
    source.close()
    assert await read(stream) == "".join(WORDS)
    assert await read(resumer) == "".join(WORDS)
    await stream.wait_persisted()
    records = await all_records(basin, name)
    assert [r.body for r in records[:5]] == [b"foreign-%d" % i for i in range(5)]
    assert is_fence(records[5])
    assert [r.body for r in records[6:-1]] == [w.encode() for w in WORDS]
    assert records[-1].body.startswith(b"end-")
    assert await context.has_existing_stream("prepopulated") == "done"


async def test_309_trimmed_stream_with_a_high_tail(
    context: ResumableStreamContext, basin: Basin
) -> None:
    """A stream whose records were trimmed away still has a tail > 0 to claim after."""
    name = context.stream_name("trimmed")
    await basin.append(name, AppendInput([AppendRecord(b"x")] * 3 + [trim_record(3)]))
    source = TestingStream()
    stream = await context.resumable_stream("trimmed", source.make)
    source.write("kept")
    source.close()
    assert await read(stream) == "kept"
    assert stream is not None
    await stream.wait_persisted()
    resumer_after = await context.resume_existing_stream("trimmed")
    assert resumer_after is None  # done
    records = await all_records(basin, name)
    assert b"kept" in [r.body for r in records]


@pytest.mark.parametrize("where", ["has_existing_stream", "resumable_stream", "resume"])
async def test_312_store_errors_are_raised_not_reported_done(basin: Basin, where: str) -> None:
    faulty = FaultyBasin(basin)
    context = create_resumable_stream_context(basin=faulty, linger_ms=0, key_prefix="e312/")
    faulty.fail_reads = True
    with pytest.raises(S2UnavailableError):
        if where == "has_existing_stream":
            await context.has_existing_stream("x")
        elif where == "resumable_stream":
            await context.resumable_stream("x", never_called)
        else:
            await context.resume_existing_stream("x")
    await context.aclose()


async def test_312_claim_append_error_is_raised(basin: Basin) -> None:
    faulty = FaultyBasin(basin)
    context = create_resumable_stream_context(basin=faulty, linger_ms=0, key_prefix="e312a/")
    faulty.fail_appends = True
    with pytest.raises(S2UnavailableError):
        await context.resumable_stream("x", never_called)
    await context.aclose()


async def test_194_a_follow_that_fails_raises_instead_of_hanging(basin: Basin) -> None:
    faulty = FaultyBasin(basin)
    context = create_resumable_stream_context(basin=faulty, linger_ms=0, key_prefix="e194/")
    # the resumer is on another instance: one on the producer's takes its writes, not S2's
    elsewhere = create_resumable_stream_context(basin=faulty, key_prefix="e194/")
    source = TestingStream()
    producer = await context.resumable_stream("x", source.make)
    source.write("one")
    resumer = await elsewhere.resume_existing_stream("x")
    assert await read(resumer, 1) == "one"
    faulty.fail_follow_after = 0  # the next batch fails
    source.write("two")
    assert resumer is not None
    with pytest.raises(S2UnavailableError):
        await asyncio.wait_for(anext(resumer), 5)
    source.close()
    assert await read(producer) == "onetwo"  # the producer's live branch never waits on S2
    await elsewhere.aclose()
    await context.aclose()


async def test_194_resume_when_the_read_cannot_open_raises(basin: Basin) -> None:
    faulty = FaultyBasin(basin)
    context = create_resumable_stream_context(basin=faulty, linger_ms=0, key_prefix="e194b/")
    elsewhere = create_resumable_stream_context(basin=faulty, key_prefix="e194b/")
    source = TestingStream()
    await context.resumable_stream("x", source.make)
    resumer = await elsewhere.resume_existing_stream("x")
    faulty.fail_reads = True
    assert resumer is not None
    with pytest.raises(S2UnavailableError):
        await asyncio.wait_for(anext(resumer), 5)
    faulty.fail_reads = False
    source.close()
    await elsewhere.aclose()
    await context.aclose()


async def test_237_make_stream_only_runs_for_the_winner(context: ResumableStreamContext) -> None:
    source = TestingStream()
    first = await context.resumable_stream("once", source.make)
    for _ in range(3):
        assert (await context.resumable_stream("once", never_called)) is not None
    source.close()
    await read(first)
    assert first is not None
    await first.wait_persisted()
    assert await context.resumable_stream("once", never_called) is None
    assert source.calls == 1


async def test_producer_output_is_never_delayed_by_a_slow_store(basin: Basin) -> None:
    """The tee: the producer's reader gets chunks while every append is stuck."""
    faulty = FaultyBasin(basin)
    release = asyncio.Event()
    context = create_resumable_stream_context(basin=faulty, linger_ms=0, key_prefix="slow/")
    source = TestingStream()
    stream = await context.resumable_stream("x", source.make)
    assert stream is not None
    faulty.hold_appends = release
    for word in WORDS:
        source.write(word)
    source.close()
    assert await read(stream) == "".join(WORDS)
    release.set()
    await stream.wait_persisted()
    assert await context.has_existing_stream("x") == "done"
    await context.aclose()


async def test_wait_until_receives_the_persistence_task(basin: Basin) -> None:
    handed: list[object] = []
    context = create_resumable_stream_context(
        basin=basin, linger_ms=0, key_prefix="wu/", wait_until=handed.append
    )
    source = TestingStream()
    stream = await context.resumable_stream("x", source.make)
    assert len(handed) == 1
    source.write("a")
    source.close()
    await read(stream)
    task = handed[0]
    assert isinstance(task, asyncio.Task)
    await task
    assert await context.has_existing_stream("x") == "done"
    await context.aclose()


async def test_fence_records_are_plain_s2_commands(
    context: ResumableStreamContext, basin: Basin
) -> None:
    """A reclaim trims the earlier generation with an S2 trim command after its end fence."""
    context = create_resumable_stream_context(
        basin=basin, linger_ms=0, key_prefix=context.key_prefix, trim_delay_ms=0
    )
    source = TestingStream()
    stream = await context.resumable_stream("re", source.make)
    source.write("old")
    source.close()
    await read(stream)
    assert stream is not None
    await stream.wait_persisted()
    source2 = TestingStream()
    stream2 = await context.create_new_resumable_stream("re", source2.make)
    source2.write("new")
    source2.close()
    assert await read(stream2) == "new"
    await stream2.wait_persisted()
    for _ in range(100):
        records = await all_records(basin, context.stream_name("re"))
        if is_trim(records[-1]):
            break
        await asyncio.sleep(0.02)
    assert is_fence(records[0]) and records[0].body.startswith(b"session-")
    assert [r.body for r in records[1:-2]] == [b"new"]
    assert records[-2].body.startswith(b"end-")
    assert fence_record("end-x").headers == records[-2].headers
    assert is_trim(records[-1])
    await context.aclose()
