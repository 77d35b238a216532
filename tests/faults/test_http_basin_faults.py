"""``HttpBasin`` against the S2 test server's injected faults: retried appends land exactly
once, a lost ack is detected (never written twice), follows survive cut sessions, and auth
errors fail at once with a message naming ``S2_ACCESS_TOKEN``."""

from __future__ import annotations

import asyncio
import logging

import pytest
from fault_helpers import FaultyS2

from resumable_chat.log import LogConfig, LogEngine
from resumable_chat.log.records import stop_token
from resumable_chat.s2 import FencingTokenMismatchError, S2AuthError, S2UnavailableError
from resumable_chat.s2.records import AppendInput, AppendRecord, fence_record

pytestmark = pytest.mark.timeout(30)


def batch(*bodies: str, match_seq_num: int | None = None) -> AppendInput:
    return AppendInput([AppendRecord(b.encode()) for b in bodies], match_seq_num=match_seq_num)


@pytest.mark.parametrize(
    ("status", "retry_after_ms"), [(500, None), (503, None), (408, None), (429, 30)]
)
async def test_guarded_append_is_retried_and_lands_once(
    faulty_s2: FaultyS2, status: int, retry_after_ms: int | None
) -> None:
    basin = faulty_s2.basin()
    await basin.append("s", batch("a", match_seq_num=0))
    faulty_s2.plan.fail("append", status=status, retry_after_ms=retry_after_ms, times=2)
    ack = await basin.append("s", batch("b", "c", match_seq_num=1))
    assert (ack.start.seq_num, ack.end.seq_num) == (1, 3)
    assert [r.body for r in await faulty_s2.stored(basin, "s")] == [b"a", b"b", b"c"]
    assert faulty_s2.plan.count("status") == 2


async def test_lost_ack_is_detected_not_duplicated(faulty_s2: FaultyS2) -> None:
    basin = faulty_s2.basin()
    faulty_s2.plan.lose_ack("append")
    ack = await basin.append("s", batch("a", "b", match_seq_num=0))
    assert (ack.start.seq_num, ack.end.seq_num) == (0, 2)
    await basin.append("s", batch("c", match_seq_num=2))
    assert [r.body for r in await faulty_s2.stored(basin, "s")] == [b"a", b"b", b"c"]
    assert faulty_s2.plan.count("lose_ack") == 1


async def test_lost_ack_then_errors_is_still_detected(faulty_s2: FaultyS2) -> None:
    basin = faulty_s2.basin()
    faulty_s2.plan.lose_ack("append")
    faulty_s2.plan.fail("append", status=503)  # the first retry fails too
    ack = await basin.append("s", batch("a", match_seq_num=0))
    assert ack.end.seq_num == 1
    assert [r.body for r in await faulty_s2.stored(basin, "s")] == [b"a"]


async def test_lost_ack_with_a_stop_behind_it_is_recovered(faulty_s2: FaultyS2) -> None:
    """A data batch lands, its ack is lost, and a stop request is written right behind it
    before the retry: the retry's 412 names the stop's token, not the batch's; the batch is
    read back and its ack returned (the writer used to be told it was fenced out)."""
    basin = faulty_s2.basin()
    claim = "session-0123456789ab"
    await basin.append("s", AppendInput([fence_record(claim)], match_seq_num=0, fencing_token=""))
    faulty_s2.plan.lose_ack("append")
    held = faulty_s2.plan.hold("append", times=1)  # the retry waits here
    sent = asyncio.create_task(
        basin.append("s", AppendInput([AppendRecord(b"a")], match_seq_num=1, fencing_token=claim))
    )
    await faulty_s2.plan.wait_injected(2)
    behind = AppendInput([fence_record(stop_token(claim))], fencing_token=claim)
    await faulty_s2.server.memory_basin(basin.name).append("s", behind)
    held.release()
    ack = await sent
    assert (ack.start.seq_num, ack.end.seq_num) == (1, 2)
    stored = [r.body for r in await faulty_s2.stored(basin, "s")]
    assert stored == [claim.encode(), b"a", stop_token(claim).encode()]


async def test_unguarded_append_with_lost_ack_is_not_retried(faulty_s2: FaultyS2) -> None:
    basin = faulty_s2.basin()
    faulty_s2.plan.lose_ack("append")
    with pytest.raises(S2UnavailableError, match="not retried"):
        await basin.append("s", batch("a"))
    assert [r.body for r in await faulty_s2.stored(basin, "s")] == [b"a"]


