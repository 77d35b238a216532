"""Two instances of the example app sharing one S2 basin: stop anywhere, crash takeover.

Three processes: the bundled S2-compatible test server (``s2_server_url``) and two uvicorn
processes of ``examples/chat/app.py`` (A and B) storing chats in the same basin through
``HttpBasin``, as two servers behind a load balancer without sticky sessions would. Nothing
but S2 connects A and B.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from example_apps import ExampleApp, example_app, new_chat_id
from test_example_app_tanstack import run_chunks, transcript

from resumable_chat.chat.core import LOST_GENERATION_ERROR_TEXT

#: A short lease so the crash tests run in seconds; heartbeats come every lease / 4.
LEASE_MS = 1500
#: The takeover's confirmation window at that lease: two heartbeats (lease / 4 each).
CONFIRM_MS = 2 * LEASE_MS // 4
USER_TEXT = "Tell me about resumable streams."


def _user_message(text: str) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex[:8], "role": "user", "parts": [{"type": "text", "text": text}]}


def _tanstack_user(text: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex[:8],
        "role": "user",
        "parts": [{"type": "text", "content": text}],
    }


class SseReader(threading.Thread):
    """Reads one SSE response in a thread, keeping each ``data:`` payload and when it came.

    ``events``: ``(time.monotonic(), data)`` pairs; ``status``: the HTTP status;
    ``finished``: set when the response ended (or failed: ``error``).
    """

    def __init__(self, base_url: str, method: str, url: str, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.base_url, self.method, self.url, self.kwargs = base_url, method, url, kwargs
        self.events: list[tuple[float, str]] = []
        self.status: int | None = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self.opened = threading.Event()
        self._lock = threading.Condition()
        self._client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(10.0, read=30.0))

    def run(self) -> None:
        try:
            with self._client.stream(self.method, self.url, **self.kwargs) as response:
                self.status = response.status_code
                self.opened.set()
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        with self._lock:
                            self.events.append((time.monotonic(), line[6:]))
                            self._lock.notify_all()
        except BaseException as exc:  # reported to the test
            self.error = exc
        finally:
            self.opened.set()
            self.finished.set()
            with self._lock:
                self._lock.notify_all()
            self._client.close()

    def chunks(self) -> list[dict[str, Any]]:
        """The JSON payloads so far (``[DONE]`` left out)."""
        with self._lock:
            return [json.loads(d) for _, d in self.events if d.startswith("{")]

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float) -> float:
        """Wait until ``predicate(chunks)`` holds; return when (monotonic). Fails on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                chunks = [json.loads(d) for _, d in self.events if d.startswith("{")]
                if predicate(chunks):
                    return self.events[-1][0] if self.events else time.monotonic()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.finished.is_set() and not predicate(chunks)):
                    pytest.fail(
                        f"{self.method} {self.base_url}{self.url}: condition not met "
                        f"(status {self.status}, error {self.error!r}); got {chunks[-5:]}"
                    )
                self._lock.wait(min(remaining, 0.1))

    def close(self) -> None:
        """Stop reading (an open replay never ends by itself)."""
        self._client.close()


def _deltas(chunks: list[dict[str, Any]]) -> int:
    return sum(c["type"] in ("text-delta", "TEXT_MESSAGE_CONTENT") for c in chunks)


def _pair_env(s2_server_url: str) -> dict[str, str]:
    return {
        "CHAT_TOKEN_DELAY_MS": "40",
        "CHAT_LEASE_MS": str(LEASE_MS),
        "S2_ACCESS_TOKEN": "test",
        "S2_BASIN": f"multi-{uuid.uuid4().hex[:12]}",
        "S2_ACCOUNT_ENDPOINT": s2_server_url,
        "S2_BASIN_ENDPOINT": s2_server_url,
    }


@pytest.fixture(scope="module")
def two_apps(
    start_app: Callable[..., ExampleApp], s2_server_url: str
) -> tuple[ExampleApp, ExampleApp]:
    """Instances A and B of the example app on one basin of the S2 test server (per module)."""
    env = _pair_env(s2_server_url)
    return start_app(**env), start_app(**env)


@pytest.fixture
def doomed_apps(s2_server_url: str, tmp_path: Any) -> Iterator[tuple[ExampleApp, ExampleApp]]:
    """A fresh A and B for one test that kills A."""
    env = _pair_env(s2_server_url)
    with example_app(env, tmp_path) as a, example_app(env, tmp_path) as b:
        yield a, b


# -- stop from the other instance ----------------------------------------------------------


