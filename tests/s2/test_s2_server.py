"""The bundled S2 test server on the wire: status codes, error bodies, SSE framing, CRUD.

Unary requests go in-process through ``httpx.ASGITransport``; SSE sessions go over real HTTP
to the ``s2_server_url`` subprocess (ASGITransport buffers whole responses).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from resumable_chat.testing.pytest_plugin import unique_basin_name

MakeClient = Callable[..., httpx.AsyncClient]
JSON = {"content-type": "application/json"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _events(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], limit: int = 50
) -> list[ServerSentEvent]:
    """The events of an SSE session, until the server ends it (or ``limit`` events)."""
    events: list[ServerSentEvent] = []
    async with aconnect_sse(client, "GET", url, headers=headers) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for event in source.aiter_sse():
            events.append(event)
            if len(events) >= limit:
                break
    return events


async def test_health(asgi_client: MakeClient) -> None:
    async with asgi_client() as client:
        assert (await client.get("/health")).text == "OK"
        assert (await client.get("/nope")).status_code == 404
        assert (await client.patch("/v1/streams")).status_code == 405


async def test_append_and_read_error_bodies(asgi_client: MakeClient) -> None:
    async with asgi_client() as client:
        h = {"S2-Basin": unique_basin_name()}
        url = "/v1/streams/s/records"
        ack = await client.post(url, json={"records": [{"body": "a"}, {"body": "b"}]}, headers=h)
        assert ack.status_code == 200
        assert set(ack.json()) == {"start", "end", "tail"}
        assert ack.json()["end"]["seq_num"] == 2
        no_json = await client.post(url, content=b'{"records":[{"body":"x"}]}', headers=h)
        assert (no_json.status_code, no_json.json()["code"]) == (400, "bad_json")
        bad = await client.post(url, content=b"{", headers={**h, **JSON})
        assert (bad.status_code, bad.json()["code"]) == (400, "bad_json")
        shape = await client.post(url, json={"records": [{"headers": [{"a": "b"}]}]}, headers=h)
        assert (shape.status_code, shape.json()["code"]) == (400, "bad_json")
        seq = await client.post(url, json={"records": [{}], "match_seq_num": 0}, headers=h)
        assert (seq.status_code, seq.json()) == (412, {"seq_num_mismatch": 2})
        fence = await client.post(url, json={"records": [{}], "fencing_token": "x"}, headers=h)
        assert (fence.status_code, fence.json()) == (412, {"fencing_token_mismatch": ""})
        empty = await client.post(url, json={"records": []}, headers=h)
        assert (empty.status_code, empty.json()["code"]) == (422, "invalid")
        b64 = {**h, "s2-format": "base64"}
        not_b64 = await client.post(url, json={"records": [{"body": "a"}]}, headers=b64)
        assert (not_b64.status_code, not_b64.json()["code"]) == (422, "invalid")
        fmt = await client.post(url, json={"records": [{}]}, headers={**h, "s2-format": "utf8"})
        assert (fmt.status_code, fmt.json()["code"]) == (400, "bad_header")

        tail = ack.json()["tail"]
        at_tail = await client.get(f"{url}?seq_num=2&clamp=true", headers=h)
        assert (at_tail.status_code, at_tail.json()) == (416, {"tail": tail})
        past = await client.get(f"{url}?seq_num=7", headers=h)
        assert (past.status_code, past.json()) == (416, {"tail": tail})
        two = await client.get(f"{url}?seq_num=0&tail_offset=1", headers=h)
        assert (two.status_code, two.json()["code"]) == (422, "invalid")
        query = await client.get(f"{url}?seq_num=-1", headers=h)
        assert (query.status_code, query.json()["code"]) == (400, "bad_query")
        read = await client.get(f"{url}?seq_num=0&count=1", headers=h)
        assert read.json() == {
            "records": [{"seq_num": 0, "timestamp": ack.json()["start"]["timestamp"], "body": "a"}]
        }
        check = await client.get(f"{url}/tail", headers=h)
        assert check.json() == {"tail": tail}


async def test_basin_from_header_or_host(asgi_client: MakeClient) -> None:
    async with asgi_client() as client:
        name = unique_basin_name()
        body = {"records": [{"body": "a"}]}
        missing = await client.post("/v1/streams/s/records", json=body)
        assert (missing.status_code, missing.json()["code"]) == (400, "bad_header")
        invalid = await client.post("/v1/streams/s/records", json=body, headers={"S2-Basin": "B"})
        assert (invalid.status_code, invalid.json()["code"]) == (400, "bad_header")
        by_host = await client.post(f"http://{name}.b.s2.test/v1/streams/s/records", json=body)
        assert by_host.status_code == 200
        by_header = await client.get(
            "/v1/streams/s/records/tail", headers={"S2-Basin": name, "host": "s2.test"}
        )
        assert by_header.json()["tail"]["seq_num"] == 1


async def test_streams_not_created_when_the_basin_says_no(asgi_client: MakeClient) -> None:
    async with asgi_client(
        create_stream_on_append=False, create_stream_on_read=False, auto_create_basins=False
    ) as client:
        name = unique_basin_name()
        h = {"S2-Basin": name}
        gone = await client.get("/v1/streams/s/records/tail", headers=h)
        assert (gone.status_code, gone.json()["code"]) == (404, "basin_not_found")
        assert (await client.put(f"/v1/basins/{name}")).status_code == 201
        for response in (
            await client.get("/v1/streams/s/records/tail", headers=h),
            await client.get("/v1/streams/s/records?seq_num=0", headers=h),
            await client.post("/v1/streams/s/records", json={"records": [{}]}, headers=h),
        ):
            assert (response.status_code, response.json()["code"]) == (404, "stream_not_found")
        # Validation comes before the stream lookup, as in s2-lite.
        invalid = await client.post("/v1/streams/s/records", json={"records": []}, headers=h)
        assert invalid.status_code == 422


async def test_basin_crud(asgi_client: MakeClient) -> None:
    async with asgi_client() as client:
        name = unique_basin_name("crud")
        created = await client.post(
            "/v1/basins", json={"basin": name, "config": {"create_stream_on_read": False}}
        )
        assert created.status_code == 201
        info = created.json()
        assert info["name"] == name and info["deleted_at"] is None and "created_at" in info
        again = await client.post("/v1/basins", json={"basin": name})
        assert (again.status_code, again.json()["code"]) == (409, "resource_already_exists")
        bad = await client.post("/v1/basins", json={"basin": "Bad_Name"})
        assert bad.status_code == 422
        config = (await client.get(f"/v1/basins/{name}")).json()
        assert config["create_stream_on_append"] is True
        assert config["create_stream_on_read"] is False
        patched = await client.patch(f"/v1/basins/{name}", json={"create_stream_on_read": True})
        assert patched.json()["create_stream_on_read"] is True
        assert (await client.put(f"/v1/basins/{name}", json={})).status_code == 200
        await client.post("/v1/basins", json={"basin": "other-basin-1"})
        listed = (await client.get("/v1/basins", params={"prefix": "crud-"})).json()
        assert [b["name"] for b in listed["basins"]] == [name]
        assert listed["has_more"] is False
        assert (await client.delete(f"/v1/basins/{name}")).status_code == 202
        missing = await client.get(f"/v1/basins/{name}")
        assert (missing.status_code, missing.json()["code"]) == (404, "basin_not_found")
        assert (await client.delete(f"/v1/basins/{name}")).status_code == 404


async def test_stream_crud(asgi_client: MakeClient) -> None:
    async with asgi_client() as client:
        h = {"S2-Basin": unique_basin_name()}
        created = await client.post("/v1/streams", json={"stream": "a/1"}, headers=h)
        assert created.status_code == 201
        assert created.json()["name"] == "a/1" and created.json()["deleted_at"] is None
        again = await client.post("/v1/streams", json={"stream": "a/1"}, headers=h)
        assert (again.status_code, again.json()["code"]) == (409, "resource_already_exists")
        assert (await client.put("/v1/streams/a%2F2", headers=h)).status_code == 201
        assert (await client.put("/v1/streams/a%2F2", headers=h)).status_code == 200
        await client.post("/v1/streams", json={"stream": "b"}, headers=h)
        config = await client.get("/v1/streams/a%2F1", headers=h)
        assert config.json()["timestamping"]["mode"] == "client-prefer"
        page = (await client.get("/v1/streams?prefix=a/&limit=1", headers=h)).json()
        assert [s["name"] for s in page["streams"]] == ["a/1"] and page["has_more"] is True
        rest = (await client.get("/v1/streams?prefix=a/&start_after=a/1", headers=h)).json()
        assert [s["name"] for s in rest["streams"]] == ["a/2"] and rest["has_more"] is False
        assert (await client.delete("/v1/streams/a%2F1", headers=h)).status_code == 202
        gone = await client.delete("/v1/streams/a%2F1", headers=h)
        assert (gone.status_code, gone.json()["code"]) == (404, "stream_not_found")
        assert (await client.get("/v1/streams/a%2F1", headers=h)).status_code == 404


async def test_sse_session_framing(s2_server_url: str) -> None:
    async with httpx.AsyncClient(base_url=s2_server_url, timeout=10) as client:
        h = {"S2-Basin": unique_basin_name(), "s2-format": "base64"}
        records: list[dict[str, Any]] = [
            {"body": _b64(b"ab")},
            {"body": _b64(b"cde"), "headers": [[_b64(b"k"), _b64(b"v")]]},
            {"body": _b64(b"f")},
        ]
        await client.post("/v1/streams/s/records", json={"records": records}, headers=h)
        url = "/v1/streams/s/records"

        # A count bound ends the session with [DONE]; id is "last seq_num,count,bytes".
        events = await _events(client, f"{url}?seq_num=0&count=2", h)
        assert [e.event for e in events] == ["batch", "message"]
        assert events[0].id == f"1,2,{10 + 15}"
        batch: dict[str, Any] = json.loads(events[0].data)
        assert [r["seq_num"] for r in batch["records"]] == [0, 1]
        assert batch["records"][1]["headers"] == [[_b64(b"k"), _b64(b"v")]]
        assert events[1].data == "[DONE]"

        # wait=1: the records, a ping once caught up (with the tail), then [DONE] after 1 s.
        started = time.monotonic()
        events = await _events(client, f"{url}?seq_num=0&wait=1", h)
        assert [e.event for e in events] == ["batch", "ping", "message"]
        assert 0.8 < time.monotonic() - started < 5
        ping = json.loads(events[1].data)
        assert ping["tail"]["seq_num"] == 3 and ping["timestamp"] > 0

        # until and bytes bounds.
        until = json.loads(events[0].data)["records"][1]["timestamp"]
        events = await _events(client, f"{url}?seq_num=0&bytes=10", h)
        assert [e.event for e in events] == ["batch", "message"]
        assert events[0].id == "0,1,10"
        events = await _events(client, f"{url}?seq_num=0&bytes=9", h)
        assert [e.data for e in events] == ["[DONE]"]
        events = await _events(client, f"{url}?seq_num=0&until={until + 1}&count=10", h)
        assert events[-1].data == "[DONE]"

        started = time.monotonic()
        events = await _events(client, f"{url}?seq_num=0&count=0&wait=5", h)
        assert [e.data for e in events] == ["[DONE]"]  # a zero limit ends at once
        assert time.monotonic() - started < 2

        # Last-Event-ID: resume after seq_num 0 and subtract the counters from the limits.
        events = await _events(client, f"{url}?seq_num=0&count=2", {**h, "last-event-id": "0,1,10"})
        assert [r["seq_num"] for r in json.loads(events[0].data)["records"]] == [1]
        assert events[-1].data == "[DONE]"

        # Errors before the session starts are plain HTTP responses.
        past = await client.get(f"{url}?seq_num=9", headers={**h, "accept": "text/event-stream"})
        assert (past.status_code, past.json()["tail"]["seq_num"]) == (416, 3)
        at_tail = await client.get(
            f"{url}?seq_num=3&count=5", headers={**h, "accept": "text/event-stream"}
        )
        assert at_tail.status_code == 416


async def test_sse_session_follows_live_and_pings(s2_server_url: str) -> None:
    async with httpx.AsyncClient(base_url=s2_server_url, timeout=10) as client:
        h = {"S2-Basin": unique_basin_name()}
        url = "/v1/streams/live/records"
        async with aconnect_sse(client, "GET", f"{url}?seq_num=0", headers=h) as source:
            events = source.aiter_sse()
            first = await anext(events)
            assert first.event == "ping"
            assert json.loads(first.data)["tail"]["seq_num"] == 0
            await client.post(url, json={"records": [{"body": "hi"}]}, headers=h)
            batch = await anext(events)
            assert batch.event == "batch" and batch.id.startswith("0,1,")
            assert json.loads(batch.data)["records"][0]["body"] == "hi"
            assert json.loads(batch.data)["tail"]["seq_num"] == 1
            await client.delete("/v1/streams/live", headers=h)
            done = await anext(events)
            assert done.data == "[DONE]"


@pytest.mark.parametrize("value", ["raw", "json"])
async def test_raw_format_round_trip(asgi_client: MakeClient, value: str) -> None:
    async with asgi_client() as client:
        h = {"S2-Basin": unique_basin_name(), "s2-format": value}
        body = {"records": [{"headers": [["kind", "text ✓"]], "body": "héllo"}]}
        await client.post("/v1/streams/s/records", json=body, headers=h)
        read = (await client.get("/v1/streams/s/records?seq_num=0", headers=h)).json()
        assert read["records"][0]["headers"] == [["kind", "text ✓"]]
        assert read["records"][0]["body"] == "héllo"


async def test_a_client_hanging_up_mid_append_body_is_not_a_server_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An S2 client whose connection drops while its append body is on the way (a process
    killed mid-request): the server writes nothing and raises nothing (no "Exception in ASGI
    application" traceback), and the stream takes the next append at seq_num 0."""
    from resumable_chat.testing.app_server import serve_app
    from resumable_chat.testing.s2_compat.app import create_app

    errors: list[BaseException] = []
    done = asyncio.Event()
    s2 = create_app()

    async def recorded(scope: Any, receive: Any, send: Any) -> None:
        try:
            await s2(scope, receive, send)
        except BaseException as exc:
            errors.append(exc)
            raise
        finally:
            if scope["type"] == "http":
                done.set()

    async with serve_app(recorded) as url:
        host, port = url.removeprefix("http://").split(":")
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /v1/streams/s/records HTTP/1.1\r\nHost: x\r\nS2-Basin: hangup-basin\r\n"
            b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
            b'{"records":[{"body":"aGk'
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(done.wait(), 10)
        assert errors == []
        assert "Exception in ASGI application" not in caplog.text
        async with httpx.AsyncClient(base_url=url, headers={"s2-basin": "hangup-basin"}) as client:
            body = {"records": [{"body": "hi"}]}
            appended = await client.post("/v1/streams/s/records", json=body)
            assert appended.status_code == 200, appended.text
            assert appended.json()["start"]["seq_num"] == 0
