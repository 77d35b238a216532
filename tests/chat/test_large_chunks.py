"""Chunks larger than one S2 record (1 MiB metered).

A delta (AI SDK ``text-delta``, ``reasoning-delta``, ``tool-input-delta``; TanStack
``TEXT_MESSAGE_CONTENT``, ``REASONING_MESSAGE_CONTENT``, ``TOOL_CALL_ARGS``) is cut into
consecutive deltas, each its own record and SSE event: the client folds them into the same
text. A chunk that cannot be cut (a tool output, a data part) ends the answer with the error
chunk; nothing of it is sent or stored. Before, any chunk over 1 MiB ended the answer with
the error chunk.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from chat_helpers import chunks_of, parse_sse, tanstack_run, tanstack_user, user_message
from hypothesis import given, settings
from hypothesis import strategies as st

from js_client import run_ui_stream_validator_batch
from resumable_chat.chat import (
    ChunkTooLargeError,
    MessageTooLargeError,
    encode_chunk,
    split_text_field,
)
from resumable_chat.chat.core import _storable
from resumable_chat.log.fragments import FRAGMENT_HEADER
from resumable_chat.log.records import MAX_DATA_BODY_BYTES
from resumable_chat.log.scan import read_range
from resumable_chat.protocols.tanstack.dialect import TanStackDialect

#: 1.2 million characters of every kind JSON writes differently: ASCII, a quote and a
#: backslash (2 bytes), a control character (6), a 2-byte letter and an emoji (4 bytes).
BIG_TEXT = ("plain ascii text " * 4 + 'q"b\\s\x01 é 🙂\n') * 15_000
BIG_REASONING = "why " * 300_000


def _stored_size(chunk: dict[str, Any]) -> int:
    return len(encode_chunk(chunk))


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(st.characters(exclude_categories=("Cs",)), min_size=2, max_size=300),
    max_bytes=st.integers(min_value=48, max_value=200),
)
def test_pieces_join_to_the_text_and_each_fits(text: str, max_bytes: int) -> None:
    chunk = {"type": "text-delta", "id": "t", "delta": text}
    pieces = split_text_field(chunk, "delta", max_bytes, _stored_size)
    assert pieces is not None
    assert "".join(p["delta"] for p in pieces) == text
    for index, piece in enumerate(pieces):
        assert piece["delta"] and {**piece, "delta": ""} == {**chunk, "delta": ""}
        assert _stored_size(piece) <= max_bytes
        if index < len(pieces) - 1:  # as long as fits: one character more would not
            longer = {**piece, "delta": piece["delta"] + pieces[index + 1]["delta"][0]}
            assert _stored_size(longer) > max_bytes


def test_what_cannot_be_cut_is_left_alone() -> None:
    assert split_text_field({"type": "x", "delta": "a"}, "delta", 100, _stored_size) is None
    assert split_text_field({"type": "x", "delta": 5}, "delta", 100, _stored_size) is None
    no_room = {"type": "x", "id": "y" * 100, "delta": "abc"}
    assert split_text_field(no_room, "delta", 100, _stored_size) is None


def test_tanstack_pieces_carry_the_running_content_up_to_their_end() -> None:
    dialect = TanStackDialect()
    chunk = {
        "type": "TEXT_MESSAGE_CONTENT",
        "messageId": "a1",
        "delta": "0123456789" * 20,
        "content": "before " + "0123456789" * 20,
    }

    def stored(piece: dict[str, Any]) -> int:
        return _stored_size(dialect.storage_form(piece))

    pieces = dialect.split_chunk(chunk, 120, stored)
    assert pieces is not None and len(pieces) > 1
    assert "".join(p["delta"] for p in pieces) == chunk["delta"]
    text = "before "
    for piece in pieces:
        text += piece["delta"]
        assert piece["content"] == text
        assert stored(piece) <= 120
    # a content that does not end with the delta stays on the last piece only
    odd = dialect.split_chunk({**chunk, "content": "unrelated"}, 120, stored)
    assert odd is not None
    assert ["content" in p for p in odd] == [False] * (len(odd) - 1) + [True]
    args = {"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": "{" + '"k":1,' * 40 + "}"}
    cut = dialect.split_chunk(args, 120, stored)
    assert cut is not None and "".join(p["delta"] for p in cut) == args["delta"]
    result = {"type": "TOOL_CALL_RESULT", "toolCallId": "c1", "content": "x" * 500}
    assert dialect.split_chunk(result, 120, stored) is None


def _answer() -> list[dict[str, Any]]:
    return [
        {"type": "start", "messageId": "a1"},
        {"type": "reasoning-start", "id": "r"},
        {"type": "reasoning-delta", "id": "r", "delta": BIG_REASONING},
        {"type": "reasoning-end", "id": "r"},
        {"type": "text-start", "id": "t"},
        {"type": "text-delta", "id": "t", "delta": BIG_TEXT},
        {"type": "text-delta", "id": "t", "delta": " end"},
        {"type": "text-end", "id": "t"},
        {"type": "finish"},
    ]


async def test_a_delta_over_one_record_is_cut_and_the_answer_is_whole(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    """Live, in the log, in history and for the real AI SDK client, the answer is whole: the
    deltas joined are the source's text; every record fits S2; a resume from the id of the
    first piece gets the rest of the text."""
    async with make_chat_app() as app:
        app.model.chunks = _answer()
        app.model.hold_at = 6  # after the big text-delta
        body = {"id": "c1", "messages": [user_message("hi")]}
        async with app.client.stream("POST", "/api/chat", json=body) as response:
            assert response.status_code == 200
            text, first_piece, parts = "", None, response.aiter_text()
            async for part in parts:
                text += part
                events = parse_sse(text.rpartition("\n\n")[0] + "\n\n")
                pieces = [i for i, d in events if d.startswith('{"type":"text-delta"')]
                if pieces:
                    first_piece = pieces[0]
                    break
            await app.model.reached_hold.wait()
            async with app.client.stream(
                "GET", "/api/chat/c1/stream", headers={"Last-Event-ID": str(first_piece)}
            ) as resumed:
                assert resumed.status_code == 200
                app.model.gate.set()
                rest = chunks_of((await resumed.aread()).decode())
            async for part in parts:
                text += part
        sent = chunks_of(text)

        texts = [c["delta"] for c in sent if c["type"] == "text-delta"]
        assert "".join(texts) == BIG_TEXT + " end"
        assert len(texts) > 2 and all(len(t) < len(BIG_TEXT) for t in texts)
        reasoning = [c["delta"] for c in sent if c["type"] == "reasoning-delta"]
        assert "".join(reasoning) == BIG_REASONING and len(reasoning) > 1
        assert not [c for c in sent if c["type"] == "error"]
        ids = [int(i) for i, data in parse_sse(text) if i is not None]
        assert ids == sorted(set(ids))
        assert "".join(c["delta"] for c in rest if c["type"] == "text-delta") == "".join(texts[1:])

        stored = await read_range(app.basin, "chat-c1", 0)
        assert all(len(r.body) <= MAX_DATA_BODY_BYTES for r in stored)
        history = (await app.client.get("/api/chat/c1/messages")).json()
        parts = history[-1]["parts"]
        assert [p.get("text") for p in parts if p["type"] == "text"] == [BIG_TEXT + " end"]
        assert [p.get("text") for p in parts if p["type"] == "reasoning"] == [BIG_REASONING]

    result = run_ui_stream_validator_batch([text], packages=("ai",))["ai"][0]
    assert result["ok"], result["error"]
    shown = [p["text"] for p in result["message"]["parts"] if p["type"] == "text"]
    assert shown == [BIG_TEXT + " end"]


#: A generated image's worth of base64: a tool output no dialect can cut, over two records.
BIG_OUTPUT = {"image": "iVBORw0KGgo" * 250_000}


def _tool_answer(output: Any) -> list[dict[str, Any]]:
    return [
        {"type": "start", "messageId": "a1"},
        {"type": "tool-input-available", "toolCallId": "c", "toolName": "draw", "input": {}},
        {"type": "tool-output-available", "toolCallId": "c", "output": output},
        {"type": "text-start", "id": "t"},
        {"type": "text-delta", "id": "t", "delta": "drawn"},
        {"type": "text-end", "id": "t"},
        {"type": "finish"},
    ]


async def test_a_chunk_that_cannot_be_cut_is_stored_in_fragments(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    """A tool output over one record (a generated image): sent live as one chunk, stored in
    fragment records that each fit S2, and whole for a resume that starts before it, for
    a resume from the id it was sent with (nothing again), in history and for the real AI
    SDK client. Before, the answer ended with the error chunk."""
    async with make_chat_app() as app:
        app.model.chunks = _tool_answer(BIG_OUTPUT)
        app.model.hold_at = 3  # after the tool output
        body = {"id": "c1", "messages": [user_message("draw")]}
        async with app.client.stream("POST", "/api/chat", json=body) as response:
            assert response.status_code == 200
            text, parts = "", response.aiter_text()
            async for part in parts:
                text += part
                if '"tool-output-available"' in part or '"tool-output-available"' in text:
                    break
            await app.model.reached_hold.wait()
            input_id = next(
                i for i, d in parse_sse(text.rpartition("\n\n")[0]) if '"tool-input-av' in d
            )
            async with app.client.stream("GET", "/api/chat/c1/stream") as from_start:
                async with app.client.stream(
                    "GET", "/api/chat/c1/stream", headers={"Last-Event-ID": str(input_id)}
                ) as from_before:
                    app.model.gate.set()
                    async for part in parts:
                        text += part
                    replayed = chunks_of((await from_start.aread()).decode())
                    after_input = chunks_of((await from_before.aread()).decode())
        sent = chunks_of(text)
        assert [c["type"] for c in sent] == [c["type"] for c in _tool_answer(None)]
        (output,) = [c["output"] for c in sent if c["type"] == "tool-output-available"]
        assert output == BIG_OUTPUT
        assert replayed == sent
        assert after_input == sent[2:]  # from after the tool input
        events = parse_sse(text)
        output_id = next(int(i) for i, d in events if '"tool-output-available"' in d)
        async with app.client.stream(
            "GET", "/api/chat/c1/stream", headers={"Last-Event-ID": str(output_id)}
        ) as after_output:
            assert after_output.status_code in (200, 204)  # 204: the answer has ended

        stored = await read_range(app.basin, "chat-c1", 0)
        fragments = [r for r in stored if r.headers and r.headers[0][0] == b"rc-part"]
        assert len(fragments) >= 2 and all(len(r.body) <= MAX_DATA_BODY_BYTES for r in stored)
        assert output_id == fragments[-1].seq_num + 1  # the live id is the last fragment's
        history = (await app.client.get("/api/chat/c1/messages")).json()
        (tool,) = [p for p in history[-1]["parts"] if p["type"] == "tool-draw"]
        assert tool["output"] == BIG_OUTPUT and tool["state"] == "output-available"

    result = run_ui_stream_validator_batch([text], packages=("ai",))["ai"][0]
    assert result["ok"], result["error"]


async def test_a_chunk_over_the_fragment_limit_ends_the_answer_with_the_error_chunk(
    make_chat_app,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tool output over the records one chunk may span: the answer ends with the error
    chunk (``on_error`` gets :class:`ChunkTooLargeError`), nothing of the output is sent or
    stored, history shows the error, and the next turn is answered."""
    monkeypatch.setattr("resumable_chat.log.fragments.MAX_FRAGMENTS", 2)
    errors: list[BaseException] = []

    def on_error(exc: BaseException) -> str:
        errors.append(exc)
        return "too large to keep"

    async with make_chat_app(on_error=on_error) as app:
        app.model.chunks = [
            {"type": "start", "messageId": "a1"},
            {"type": "tool-input-available", "toolCallId": "c", "toolName": "big", "input": {}},
            {"type": "tool-output-available", "toolCallId": "c", "output": "x" * 2_200_000},
            {"type": "finish"},
        ]
        first = user_message("hi")
        response = await app.post("c1", [first])
        assert response.status_code == 200
        sent = chunks_of(response.text)
        assert [c["type"] for c in sent][-2:] == ["message-metadata", "error"]
        assert not [c for c in sent if c["type"] == "tool-output-available"]
        assert response.text.endswith("data: [DONE]\n\n")
        assert sent[-1]["errorText"] == "too large to keep"
        assert [type(e) for e in errors] == [ChunkTooLargeError]
        assert "'tool-output-available'" in str(errors[0])
        stored = await read_range(app.basin, "chat-c1", 0)
        assert all(b"tool-output-available" not in r.body for r in stored)
        assert all(b"xxxx" not in r.body for r in stored)
        history = (await app.client.get("/api/chat/c1/messages")).json()
        assert history[-1]["metadata"]["error"]

        app.model.chunks = [
            {"type": "start", "messageId": "a2"},
            {"type": "text-start", "id": "t"},
            {"type": "text-delta", "id": "t", "delta": "fine"},
            {"type": "text-end", "id": "t"},
            {"type": "finish"},
        ]
        history_ids = [m["id"] for m in history]
        assert history_ids[-1] == "a1"
        again = await app.client.post(
            "/api/chat",
            json={"id": "c1", "messages": [*history, user_message("again", "u2")]},
        )
        assert again.status_code == 200, again.text
        assert [c["type"] for c in chunks_of(again.text)][-1] == "finish"
        assert json.dumps(chunks_of(again.text)).count("fine") == 1


