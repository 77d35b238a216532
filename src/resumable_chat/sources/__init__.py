"""Model sources: turn provider streaming formats into a protocol's chunks.

Each provider format has one reader into neutral model events
(:mod:`resumable_chat.model_events`): :class:`OpenAIChatEvents` (chat completions) and
:class:`OpenAIResponsesEvents` (the Responses API). Each protocol makes its chunks from those
events, so both clients see one answer alike.

- :func:`ai_sdk_chunks`: OpenAI chat-completions streaming (``openai`` SDK, ``litellm``, or
  plain dicts) to AI SDK ``UIMessageChunk`` dicts. See :mod:`.openai_chat` for the mapping.
- :func:`tanstack_chunks`: the same streams to TanStack AI ``StreamChunk`` dicts (AG-UI
  events). See :mod:`.openai_tanstack` for the mapping.
- :func:`openai_chunks_from_jsonl`: replay a recorded stream (one SSE ``data`` payload per
  line) as an async iterator of OpenAI chunk dicts.
- :func:`to_openai_messages`: AI SDK ``UIMessage`` history to OpenAI chat ``messages``.
- :func:`ai_sdk_chunks_from_responses` / :func:`tanstack_chunks_from_responses`: OpenAI
  Responses API streams (``client.responses.create(..., stream=True)``) to each protocol's
  chunks; :func:`to_responses_input`: history to the Responses ``input``. See
  :mod:`.openai_responses`.
"""

from resumable_chat.sources.openai_chat import (
    DEFAULT_ERROR_TEXT,
    OpenAIChatEvents,
    OpenAIChatToUIMessageStream,
    ai_sdk_chunks,
    default_error_text,
    detailed_error_text,
    map_finish_reason,
    openai_chunks_from_jsonl,
)
from resumable_chat.sources.openai_messages import to_openai_messages, to_responses_input
from resumable_chat.sources.openai_responses import (
    OpenAIResponsesEvents,
    ai_sdk_chunks_from_responses,
    tanstack_chunks_from_responses,
)
from resumable_chat.sources.openai_tanstack import (
    OpenAIChatToTanStackStream,
    default_error_code,
    map_tanstack_finish_reason,
    tanstack_chunks,
    tanstack_usage,
)

__all__ = [
    "DEFAULT_ERROR_TEXT",
    "OpenAIChatEvents",
    "OpenAIChatToTanStackStream",
    "OpenAIChatToUIMessageStream",
    "OpenAIResponsesEvents",
    "ai_sdk_chunks",
    "ai_sdk_chunks_from_responses",
    "default_error_code",
    "default_error_text",
    "detailed_error_text",
    "map_finish_reason",
    "map_tanstack_finish_reason",
    "openai_chunks_from_jsonl",
    "tanstack_chunks",
    "tanstack_chunks_from_responses",
    "tanstack_usage",
    "to_openai_messages",
    "to_responses_input",
]