async def test_fence_replacing_its_token_is_retried_not_duplicated(faulty_s2: FaultyS2) -> None:
    """A stop request (a fence conditioned on the claim's token, setting another) whose ack
    is lost: the retry is refused with 412 naming the stop's own token, and the log holds
    it once (it used to give up with ``S2UnavailableError``: the route answered 503 to a
    stop that had landed)."""
    basin = faulty_s2.basin()
    await basin.append("s", AppendInput([fence_record("session-a")], fencing_token=""))
    faulty_s2.plan.lose_ack("append")
    with pytest.raises(FencingTokenMismatchError) as caught:
        await basin.append("s", AppendInput([fence_record("stop-a")], fencing_token="session-a"))
    assert caught.value.expected_fencing_token == "stop-a"
    assert [r.body for r in await faulty_s2.stored(basin, "s")] == [b"session-a", b"stop-a"]
    assert faulty_s2.plan.requests["append"] == 3


async def test_fence_replacing_its_token_is_retried_after_a_500(faulty_s2: FaultyS2) -> None:
    basin = faulty_s2.basin()
    await basin.append("s", AppendInput([fence_record("session-a")], fencing_token=""))
    faulty_s2.plan.fail("append", status=500, times=2)
    ack = await basin.append("s", AppendInput([fence_record("stop-a")], fencing_token="session-a"))
    assert (ack.start.seq_num, ack.end.seq_num) == (1, 2)
    assert [r.body for r in await faulty_s2.stored(basin, "s")] == [b"session-a", b"stop-a"]


async def test_fence_keeping_its_token_is_not_retried(faulty_s2: FaultyS2) -> None:
    """A fence that sets the token it is conditioned on would land twice: not retried."""
    basin = faulty_s2.basin()
    await basin.append("s", AppendInput([fence_record("session-a")], fencing_token=""))
    faulty_s2.plan.lose_ack("append")
    with pytest.raises(S2UnavailableError, match="not retried"):
        await basin.append("s", AppendInput([fence_record("session-a")], fencing_token="session-a"))
    assert [r.body for r in await faulty_s2.stored(basin, "s")] == [b"session-a", b"session-a"]


async def test_stop_from_another_instance_survives_a_lost_ack(faulty_s2: FaultyS2) -> None:
    """``request_stop`` on an instance that does not run the answer, its stop's ack lost:
    it reports the stop as made (the route answers 202, not 503), written once."""
    basin = faulty_s2.basin()
    claim = "session-0123456789ab"
    await basin.append("s", AppendInput([fence_record(claim)], match_seq_num=0, fencing_token=""))
    await basin.append("s", AppendInput([AppendRecord(b'{"type":"start"}')], fencing_token=claim))
    engine = LogEngine(faulty_s2.basin(basin.name), LogConfig())
    faulty_s2.plan.lose_ack("append")
    assert await engine.request_stop("s") is True
    stored = [r.body for r in await faulty_s2.stored(basin, "s")]
    assert stored == [claim.encode(), b'{"type":"start"}', stop_token(claim).encode()]
    assert await engine.request_stop("s") is True  # a stop is already in the log


async def test_unguarded_append_is_retried_after_429(faulty_s2: FaultyS2) -> None:
    basin = faulty_s2.basin()
    faulty_s2.plan.fail("append", status=429, retry_after_ms=20)
    await basin.append("s", batch("a"))
    assert [r.body for r in await faulty_s2.stored(basin, "s")] == [b"a"]


async def test_outage_past_the_retry_budget_raises_unavailable(faulty_s2: FaultyS2) -> None:
    basin = faulty_s2.basin(max_attempts=3)
    faulty_s2.plan.outage("append")
    with pytest.raises(S2UnavailableError, match="after 3 attempts"):
        await basin.append("s", batch("a", match_seq_num=0))
    assert faulty_s2.plan.requests["append"] == 3
    faulty_s2.plan.end_outage()
    ack = await basin.append("s", batch("a", match_seq_num=0))
    assert ack.end.seq_num == 1


@pytest.mark.parametrize("fault", ["outage", "hang"])
async def test_every_call_has_an_overall_deadline(faulty_s2: FaultyS2, fault: str) -> None:
    """However many attempts the retry policy allows and however long each may take, a call
    gives up after ``deadline_s`` with ``S2UnavailableError`` (routes answer 503)."""
    basin = faulty_s2.basin(
        max_attempts=1000, retry_base_s=0.05, retry_max_backoff_s=0.2, deadline_s=1.0
    )
    rule = faulty_s2.plan.outage() if fault == "outage" else faulty_s2.plan.hold()
    loop = asyncio.get_running_loop()
    for call in (
        lambda: basin.check_tail("s"),
        lambda: basin.read("s", seq_num=0),
        lambda: basin.append("s", batch("a", match_seq_num=0)),
    ):
        began = loop.time()
        with pytest.raises(S2UnavailableError):
            await call()
        assert loop.time() - began < 1.5
    rule.release()  # held requests go on server-side (an append may land after all)
    faulty_s2.plan.clear()
    assert (await basin.check_tail("s")).seq_num in (0, 1)


