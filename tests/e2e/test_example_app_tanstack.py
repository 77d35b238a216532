"""End to end: the example app's TanStack AI routes with the real ``ChatClient`` of
``@tanstack/ai-client`` 0.33.2, 0.22.1 and 0.10.0 on the adapter the package ships
(``resumable_chat/static/tanstack-connection.js``), driven by ``tests/js/tanstack_chat_driver.mjs``.

Covers: a live client sends and gets the full answer with ``sessionGenerating`` true then
false; a client subscribing afterwards gets one ``MESSAGES_SNAPSHOT`` equal to the sender's
transcript, also after the sender's ``reload()`` (the new answer replaces the old); a client
joining mid-answer ends with the same transcript; a cut subscription resumes with
``from=<last id>`` without duplicates; stop mid-answer ends the run with ``finishReason:
"stop"`` (DELETE 202, then 204); a second POST during a run gets 409 and the running one stays
stoppable; the page and the adapter are served; the adapter's own contract (SSE parsing,
cursor URLs, 204, reconnects) against a scripted fetch; send + join with storage on the
S2-compatible test server (``HttpBasin``).

Transcripts are compared as ``(id, role, parts)``: ``createdAt`` is left out because the
sender's messages carry the client's own clock (its user message is created locally, its
assistant message when the first chunk arrived) while a snapshot carries the time the server's
fold saw the stored chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import demo_text, example_models

REPO_ROOT = Path(__file__).resolve().parents[2]
API = "/api/tanstack/chat"
USER_TEXT = "Tell me about resumable streams"

V033, V022, V010 = "@tanstack/ai-client", "tanstack-ai-client-v022", "tanstack-ai-client-v010"
#: the current client; one that reads ``MESSAGES_SNAPSHOT`` entries as AG-UI ``Message`` only
#: (on ``@tanstack/ai`` 0.42.0); one that reads them as ``UIMessage`` only (0.18.0)
PACKAGES = pytest.mark.parametrize("package", [V033, V022, V010], ids=["v0.33", "v0.22", "v0.10"])

Driver = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def full_demo_text() -> str:
    """The demo model's whole answer to :data:`USER_TEXT`."""
    return demo_text(USER_TEXT)


def text_of(message: dict[str, Any]) -> str:
    """The concatenated text parts of a TanStack ``UIMessage`` (``content``, not ``text``)."""
    return "".join(p["content"] for p in message["parts"] if p["type"] == "text")


