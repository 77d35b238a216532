"""Two instances of the example app racing on one S2 basin over a network that drops
connections.

Both instances reach the bundled S2 server through :class:`~flaky_network.FlakyProxy`,
which resets 40 % of the connections after a random 0-8,000 bytes of the response: appends
land with their ack lost, reads and read sessions break mid-answer, stop requests are cut.
Every chat sends the same first message to A and B at once (two tabs), some are stopped from
the other instance, some followed there. What a user sees must hold all the same:

- one of the racing requests answers (200 / 202), the other gets 409; S2 trouble may answer
  503 (``Retry-After``), never another 5xx;
- the live answer ends properly (``finish`` or, after a stop, ``abort`` / ``RUN_FINISHED``),
  and the history on both instances is exactly what the live client saw (nothing dropped
  after a stop, no answer closed as crashed);
- the next turn is accepted on the other instance right after the answer's end;
- neither instance judged a live writer crashed or fenced it out.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from example_apps import ExampleApp, example_app, new_chat_id
from flaky_network import FlakyProxy, flaky_proxy

from helpers import parse_sse

pytestmark = pytest.mark.timeout(240)

SEED = 20261205
#: Chats per round, all at once, and rounds.
CONCURRENT, ROUNDS = 8, 3
#: What a route may answer under S2 trouble besides its success and conflict answers.
UNAVAILABLE = 503


@pytest.fixture(scope="module")
def flaky_pair(
    s2_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FlakyProxy, ExampleApp, ExampleApp]]:
    """A and B on one basin behind one :class:`FlakyProxy` (cutting once both are up)."""
    port = int(s2_server_url.rsplit(":", 1)[1])
    log_dir = tmp_path_factory.mktemp("flaky")
    with flaky_proxy(port, cut_share=0.4, max_bytes=8000, seed=SEED) as proxy:
        env = {
            "CHAT_TOKEN_DELAY_MS": "20",
            "CHAT_LEASE_MS": "5000",
            "S2_ACCESS_TOKEN": "test",
            "S2_BASIN": f"flaky-{uuid.uuid4().hex[:12]}",
            "S2_ACCOUNT_ENDPOINT": proxy.url,
            "S2_BASIN_ENDPOINT": proxy.url,
        }
        with example_app(env, log_dir) as a, example_app(env, log_dir) as b:
            proxy.cutting = True
            yield proxy, a, b


Events = list[tuple[str | None, str]]


T = TypeVar("T")


def _status_code(response: httpx.Response) -> int:
    return response.status_code


async def _retried(
    call: Callable[[], Awaitable[T]],
    status: Callable[[T], int] = _status_code,
) -> T:
    """``call()`` again while its ``status`` is 503, as a client honouring ``Retry-After``
    would (a fifth of the advised second: the test has many to make)."""
    for _ in range(20):
        result = await call()
        if status(result) != UNAVAILABLE:
            return result
        await asyncio.sleep(0.2)
    return result


@dataclass
class _Progress:
    """``reached`` is set once a stream read with it (:func:`_sse`) has shown ``deltas``
    text deltas (AI SDK ``text-delta``, TanStack ``TEXT_MESSAGE_CONTENT``): what a stop or a
    follower waits for, instead of a time."""

    deltas: int
    reached: asyncio.Event = field(default_factory=asyncio.Event)

    def saw(self, events: Events) -> None:
        shown = sum('"text-delta"' in d or '"TEXT_MESSAGE_CONTENT"' in d for _, d in events)
        if shown >= self.deltas:
            self.reached.set()


async def _sse(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    progress: _Progress | None = None,
    until: Callable[[Events], bool] | None = None,
    **kwargs: Any,
) -> tuple[int, Events]:
    """Status and ``(id, data)`` events of one SSE response, read to its end (or until
    ``until(events)`` holds), telling ``progress`` as it goes."""
    async with client.stream(method, url, **kwargs) as response:
        if response.status_code != 200:
            return response.status_code, []
        text = ""
        events: Events = []
        async for piece in response.aiter_text():
            text += piece
            if progress is None and until is None:
                continue
            events = parse_sse(text)
            if progress is not None:
                progress.saw(events)
            if until is not None and until(events):
                break
        return 200, parse_sse(text)


async def _either(event: asyncio.Event, task: asyncio.Future[Any]) -> bool:
    """Wait until ``event`` is set or ``task`` is done; True when the event was set."""
    waiting = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiting, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    return event.is_set()


def _chunks(events: list[tuple[str | None, str]]) -> list[dict[str, Any]]:
    return [json.loads(data) for _, data in events if data.startswith("{")]


def _text(chunks: list[dict[str, Any]], kind: str) -> str:
    return "".join(c["delta"] for c in chunks if c["type"] == kind)


def _answer_text(history: list[dict[str, Any]], key: str) -> str:
    """The text of the history's last answer ("" when the turn has none: stopped before it
    began)."""
    last = history[-1]
    if last["role"] != "assistant":
        return ""
    return "".join(p.get(key, "") for p in last["parts"] if p["type"] == "text")


def _user(text: str, key: str) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex[:8], "role": "user", "parts": [{"type": "text", key: text}]}


def _no_takeover(*apps: ExampleApp) -> None:
    for app in apps:
        log = app.log_tail(2_000_000)
        for sign in ("wrote nothing for a lease", "was taken over", "Traceback"):
            assert sign not in log, f"{app.base_url}: {sign!r}\n{app.log_tail()}"


async def _ai_sdk_chat(
    client: httpx.AsyncClient, a: ExampleApp, b: ExampleApp, rng: random.Random
) -> str:
    chat = new_chat_id("flaky")
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    body = {"id": chat, "messages": [_user("w0 w1 w2", "text")], "trigger": "submit-message"}
    action = rng.choice(["none", "stop", "follow"])
    progress = _Progress(rng.randint(1, 30))  # the stop or the follow comes after this many

    async def post(app: ExampleApp) -> tuple[int, Events]:
        return await _sse(client, "POST", f"{app.base_url}/api/chat", progress=progress, json=body)

    posts = asyncio.ensure_future(asyncio.gather(post(first), post(second)))

    async def side() -> tuple[int, Events] | None:
        if not await _either(progress.reached, posts):
            return None  # no answer got that far
        if action == "stop":
            url = f"{second.base_url}/api/chat/{chat}/stream"
            stopped = await _retried(lambda: client.delete(url))
            assert stopped.status_code in (202, 204), stopped.text
            return None
        if action == "follow":
            return await _sse(client, "GET", f"{second.base_url}/api/chat/{chat}/stream")
        return None

    (one, two), followed = await asyncio.gather(posts, side())
    statuses = sorted([one[0], two[0]])
    assert set(statuses) <= {200, 409, UNAVAILABLE}, statuses
    answered = [events for status, events in (one, two) if status == 200]
    if len(answered) != 1:
        # both 503, or a stop ended the first answer before the second request was decided
        return f"{statuses}"
    live = answered[0]
    assert live[-1] == (None, "[DONE]"), live[-3:]
    chunks = _chunks(live)
    ending = chunks[-1]["type"]
    assert ending in ("finish", "abort"), chunks[-3:]
    text = _text(chunks, "text-delta")
    if followed is not None and followed[0] == 200 and followed[1][-1:] == [(None, "[DONE]")]:
        assert _text(_chunks(followed[1]), "text-delta") == text
    histories = await _histories(client, f"/api/chat/{chat}/messages", a, b)
    assert _answer_text(histories[0], "text") == text, ending
    nxt = {"id": chat, "messages": [*histories[0], _user("next", "text")]}
    url = f"{second.base_url}/api/chat"
    status, events = await _retried(
        functools.partial(_sse, client, "POST", url, json=nxt), status=lambda got: got[0]
    )
    assert status == 200 and events[-1] == (None, "[DONE]"), (status, events[-3:])
    return ending


async def _histories(
    client: httpx.AsyncClient, path: str, a: ExampleApp, b: ExampleApp
) -> list[list[dict[str, Any]]]:
    """The chat's history (``GET path``) from A and from B, which must agree."""
    histories = []
    for app in (a, b):
        response = await _retried(functools.partial(client.get, app.base_url + path))
        assert response.status_code == 200, response.text
        histories.append(response.json())
    assert histories[0] == histories[1]
    return histories


