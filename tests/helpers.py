"""Helpers every test folder uses: SSE parsing, a user message, waiting for a condition.

``tests/`` is on ``sys.path`` (``pythonpath`` in ``pyproject.toml``), so tests import this as
``from helpers import ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any


def parse_sse(text: str) -> list[tuple[str | None, str]]:
    """``(id, data)`` of every SSE event with data in ``text`` (comments skipped; the data of a
    multi-line event joined with newlines)."""
    events = []
    for block in text.split("\n\n"):
        event_id, data = None, []
        for line in block.split("\n"):
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            events.append((event_id, "\n".join(data)))
    return events


def key_order(value: Any) -> Any:
    """The nested key order of a JSON value (dict equality ignores it; the JS clients'
    ``JSON.stringify`` output does not)."""
    if isinstance(value, dict):
        return [(k, key_order(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [key_order(v) for v in value]
    return None


def paced_answer(words: int, pause_s: float = 0.0) -> Callable[[Any], AsyncIterator[Any]]:
    """A model (a source factory) answering with AI SDK chunks: ``start``, ``text-start``,
    ``words`` text-deltas ``"w0 "``, ``"w1 "``... each followed by a ``pause_s`` s pause,
    ``text-end``, ``finish``."""

    async def model(signal: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "start", "messageId": "m1"}
        yield {"type": "text-start", "id": "t"}
        for i in range(words):
            yield {"type": "text-delta", "id": "t", "delta": f"w{i} "}
            if pause_s:
                await asyncio.sleep(pause_s)
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}

    return model


def text_answer(
    text: Callable[[list[dict[str, Any]]], str],
) -> Callable[[list[dict[str, Any]], Any], AsyncIterator[dict[str, Any]]]:
    """A router source (``source(messages, signal)``) answering one AI SDK text part at once:
    ``text(messages)``."""

    async def source(messages: list[dict[str, Any]], signal: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "start"}
        yield {"type": "text-start", "id": "t"}
        yield {"type": "text-delta", "id": "t", "delta": text(messages)}
        yield {"type": "text-end", "id": "t"}
        yield {"type": "finish"}

    return source


def user_message(text: str = "hi", message_id: str = "u1") -> dict[str, Any]:
    """An AI SDK ``UIMessage`` from the user with one text part."""
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


async def eventually(
    check: Callable[[], Awaitable[Any]],
    timeout_s: float = 10.0,
    every_s: float = 0.01,
    retry_on: tuple[type[BaseException], ...] = (AssertionError,),
) -> None:
    """Await ``check()`` every ``every_s`` seconds until it returns something other than
    ``False``/``None`` without raising one of ``retry_on``; after ``timeout_s`` seconds raise
    ``AssertionError`` (or the last retried error)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            result = await check()
        except retry_on:
            if loop.time() > deadline:
                raise
        else:
            if result is not False and result is not None:
                return
            if loop.time() > deadline:
                raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(every_s)


async def append_lags(
    writer: Any, last_append_at: Callable[[], float], records: int = 10, every_s: float = 0.020
) -> list[float]:
    """Submit ``records`` records to ``writer`` (a ``LogWriter``), one every ``every_s``
    seconds (a chat-paced model), then close it; returns how long (s, loop time) each record
    waited before the append that carries it began, ``last_append_at()`` being the loop time
    the basin's latest append began."""
    from resumable_chat.s2 import AppendRecord

    loop = asyncio.get_running_loop()
    lags = []
    for i in range(records):
        submitted = loop.time()
        writer.submit(AppendRecord(b"%d" % i))
        await asyncio.sleep(every_s)
        lags.append(last_append_at() - submitted)
    await writer.close()
    return lags


async def body_text(response: Any) -> str:
    """The whole body of a streaming ``response`` (a Starlette response with a
    ``body_iterator``: the live answer, a replay), read to its end and decoded."""
    out = b""
    async for frame in response.body_iterator:
        out += frame if isinstance(frame, bytes) else frame.encode()
    return out.decode()


