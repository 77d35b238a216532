"""OpenAI chat-completions streaming → TanStack AI ``StreamChunk`` dicts (AG-UI events).

Input: the same provider chunks as :mod:`.openai_chat` (``openai`` SDK ``ChatCompletionChunk``,
``litellm`` ``ModelResponseStream``, mappings or JSON text), read by the same
:class:`~.openai_chat.OpenAIChatEvents` into neutral model events (tool-call matching by
``index``/``id``, providers' quirks, reasoning fields, refusals, in-stream error payloads), so
both protocols see one model answer the same way. The TanStack chunks are made from those
events by :class:`~resumable_chat.protocols.tanstack.events.TanStackChunkStream`; its module
docstring has the table of events and the reasons for each choice.

``finishReason`` uses TanStack's values (``RunFinishedEvent``: ``stop``, ``length``,
``content_filter``, ``tool_calls``, ``null``) like TanStack's adapter: ``tool_calls`` when a
tool call was completed, ``stop`` for an upstream ``tool_calls`` without one and for a stream
that never said why it ended; other provider values (``error``, ``eos``...) give ``null``
(:func:`map_tanstack_finish_reason`). Error texts come from ``on_error`` (default: generic,
:func:`~resumable_chat.protocols.error_text.default_error_text`) and codes from
``on_error_code`` (default :func:`default_error_code`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Mapping
from typing import Any, Unpack

from resumable_chat.chat.dialect import Chunk
from resumable_chat.protocols.tanstack.events import (
    FALLBACK_ERROR_CODE,
    ErrorCodePolicy,
    ErrorTextPolicy,
    TanStackStreamOptions,
    default_error_code,
    map_tanstack_finish_reason,
    tanstack_token_usage,
)
from resumable_chat.sources.openai_chat import OpenAIChatEvents
from resumable_chat.sources.openai_payloads import openai_token_usage
from resumable_chat.sources.stream_driver import (
    ModelEventSource,
    TanStackConverter,
    drive_converter,
)

__all__ = [
    "FALLBACK_ERROR_CODE",
    "OpenAIChatToTanStackStream",
    "default_error_code",
    "map_tanstack_finish_reason",
    "tanstack_chunks",
    "tanstack_usage",
]


def tanstack_usage(usage: Mapping[str, Any]) -> dict[str, Any] | None:
    """OpenAI ``usage`` → TanStack ``TokenUsage``.

    Args:
        usage: ``{prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details?:
            {cached_tokens}, completion_tokens_details?: {reasoning_tokens}}`` (token counts).

    Returns:
        ``{"promptTokens", "completionTokens", "totalTokens"}`` (missing counts are 0, a
        missing total is the sum, as TanStack's adapter does), plus ``promptTokensDetails:
        {"cachedTokens"}`` and ``completionTokensDetails: {"reasoningTokens"}`` when
        reported; ``None`` when the object has none of the three counts. Never raises.
    """
    return tanstack_token_usage(openai_token_usage(usage))


class OpenAIChatToTanStackStream(TanStackConverter):
    """Converter from OpenAI chat-completions chunks to TanStack ``StreamChunk`` dicts:
    :class:`~.openai_chat.OpenAIChatEvents` (or another reader) joined to
    :class:`~resumable_chat.protocols.tanstack.events.TanStackChunkStream`.

    :func:`tanstack_chunks` drives it over a stream; use it directly for custom loops
    (:meth:`start`, :meth:`handle_chunk`, :meth:`handle_exception`, :meth:`finish`).

    Args:
        normaliser: reads another provider format into model events (e.g.
            :class:`~.openai_responses.OpenAIResponsesEvents`); ``None``: chat completions.
        **options: the other keyword arguments of :func:`tanstack_chunks`.

    Attributes:
        run_id, thread_id, message_id: as resolved at construction.
        stopped: True once ``RUN_FINISHED`` or ``RUN_ERROR`` was produced.
        finish_reason: the TanStack ``finishReason`` sent on ``RUN_FINISHED``, else ``None``.
    """

    def __init__(
        self,
        *,
        normaliser: ModelEventSource | None = None,
        **options: Unpack[TanStackStreamOptions],
    ) -> None:
        super().__init__(normaliser if normaliser is not None else OpenAIChatEvents(), **options)


def tanstack_chunks(
    stream: AsyncIterable[Any] | Iterable[Any],
    *,
    run_id: str | None = None,
    thread_id: str | None = None,
    message_id: str | None = None,
    model: str | None = None,
    on_error: ErrorTextPolicy | None = None,
    on_error_code: ErrorCodePolicy | None = None,
    include_usage: bool = True,
    clock_ms: Callable[[], int] | None = None,
    normaliser: ModelEventSource | None = None,
) -> AsyncGenerator[Chunk, None]:
    """Convert an OpenAI chat-completions stream into TanStack AI ``StreamChunk`` dicts.

    Args:
        stream: the provider stream: an async iterable (``await client.chat.completions.create(
            ..., stream=True)``, ``await litellm.acompletion(..., stream=True)``, an async
            generator of dicts). A plain iterable is iterated inline, for in-memory data only.
            Items: ``ChatCompletionChunk``-like objects (``model_dump()``), mappings or JSON.
        normaliser: reads another provider format into model events (the Responses API's
            :class:`~.openai_responses.OpenAIResponsesEvents`); ``None``: chat completions.
        run_id: the run's id (the request's ``runId``); ``None`` generates ``run-<hex>``.
        thread_id: the request's ``threadId``, echoed on the run events; ``None`` omits it.
        message_id: the assistant message's id; ``None`` generates ``msg-<hex>``.
        model: model name for ``metadata.tanstack.model`` when the chunks carry none.
        on_error: ``RUN_ERROR.message`` policy for an exception raised by ``stream`` or an
            in-stream error payload; default generic
            (:func:`~resumable_chat.protocols.error_text.default_error_text`);
            :func:`~resumable_chat.protocols.error_text.detailed_error_text` shows provider
            messages (development).
        on_error_code: ``RUN_ERROR.code`` policy; default :func:`default_error_code`.
        include_usage: add ``usage`` (TanStack ``TokenUsage``) to the terminal chunk (default
            True).
        clock_ms: ``timestamp`` source in ms since the epoch (default: the system clock).

    Yields:
        ``RUN_STARTED``, the message's chunks, then ``RUN_FINISHED``; or, on a provider error,
        the closing chunks and ``RUN_ERROR``, after which the generator returns (the provider
        stream is closed). Every chunk has ``timestamp``. See the module docstring.

    Raises:
        TypeError: ``stream`` is not iterable.

    Cancellation and other ``BaseException`` s pass through unconverted, and the provider
    stream is closed on every way out, as with :func:`~.openai_chat.ai_sdk_chunks`.
    """
    converter = OpenAIChatToTanStackStream(
        normaliser=normaliser,
        run_id=run_id,
        thread_id=thread_id,
        message_id=message_id,
        model=model,
        on_error=on_error,
        on_error_code=on_error_code,
        include_usage=include_usage,
        clock_ms=clock_ms,
    )
    return drive_converter(converter, stream)
