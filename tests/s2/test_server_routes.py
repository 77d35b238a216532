"""The bundled S2 server's routes (Starlette ``Route`` s matched on the raw path), over real
HTTP: names holding ``/``, ``%``, spaces, a newline or non-ASCII text stay one path segment;
unknown paths and wrong methods answer in S2's error shape; the operations S2 documents but
this server lacks answer 501; a fault rule aimed at such a stream hits exactly it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest

from resumable_chat.s2 import AppendInput, AppendRecord, HttpBasin, S2UnavailableError
from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.fault_plan import FaultPlan
from resumable_chat.testing.pytest_plugin import unique_basin_name
from resumable_chat.testing.s2_server import create_app

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


async def test_unknown_paths_and_wrong_methods_answer_in_s2_error_shape(
    server: tuple[str, FaultPlan],
) -> None:
    url, _ = server
    stream = f"/v1/streams/{quote('a/b', safe='')}"
    async with httpx.AsyncClient(base_url=url) as client:
        for path in ("/v2/basins", "/v1/nothing", f"{stream}/records/head", "/"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json() == {"code": "bad_path", "message": "no such S2 endpoint"}
        for method, path in (
            ("DELETE", f"{stream}/records"),
            ("POST", f"{stream}/records/tail"),
            ("PUT", "/v1/basins"),
            ("GET", "/v1/access-tokens/t1"),
        ):
            response = await client.request(method, path)
            assert response.status_code == 405, (method, path)
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
        assert (await client.get("/health")).text == "OK"


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