async def all_stored(chat: Any, stream: str, timeout_s: float = 5.0) -> None:
    """Wait (on the writer's acknowledgements, not time) until the generation running on
    ``stream`` in ``chat`` (a ``ResumableChat``) has stored every record handed to its
    writer so far; at once when none runs there."""
    generation = chat.running(stream)
    if generation is None:
        return
    writer = generation.writer
    target = writer.next_seq_num
    if writer.durable_seq_num >= target:
        return
    done = asyncio.get_running_loop().create_future()

    def heard(records: Any) -> None:
        if (records is None or records[-1].seq_num + 1 >= target) and not done.done():
            done.set_result(None)

    if writer.listen(heard) is None:
        return  # the writer has ended: all it will store is stored
    try:
        await asyncio.wait_for(done, timeout_s)
    finally:
        writer.unlisten(heard)


# -- the example app's demo model ----------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]


def example_models() -> Any:
    """``examples/chat/models.py`` as a module (the offline demo model the example app runs)."""
    path = REPO_ROOT / "examples" / "chat" / "models.py"
    spec = importlib.util.spec_from_file_location("example_chat_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def demo_text(user_text: str) -> str:
    """The text the example app's demo model streams for ``user_text`` (its deltas, joined)."""
    models = example_models()
    part = {"type": "text", "text": user_text, "content": user_text}
    messages = [{"id": "u", "role": "user", "parts": [part]}]

    async def collect() -> str:
        out = []
        async for chunk in models.demo_stream(messages, 0):
            out.extend(c["delta"].get("content") or "" for c in chunk["choices"])
        return "".join(out)

    return asyncio.run(collect())


# -- recorded model streams (../shared/fixtures) ---------------------------------------------------


def recordings(folder: str) -> tuple[Path, list[Path], list[Any]]:
    """``(directory, files, pytest params)`` of the ``*.jsonl`` recordings in
    ``../shared/fixtures/<folder>``; the params are one skipped param when it is absent."""
    import pytest

    directory = REPO_ROOT.parent / "shared" / "fixtures" / folder
    files = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    params = [pytest.param(p, id=p.stem) for p in files] or [
        pytest.param(
            None,
            marks=pytest.mark.skip(reason=f"recorded streams not found in {directory}"),
            id="no-fixtures",
        )
    ]
    return directory, files, params


# -- a local stand-in for the OpenAI API -----------------------------------------------------------

#: The words the fake OpenAI server streams as the answer's text.
ANSWER = ["Hello", " from", " a", " local", " model."]


def openai_chat_events(words: list[str] = ANSWER) -> list[str]:
    """The SSE events of a chat-completions stream answering ``words``, then ``[DONE]``."""
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    events = []
    for word in words:
        chunk = {**base, "choices": [{"index": 0, "delta": {"content": word}}]}
        events.append(f"data: {json.dumps(chunk)}\n\n")
    done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    events.append(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n")
    return events


async def tanstack_run_chunks(client: Any, chat_id: str, start: str = "0") -> list[dict[str, Any]]:
    """Follow a TanStack session (``GET /api/tanstack/chat/replay?id=&from=``) with an httpx
    ``client`` until the run's ``RUN_FINISHED`` or ``RUN_ERROR``; the chunks read."""
    chunks: list[dict[str, Any]] = []
    params = {"id": chat_id, "from": start}
    async with client.stream("GET", "/api/tanstack/chat/replay", params=params) as live:
        async for line in live.aiter_lines():
            if line.startswith("data: "):
                chunks.append(json.loads(line[6:]))
                if chunks[-1]["type"] in ("RUN_FINISHED", "RUN_ERROR"):
                    break
    return chunks


def fuzz_settings(max_examples: int) -> Any:
    """Hypothesis settings for the schemathesis fuzz tests: ``max_examples`` cases, no
    deadline (real HTTP), every health check off, no example database (CI starts clean)."""
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )


def min_cpu_s(call: Callable[[], object], repeat: int = 3) -> float:
    """The least CPU time (s, ``time.process_time``) of ``repeat`` calls of ``call``: for
    tests that compare how a cost grows with its input, as a ratio measured in one run."""
    best = float("inf")
    for _ in range(repeat):
        began = time.process_time()
        call()
        best = min(best, time.process_time() - began)
    return best


@contextlib.contextmanager
def package_garbage() -> Iterator[list[str]]:
    """Collect, then keep what the collector finds unreachable from then on
    (``gc.DEBUG_SAVEALL``); on leaving, the list given holds the classes of the package's
    own objects (its test kit aside) among it."""
    found: list[str] = []
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found += sorted(
            {
                type(o).__qualname__
                for o in gc.garbage
                if type(o).__module__.startswith("resumable_chat")
                and not type(o).__module__.startswith("resumable_chat.testing")
            }
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