#: A question the demo model repeats: an answer of about 200 chunks, so a stop after 80 of
#: them finds the claim behind the stopping instance's first read of the tail (64 records).
LONG_TEXT = " ".join(["Tell me about resumable streams once more"] * 18)


@pytest.mark.parametrize(("text", "before_stop"), [(USER_TEXT, 3), (LONG_TEXT, 80)])
def test_ai_sdk_stop_on_b_stops_the_generation_on_a(
    two_apps: tuple[Any, Any], text: str, before_stop: int
) -> None:
    a, b = two_apps
    chat = new_chat_id("multi-stop")
    body = {"id": chat, "messages": [_user_message(text)], "trigger": "submit-message"}
    live = SseReader(a.base_url, "POST", "/api/chat", json=body)
    live.start()
    live.wait_for(lambda c: _deltas(c) >= before_stop, 20)
    follower = SseReader(b.base_url, "GET", f"/api/chat/{chat}/stream")
    follower.start()
    follower.opened.wait(10)
    assert follower.status == 200
    follower.wait_for(lambda c: _deltas(c) >= before_stop + 1, 10)
    with httpx.Client(base_url=b.base_url) as client:
        assert client.delete(f"/api/chat/{chat}/stream").status_code == 202
    for reader in (live, follower):
        assert reader.finished.wait(10), "the answer did not end after the stop"
        chunks = reader.chunks()
        assert chunks[-1] == {"type": "abort"}
        assert [c["type"] for c in chunks].count("abort") == 1
        assert "finish" not in [c["type"] for c in chunks]
        assert reader.events[-1][1] == "[DONE]"
    assert live.chunks()[-5:] == follower.chunks()[-5:]
    # The model source on A was closed early (the demo model logs it).
    deadline = time.monotonic() + 5
    while "the answer was stopped" not in a.log_tail(20000):
        assert time.monotonic() < deadline, a.log_tail()
        time.sleep(0.05)
    with httpx.Client(base_url=b.base_url) as client:
        assert client.delete(f"/api/chat/{chat}/stream").status_code == 204
        assert client.get(f"/api/chat/{chat}/stream").status_code == 204
        history = client.get(f"/api/chat/{chat}/messages").json()
    answer = "".join(p.get("text", "") for p in history[-1]["parts"] if p["type"] == "text")
    assert answer and answer == "".join(
        c["delta"] for c in live.chunks() if c["type"] == "text-delta"
    )


def test_tanstack_stop_on_b_stops_the_run_on_a(two_apps: tuple[Any, Any]) -> None:
    a, b = two_apps
    chat = new_chat_id("multi-ts-stop")
    follower = SseReader(b.base_url, "GET", f"/api/tanstack/chat/replay?id={chat}")
    follower.start()
    follower.opened.wait(10)
    with httpx.Client(base_url=a.base_url) as client:
        posted = client.post(
            "/api/tanstack/chat", json={"id": chat, "messages": [_tanstack_user(USER_TEXT)]}
        )
    assert posted.status_code == 202
    follower.wait_for(lambda c: _deltas(c) >= 4, 10)
    with httpx.Client(base_url=b.base_url) as client:
        assert client.request("DELETE", "/api/tanstack/chat", json={"id": chat}).status_code == 202
    follower.wait_for(lambda c: c[-1]["type"] == "RUN_FINISHED", 10)
    chunks = follower.chunks()
    run_id = next(c["runId"] for c in chunks if c["type"] == "RUN_STARTED")
    assert chunks[-1]["runId"] == run_id and chunks[-1]["finishReason"] == "stop"
    assert sum(c["type"] in ("RUN_FINISHED", "RUN_ERROR") for c in chunks) == 1
    follower.close()
    deadline = time.monotonic() + 5
    while "the answer was stopped" not in a.log_tail(20000):
        assert time.monotonic() < deadline, a.log_tail()
        time.sleep(0.05)


def _answer_on_a_followed_on_b(a: Any, b: Any, prefix: str) -> tuple[str, SseReader, SseReader]:
    """A new chat's first answer, live on A, followed from B; returns once B has 5 deltas."""
    chat = new_chat_id(prefix)
    body = {"id": chat, "messages": [_user_message(USER_TEXT)], "trigger": "submit-message"}
    live = SseReader(a.base_url, "POST", "/api/chat", json=body)
    live.start()
    live.wait_for(lambda c: _deltas(c) >= 3, 10)
    follower = SseReader(b.base_url, "GET", f"/api/chat/{chat}/stream")
    follower.start()
    follower.wait_for(lambda c: _deltas(c) >= 5, 10)
    return chat, live, follower


