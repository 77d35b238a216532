"""``HttpBasin`` on the wire: encoding, endpoints, retries, lost acks and SSE resumption.

Most tests talk to the bundled S2 test server over real HTTP (``s2_server_url``, a
subprocess) through :class:`ScriptedTransport`, which forwards requests and injects the
failure under test (an error status, a lost response, a connection cut mid-event).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

import httpx2
import pytest
from s2_helpers import (
    CutStream,
    Forward,
    ScriptedTransport,
    append,
    collect,
    error_response,
    recs,
    seq_nums,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resumable_chat.s2 import (
    AppendInput,
    AppendRecord,
    BasinNotFoundError,
    FencingTokenMismatchError,
    HttpBasin,
    S2AuthError,
    S2Error,
    S2InvalidError,
    S2UnavailableError,
    SeqNumMismatchError,
    StreamNotFoundError,
    fence_record,
)
from resumable_chat.s2.retries import RetryPolicy
from resumable_chat.s2.wire import encode_append_input
from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.pytest_plugin import unique_basin_name
from resumable_chat.testing.s2_server import Faults, create_app

MakeBasin = Callable[..., HttpBasin]


def _is_append(request: httpx2.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/records")


# -- encoding and endpoints ------------------------------------------------------------------


async def test_base64_round_trip_of_binary_bodies_and_headers(make_http_basin: MakeBasin) -> None:
    transport = ScriptedTransport()
    basin = make_http_basin(transport=transport)
    every_byte = bytes(range(256))
    records = [
        AppendRecord(every_byte, headers=((b"\xff\x00name", b"\x80value\x00"), (b"k", b""))),
        AppendRecord(b"", headers=((b"only-header", b"\xfe"),)),
        AppendRecord("héllo ✓".encode()),
    ]
    await basin.append("bin/ary stream", AppendInput(records))
    batch = await basin.read("bin/ary stream", seq_num=0)
    assert [(r.body, r.headers) for r in batch.records] == [(r.body, r.headers) for r in records]
    sent = json.loads(transport.matching("POST", "/records")[0].content)
    assert sent["records"][0]["headers"][1] == ["aw==", ""]
    assert "body" not in sent["records"][1]
    assert all(r.headers["s2-format"] == "base64" for r in transport.requests)
    # The stream name is one percent-encoded path segment.
    assert transport.requests[0].url.raw_path.startswith(b"/v1/streams/bin%2Fary%20stream/")


async def test_raw_format_output_is_lossy_utf8(s2_server_url: str) -> None:
    async with httpx2.AsyncClient(base_url=s2_server_url) as client:
        headers = {"S2-Basin": unique_basin_name(), "s2-format": "base64"}
        body = {"records": [{"body": "/+Fo"}]}  # ff e1 68: invalid UTF-8, then "h"
        response = await client.post("/v1/streams/raw/records", json=body, headers=headers)
        assert response.status_code == 200
        raw = await client.get(
            "/v1/streams/raw/records?seq_num=0", headers={**headers, "s2-format": "raw"}
        )
        assert raw.json()["records"][0]["body"] == "\ufffd\ufffdh"
        b64 = await client.get("/v1/streams/raw/records?seq_num=0", headers=headers)
        assert b64.json()["records"][0]["body"] == "/+Fo"


async def test_basin_header_and_basin_subdomain_reach_the_same_basin(
    make_http_basin: MakeBasin, s2_server_url: str
) -> None:
    port = httpx2.URL(s2_server_url).port
    name = unique_basin_name()

    async def to_localhost(request: httpx2.Request, forward: Forward) -> httpx2.Response:
        # ``{basin}.b.s2.test`` does not resolve: connect to 127.0.0.1, keep the Host header.
        request.url = request.url.copy_with(host="127.0.0.1")
        return await forward(request)

    by_header_wire = ScriptedTransport()
    by_host_wire = ScriptedTransport(to_localhost)
    by_header = make_http_basin(basin=name, transport=by_header_wire)
    by_host = make_http_basin(
        basin=name, transport=by_host_wire, basin_endpoint=f"http://{{basin}}.b.s2.test:{port}"
    )
    await append(by_header, "shared", "one")
    await append(by_host, "shared", "two")
    assert [r.body for r in (await by_host.read("shared", seq_num=0)).records] == [b"one", b"two"]
    assert all(r.headers["S2-Basin"] == name for r in by_header_wire.requests)
    assert all("S2-Basin" not in r.headers for r in by_host_wire.requests)
    assert {r.headers["Host"] for r in by_host_wire.requests} == {f"{name}.b.s2.test:{port}"}


async def test_endpoints_and_auth_header() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"tail": {"seq_num": 7, "timestamp": 9}})

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
        basin = HttpBasin("my-basin-1", access_token="tok", client=client)
        tail = await basin.check_tail("s")
        await basin.aclose()
        assert not client.is_closed  # a client passed in is not ours to close
    assert (tail.seq_num, tail.timestamp) == (7, 9)
    assert str(seen[0].url) == "https://my-basin-1.b.s2.dev/v1/streams/s/records/tail"
    assert seen[0].headers["Authorization"] == "Bearer tok"
    assert "S2-Basin" not in seen[0].headers


def test_append_body_is_compact_json_with_plain_fencing_token() -> None:
    body = encode_append_input(
        AppendInput([AppendRecord(b"hi", timestamp=5), fence_record("w-1")], 3, "w-0")
    )
    assert json.loads(body) == {
        "records": [
            {"timestamp": 5, "body": "aGk="},
            {"headers": [["", "ZmVuY2U="]], "body": "dy0x"},
        ],
        "match_seq_num": 3,
        "fencing_token": "w-0",
    }


# -- errors and retries ----------------------------------------------------------------------


def test_retry_policy_backoff_and_retry_after() -> None:
    policy = RetryPolicy(max_attempts=4, base_s=0.1, max_backoff_s=1.0)
    for retry, low in ((1, 0.1), (2, 0.2), (3, 0.4), (6, 1.0)):
        assert low <= policy.delay_s(retry) <= low + 0.1
    assert policy.delay_s(1, retry_after_s=2.5) == 2.5  # max(retry_after, backoff)
    assert 0.1 <= policy.delay_s(1, retry_after_s=0.01) <= 0.2


async def test_retry_honours_retry_after_ms(make_http_basin: MakeBasin) -> None:
    async def script(request: httpx2.Request, forward: Forward) -> httpx2.Response:
        if _is_append(request) and len(transport.matching("POST", "/records")) == 1:
            return error_response(429, "rate_limited", **{"retry-after-ms": "300"})
        return await forward(request)

    transport = ScriptedTransport(script)
    basin = make_http_basin(transport=transport)
    started = time.monotonic()
    ack = await append(basin, "s", "a")  # unguarded, but 429 guarantees nothing was written
    assert time.monotonic() - started >= 0.3
    assert ack.start.seq_num == 0
    assert len(transport.matching("POST", "/records")) == 2


async def test_server_fault_seam_with_retry_after(make_http_basin: MakeBasin) -> None:
    class BusyOnce(Faults):
        def __init__(self) -> None:
            self.calls: list[str] = []

        async def before_request(self, request: Request, operation: str) -> Response | None:
            self.calls.append(operation)
            if operation == "check_tail" and self.calls.count("check_tail") == 1:
                body = {"code": "unavailable", "message": "busy"}
                return JSONResponse(body, 503, headers={"retry-after-ms": "200"})
            return None

    faults = BusyOnce()
    app = create_app(faults=faults)
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
    async with client:
        basin = HttpBasin(
            unique_basin_name(),
            access_token=None,
            account_endpoint="http://s2.test",
            basin_endpoint="http://s2.test",
            client=client,
            retry_base_s=0.01,
        )
        started = time.monotonic()
        tail = await basin.check_tail("s")
        assert tail.seq_num == 0
        assert time.monotonic() - started >= 0.2
        assert faults.calls == ["check_tail", "check_tail"]


async def test_auth_failure_is_not_retried_and_names_the_env_var() -> None:
    app = create_app(access_token="secret")
    requests: list[httpx2.Request] = []
    client = httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app),
        event_hooks={"request": [lambda r: _record(requests, r)]},
    )
    async with client:
        url = "http://s2.test"
        wrong = HttpBasin(
            unique_basin_name(),
            access_token="wrong",
            client=client,
            account_endpoint=url,
            basin_endpoint=url,
        )
        with pytest.raises(S2AuthError) as info:
            await append(wrong, "s", "a", match_seq_num=0)
        assert "S2_ACCESS_TOKEN" in str(info.value)
        assert info.value.status == 401
        assert len(requests) == 1
        with pytest.raises(S2AuthError):
            await collect(wrong, "s", 1)
        assert len(requests) == 2  # a follow fails fast too
        right = HttpBasin(
            unique_basin_name(),
            access_token="secret",
            client=client,
            account_endpoint=url,
            basin_endpoint=url,
        )
        assert (await append(right, "s", "a")).end.seq_num == 1


async def _record(requests: list[httpx2.Request], request: httpx2.Request) -> None:
    requests.append(request)


async def test_unguarded_append_is_not_retried_on_500(make_http_basin: MakeBasin) -> None:
    async def script(request: httpx2.Request, forward: Forward) -> httpx2.Response:
        if _is_append(request):
            return error_response(500, "storage")
        return await forward(request)

    transport = ScriptedTransport(script)
    basin = make_http_basin(transport=transport)
    with pytest.raises(S2UnavailableError) as info:
        await append(basin, "s", "a")
    assert info.value.status == 500
    assert "match_seq_num" in str(info.value)
    assert len(transport.matching("POST", "/records")) == 1


async def test_guarded_append_is_retried(make_http_basin: MakeBasin) -> None:
    async def script(request: httpx2.Request, forward: Forward) -> httpx2.Response:
        if _is_append(request) and len(transport.matching("POST", "/records")) <= 2:
            return error_response(503, "unavailable")
        return await forward(request)

    transport = ScriptedTransport(script)
    basin = make_http_basin(transport=transport)
    ack = await append(basin, "s", "a", "b", match_seq_num=0)
    assert (ack.start.seq_num, ack.end.seq_num) == (0, 2)
    assert len(transport.matching("POST", "/records")) == 3


async def test_retries_give_up_with_s2_unavailable(make_http_basin: MakeBasin) -> None:
    async def script(request: httpx2.Request, forward: Forward) -> httpx2.Response:
        return error_response(502, "hot_server")

    transport = ScriptedTransport(script)
    basin = make_http_basin(transport=transport, max_attempts=3)
    with pytest.raises(S2UnavailableError) as info:
        await basin.read("s", seq_num=0)
    assert "after 3 attempts" in str(info.value)
    assert len(transport.requests) == 3


async def test_lost_ack_is_detected_not_duplicated(make_http_basin: MakeBasin) -> None:
    async def script(request: httpx2.Request, forward: Forward) -> httpx2.Response:
        response = await forward(request)
        if _is_append(request) and len(transport.matching("POST", "/records")) == 2:
            await response.aread()  # the server wrote the batch; the ack never arrives
            raise httpx2.ReadError("connection reset by peer")
        return response

    transport = ScriptedTransport(script)
    basin = make_http_basin(transport=transport)
    await append(basin, "s", "first")
    ack = await append(basin, "s", "x", "y", match_seq_num=1)
    assert (ack.start.seq_num, ack.end.seq_num, ack.tail.seq_num) == (1, 3, 3)
    assert ack.end.timestamp >= ack.start.timestamp > 0
    assert [r.body for r in (await basin.read("s", seq_num=0)).records] == [b"first", b"x", b"y"]
    assert len(transport.matching("POST", "/records")) == 3  # first, lost, the 412 retry


async def test_lost_ack_of_a_closing_fence_is_detected(make_http_basin: MakeBasin) -> None:
    lost = {"done": False}

    async def script(request: httpx2.Request, forward: Forward) -> httpx2.Response:
        response = await forward(request)
        if _is_append(request) and b"fencing_token" in request.content and not lost["done"]:
            lost["done"] = True
            await response.aread()
            raise httpx2.RemoteProtocolError("server disconnected without a response")
        return response

    basin = make_http_basin(transport=ScriptedTransport(script))
    await basin.append("s", AppendInput([fence_record("session-1")]))
    # The batch ends the generation: its fence changes the token, so the retry gets 412
    # fencing_token_mismatch("end-1") rather than seq_num_mismatch.
    closing = AppendInput([*recs("chunk"), fence_record("end-1")], 1, "session-1")
    ack = await basin.append("s", closing)
    assert (ack.start.seq_num, ack.end.seq_num) == (1, 3)
    assert (await basin.check_tail("s")).seq_num == 3


async def test_412_after_an_ambiguous_failure_is_raised_when_the_log_differs(
    make_http_basin: MakeBasin,
) -> None:
    other = make_http_basin()

    async def script(request: httpx2.Request, forward: Forward) -> httpx2.Response:
        if _is_append(request) and len(transport.matching("POST", "/records")) == 1:
            # Our request times out; meanwhile another writer takes the same seq_nums.
            await append(other, "s", "theirs-1", "theirs-2")
            raise httpx2.ReadTimeout("timed out")
        return await forward(request)

    transport = ScriptedTransport(script)
    basin = make_http_basin(transport=transport, basin=other.name)
    with pytest.raises(SeqNumMismatchError) as info:
        await append(basin, "s", "mine-1", "mine-2", match_seq_num=0)
    assert info.value.expected_seq_num == 2


async def test_typed_errors_from_the_server(make_http_basin: MakeBasin, s2_server_url: str) -> None:
    basin = make_http_basin()
    with pytest.raises(S2InvalidError) as info:
        await basin.read("s", seq_num=0, timestamp=1)
    assert info.value.status == 422
    with pytest.raises(FencingTokenMismatchError):
        await append(basin, "s", "a", fencing_token="t")
    # A server that does not create basins: 404 basin_not_found.
    async with serve_app(create_app(auto_create_basins=False)) as url:
        strict = make_http_basin(account_endpoint=url, basin_endpoint=url)
        with pytest.raises(BasinNotFoundError):
            await strict.check_tail("s")
        await strict.create_basin()
        await strict.create_basin()  # already exists: fine
        assert (await strict.check_tail("s")).seq_num == 0
        await strict.delete_basin()
        await strict.delete_basin()  # already gone: fine


async def test_create_missing_streams(make_http_basin: MakeBasin) -> None:
    async with serve_app(
        create_app(create_stream_on_append=False, create_stream_on_read=False)
    ) as url:
        transport = ScriptedTransport()
        off = make_http_basin(
            account_endpoint=url, basin_endpoint=url, create_missing_streams=False
        )
        with pytest.raises(StreamNotFoundError):
            await append(off, "s", "a")
        with pytest.raises(StreamNotFoundError):
            await off.read("s", seq_num=0)
        with pytest.raises(StreamNotFoundError):
            await off.check_tail("s")
        with pytest.raises(StreamNotFoundError):
            await collect(off, "s", 1)
        on = make_http_basin(account_endpoint=url, basin_endpoint=url, transport=transport)
        assert (await append(on, "s", "a")).start.seq_num == 0
        assert (await on.check_tail("t")).seq_num == 0
        assert len(transport.matching("POST", "/v1/streams")) == 2
        assert len(transport.matching("POST", "/records")) == 2  # 404, then the retry


# -- follow over SSE -------------------------------------------------------------------------


def _cut_in_batch(response: httpx2.Response, nth: int) -> httpx2.Response:
    """``response`` (a read session) with its connection cut in the middle of its ``nth``
    ``batch`` event."""
    cut = CutStream(response.stream, marker=b"event: batch", nth=nth, cut_after=30)  # type: ignore[arg-type]
    return httpx2.Response(
        response.status_code,
        headers=response.headers,
        stream=cut,
        extensions=response.extensions,
    )


async def test_follow_resumes_after_dropped_connections(make_http_basin: MakeBasin) -> None:
    connections: list[httpx2.Request] = []

    async def script(request: httpx2.Request, forward: Forward) -> httpx2.Response:
        response = await forward(request)
        if request.headers.get("accept") != "text/event-stream":
            return response
        connections.append(request)
        if len(connections) > 2:
            return response
        return _cut_in_batch(response, 3)  # the first two sessions, in their 3rd batch event

    basin = make_http_basin(transport=ScriptedTransport(script))
    total = 30
    follower = asyncio.create_task(collect(basin, "s", total))
    await asyncio.sleep(0.2)
    for i in range(total):
        await append(basin, "s", f"r{i}", match_seq_num=i)
        await asyncio.sleep(0.01)
    batches = await follower
    assert seq_nums(batches) == list(range(total))  # nothing skipped, nothing repeated
    assert len(connections) == 3
    starts = [int(c.url.params["seq_num"]) for c in connections]
    assert starts[0] == 0 and starts[1] > 0 and starts[2] > starts[1]
    assert all("last-event-id" not in c.headers for c in connections)


async def test_follow_reconnects_when_the_server_ends_a_session(
    make_http_basin: MakeBasin,
) -> None:
    class CutEveryOtherBatch(Faults):
        def __init__(self) -> None:
            self.sessions = 0

        async def before_request(self, request: Request, operation: str) -> Response | None:
            if operation == "read_session":
                self.sessions += 1
            return None

        async def before_event(self, request: Request, event: str, index: int) -> bool:
            return event == "batch" and index >= 2 and self.sessions < 4

    faults = CutEveryOtherBatch()
    async with serve_app(create_app(faults=faults)) as url:
        basin = make_http_basin(account_endpoint=url, basin_endpoint=url)
        follower = asyncio.create_task(collect(basin, "s", 12))
        await asyncio.sleep(0.1)
        for i in range(12):
            await append(basin, "s", str(i))
            await asyncio.sleep(0.01)
        assert seq_nums(await follower) == list(range(12))
        assert faults.sessions >= 2


async def test_follow_reconnects_after_heartbeat_silence(make_http_basin: MakeBasin) -> None:
    async with serve_app(create_app(ping_interval_s=30)) as url:
        transport = ScriptedTransport()
        basin = make_http_basin(
            account_endpoint=url, basin_endpoint=url, transport=transport, heartbeat_timeout_s=0.3
        )
        await append(basin, "s", "0")
        follower = asyncio.create_task(collect(basin, "s", 2))
        await asyncio.sleep(1.0)  # pings are 30 s apart: the client reconnects meanwhile
        await append(basin, "s", "1")
        assert seq_nums(await follower) == [0, 1]
        sessions = [r for r in transport.requests if r.headers.get("accept") == "text/event-stream"]
        assert len(sessions) >= 2
        assert sessions[-1].url.params["seq_num"] == "1"


async def test_follow_reconnects_after_error_events_and_retryable_statuses(
    make_http_basin: MakeBasin,
) -> None:
    sessions: list[httpx2.Request] = []

    async def script(request: httpx2.Request, forward: Forward) -> httpx2.Response:
        if request.headers.get("accept") != "text/event-stream":
            return await forward(request)
        sessions.append(request)
        if len(sessions) == 1:
            return error_response(503, "unavailable", **{"retry-after-ms": "50"})
        if len(sessions) == 2:
            body = b'event: error\ndata: {"code":"storage","message":"injected"}\n\n'
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        return await forward(request)

    basin = make_http_basin(transport=ScriptedTransport(script))
    await append(basin, "s", "0", "1")
    assert seq_nums(await collect(basin, "s", 2)) == [0, 1]
    assert len(sessions) == 3


async def test_follow_fails_once_on_an_event_past_the_size_cap(make_http_basin: MakeBasin) -> None:
    """An SSE event bigger than any S2 batch (8 MiB; S2 sends at most 1 MiB of records in
    one) is not buffered without bound nor fetched again forever: the follow fails once."""

    async def script(request: httpx2.Request, forward: Forward) -> httpx2.Response:
        if request.headers.get("accept") != "text/event-stream":
            return await forward(request)
        body = b"event: batch\ndata: " + b"A" * (9 * 1024 * 1024) + b"\n\n"
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    transport = ScriptedTransport(script)
    basin = make_http_basin(transport=transport)
    with pytest.raises(S2Error, match="SSEError"):
        await collect(basin, "s", 1)
    assert len(transport.matching("GET", "/records")) == 1


async def test_follow_fails_fast_on_client_errors(make_http_basin: MakeBasin) -> None:
    transport = ScriptedTransport()
    basin = make_http_basin(transport=transport)
    with pytest.raises(S2InvalidError):
        await collect(basin, "x" * 600, 1)  # name too long: 422
    assert len(transport.requests) == 1


async def test_follow_gives_up_after_repeated_failures(make_http_basin: MakeBasin) -> None:
    async def script(request: httpx2.Request, forward: Forward) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused")

    transport = ScriptedTransport(script)
    basin = make_http_basin(transport=transport, max_attempts=3, deadline_s=0.01)
    with pytest.raises(S2UnavailableError):
        await collect(basin, "s", 1)
    assert len(transport.requests) == 3


async def test_a_follow_rides_out_an_outage_shorter_than_the_deadline(
    make_http_basin: MakeBasin,
) -> None:
    """The read session breaks mid-batch and S2 is unreachable for 0.6 s, many more failed
    reconnects than ``max_attempts``: the follow goes on where it was once S2 answers,
    nothing skipped or repeated (it gave up at the third failure, a few ms into the outage,
    before)."""
    loop = asyncio.get_running_loop()
    sessions = 0
    down_until: float | None = None

    async def script(request: httpx2.Request, forward: Forward) -> httpx2.Response:
        nonlocal sessions, down_until
        if request.headers.get("accept") != "text/event-stream":
            return await forward(request)
        sessions += 1
        if sessions == 1:
            return _cut_in_batch(await forward(request), 1)
        if down_until is None:
            down_until = loop.time() + 0.6
        if loop.time() < down_until:
            raise httpx2.ConnectError("connection refused")
        return await forward(request)

    basin = make_http_basin(transport=ScriptedTransport(script), max_attempts=3, deadline_s=2.0)
    for i in range(6):
        await append(basin, "s", f"r{i}", match_seq_num=i)
    batches = await asyncio.wait_for(collect(basin, "s", 6), 10)
    assert seq_nums(batches) == list(range(6))  # nothing skipped, nothing repeated
    assert sessions > 3 + 1  # more failed reconnects than max_attempts, then one that worked


async def test_aclose_stops_live_follows(s2_server_url: str) -> None:
    basin = HttpBasin(
        unique_basin_name(),
        access_token=None,
        account_endpoint=s2_server_url,
        basin_endpoint=s2_server_url,
    )
    await append(basin, "s", "0")
    follower = asyncio.create_task(collect(basin, "s", 5))
    await asyncio.sleep(0.3)
    await basin.aclose()
    async with asyncio.timeout(5):
        with contextlib.suppress(Exception):
            batches = await follower
            assert seq_nums(batches) == [0]
    assert follower.done()


async def test_live_read_sessions_never_take_the_connections_appends_need(
    s2_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Followers hold their read sessions open; with the basin's own clients, sessions have
    their own pool, so an append goes through while every session connection is taken."""

    def small_client() -> httpx2.AsyncClient:
        limits = httpx2.Limits(max_connections=2, max_keepalive_connections=2)
        return httpx2.AsyncClient(limits=limits, timeout=httpx2.Timeout(10.0, pool=1.0))

    monkeypatch.setattr(HttpBasin, "_new_client", staticmethod(small_client))
    basin = HttpBasin(
        unique_basin_name(),
        access_token="test",
        account_endpoint=s2_server_url,
        basin_endpoint=s2_server_url,
    )
    readers = []
    try:
        for i in range(2):  # two live sessions waiting for records: the session pool is full
            readers.append(asyncio.create_task(anext(basin.follow(f"held-{i}"))))
        await asyncio.sleep(0.3)
        assert not any(r.done() for r in readers)
        async with asyncio.timeout(3):
            ack = await basin.append("writes", AppendInput([AppendRecord(b"x")]))
        assert ack.end.seq_num == 1
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await basin.aclose()
