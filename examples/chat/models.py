"""The example app's model sources, chosen from the environment.

- ``CHAT_RECORDINGS=<dir>``: replay recorded OpenAI-format streams (``*.jsonl``, one SSE
  ``data:`` payload per line); the k-th answer of the process replays file k mod n in
  file-name order.
- ``CHAT_MODEL=<litellm model>``: a real model through litellm (e.g. ``gpt-4o-mini`` with
  ``OPENAI_API_KEY``). litellm is imported and warmed up by :meth:`ModelSources.prepare` at
  start-up (in a worker thread: both take seconds of CPU), never in a request handler, and
  it reads its model cost map from the copy it ships (``LITELLM_LOCAL_MODEL_COST_MAP``), so
  nothing leaves the machine except the model calls themselves.
- neither: an offline demo model that streams a canned answer in OpenAI chunk format.

``CHAT_TOKEN_DELAY_MS`` (default 30) paces the offline chunks (demo and recordings).
Every model yields OpenAI chat-completions chunks; ``resumable_chat.sources`` turns them
into AI SDK ``UIMessageChunk``s (:meth:`ModelSources.__call__`) or TanStack AI
``StreamChunk``s (:meth:`ModelSources.tanstack`). Both protocols share the model choice and
the answer counter.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from resumable_chat import StopSignal
from resumable_chat.fastapi.agui import AgUiRun
from resumable_chat.sources import (
    ai_sdk_chunks,
    openai_chunks_from_jsonl,
    tanstack_chunks,
    to_openai_messages,
)

logger = logging.getLogger("examples.chat.models")

# litellm would otherwise download its model cost map from the internet when imported.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

#: UI messages (AI SDK or TanStack) → OpenAI chat ``messages``.
ToOpenAI = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def _part_text(part: Mapping[str, Any]) -> str:
    """A text part's text: AI SDK parts carry ``text``, TanStack parts ``content``."""
    if part.get("type") != "text":
        return ""
    value = part.get("text", part.get("content"))
    return value if isinstance(value, str) else ""


def _text_of(message: Mapping[str, Any]) -> str:
    parts = message.get("parts") or []
    return "".join(_part_text(p) for p in parts if isinstance(p, Mapping))


def tanstack_to_openai_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """TanStack ``UIMessage`` dicts → OpenAI chat-completions ``messages`` (a new list).

    Text parts (``{"type": "text", "content"}``) become ``content``; a user's image, audio
    and document parts go with it as the library's ``to_openai_messages`` sends them. An
    assistant's ``tool-call`` parts become ``tool_calls``; each call with an ``output`` (or a
    matching ``tool-result`` part) is followed by a ``role: "tool"`` message. Thinking parts
    are not sent; other roles are skipped.
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        parts = [p for p in message.get("parts") or [] if isinstance(p, Mapping)]
        if role in ("system", "user"):
            out.extend(to_openai_messages([message]))
            continue
        if role != "assistant":
            continue
        results = {
            str(p.get("toolCallId")): p.get("content")
            for p in parts
            if p.get("type") == "tool-result"
        }
        calls: list[dict[str, Any]] = []
        tool_messages: list[dict[str, Any]] = []
        for part in parts:
            if part.get("type") != "tool-call":
                continue
            call_id = str(part.get("id", ""))
            arguments = part.get("arguments")
            if not isinstance(arguments, str) or not arguments:
                arguments = json.dumps(part.get("input") or {}, ensure_ascii=False)
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": str(part.get("name", "")), "arguments": arguments},
                }
            )
            result = results.get(call_id, part.get("output"))
            if result is None:
                continue
            content = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
            tool_messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
        entry: dict[str, Any] = {"role": "assistant", "content": _text_of(message) or None}
        if calls:
            entry["tool_calls"] = calls
        out.append(entry)
        out.extend(tool_messages)
    return out


def demo_reply(messages: list[dict[str, Any]]) -> str:
    """The offline demo model's answer to the last user message."""
    question = next(
        (_text_of(m) for m in reversed(messages) if m.get("role") == "user"), ""
    ).strip()
    return (
        f"You said: “{question}”. This is the offline demo model of resumable-chat, "
        "streaming a word at a time so you can try it out. Refresh the page now and the "
        "answer picks up where it was; open this chat in a second tab and it follows along "
        "live; press Stop and it stops in every tab. Every chunk goes to a per-chat log "
        "(the embedded one here, or S2 when S2_ACCESS_TOKEN and S2_BASIN are set), and "
        "that log is what a reconnecting client replays. Set CHAT_MODEL to use a real model."
    )


