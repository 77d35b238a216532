"""Vercel ``resumable-stream``'s shared test suite (``src/__tests__/tests.ts``, reference
``peers.md`` §2.1), as Python tests on every basin.

Differences from upstream, all deliberate: ``hasExistingStream`` answers ``"active"`` /
``"done"`` instead of ``true`` / ``"DONE"``; resumers read from the log, so a resumer's chunk
arrives once it is stored (``read`` waits for it).
"""

from __future__ import annotations

from stream_helpers import TestingStream, never_called, read

from resumable_chat.text_streams.context import ResumableStreamContext


async def test_should_act_like_a_normal_stream(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("test", source.make)
    source.write("1\n")
    source.write("2\n")
    source.write("3\n")
    source.close()
    assert await read(stream) == "1\n2\n3\n"


async def test_should_resume_a_done_stream(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("test", source.make)
    stream2 = await context.resumable_stream("test", source.make)
    source.write("1\n")
    source.write("2\n")
    source.close()
    assert await read(stream) == "1\n2\n"
    assert await read(stream2) == "1\n2\n"
    assert source.calls == 1


async def test_has_existing_stream(context: ResumableStreamContext) -> None:
    source = TestingStream()
    assert await context.has_existing_stream("test") is None
    stream = await context.resumable_stream("test", source.make)
    assert await context.has_existing_stream("test") == "active"
    assert await context.has_existing_stream("test2") is None
    stream2 = await context.resumable_stream("test", source.make)
    assert await context.has_existing_stream("test") == "active"
    source.write("1\n")
    source.write("2\n")
    source.close()
    assert await read(stream) == "1\n2\n"
    assert await read(stream2) == "1\n2\n"  # a resumer ends at the stored terminal fence
    assert await context.has_existing_stream("test") == "done"


async def test_should_resume_a_done_stream_reverse_read(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("test", source.make)
    stream2 = await context.resumable_stream("test", source.make)
    source.write("1\n")
    source.write("2\n")
    source.close()
    assert await read(stream2) == "1\n2\n"
    assert await read(stream) == "1\n2\n"


async def test_should_resume_an_in_progress_stream(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("test", source.make)
    source.write("1\n")
    stream2 = await context.resumable_stream("test", source.make)
    source.write("2\n")
    source.close()
    assert await read(stream) == "1\n2\n"
    assert await read(stream2) == "1\n2\n"


async def test_should_actually_stream(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("test", source.make)
    source.write("1\n")
    stream2 = await context.resumable_stream("test", source.make)
    assert await read(stream, 1) == "1\n"
    assert await read(stream2, 1) == "1\n"
    source.write("2\n")
    source.close()
    assert await read(stream) == "2\n"
    assert await read(stream2) == "2\n"


async def test_should_actually_stream_producer_first(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("test", source.make)
    source.write("1\n")
    stream2 = await context.resumable_stream("test", source.make)
    assert await read(stream, 1) == "1\n"
    source.write("2\n")
    source.close()
    assert await read(stream) == "2\n"
    assert await read(stream2) == "1\n2\n"


async def test_should_actually_stream_consumer_first(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("test", source.make)
    source.write("1\n")
    stream2 = await context.resumable_stream("test", source.make)
    assert await read(stream2, 1) == "1\n"
    source.write("2\n")
    source.close()
    assert await read(stream) == "1\n2\n"
    assert await read(stream2) == "2\n"


async def test_should_resume_multiple_streams(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("test", source.make)
    source.write("1\n")
    stream2 = await context.resumable_stream("test", source.make)
    source.write("2\n")
    stream3 = await context.resumable_stream("test", source.make)
    source.close()
    assert await read(stream) == "1\n2\n"
    assert await read(stream2) == "1\n2\n"
    assert await read(stream3) == "1\n2\n"
    assert source.calls == 1


async def test_should_differentiate_between_streams(context: ResumableStreamContext) -> None:
    source = TestingStream()
    source2 = TestingStream()
    stream1 = await context.resumable_stream("test", source.make)
    stream2 = await context.resumable_stream("test2", source2.make)
    stream12 = await context.resumable_stream("test", source.make)
    stream22 = await context.resumable_stream("test2", source2.make)
    source.write("1\n")
    source.write("2\n")
    source.close()
    source2.write("writer2\n")
    source2.close()
    assert await read(stream1) == "1\n2\n"
    assert await read(stream2) == "writer2\n"
    assert await read(stream12) == "1\n2\n"
    assert await read(stream22) == "writer2\n"


async def test_should_respect_skip_characters(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("test", source.make)
    source.write("1\n")
    source.write("2\n")
    stream2 = await context.resumable_stream("test", source.make, 2)
    source.close()
    assert await read(stream) == "1\n2\n"
    assert await read(stream2) == "2\n"


async def test_should_respect_skip_characters_2(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("test", source.make)
    source.write("1\n")
    source.write("2\n")
    stream2 = await context.resumable_stream("test", source.make, 4)
    source.close()
    assert await read(stream) == "1\n2\n"
    assert await read(stream2) == ""


async def test_should_respect_skip_characters_0(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("test", source.make)
    source.write("1\n")
    source.write("2\n")
    stream2 = await context.resumable_stream("test", source.make, 0)
    source.close()
    assert await read(stream) == "1\n2\n"
    assert await read(stream2) == "1\n2\n"


async def test_should_return_none_if_stream_is_done(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.resumable_stream("test", source.make)
    source.write("1\n")
    source.write("2\n")
    source.close()
    assert await read(stream) == "1\n2\n"
    assert stream is not None
    await stream.wait_persisted()
    assert await context.resumable_stream("test", never_called) is None


async def test_should_support_the_deconstructed_apis(context: ResumableStreamContext) -> None:
    source = TestingStream()
    stream = await context.create_new_resumable_stream("test", source.make)
    stream2 = await context.resume_existing_stream("test")
    source.write("1\n")
    source.write("2\n")
    source.close()
    assert await read(stream) == "1\n2\n"
    assert await read(stream2) == "1\n2\n"


async def test_should_return_none_if_stream_is_done_explicit_apis(
    context: ResumableStreamContext,
) -> None:
    source = TestingStream()
    stream = await context.create_new_resumable_stream("test", source.make)
    source.write("1\n")
    source.write("2\n")
    source.close()
    assert await read(stream) == "1\n2\n"
    await stream.wait_persisted()
    assert await context.resume_existing_stream("test") is None


# -- generic.test.ts ---------------------------------------------------------------------------


async def test_resume_existing_stream_of_an_unknown_id_is_none(
    context: ResumableStreamContext,
) -> None:
    """Upstream answers ``undefined`` for an unknown id; here it is ``None`` as for done."""
    assert await context.resume_existing_stream("never-created") is None
    assert await context.has_existing_stream("never-created") is None
