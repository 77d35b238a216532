"""Two instances of the example app on one S2 basin that acknowledges slowly (40 / 400 ms).

As :mod:`test_multi_instance`, but the bundled S2 server runs as its own process with
``--append-latency-ms`` (S2 Express acknowledges in about 40 ms, Standard in about 400 ms),
so what a client does the moment it has seen something (the end of an answer, its first
chunk) meets a log that is a round trip or two behind the live answer.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from example_apps import ExampleApp, example_app, stop_process

from helpers import parse_sse
from resumable_chat.testing.app_server import free_port

pytestmark = pytest.mark.timeout(180)

USER_TEXT = "Tell me about resumable streams."
_S2_STARTUP_TIMEOUT_S = 20.0


@contextlib.contextmanager
def slow_s2_server(append_latency_ms: float, log_dir: Path) -> Iterator[str]:
    """The bundled S2 server in its own process, acknowledging appends that many ms late."""
    port = free_port()
    command = [sys.executable, "-m", "resumable_chat.testing.s2_server"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--append-latency-ms", str(append_latency_ms)]
    url = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"s2-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + _S2_STARTUP_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the S2 server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        yield url
    finally:
        stop_process(process)


@contextlib.contextmanager
def app_pair(
    append_latency_ms: float, token_delay_ms: int, log_dir: Path
) -> Iterator[tuple[ExampleApp, ExampleApp]]:
    """Instances A and B of the example app on one basin of a slow S2 server."""
    with slow_s2_server(append_latency_ms, log_dir) as url:
        env = {
            "CHAT_TOKEN_DELAY_MS": str(token_delay_ms),
            "S2_ACCESS_TOKEN": "test",
            "S2_BASIN": f"slow-{uuid.uuid4().hex[:12]}",
            "S2_ACCOUNT_ENDPOINT": url,
            "S2_BASIN_ENDPOINT": url,
        }
        with example_app(env, log_dir) as a, example_app(env, log_dir) as b:
            yield a, b


@pytest.fixture(scope="module")
def express_apps(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ExampleApp, ExampleApp]]:
    """A and B on S2 acknowledging in 40 ms; the demo model answers at once (no pacing)."""
    with app_pair(40, 0, tmp_path_factory.mktemp("express")) as apps:
        yield apps


@pytest.fixture(scope="module")
def standard_apps(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ExampleApp, ExampleApp]]:
    """A and B on S2 acknowledging in 400 ms; the demo model paces chunks 20 ms apart."""
    with app_pair(400, 20, tmp_path_factory.mktemp("standard")) as apps:
        yield apps


def _user_message(text: str) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex[:8], "role": "user", "parts": [{"type": "text", "text": text}]}


def _answer_text(message: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in message["parts"] if p["type"] == "text")


def _live_text(sse: str) -> str:
    chunks = [json.loads(line[6:]) for line in sse.splitlines() if line.startswith("data: {")]
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


def _post_at_once(
    apps: tuple[ExampleApp, ExampleApp], body: dict[str, Any]
) -> dict[str, httpx.Response]:
    """POST ``body`` to ``/api/chat`` of both apps at the same moment; answers by base URL."""
    answers: dict[str, httpx.Response] = {}
    barrier = threading.Barrier(len(apps))

    def post(app: ExampleApp) -> None:
        with app.client(timeout=30) as client:
            barrier.wait()
            answers[app.base_url] = client.post("/api/chat", json=body)

    threads = [threading.Thread(target=post, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_the_next_turn_sent_when_the_answer_ends_is_accepted_on_either_instance(
    express_apps: tuple[ExampleApp, ExampleApp],
) -> None:
    """The first turn POSTed to A and B at the same moment: one 200, one 409. The moment
    the 200 response has ended (``[DONE]``), as a client that sends its next turn at once:
    the history on the other instance holds the question and the whole answer, and the next
    turn is accepted there (it was 409 ``Stream already in use`` while the answer's end was
    still on its way to S2)."""
    a, b = express_apps
    for round_ in range(12):
        chat = f"slow-race-{uuid.uuid4().hex[:10]}"
        first = _user_message(USER_TEXT)
        body = {"id": chat, "messages": [first], "trigger": "submit-message"}
        answers = _post_at_once((a, b), body)
        statuses = {url: r.status_code for url, r in answers.items()}
        assert sorted(statuses.values()) == [200, 409], f"round {round_}: {statuses}"
        winner = next(app for app in (a, b) if statuses[app.base_url] == 200)
        loser = b if winner is a else a
        assert answers[loser.base_url].text == "Stream already in use"
        live = answers[winner.base_url].text
        assert live.endswith("data: [DONE]\n\n")

        with loser.client() as client:
            history = client.get(f"/api/chat/{chat}/messages").json()
            assert [m["role"] for m in history] == ["user", "assistant"], f"round {round_}"
            assert history[0] == first
            assert _answer_text(history[1]) == _live_text(live)
            again = {
                "id": chat,
                "messages": [*history, _user_message("And again?")],
                "trigger": "submit-message",
            }
            second = client.post("/api/chat", json=again)
            assert second.status_code == 200, f"round {round_}: {second.text[:200]}"
            assert second.text.endswith("data: [DONE]\n\n")
            roles = [m["role"] for m in client.get(f"/api/chat/{chat}/messages").json()]
        assert roles == ["user", "assistant", "user", "assistant"], f"round {round_}"


@pytest.mark.parametrize("package", ["ai", "ai-v5-0", "ai-v7"])
def test_a_reload_on_the_other_instance_early_in_an_answer_shows_the_question(
    standard_apps: tuple[ExampleApp, ExampleApp],
    driver: Callable[..., dict[str, Any]],
    package: str,
) -> None:
    """``useChat`` on A sends; after its first text delta a fresh client on B (the page
    reloaded behind a load balancer) loads the history (``GET /messages``) and resumes: it
    must end with the same messages as the sender, the question included."""
    a, b = standard_apps
    chat = f"slow-reload-{package}-{uuid.uuid4().hex[:8]}"
    result = driver(
        a,
        "send-resume",
        package=package,
        chat=chat,
        text=USER_TEXT,
        resume_after_deltas=1,
        seed="server",
        second_base=b.base_url,
    )
    first, second = result["first"], result["second"]
    assert second is not None, "the answer ended before the reload"
    assert (first["status"], second["status"]) == ("ready", "ready")
    assert [m["role"] for m in second["messages"]] == ["user", "assistant"]
    assert second["messages"] == first["messages"]


@pytest.mark.parametrize("package", ["ai", "ai-v5", "ai-v5-0", "ai-v7"])
def test_use_chat_sending_its_next_turn_the_moment_an_answer_ends_is_answered(
    express_apps: tuple[ExampleApp, ExampleApp],
    driver: Callable[..., dict[str, Any]],
    package: str,
) -> None:
    """``useChat`` sends three turns, each the moment the one before settled (as
    ``sendAutomaticallyWhen`` continues after client-side tool results): every one is
    answered, and the other instance's history is what the client shows."""
    a, b = express_apps
    chat = f"slow-turns-{package}-{uuid.uuid4().hex[:8]}"
    result = driver(a, "send", package=package, chat=chat, texts=["One?", "Two?", "Three?"])
    assert (result["status"], result["error"]) == ("ready", None)
    assert [r["status"] for r in result["requests"]] == [200, 200, 200]
    assert [m["role"] for m in result["messages"]] == ["user", "assistant"] * 3
    with b.client() as client:
        assert client.get(f"/api/chat/{chat}/messages").json() == result["messages"]


