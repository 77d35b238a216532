"""pydantic-ai agents as sources: an ``Agent`` run streamed as AI SDK chunks, resumable.

pydantic-ai's own Vercel AI adapter (``pydantic_ai.ui.vercel_ai.VercelAIAdapter``, see
https://ai.pydantic.dev/ui/vercel-ai/) turns an agent run into ``UIMessageChunk`` s; this
module hands them to the chat core as plain dicts, so the run is stored, resumable and
stoppable like any other answer. Needs the ``pydantic-ai`` extra
(``pip install 'resumable-chat[pydantic-ai]'``).

Usage::

    from pydantic_ai import Agent
    from resumable_chat.sources.pydantic_ai import ai_sdk_agent_source

    app.include_router(ai_sdk_router(chat, ai_sdk_agent_source(Agent("openai:gpt-4.1-mini"))))
"""

from __future__ import annotations

import contextlib
import json
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

__all__ = ["ai_sdk_agent_source"]

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