async def test_a_request_on_a_stalled_connection_is_sent_again_within_the_deadline(
    faulty_s2: FaultyS2,
) -> None:
    """S2 takes a request and never answers it (a stalled connection): with the default
    per-request timeout (5 s) the call gives up on it and asks again within its deadline
    (10 s), instead of spending the whole deadline on it and failing."""
    basin = faulty_s2.basin()
    await basin.append("s", batch("a", match_seq_num=0))
    stalled = faulty_s2.plan.hold("check_tail", times=1)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        assert (await basin.check_tail("s")).seq_num == 1
    finally:
        stalled.release()
    assert 5.0 <= loop.time() - began < 7.0
    assert faulty_s2.plan.requests["check_tail"] == 2


async def test_reads_and_tail_are_retried(faulty_s2: FaultyS2) -> None:
    basin = faulty_s2.basin()
    await basin.append("s", batch("a", "b", match_seq_num=0))
    faulty_s2.plan.fail(("read", "check_tail"), status=500, times=2)
    faulty_s2.plan.delay(("read", "check_tail"), 0.02, times=2)
    assert (await basin.check_tail("s")).seq_num == 2
    got = await basin.read("s", seq_num=0, count=10)
    assert [r.body for r in got.records] == [b"a", b"b"]


async def test_a_read_whose_body_came_cut_is_read_again(faulty_s2: FaultyS2) -> None:
    """A 200 whose JSON was cut on its way (a ``Content-Length`` that matches the cut body,
    as a mangling proxy sends it) is retried like a dropped connection, not raised: a route
    answered 503 at once."""
    basin = faulty_s2.basin()
    await basin.append("s", batch("a", "b", match_seq_num=0))
    faulty_s2.plan.garble("read", times=2)
    got = await basin.read("s", seq_num=0, count=10)
    assert [r.body for r in got.records] == [b"a", b"b"]
    assert faulty_s2.plan.injected == [("read", "garble")] * 2
    faulty_s2.plan.garble("read", times=None)  # a body that is never valid is an outage
    with pytest.raises(S2UnavailableError, match="malformed ReadBatch"):
        await basin.read("s", seq_num=0, count=10)


@pytest.mark.parametrize("fault", ["cut", "cut_mid_event", "error"])
async def test_follow_survives_cut_sessions(faulty_s2: FaultyS2, fault: str) -> None:
    basin = faulty_s2.basin()
    writer = faulty_s2.basin(basin.name)
    faulty_s2.plan.cut_session(fault, skip=1, times=3)  # type: ignore[arg-type]
    expected = [f"r{i}".encode() for i in range(30)]
    got: list[bytes] = []

    async def follow() -> None:
        async for read in basin.follow("s", seq_num=0, clamp=True):
            got.extend(r.body for r in read.records)
            if len(got) >= len(expected):
                return

    follower = asyncio.create_task(follow())
    for i, body in enumerate(expected):
        await writer.append("s", AppendInput([AppendRecord(body)], match_seq_num=i))
        if i % 5 == 0:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(follower, 10)
    assert got == expected
    assert faulty_s2.plan.count(f"session:{fault}") == 3


# -- authentication ----------------------------------------------------------------------------


SECRET = "sk-s2-very-secret-token-0123456789"


@pytest.fixture
async def strict_s2(faulty_s2: FaultyS2) -> FaultyS2:
    faulty_s2.server.access_token = "the-right-token"
    return faulty_s2


@pytest.mark.parametrize("operation", ["append", "read", "check_tail", "follow", "create_stream"])
async def test_auth_errors_fail_fast_naming_the_env_var(
    strict_s2: FaultyS2, operation: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    basin = strict_s2.basin(access_token=SECRET, max_attempts=5)
    with pytest.raises(S2AuthError) as info:
        if operation == "append":
            await basin.append("s", batch("a", match_seq_num=0))
        elif operation == "read":
            await basin.read("s", seq_num=0)
        elif operation == "check_tail":
            await basin.check_tail("s")
        elif operation == "follow":
            async for _ in basin.follow("s", seq_num=0, clamp=True):
                pass
        else:
            await basin.create_stream("s")
    message = str(info.value)
    assert "S2_ACCESS_TOKEN" in message
    assert info.value.status == 401
    server_op = "read_session" if operation == "follow" else operation
    assert strict_s2.plan.requests == {server_op: 1}, "an auth error must not be retried"
    for text in (message, repr(info.value), repr(basin), caplog.text):
        assert SECRET not in text


async def test_token_never_in_transport_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    from resumable_chat.s2 import HttpBasin
    from resumable_chat.testing.app_server import free_port

    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    basin = HttpBasin(
        "test-basin-1",
        access_token=SECRET,
        account_endpoint=url,
        basin_endpoint=url,
        max_attempts=2,
        retry_base_s=0.001,
    )
    try:
        with pytest.raises(S2UnavailableError) as info:
            await basin.append("s", batch("a", match_seq_num=0))
        texts = [str(info.value), repr(info.value), repr(basin), caplog.text]
    finally:
        await basin.aclose()
    assert "S2_ACCESS_TOKEN" not in str(info.value)  # not an auth problem
    for text in texts:
        assert SECRET not in text