def test_a_cursor_from_the_live_answer_on_a_resumes_on_b_while_s2_lags(
    standard_apps: tuple[ExampleApp, ExampleApp],
) -> None:
    """The live answer on A sends each chunk before S2 (400 ms) has stored it; a client that
    reconnects to B with the last id it saw (``?from=``) gets the rest of the answer, not
    416 "past the end" (which it got while the cursor was ahead of B's view of the log)."""
    a, b = standard_apps
    for round_ in range(3):
        chat = f"slow-cursor-{uuid.uuid4().hex[:10]}"
        body = {"id": chat, "messages": [_user_message(USER_TEXT)], "trigger": "submit-message"}
        with (
            a.client(timeout=30) as client_a,
            client_a.stream("POST", "/api/chat", json=body) as live,
        ):
            assert live.status_code == 200
            seen, lines = "", live.iter_text()
            while len([i for i, _ in parse_sse(seen) if i is not None]) < 4:
                seen += next(lines)
            cut = seen.rindex("\n\n") + 2  # the cursor from whole events only
            seen, rest = seen[:cut], seen[cut:]
            cursor = int([i for i, _ in parse_sse(seen) if i is not None][-1])
            with b.client(timeout=30) as client_b:
                resumed = client_b.get(f"/api/chat/{chat}/stream", params={"from": cursor})
            rest += "".join(lines)
        assert resumed.status_code == 200, f"round {round_}: {resumed.status_code} {resumed.text}"
        sent = parse_sse(seen + rest)
        assert parse_sse(resumed.text) == [
            (i, d) for i, d in sent if i is None or int(i) > cursor
        ], f"round {round_}"
        assert parse_sse(resumed.text)[-1] == (None, "[DONE]")
