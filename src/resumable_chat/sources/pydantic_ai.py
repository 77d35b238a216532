"""pydantic-ai agents as sources: an ``Agent`` run streamed as AI SDK or TanStack chunks.

pydantic-ai's own UI adapters turn an agent run into protocol events: the Vercel AI adapter
(``pydantic_ai.ui.vercel_ai.VercelAIAdapter``, https://ai.pydantic.dev/ui/vercel-ai/) gives
``UIMessageChunk`` s, handed on as they are; the AG-UI adapter (``pydantic_ai.ui.ag_ui``,
https://ai.pydantic.dev/ui/ag-ui/) gives AG-UI events, which :func:`tanstack_agent_source`
reshapes into the ``StreamChunk`` s TanStack clients read (one assistant message per run,
both tool-name keys, a finish reason). The run is stored, resumable and stoppable like any
other answer. Needs the ``pydantic-ai`` extra (``pip install 'resumable-chat[pydantic-ai]'``).

Usage::

    from pydantic_ai import Agent
    from resumable_chat.sources.pydantic_ai import ai_sdk_agent_source

    app.include_router(ai_sdk_router(chat, ai_sdk_agent_source(Agent("openai:gpt-4.1-mini"))))
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from resumable_chat.chat.dialect import Chunk
from resumable_chat.chat.producer import StopSignal

try:
    from pydantic_ai.agent import AbstractAgent
    from pydantic_ai.ui.vercel_ai import VercelAIAdapter
except ImportError as missing:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "resumable_chat.sources.pydantic_ai needs pydantic-ai: "
        "pip install 'resumable-chat[pydantic-ai]'"
    ) from missing

__all__ = ["ai_sdk_agent_source", "tanstack_agent_source"]

AgentSource = Callable[[list[dict[str, Any]], StopSignal], AsyncIterator[Chunk]]


def ai_sdk_agent_source(
    agent: AbstractAgent[Any, Any],
    *,
    sdk_version: Literal[5, 6] = 5,
    **run_options: Any,
) -> AgentSource:
    """A source for :func:`~resumable_chat.fastapi.ai_sdk_router` (or
    ``ResumableChat.make_resumable``) that runs ``agent`` on the turn's messages.

    Args:
        agent: a pydantic-ai ``Agent`` (any ``AbstractAgent``).
        sdk_version: the AI SDK version pydantic-ai targets (6 adds tool approval chunks).
        **run_options: passed to ``VercelAIAdapter.run_stream`` (``deps``, ``model``,
            ``model_settings``, ``usage_limits``, ``toolsets``...).

    Returns:
        ``source(messages, signal)``: ``messages`` are the request's ``UIMessage`` dicts (as
        ``DefaultChatTransport`` sends them); yields ``UIMessageChunk`` dicts. A stop closes
        the source, which closes pydantic-ai's stream and cancels the agent run (its model
        request and tool calls). pydantic-ai's ``done`` marker is not passed on (the router
        ends the response with ``data: [DONE]`` itself).

    Raises:
        pydantic_ai.exceptions.UserError (at the first chunk): the messages are not valid
        AI SDK ``UIMessage`` s for pydantic-ai.
    """

    async def source(messages: list[dict[str, Any]], signal: StopSignal) -> AsyncIterator[Chunk]:
        body = {"trigger": "submit-message", "id": "resumable-chat", "messages": messages}
        run_input = VercelAIAdapter.build_run_input(json.dumps(body).encode())
        adapter: VercelAIAdapter[Any, Any] = VercelAIAdapter(
            agent=agent, run_input=run_input, sdk_version=sdk_version
        )
        events = adapter.run_stream(**run_options)
        async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
            async for event in stream:
                chunk = event.model_dump(mode="json", by_alias=True, exclude_none=True)
                if chunk.get("type") == "done":
                    continue
                yield chunk

    return source


def tanstack_agent_source(
    agent: AbstractAgent[Any, Any],
    *,
    thread_id: str = "resumable-chat",
    **run_options: Any,
) -> AgentSource:
    """A source for :func:`~resumable_chat.fastapi.tanstack_router` (or
    ``ResumableChat.make_session_response``) that runs ``agent`` on the turn's messages.

    pydantic-ai's AG-UI events are reshaped as :func:`~resumable_chat.sources.tanstack_chunks`
    shapes its own: every text segment goes to one assistant message (a stable id; AG-UI
    gives each segment a new one, which TanStack would show as separate messages), tool calls
    name their parent message and carry ``toolName`` beside ``toolCallName`` and their parsed
    ``input`` on ``TOOL_CALL_END``, and ``RUN_FINISHED`` carries ``finishReason: "stop"``.

    Args:
        agent: a pydantic-ai ``Agent``.
        thread_id: the AG-UI ``threadId`` of the runs.
        **run_options: passed to ``AGUIAdapter.run_stream`` (``deps``, ``model``...).

    Returns:
        ``source(messages, signal)``: ``messages`` are TanStack ``UIMessage`` dicts (text
        parts with ``content``, ``tool-call`` / ``tool-result`` parts; a user's ``image``,
        ``audio`` and ``document`` parts go to the agent as AG-UI input content); yields
        ``StreamChunk`` dicts. A stop closes the source and cancels the agent run.

    Raises:
        ImportError (when called): the ``ag-ui-protocol`` package is missing
        (``pip install 'pydantic-ai-slim[ag-ui]'``).
    """

    async def source(messages: list[dict[str, Any]], signal: StopSignal) -> AsyncIterator[Chunk]:
        from ag_ui.core import RunAgentInput
        from pydantic_ai.ui.ag_ui import AGUIAdapter

        from resumable_chat.sources.openai_messages import to_openai_messages

        run_id = "run-" + secrets.token_hex(8)
        run_input = RunAgentInput.model_validate(
            {
                "threadId": thread_id,
                "runId": run_id,
                "state": None,
                "messages": _agui_messages(to_openai_messages(messages)),
                "tools": [],
                "context": [],
                "forwardedProps": None,
            }
        )
        adapter = AGUIAdapter(agent=agent, run_input=run_input)
        reshape = _TanStackShape("msg-" + secrets.token_hex(8))
        events = adapter.run_stream(**run_options)
        async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
            async for event in stream:
                chunk = event.model_dump(mode="json", by_alias=True, exclude_none=True)
                for out in reshape(chunk):
                    yield out

    return source


def _agui_messages(openai_messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI chat messages → AG-UI messages (the same roles, camelCase keys, ids)."""
    out: list[dict[str, Any]] = []
    for index, message in enumerate(openai_messages):
        entry: dict[str, Any] = {"id": f"m{index}", "role": message["role"]}
        if message["role"] == "tool":
            entry["content"] = message["content"]
            entry["toolCallId"] = message["tool_call_id"]
        elif isinstance(message.get("content"), list):  # a user's text and attachments
            entry["content"] = [_agui_input(part) for part in message["content"]]
        else:
            entry["content"] = message.get("content") or ""
        if message.get("tool_calls"):
            entry["toolCalls"] = message["tool_calls"]
        out.append(entry)
    return out