Chat = Callable[[httpx.AsyncClient, ExampleApp, ExampleApp, random.Random], Awaitable[str]]


async def _rounds(chat: Chat, a: ExampleApp, b: ExampleApp, rng: random.Random) -> list[str]:
    """:data:`ROUNDS` rounds of :data:`CONCURRENT` chats at once; their outcomes."""
    outcomes: list[str] = []
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0), limits=limits) as client:
        for _ in range(ROUNDS):
            outcomes += await asyncio.gather(*(chat(client, a, b, rng) for _ in range(CONCURRENT)))
    return outcomes


async def test_ai_sdk_racing_turns_stops_and_followers(
    flaky_pair: tuple[FlakyProxy, ExampleApp, ExampleApp],
) -> None:
    proxy, a, b = flaky_pair
    outcomes = await _rounds(_ai_sdk_chat, a, b, random.Random(SEED))
    assert proxy.cuts > 0, "the proxy cut nothing"
    assert outcomes.count("finish") + outcomes.count("abort") >= len(outcomes) // 2, outcomes
    _no_takeover(a, b)


async def _tanstack_chat(
    client: httpx.AsyncClient, a: ExampleApp, b: ExampleApp, rng: random.Random
) -> str:
    chat = new_chat_id("flaky-ts")
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    watcher = rng.choice([a, b])
    body = {"id": chat, "messages": [_user("w0 w1 w2", "content")]}
    stop = rng.random() < 0.5

    def ended(events: Events) -> bool:
        return any('"RUN_FINISHED"' in d or '"RUN_ERROR"' in d for _, d in events)

    # the user message's echo is one TEXT_MESSAGE_CONTENT: the stop comes within the answer
    progress = _Progress(rng.randint(2, 30))
    url = f"{watcher.base_url}/api/tanstack/chat/replay?id={chat}"
    watching = asyncio.ensure_future(_sse(client, "GET", url, progress=progress, until=ended))

    async def post(app: ExampleApp) -> int:
        return (await client.post(f"{app.base_url}/api/tanstack/chat", json=body)).status_code

    statuses = sorted(await asyncio.gather(post(first), post(second)))
    assert set(statuses) <= {202, 409, UNAVAILABLE}, statuses
    if statuses.count(202) != 1:
        watching.cancel()
        return f"{statuses}"
    if stop and await _either(progress.reached, watching):
        url = f"{second.base_url}/api/tanstack/chat"
        stopped = await _retried(lambda: client.request("DELETE", url, json={"id": chat}))
        assert stopped.status_code in (202, 204), stopped.text
    status, events = await asyncio.wait_for(watching, 60)
    if status != 200:
        assert status == UNAVAILABLE
        return "watch 503"
    assert ended(events), events[-3:]
    chunks = _chunks(events)
    started = next(i for i, c in enumerate(chunks) if c["type"] == "RUN_STARTED")
    run = chunks[started:]
    assert run[-1]["type"] == "RUN_FINISHED", run[-3:]
    text = _text(run, "TEXT_MESSAGE_CONTENT")
    histories = await _histories(client, f"/api/tanstack/chat/{chat}/messages", a, b)
    assert _answer_text(histories[0], "content") == text
    nxt = {"id": chat, "messages": [*histories[0], _user("next", "content")]}
    url = f"{second.base_url}/api/tanstack/chat"
    accepted = await _retried(lambda: client.post(url, json=nxt))
    assert accepted.status_code == 202, accepted.text
    return str(run[-1].get("finishReason"))


async def test_tanstack_racing_runs_and_stops(
    flaky_pair: tuple[FlakyProxy, ExampleApp, ExampleApp],
) -> None:
    proxy, a, b = flaky_pair
    outcomes = await _rounds(_tanstack_chat, a, b, random.Random(SEED + 1))
    assert proxy.cuts > 0, "the proxy cut nothing"
    assert outcomes.count("stop") >= len(outcomes) // 2, outcomes
    _no_takeover(a, b)
