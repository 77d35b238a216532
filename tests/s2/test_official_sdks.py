"""S2's official SDKs against the bundled S2 server, and against ``HttpBasin``.

- The TypeScript SDK ``@s2-dev/streamstore`` (pinned in ``tests/s2/sdk_js/package.json``) runs
  the conformance scenario of ``tests/s2/sdk_js/conformance.mjs`` under Node, once with its
  ``fetch`` transport (JSON, and protobuf for bytes records, over HTTP/1.1) and once with its
  ``s2s`` transport (protobuf sessions over cleartext HTTP/2).
- The Python SDK ``s2-sdk`` (pinned in the ``test`` extra; HTTP/2 only, protobuf bodies, s2s
  sessions) runs the same scenario here.
- Cross-client: a chat written through ``HttpBasin`` reads back identically through ``s2-sdk``
  (seq_num, timestamp, headers, body), and records ``s2-sdk`` appends read back identically
  through ``HttpBasin``.

The server runs in this process under hypercorn (``serve_app(..., http2=True)``), with a
:class:`Faults` hook that records what each request looked like, so the tests can tell which
wire format and HTTP version each SDK really used.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from resumable_chat.s2 import AppendInput, AppendRecord, HttpBasin, fence_record
from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.pytest_plugin import unique_basin_name
from resumable_chat.testing.s2_server import Faults, create_app

s2_sdk = pytest.importorskip("s2_sdk")

SDK_JS = Path(__file__).parent / "sdk_js"
TOKEN = "sdk-conformance-token"
NODE_TIMEOUT_S = 90.0


@dataclass
class Seen:
    """One request as the server saw it."""

    operation: str
    http_version: str
    content_type: str
    accept: str


@dataclass
class Recorder(Faults):
    """Records every routed request; injects nothing."""

    seen: list[Seen] = field(default_factory=list)

    async def before_request(self, request: Request, operation: str) -> Response | None:
        self.seen.append(
            Seen(
                operation,
                str(request.scope.get("http_version")),
                request.headers.get("content-type", ""),
                request.headers.get("accept", ""),
            )
        )
        return None

    def operations(self) -> set[str]:
        return {s.operation for s in self.seen}


@contextlib.asynccontextmanager
async def bundled_server() -> AsyncIterator[tuple[str, Recorder]]:
    """The bundled S2 server on hypercorn (HTTP/1.1 + h2c), requiring ``TOKEN``."""
    recorder = Recorder()
    app = create_app(access_token=TOKEN, ping_interval_s=1.0, faults=recorder)
    async with serve_app(app, http2=True) as url:
        yield url, recorder


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _http_basin_records(url: str, basin: str, stream: str) -> list[dict[str, Any]]:
    """Every record of ``stream`` as ``HttpBasin`` reads it (base64 headers and bodies)."""
    http = HttpBasin(basin, access_token=TOKEN, account_endpoint=url, basin_endpoint=url)
    try:
        batch = await http.read(stream, seq_num=0)
    finally:
        await http.aclose()
    return [
        {
            "seq_num": r.seq_num,
            "headers": [[_b64(n), _b64(v)] for n, v in r.headers],
            "body": _b64(r.body),
        }
        for r in batch.records
    ]


# -- TypeScript SDK ---------------------------------------------------------------------------


def _node_ready() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (SDK_JS / "node_modules" / "@s2-dev" / "streamstore").is_dir():
        return "tests/s2/sdk_js/node_modules is missing (npm ci there)"
    return None


@pytest.mark.timeout(150)
@pytest.mark.parametrize("transport", ["fetch", "s2s"])
async def test_typescript_sdk_conformance(transport: str) -> None:
    reason = _node_ready()
    if reason:
        pytest.skip(reason)
    basin = unique_basin_name("ts")
    async with bundled_server() as (url, recorder):
        process = await asyncio.create_subprocess_exec(
            "node",
            "conformance.mjs",
            url,
            TOKEN,
            basin,
            transport,
            cwd=SDK_JS,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), NODE_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode == 0, err.decode()[-4000:]
        result = json.loads(out)
        expected_records = await _http_basin_records(url, basin, f"sdk-ts-{transport}")

    assert result["sdk"] == "0.27.0"
    failed = [f"{s['step']}: {s['error']}" for s in result["steps"] if not s["ok"]]
    assert not failed, "\n\n".join(failed)
    assert len(result["steps"]) == 23
    # what the SDK reads is what HttpBasin reads, byte for byte
    assert result["records"] == expected_records
    assert [r["seq_num"] for r in expected_records][:2] == [2, 3]

    ops = recorder.operations()
    protobuf = [s for s in recorder.seen if "protobuf" in s.content_type + s.accept]
    assert protobuf, "the SDK never used protobuf bodies"
    if transport == "s2s":
        sessions = [s for s in recorder.seen if s.content_type == "s2s/proto"]
        assert {"append_session", "read_session"} <= ops
        assert sessions and all(s.http_version == "2" for s in sessions)
    else:
        assert "append_session" not in ops
        assert {s.http_version for s in recorder.seen} == {"1.1"}


# -- Python SDK ---------------------------------------------------------------------------------


def _sdk(url: str, token: str = TOKEN) -> Any:
    endpoints = s2_sdk.Endpoints(account=url, basin=url)
    retry = s2_sdk.Retry(max_attempts=2)
    return s2_sdk.S2(token, endpoints=endpoints, retry=retry)


def _records(batch: Any) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    return [(r.seq_num, list(r.headers), r.body) for r in batch.records]


@pytest.mark.timeout(60)
async def test_python_sdk_conformance() -> None:
    from s2_sdk import (
        AppendInput as In,
    )
    from s2_sdk import (
        CommandRecord,
        FencingTokenMismatchError,
        ReadLimit,
        ReadUnwrittenError,
        Record,
        S2ServerError,
        SeqNum,
        SeqNumMismatchError,
        TailOffset,
    )

    name = unique_basin_name("py")
    async with bundled_server() as (url, recorder), _sdk(url) as s2:
        await s2.create_basin(name)
        basin = s2.basin(name)
        info = await basin.create_stream("conformance")
        assert info.name == "conformance"
        stream = basin.stream("conformance")

        # text and bytes records with headers
        ack = await stream.append(
            In(
                records=[
                    Record(body=b"hello", headers=[(b"kind", b"text")]),
                    Record(body=b"\x00\xff\x01", headers=[(b"kind", b"\xff\x00")]),
                ]
            )
        )
        assert (ack.start.seq_num, ack.end.seq_num, ack.tail.seq_num) == (0, 2, 2)
        batch = await stream.read(start=SeqNum(0))
        assert _records(batch) == [
            (0, [(b"kind", b"text")], b"hello"),
            (1, [(b"kind", b"\xff\x00")], b"\x00\xff\x01"),
        ]

        # match_seq_num right and wrong
        ack = await stream.append(In(records=[Record(body=b"m2")], match_seq_num=2))
        assert ack.start.seq_num == 2
        with pytest.raises(SeqNumMismatchError) as seq_error:
            await stream.append(In(records=[Record(body=b"never")], match_seq_num=0))
        assert seq_error.value.expected_seq_num == 3

        # fence, then fencing token wrong and right
        await stream.append(In(records=[CommandRecord.fence("writer-1")]))
        with pytest.raises(FencingTokenMismatchError) as fence_error:
            await stream.append(In(records=[Record(body=b"never")], fencing_token="intruder"))
        assert fence_error.value.expected_fencing_token == "writer-1"
        ack = await stream.append(
            In(records=[Record(body=b"f1"), Record(body=b"f2")], fencing_token="writer-1")
        )
        assert (ack.start.seq_num, ack.end.seq_num) == (4, 6)

        # check tail
        assert (await stream.check_tail()).seq_num == 6

        # reads: from a seq_num with a count, from a tail offset, with a byte limit
        batch = await stream.read(start=SeqNum(4), limit=ReadLimit(count=1))
        assert [r.seq_num for r in batch.records] == [4]
        batch = await stream.read(start=TailOffset(2))
        assert [r.body for r in batch.records] == [b"f1", b"f2"]
        batch = await stream.read(start=SeqNum(4), limit=ReadLimit(bytes=15))
        assert [r.seq_num for r in batch.records] == [4]

        # past the tail: 416 unless clamped; clamped with a wait, the next record arrives
        with pytest.raises(ReadUnwrittenError) as unwritten:
            await stream.read(start=SeqNum(1000))
        assert unwritten.value.tail.seq_num == 6
        clamped = asyncio.create_task(stream.read(start=SeqNum(1000), clamp_to_tail=True, wait=5))
        await asyncio.sleep(0.8)  # the read reaches the server before the append
        await stream.append(In(records=[Record(body=b"late")]))
        batch = await asyncio.wait_for(clamped, 8)
        assert [(r.seq_num, r.body) for r in batch.records] == [(6, b"late")]

        # a tailing read session gets a record appended after it started
        async def first_live_record() -> Any:
            async with stream.read_session(start=SeqNum(7)) as session:
                async for live in session:
                    if live.records:
                        return live.records[0]
            return None

        live_task = asyncio.create_task(first_live_record())
        await asyncio.sleep(0.3)
        await stream.append(In(records=[Record(body=b"live")]))
        record = await asyncio.wait_for(live_task, 8)
        assert (record.seq_num, record.body) == (7, b"live")

        # an append session acknowledges in order
        async with stream.append_session() as session:
            tickets = [await session.submit(In(records=[Record(body=b)])) for b in (b"a", b"b")]
            acks = [await asyncio.wait_for(ticket, 8) for ticket in tickets]
        assert [(a.start.seq_num, a.end.seq_num) for a in acks] == [(8, 9), (9, 10)]

        # trim
        await stream.append(In(records=[CommandRecord.trim(2)], fencing_token="writer-1"))
        batch = await stream.read(start=SeqNum(0), limit=ReadLimit(count=1))
        assert batch.records[0].seq_num == 2

        # 404: a missing basin, and a missing stream in a basin that creates none
        with pytest.raises(S2ServerError) as missing_basin:
            await s2.get_basin_config("missing-basin-404")
        assert missing_basin.value.status_code == 404
        strict = f"{name}-strict"
        await s2.create_basin(
            strict,
            config=s2_sdk.BasinConfig(create_stream_on_append=False, create_stream_on_read=False),
        )
        with pytest.raises(S2ServerError) as missing_stream:
            await s2.basin(strict).stream("missing").check_tail()
        assert (missing_stream.value.status_code, missing_stream.value.code) == (
            404,
            "stream_not_found",
        )

        # 401: a wrong access token
        async with _sdk(url, "wrong-token") as intruder:
            with pytest.raises(S2ServerError) as denied:
                await intruder.basin(name).stream("conformance").check_tail()
        assert denied.value.status_code == 401

        seen = list(recorder.seen)
        expected = await _http_basin_records(url, name, "conformance")

    # the SDK spoke HTTP/2 only: protobuf on unary records, s2s sessions
    assert {s.http_version for s in seen} == {"2"}
    assert {"append_session", "read_session"} <= {s.operation for s in seen}
    appends = [s for s in seen if s.operation == "append"]
    assert appends and all("protobuf" in s.content_type for s in appends)
    assert expected[0]["seq_num"] == 2


# -- cross-client agreement ------------------------------------------------------------------


async def _chat_records(url: str, basin: str, chat_id: str) -> None:
    """Run one AI SDK chat turn through ``ResumableChat`` on ``HttpBasin``."""
    from fastapi import FastAPI

    from resumable_chat import create_resumable_chat
    from resumable_chat.fastapi import ai_sdk_router

    async def model(messages: Any, signal: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "start", "messageId": "m1"}
        yield {"type": "text-start", "id": "t0"}
        for word in ("héllo ", "wörld ", "\u2603"):
            yield {"type": "text-delta", "id": "t0", "delta": word}
        yield {"type": "text-end", "id": "t0"}
        yield {"type": "finish", "finishReason": "stop"}

    http = HttpBasin(basin, access_token=TOKEN, account_endpoint=url, basin_endpoint=url)
    chat = create_resumable_chat(basin=http)
    app = FastAPI()
    app.include_router(ai_sdk_router(chat, model))
    try:
        async with serve_app(app) as app_url, httpx.AsyncClient(base_url=app_url) as client:
            user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
            response = await client.post("/api/chat", json={"id": chat_id, "messages": [user]})
            assert response.status_code == 200
            assert '"finish"' in response.text
    finally:
        await chat.aclose(drain_timeout_s=2)
        await http.aclose()


@pytest.mark.timeout(60)
async def test_chat_written_by_http_basin_reads_the_same_through_the_python_sdk() -> None:
    from s2_sdk import SeqNum

    name = unique_basin_name("xchat")
    async with bundled_server() as (url, _), _sdk(url) as s2:
        await _chat_records(url, name, "chat-1")
        http = HttpBasin(name, access_token=TOKEN, account_endpoint=url, basin_endpoint=url)
        try:
            listed = [s.name for s in (await s2.basin(name).list_streams()).items]
            streams = [s for s in listed if s.startswith("chat-")]  # not the start-up check's
            assert streams, f"the chat wrote no stream: {listed}"
            for stream in streams:
                ours = await http.read(stream, seq_num=0)
                theirs = await s2.basin(name).stream(stream).read(start=SeqNum(0))
                assert len(ours.records) > 3
                assert [
                    (r.seq_num, r.timestamp, list(r.headers), r.body) for r in ours.records
                ] == [(r.seq_num, r.timestamp, list(r.headers), r.body) for r in theirs.records]
        finally:
            await http.aclose()


@pytest.mark.timeout(60)
async def test_records_appended_by_the_python_sdk_read_the_same_through_http_basin() -> None:
    from s2_sdk import AppendInput as In
    from s2_sdk import CommandRecord, Record, SeqNum

    name = unique_basin_name("xsdk")
    sent = [
        Record(body=b"plain"),
        Record(body=b"\x00\x01\xfe\xff", headers=[(b"\xff", b""), (b"a", b"\x80")]),
        Record(body="ünïcode ☃".encode(), headers=[(b"content-type", b"text/plain")]),
        CommandRecord.fence("sdk-writer"),
        Record(body=b"", headers=[(b"only", b"headers")]),
    ]
    async with bundled_server() as (url, _), _sdk(url) as s2:
        stream = s2.basin(name).stream("from-sdk")
        await stream.append(In(records=sent[:3]))
        async with stream.append_session() as session:
            ticket = await session.submit(In(records=sent[3:]))
            await asyncio.wait_for(ticket, 8)
        theirs = await stream.read(start=SeqNum(0))

        http = HttpBasin(name, access_token=TOKEN, account_endpoint=url, basin_endpoint=url)
        try:
            ours = await http.read("from-sdk", seq_num=0)
            # and HttpBasin's own appends under the SDK's fence land after them
            await http.append(
                "from-sdk",
                AppendInput(
                    [AppendRecord(b"ours", ((b"k", b"\x00"),)), fence_record("ours")],
                    fencing_token="sdk-writer",
                ),
            )
        finally:
            await http.aclose()
        after = await stream.read(start=SeqNum(5))

    assert [(r.seq_num, r.timestamp, list(r.headers), r.body) for r in ours.records] == [
        (r.seq_num, r.timestamp, list(r.headers), r.body) for r in theirs.records
    ]
    assert [(list(r.headers), r.body) for r in ours.records] == [
        (list(r.headers), r.body) for r in sent
    ]
    assert [(r.seq_num, list(r.headers), r.body) for r in after.records] == [
        (5, [(b"k", b"\x00")], b"ours"),
        (6, [(b"", b"fence")], b"ours"),
    ]
