"""The example app fails fast on a misconfigured S2, and says which kind of failure it is.

``python examples/chat/app.py`` with a refused token, an invalid basin name, a missing basin
or an unreachable endpoint exits at start-up with one clear line naming the cause (and no
traceback). With the check turned off (``CHAT_STARTUP_CHECK=0``) it starts, and the chat
routes answer 500 without ``Retry-After`` for the permanent mistakes and 503 with it for the
unreachable endpoint. The S2 side is the bundled S2 test server, the app a real subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from example_apps import APP_SCRIPT, REPO_ROOT, app_env

from resumable_chat.testing.app_server import free_port, serve_app
from resumable_chat.testing.s2_server import create_app as create_s2_app

pytestmark = pytest.mark.timeout(90)

USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}


@contextlib.asynccontextmanager
async def s2_servers() -> AsyncIterator[dict[str, str]]:
    """Two S2 test servers: one that wants the token ``right``, one without auto-created
    basins; plus an endpoint where nothing listens."""
    async with (
        serve_app(create_s2_app(access_token="right")) as with_token,
        serve_app(create_s2_app(auto_create_basins=False)) as without_basins,
    ):
        yield {
            "token": with_token,
            "no-basins": without_basins,
            "nothing": f"http://127.0.0.1:{free_port()}",
        }


def s2_env(endpoint: str, *, token: str = "t", basin: str = "startup-basin") -> dict[str, str]:
    return {
        "S2_ACCESS_TOKEN": token,
        "S2_BASIN": basin,
        "S2_ACCOUNT_ENDPOINT": endpoint,
        "S2_BASIN_ENDPOINT": endpoint,
    }


CASES = {
    # name: (server, env options, exit status, words of the one line)
    "refused-token": ("token", {"token": "wrong"}, 1, "S2_ACCESS_TOKEN"),
    "bad-basin-name": ("token", {"token": "right", "basin": "chats"}, 2, "8 to 48 characters"),
    "missing-basin": ("no-basins", {}, 1, "does not exist"),
    "unreachable": ("nothing", {}, 1, "S2_BASIN_ENDPOINT"),
}


async def run_app(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(APP_SCRIPT),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        cwd=REPO_ROOT,
        env=app_env(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def test_a_misconfigured_app_exits_at_start_up_with_one_clear_line() -> None:
    async with s2_servers() as servers:

        async def start(server: str, options: dict[str, Any]) -> tuple[int | None, str]:
            process = await run_app(s2_env(servers[server], **options), free_port())
            try:
                output, _ = await asyncio.wait_for(process.communicate(), 30)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            return process.returncode, output.decode(errors="replace")

        results = await asyncio.gather(
            *(start(server, options) for server, options, _, _ in CASES.values())
        )
    for (name, (_, _, status, words)), (code, output) in zip(CASES.items(), results, strict=True):
        errors = [line for line in output.splitlines() if line.startswith("ERROR")]
        assert code == status, (name, output)
        assert len(errors) == 1 and "cannot start: " in errors[0], (name, output)
        assert words in errors[0], (name, errors[0])
        assert "Traceback" not in output and "wrong" not in output, (name, output)


@contextlib.asynccontextmanager
async def running_app(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The example app with ``env``, once its home page answers; stopped on exit."""
    port = free_port()
    process = await run_app(env, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(400):
                if process.returncode is not None:
                    output = await process.stdout.read() if process.stdout else b""
                    pytest.fail(f"the app exited: {output.decode(errors='replace')}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            yield client
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


REQUESTS = [
    ("POST", "/api/chat", {"id": "c1", "messages": [USER]}),
    ("GET", "/api/chat/c1/messages", None),
    ("GET", "/api/tanstack/chat/replay?id=c1", None),
    ("POST", "/api/agui", {"threadId": "c1", "messages": [{"id": "u", "role": "user"}]}),
]


async def test_with_the_check_off_permanent_is_500_and_unreachable_is_503() -> None:
    async with s2_servers() as servers:

        async def answers(server: str, options: dict[str, Any]) -> list[httpx.Response]:
            env = {**s2_env(servers[server], **options), "CHAT_STARTUP_CHECK": "0"}
            async with running_app(env) as client:
                return [
                    await client.request(method, path, json=body) for method, path, body in REQUESTS
                ]

        refused, missing, down = await asyncio.gather(
            answers("token", {"token": "wrong"}),
            answers("no-basins", {}),
            answers("nothing", {}),
        )
    for response in refused + missing:
        assert response.status_code == 500, (response.request.url, response.text)
        assert "retry-after" not in response.headers
        assert "misconfigured" in response.json()["detail"]
    for response in down:
        assert response.status_code == 503, (response.request.url, response.text)
        assert response.headers["retry-after"] == "1"
