"""A graceful stop of uvicorn (SIGTERM) mid-answer loses no chunk: the live response runs to
the answer's end (or, after 10 s, to its stop terminal) so the live client is told how it ended,
and the app's shutdown drains persistence (``ResumableChat.aclose``), so the log on S2 holds
the whole answer and its end."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from test_example_app_ai_sdk import USER_TEXT, chat_body, demo_text

from resumable_chat.log import RecordKind, classify, read_range
from resumable_chat.s2 import HttpBasin
from resumable_chat.testing.pytest_plugin import unique_basin_name


def test_sigterm_mid_answer_loses_no_chunk(
    start_app: Callable[..., Any], s2_server_url: str
) -> None:
    basin_name = unique_basin_name("shutdown")
    app = start_app(
        CHAT_TOKEN_DELAY_MS="20",  # the demo answer takes ~1.7 s
        S2_ACCESS_TOKEN="test",
        S2_BASIN=basin_name,
        S2_ACCOUNT_ENDPOINT=s2_server_url,
        S2_BASIN_ENDPOINT=s2_server_url,
    )
    deltas_seen = 0
    live_data: list[str] = []
    with (
        app.client() as client,
        client.stream("POST", "/api/chat", json=chat_body("shutdown-1", USER_TEXT)) as live,
    ):
        assert live.status_code == 200
        for line in live.iter_lines():
            if line.startswith("data: "):
                live_data.append(line[6:])
            if '"text-delta"' in line:
                deltas_seen += 1
                if deltas_seen == 3:
                    app.process.send_signal(signal.SIGTERM)  # graceful stop, mid-answer
    # The live client was told how the answer ended, not cut off.
    assert live_data[-1] == "[DONE]", live_data[-3:]
    assert json.loads(live_data[-2])["type"] == "finish"
    # uvicorn re-raises the signal once its graceful shutdown is complete.
    assert app.process.wait(timeout=20) in (0, -signal.SIGTERM), app.log_tail()
    assert "Application shutdown complete" in app.log_tail(1_000_000)

    async def stored() -> list[Any]:
        basin = HttpBasin(
            basin_name,
            access_token="test",
            account_endpoint=s2_server_url,
            basin_endpoint=s2_server_url,
        )
        try:
            return await read_range(basin, "chat-shutdown-1", 0)
        finally:
            await basin.aclose()

    records = asyncio.run(stored())
    assert records[-1].headers and records[-1].body.startswith(b"end-"), app.log_tail()
    chunks = [json.loads(r.body) for r in records if classify(r) is RecordKind.DATA]
    text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    assert text == demo_text(USER_TEXT)
    assert chunks[-1]["type"] == "finish"


def test_sigterm_ends_followers_at_once_and_stops_a_long_answer_after_the_drain(
    start_app: Callable[..., Any],
) -> None:
    """A follower's response ends cleanly within a shutdown poll, so uvicorn does not wait
    on it; the live answer keeps streaming for the 10 s drain, then ends with the stop
    terminal."""
    app = start_app(CHAT_TOKEN_DELAY_MS="250")  # ~20 s: longer than the drain
    chat = "shutdown-2"
    follower_lines: list[str] = []
    follower_ended: list[float] = []

    def follow() -> None:
        with (
            httpx.Client(base_url=app.base_url, timeout=30) as client,
            client.stream("GET", f"/api/chat/{chat}/stream") as response,
        ):
            assert response.status_code == 200
            follower_lines.extend(response.iter_lines())  # raises if the body is cut
        follower_ended.append(time.monotonic())

    live_data: list[str] = []
    signalled = 0.0
    with (
        app.client() as client,
        client.stream("POST", "/api/chat", json=chat_body(chat, USER_TEXT)) as live,
    ):
        assert live.status_code == 200
        follower = threading.Thread(target=follow)
        for line in live.iter_lines():
            if line.startswith("data: "):
                live_data.append(line[6:])
            if '"text-delta"' in line and not signalled:
                follower.start()
                time.sleep(0.5)
                app.process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
    ended = time.monotonic()
    follower.join(5)
    assert follower_ended and follower_ended[0] - signalled < 2.0, follower_ended
    assert any(line.startswith("data: ") for line in follower_lines)
    assert 10.0 <= ended - signalled < 15.0
    assert live_data[-1] == "[DONE]"
    assert json.loads(live_data[-2]) == {"type": "abort"}
    assert app.process.wait(timeout=20) in (0, -signal.SIGTERM), app.log_tail()
