"""Conditional history requests: ``GET .../messages`` carries an ``ETag`` naming the log's
tail, and ``If-None-Match`` with that tag gets 304 while nothing was appended.

What a page that polls the history sees (the example pages do, to show a turn taken in
another tab): the same tag while the chat is idle, a new tag and the new messages after each
turn, on every basin (the embedded log, the S2 server over HTTP, real S2), whose check-tail
and read must agree on the tail.
"""

from __future__ import annotations

from typing import Any

import httpx
from chat_helpers import tanstack_run, tanstack_user, text_answer, user_message
from hypothesis import given
from hypothesis import strategies as st

from resumable_chat.chat.history_tags import EMPTY_HISTORY_TAG, history_tag, tag_matches
from resumable_chat.s2.records import StreamPosition

WORDS = ["Hello", " there", "!"]


async def _history(client: httpx.AsyncClient, route: str, tag: str | None = None) -> httpx.Response:
    headers = {} if tag is None else {"If-None-Match": tag}
    return await client.get(route, headers=headers)


def _assert_not_modified(response: httpx.Response, tag: str) -> None:
    assert response.status_code == 304, (response.status_code, response.text[:300])
    assert response.content == b""
    assert response.headers["etag"] == tag


async def test_ai_sdk_history_is_304_until_a_turn_changes_it(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    route = "/api/chat/c1/messages"
    async with make_chat_app() as app:
        # a chat nobody wrote: [] under the empty tag, and 304 for it
        empty = await _history(app.client, route)
        assert empty.status_code == 200 and empty.json() == []
        assert empty.headers["etag"] == EMPTY_HISTORY_TAG
        assert empty.headers["cache-control"] == "no-cache"
        _assert_not_modified(
            await _history(app.client, route, EMPTY_HISTORY_TAG), EMPTY_HISTORY_TAG
        )

        # a finished turn: the POST's response ends once the answer's end is stored
        app.model.chunks = text_answer(WORDS, message_id="a1")
        first = await app.post("c1", [user_message("hi", "u1")])
        assert first.status_code == 200
        after_first = await _history(app.client, route, EMPTY_HISTORY_TAG)
        assert after_first.status_code == 200
        assert [(m["id"], m["role"]) for m in after_first.json()] == [
            ("u1", "user"),
            ("a1", "assistant"),
        ]
        tag = after_first.headers["etag"]
        assert tag != EMPTY_HISTORY_TAG
        _assert_not_modified(await _history(app.client, route, tag), tag)
        # a list of tags, the strong form of the same tag, and `*` all match; others do not
        _assert_not_modified(await _history(app.client, route, f'"nope", {tag}'), tag)
        _assert_not_modified(await _history(app.client, route, tag.removeprefix("W/")), tag)
        _assert_not_modified(await _history(app.client, route, "*"), tag)
        other = await _history(app.client, route, 'W/"1-2", garbage')
        assert other.status_code == 200 and other.json() == after_first.json()

        # a running answer: its question is new history (a new tag), the answer is not yet
        app.model.chunks = text_answer(["Bye"], message_id="a2")
        app.model.hold_at = 2
        history = [user_message("hi", "u1"), {"id": "a1", "role": "assistant", "parts": []}]
        async with app.client.stream(
            "POST",
            "/api/chat",
            json={"id": "c1", "messages": [*history, user_message("bye", "u2")]},
        ) as second:
            assert second.status_code == 200
            await app.model.reached_hold.wait()
            during = await _history(app.client, route, tag)
            assert during.status_code == 200
            assert [m["id"] for m in during.json()] == ["u1", "a1", "u2"]
            app.model.gate.set()
            await second.aread()
        ended = await _history(app.client, route, during.headers["etag"])
        assert ended.status_code == 200
        assert [m["id"] for m in ended.json()] == ["u1", "a1", "u2", "a2"]
        last = ended.headers["etag"]
        assert len({tag, during.headers["etag"], last}) == 3
        _assert_not_modified(await _history(app.client, route, last), last)


async def test_tanstack_history_is_304_until_a_run_changes_it(make_tanstack_app) -> None:  # type: ignore[no-untyped-def]
    route = "/api/tanstack/chat/c1/messages"
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(WORDS)
        assert (await app.post("c1", [tanstack_user("hi")])).status_code == 202
        generation = app.chat.engine.generation("tanstack-c1")
        if generation is not None:  # else it ended already
            await generation.task  # the run ends in the background
        response = await _history(app.client, route)
        assert response.status_code == 200
        assert [(m["id"], m["role"]) for m in response.json()] == [
            ("u1", "user"),
            ("a1", "assistant"),
        ]
        tag = response.headers["etag"]
        _assert_not_modified(await _history(app.client, route, tag), tag)
        other: Any = await _history(app.client, route, EMPTY_HISTORY_TAG)
        assert other.status_code == 200 and other.json() == response.json()


def test_the_tag_names_the_tail() -> None:
    assert history_tag(StreamPosition(42, 1764979200000)) == 'W/"42-1764979200000"'
    assert history_tag(StreamPosition(0, 0)) == EMPTY_HISTORY_TAG


@given(
    seq=st.integers(0, 2**64 - 1),
    ts=st.integers(0, 2**64 - 1),
    others=st.lists(st.text(alphabet='W/"0123456789-, *x', max_size=12), max_size=4),
    weak=st.booleans(),
)
def test_a_header_matches_exactly_when_it_lists_the_tag_or_star(
    seq: int, ts: int, others: list[str], weak: bool
) -> None:
    tag = history_tag(StreamPosition(seq, ts))
    listed = tag if weak else tag.removeprefix("W/")
    header = ", ".join([*others, listed])
    assert tag_matches(header, tag)
    unrelated = ", ".join(o for o in others if "," not in o)
    members = [m.strip() for m in unrelated.split(",")]
    expected = any(m == "*" or m.removeprefix("W/") == tag.removeprefix("W/") for m in members)
    assert tag_matches(unrelated, tag) == expected