#: ``input_audio.format`` → its media type.
_AUDIO_MEDIA_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def _agui_input(part: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions user content part (text, ``image_url``, ``input_audio``, ``file``:
    what :func:`~resumable_chat.sources.openai_messages.to_openai_messages` gives) → AG-UI
    ``InputContent``: ``text``, and ``image`` / ``audio`` / ``document`` with a ``data`` or
    ``url`` source (AG-UI 1.0, https://docs.ag-ui.com/concepts/messages), or, with an
    ``ag-ui-protocol`` before 1.0, ``binary``."""
    from resumable_chat.sources.attachments import parse_data_url

    kind = part["type"]
    if kind == "text":
        return {"type": "text", "text": part["text"]}
    if kind == "image_url":
        url: str = part["image_url"]["url"]
        media_kind, data = "image", parse_data_url(url)
        media_type = data[0] if data else "image/*"
    elif kind == "input_audio":
        audio = part["input_audio"]
        media_kind, media_type = "audio", _AUDIO_MEDIA_TYPES[audio["format"]]
        url = f"data:{media_type};base64,{audio['data']}"
        data = (media_type, audio["data"])
    else:  # file: a PDF as a data URL
        media_kind, media_type = "document", "application/pdf"
        url = part["file"]["file_data"]
        data = parse_data_url(url)
    try:
        from ag_ui.core import ImageInputContent  # noqa: F401  (AG-UI 1.0)
    except ImportError:  # the one media part before 1.0
        return {"type": "binary", "mimeType": media_type, "url": url}
    if data is None:
        return {"type": media_kind, "source": {"type": "url", "value": url}}
    source = {"type": "data", "value": data[1], "mimeType": media_type}
    return {"type": media_kind, "source": source}


class _TanStackShape:
    """Reshapes one run's AG-UI events into TanStack ``StreamChunk`` s (see
    :func:`tanstack_agent_source`)."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.started = False
        self.text = ""
        self.tool_names: dict[str, str] = {}
        self.tool_args: dict[str, str] = {}

    def _open(self, timestamp: Any) -> list[Chunk]:
        if self.started:
            return []
        self.started = True
        return [
            {
                "type": "TEXT_MESSAGE_START",
                "timestamp": timestamp,
                "messageId": self.message_id,
                "role": "assistant",
            }
        ]

    def _close(self, timestamp: Any) -> list[Chunk]:
        if not self.started:
            return []
        return [{"type": "TEXT_MESSAGE_END", "timestamp": timestamp, "messageId": self.message_id}]

    def __call__(self, chunk: Chunk) -> list[Chunk]:
        kind, timestamp = chunk.get("type"), chunk.get("timestamp")
        if kind in ("TEXT_MESSAGE_START", "TEXT_MESSAGE_END"):
            return []  # one assistant message per run, opened by its first content
        if kind == "TEXT_MESSAGE_CONTENT":
            delta = str(chunk.get("delta", ""))
            self.text += delta
            return [
                *self._open(timestamp),
                {**chunk, "messageId": self.message_id, "delta": delta, "content": self.text},
            ]
        if kind == "TOOL_CALL_START":
            call_id, name = str(chunk.get("toolCallId")), str(chunk.get("toolCallName", ""))
            self.tool_names[call_id] = name
            self.tool_args[call_id] = ""
            start = {**chunk, "toolName": name, "parentMessageId": self.message_id}
            return [*self._open(timestamp), start]
        if kind == "TOOL_CALL_ARGS":
            call_id = str(chunk.get("toolCallId"))
            self.tool_args[call_id] = self.tool_args.get(call_id, "") + str(chunk.get("delta", ""))
            return [chunk]
        if kind == "TOOL_CALL_END":
            call_id = str(chunk.get("toolCallId"))
            name = self.tool_names.get(call_id, "")
            end: Chunk = {**chunk, "toolCallName": name, "toolName": name}
            with contextlib.suppress(ValueError):
                end["input"] = json.loads(self.tool_args.get(call_id) or "{}")
            return [end]
        if kind == "TOOL_CALL_RESULT":
            result = {k: v for k, v in chunk.items() if k != "role"}
            return [{**result, "messageId": self.message_id}]
        if kind == "RUN_FINISHED":
            tanstack = {"finishReason": "stop"}
            finished = {**chunk, "finishReason": "stop", "metadata": {"tanstack": tanstack}}
            if (
                isinstance(finished.get("outcome"), dict)
                and finished["outcome"].get("type") == "success"
            ):
                finished.pop("outcome")  # only interrupts are outcomes the TanStack client reads
            return [*self._close(timestamp), finished]
        if kind == "RUN_ERROR":
            return [*self._open(timestamp), *self._close(timestamp), chunk]
        return [chunk]
