"""Finding and running the code samples of the documentation site (``docs/**/*.md``).

A sample is a fenced ```` ```python ```` block at the start of a line. The HTML comment on the
line right before it (invisible on the site) tells the test what to do with it::

    <!-- docs-test: check=ai_sdk_app -->        run it, then drive what it built
    <!-- docs-test: continue -->                run it in the previous sample's namespace
    <!-- docs-test: env=s2 check=... -->        run it with the S2 variables set to the bundled
                                                S2 test server
    <!-- docs-test: output -->                  what it prints must be the ```text block
                                                right after it (random ids masked)

A sample without a comment is run on its own, and must simply not fail. Samples run with
top-level ``await`` allowed (as in ``python -m asyncio``), with ``OPENAI_BASE_URL`` pointing at
a local fake OpenAI server, and without S2 variables unless ``env=s2``.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import json
import re
import shlex
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from helpers import ANSWER, openai_chat_events

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


_FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_MARKER = re.compile(r"<!--\s*docs-test:(.*?)-->")


@dataclass
class Sample:
    """One fenced code block of a docs page."""

    page: str  # path under docs/, e.g. "guides/s2.md"
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    options: dict[str, str] = field(default_factory=dict)
    #: the fenced block right after this one (its language and code), if any
    next_block: tuple[str, str] | None = None

    @property
    def id(self) -> str:
        """``page:line``, the pytest id."""
        return f"{self.page}:{self.line}"


def _options(marker: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for word in marker.split():
        key, _, value = word.partition("=")
        options[key] = value
    return options


def code_blocks(language: str | None = None) -> list[Sample]:
    """Every fenced block of every page (of ``language`` when given), in page order."""
    found: list[Sample] = []
    for path in sorted(DOCS.rglob("*.md")):
        text = path.read_text()
        for match in _FENCE.finditer(text):
            if language is not None and match.group(1) != language:
                continue
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = _MARKER.fullmatch(before.strip())
            after = text[match.end() :].lstrip("\n")
            following = _FENCE.match(after)
            found.append(
                Sample(
                    page=path.relative_to(DOCS).as_posix(),
                    line=text.count("\n", 0, match.start()) + 1,
                    language=match.group(1),
                    code=match.group(2),
                    options=_options(marker.group(1)) if marker else {},
                    next_block=(following.group(1), following.group(2)) if following else None,
                )
            )
    return found


def python_samples() -> list[Sample]:
    """The ``python`` blocks, each with the samples it continues folded in front of it."""
    samples: list[Sample] = []
    for sample in code_blocks("python"):
        if "continue" in sample.options:
            assert samples and samples[-1].page == sample.page, (
                f"{sample.id}: 'continue' needs an earlier python sample on the same page"
            )
        samples.append(sample)
    return samples


def chain(samples: list[Sample], sample: Sample) -> list[Sample]:
    """``sample`` and the samples before it that it continues, oldest first."""
    index = samples.index(sample)
    start = index
    while "continue" in samples[start].options:
        start -= 1
    return samples[start : index + 1]


async def run_sample(sample: Sample, namespace: dict[str, Any]) -> str:
    """Execute ``sample`` in ``namespace`` (awaited when it uses top-level ``await``).

    Returns what it printed.
    """
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    code = compile(sample.code, f"docs/{sample.page}:{sample.line}", "exec", flags=flags)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            await result
    return printed.getvalue()


_RANDOM_ID = re.compile(r"\b(session|end|error|stop|msg)-[A-Za-z0-9+/=_-]+")


def masked(text: str) -> str:
    """``text`` with the random parts of fencing tokens and message ids replaced by ``*``."""
    return _RANDOM_ID.sub(r"\1-*", text).strip()


def openai_responses_events(words: list[str] = ANSWER) -> list[str]:
    """The SSE events of a Responses API stream (``POST /v1/responses``, ``stream: true``)
    answering ``words``: ``response.created``, one message item whose ``output_text`` is
    streamed as deltas, then ``response.completed`` (the shapes of the OpenAI API reference's
    "Streaming events")."""
    response = {"id": "resp_1", "object": "response", "model": "m", "status": "in_progress"}
    item = {"id": "msg_1", "type": "message", "role": "assistant", "status": "in_progress"}
    at = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    text = "".join(words)
    part = {"type": "output_text", "text": text, "annotations": []}
    done_item = {**item, "status": "completed", "content": [part]}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {**response, "output": []}},
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "content": []}},
        {"type": "response.content_part.added", **at, "part": {**part, "text": ""}},
        *({"type": "response.output_text.delta", **at, "delta": word} for word in words),
        {"type": "response.output_text.done", **at, "text": text},
        {"type": "response.content_part.done", **at, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {
            "type": "response.completed",
            "response": {**response, "status": "completed", "output": [done_item]},
        },
    ]
    return [
        f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': n})}\n\n"
        for n, e in enumerate(events)
    ]


def fake_openai() -> Starlette:
    """``POST /v1/chat/completions`` streaming ANSWER as ``chat.completion.chunk`` events, and
    ``POST /v1/responses`` streaming it as Responses API events."""

    def streaming(history_key: str, events: list[str]) -> Any:
        async def endpoint(request: Request) -> StreamingResponse:
            body = await request.json()
            assert body["stream"] is True and body[history_key][-1]["role"] == "user"

            async def send() -> AsyncIterator[str]:
                for event in events:
                    yield event

            return StreamingResponse(send(), media_type="text/event-stream")

        return endpoint

    completions = streaming("messages", openai_chat_events(ANSWER))
    responses = streaming("input", openai_responses_events(ANSWER))

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
        ]
    )


def sse_data(text: str) -> list[dict[str, Any]]:
    """The JSON objects of the ``data:`` lines of an SSE body (``[DONE]`` left out)."""
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def shell_words(script: str) -> Iterator[list[str]]:
    """The words of each command of a bash block (continuations joined, comments dropped)."""
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in lexer:
            if token in ("&&", "||", ";", "|", "&", "(", ")"):
                if words:
                    yield words
                words = []
            else:
                words.append(token)
        if words:
            yield words