async def demo_stream(
    messages: list[dict[str, Any]], delay_s: float
) -> AsyncIterator[dict[str, Any]]:
    """Stream :func:`demo_reply` as OpenAI ``chat.completion.chunk`` dicts."""
    created = int(time.time())
    base = {
        "id": "chatcmpl-demo",
        "object": "chat.completion.chunk",
        "created": created,
        "model": "demo",
    }
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    for word in demo_reply(messages).split(" "):
        await asyncio.sleep(delay_s)
        yield {**base, "choices": [{"index": 0, "delta": {"content": word + " "}}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


def _error_payload(chunk: Any) -> Any:
    """The provider's in-stream error object of a chunk (``{"error": {...}}``), else None."""
    if isinstance(chunk, Mapping):
        return chunk.get("error")
    return getattr(chunk, "error", None)


async def _logging_outcome(chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Pass ``chunks`` through and log how the model call ended, in words that say what
    happened: it failed (an exception, or an error object in the stream), or the consumer
    closed it before the model was done (a stop: the model request is closed)."""
    count, outcome = 0, "closed"
    try:
        async for chunk in chunks:
            count += 1
            error = _error_payload(chunk)
            if error is not None:
                logger.warning("the model reported an error after %d chunks: %s", count, error)
                outcome = "failed"
            yield chunk
        if outcome == "closed":
            outcome = "complete"
    except Exception as exc:
        outcome = "failed"
        logger.warning(
            "the model call failed after %d chunks: %s: %s", count, type(exc).__name__, exc
        )
        raise
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
        if outcome == "closed":
            logger.info("model stream closed after %d chunks: the answer was stopped", count)


class ModelSources:
    """Picks the model from the environment and builds each turn's chunk source: AI SDK
    (call the object) or TanStack (:meth:`tanstack`)."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        self.delay_s = float(env.get("CHAT_TOKEN_DELAY_MS", "30")) / 1000
        self.model = env.get("CHAT_MODEL") or None
        recordings = env.get("CHAT_RECORDINGS")
        self.recordings: list[Path] = []
        if recordings:
            self.recordings = sorted(Path(recordings).glob("*.jsonl"))
            if not self.recordings:
                raise SystemExit(f"CHAT_RECORDINGS={recordings}: no *.jsonl files there")
        self._answers = itertools.count()
        self._acompletion: Callable[..., Any] | None = None

    def prepare(self) -> None:
        """Import and warm up the model library (blocking: call it from a worker thread at
        start-up). With ``CHAT_MODEL``: imports litellm and runs one ``mock_response``
        completion, which loads the provider code litellm otherwise imports on the first
        call, so that call does not stall the event loop. Nothing is sent anywhere. Without
        ``CHAT_MODEL``: nothing to do."""
        if not self.model or self._acompletion is not None:
            return
        import litellm

        litellm.suppress_debug_info = True
        warm_up = litellm.completion(
            model=self.model,
            messages=[{"role": "user", "content": "warm-up"}],
            mock_response="ok",
            stream=True,
        )
        for _ in warm_up:
            pass
        self._acompletion = litellm.acompletion

    def describe(self) -> str:
        """One line naming the model in use."""
        if self.recordings:
            return f"recordings: {len(self.recordings)} files"
        if self.model:
            return f"litellm model {self.model}"
        return "offline demo model"

    def _openai_stream(
        self,
        messages: list[dict[str, Any]],
        to_openai: ToOpenAI,
        tools: list[dict[str, Any]] | None = None,
    ) -> AsyncIterator[Any]:
        return _logging_outcome(self._model_stream(messages, to_openai, tools))

    def _model_stream(
        self,
        messages: list[dict[str, Any]],
        to_openai: ToOpenAI,
        tools: list[dict[str, Any]] | None = None,
    ) -> AsyncIterator[Any]:
        if self.recordings:
            path = self.recordings[next(self._answers) % len(self.recordings)]
            return openai_chunks_from_jsonl(path, delay_ms=self.delay_s * 1000)
        if self.model:
            return self._litellm_stream(to_openai(messages), tools)
        next(self._answers)
        return demo_stream(messages, self.delay_s)

    async def _litellm_stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> AsyncIterator[Any]:
        if self._acompletion is None:  # not prepared at start-up: prepare off the loop
            await asyncio.to_thread(self.prepare)
        assert self._acompletion is not None
        response = await self._acompletion(
            model=self.model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            **({"tools": tools} if tools else {}),
        )
        try:
            async for chunk in response:
                yield chunk
        finally:
            close = getattr(response, "aclose", None)
            if close is not None:
                await close()

    def __call__(
        self, messages: list[dict[str, Any]], signal: StopSignal
    ) -> AsyncIterator[dict[str, Any]]:
        """The AI SDK chunks of one answer to ``messages`` (AI SDK ``UIMessage`` dicts)."""
        return ai_sdk_chunks(self._openai_stream(messages, to_openai_messages))

    def agui(self, run: AgUiRun, signal: StopSignal) -> AsyncIterator[dict[str, Any]]:
        """The TanStack ``StreamChunk``s of one durable AG-UI run (``/api/agui``): the same
        model as :meth:`tanstack`; a real model also gets the client's tools."""
        tools = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name"),
                    "description": t.get("description", ""),
                    "parameters": t.get("parameters") or {"type": "object"},
                },
            }
            for t in run.tools
        ]
        stream = self._openai_stream(run.messages, tanstack_to_openai_messages, tools=tools)
        return tanstack_chunks(stream, run_id=run.run_id, thread_id=run.thread_id)

    def tanstack(
        self, messages: list[dict[str, Any]], signal: StopSignal
    ) -> AsyncIterator[dict[str, Any]]:
        """The TanStack ``StreamChunk``s of one run answering ``messages`` (TanStack
        ``UIMessage`` dicts): ``RUN_STARTED`` … ``RUN_FINISHED``, one run id throughout."""
        return tanstack_chunks(self._openai_stream(messages, tanstack_to_openai_messages))
