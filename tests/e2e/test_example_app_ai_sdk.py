"""End to end: the example app (a real subprocess) with the real AI SDK clients, ``ai`` 6 and 5.

Covers the AI SDK HTTP contract of DESIGN.md §5: a full answer, a regenerated answer that
replaces it in history, a mid-answer resume by a second client, 204 once it ends, 409 while a
generation runs, stop via ``DELETE`` (202, then 204) ending with a ``finish`` chunk, history
from ``GET /api/chat/{id}/messages``, readable 4xx for bad requests, the page at ``/``; then a
resume with storage on the S2-compatible test server and a run on recorded OpenAI streams
(``CHAT_RECORDINGS``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import demo_text

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDINGS_DIR = REPO_ROOT.parent / "shared" / "fixtures" / "openai-streams"

PACKAGES = pytest.mark.parametrize("package", ["ai", "ai-v5", "ai-v5-0", "ai-v7"])
USER_TEXT = "Tell me about resumable streams"

Driver = Callable[..., dict[str, Any]]


def text_of(message: dict[str, Any]) -> str:
    """The concatenated text parts of a ``UIMessage``."""
    return "".join(p["text"] for p in message["parts"] if p["type"] == "text")


def chat_body(chat_id: str, text: str) -> dict[str, Any]:
    """A ``DefaultChatTransport`` POST body with one new user message."""
    message = {
        "id": f"u-{uuid.uuid4().hex[:8]}",
        "role": "user",
        "parts": [{"type": "text", "text": text}],
    }
    return {"id": chat_id, "messages": [message], "trigger": "submit-message"}


def iter_sse_data(response: httpx.Response) -> Iterator[str]:
    """The ``data`` of each SSE event of ``response`` (multi-line data joined; comments and
    other fields skipped), ``[DONE]`` included."""
    data: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


def assert_partial(partial: str, full: str) -> None:
    """``partial`` is a non-empty strict prefix of ``full``: the answer was cut mid-way."""
    assert partial, "no text before the cut"
    assert full.startswith(partial), (partial, full)
    assert len(partial) < len(full), "the answer had already ended"


def assert_idle(client: httpx.Client, chat_id: str) -> None:
    """Nothing runs on the chat: ``GET …/stream`` is 204 with an empty body."""
    response = client.get(f"/api/chat/{chat_id}/stream")
    assert response.status_code == 204, response.text
    assert response.content == b""


@pytest.fixture(scope="module")
def full_demo_text() -> str:
    """The demo model's whole answer to :data:`USER_TEXT`."""
    return demo_text(USER_TEXT)


# -- the page --------------------------------------------------------------------------------


def test_page_is_served(demo_app: Any) -> None:
    with demo_app.client() as client:
        response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text and "/api/chat" in response.text


# -- full answer, history --------------------------------------------------------------------


@PACKAGES
def test_send_receives_full_answer_and_history(
    demo_app: Any, driver: Driver, chat_id: str, package: str, full_demo_text: str
) -> None:
    result = driver(demo_app, "send", package=package, chat=chat_id, text=USER_TEXT)

    assert (result["status"], result["error"]) == ("ready", None)
    assert result["finishReason"] is None  # ai-sdk dialect: finish has no finishReason
    assert result["requests"] == [
        {"method": "POST", "url": f"{demo_app.base_url}/api/chat", "status": 200}
    ]
    user, assistant = result["messages"]
    assert (user["role"], text_of(user)) == ("user", USER_TEXT)
    assert assistant["role"] == "assistant"
    assert text_of(assistant) == full_demo_text
    assert result["chunkTypes"][0] == "start" and result["chunkTypes"][-1] == "finish"

    with demo_app.client() as client:
        assert_idle(client, chat_id)
        history = client.get(f"/api/chat/{chat_id}/messages")
    assert history.status_code == 200
    stored = history.json()
    assert [(m["id"], m["role"]) for m in stored] == [
        (user["id"], "user"),
        (assistant["id"], "assistant"),
    ]
    assert stored == result["messages"]


