"""End to end: TanStack AI's stock ``fetchServerSentEvents('/api/agui')`` against the example app.

The real ``ChatClient`` of ``@tanstack/ai-client`` 0.33.2 with the stock adapter and no custom
connection code (``tests/js/agui_chat_driver.mjs``), against ``examples/chat/app.py`` on
127.0.0.1, with storage on the embedded log and on ``HttpBasin`` → the S2-compatible test
server:

- the server drops the POST's connection mid-answer (the app's test-only fault injection):
  the client re-POSTs with ``Last-Event-ID`` by itself, gets the rest of the same run from the
  log, and ends with the whole answer once (the model ran once);
- a fresh client with ``persistence: true`` hydrates the thread mid-answer, joins the active
  run by its id and ends with the sender's transcript; after the run, a hydrate alone gives it;
  also from a second app process on the same S2 basin, which finds the run through S2 only;
- ``reload()`` sends the last user message again: the new answer replaces the old one, for
  the client and in the thread's hydration;
- a client tool round trip: the run pauses with a client-tool interrupt, the client runs the
  tool and resumes with ``parentRunId`` / ``resume``; a hydrating client sees the same state.

Transcripts are compared without ``createdAt`` (each client stamps its own messages).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import demo_text

REPO_ROOT = Path(__file__).resolve().parents[2]
AGUI_DRIVER = REPO_ROOT / "tests" / "js" / "agui_chat_driver.mjs"
API = "/api/agui"
USER_TEXT = "Tell me about durable streams"

Driver = Callable[..., dict[str, Any]]

BASINS = pytest.mark.parametrize("storage", ["embedded", "s2"])


def transcript(messages: list[dict[str, Any]]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Messages without ``createdAt`` (each client stamps its own)."""
    return [(m["id"], m["role"], m["parts"]) for m in messages]


@pytest.fixture(scope="module")
def full_text() -> str:
    return demo_text(USER_TEXT)


def _storage_env(storage: str, s2_server_url: str) -> dict[str, str]:
    if storage == "embedded":
        return {}
    return {
        "S2_ACCESS_TOKEN": "test",
        "S2_BASIN": f"e2e-agui-{uuid.uuid4().hex[:12]}",
        "S2_ACCOUNT_ENDPOINT": s2_server_url,
        "S2_BASIN_ENDPOINT": s2_server_url,
    }


@pytest.fixture(scope="module")
def agui_apps(start_app: Callable[..., Any], s2_server_url: str) -> Callable[[str], Any]:
    """``agui_apps(storage)``: the demo-model app with fault injection, one per storage."""
    apps: dict[str, Any] = {}

    def get(storage: str) -> Any:
        if storage not in apps:
            apps[storage] = start_app(
                CHAT_TOKEN_DELAY_MS="20",
                CHAT_FAULT_INJECTION="1",
                **_storage_env(storage, s2_server_url),
            )
        return apps[storage]

    return get


