"""The durable AG-UI routes (``resumable_chat.fastapi.agui``) over real HTTP, scripted model.

What ``fetchServerSentEvents`` of ``@tanstack/ai-client`` 0.33 relies on
(``reference/wire-protocols.md`` §B.4, §B.9): ``run.accepted`` first, ``id:`` cursors, the
request's ids echoed, a ``Last-Event-ID`` re-POST read from the log without a second model
call, joins by run id, hydration, client-tool interrupts and resumes, and the 4xx answers.
Runs on every ``basin`` of the pytest plugin (embedded, ``HttpBasin`` → the S2 test server).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from chat_helpers import ScriptedModel, parse_sse, tanstack_run
from fastapi import FastAPI, HTTPException, Request

from helpers import package_garbage
from resumable_chat import ResumableChat, create_resumable_chat
from resumable_chat.chat.producer import StopSignal
from resumable_chat.fastapi.agui import AgUiRun, agui_router
from resumable_chat.log import Ownership, RecordKind, classify, read_range
from resumable_chat.protocols.agui.dialect import (
    AgUiTurn,
    apply_approval_responses,
    run_accepted,
    run_prelude,
    wire_to_ui_messages,
)
from resumable_chat.s2 import AppendInput, AppendRecord, Basin, MemoryBasin, fence_record, is_fence
from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan

API = "/api/agui"
WORDS = ["hel", "lo", " the", "re"]


@dataclass
class AgUiApp:
    client: httpx.AsyncClient
    chat: ResumableChat
    model: ScriptedModel
    basin: Basin
    runs: list[AgUiRun] = field(default_factory=list)
    authorized: list[tuple[str, str, str]] = field(default_factory=list)

    async def post(
        self, thread: str, run_id: str, messages: list[dict[str, Any]], **extra: Any
    ) -> httpx.Response:
        headers = {"X-Run-Id": run_id, **extra.pop("headers", {})}
        body = {"threadId": thread, "runId": run_id, "messages": messages, **extra}
        return await self.client.post(API, json=body, headers=headers)


@pytest.fixture
def make_agui_app(basin: Basin) -> Callable[..., Any]:
    """``async with make_agui_app(deny=...) as app``: the AG-UI routes on uvicorn."""

    @contextlib.asynccontextmanager
    async def factory(deny: set[str] | None = None, **options: Any) -> AsyncIterator[AgUiApp]:
        model = ScriptedModel()
        chat = create_resumable_chat(protocol="tanstack", mode="session", basin=basin, **options)
        app_state: list[AgUiApp] = []

        def source(run: AgUiRun, signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
            app_state[0].runs.append(run)
            return model.stream(run.messages, signal)

        def authorize(request: Request, thread_id: str) -> None:
            app_state[0].authorized.append((request.method, request.url.path, thread_id))
            if deny and thread_id in deny:
                raise HTTPException(403, "not yours")

        app = FastAPI()
        app.include_router(agui_router(chat, source, authorize=authorize))
        async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            state = AgUiApp(client, chat, model, basin)
            app_state.append(state)
            try:
                yield state
            finally:
                await chat.aclose(drain_timeout_s=2)

    return factory


def user(text: str, message_id: str = "u1") -> dict[str, Any]:
    """An AG-UI wire user message, as ``uiMessagesToWire`` sends it."""
    return {"id": message_id, "role": "user", "content": text}


def events(response_text: str) -> list[tuple[int, dict[str, Any]]]:
    """``(id, chunk)`` of every event; ``TEXT_MESSAGE_CONTENT`` without its running
    ``content`` (the live path sends it, the log keeps deltas only)."""
    out = []
    for event_id, data in parse_sse(response_text):
        chunk = json.loads(data)
        if chunk["type"] == "TEXT_MESSAGE_CONTENT":
            chunk.pop("content", None)
        out.append((int(event_id or -1), chunk))
    return out


async def stored(app: AgUiApp, thread: str) -> list[dict[str, Any]]:
    records = await read_range(app.basin, f"tanstack-{thread}", 0)
    return [json.loads(r.body) for r in records if classify(r) is RecordKind.DATA]


async def idle(app: AgUiApp) -> None:
    for _ in range(500):
        if not app.chat.engine.running:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the run did not finish")


async def first_events(app: AgUiApp, request: httpx.Request, count: int) -> list[Any]:
    """The first ``count`` events of a streamed response, then the connection is closed."""
    out: list[tuple[int, dict[str, Any]]] = []
    buffer = ""
    response = await app.client.send(request, stream=True)
    try:
        assert response.status_code == 200, response.status_code
        async with asyncio.timeout(5):
            async for text in response.aiter_text():
                buffer += text
                *blocks, buffer = buffer.split("\n\n")
                for block in blocks:
                    out.extend(events(block + "\n\n"))
                if len(out) >= count:
                    return out[:count]
    finally:
        await response.aclose()
    return out


# -- the live run --------------------------------------------------------------------------


async def test_post_streams_run_accepted_first_then_the_run_with_the_request_ids(
    make_agui_app,  # type: ignore[no-untyped-def]
) -> None:
    async with make_agui_app() as app:
        app.model.chunks = tanstack_run(WORDS, run_id="model-run")
        response = await app.post("t1", "run-a", [user("hi")], forwardedProps={"x": 1})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        got = events(response.text)
        ids = [i for i, _ in got]
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # every event has a cursor
        types = [c["type"] for _, c in got]
        assert types[:2] == ["CUSTOM", "RUN_STARTED"] and types[-1] == "RUN_FINISHED"
        assert got[0][1]["name"] == "run.accepted"
        for _, chunk in (got[1], got[-1]):
            assert (chunk["runId"], chunk["threadId"]) == ("run-a", "t1")
        assert "".join(c["delta"] for _, c in got if c["type"] == "TEXT_MESSAGE_CONTENT") == (
            "hello there"
        )
        run = app.runs[0]
        assert (run.thread_id, run.run_id, run.forwarded_props) == ("t1", "run-a", {"x": 1})
        assert run.messages[0]["parts"] == [{"type": "text", "content": "hi"}]
        await idle(app)
        log = await stored(app, "t1")
        assert [c["type"] for c in log[:4]] == [
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "CUSTOM",
        ]
        assert log[0]["role"] == "user"
        assert app.authorized == [("POST", API, "t1")]


async def test_a_reconnect_with_last_event_id_continues_the_same_run_from_the_log(
    make_agui_app,  # type: ignore[no-untyped-def]
) -> None:
    async with make_agui_app() as app:
        app.model.chunks = tanstack_run(WORDS)
        app.model.hold_at = 4  # after RUN_STARTED, TEXT_MESSAGE_START and two deltas
        body = {"threadId": "t1", "runId": "run-a", "messages": [user("hi")]}
        request = app.client.build_request("POST", API, json=body, headers={"X-Run-Id": "run-a"})
        seen = await first_events(app, request, 4)  # the connection drops here
        last_id = seen[-1][0]
        again = app.client.build_request(
            "POST", API, json=body, headers={"X-Run-Id": "run-a", "Last-Event-ID": str(last_id)}
        )
        resumed_task = asyncio.create_task(first_events(app, again, 100))
        await app.model.reached_hold.wait()
        app.model.gate.set()
        resumed = await resumed_task
        assert resumed[0][0] == last_id + 1
        assert [c["type"] for _, c in resumed][-1] == "RUN_FINISHED"
        both = [c for _, c in seen + resumed]
        text = "".join(c["delta"] for c in both if c["type"] == "TEXT_MESSAGE_CONTENT")
        assert text == "hello there"
        assert app.model.calls == 1 and len(app.runs) == 1
        await idle(app)
        log = await stored(app, "t1")
        assert sum(c["type"] == "RUN_STARTED" for c in log) == 1


async def test_join_by_run_id_from_the_start_from_a_cursor_and_from_now(
    make_agui_app,  # type: ignore[no-untyped-def]
) -> None:
    async with make_agui_app() as app:
        app.model.chunks = tanstack_run(WORDS)
        full = events((await app.post("t1", "run-a", [user("hi")])).text)
        await idle(app)
        joined = await app.client.get(API, params={"offset": "-1", "runId": "run-a"})
        assert joined.status_code == 200
        assert events(joined.text) == full
        cursor = full[3][0]
        rest = await app.client.get(API, params={"offset": str(cursor), "runId": "run-a"})
        assert events(rest.text) == full[4:]
        by_header = await app.client.get(
            API, params={"offset": "-1", "runId": "run-a"}, headers={"Last-Event-ID": str(cursor)}
        )
        assert events(by_header.text) == full[4:]
        now = await app.client.get(API, params={"offset": "now", "runId": "run-a"})
        assert (now.status_code, events(now.text)) == (200, [])
        unknown = await app.client.get(API, params={"offset": "-1", "runId": "run-zzz"})
        assert unknown.status_code == 404 and "run-zzz" in unknown.json()["detail"]
        other = await app.client.get(
            API, params={"offset": "-1", "runId": "run-a", "threadId": "t2"}
        )
        assert other.status_code == 404
        # A second run on the thread: each join gets its own run only.
        app.model.chunks = tanstack_run(["again"], message_id="a2")
        second = events((await app.post("t1", "run-b", [user("more", "u2")])).text)
        await idle(app)
        assert (
            events((await app.client.get(API, params={"offset": "-1", "runId": "run-a"})).text)
            == full
        )
        joined_b = await app.client.get(API, params={"offset": "-1", "runId": "run-b"})
        assert events(joined_b.text) == second
        assert ("GET", API, "t1") in app.authorized


async def test_hydrate_reports_the_active_run_then_the_folded_transcript(
    make_agui_app,  # type: ignore[no-untyped-def]
) -> None:
    async with make_agui_app() as app:
        empty = await app.client.get(API, params={"threadId": "nothing-here"})
        assert empty.json() == {
            "messages": [],
            "activeRun": None,
            "interrupts": None,
            "page": {"truncated": False},
        }
        app.model.chunks = tanstack_run(WORDS)
        app.model.hold_at = 4
        posting = asyncio.create_task(app.post("t1", "run-a", [user("hi")]))
        await app.model.reached_hold.wait()
        for _ in range(200):  # the records before the hold reach the log
            live = (await app.client.get(API, params={"threadId": "t1"})).json()
            last = live["messages"][-1:] or [{"parts": []}]
            if last[0]["parts"] == [{"type": "text", "content": "hello"}]:
                break
            await asyncio.sleep(0.01)
        assert live["activeRun"] == {"runId": "run-a"}
        assert [m["role"] for m in live["messages"]] == ["user", "assistant"]
        assert live["messages"][1]["parts"] == [{"type": "text", "content": "hello"}]
        conflict = await app.post("t1", "run-b", [user("me too", "u2")])
        assert (conflict.status_code, conflict.text) == (409, "Stream already in use")
        app.model.gate.set()
        await posting
        await idle(app)
        done = (await app.client.get(API, params={"threadId": "t1"})).json()
        assert done["activeRun"] is None and done["interrupts"] is None
        assert [(m["role"], m["parts"]) for m in done["messages"]] == [
            ("user", [{"type": "text", "content": "hi"}]),
            ("assistant", [{"type": "text", "content": "hello there"}]),
        ]


async def test_delete_stops_the_live_run_for_every_reader(
    make_agui_app,  # type: ignore[no-untyped-def]
) -> None:
    async with make_agui_app() as app:
        app.model.chunks = tanstack_run(WORDS)
        app.model.hold_at = 3
        posting = asyncio.create_task(app.post("t1", "run-a", [user("hi")]))
        await app.model.reached_hold.wait()
        assert (await app.client.delete(API, params={"threadId": "t1"})).status_code == 202
        got = events((await posting).text)
        assert got[-1][1]["type"] == "RUN_FINISHED"
        assert (got[-1][1]["finishReason"], got[-1][1]["runId"]) == ("stop", "run-a")
        await idle(app)
        assert (await app.client.delete(API, params={"threadId": "t1"})).status_code == 204


async def test_a_join_of_a_run_whose_writer_crashed_ends_with_its_error_terminal(
    make_agui_app,  # type: ignore[no-untyped-def]
) -> None:
    async with make_agui_app(lease_ms=300) as app:
        # What a process killed mid-answer leaves: claim, run.accepted, part of the run, index.
        stream = "tanstack-t1"
        claim = AppendInput([fence_record("session-dead")], match_seq_num=0, fencing_token="")
        await app.basin.append(stream, claim)
        run = [
            run_accepted("run-dead", "t1"),
            {"type": "RUN_STARTED", "runId": "run-dead", "threadId": "t1"},
            {"type": "TEXT_MESSAGE_START", "messageId": "a1", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a1", "delta": "partial"},
        ]
        records = [AppendRecord(json.dumps(c).encode()) for c in run]
        await app.basin.append(stream, AppendInput(records, fencing_token="session-dead"))
        index = AppendRecord(b'{"stream":"tanstack-t1","threadId":"t1"}')
        await app.basin.append("agui-run-run-dead", AppendInput([index]))
        before = (await app.client.get(API, params={"threadId": "t1"})).json()
        assert before["activeRun"] == {"runId": "run-dead"}

        joined = await app.client.get(API, params={"offset": "-1", "runId": "run-dead"})
        got = [c for _, c in events(joined.text)]
        assert [c["type"] for c in got[:2]] == ["CUSTOM", "RUN_STARTED"]
        assert (got[-1]["type"], got[-1]["runId"]) == ("RUN_ERROR", "run-dead")
        after = (await app.client.get(API, params={"threadId": "t1"})).json()
        assert after["activeRun"] is None
        # The thread takes new runs again.
        app.model.chunks = tanstack_run(WORDS)
        assert (await app.post("t1", "run-new", [user("again", "u2")])).status_code == 200


# -- client tools and approvals ------------------------------------------------------------


def tool_call_run(name: str = "get_capital") -> list[dict[str, Any]]:
    return [
        {"type": "RUN_STARTED", "runId": "x", "threadId": "x"},
        {"type": "TEXT_MESSAGE_START", "messageId": "a1", "role": "assistant"},
        {
            "type": "TOOL_CALL_START",
            "toolCallId": "c1",
            "toolCallName": name,
            "parentMessageId": "a1",
        },
        {"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": '{"country":"FR"}'},
        {
            "type": "TOOL_CALL_END",
            "toolCallId": "c1",
            "toolCallName": name,
            "input": {"country": "FR"},
        },
        {"type": "TEXT_MESSAGE_END", "messageId": "a1"},
        {"type": "RUN_FINISHED", "runId": "x", "finishReason": "tool_calls"},
    ]


async def test_client_tool_calls_pause_the_run_and_the_resume_is_stored(
    make_agui_app,  # type: ignore[no-untyped-def]
) -> None:
    async with make_agui_app() as app:
        tools = [{"name": "get_capital", "description": "d", "parameters": {"type": "object"}}]
        app.model.chunks = tool_call_run()
        first = events((await app.post("t1", "run-a", [user("capital?")], tools=tools)).text)
        outcome = first[-1][1]["outcome"]
        assert outcome["type"] == "interrupt"
        [interrupt] = outcome["interrupts"]
        assert interrupt["id"] == "client_tool_c1" and interrupt["toolCallId"] == "c1"
        assert interrupt["metadata"] == {
            "kind": "client_tool",
            "toolName": "get_capital",
            "input": {"country": "FR"},
        }
        await idle(app)
        paused = (await app.client.get(API, params={"threadId": "t1"})).json()
        assert paused["interrupts"] == {"runId": "run-a", "pending": [interrupt]}

        wire = [
            user("capital?"),
            {
                "id": "a1",
                "role": "assistant",
                "toolCalls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_capital", "arguments": '{"country":"FR"}'},
                    }
                ],
            },
            {"id": "tool-c1", "role": "tool", "toolCallId": "c1", "content": '{"capital":"Paris"}'},
        ]
        resume = [
            {"interruptId": "client_tool_c1", "status": "resolved", "payload": {"capital": "Paris"}}
        ]
        app.model.chunks = tanstack_run(["Paris."], message_id="a2")
        second = events(
            (
                await app.post("t1", "run-b", wire, tools=tools, resume=resume, parentRunId="run-a")
            ).text
        )
        assert second[1][1]["type"] == "RUN_STARTED"
        assert second[1][1]["parentRunId"] == "run-a"
        assert "outcome" not in second[-1][1]
        assert app.runs[1].resume == resume
        assert [m["role"] for m in app.runs[1].messages] == ["user", "assistant"]
        await idle(app)
        log = await stored(app, "t1")
        result = next(c for c in log if c["type"] == "TOOL_CALL_RESULT")
        assert (result["toolCallId"], result["messageId"]) == ("c1", "a1")
        assert any(c.get("name") == "run.resume" for c in log)
        after = (await app.client.get(API, params={"threadId": "t1"})).json()
        assert after["interrupts"] is None
        call = next(p for p in after["messages"][1]["parts"] if p["type"] == "tool-call")
        assert (call["state"], call["output"]) == ("complete", {"capital": "Paris"})
        assert after["messages"][2]["parts"] == [{"type": "text", "content": "Paris."}]


async def test_approval_interrupts_pass_through_and_the_answer_is_stored(
    make_agui_app,  # type: ignore[no-untyped-def]
) -> None:
    async with make_agui_app() as app:
        approval = {
            "id": "ap-c1",
            "reason": "tool_call",
            "toolCallId": "c1",
            "metadata": {"kind": "approval", "toolName": "delete_file", "input": {"p": "x"}},
        }
        run = tool_call_run("delete_file")
        run[-1] = {**run[-1], "outcome": {"type": "interrupt", "interrupts": [approval]}}
        app.model.chunks = run
        first = events((await app.post("t1", "run-a", [user("delete x")])).text)
        assert first[-1][1]["outcome"]["interrupts"] == [approval]
        await idle(app)
        paused = (await app.client.get(API, params={"threadId": "t1"})).json()
        assert paused["interrupts"] == {"runId": "run-a", "pending": [approval]}
        call = paused["messages"][1]["parts"][0]
        assert (call["state"], call["approval"]) == (
            "approval-requested",
            {"id": "ap-c1", "needsApproval": True},
        )
        resume = [{"interruptId": "ap-c1", "status": "resolved", "payload": {"approved": True}}]
        app.model.chunks = tanstack_run(["Deleted."], message_id="a2")
        wire = [user("delete x"), {"id": "a1", "role": "assistant", "toolCalls": []}]
        response = await app.post("t1", "run-b", wire, resume=resume, parentRunId="run-a")
        assert response.status_code == 200
        await idle(app)
        assert app.runs[1].resume == resume and app.runs[1].parent_run_id == "run-a"
        answered = (await app.client.get(API, params={"threadId": "t1"})).json()
        assert answered["interrupts"] is None
        call = answered["messages"][1]["parts"][0]
        assert call["state"] == "approval-responded"
        assert call["approval"] == {"id": "ap-c1", "needsApproval": True, "approved": True}


def test_approval_answers_show_on_the_folded_messages() -> None:
    messages = [
        {
            "id": "a1",
            "role": "assistant",
            "parts": [
                {
                    "type": "tool-call",
                    "id": "c1",
                    "state": "approval-requested",
                    "approval": {"id": "ap1", "needsApproval": True},
                }
            ],
        }
    ]
    chunks = [
        {
            "type": "CUSTOM",
            "name": "run.resume",
            "value": {
                "resume": [
                    {"interruptId": "ap1", "status": "resolved", "payload": {"approved": False}}
                ]
            },
        }
    ]
    [part] = apply_approval_responses(messages, chunks)[0]["parts"]
    assert part["state"] == "approval-responded"
    assert part["approval"] == {"id": "ap1", "needsApproval": True, "approved": False}


def test_wire_messages_convert_like_a_snapshot_and_the_prelude_stores_the_new_turn() -> None:
    wire = [
        {"id": "u1", "role": "user", "content": "hi"},
        {"id": "a1", "role": "assistant", "content": "yo", "toolCalls": []},
        {"id": "u2", "role": "user", "content": [{"type": "text", "text": "more"}]},
    ]
    ui = wire_to_ui_messages(wire)
    assert [(m["id"], m["role"]) for m in ui] == [
        ("u1", "user"),
        ("a1", "assistant"),
        ("u2", "user"),
    ]
    prelude = run_prelude(wire, ui, timestamp=5)
    assert [(c["type"], c.get("delta")) for c in prelude] == [
        ("TEXT_MESSAGE_START", None),
        ("TEXT_MESSAGE_CONTENT", "more"),
        ("TEXT_MESSAGE_END", None),
    ]
    assert run_prelude([], []) == []


def test_agui_turn_pins_the_request_ids() -> None:
    turn = AgUiTurn("run-a", "t1", parent_run_id="run-0")
    started = {"type": "RUN_STARTED", "runId": "other", "threadId": "x"}
    error = {"type": "RUN_ERROR", "message": "m", "metadata": {"tanstack": {"runId": "other"}}}
    turn.observe(started)
    turn.observe(error)
    assert started == {
        "type": "RUN_STARTED",
        "runId": "run-a",
        "threadId": "t1",
        "parentRunId": "run-0",
    }
    assert (error["runId"], error["threadId"], error["metadata"]["tanstack"]["runId"]) == (
        "run-a",
        "t1",
        "run-a",
    )
    assert turn.stop_chunks() == []  # the run already ended


# -- bad input and authorization -----------------------------------------------------------


async def test_bad_requests_get_a_readable_4xx_and_write_nothing(
    make_agui_app,  # type: ignore[no-untyped-def]
) -> None:
    async with make_agui_app() as app:
        client = app.client
        bad_json = await client.post(
            API, content=b"{", headers={"content-type": "application/json"}
        )
        assert bad_json.status_code == 400 and "malformed JSON" in bad_json.json()["detail"]
        no_thread = await client.post(API, json={"messages": []})
        assert no_thread.status_code == 422
        assert no_thread.json()["detail"][0]["loc"] == ["threadId"]
        bad_run = await app.post("t1", "run-a", [user("hi")], headers={"X-Run-Id": "bad id"})
        assert bad_run.status_code == 400
        bad_cursor = await app.post("t1", "run-a", [], headers={"Last-Event-ID": "memory:v1:x"})
        assert bad_cursor.status_code == 400 and "Last-Event-ID" in bad_cursor.json()["detail"]
        past_end = await app.post("t1", "run-a", [], headers={"Last-Event-ID": "99"})
        assert past_end.status_code == 416
        assert (await client.get(API)).status_code == 400
        assert (await client.get(API, params={"offset": "-1"})).status_code == 400
        assert (await client.get(API, params={"offset": "x", "runId": "r"})).status_code == 400
        assert (await client.get(API, params={"threadId": "bad id"})).status_code == 422
        for message in ({**user("hi"), "id": 7}, {"id": "m1", "content": "hi"}):
            unnamed = await app.post("t1", "run-a", [message])
            assert unnamed.status_code == 422, message
            assert unnamed.json()["detail"][0]["loc"] == ["messages"]
        assert await read_range(app.basin, "tanstack-t1", 0) == []
        assert app.model.calls == 0


async def test_authorize_runs_before_every_read_write_and_stop(
    make_agui_app,  # type: ignore[no-untyped-def]
) -> None:
    async with make_agui_app(deny={"secret"}) as app:
        app.model.chunks = tanstack_run(WORDS)
        assert (await app.post("secret", "run-s", [user("hi")])).status_code == 403
        assert (await app.client.get(API, params={"threadId": "secret"})).status_code == 403
        assert (await app.client.delete(API, params={"threadId": "secret"})).status_code == 403
        assert (
            await app.post("secret", "run-s", [], headers={"Last-Event-ID": "1"})
        ).status_code == 403
        assert await read_range(app.basin, "tanstack-secret", 0) == []
        # A run on an allowed thread: its join is checked against its thread.
        assert (await app.post("open", "run-o", [user("hi")])).status_code == 200
        await idle(app)
        joined = await app.client.get(API, params={"offset": "-1", "runId": "run-o"})
        assert joined.status_code == 200
        methods = [(m, t) for m, _, t in app.authorized]
        assert methods == [
            ("POST", "secret"),
            ("GET", "secret"),
            ("DELETE", "secret"),
            ("POST", "secret"),
            ("POST", "open"),
            ("GET", "open"),
        ]
        assert app.model.calls == 1


def test_the_router_needs_a_tanstack_session_chat() -> None:
    from resumable_chat.s2 import MemoryBasin

    chat = create_resumable_chat(protocol="ai-sdk", basin=MemoryBasin())
    with pytest.raises(ValueError, match="tanstack"):
        agui_router(chat, lambda run, signal: None)  # type: ignore[arg-type,return-value]
    assert not any(is_fence(r) for r in [])


async def test_a_stream_prefix_applies_to_runs_their_index_and_joins(
    make_agui_app,  # type: ignore[no-untyped-def]
) -> None:
    async with make_agui_app(stream_prefix="app1-") as app:
        app.model.chunks = tanstack_run(WORDS, run_id="model-run")
        response = await app.post("t-prefixed", "run-p", [user("hi")])
        assert response.status_code == 200
        await idle(app)
        thread = await read_range(app.basin, "app1-tanstack-t-prefixed", 0)
        index = await read_range(app.basin, "app1-agui-run-run-p", 0)
        assert thread and index
        assert not await read_range(app.basin, "tanstack-t-prefixed", 0)
        joined = await app.client.get(API, params={"offset": "-1", "runId": "run-p"})
        assert joined.status_code == 200
        assert [c["type"] for _, c in events(joined.text)][-1] == "RUN_FINISHED"
        hydrated = await app.client.get(
            API, params={"threadId": "t-prefixed"}, headers={"Accept": "application/json"}
        )
        assert [m["role"] for m in hydrated.json()["messages"]] == ["user", "assistant"]


async def test_a_run_id_belongs_to_its_thread(
    make_agui_app,  # type: ignore[no-untyped-def]
) -> None:
    """A POST on another thread that reuses a run id is refused (409, readable), and every
    instance resolves the run id to its first thread: the owner's join is never hijacked."""
    async with make_agui_app() as app, make_agui_app() as other_instance:
        app.model.chunks = tanstack_run(WORDS)
        assert (await app.post("owner", "run-shared", [user("mine")])).status_code == 200
        await idle(app)
        for instance in (app, other_instance):
            instance.model.chunks = tanstack_run(["stolen"])
            hijack = await instance.post("intruder", "run-shared", [user("theirs")])
            assert hijack.status_code == 409
            assert "run-shared" in hijack.json()["detail"]
        assert await read_range(app.basin, "tanstack-intruder", 0) == []
        assert other_instance.model.calls == 0
        for instance in (app, other_instance):
            joined = await instance.client.get(API, params={"offset": "-1", "runId": "run-shared"})
            assert joined.status_code == 200
            deltas = [c.get("delta") for _, c in events(joined.text) if "delta" in c]
            assert "".join(deltas) == "".join(WORDS)
        # The same thread may use the id again (a client retrying its own run).
        app.model.chunks = tanstack_run(["again"])
        assert (await app.post("owner", "run-shared", [user("again")])).status_code == 200