def _next_turn(app: Any, chat: str, history: list[dict[str, Any]], text: str) -> SseReader:
    """POST the next turn on ``app`` and wait until its answer finished normally."""
    body = {
        "id": chat,
        "messages": [*history, _user_message(text)],
        "trigger": "submit-message",
    }
    turn = SseReader(app.base_url, "POST", "/api/chat", json=body)
    turn.start()
    assert turn.finished.wait(20)
    assert turn.status == 200
    assert turn.chunks()[-1]["type"] == "finish"
    return turn


# -- crash takeover ------------------------------------------------------------------------


def test_ai_sdk_sigkill_mid_answer_ends_the_followers_answer_with_an_error(
    doomed_apps: tuple[Any, Any],
) -> None:
    a, b = doomed_apps
    chat, _, follower = _answer_on_a_followed_on_b(a, b, "multi-kill")
    a.process.kill()  # SIGKILL: no terminal, no fence, no goodbye
    killed_at = time.monotonic()
    a.process.wait(10)
    arrived = follower.wait_for(lambda c: c[-1]["type"] == "error", LEASE_MS / 1000 + 5)
    bound = (LEASE_MS + CONFIRM_MS) / 1000 + 1.0
    assert arrived - killed_at <= bound, "the error came later than lease + confirmation + 1 s"
    assert follower.finished.wait(5)
    chunks = follower.chunks()
    assert chunks[-1] == {"type": "error", "errorText": LOST_GENERATION_ERROR_TEXT}
    assert [c["type"] for c in chunks[-4:-2]] == ["text-end", "finish-step"]  # parts closed
    # and the answer's message says why it ended (metadata.error), live and in history
    lost = {"error": LOST_GENERATION_ERROR_TEXT}
    assert chunks[-2] == {"type": "message-metadata", "messageMetadata": lost}
    assert follower.events[-1][1] == "[DONE]"
    # The chat is not locked: a new turn on B runs to its end.
    history = httpx.get(f"{b.base_url}/api/chat/{chat}/messages").json()
    assert history[-1]["metadata"] == lost
    _next_turn(b, chat, history, "And again?")


def test_tanstack_sigkill_mid_run_ends_the_subscription_run_with_run_error(
    doomed_apps: tuple[Any, Any],
) -> None:
    a, b = doomed_apps
    chat = new_chat_id("multi-ts-kill")
    follower = SseReader(b.base_url, "GET", f"/api/tanstack/chat/replay?id={chat}")
    follower.start()
    follower.opened.wait(10)
    with httpx.Client(base_url=a.base_url) as client:
        posted = client.post(
            "/api/tanstack/chat", json={"id": chat, "messages": [_tanstack_user(USER_TEXT)]}
        )
    assert posted.status_code == 202
    follower.wait_for(lambda c: _deltas(c) >= 5, 10)
    a.process.kill()
    killed_at = time.monotonic()
    arrived = follower.wait_for(lambda c: c[-1]["type"] == "RUN_ERROR", LEASE_MS / 1000 + 5)
    assert arrived - killed_at <= (LEASE_MS + CONFIRM_MS) / 1000 + 1.0
    chunks = follower.chunks()
    run_id = next(c["runId"] for c in chunks if c["type"] == "RUN_STARTED")
    assert chunks[-1]["runId"] == run_id
    assert chunks[-1]["message"] == LOST_GENERATION_ERROR_TEXT
    with httpx.Client(base_url=b.base_url) as client:
        again = client.post(
            "/api/tanstack/chat", json={"id": chat, "messages": [_tanstack_user("Again?")]}
        )
    assert again.status_code == 202
    follower.wait_for(lambda c: c[-1]["type"] == "RUN_FINISHED", 20)
    follower.close()


def _text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


def _stored_text(message: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in message["parts"] if p["type"] == "text")


