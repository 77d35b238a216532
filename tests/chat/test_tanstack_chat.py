"""The TanStack session chat over real HTTP (reference §5 and its test list, §9)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from chat_helpers import tanstack_run, tanstack_user

from resumable_chat import create_resumable_chat
from resumable_chat.log import read_range
from resumable_chat.s2 import MemoryBasin, is_fence

WORDS = ["hel", "lo", " there"]


async def _stored(app: Any, chat_id: str = "c1") -> list[dict[str, Any]]:
    return [
        json.loads(r.body)
        for r in await read_range(app.basin, f"tanstack-{chat_id}", 0)
        if not r.headers
    ]


async def _fences(app: Any, chat_id: str = "c1") -> list[bytes]:
    return [r.body for r in await read_range(app.basin, f"tanstack-{chat_id}", 0) if is_fence(r)]


async def _idle(app: Any) -> None:
    for _ in range(300):
        if not app.chat.engine.running:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the run did not finish")


async def test_make_session_response_requires_session_mode() -> None:
    chat = create_resumable_chat(protocol="tanstack", mode="single-use", basin=MemoryBasin())

    async def source(messages: Any, signal: Any) -> Any:
        yield {}

    with pytest.raises(ValueError, match="session"):
        await chat.make_session_response("s", messages=[], source=source)


async def test_post_is_202_and_stores_user_events_then_deltas_only(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(WORDS)
        response = await app.post("c1", [tanstack_user("hi")])
        assert response.status_code == 202 and response.content == b""
        assert response.headers["cache-control"] == "no-store"
        await _idle(app)
        stored = await _stored(app)
        assert [c["type"] for c in stored[:3]] == [
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
        ]
        assert stored[0]["messageId"] == "u1" and stored[0]["role"] == "user"
        assert stored[1]["delta"] == "hi"
        content = [c for c in stored[3:] if c["type"] == "TEXT_MESSAGE_CONTENT"]
        assert content[0] == {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a1", "delta": "hel"}
        assert stored[-1]["type"] == "RUN_FINISHED"
        assert stored[-1]["metadata"]["tanstack"]["finishReason"] == "stop"
        fences = await _fences(app)
        assert fences[0].startswith(b"session-") and fences[-1].startswith(b"end-")


async def test_without_wait_until_the_202_comes_after_persistence(basin) -> None:  # type: ignore[no-untyped-def]
    chat = create_resumable_chat(protocol="tanstack", mode="session", basin=basin)
    release = asyncio.Event()

    async def source(messages: Any, signal: Any) -> Any:
        yield {"type": "RUN_STARTED", "runId": "r1"}
        await release.wait()
        yield {"type": "RUN_FINISHED", "runId": "r1", "finishReason": "stop"}

    post = asyncio.create_task(
        chat.make_session_response("s-wait", messages=[tanstack_user("hi")], source=source)
    )
    await asyncio.sleep(0.1)
    assert not post.done()
    release.set()
    assert (await post).status_code == 202
    bodies = [r.body for r in await read_range(basin, "s-wait", 0) if not r.headers]
    assert json.loads(bodies[-1])["type"] == "RUN_FINISHED"
    await chat.aclose()


async def test_tool_result_continuation_stores_no_user_events(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(["ok"])
        assistant = {
            "id": "a0",
            "role": "assistant",
            "parts": [{"type": "tool-call", "id": "tc1", "name": "f", "arguments": "{}"}],
        }
        await app.post("c1", [tanstack_user("hi"), assistant])
        await _idle(app)
        assert (await _stored(app))[0]["type"] == "RUN_STARTED"
        seen = app.model.seen_messages[0]
        assert [m["id"] for m in seen] == ["u1", "a0"]


async def test_first_load_hydrates_completed_history_with_one_snapshot(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(["hello"])
        await app.post("c1", [tanstack_user("hi")])
        await _idle(app)
        events = await app.replay_frames("c1", 1)
        snapshot = json.loads(events[0][1])
        assert snapshot["type"] == "MESSAGES_SNAPSHOT"
        assert [(m["id"], m["role"]) for m in snapshot["messages"]] == [
            ("u1", "user"),
            ("a1", "assistant"),
        ]
        assert snapshot["messages"][1]["parts"] == [{"type": "text", "content": "hello"}]
        tail = (await app.basin.check_tail("tanstack-c1")).seq_num
        assert int(events[0][0]) <= tail


async def test_first_load_during_a_run_sends_snapshot_then_the_run_raw(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(["one"], run_id="r1", message_id="a1")
        await app.post("c1", [tanstack_user("hi")])
        await _idle(app)
        app.model.chunks = tanstack_run(WORDS, run_id="r2", message_id="a2")
        app.model.hold_at = 3
        await app.post("c1", [tanstack_user("hi"), tanstack_user("again", "u2")])
        await app.model.reached_hold.wait()
        await asyncio.sleep(0.05)
        events = await app.replay_frames("c1", 4)
        kinds = [json.loads(d)["type"] for _, d in events]
        assert kinds == [
            "MESSAGES_SNAPSHOT",
            "RUN_STARTED",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
        ]
        snapshot = json.loads(events[0][1])
        assert [m["id"] for m in snapshot["messages"]] == ["u1", "a1", "u2"]
        assert int(events[0][0]) == int(events[1][0]) - 1  # cursor = the run's first record
        app.model.gate.set()
        await _idle(app)


async def test_a_user_message_sent_again_replaces_its_old_answer_in_history(
    make_tanstack_app,
) -> None:  # type: ignore[no-untyped-def]
    """TanStack ``ChatClient.reload()`` POSTs the last user message again (same id) with
    nothing after it. A first load during that run shows the question without the old
    answer; afterwards the snapshot and ``/messages`` show the new answer in its place."""
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(["first"], run_id="r1", message_id="a1")
        await app.post("c1", [tanstack_user("hi")])
        await _idle(app)
        tail = (await app.basin.check_tail("tanstack-c1")).seq_num
        app.model.chunks = tanstack_run(["sec", "ond"], run_id="r2", message_id="a2")
        app.model.hold_at = 3
        await app.post("c1", [tanstack_user("hi")])
        # Follow the log until the user's events and the held run's RUN_STARTED are stored.
        stored = await app.replay_frames("c1", 4, from_=tail)
        assert json.loads(stored[-1][1])["type"] == "RUN_STARTED"
        during = await app.replay_frames("c1", 2)
        assert [json.loads(d)["type"] for _, d in during] == ["MESSAGES_SNAPSHOT", "RUN_STARTED"]
        assert [(m["id"], m["parts"]) for m in json.loads(during[0][1])["messages"]] == [
            ("u1", [{"type": "text", "content": "hi"}])
        ]
        app.model.gate.set()
        await _idle(app)

        snapshot = json.loads((await app.replay_frames("c1", 1))[0][1])
        stored = (await app.client.get("/api/tanstack/chat/c1/messages")).json()
        expected = [
            ("u1", "user", [{"type": "text", "content": "hi"}]),
            ("a2", "assistant", [{"type": "text", "content": "second"}]),
        ]
        assert [(m["id"], m["role"], m["parts"]) for m in snapshot["messages"]] == expected
        assert [(m["id"], m["role"], m["parts"]) for m in stored] == expected


async def test_cursor_replays_raw_records_of_every_generation(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(["one"], run_id="r1")
        await app.post("c1", [tanstack_user("a")])
        await _idle(app)
        app.model.chunks = tanstack_run(["two"], run_id="r2")
        await app.post("c1", [tanstack_user("b", "u2")])
        await _idle(app)
        records = await read_range(app.basin, "tanstack-c1", 0)
        data = [r for r in records if not r.headers]
        events = await app.replay_frames("c1", len(data), from_=0)
        assert [(int(i), d) for i, d in events] == [(r.seq_num + 1, r.body.decode()) for r in data]
        later = await app.replay_frames("c1", 2, from_=data[-2].seq_num)
        assert [int(i) for i, _ in later] == [data[-2].seq_num + 1, data[-1].seq_num + 1]
        tail = (await app.basin.check_tail("tanstack-c1")).seq_num
        beyond = await app.client.get(
            "/api/tanstack/chat/replay", params={"id": "c1", "from": tail + 1}
        )
        assert beyond.status_code == 416


async def test_stop_ends_the_run_with_its_run_id(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(WORDS, run_id="r1")
        app.model.hold_at = 3
        await app.post("c1", [tanstack_user("hi")])
        await app.model.reached_hold.wait()
        second = await app.post("c1", [tanstack_user("hi"), tanstack_user("x", "u2")])
        assert second.status_code == 409  # and the running one stays stoppable:
        assert (await app.stop("c1")).status_code == 202
        await _idle(app)
        stored = await _stored(app)
        assert stored[-1]["type"] == "RUN_FINISHED"
        assert stored[-1]["runId"] == "r1" and stored[-1]["finishReason"] == "stop"
        assert "model" not in stored[-1]  # no internal marker in a client-visible field
        assert stored[-2] == {
            "type": "TEXT_MESSAGE_END",
            "timestamp": stored[-2]["timestamp"],
            "messageId": "a1",
            "metadata": {"stopped": True},
        }
        history = (await app.client.get("/api/tanstack/chat/c1/messages")).json()
        assert history[-1]["metadata"] == {"stopped": True}  # the stop stays in history
        assert (await _fences(app))[-1].startswith(b"end-")
        assert app.model.closed == 1 and app.model.signals[0].is_set()
        assert (await app.stop("c1")).status_code == 204


async def test_stop_before_the_claim_finishes_never_calls_the_model(basin) -> None:  # type: ignore[no-untyped-def]
    chat = create_resumable_chat(protocol="tanstack", mode="session", basin=basin)
    calls = 0

    async def source(messages: Any, signal: Any) -> Any:
        nonlocal calls
        calls += 1
        yield {"type": "RUN_STARTED", "runId": "r1"}

    post = asyncio.create_task(
        chat.make_session_response("s-early", messages=[tanstack_user("hi")], source=source)
    )
    await asyncio.sleep(0)  # the POST is now waiting on its claim
    assert (await chat.stop_session("s-early")).status_code == 202
    assert (await post).status_code == 202
    records = await read_range(basin, "s-early", 0)
    assert calls == 0
    assert is_fence(records[0]) and is_fence(records[-1])
    middle = [json.loads(r.body) for r in records[1:-1]]
    # the accepted turn's user message is kept (three text events), then the stop terminal
    assert [c["type"] for c in middle] == [
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "RUN_FINISHED",
    ]
    assert middle[0]["role"] == "user" and middle[1]["delta"] == "hi"
    assert middle[-1]["finishReason"] == "stop"
    await chat.aclose()


async def test_source_error_ends_with_run_error_carrying_the_run_id(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(WORDS, run_id="r9")
        app.model.raise_at = 3
        await app.post("c1", [tanstack_user("hi")])
        await _idle(app)
        error = (await _stored(app))[-1]
        assert error["type"] == "RUN_ERROR" and error["runId"] == "r9"
        assert error["message"] == "An error occurred." == error["error"]["message"]
        assert (await _fences(app))[-1].startswith(b"error-")


async def test_empty_message_list_is_rejected_and_stores_nothing(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    async with make_tanstack_app() as app:
        response = await app.post("c1", [])
        assert response.status_code == 422
        bad = await app.post("c1", [{"id": "x", "role": "robot"}])
        assert bad.status_code == 422
        assert await _stored(app) == [] and app.model.calls == 0


async def test_live_post_sends_content_but_stores_deltas(basin) -> None:  # type: ignore[no-untyped-def]
    from fastapi import FastAPI

    from resumable_chat.testing.app_server import serve_app

    chat = create_resumable_chat(protocol="tanstack", mode="shared", basin=basin)
    app = FastAPI()

    @app.post("/live")
    async def live_post() -> Any:
        async def source() -> Any:
            for chunk in tanstack_run(WORDS):
                yield chunk

        return await chat.make_resumable("s-live", source())

    import httpx

    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/live")
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "data: [DONE]" not in response.text
    live = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data:")]
    assert [c.get("content") for c in live if c["type"] == "TEXT_MESSAGE_CONTENT"] == [
        "hel",
        "hello",
        "hello there",
    ]
    await chat.aclose()
    stored = [json.loads(r.body) for r in await read_range(basin, "s-live", 0) if not r.headers]
    assert all("content" not in c for c in stored)


async def test_an_attachment_reaches_the_source_and_stays_in_the_history(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    """A user's image part goes to the source and is stored with the message: the history
    and a new client's snapshot show it after a reload (before, only the text was kept)."""
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(["ok"])
        image = {"type": "image", "source": {"type": "url", "value": "https://x/y.png"}}
        user = tanstack_user("look")
        user["parts"].append(image)
        await app.post("c1", [user])
        await _idle(app)
        assert app.model.seen_messages[0][0]["parts"][1] == image
        history = (await app.client.get("/api/tanstack/chat/c1/messages")).json()
        assert history[0]["parts"] == [{"type": "text", "content": "look"}, image]
        assert history[1]["parts"] == [{"type": "text", "content": "ok"}]