async def test_a_join_is_authorized_before_it_tells_whether_the_run_exists(
    make_agui_app,  # type: ignore[no-untyped-def]
) -> None:
    async with make_agui_app(deny={"", "owner"}) as app:
        app.model.chunks = tanstack_run(WORDS)
        # a run that exists, on a thread this client may not read, and one that does not:
        async with make_agui_app() as writer:
            writer.model.chunks = tanstack_run(WORDS)
            assert (await writer.post("owner", "run-known", [user("hi")])).status_code == 200
            await idle(writer)
        known = await app.client.get(API, params={"offset": "-1", "runId": "run-known"})
        unknown = await app.client.get(API, params={"offset": "-1", "runId": "run-unknown"})
        assert known.status_code == unknown.status_code == 403
        assert known.json() == unknown.json()


async def test_a_run_is_visible_to_joins_and_hydration_as_soon_as_it_is_claimed() -> None:
    """The run's ``run.accepted`` is stored in the claim's own append: while S2 holds every
    later append of the run, a join by run id on another instance finds the run (not 404)
    and hydration reports it active."""
    memory = MemoryBasin()
    plan = FaultPlan()
    model = ScriptedModel()
    model.chunks = tanstack_run(WORDS)
    chat_a = create_resumable_chat(
        protocol="tanstack", basin=FaultPlanBasin(memory, plan), ownership=Ownership()
    )
    chat_b = create_resumable_chat(protocol="tanstack", basin=memory, ownership=Ownership())

    def source(run: AgUiRun, signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        return model.stream(run.messages, signal)

    app_a, app_b = FastAPI(), FastAPI()
    app_a.include_router(agui_router(chat_a, source, check_storage=False))
    app_b.include_router(agui_router(chat_b, source, check_storage=False))
    held = plan.hold("append", skip=2)  # the run index's entry and the claim go through
    body = {"threadId": "t1", "runId": "run-a", "messages": [user("hi")]}
    async with (
        serve_app(app_a) as url_a,
        serve_app(app_b) as url_b,
        httpx.AsyncClient(timeout=10) as client,
    ):
        async with client.stream("POST", f"{url_a}{API}", json=body) as live:
            assert live.status_code == 200
            texts = live.aiter_text()
            async for text in texts:
                if "run.accepted" in text:
                    break
            hydrated = (await client.get(f"{url_b}{API}", params={"threadId": "t1"})).json()
            assert hydrated["activeRun"] == {"runId": "run-a"}
            async with client.stream(
                "GET", f"{url_b}{API}", params={"offset": "-1", "runId": "run-a"}
            ) as joined:
                assert joined.status_code == 200
                first = ""
                async for text in joined.aiter_text():
                    first += text
                    if "\n\n" in first:
                        break
                assert events(first)[0][1]["name"] == "run.accepted"
            held.release()
            rest = "".join([text async for text in texts])
            assert "RUN_FINISHED" in rest
    await chat_a.aclose()
    await chat_b.aclose()


@pytest.mark.parametrize("how", ["read", "reconnected", "joined"])
async def test_an_ended_run_leaves_no_cycle_of_the_package(make_agui_app, how: str) -> None:  # type: ignore[no-untyped-def]
    """Read to its end, its connection dropped and re-POSTed with ``Last-Event-ID``, or
    joined by run id: the run's state is freed by reference counting when it ends (see
    ``tests/chat/test_no_reference_cycles.py``)."""
    async with make_agui_app() as app:
        app.model.chunks = tanstack_run(["warm"])
        await app.post("t0", "run-w", [user("hi")])
        await idle(app)
        app.model.chunks = tanstack_run(WORDS)
        with package_garbage() as ours:
            if how == "reconnected":
                app.model.hold_at = 4
                body = {"threadId": "t1", "runId": "run-a", "messages": [user("hi")]}
                headers = {"X-Run-Id": "run-a"}
                request = app.client.build_request("POST", API, json=body, headers=headers)
                seen = await first_events(app, request, 4)
                headers["Last-Event-ID"] = str(seen[-1][0])
                again = app.client.build_request("POST", API, json=body, headers=headers)
                resumed = asyncio.create_task(first_events(app, again, 100))
                await app.model.reached_hold.wait()
                app.model.gate.set()
                await resumed
            else:
                assert (await app.post("t1", "run-a", [user("hi")])).status_code == 200
            await idle(app)
            if how == "joined":
                joined = await app.client.get(API, params={"offset": "-1", "runId": "run-a"})
                assert joined.status_code == 200
    assert ours == []