def _openai_chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    chunk = {"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return json.dumps({**chunk, "choices": [choice]})


def _tool_delta(**function: str) -> dict[str, Any]:
    call: dict[str, Any] = {"index": 0, "function": function}
    if "name" in function:
        call.update(id="call_capital", type="function")
    return {"tool_calls": [call]}


@pytest.fixture(scope="module")
def tool_recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``CHAT_RECORDINGS`` directory (OpenAI chunk JSONL) for a client tool round trip:
    answer 0 calls ``get_capital({"country": "France"})``, answer 1 answers in text."""
    directory = tmp_path_factory.mktemp("tool-recordings")
    call = [
        _openai_chunk({"role": "assistant", **_tool_delta(name="get_capital", arguments="")}),
        _openai_chunk(_tool_delta(arguments='{"country":')),
        _openai_chunk(_tool_delta(arguments='"France"}')),
        _openai_chunk({}, "tool_calls"),
    ]
    answer = [
        _openai_chunk({"role": "assistant", "content": ""}),
        *(_openai_chunk({"content": w}) for w in ["The capital ", "of France ", "is Paris."]),
        _openai_chunk({}, "stop"),
    ]
    (directory / "0-tool-call.jsonl").write_text("\n".join(call) + "\n")
    (directory / "1-answer.jsonl").write_text("\n".join(answer) + "\n")
    return directory


@pytest.fixture
def agui_driver(driver: Driver) -> Driver:
    """``agui_driver(app, scenario, **options)`` → the result of one driver scenario."""
    return functools.partial(driver, script=AGUI_DRIVER, package="@tanstack/ai-client")


@pytest.fixture
def thread(chat_id: str) -> str:
    return chat_id


def posts(client: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in client["requests"] if r["method"] == "POST"]


def text_of(message: dict[str, Any]) -> str:
    return "".join(p["content"] for p in message["parts"] if p["type"] == "text")


def hydrate(app: Any, thread: str) -> dict[str, Any]:
    with app.client() as http:
        response = http.get(API, params={"threadId": thread})
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


@BASINS
def test_a_stream_cut_mid_answer_is_resumed_by_the_stock_adapter_without_duplicates(
    agui_apps: Callable[[str], Any],
    agui_driver: Driver,
    thread: str,
    storage: str,
    full_text: str,
) -> None:
    app = agui_apps(storage)
    result = agui_driver(app, "send", thread=thread, text=USER_TEXT, cut_after_events=10)
    client = result["client"]
    assert (client["status"], client["error"], client["errors"]) == ("ready", None, [])
    first, second = posts(client)
    # The first response: run.accepted first, ids on every event, cut after 10 events.
    assert first["status"] == 200 and first["lastEventId"] is None
    assert client["customEvents"][0]["name"] == "run.accepted"
    assert client["chunkTypes"][:2] == ["CUSTOM", "RUN_STARTED"]
    assert len(first["ids"]) == 11  # ten whole events and the id of the half-sent one
    # The client's own reconnect: the same POST (same run id and body) with Last-Event-ID.
    last = first["ids"][-2]
    assert second["lastEventId"] == last
    assert (second["runId"], second["body"]) == (first["runId"], first["body"])
    assert second["status"] == 200
    assert int(second["ids"][0]) == int(last) + 1
    assert not set(first["ids"][:-1]) & set(second["ids"])
    # The same run: one RUN_STARTED, the request's ids echoed, the whole answer once.
    run_id = first["runId"]
    assert client["runStarted"] == [run_id]
    [terminal] = client["terminals"]
    assert (terminal["type"], terminal["runId"], terminal["threadId"]) == (
        "RUN_FINISHED",
        run_id,
        thread,
    )
    assert client["sessionGenerating"] == [True, False]
    assert [(m["role"], text_of(m)) for m in client["messages"]] == [
        ("user", USER_TEXT),
        ("assistant", full_text),
    ]
    # The log holds one answer: the model was not called again.
    stored = hydrate(app, thread)
    assert stored["activeRun"] is None
    assert transcript(stored["messages"]) == transcript(client["messages"])
    # The session routes read the same thread (the same S2 stream) the same way.
    with app.client() as http:
        session_view = http.get(f"/api/tanstack/chat/{thread}/messages").json()
    assert transcript(session_view) == transcript(client["messages"])


@BASINS
def test_a_fresh_client_with_persistence_hydrates_and_joins_the_active_run(
    agui_apps: Callable[[str], Any],
    agui_driver: Driver,
    thread: str,
    storage: str,
    full_text: str,
) -> None:
    app = agui_apps(storage)
    result = agui_driver(app, "hydrate-join", thread=thread, text=USER_TEXT, join_after=8)
    a, b, c, at_join = result["a"], result["b"], result["c"], result["atJoin"]
    assert at_join is not None and b is not None, "the answer ended before B attached"
    partial = text_of(at_join["aMessages"][-1])
    assert partial and full_text.startswith(partial) and len(partial) < len(full_text)
    assert (a["status"], a["error"]) == ("ready", None)
    run_id = posts(a)[0]["runId"]

    # B: GET ?threadId= (JSON) said the run is active; GET ?offset=-1&runId= replayed it live.
    hydrated, joined = b["requests"]
    assert (hydrated["method"], hydrated["accept"], hydrated["status"]) == (
        "GET",
        "application/json",
        200,
    )
    assert hydrated["url"] == f"{app.base_url}{API}?threadId={thread}"
    assert joined["url"] == f"{app.base_url}{API}?offset=-1&runId={run_id}"
    assert joined["status"] == 200 and joined["ids"] == posts(a)[0]["ids"]
    assert (b["status"], b["error"], b["sessionGenerating"]) == ("ready", None, [True, False])
    assert b["runStarted"] == [run_id]
    assert transcript(b["messages"]) == transcript(a["messages"])
    assert [(m["role"], text_of(m)) for m in b["messages"]] == [
        ("user", USER_TEXT),
        ("assistant", full_text),
    ]

    # C, after the run: the hydrate alone (no active run, nothing to join).
    assert [r["url"] for r in c["requests"]] == [f"{app.base_url}{API}?threadId={thread}"]
    assert transcript(c["messages"]) == transcript(a["messages"])
    assert c["sessionGenerating"] == []


def test_reload_replaces_the_answer_in_the_hydrated_thread(
    agui_apps: Callable[[str], Any], agui_driver: Driver, thread: str, full_text: str
) -> None:
    app = agui_apps("embedded")
    result = agui_driver(app, "reload", thread=thread, text=USER_TEXT)
    client, first, hydrated = result["client"], result["firstMessages"], result["hydrated"]
    assert (client["status"], client["error"], client["errors"]) == ("ready", None, [])
    first_post, second_post = posts(client)
    # reload() POSTs the same user message (same id) with nothing after it.
    assert [m["id"] for m in second_post["body"]["messages"]] == [first[0]["id"]]
    assert first_post["runId"] != second_post["runId"]
    assert [(m["role"], text_of(m)) for m in client["messages"]] == [
        ("user", USER_TEXT),
        ("assistant", full_text),
    ]
    assert client["messages"][1]["id"] != first[1]["id"]
    assert transcript(hydrated["messages"]) == transcript(client["messages"])
    assert transcript(hydrate(app, thread)["messages"]) == transcript(client["messages"])


def test_a_client_on_another_instance_hydrates_and_joins_through_s2(
    start_app: Callable[..., Any],
    s2_server_url: str,
    agui_driver: Driver,
    thread: str,
    full_text: str,
) -> None:
    """Two app processes on one S2 basin: B knows the run only from S2 (its run index)."""
    env = _storage_env("s2", s2_server_url)
    a_app = start_app(CHAT_TOKEN_DELAY_MS="20", **env)
    b_app = start_app(CHAT_TOKEN_DELAY_MS="20", **env)
    result = agui_driver(
        a_app, "hydrate-join", thread=thread, text=USER_TEXT, join_after=8, join_base=b_app.base_url
    )
    a, b, c = result["a"], result["b"], result["c"]
    assert result["atJoin"] is not None and b is not None, "the answer ended before B attached"
    run_id = posts(a)[0]["runId"]
    assert [r["url"] for r in b["requests"]] == [
        f"{b_app.base_url}{API}?threadId={thread}",
        f"{b_app.base_url}{API}?offset=-1&runId={run_id}",
    ]
    assert [r["status"] for r in b["requests"]] == [200, 200]
    assert (b["status"], b["error"], b["sessionGenerating"]) == ("ready", None, [True, False])
    assert transcript(b["messages"]) == transcript(a["messages"])
    assert text_of(b["messages"][-1]) == full_text
    assert transcript(c["messages"]) == transcript(a["messages"])


@BASINS
def test_a_client_tool_round_trip_and_its_hydrated_state(
    start_app: Callable[..., Any],
    s2_server_url: str,
    tool_recordings: Path,
    agui_driver: Driver,
    thread: str,
    storage: str,
) -> None:
    app = start_app(
        CHAT_TOKEN_DELAY_MS="2",
        CHAT_RECORDINGS=str(tool_recordings),
        **_storage_env(storage, s2_server_url),
    )
    result = agui_driver(app, "tool", thread=thread, text="What is the capital of France?")
    client, hydrated = result["client"], result["hydrated"]
    assert result["calls"] == [{"country": "France"}]
    assert (client["status"], client["error"]) == ("ready", None)
    first, second = posts(client)
    assert [t["name"] for t in first["body"]["tools"]] == ["get_capital"]
    # Run 1 pauses on a client-tool interrupt for the recorded call.
    paused = client["terminals"][0]
    [interrupt] = paused["outcome"]["interrupts"]
    assert paused["outcome"]["type"] == "interrupt" and paused["runId"] == first["runId"]
    assert interrupt["metadata"]["kind"] == "client_tool"
    assert interrupt["metadata"]["toolName"] == "get_capital"
    # Run 2: the client resumed it with the tool's output.
    assert second["body"]["parentRunId"] == first["runId"]
    assert second["body"]["resume"] == [
        {"interruptId": interrupt["id"], "payload": {"capital": "Paris"}, "status": "resolved"}
    ]
    assert second["body"]["messages"][-1]["role"] == "tool"
    assert client["runStarted"] == [first["runId"], second["runId"]]
    _, call_message, answer = client["messages"]
    call = next(p for p in call_message["parts"] if p["type"] == "tool-call")
    assert (call["name"], call["state"], call["output"]) == (
        "get_capital",
        "complete",
        {"capital": "Paris"},
    )
    assert text_of(answer) == "The capital of France is Paris."
    # A client hydrating the thread afterwards shows the same state.
    assert transcript(hydrated["messages"]) == transcript(client["messages"])
    stored = hydrate(app, thread)
    assert (stored["activeRun"], stored["interrupts"]) == (None, None)
    assert json.dumps(transcript(stored["messages"])) == json.dumps(transcript(client["messages"]))
