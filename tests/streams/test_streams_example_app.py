"""The streams example app (``examples/streams/app.py``) over real HTTP: the seeds' route pair
(POST create → 200 | 409, GET resume → 200 | 422) plus its status and delete routes.

In-loop tests serve the app on uvicorn with a context on the ``basin`` fixture; one test runs
the script itself as a subprocess, as a user would.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from stream_helpers import eventually

from resumable_chat.testing.app_server import free_port, serve_app
from resumable_chat.text_streams.context import ResumableStreamContext

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_SCRIPT = REPO_ROOT / "examples" / "streams" / "app.py"
CHUNKS = 8


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("streams_example_app", APP_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected(stream_id: str) -> str:
    """The demo stream's full output for ``stream_id``."""
    return "".join(f"data: {stream_id} chunk {i}\n\n" for i in range(CHUNKS))


@pytest.fixture
async def client(
    make_context: Callable[..., ResumableStreamContext],
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the example app served by uvicorn (demo: 8 chunks, 30 ms apart)."""
    app = _load_example().create_app(make_context(), chunks=CHUNKS, delay_ms=30)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        yield http


async def _status(client: httpx.AsyncClient, stream_id: str) -> str | None:
    response = await client.get(f"/api/streams/{stream_id}/status")
    assert response.status_code == 200
    status: str | None = response.json()["status"]
    return status


async def test_post_streams_live_and_get_resumes_with_the_seeds_status_codes(
    client: httpx.AsyncClient,
) -> None:
    sid = "s1"
    assert await _status(client, sid) is None
    async with client.stream("POST", f"/api/streams/{sid}") as post:
        assert post.status_code == 200
        assert post.headers["content-type"].startswith("text/event-stream")
        received = ""
        parts = post.aiter_text()
        while "chunk 1" not in received:
            received += await anext(parts)
        assert await _status(client, sid) == "active"

        again = await client.post(f"/api/streams/{sid}")
        assert (again.status_code, again.text) == (409, "Stream already in use")

        cut = len(received)
        resumed, partial = await asyncio.gather(
            client.get(f"/api/streams/{sid}"),
            client.get(f"/api/streams/{sid}", params={"resumeAt": cut}),
        )
        assert resumed.status_code == 200
        assert resumed.headers["content-type"].startswith("text/event-stream")
        assert resumed.text == expected(sid)
        assert partial.status_code == 200 and partial.text == expected(sid)[cut:]

        async for text in parts:
            received += text
    assert received == expected(sid)

    async def done() -> bool:
        return await _status(client, sid) == "done"

    await eventually(done)
    finished = await client.get(f"/api/streams/{sid}")
    assert (finished.status_code, finished.text) == (422, "Stream is already done")
    restarted = await client.post(f"/api/streams/{sid}")
    assert restarted.status_code == 200 and restarted.text == expected(sid)


async def test_get_of_an_unknown_stream_is_404_and_bad_input_is_400(
    client: httpx.AsyncClient,
) -> None:
    # resumeExistingStream: undefined (no such stream) → 404; null (done) → 422 (test above).
    unknown = await client.get("/api/streams/nobody")
    assert (unknown.status_code, unknown.text) == (404, "Stream not found")
    for bad in ("-1", "abc", "1.5", "²"):
        response = await client.get("/api/streams/nobody", params={"resumeAt": bad})
        assert response.status_code == 400, bad
    invalid_id = await client.get("/api/streams/.hidden")
    assert invalid_id.status_code == 422  # FastAPI path validation


async def test_post_with_a_text_body_and_delete(client: httpx.AsyncClient, basin_kind: str) -> None:
    response = await client.post("/api/streams/t1", json={"text": "hello resumable world"})
    assert response.status_code == 200 and response.text == "hello resumable world"
    deleted = await client.delete("/api/streams/t1")
    assert deleted.status_code == 204
    if basin_kind != "s2":
        assert await _status(client, "t1") is None


async def test_a_text_with_a_lone_surrogate_streams_whole_with_a_replacement_character(
    client: httpx.AsyncClient,
) -> None:
    """JSON may carry a lone surrogate (``"\\ud800"``), which UTF-8 cannot: the stream
    sends and stores it as U+FFFD (as a browser's ``TextEncoder`` does), and a surrogate
    pair as its one character, instead of failing mid-answer with the connection cut."""
    body = b'{"text": "a \\ud800 b \\ud83d\\ude00 c"}'
    headers = {"Content-Type": "application/json"}
    response = await client.post("/api/streams/s-sur", content=body, headers=headers)
    assert response.status_code == 200
    assert response.text == "a \ufffd b \U0001f600 c"
    resumed = await client.get("/api/streams/s-sur", params={"resumeAt": "2"})
    assert resumed.status_code == 422  # done: nothing to resume
    assert await _status(client, "s-sur") == "done"


async def test_an_oversized_post_body_gets_413_and_creates_nothing(
    client: httpx.AsyncClient,
) -> None:
    """The router reads at most ``max_body_bytes`` (1 MiB by default) of a POST body: over
    it, with a ``Content-Length`` or chunked without one, the answer is 413 and no stream
    is created; a body within it still reaches the source (``await request.json()``)."""
    big = b'{"text": "' + b"x" * (1024 * 1024) + b'"}'

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    for name, content in (("sized", big), ("chunked", chunked())):
        response = await client.post(
            f"/api/streams/big-{name}",
            content=content,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413, name
        assert response.json() == {"detail": "body over 1048576 bytes"}
        assert await _status(client, f"big-{name}") is None
        assert (await client.get(f"/api/streams/big-{name}")).status_code == 404
    ok = await client.post("/api/streams/small", json={"text": "still fine"})
    assert ok.status_code == 200 and ok.text == "still fine"


def test_the_script_runs_standalone(tmp_path: Path) -> None:
    """``python examples/streams/app.py --host 127.0.0.1 --port N`` on the embedded log."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2_")}
    env.update(STREAM_CHUNKS="3", STREAM_TOKEN_DELAY_MS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    log = tmp_path / "app.log"
    command = [sys.executable, str(APP_SCRIPT), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            deadline = time.monotonic() + 20
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the example exited:\n{log.read_text()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/api/streams/probe/status").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"the example did not start:\n{log.read_text()}")
                time.sleep(0.05)
            post = http.post("/api/streams/cli")
            assert post.status_code == 200
            assert post.text == "".join(f"data: cli chunk {i}\n\n" for i in range(3))
            deadline = time.monotonic() + 5
            while http.get("/api/streams/cli/status").json()["status"] != "done":
                assert time.monotonic() < deadline, "the stream never became done"
                time.sleep(0.02)
            get = http.get("/api/streams/cli")
            assert (get.status_code, get.text) == (422, "Stream is already done")
        assert "MemoryBasin" in log.read_text()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_a_client_leaving_a_get_early_does_not_stop_the_stream(
    client: httpx.AsyncClient,
) -> None:
    async with client.stream("POST", "/api/streams/leave") as post:
        assert post.status_code == 200
        async with client.stream("GET", "/api/streams/leave") as get:
            assert get.status_code == 200
            async for _ in get.aiter_text():
                break  # the client goes away after its first chunk
        body = "".join([text async for text in post.aiter_text()])
    assert body == expected("leave")

    async def done() -> bool:
        return await _status(client, "leave") == "done"

    await eventually(done)
