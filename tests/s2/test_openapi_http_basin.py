"""``HttpBasin`` on the wire, validated against S2's published OpenAPI document.

Every request ``HttpBasin`` makes (path, method, query parameters, headers, JSON body) and every
response it parses (status, content type, body; each SSE event of a read session) goes
through ``openapi-core`` (see ``openapi_check.py``), covering each operation ``HttpBasin``
uses and each documented failure it handles: 404, 409, 412 (both kinds) and 416.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx2
import pytest
from openapi_check import Exchange, RecordingTransport, load_spec, problems

from resumable_chat.s2 import (
    AppendInput,
    AppendRecord,
    FencingTokenMismatchError,
    HttpBasin,
    RangeNotSatisfiableError,
    SeqNumMismatchError,
    StreamNotFoundError,
    fence_record,
    trim_record,
)
from resumable_chat.testing.pytest_plugin import unique_basin_name


@contextlib.asynccontextmanager
async def recorded_basin(
    url: str, **options: object
) -> AsyncIterator[tuple[HttpBasin, RecordingTransport]]:
    transport = RecordingTransport()
    async with httpx2.AsyncClient(transport=transport) as client:
        basin = HttpBasin(
            unique_basin_name("oas"),
            access_token="test",
            account_endpoint=url,
            basin_endpoint=url,
            client=client,
            **options,  # type: ignore[arg-type]
        )
        try:
            yield basin, transport
        finally:
            await basin.aclose()


async def test_http_basin_requests_and_responses_match_the_document(s2_server_url: str) -> None:
    spec = load_spec(s2_server_url)
    async with recorded_basin(s2_server_url) as (basin, transport):
        await basin.create_basin(create_stream_on_append=True, create_stream_on_read=True)
        await basin.create_basin()  # 409 resource_already_exists, taken as success
        await basin.create_stream("s")
        await basin.create_stream("s")  # 409 again
        now = time.time_ns() // 1_000_000
        ack = await basin.append(
            "s",
            AppendInput(
                [
                    AppendRecord(b"\x00\xffbinary", ((b"kind", b"\x80"),), timestamp=now),
                    AppendRecord(b"text"),
                    AppendRecord(b"", ((b"only", b"headers"),)),
                ]
            ),
        )
        assert ack.end.seq_num == 3
        await basin.append("s", AppendInput([fence_record("w1")], match_seq_num=3))
        await basin.append("s", AppendInput([AppendRecord(b"fenced")], fencing_token="w1"))
        with pytest.raises(SeqNumMismatchError):
            await basin.append("s", AppendInput([AppendRecord(b"x")], match_seq_num=0))
        with pytest.raises(FencingTokenMismatchError):
            await basin.append("s", AppendInput([AppendRecord(b"x")], fencing_token="other"))

        assert (await basin.check_tail("s")).seq_num == 5
        assert len((await basin.read("s", seq_num=0)).records) == 5
        assert len((await basin.read("s", seq_num=1, count=2, bytes=4096)).records) == 2
        assert len((await basin.read("s", tail_offset=2)).records) == 2
        assert (await basin.read("s", timestamp=now, until=now + 10**9)).records
        with pytest.raises(RangeNotSatisfiableError):
            await basin.read("s", seq_num=99)
        with pytest.raises(RangeNotSatisfiableError):
            await basin.read("s", seq_num=5, clamp=True)
        waited = asyncio.create_task(basin.read("s", seq_num=5, wait=2))
        await asyncio.sleep(0.2)
        await basin.append("s", AppendInput([AppendRecord(b"late")]))
        assert [r.body for r in (await waited).records] == [b"late"]

        seen: list[int] = []
        async with contextlib.aclosing(basin.follow("s", seq_num=4)) as follow:
            async for batch in follow:
                seen += [r.seq_num for r in batch.records]
                if seen[-1] == 5:
                    await basin.append("s", AppendInput([AppendRecord(b"live")]))
                if seen[-1] >= 6:
                    break
        assert seen == [4, 5, 6]
        await basin.append("s", AppendInput([trim_record(2)]))
        await basin.delete_stream("s")
        await basin.delete_stream("s")  # 404, taken as success
        await basin.delete_basin()

    assert len(transport.exchanges) >= 24
    statuses = {e.status for e in transport.exchanges}
    assert {200, 201, 202, 404, 409, 412, 416} <= statuses
    found = problems(spec, transport.exchanges)
    assert not found, "\n".join(found)


async def test_missing_stream_and_basin_errors_match_the_document(s2_server_url: str) -> None:
    spec = load_spec(s2_server_url)
    async with recorded_basin(s2_server_url, create_missing_streams=False) as (basin, transport):
        await basin.create_basin(create_stream_on_append=False, create_stream_on_read=False)
        with pytest.raises(StreamNotFoundError):
            await basin.append("missing", AppendInput([AppendRecord(b"x")]))
        with pytest.raises(StreamNotFoundError):
            await basin.read("missing", seq_num=0)
        with pytest.raises(StreamNotFoundError):
            await basin.check_tail("missing")
        await basin.delete_basin()
        await basin.delete_basin()  # 404 basin_not_found, taken as success
    assert [e.status for e in transport.exchanges].count(404) == 4
    found = problems(spec, transport.exchanges)
    assert not found, "\n".join(found)


def test_the_check_reports_what_breaks_the_document() -> None:
    """The validator is live: a malformed append and an ack without ``tail`` are reported."""
    spec = load_spec("http://s2.test")
    url = "http://s2.test/v1/streams/s/records"
    headers = {"authorization": "Bearer t", "content-type": "application/json"}
    bad_request = Exchange(
        httpx2.Request("POST", url, headers=headers),
        b'{"records":[{"headers":[{"name":"a"}]}]}',
        200,
        httpx2.Headers({"content-type": "application/json"}),
        bytearray(b'{"start":{"seq_num":0,"timestamp":1},"end":{"seq_num":1,"timestamp":1}}'),
    )
    good_request = Exchange(
        httpx2.Request("POST", url, headers=headers),
        b'{"records":[{"body":"x"}]}',
        200,
        httpx2.Headers({"content-type": "application/json"}),
        bytearray(b'{"start":{"seq_num":0,"timestamp":1},"end":{"seq_num":1,"timestamp":1}}'),
    )
    found = problems(spec, [bad_request, good_request])
    assert len(found) == 2
    assert found[0].startswith("request POST") and found[1].startswith("response POST")