@PACKAGES
def test_regenerate_replaces_the_answer_in_history(
    demo_app: Any, driver: Driver, chat_id: str, package: str, full_demo_text: str
) -> None:
    """``regenerate()`` POSTs the messages up to the last user message with ``trigger:
    "regenerate-message"``; the history then holds the new answer in place of the old."""
    result = driver(demo_app, "send", package=package, chat=chat_id, text=USER_TEXT, regenerate=1)
    assert (result["status"], result["error"]) == ("ready", None)
    assert [r["status"] for r in result["requests"]] == [200, 200]
    (user, old), (same_user, new) = result["firstMessages"], result["messages"]
    assert same_user == user
    assert new["id"] != old["id"]
    assert text_of(new) == text_of(old) == full_demo_text
    with demo_app.client() as client:
        assert_idle(client, chat_id)
        stored = client.get(f"/api/chat/{chat_id}/messages").json()
    assert stored == result["messages"]


# -- resume ----------------------------------------------------------------------------------


def check_mid_answer_resume(
    app: Any, chat_id: str, result: dict[str, Any], seed: str, full_text: str
) -> None:
    """A second client resumed mid-answer and ended with the first client's message."""
    first, second, at = result["first"], result["second"], result["atResume"]
    assert at is not None and second is not None, "the answer ended before the resume"
    assert at["firstStatus"] == "streaming"
    assert (first["status"], first["error"]) == ("ready", None)
    user, answer = first["messages"]
    assert text_of(answer) == full_text
    assert_partial(text_of(at["firstMessages"][-1]), full_text)

    assert second["requests"] == [
        {"method": "GET", "url": f"{app.base_url}/api/chat/{chat_id}/stream", "status": 200}
    ]
    assert (second["status"], second["error"]) == ("ready", None)
    assert second["finishReason"] is None
    assert second["chunkTypes"][0] == "start"
    assert second["chunkTypes"].count("start") == 1
    assistants = [m for m in second["messages"] if m["role"] == "assistant"]
    assert len(assistants) == 1, second["messages"]
    assert assistants[0] == answer
    if seed == "server":
        # Seeded like a refreshed page: history from the server, which holds the question
        # but leaves the running answer to the resume (so no client version shows it twice).
        (seeded_user,) = second["seed"]
        assert seeded_user == user
        assert [m["id"] for m in second["messages"]] == [user["id"], answer["id"]]
    else:
        assert second["messages"] == [answer]

    with app.client() as client:
        assert_idle(client, chat_id)
        stored = client.get(f"/api/chat/{chat_id}/messages").json()
    assert stored == first["messages"]


@PACKAGES
@pytest.mark.parametrize("seed", ["server", "none"])
def test_second_client_resumes_mid_answer(
    demo_app: Any, driver: Driver, chat_id: str, package: str, seed: str, full_demo_text: str
) -> None:
    result = driver(
        demo_app,
        "send-resume",
        package=package,
        chat=chat_id,
        text=USER_TEXT,
        resume_after_deltas=8,
        seed=seed,
    )
    check_mid_answer_resume(demo_app, chat_id, result, seed, full_demo_text)


@PACKAGES
def test_resume_when_idle_is_204(demo_app: Any, driver: Driver, chat_id: str, package: str) -> None:
    result = driver(demo_app, "resume", package=package, chat=chat_id)
    # (ai 5.0.0 itself leaves its status at "submitted" after a 204; later 5.0.x fixed that)
    ready = "submitted" if package == "ai-v5-0" else "ready"
    assert (result["status"], result["error"], result["messages"]) == (ready, None, [])
    assert [r["status"] for r in result["requests"]] == [204]


# -- 409 while running -----------------------------------------------------------------------