async def test_large_answers_resume_over_http(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    """The whole answer is readable from the log by a resume that starts at its beginning."""
    async with make_chat_app() as app:
        app.model.chunks = _answer()
        app.model.hold_at = 8  # before text-end
        post = asyncio.create_task(app.post("c1", [user_message("hi")]))
        await app.model.reached_hold.wait()
        async with app.client.stream("GET", "/api/chat/c1/stream") as resumed:
            assert resumed.status_code == 200
            app.model.gate.set()
            replayed = chunks_of((await resumed.aread()).decode())
        live = chunks_of((await post).text)
        assert replayed == live


async def _replay_until_answered(client: Any, chat_id: str) -> list[dict[str, Any]]:
    """The events of a TanStack session replay of ``chat_id`` until the answer is in them: a
    snapshot holding it once the run has finished, or the running run up to RUN_FINISHED."""
    params = {"id": chat_id}
    async with client.stream("GET", "/api/tanstack/chat/replay", params=params) as live:
        assert live.status_code == 200
        seen = ""
        async for text in live.aiter_text():
            seen += text
            events = [json.loads(d) for _, d in parse_sse(seen.rpartition("\n\n")[0])]
            if any(e["type"] == "RUN_FINISHED" for e in events) or any(
                m["role"] == "assistant"
                for e in events
                if e["type"] == "MESSAGES_SNAPSHOT"
                for m in e["messages"]
            ):
                return events
    raise AssertionError(f"the replay ended without the answer: {seen[-300:]}")


async def test_a_tanstack_delta_over_one_record_is_cut(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    """TanStack: the run is stored as deltas that fit S2 and history holds the whole text."""
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(["start ", BIG_TEXT])
        response = await app.post("c1", [tanstack_user("hi")])
        assert response.status_code == 202

        # the session replay: a snapshot holding the answer once the run has finished, or
        # the running run live up to its RUN_FINISHED
        await _replay_until_answered(app.client, "c1")
        history = (await app.client.get("/api/tanstack/chat/c1/messages")).json()
        text = [p["content"] for p in history[-1]["parts"] if p["type"] == "text"]
        assert text == ["start " + BIG_TEXT]
        stored = await read_range(app.basin, "tanstack-c1", 0)
        deltas = [json.loads(r.body) for r in stored if b'"TEXT_MESSAGE_CONTENT"' in r.body]
        assert len(deltas) > 3 and all("content" not in d for d in deltas)
        assert all(len(r.body) <= MAX_DATA_BODY_BYTES for r in stored)


async def test_a_tanstack_tool_result_over_one_record_is_stored_in_fragments(
    make_tanstack_app,
) -> None:  # type: ignore[no-untyped-def]
    """TanStack: a ``TOOL_CALL_RESULT`` too large for one record (no dialect cuts it) is in
    history whole, and in the snapshot a new tab loads."""
    content = json.dumps(BIG_OUTPUT)
    async with make_tanstack_app() as app:
        app.model.chunks = [
            {"type": "RUN_STARTED", "runId": "r1", "threadId": "t"},
            {
                "type": "TOOL_CALL_START",
                "toolCallId": "tc",
                "toolCallName": "draw",
                "parentMessageId": "a1",
            },
            {"type": "TOOL_CALL_ARGS", "toolCallId": "tc", "delta": "{}"},
            {"type": "TOOL_CALL_END", "toolCallId": "tc", "toolCallName": "draw"},
            {"type": "TOOL_CALL_RESULT", "toolCallId": "tc", "messageId": "a1", "content": content},
            *tanstack_run(["drawn"])[1:],
        ]
        assert (await app.post("c1", [tanstack_user("draw")])).status_code == 202
        events = await _replay_until_answered(app.client, "c1")
        results = [e["content"] for e in events if e["type"] == "TOOL_CALL_RESULT"] + [
            p["content"]
            for e in events
            if e["type"] == "MESSAGES_SNAPSHOT"
            for m in e["messages"]
            for p in m["parts"]
            if p["type"] == "tool-result"
        ]
        assert results == [content]
        history = (await app.client.get("/api/tanstack/chat/c1/messages")).json()
        (call,) = [p for p in history[-1]["parts"] if p["type"] == "tool-call"]
        assert call["output"] == BIG_OUTPUT
        stored = await read_range(app.basin, "tanstack-c1", 0)
        assert all(len(r.body) <= MAX_DATA_BODY_BYTES for r in stored)


async def _replay_from(client: Any, chat_id: str, cursor: int) -> list[tuple[str, str]]:
    """``(id, type)`` of the events of a TanStack session replay of ``chat_id`` from
    ``cursor``, up to the run's ``RUN_FINISHED`` (the replay follows on after it)."""
    params = {"id": chat_id, "from": str(cursor)}
    async with client.stream("GET", "/api/tanstack/chat/replay", params=params) as replay:
        assert replay.status_code == 200
        seen = ""
        async for text in replay.aiter_text():
            seen += text
            events = [(i, json.loads(d)["type"]) for i, d in parse_sse(seen.rpartition("\n\n")[0])]
            if any(kind == "RUN_FINISHED" for _, kind in events):
                return events
    raise AssertionError(f"the replay ended before RUN_FINISHED: {seen[-300:]}")


async def test_a_cursor_between_fragments_still_gets_that_chunk(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    """A replay from a cursor no frame carried, pointing between the fragments of a chunk
    (a client made it up): the chunk's id is above the cursor, so it comes, whole, read from
    its first fragment; then the rest of the run."""
    content = json.dumps(BIG_OUTPUT)
    async with make_tanstack_app() as app:
        app.model.chunks = [
            {"type": "RUN_STARTED", "runId": "r1", "threadId": "t"},
            {"type": "TOOL_CALL_RESULT", "toolCallId": "tc", "messageId": "a1", "content": content},
            *tanstack_run(["drawn"])[1:],
        ]
        assert (await app.post("c1", [tanstack_user("draw")])).status_code == 202
        await _replay_until_answered(app.client, "c1")
        stored = await read_range(app.basin, "tanstack-c1", 0)
        fragments = [r.seq_num for r in stored if any(h[0] == FRAGMENT_HEADER for h in r.headers)]
        assert len(fragments) >= 2
        for cursor in range(fragments[0] - 1, fragments[-1] + 1):
            events = await asyncio.wait_for(_replay_from(app.client, "c1", cursor), 10)
            results = [i for i, kind in events if kind == "TOOL_CALL_RESULT"]
            if cursor <= fragments[-1]:  # the chunk's id is its last fragment's seq_num + 1
                assert results == [str(fragments[-1] + 1)], cursor
            assert all(int(i) > cursor for i, _ in events), cursor


def test_a_stored_message_leaves_room_for_the_sse_id_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A turn's message whose record would not fit S2 with the ``sse-id`` header a remote
    stop can add to it (not only one past 1 MiB) is stored in fragments; one over the
    records a message may span is refused (413 from the routes)."""
    from resumable_chat.log.fragments import fragment_records

    def record(text: str) -> dict[str, Any]:
        part = {"type": "text", "text": text}
        return {"type": "ui-message", "message": {"id": "u1", "role": "user", "parts": [part]}}

    room = MAX_DATA_BODY_BYTES - len(encode_chunk(record("")))
    assert [len(b) for b in _storable([record("a" * room)])] == [MAX_DATA_BODY_BYTES]
    (body,) = _storable([record("a" * (room + 1))])
    assert len(fragment_records(body) or []) == 2
    monkeypatch.setattr("resumable_chat.log.fragments.MAX_FRAGMENTS", 1)
    with pytest.raises(MessageTooLargeError, match="S2 records"):
        _storable([record("a" * (room + 1))])


#: A photo's worth of data URL: a message holding it is over three S2 records.
BIG_PHOTO = "data:image/jpeg;base64," + "/9j/4AAQSkZJRgABAQ" * 180_000


async def _serve_with_body_limit(protocol: str, basin: Any, model: Any, limit: int) -> Any:
    from fastapi import FastAPI

    from resumable_chat import create_resumable_chat
    from resumable_chat.fastapi import ai_sdk_router, tanstack_router

    chat = create_resumable_chat(protocol=protocol, basin=basin)
    app = FastAPI()
    router = ai_sdk_router if protocol == "ai-sdk" else tanstack_router
    app.include_router(router(chat, model.stream, max_body_bytes=limit))
    return chat, app


@pytest.mark.parametrize("protocol", ["ai-sdk", "tanstack"])
async def test_a_message_with_attachments_over_one_record_is_stored_whole(
    basin: Any, protocol: str
) -> None:
    """A router that accepts large bodies: a user message with a 3 MB photo is stored in
    fragment records, reaches the source and comes back whole in history."""
    import httpx
    from chat_helpers import ScriptedModel

    from resumable_chat import create_resumable_chat
    from resumable_chat.testing.app_server import serve_app

    model = ScriptedModel()
    chat, app = await _serve_with_body_limit(protocol, basin, model, 8 * 1024 * 1024)
    if protocol == "ai-sdk":
        model.chunks = [{"type": "start"}, {"type": "finish"}]
        photo = {"type": "file", "mediaType": "image/jpeg", "url": BIG_PHOTO}
        user = user_message("what is this?")
        path, stream = "/api/chat", "chat-p1"
    else:
        model.chunks = tanstack_run(["a photo"])
        photo = {"type": "image", "source": {"type": "url", "value": BIG_PHOTO}}
        user = tanstack_user("what is this?")
        path, stream = "/api/tanstack/chat", "tanstack-p1"
    user["parts"].append(photo)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        response = await client.post(path, json={"id": "p1", "messages": [user]})
        assert response.status_code in (200, 202), response.text[-300:]
        await chat.aclose(drain_timeout_s=10)  # the answer has ended and is stored
        assert model.seen_messages[0][-1]["parts"][-1] == photo
    reader = create_resumable_chat(protocol=protocol, basin=basin)  # another instance
    history = await reader.load_messages(stream)
    await reader.aclose()
    assert history[0]["parts"][-1] == photo
    assert history[-1]["role"] == "assistant"
    stored = await read_range(basin, stream, 0)
    assert sum(1 for r in stored if r.headers and r.headers[0][0] == b"rc-part") >= 3
    assert all(len(r.body) <= MAX_DATA_BODY_BYTES for r in stored)
