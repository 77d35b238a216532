"""The bundled S2 server's routes (Starlette ``Route`` s matched on the raw path), over real
HTTP: names holding ``/``, ``%``, spaces, a newline or non-ASCII text stay one path segment;
unknown paths and wrong methods answer in S2's error shape (no trailing-slash redirects, no
implied HEAD); the operations S2 documents but this server lacks answer 501; a fault rule
aimed at such a stream hits exactly it, and fault hooks see the decoded path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from resumable_chat.s2 import AppendInput, AppendRecord, HttpBasin, S2UnavailableError
from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.fault_plan import FaultPlan
from resumable_chat.testing.pytest_plugin import unique_basin_name
from resumable_chat.testing.s2_server import Faults, create_app

NAMES = ["chat/42", "a%2Fb", "with space", "line\nbreak", "ünï/cödé", "records", "x/records/tail"]


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, FaultPlan]]:
    plan = FaultPlan()
    async with serve_app(create_app(faults=plan)) as url:
        yield url, plan


@pytest.mark.parametrize("name", NAMES)
async def test_a_stream_name_with_any_characters_round_trips(
    server: tuple[str, FaultPlan], name: str
) -> None:
    url, _ = server
    basin = HttpBasin(
        unique_basin_name(), account_endpoint=url, basin_endpoint=url, access_token="test"
    )
    try:
        await basin.append(name, AppendInput([AppendRecord(b"one"), AppendRecord(b"two")]))
        batch = await basin.read(name, seq_num=0, count=10)
        assert [r.body for r in batch.records] == [b"one", b"two"]
        assert (await basin.check_tail(name)).seq_num == 2
        await basin.delete_stream(name)  # DELETE /v1/streams/{stream}: this one, no other
        await basin.append(name, AppendInput([AppendRecord(b"anew")]))
        batch = await basin.read(name, seq_num=0, count=10)
        assert [r.body for r in batch.records] == [b"anew"]
    finally:
        await basin.aclose()


async def test_raw_http_append_then_read_on_an_encoded_name(
    server: tuple[str, FaultPlan],
) -> None:
    url, _ = server
    records = f"/v1/streams/{quote('chat/42%x', safe='')}/records"
    assert records == "/v1/streams/chat%2F42%25x/records"
    headers = {"s2-basin": unique_basin_name()}
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        appended = await client.post(records, json={"records": [{"body": "hi"}]})
        assert appended.status_code == 200, appended.text
        read = await client.get(records, params={"seq_num": 0})
        assert [r["body"] for r in read.json()["records"]] == ["hi"]
        listed = await client.get("/v1/streams")
        assert [s["name"] for s in listed.json()["streams"]] == ["chat/42%x"]


async def test_unknown_paths_and_wrong_methods_answer_in_s2_error_shape(
    server: tuple[str, FaultPlan],
) -> None:
    url, _ = server
    stream = f"/v1/streams/{quote('a/b', safe='')}"
    async with httpx.AsyncClient(base_url=url) as client:
        not_found = ("/v2/basins", "/v1/nothing", f"{stream}/records/head", "/", "/health/")
        # a trailing slash is another path (404), not a redirect
        not_found += (f"{stream}/records/", f"{stream}/records/tail/", "/v1/basins//")
        for path in not_found:
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json() == {"code": "bad_path", "message": "no such S2 endpoint"}
        for method, path in (
            ("DELETE", f"{stream}/records"),
            ("POST", f"{stream}/records/tail"),
            ("PUT", "/v1/basins"),
            ("GET", "/v1/access-tokens/t1"),
            ("HEAD", f"{stream}/records/tail"),  # exactly the methods S2 documents: no HEAD
            ("PUT", "/v1/metrics"),
        ):
            response = await client.request(method, path)
            assert response.status_code == 405, (method, path)
            if method == "HEAD":
                continue
            assert response.json() == {"code": "bad_path", "message": "method not allowed here"}
        for method, path in (
            ("GET", "/v1/metrics"),
            ("GET", "/v1/metrics/some-basin/a%2Fb"),
            ("POST", "/v1/access-tokens"),
            ("DELETE", "/v1/access-tokens/t1"),
        ):
            response = await client.request(method, path)
            assert response.status_code == 501, (method, path)
            assert response.json()["code"] == "not_implemented"
        for method in ("GET", "POST", "DELETE"):
            assert (await client.request(method, "/health")).text == "OK"
            assert (await client.request(method, "/ping")).text == "OK"
        # an empty name is still routed to the operation, which refuses it
        response = await client.get("/v1/streams//records", headers={"s2-basin": "some-basin"})
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid"


async def test_a_fault_aimed_at_a_stream_with_a_slash_hits_only_that_stream(
    server: tuple[str, FaultPlan],
) -> None:
    url, plan = server
    basin = HttpBasin(
        unique_basin_name(),
        account_endpoint=url,
        basin_endpoint=url,
        access_token="test",
        max_attempts=1,
    )
    try:
        plan.fail("append", status=503, times=None, streams=["chat/42"])
        await basin.append("chat/43", AppendInput([AppendRecord(b"fine")]))
        with pytest.raises(S2UnavailableError):
            await basin.append("chat/42", AppendInput([AppendRecord(b"refused")]))
        assert plan.injected == [("append", "status")]
    finally:
        await basin.aclose()


class _Seen(Faults):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []

    async def before_request(self, request: Request, operation: str) -> Response | None:
        self.seen.append((operation, request.url.path, request.path_params.get("stream")))
        return None


async def test_fault_hooks_get_the_operation_name_and_the_decoded_path() -> None:
    faults = _Seen()
    stream = quote("chat/42", safe="")
    async with (
        serve_app(create_app(faults=faults)) as url,
        httpx.AsyncClient(base_url=url, headers={"s2-basin": unique_basin_name()}) as client,
    ):
        await client.post(f"/v1/streams/{stream}/records", json={"records": [{"body": "x"}]})
        await client.get(f"/v1/streams/{stream}/records/tail")
        await client.get(f"/v1/streams/{stream}/records", params={"seq_num": 0})
        await client.get("/v1/streams")
        await client.get("/v1/metrics")  # 501, not an operation: no hooks
        await client.post("/v1/streams/x/records/tail")  # 405: no hooks
    path = "/v1/streams/chat/42"
    assert faults.seen == [
        ("append", f"{path}/records", "chat/42"),
        ("check_tail", f"{path}/records/tail", "chat/42"),
        ("read", f"{path}/records", "chat/42"),
        ("list_streams", "/v1/streams", None),
    ]