@PACKAGES
def test_concurrent_post_gets_409(
    demo_app: Any, driver: Driver, chat_id: str, package: str, full_demo_text: str
) -> None:
    with demo_app.client() as client:
        with client.stream("POST", "/api/chat", json=chat_body(chat_id, USER_TEXT)) as live:
            assert live.status_code == 200
            events = iter_sse_data(live)
            seen = []
            for data in events:
                seen.append(data)
                if '"text-delta"' in data:
                    break

            rejected = driver(demo_app, "send", package=package, chat=chat_id, text="me too")
            assert rejected["status"] == "error"
            assert rejected["error"] == "Stream already in use"
            assert [r["status"] for r in rejected["requests"]] == [409]

            raw = client.post("/api/chat", json=chat_body(chat_id, "and me"))
            assert raw.status_code == 409
            assert raw.text == "Stream already in use"

            seen.extend(events)
        # The running answer was not disturbed by the rejected requests.
        assert seen[-1] == "[DONE]"
        chunks = [json.loads(d) for d in seen[:-1]]
        assert chunks[-1]["type"] == "finish"
        text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
        assert text == full_demo_text

        assert_idle(client, chat_id)
        stored = client.get(f"/api/chat/{chat_id}/messages").json()
    assert [(m["role"], text_of(m)) for m in stored] == [
        ("user", USER_TEXT),
        ("assistant", full_demo_text),
    ]


# -- stop ------------------------------------------------------------------------------------


@PACKAGES
def test_stop_via_delete(
    demo_app: Any, driver: Driver, chat_id: str, package: str, full_demo_text: str
) -> None:
    result = driver(
        demo_app, "send", package=package, chat=chat_id, text=USER_TEXT, stop_after_deltas=5
    )
    assert result["deleteStatus"] == 202
    assert (result["status"], result["error"]) == ("ready", None)
    # ``streamText`` ends an aborted stream with ``abort`` and no ``finish``: the client
    # records no finish reason (so no automatic follow-up request starts)
    assert result["finishReason"] is None
    assert result["chunkTypes"][-1] == "abort"
    answer = result["messages"][-1]
    assert_partial(text_of(answer), full_demo_text)
    assert [p.get("state") for p in answer["parts"] if p["type"] == "text"] == ["done"]

    with demo_app.client() as client:
        again = client.delete(f"/api/chat/{chat_id}/stream")
        assert again.status_code == 204
        assert_idle(client, chat_id)
        stored = client.get(f"/api/chat/{chat_id}/messages").json()
    assert stored == result["messages"]


def test_stop_raw_sse_ends_with_abort(demo_app: Any, chat_id: str, full_demo_text: str) -> None:
    with demo_app.client() as client:
        with client.stream("POST", "/api/chat", json=chat_body(chat_id, USER_TEXT)) as live:
            assert live.status_code == 200
            assert live.headers["content-type"].startswith("text/event-stream")
            assert live.headers["x-vercel-ai-ui-message-stream"] == "v1"
            events = iter_sse_data(live)
            seen, deltas = [], 0
            for data in events:
                seen.append(data)
                deltas += '"text-delta"' in data
                if deltas == 3:
                    break
            stop = client.delete(f"/api/chat/{chat_id}/stream")
            assert stop.status_code == 202
            seen.extend(events)

        assert seen[-1] == "[DONE]"
        chunks = [json.loads(d) for d in seen[:-1]]
        assert chunks[-2:] == [
            {"type": "message-metadata", "messageMetadata": {"stopped": True}},
            {"type": "abort"},
        ]
        types = [c["type"] for c in chunks]
        assert types.count("abort") == 1 and "finish" not in types
        assert types.index("text-end") < types.index("abort")
        text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
        assert_partial(text, full_demo_text)

        assert client.delete(f"/api/chat/{chat_id}/stream").status_code == 204
        assert_idle(client, chat_id)


# -- bad requests ----------------------------------------------------------------------------


def _big_body(chat_id: str) -> bytes:
    return json.dumps(chat_body(chat_id, "x" * (1024 * 1024 + 100))).encode()