def test_a_frozen_instance_is_taken_over_and_writes_nothing_when_it_wakes(
    doomed_apps: tuple[Any, Any],
) -> None:
    """A zombie writer: A freezes mid-answer (SIGSTOP, as a stalled VM or a blocked event loop
    would) for longer than the lease. B closes the answer as lost and answers the next turn.
    When A wakes (SIGCONT) it is fenced out: its live client ends with the lost error, none of
    what A produced after the takeover reaches the log, and the chat works on both instances."""
    a, b = doomed_apps
    chat, live, follower = _answer_on_a_followed_on_b(a, b, "multi-freeze")
    os.kill(a.process.pid, signal.SIGSTOP)
    try:
        follower.wait_for(lambda c: c[-1]["type"] == "error", LEASE_MS / 1000 + 5)
        history = httpx.get(f"{b.base_url}/api/chat/{chat}/messages", timeout=10).json()
        second = _next_turn(b, chat, history, "And again?")
    finally:
        os.kill(a.process.pid, signal.SIGCONT)
    assert live.finished.wait(10), "the frozen instance's live answer did not end"
    chunks = live.chunks()
    assert chunks[-1] == {"type": "error", "errorText": LOST_GENERATION_ERROR_TEXT}
    assert live.events[-1][1] == "[DONE]"
    # The log holds the answer up to the takeover (a prefix of what A sent live), then B's turn.
    with httpx.Client(timeout=10) as client:
        on_a = client.get(f"{a.base_url}/api/chat/{chat}/messages").json()
        on_b = client.get(f"{b.base_url}/api/chat/{chat}/messages").json()
    assert on_a == on_b
    assert [m["role"] for m in on_b] == ["user", "assistant", "user", "assistant"]
    assert on_b[1]["metadata"] == {"error": LOST_GENERATION_ERROR_TEXT}
    stored = _stored_text(on_b[1])
    assert stored == _text(follower.chunks())
    assert _text(chunks).startswith(stored)
    assert _stored_text(on_b[3]) == _text(second.chunks())
    _next_turn(a, chat, on_a, "Once more?")  # A takes the next turn


# -- the real JS clients across the two instances ------------------------------------------


@pytest.mark.parametrize("package", ["ai", "ai-v5", "ai-v5-0"])
def test_ai_sdk_client_resumes_on_b_an_answer_generated_on_a(
    two_apps: tuple[Any, Any], driver: Callable[..., dict[str, Any]], package: str
) -> None:
    a, b = two_apps
    chat = new_chat_id(f"multi-js-{package}")
    result = driver(
        a,
        "send-resume",
        package=package,
        chat=chat,
        text=USER_TEXT,
        resume_after_deltas=5,
        second_base=b.base_url,
    )
    first, second = result["first"], result["second"]
    assert second is not None, "the answer ended before the resume point"
    assert (first["status"], first["error"]) == ("ready", None)
    assert (second["status"], second["error"]) == ("ready", None)
    assert any(b.base_url in r["url"] for r in second["requests"])
    assert second["messages"] == first["messages"]


def test_tanstack_client_joins_on_b_a_run_started_on_a(
    two_apps: tuple[Any, Any], tanstack_driver: Callable[..., dict[str, Any]]
) -> None:
    a, b = two_apps
    chat = new_chat_id("multi-js-ts")
    result = tanstack_driver(
        a, "join", chat=chat, text=USER_TEXT, join_after=6, second_base=b.base_url
    )
    joined, sender = result["b"], result["a"]
    assert joined is not None, "the run ended before the join point"
    assert any(b.base_url in r["url"] for r in joined["requests"])
    assert transcript(joined["messages"]) == transcript(sender["messages"])  # not createdAt
    assert run_chunks(joined) == run_chunks(sender)  # the whole run, each chunk once
    assert joined["sessionGenerating"] == [True, False]


# -- the first turn of a chat, sent to both instances at once ------------------------------


def test_two_instances_never_both_win_the_first_turn(two_apps: tuple[Any, Any]) -> None:
    """The same first turn POSTed to A and B at the same moment, for many fresh chats: on
    every chat exactly one instance answers 200 and the other 409, and the log holds exactly
    one generation (a claim is conditioned on exactly what it read, in one read)."""
    a, b = two_apps
    chats = [new_chat_id("multi-race") for _ in range(24)]
    results: dict[tuple[str, str], int] = {}
    barrier = threading.Barrier(2 * len(chats))

    def post(app: Any, chat: str) -> None:
        body = {"id": chat, "messages": [_user_message(USER_TEXT)], "trigger": "submit-message"}
        with httpx.Client(base_url=app.base_url, timeout=30) as client:
            barrier.wait()
            response = client.post("/api/chat", json=body)
            results[(app.base_url, chat)] = response.status_code

    threads = [threading.Thread(target=post, args=(app, chat)) for chat in chats for app in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for chat in chats:
        statuses = sorted((results[(a.base_url, chat)], results[(b.base_url, chat)]))
        assert statuses == [200, 409], f"{chat}: {statuses}"
    for chat in chats:  # one generation each, as the winner's replay-able history shows
        with httpx.Client(base_url=a.base_url, timeout=10) as client:
            messages = client.get(f"/api/chat/{chat}/messages").json()
        assert [m["role"] for m in messages] == ["user", "assistant"], messages