async def test_a_tab_that_loads_mid_answer_gets_the_attachment_in_its_snapshot(
    make_tanstack_app,
) -> None:  # type: ignore[no-untyped-def]
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(["ok"])
        app.model.hold_at = 2  # the run has started; its answer is held
        image = {"type": "image", "source": {"type": "url", "value": "https://x/y.png"}}
        user = tanstack_user("look")
        user["parts"].append(image)
        await app.post("c1", [user])
        await app.model.reached_hold.wait()
        async with app.client.stream("GET", "/api/tanstack/chat/replay?id=c1") as replay:
            first = await anext(line async for line in replay.aiter_lines() if line[:5] == "data:")
        app.model.gate.set()
        snapshot = json.loads(first[5:])
        assert snapshot["type"] == "MESSAGES_SNAPSHOT"
        assert snapshot["messages"][0]["parts"] == [{"type": "text", "content": "look"}, image]


async def test_an_ai_sdk_shaped_text_part_is_stored_as_the_source_saw_it(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    """``{"type": "text", "text": ...}`` (the AI SDK's shape) on the TanStack route: the
    source and the stored history get the same text, as ``content``."""
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(["ok"])
        user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hello"}]}
        assert (await app.post("c1", [user])).status_code == 202
        await _idle(app)
        seen = app.model.seen_messages[0][0]["parts"][0]
        assert seen == {"type": "text", "text": "hello", "content": "hello"}
        history = (await app.client.get("/api/tanstack/chat/c1/messages")).json()
        assert history[0]["parts"] == [{"type": "text", "content": "hello"}]


async def _serve_live(chat: Any, source: Any) -> str:
    import httpx
    from fastapi import FastAPI

    from resumable_chat.testing.app_server import serve_app

    app = FastAPI()

    @app.post("/live")
    async def live_post() -> Any:
        return await chat.make_resumable("s-live", source())

    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/live")
    assert response.status_code == 200
    return response.text


async def test_live_sse_ends_with_run_error_when_the_source_throws(basin) -> None:  # type: ignore[no-untyped-def]
    chat = create_resumable_chat(
        protocol="tanstack", mode="single-use", basin=basin, on_error=lambda e: str(e)
    )

    async def source() -> Any:
        yield {"type": "RUN_STARTED", "runId": "r1"}
        raise RuntimeError("model exploded")

    text = await _serve_live(chat, source)
    assert "[DONE]" not in text
    last = json.loads(text.strip().splitlines()[-1][len("data: ") :])
    assert last["type"] == "RUN_ERROR" and last["runId"] == "r1"
    assert last["error"]["message"] == "model exploded" == last["message"]
    await chat.aclose()


async def test_single_use_replay_is_204_when_idle_and_resumes_from_a_cursor(basin) -> None:  # type: ignore[no-untyped-def]
    chat = create_resumable_chat(protocol="tanstack", mode="single-use", basin=basin)
    assert (await chat.replay("s-single")).status_code == 204
    await chat.aclose()


async def test_stop_is_a_no_op_without_enable_stop(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    async with make_tanstack_app(enable_stop=False) as app:
        app.model.chunks = tanstack_run(WORDS)
        app.model.hold_at = 2
        await app.post("c1", [tanstack_user("hi")])
        await app.model.reached_hold.wait()
        assert (await app.stop("c1")).status_code == 204
        app.model.gate.set()
        await _idle(app)
        assert (await _stored(app))[-1]["finishReason"] == "stop"


async def test_history_of_chunks_without_timestamps_is_the_same_on_every_load(
    make_tanstack_app,
) -> None:  # type: ignore[no-untyped-def]
    """A source whose chunks carry no ``timestamp`` (TanStack's types require one; sources
    written by hand often leave it out): the fold dates the messages they create by their
    records' S2 timestamps, not by the time of the load, so ``/messages`` and the snapshot
    give the same history every time."""
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(WORDS)
        assert all("timestamp" not in chunk for chunk in app.model.chunks)
        await app.post("c1", [tanstack_user("hi")])
        generation = app.chat.engine.generation("tanstack-c1")
        if generation is not None:  # else it ended already
            await generation.task
        loads = [(await app.client.get("/api/tanstack/chat/c1/messages")).json() for _ in range(3)]
        assert loads[0] == loads[1] == loads[2]
        records = await read_range(app.basin, "tanstack-c1", 0)
        start = next(r for r in records if b'"TEXT_MESSAGE_START","messageId":"a1"' in r.body)
        created = loads[0][1]["createdAt"]
        assert loads[0][1]["id"] == "a1"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start.timestamp // 1000))
        assert created == f"{stamp}.{start.timestamp % 1000:03d}Z"
        snapshots = [json.loads((await app.replay_frames("c1", 1))[0][1]) for _ in range(2)]
        assert snapshots[0]["messages"] == snapshots[1]["messages"] == loads[0]


async def test_a_cursor_this_log_never_reached_ends_with_the_running_run(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    """A tab's cursor from a log that was reset (past this log's tail) while a run is live:
    the replay ends with that run, skipping what the cursor covers, instead of following
    forever and showing later runs from their middle; the reconnect then gets 416 (the
    adapter loads from scratch)."""
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(["one"])
        await app.post("c1", [tanstack_user("first")])
        first = app.chat.running("tanstack-c1")
        if first is not None:
            await first.task  # the first run has ended and is stored
        stale = (await app.basin.check_tail("tanstack-c1")).seq_num + 50
        app.model.chunks = tanstack_run(["two"], run_id="r2", message_id="a2")
        app.model.hold_at = 2
        app.model.reached_hold.clear()
        app.model.gate.clear()
        await app.post("c1", [tanstack_user("second", "u2")])
        await app.model.reached_hold.wait()
        params = {"id": "c1", "from": str(stale)}
        async with app.client.stream("GET", "/api/tanstack/chat/replay", params=params) as replay:
            assert replay.status_code == 200
            app.model.gate.set()
            body = (await replay.aread()).decode()  # ends when the run ends
        assert "TEXT_MESSAGE_CONTENT" not in body  # all of it is at or below the cursor
        again = await app.client.get("/api/tanstack/chat/replay", params=params)
        assert again.status_code == 416