def test_bad_requests_get_readable_4xx(demo_app: Any, chat_id: str, full_demo_text: str) -> None:
    good = chat_body(chat_id, USER_TEXT)
    user = good["messages"][0]
    cases: list[tuple[str, Any, int]] = [
        ("malformed JSON", b'{"id": "x", "messages": [', 400),
        ("not an object", b"[1, 2]", 422),
        ("missing id", {"messages": [user], "trigger": "submit-message"}, 422),
        ("missing messages", {"id": chat_id, "trigger": "submit-message"}, 422),
        ("no messages", {"id": chat_id, "messages": []}, 422),
        ("unknown role", {"id": chat_id, "messages": [{**user, "role": "robot"}]}, 422),
        ("bad chat id", {**good, "id": "../etc"}, 422),
        ("unknown trigger", {**good, "trigger": "nonsense"}, 422),
        ("oversized body", _big_body(chat_id), 413),
        ("oversized chunked body", iter([_big_body(chat_id)]), 413),
    ]
    with demo_app.client() as client:
        for name, body, status in cases:
            if isinstance(body, dict):
                response = client.post("/api/chat", json=body)
            else:
                headers = {"content-type": "application/json"}
                response = client.post("/api/chat", content=body, headers=headers)
            assert response.status_code == status, (name, response.text)
            assert response.headers["content-type"].startswith("application/json"), name
            detail = response.json()["detail"]
            if isinstance(detail, list):
                assert detail and all(e.get("msg") and "loc" in e for e in detail), (name, detail)
            else:
                assert isinstance(detail, str) and detail, (name, detail)

        # Nothing was written, and a normal chat works afterwards.
        assert client.get(f"/api/chat/{chat_id}/messages").json() == []
        assert_idle(client, chat_id)
        with client.stream("POST", "/api/chat", json=good) as live:
            assert live.status_code == 200
            seen = list(iter_sse_data(live))
        assert seen[-1] == "[DONE]"
        chunks = [json.loads(d) for d in seen[:-1]]
        assert chunks[-1]["type"] == "finish"
        assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == full_demo_text


# -- storage on the S2-compatible test server ------------------------------------------------


@pytest.fixture(scope="module")
def s2_app(start_app: Callable[..., Any], s2_server_url: str) -> Any:
    """The example app storing chats through ``HttpBasin`` on the bundled S2 test server."""
    app = start_app(
        CHAT_TOKEN_DELAY_MS="20",
        S2_ACCESS_TOKEN="test",
        S2_BASIN=f"e2e-{uuid.uuid4().hex[:12]}",
        S2_ACCOUNT_ENDPOINT=s2_server_url,
        S2_BASIN_ENDPOINT=s2_server_url,
    )
    assert "storage: HttpBasin" in app.log_tail(), app.log_tail()
    return app


@PACKAGES
def test_resume_mid_answer_on_s2_test_server(
    s2_app: Any, driver: Driver, chat_id: str, package: str, full_demo_text: str
) -> None:
    result = driver(
        s2_app,
        "send-resume",
        package=package,
        chat=chat_id,
        text=USER_TEXT,
        resume_after_deltas=8,
        seed="server",
    )
    check_mid_answer_resume(s2_app, chat_id, result, "server", full_demo_text)


# -- recorded OpenAI streams -----------------------------------------------------------------


def recording_text(path: Path) -> tuple[str, str]:
    """(content, reasoning_content) of a recorded OpenAI stream, each concatenated."""
    text, reasoning = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        chunk = json.loads(line)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or delta.get("reasoning") or "")
    return "".join(text), "".join(reasoning)


@PACKAGES
def test_first_answer_replays_first_recording(
    start_app: Callable[..., Any], driver: Driver, chat_id: str, package: str
) -> None:
    recordings = sorted(RECORDINGS_DIR.glob("*.jsonl"))
    if not recordings:
        pytest.skip(f"no recorded streams in {RECORDINGS_DIR}")
    # A fresh app per client package: the k-th answer of a process replays file k mod n.
    app = start_app(CHAT_RECORDINGS=str(RECORDINGS_DIR), CHAT_TOKEN_DELAY_MS="1")
    expected_text, expected_reasoning = recording_text(recordings[0])

    result = driver(app, "send", package=package, chat=chat_id, text="hi")

    assert (result["status"], result["error"]) == ("ready", None)
    answer = result["messages"][-1]
    assert answer["role"] == "assistant"
    assert text_of(answer) == expected_text
    reasoning = "".join(p["text"] for p in answer["parts"] if p["type"] == "reasoning")
    assert reasoning == expected_reasoning