def transcript(messages: list[dict[str, Any]]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Messages without ``createdAt`` (see the module docstring)."""
    return [(m["id"], m["role"], m["parts"]) for m in messages]


def assert_full_answer(messages: list[dict[str, Any]], user_text: str, answer: str) -> None:
    """``[user, assistant]`` with the user's text and the whole answer, text parts only."""
    assert [m["role"] for m in messages] == ["user", "assistant"], messages
    user, assistant = messages
    assert user["parts"] == [{"type": "text", "content": user_text}]
    assert assistant["parts"] == [{"type": "text", "content": answer}]


def assert_partial(partial: str, full: str) -> None:
    """``partial`` is a non-empty strict prefix of ``full``: the answer was cut mid-way."""
    assert partial, "no text before the cut"
    assert full.startswith(partial), (partial, full)
    assert len(partial) < len(full), "the answer had already ended"


def post_body(chat_id: str, text: str) -> dict[str, Any]:
    """A TanStack session POST body with one user message."""
    message = {
        "id": f"u-{uuid.uuid4().hex[:8]}",
        "role": "user",
        "parts": [{"type": "text", "content": text}],
    }
    return {"id": chat_id, "messages": [message]}


def iter_events(response: httpx.Response) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """``(id, chunk)`` of each SSE event of ``response`` (LF framing, one ``data`` line)."""
    event_id: int | None = None
    for line in response.iter_lines():
        if line.startswith("id:"):
            event_id = int(line[3:].strip())
        elif line.startswith("data:"):
            yield event_id, json.loads(line[5:])
            event_id = None


def stop_until_idle(client: httpx.Client, chat_id: str) -> list[int]:
    """DELETE until 204; a run being stopped answers 202 until its end fence is written."""
    statuses = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        statuses.append(client.request("DELETE", API, json={"id": chat_id}).status_code)
        if statuses[-1] != 202:
            break
        time.sleep(0.05)
    return statuses


# -- the page and the adapter ------------------------------------------------------------


def test_page_and_adapter_are_served(demo_app: Any) -> None:
    with demo_app.client() as client:
        page = client.get("/tanstack")
        adapter = client.get("/tanstack-connection.js")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text and "/tanstack-connection.js" in page.text
    assert API in page.text
    assert adapter.status_code == 200
    assert adapter.headers["content-type"].startswith("text/javascript")
    shipped = REPO_ROOT / "src" / "resumable_chat" / "static" / "tanstack-connection.js"
    assert adapter.content == shipped.read_bytes()
    assert "export function createResumableConnection" in adapter.text


def test_adapter_contract(tanstack_driver: Driver) -> None:
    result = tanstack_driver(None, "adapter")
    failures = {name: case["error"] for name, case in result["cases"].items() if not case["ok"]}
    assert not failures, "\n\n".join(f"{name}:\n{error}" for name, error in failures.items())
    assert len(result["cases"]) >= 14


def test_example_converts_tanstack_messages_for_the_model() -> None:
    convert = example_models().tanstack_to_openai_messages
    messages = [
        {"id": "s", "role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"id": "u", "role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
        {
            "id": "a",
            "role": "assistant",
            "parts": [
                {"type": "thinking", "content": "hmm"},
                {"type": "text", "content": "Checking."},
                {
                    "type": "tool-call",
                    "id": "c1",
                    "name": "weather",
                    "arguments": '{"city":"Paris"}',
                    "state": "complete",
                    "output": {"tempC": 21},
                },
                {"type": "tool-result", "toolCallId": "c1", "content": '{"tempC":21}'},
                {"type": "tool-call", "id": "c2", "name": "noop", "arguments": "", "input": {}},
            ],
        },
        {"id": "x", "role": "tool", "parts": []},
    ]
    assert convert(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {"id": "c2", "type": "function", "function": {"name": "noop", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"tempC":21}'},
    ]


# -- send, then a later subscriber ---------------------------------------------------------


@PACKAGES
def test_send_then_a_new_client_gets_the_same_transcript_as_one_snapshot(
    demo_app: Any, tanstack_driver: Driver, chat_id: str, package: str, full_demo_text: str
) -> None:
    sent = tanstack_driver(demo_app, "send", package=package, chat=chat_id, text=USER_TEXT)

    client = sent["client"]
    assert (client["status"], client["error"]) == ("ready", None)
    assert client["sessionGenerating"] == [True, False]
    assert client["finishReason"] == "stop"
    assert client["terminal"]["type"] == "RUN_FINISHED"
    assert client["runStarted"] == [client["terminal"]["runId"]]
    assert_full_answer(client["messages"], USER_TEXT, full_demo_text)
    api = demo_app.base_url + API
    assert [(r["method"], r["url"], r["status"]) for r in client["requests"]] == [
        ("GET", f"{api}/replay?id={chat_id}", 200),
        ("POST", api, 202),
    ]

    later = tanstack_driver(demo_app, "subscribe", package=package, chat=chat_id)["client"]
    assert later["chunkTypes"] == ["MESSAGES_SNAPSHOT"]
    assert transcript(later["firstChunk"]["messages"]) == transcript(client["messages"])
    assert transcript(later["messages"]) == transcript(client["messages"])
    assert later["sessionGenerating"] == []
    assert (later["status"], later["error"]) == ("ready", None)

    with demo_app.client() as http:
        stored = http.get(f"{API}/{chat_id}/messages").json()
        assert http.request("DELETE", API, json={"id": chat_id}).status_code == 204
    assert transcript(stored) == transcript(client["messages"])


def test_two_turns_and_the_snapshot_of_both(
    demo_app: Any, tanstack_driver: Driver, chat_id: str
) -> None:
    texts = ["first question", "second question"]
    sent = tanstack_driver(demo_app, "send", chat=chat_id, texts=texts)["client"]
    assert (sent["status"], sent["error"]) == ("ready", None)
    assert sent["sessionGenerating"] == [True, False, True, False]
    assert len(set(sent["runStarted"])) == 2
    assert [(m["role"], text_of(m)) for m in sent["messages"]] == [
        ("user", texts[0]),
        ("assistant", demo_text(texts[0])),
        ("user", texts[1]),
        ("assistant", demo_text(texts[1])),
    ]
    later = tanstack_driver(demo_app, "subscribe", chat=chat_id)["client"]
    assert later["chunkTypes"] == ["MESSAGES_SNAPSHOT"]
    assert transcript(later["messages"]) == transcript(sent["messages"])


# -- reload: the last answer again ---------------------------------------------------------


@PACKAGES
def test_reload_replaces_the_answer_for_the_sender_and_in_the_snapshot(
    demo_app: Any, tanstack_driver: Driver, chat_id: str, package: str, full_demo_text: str
) -> None:
    """``ChatClient.reload()`` drops the answer and POSTs the same user message again; a
    client subscribing afterwards gets the reloading client's transcript: the question
    once, the new answer only."""
    result = tanstack_driver(demo_app, "reload", package=package, chat=chat_id, text=USER_TEXT)
    client, first = result["client"], result["firstMessages"]
    assert (client["status"], client["error"]) == ("ready", None)
    assert [(r["method"], r["status"]) for r in client["requests"]] == [
        ("GET", 200),
        ("POST", 202),
        ("POST", 202),
    ]
    assert len(set(client["runStarted"])) == 2
    assert_full_answer(first, USER_TEXT, full_demo_text)
    assert_full_answer(client["messages"], USER_TEXT, full_demo_text)
    assert client["messages"][0]["id"] == first[0]["id"]  # the same user message, sent again
    assert client["messages"][1]["id"] != first[1]["id"]  # a new answer in place of the old

    later = tanstack_driver(demo_app, "subscribe", package=package, chat=chat_id)["client"]
    assert later["chunkTypes"] == ["MESSAGES_SNAPSHOT"]
    assert transcript(later["messages"]) == transcript(client["messages"])
    with demo_app.client() as http:
        stored = http.get(f"{API}/{chat_id}/messages").json()
    assert transcript(stored) == transcript(client["messages"])


# -- join mid-answer -----------------------------------------------------------------------


def run_chunks(client: dict[str, Any]) -> list[str]:
    """The chunk types a client saw from the (last) run's ``RUN_STARTED`` on."""
    types = client["chunkTypes"]
    start = len(types) - 1 - types[::-1].index("RUN_STARTED")
    return types[start:]


def check_join(result: dict[str, Any], full_text: str) -> None:
    """Client B subscribed mid-answer and ended with client A's transcript."""
    a, b, at = result["a"], result["b"], result["atJoin"]
    assert at is not None and b is not None, "the answer ended before B joined"
    assert_partial(text_of(at["aMessages"][-1]), full_text)
    assert (a["status"], a["error"], a["sessionGenerating"]) == ("ready", None, [True, False])
    assert_full_answer(a["messages"], USER_TEXT, full_text)

    # First load during a run: the snapshot (the question), then the run raw from RUN_STARTED.
    assert b["chunkTypes"][:2] == ["MESSAGES_SNAPSHOT", "RUN_STARTED"]
    assert transcript(b["firstChunk"]["messages"]) == transcript(a["messages"][:1])
    assert b["sessionGenerating"] == [True, False]
    assert b["runStarted"] == a["runStarted"]
    assert b["finishReason"] == "stop"
    assert b["chunkTypes"].count("MESSAGES_SNAPSHOT") == 1
    assert run_chunks(b) == run_chunks(a)  # the whole run, each chunk once
    assert transcript(b["messages"]) == transcript(a["messages"])
    assert [r["url"] for r in b["requests"]] == [r["url"] for r in a["requests"][:1]]


@PACKAGES
def test_a_client_joining_mid_answer_ends_with_the_same_transcript(
    demo_app: Any, tanstack_driver: Driver, chat_id: str, package: str, full_demo_text: str
) -> None:
    result = tanstack_driver(
        demo_app, "join", package=package, chat=chat_id, text=USER_TEXT, join_after=8
    )
    check_join(result, full_demo_text)


# -- reconnect -----------------------------------------------------------------------------


@PACKAGES
def test_a_cut_subscription_resumes_from_the_last_id_without_duplicates(
    demo_app: Any, tanstack_driver: Driver, chat_id: str, package: str, full_demo_text: str
) -> None:
    result = tanstack_driver(
        demo_app, "reconnect", package=package, chat=chat_id, text=USER_TEXT, cut_after=8
    )
    client = result["client"]
    first, second = result["responses"]
    assert first["cut"] and first["partial"], "the first replay was not cut mid-event"
    last_id = first["lastIdBeforeCut"]
    assert first["ids"][-1] == last_id
    assert second["url"] == f"{demo_app.base_url}{API}/replay?id={chat_id}&from={last_id}"
    assert second["ids"][0] == last_id + 1
    assert result["duplicateIds"] == []
    assert second["ids"] == list(range(last_id + 1, last_id + 1 + len(second["ids"])))

    assert (client["status"], client["error"]) == ("ready", None)
    assert client["sessionGenerating"] == [True, False]
    assert_full_answer(client["messages"], USER_TEXT, full_demo_text)
    assert client["cursor"] == second["ids"][-1]


def test_raw_replay_from_the_last_id_has_no_duplicates(
    demo_app: Any, chat_id: str, full_demo_text: str
) -> None:
    with demo_app.client() as client:
        assert client.post(API, json=post_body(chat_id, USER_TEXT)).status_code == 202
        first: list[tuple[int | None, dict[str, Any]]] = []
        with client.stream("GET", f"{API}/replay", params={"id": chat_id}) as live:
            assert live.status_code == 200
            assert live.headers["content-type"].startswith("text/event-stream")
            for event in iter_events(live):
                first.append(event)
                if sum(c["type"] == "TEXT_MESSAGE_CONTENT" for _, c in first) == 6:
                    break
        last_id = first[-1][0]
        assert last_id is not None
        rest: list[tuple[int | None, dict[str, Any]]] = []
        params = {"id": chat_id, "from": str(last_id)}
        with client.stream("GET", f"{API}/replay", params=params) as live:
            assert live.status_code == 200
            for event in iter_events(live):
                rest.append(event)
                if event[1]["type"] == "RUN_FINISHED":
                    break
    ids = [i for i, _ in first + rest]
    assert None not in ids and len(ids) == len(set(ids)), ids
    assert rest[0][0] == last_id + 1
    assert ids == sorted(ids)
    chunks = [c for _, c in first + rest]
    assistant_ids = {
        c["messageId"]
        for c in chunks
        if c["type"] == "TEXT_MESSAGE_START" and c["role"] == "assistant"
    }
    assert len(assistant_ids) == 1
    answer = [
        c for c in chunks if c["type"] == "TEXT_MESSAGE_CONTENT" and c["messageId"] in assistant_ids
    ]
    assert all("content" not in c for c in answer)  # stored as deltas only
    assert "".join(c["delta"] for c in answer) == full_demo_text
    assert [c["type"] for c in chunks].count("RUN_FINISHED") == 1


# -- stop ----------------------------------------------------------------------------------


@PACKAGES
def test_stop_mid_answer_ends_the_run_with_finish_reason_stop(
    demo_app: Any, tanstack_driver: Driver, chat_id: str, package: str, full_demo_text: str
) -> None:
    result = tanstack_driver(
        demo_app, "stop", package=package, chat=chat_id, text=USER_TEXT, stop_after=5
    )
    client = result["client"]
    assert result["deleteStatus"] == 202
    assert (client["status"], client["error"]) == ("ready", None)
    assert client["sessionGenerating"] == [True, False]
    terminal = client["terminal"]
    assert terminal["type"] == "RUN_FINISHED"
    assert terminal["finishReason"] == "stop"
    assert terminal["runId"] == client["runStarted"][0]
    assert client["finishReason"] == "stop"
    answer = client["messages"][-1]
    assert answer["role"] == "assistant"
    assert_partial(text_of(answer), full_demo_text)
    assert client["requests"][-1]["method"] == "DELETE"

    with demo_app.client() as http:
        statuses = stop_until_idle(http, chat_id)
        assert statuses[-1] == 204 and set(statuses[:-1]) <= {202}, statuses
        stored = http.get(f"{API}/{chat_id}/messages").json()
        # The chat takes a new turn after a stop; a stop right after its 202 stops it too.
        assert http.post(API, json=post_body(chat_id, "again")).status_code == 202
        assert http.request("DELETE", API, json={"id": chat_id}).status_code == 202
        assert stop_until_idle(http, chat_id)[-1] == 204
    assert transcript(stored) == transcript(client["messages"])


# -- 409 while a run is live -----------------------------------------------------------------


def test_a_second_post_during_a_run_gets_409_and_the_run_stays_stoppable(
    demo_app: Any, tanstack_driver: Driver, chat_id: str
) -> None:
    with demo_app.client() as client:
        assert client.post(API, json=post_body(chat_id, USER_TEXT)).status_code == 202
        raw = client.post(API, json=post_body(chat_id, "me too"))
        assert raw.status_code == 409
        assert raw.text == "Stream already in use"

        rejected = tanstack_driver(demo_app, "send", chat=chat_id, text="and me")["client"]
        assert rejected["status"] == "error"
        assert rejected["error"] == "HTTP 409 Conflict"
        assert [r["status"] for r in rejected["requests"] if r["method"] == "POST"] == [409]

        assert client.request("DELETE", API, json={"id": chat_id}).status_code == 202
        assert stop_until_idle(client, chat_id)[-1] == 204
        stored = client.get(f"{API}/{chat_id}/messages").json()
    assert [(m["role"], bool(text_of(m))) for m in stored] == [
        ("user", True),
        ("assistant", True),
    ]
    assert text_of(stored[0]) == USER_TEXT


# -- storage on the S2-compatible test server ------------------------------------------------


@pytest.fixture(scope="module")
def s2_app(start_app: Callable[..., Any], s2_server_url: str) -> Any:
    """The example app storing chats through ``HttpBasin`` on the bundled S2 test server."""
    app = start_app(
        CHAT_TOKEN_DELAY_MS="20",
        S2_ACCESS_TOKEN="test",
        S2_BASIN=f"e2e-ts-{uuid.uuid4().hex[:12]}",
        S2_ACCOUNT_ENDPOINT=s2_server_url,
        S2_BASIN_ENDPOINT=s2_server_url,
    )
    assert "storage: HttpBasin" in app.log_tail(), app.log_tail()
    return app


def test_send_and_join_on_the_s2_test_server(
    s2_app: Any, tanstack_driver: Driver, chat_id: str, full_demo_text: str
) -> None:
    sent = tanstack_driver(s2_app, "send", chat=chat_id, text=USER_TEXT)["client"]
    assert (sent["status"], sent["error"], sent["sessionGenerating"]) == (
        "ready",
        None,
        [True, False],
    )
    assert_full_answer(sent["messages"], USER_TEXT, full_demo_text)

    joined = tanstack_driver(s2_app, "join", chat=f"{chat_id}-join", text=USER_TEXT, join_after=8)
    check_join(joined, full_demo_text)
