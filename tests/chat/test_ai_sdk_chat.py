"""The AI SDK chat core end to end over real HTTP: live tee, replay, stop, errors, modes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_helpers import as_sent, chunks_of, parse_sse, text_answer, user_message

from resumable_chat import create_resumable_chat
from resumable_chat.clock import SystemClock
from resumable_chat.log import read_range
from resumable_chat.s2 import Basin, is_fence, is_terminal_fence, is_trim
from resumable_chat.sources import ai_sdk_chunks, openai_chunks_from_jsonl

WORDS = [f"w{i} " for i in range(12)]


async def _log(app, stream: str):  # type: ignore[no-untyped-def]
    return await read_range(app.basin, stream, 0)


async def _wait_done(app) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):
        if not app.chat.engine.running:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("generation did not finish")


async def _open_replays(app, cuts: list[int | None]) -> list[asyncio.Task[str]]:  # type: ignore[no-untyped-def]
    """Start one replay per cut and return once every one has answered 200 (headers in)."""
    opened = asyncio.Semaphore(0)

    async def replay(k: int | None) -> str:
        params = {} if k is None else {"from": k}
        async with app.client.stream("GET", "/api/chat/c1/stream", params=params) as response:
            assert response.status_code == 200, (k, response.status_code)
            opened.release()
            return (await response.aread()).decode()

    tasks = [asyncio.create_task(replay(k)) for k in cuts]
    for _ in cuts:
        async with asyncio.timeout(10):
            await opened.acquire()
    return tasks


async def test_live_answer_then_replay_then_204(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        app.model.chunks = text_answer(WORDS)
        app.model.hold_at = 8
        post = asyncio.create_task(app.post("c1", [user_message("hi")]))
        await app.model.reached_hold.wait()
        (replay_task,) = await _open_replays(app, [None])
        app.model.gate.set()
        live, replay_text = await post, await replay_task
        assert live.status_code == 200
        assert live.headers["content-type"].startswith("text/event-stream")
        assert live.headers["x-vercel-ai-ui-message-stream"] == "v1"
        assert live.text.endswith("data: [DONE]\n\n")
        assert chunks_of(live.text) == as_sent(text_answer(WORDS))
        # the replay is the whole answer from its start chunk, with the same ids
        assert parse_sse(replay_text) == parse_sse(live.text)
        await _wait_done(app)
        after = await app.client.get("/api/chat/c1/stream")
        assert after.status_code == 204 and after.headers["cache-control"] == "no-store"


async def test_sse_ids_are_the_next_seq_num_of_each_stored_record(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        app.model.chunks = text_answer(WORDS)
        live = await app.post("c1", [user_message("hi")])
        await _wait_done(app)
        records = {r.seq_num: r.body for r in await _log(app, "chat-c1")}
        for event_id, data in parse_sse(live.text):
            if data == "[DONE]":
                continue
            assert records[int(event_id) - 1] == data.encode()


async def test_concurrent_post_gets_409_and_next_turn_works(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        app.model.chunks = text_answer(WORDS)
        app.model.hold_at = 3
        first = asyncio.create_task(app.post("c1", [user_message("one")]))
        await app.model.reached_hold.wait()
        second = await app.post("c1", [user_message("two")])
        assert second.status_code == 409 and second.text == "Stream already in use"
        assert app.model.calls == 1
        app.model.gate.set()
        assert (await first).status_code == 200
        await _wait_done(app)
        app.model.hold_at = None
        third = await app.post("c1", [user_message("one"), user_message("three", "u3")])
        assert third.status_code == 200 and chunks_of(third.text)[-1]["type"] == "finish"


async def test_client_disconnect_does_not_stop_generation(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        app.model.chunks = text_answer(WORDS)
        app.model.hold_at = 5
        body = {"id": "c1", "messages": [user_message("hi")]}
        async with app.client.stream("POST", "/api/chat", json=body) as response:
            async for _ in response.aiter_bytes():
                break
        app.model.gate.set()
        await _wait_done(app)
        messages = await app.chat.load_messages("chat-c1")
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["parts"][1]["text"] == "".join(WORDS)
        assert app.model.closed == 1


async def test_stop_ends_answer_with_abort_and_closes_source(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        app.model.chunks = text_answer(WORDS)
        app.model.hold_at = 6
        post = asyncio.create_task(app.post("c1", [user_message("hi")]))
        await app.model.reached_hold.wait()
        stop = await app.client.delete("/api/chat/c1/stream")
        assert stop.status_code == 202
        live = await post
        chunks = chunks_of(live.text)
        assert [c["type"] for c in chunks[-4:]] == [
            "text-end",
            "finish-step",
            "message-metadata",
            "abort",
        ]
        assert chunks[-2] == {"type": "message-metadata", "messageMetadata": {"stopped": True}}
        assert chunks[-1] == {"type": "abort"}
        assert app.model.closed == 1 and app.model.signals[0].is_set()
        await _wait_done(app)
        log = await _log(app, "chat-c1")
        assert is_terminal_fence(log[-1]) and log[-1].body.startswith(b"end-")
        assert [json.loads(r.body) for r in log if not r.headers][-1]["type"] == "abort"
        history = (await app.client.get("/api/chat/c1/messages")).json()
        assert history[-1]["metadata"] == {"stopped": True}  # the stop stays in history
        assert (await app.client.delete("/api/chat/c1/stream")).status_code == 204
        assert (await app.client.get("/api/chat/c1/stream")).status_code == 204
        app.model.hold_at = None
        again = await app.post("c1", [user_message("hi"), user_message("again", "u2")])
        assert again.status_code == 200


async def test_stop_before_the_first_chunk(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        app.model.chunks = text_answer(WORDS)
        app.model.hold_at = 0
        post = asyncio.create_task(app.post("c1", [user_message("hi")]))
        await app.model.reached_hold.wait()
        assert (await app.client.delete("/api/chat/c1/stream")).status_code == 202
        chunks = chunks_of((await post).text)
        assert [c["type"] for c in chunks] == ["start", "message-metadata", "abort"]
        assert chunks[0]["messageId"]


async def test_source_error_ends_with_error_chunk_and_error_fence(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        app.model.chunks = text_answer(WORDS)
        app.model.raise_at = 5
        live = await app.post("c1", [user_message("hi")])
        chunks = chunks_of(live.text)
        assert chunks[-1] == {"type": "error", "errorText": "An error occurred."}
        assert "secret" not in live.text
        assert [c["type"] for c in chunks[-4:]] == [
            "text-end",
            "finish-step",
            "message-metadata",
            "error",
        ]
        assert chunks[-2]["messageMetadata"] == {"error": "An error occurred."}
        await _wait_done(app)
        log = await _log(app, "chat-c1")
        assert log[-1].body.startswith(b"error-")
        assert (await app.client.get("/api/chat/c1/stream")).status_code == 204
        history = (await app.client.get("/api/chat/c1/messages")).json()
        assert history[-1]["metadata"] == {"error": "An error occurred."}  # stays in history


async def test_on_error_chooses_the_error_text(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app(on_error=lambda exc: f"failed: {type(exc).__name__}") as app:
        app.model.chunks = text_answer(WORDS)
        app.model.raise_at = 0
        chunks = chunks_of((await app.post("c1", [user_message("hi")])).text)
        assert chunks[0]["type"] == "start"
        assert chunks[-1] == {"type": "error", "errorText": "failed: RuntimeError"}


@pytest.mark.parametrize("raised", [asyncio.CancelledError, GeneratorExit])
async def test_a_source_raising_cancelled_error_or_generator_exit_fails_the_answer(  # type: ignore[no-untyped-def]
    make_chat_app, raised: type[BaseException]
) -> None:
    """A ``CancelledError`` the source raises though nobody cancelled the answer (a cancel
    scope of a library it uses leaking one), or a ``GeneratorExit`` it raises itself, ends
    the answer as a failure: the error chunk, the log closed at once, the next turn accepted
    at once. The first used to be taken for a shutdown (nothing more stored, 409 until a
    lease ran out); the second killed the answer's task while its writer kept heartbeating,
    so the chat answered 409 for as long as the process ran."""
    async with make_chat_app() as app:
        app.model.chunks = text_answer(WORDS)
        app.model.raise_at = 3
        app.model.raises = raised
        chunks = chunks_of((await app.post("c1", [user_message("hi")])).text)
        assert chunks[-1] == {"type": "error", "errorText": "An error occurred."}
        assert (await app.client.get("/api/chat/c1/stream")).status_code == 204
        app.model.raise_at = None
        again = await asyncio.wait_for(app.post("c1", [user_message("again")]), 5)
        assert again.status_code == 200
        assert chunks_of(again.text)[-1]["type"] == "finish"


async def test_an_event_source_reconnect_with_last_event_id_resumes_after_it(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    """A browser ``EventSource`` reconnects with ``Last-Event-ID``: the same as ``?from=``
    (which wins when both are sent); a header that is not a cursor is a 400."""
    async with make_chat_app() as app:
        app.model.chunks = text_answer(WORDS)
        app.model.hold_at = len(app.model.chunks) - 1
        post = asyncio.create_task(app.post("c1", [user_message("hi")]))
        await app.model.reached_hold.wait()
        opened = asyncio.Semaphore(0)

        async def replay(params: dict[str, int], headers: dict[str, str]) -> str:
            url = "/api/chat/c1/stream"
            async with app.client.stream("GET", url, params=params, headers=headers) as response:
                assert response.status_code == 200
                opened.release()
                return (await response.aread()).decode()

        by_header = asyncio.create_task(replay({}, {"Last-Event-ID": "3"}))
        by_query = asyncio.create_task(replay({"from": 3}, {"Last-Event-ID": "1"}))
        for _ in range(2):
            await asyncio.wait_for(opened.acquire(), 10)
        for bad in ("x", "-1", "²", "9" * 19):
            header = {"Last-Event-ID": bad.encode()}
            refused = await app.client.get("/api/chat/c1/stream", headers=header)
            assert refused.status_code == 400 and "Last-Event-ID" in refused.json()["detail"]
        app.model.gate.set()
        live = [(int(i), d) for i, d in parse_sse((await post).text) if i is not None]
        expected = [(i, d) for i, d in live if i > 3]
        for task in (by_header, by_query):
            got = [(int(i), d) for i, d in parse_sse(await task) if i is not None]
            assert got == expected


async def test_a_chunk_that_is_not_a_dict_is_an_error(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        app.model.chunks = [{"type": "start", "messageId": "m"}, "oops"]  # type: ignore[list-item]
        chunks = chunks_of((await app.post("c1", [user_message("hi")])).text)
        assert chunks == [
            {"type": "start", "messageId": "m"},
            {"type": "message-metadata", "messageMetadata": {"error": "An error occurred."}},
            {"type": "error", "errorText": "An error occurred."},
        ]


async def test_replay_from_every_cut_point_yields_exactly_the_missing_chunks(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        app.model.chunks = text_answer(WORDS)
        app.model.hold_at = len(app.model.chunks) - 1
        post = asyncio.create_task(app.post("c1", [user_message("hi")]))
        await app.model.reached_hold.wait()
        await asyncio.sleep(0.05)
        tail = (await app.basin.check_tail("chat-c1")).seq_num
        beyond = await app.client.get("/api/chat/c1/stream", params={"from": tail + 1})
        assert beyond.status_code == 416
        cuts = list(range(0, tail + 1))
        replays = await _open_replays(app, cuts)
        app.model.gate.set()
        live = parse_sse((await post).text)
        live_frames = [(int(i), d) for i, d in live if i is not None]
        for k, task in zip(cuts, replays, strict=True):
            got = [(int(i), d) for i, d in parse_sse(await task) if i is not None]
            assert got == [(i, d) for i, d in live_frames if i - 1 >= k], f"cut at {k}"


async def test_load_messages_rebuilds_history_from_the_log(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        app.model.chunks = text_answer(["Hello", "!"], message_id="a1")
        await app.post("c1", [user_message("hi", "u1")])
        await _wait_done(app)
        app.model.chunks = text_answer(["Bye"], message_id="a2")
        history = [user_message("hi", "u1"), {"id": "a1", "role": "assistant", "parts": []}]
        await app.post("c1", [*history, user_message("bye", "u2")])
        await _wait_done(app)
        response = await app.client.get("/api/chat/c1/messages")
        messages = response.json()
        assert [(m["id"], m["role"]) for m in messages] == [
            ("u1", "user"),
            ("a1", "assistant"),
            ("u2", "user"),
            ("a2", "assistant"),
        ]
        texts = [p["text"] for m in messages for p in m["parts"] if p["type"] == "text"]
        assert texts == ["hi", "Hello!", "bye", "Bye"]


async def test_tool_continuation_reuses_the_assistant_message_id(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        app.model.chunks = text_answer(["done"], message_id="something-else")
        assistant = {
            "id": "a1",
            "role": "assistant",
            "parts": [
                {
                    "type": "tool-getLocation",
                    "toolCallId": "tc1",
                    "state": "output-available",
                    "input": {},
                    "output": {"lat": 1},
                },
            ],
        }
        live = await app.post("c1", [user_message("where?"), assistant])
        assert chunks_of(live.text)[0] == {"type": "start", "messageId": "a1"}


async def test_single_use_mode_trims_and_refuses_reuse(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app(mode="single-use", trim_delay_ms=200) as app:
        app.model.chunks = text_answer(WORDS)
        assert (await app.post("c1", [user_message("hi")])).status_code == 200
        await _wait_done(app)
        answer = 1 + 1 + len(text_answer(WORDS)) + 1  # fence, message, 18 chunks, end fence
        assert (await app.basin.check_tail("chat-c1")).seq_num == answer
        assert (await app.post("c1", [user_message("hi")])).status_code == 409
        for _ in range(100):  # the trim follows a while after the end
            if (await app.basin.check_tail("chat-c1")).seq_num == answer + 1:
                break
            await asyncio.sleep(0.02)
        assert await _log(app, "chat-c1") == []
        assert (await app.post("c1", [user_message("hi")])).status_code == 409


class _AheadClock(SystemClock):
    """The system clock, ``ahead_ms`` ahead: lease ages move on a test's word, not a sleep's."""

    def __init__(self) -> None:
        self.ahead_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.ahead_ms


async def test_shared_mode_takes_over_a_silent_generation_after_the_lease(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    clock = _AheadClock()
    # A lease far longer than the test runs, so only the clock below ages it; a short
    # heartbeat keeps the takeover's confirmation window (real time) short.
    options = {"lease_ms": 5000, "heartbeat_ms": 100, "clock": clock}
    async with make_chat_app(mode="shared", trim_delay_ms=50, **options) as app:
        from resumable_chat.s2 import AppendInput, AppendRecord, fence_record

        # a crashed writer: a claim fence and one record, never closed
        await app.basin.append(
            "chat-c1",
            AppendInput([fence_record("session-dead"), AppendRecord(b'{"type":"start"}')]),
        )
        app.model.chunks = text_answer(WORDS)
        assert (await app.post("c1", [user_message("hi")])).status_code == 409
        clock.ahead_ms = 5000  # the crashed writer has now been silent for a lease
        assert (await app.post("c1", [user_message("hi")])).status_code == 200
        await _wait_done(app)
        # The new turn's history is its own at once; the dead turn is trimmed a while later.
        messages = (await app.client.get("/api/chat/c1/messages")).json()
        assert [m["role"] for m in messages] == ["user", "assistant"]
        for _ in range(250):  # S2 applies a trim asynchronously (https://s2.dev/docs/api)
            log = await _log(app, "chat-c1")
            if any(is_trim(r) for r in log) and b"session-dead" not in [r.body for r in log]:
                break
            await asyncio.sleep(0.02)
        assert is_fence(log[0]) and log[0].body.startswith(b"session-")
        assert any(is_trim(r) for r in log)
        assert b"session-dead" not in [r.body for r in log]


async def test_bad_requests_get_readable_4xx(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        c: httpx.AsyncClient = app.client
        r = await c.post(
            "/api/chat", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and "malformed JSON" in r.json()["detail"]
        r = await c.post("/api/chat", json={"messages": [user_message("x")]})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["id"]
        r = await c.post("/api/chat", json={"id": "c1", "messages": []})
        assert r.status_code == 422
        r = await c.post("/api/chat", json={"id": "c1", "messages": [{"id": "x", "role": "robot"}]})
        assert r.status_code == 422
        r = await c.post("/api/chat", json={"id": "bad id!", "messages": [user_message("x")]})
        assert r.status_code == 422
        r = await c.post("/api/chat", content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
        assert r.status_code == 413
        r = await c.get("/api/chat/c1/stream", params={"from": "-1"})
        assert r.status_code == 422
        assert app.model.calls == 0
        assert await app.chat.load_messages("chat-c1") == []


FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "openai-streams"


@pytest.mark.parametrize(
    "recording",
    ["openai-gpt-4o-parallel-tool-calls.jsonl", "vllm-crusoe-llama-3.3-70b.jsonl"],
)
async def test_replay_of_a_recorded_answer_from_every_cut_point(make_chat_app, recording) -> None:  # type: ignore[no-untyped-def]
    path = FIXTURES / recording
    if not path.exists():
        pytest.skip(f"recorded streams not found at {FIXTURES} (../shared is absent)")
    recorded = [c async for c in ai_sdk_chunks(openai_chunks_from_jsonl(path), message_id="rec")]
    async with make_chat_app() as app:
        app.model.chunks = recorded
        app.model.hold_at = len(recorded) - 1
        post = asyncio.create_task(app.post("c1", [user_message("hi")]))
        await app.model.reached_hold.wait()
        await asyncio.sleep(0.05)
        tail = (await app.basin.check_tail("chat-c1")).seq_num
        replays = await _open_replays(app, list(range(tail + 1)))
        app.model.gate.set()
        live = [(int(i), d) for i, d in parse_sse((await post).text) if i is not None]
        assert [json.loads(d) for _, d in live] == as_sent(recorded)
        for k, task in enumerate(replays):
            got = [(int(i), d) for i, d in parse_sse(await task) if i is not None]
            assert got == [(i, d) for i, d in live if i - 1 >= k], f"cut at {k}"


async def test_regenerate_replaces_the_old_answer_in_history(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        app.model.chunks = text_answer(["first"], message_id="a1")
        await app.post("c1", [user_message("hi", "u1")])
        await _wait_done(app)
        app.model.chunks = text_answer(["second"], message_id="a2")
        body = {"id": "c1", "messages": [user_message("hi", "u1")], "trigger": "regenerate-message"}
        assert (await app.client.post("/api/chat", json=body)).status_code == 200
        await _wait_done(app)
        messages = (await app.client.get("/api/chat/c1/messages")).json()
        assert [m["id"] for m in messages] == ["u1", "a2"]


@pytest.mark.parametrize("mode", ["single-use", "shared", "session"])
async def test_a_follower_joined_mid_answer_gets_the_end_in_every_mode(
    basin: Basin, mode: str
) -> None:
    """Single-use mode used to trim the stream in the same batch as the answer's last chunks,
    so a follower a few records behind lost them; the trim now waits (``trim_delay_ms``)."""
    chat = create_resumable_chat(basin=basin, mode=mode)  # type: ignore[arg-type]
    stream = f"chat-follow-end-{mode}"

    async def model(signal: asyncio.Event) -> Any:
        yield {"type": "start", "messageId": "m1"}
        yield {"type": "text-start", "id": "t"}
        for i in range(30):
            yield {"type": "text-delta", "id": "t", "delta": f"w{i} "}
            await asyncio.sleep(0.005)
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}

    async def body(response: Any) -> list[str]:
        out = b""
        async for frame in response.body_iterator:
            out += frame
        return [line[6:] for line in out.decode().splitlines() if line.startswith("data: ")]

    live = asyncio.create_task(body(await chat.make_resumable(stream, model)))
    await asyncio.sleep(0.05)  # mid-answer
    follower = await body(await chat.replay(stream))
    assert follower[-1] == "[DONE]"
    assert follower == await live  # every chunk the live client got, the end included
    await chat.aclose()
