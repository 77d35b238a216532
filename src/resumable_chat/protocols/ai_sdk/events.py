"""Neutral model events → AI SDK ``UIMessageChunk`` dicts.

The chunks are the ones ``streamText(...).toUIMessageStream()`` sends for the same model
stream (AI SDK ``packages/ai/src/generate-text/stream-text.ts``), restricted to the keys every
``ai`` client from 5.0.92 on accepts (``uiMessageChunkSchema``, strict or loose):

==========================================  ===================================================
model event                                 UIMessageChunk
==========================================  ===================================================
(stream opens)                              ``start{messageId}``, ``start-step``
``TextStart`` / ``TextDelta`` / ``TextEnd`` ``text-start`` / ``text-delta`` / ``text-end``
``Reasoning*``                              ``reasoning-start`` / ``-delta`` / ``-end``
``ToolInputStart``, ``ToolInputDelta``      ``tool-input-start{toolCallId, toolName,
                                            providerExecuted?}``, ``tool-input-delta``
``ToolCall``                                ``tool-input-available{input}``
``ToolCallFailed``                          ``tool-input-error{input, errorText}``
``ToolResult``                              ``tool-output-available{output, providerExecuted}``
``SourceUrl`` / ``SourceDocument``          ``source-url`` / ``source-document``
``ModelFinished``                           ``finish-step``, ``finish{finishReason,
                                            messageMetadata?: {model?, usage?}}``
``ModelFailed``                             open parts closed, calls still streaming closed
                                            with ``tool-input-error`` (so no client tool runs
                                            for a failed answer), then ``error{errorText}``
==========================================  ===================================================
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any, TypedDict

from resumable_chat.chat.dialect import DEFAULT_ERROR_TEXT, Chunk
from resumable_chat.model_events import (
    ModelEvent,
    ModelFailed,
    ModelFinished,
    ModelIdentified,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    SourceDocument,
    SourceUrl,
    TextDelta,
    TextEnd,
    TextStart,
    TokenUsage,
    ToolCall,
    ToolCallFailed,
    ToolInputDelta,
    ToolInputStart,
    ToolResult,
    UsageReported,
)
from resumable_chat.protocols.error_text import (
    ErrorTextPolicy,
    apply_error_policy,
    default_error_text,
)

__all__ = [
    "ErrorTextPolicy",
    "UIMessageChunkStream",
    "UIMessageStreamOptions",
    "ai_sdk_finish_reason",
    "ai_sdk_usage",
]


_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "content_filter": "content-filter",
    "error": "error",
}

#: ``errorText`` of a tool call still streaming when the model failed.
INTERRUPTED_CALL_TEXT = "The tool call was interrupted by a model error."


def ai_sdk_finish_reason(reason: object) -> str:
    """A neutral (OpenAI-named) finish reason as the AI SDK ``FinishReason``.

    Args:
        reason: ``"stop"``, ``"length"``, ``"tool_calls"``, ``"content_filter"``, ``"error"``
            or anything else.

    Returns:
        ``"stop"``, ``"length"``, ``"tool-calls"``, ``"content-filter"``, ``"error"``, and
        ``"other"`` for anything else. Never ``"unknown"``: ``ai`` 6 and later reject it
        (``packages/ai/src/ui-message-stream/ui-message-chunks.ts``). Never raises.
    """
    return _FINISH_REASONS.get(reason, "other") if isinstance(reason, str) else "other"


def ai_sdk_usage(usage: TokenUsage) -> dict[str, int]:
    """Token usage in the AI SDK ``LanguageModelUsage`` names, only the reported counts.

    Args:
        usage: the provider's counts (tokens).

    Returns:
        ``{"inputTokens", "outputTokens", "totalTokens", "reasoningTokens",
        "cachedInputTokens"}``, each present when reported; ``totalTokens`` is the sum of input
        and output when the provider gave both but no total. Never raises.
    """
    out: dict[str, int] = {}
    if usage.input_tokens is not None:
        out["inputTokens"] = usage.input_tokens
    if usage.output_tokens is not None:
        out["outputTokens"] = usage.output_tokens
    if usage.total_tokens is not None:
        out["totalTokens"] = usage.total_tokens
    elif usage.input_tokens is not None and usage.output_tokens is not None:
        out["totalTokens"] = usage.input_tokens + usage.output_tokens
    if usage.reasoning_tokens is not None:
        out["reasoningTokens"] = usage.reasoning_tokens
    if usage.cached_input_tokens is not None:
        out["cachedInputTokens"] = usage.cached_input_tokens
    return out


class UIMessageStreamOptions(TypedDict, total=False):
    """The keyword arguments of :class:`UIMessageChunkStream` (see there), for the sources'
    converters and functions that pass them on."""

    message_id: str | None
    on_error: ErrorTextPolicy | None
    include_usage: bool
    include_model: bool


class UIMessageChunkStream:
    """One answer's AI SDK chunks, made from neutral model events (see the module docstring).

    Args:
        message_id: ``start.messageId``; ``None`` generates ``msg-<random hex>`` once. Pass
            the continued assistant message's id on a tool-result continuation.
        on_error: maps the raw failure to ``error.errorText``; ``None`` uses
            :func:`~resumable_chat.protocols.error_text.default_error_text` (generic). If it
            raises, :data:`~resumable_chat.chat.dialect.DEFAULT_ERROR_TEXT` is used.
        include_usage: put the token usage into ``finish.messageMetadata.usage``.
        include_model: put the model's name into ``finish.messageMetadata.model``.

    Attributes:
        message_id: the ``messageId`` of this answer.
        stopped: True once ``finish`` or ``error`` was produced; later events yield nothing.
        model: the latest model name reported, or ``None``.
        usage: the latest usage reported, or ``None``.
    """

    def __init__(
        self,
        *,
        message_id: str | None = None,
        on_error: ErrorTextPolicy | None = None,
        include_usage: bool = True,
        include_model: bool = True,
    ) -> None:
        self.message_id = message_id if message_id is not None else "msg-" + secrets.token_hex(8)
        self.on_error = on_error
        self.include_usage = include_usage
        self.include_model = include_model
        self.stopped = False
        self.model: str | None = None
        self.usage: TokenUsage | None = None
        self._open_parts: dict[str, str] = {}  # part id -> "text" | "reasoning"
        self._open_calls: dict[str, ToolInputStart] = {}  # started, not yet closed
        self._input_text: dict[str, str] = {}  # what the open calls streamed so far
        self._tool_calls = 0  # client-side calls seen (finish reason "tool-calls")

    def start(self) -> Iterator[Chunk]:
        """Open the answer: yields ``start{messageId}`` then ``start-step``."""
        yield {"type": "start", "messageId": self.message_id}
        yield {"type": "start-step"}

    def handle(self, event: ModelEvent) -> Iterator[Chunk]:
        """The chunks for one model event (possibly none); nothing once :attr:`stopped`.

        Args:
            event: any :data:`~resumable_chat.model_events.ModelEvent`.

        Yields:
            the chunks of the module docstring's table.
        """
        if self.stopped:
            return
        match event:
            case TextStart(id=part) | ReasoningStart(id=part):
                kind = "text" if isinstance(event, TextStart) else "reasoning"
                self._open_parts[part] = kind
                yield {"type": f"{kind}-start", "id": part}
            case TextDelta(id=part, delta=delta):
                yield {"type": "text-delta", "id": part, "delta": delta}
            case ReasoningDelta(id=part, delta=delta):
                yield {"type": "reasoning-delta", "id": part, "delta": delta}
            case TextEnd(id=part) | ReasoningEnd(id=part):
                closed = self._open_parts.pop(part, None)
                if closed is not None:
                    yield {"type": f"{closed}-end", "id": part}
            case ToolInputStart():
                yield self._tool_input_start(event)
            case ToolInputDelta(call_id=call_id, delta=delta):
                if call_id in self._open_calls:
                    self._input_text[call_id] += delta
                yield {"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": delta}
            case ToolCall():
                yield self._tool_call(event)
            case ToolCallFailed():
                self._open_calls.pop(event.call_id, None)
                if not event.started:
                    self._tool_calls += 1
                yield {
                    "type": "tool-input-error",
                    "toolCallId": event.call_id,
                    "toolName": event.tool_name,
                    "input": event.input_text,
                    "errorText": event.error_text,
                }
            case ToolResult(call_id=call_id, output=output):
                yield {
                    "type": "tool-output-available",
                    "toolCallId": call_id,
                    "output": output,
                    "providerExecuted": True,
                }
            case SourceUrl() | SourceDocument():
                yield _source(event)
            case ModelIdentified(model=model):
                self.model = model
            case UsageReported(usage=usage):
                self.usage = usage
            case ModelFinished():
                yield from self._finish(event)
            case ModelFailed(error=error):
                yield from self._fail(error)

    def _tool_input_start(self, event: ToolInputStart) -> Chunk:
        self._open_calls[event.call_id] = event
        self._input_text[event.call_id] = ""
        if not event.provider_executed:
            self._tool_calls += 1
        chunk: Chunk = {
            "type": "tool-input-start",
            "toolCallId": event.call_id,
            "toolName": event.tool_name,
        }
        if event.provider_executed:
            chunk["providerExecuted"] = True
        return chunk

    def _tool_call(self, event: ToolCall) -> Chunk:
        self._open_calls.pop(event.call_id, None)
        chunk: Chunk = {
            "type": "tool-input-available",
            "toolCallId": event.call_id,
            "toolName": event.tool_name,
            "input": event.input,
        }
        if event.provider_executed:
            chunk["providerExecuted"] = True
        return chunk

    def _close_parts(self) -> Iterator[Chunk]:
        for part, kind in self._open_parts.items():
            yield {"type": f"{kind}-end", "id": part}
        self._open_parts.clear()

    def _finish(self, event: ModelFinished) -> Iterator[Chunk]:
        yield from self._close_parts()
        yield {"type": "finish-step"}
        reason = event.reason
        if reason is None:
            reason = "tool_calls" if self._tool_calls else event.fallback_reason
        finish: Chunk = {"type": "finish", "finishReason": ai_sdk_finish_reason(reason)}
        metadata: dict[str, Any] = {}
        if self.include_model and self.model:
            metadata["model"] = self.model
        if self.include_usage and self.usage is not None:
            usage = ai_sdk_usage(self.usage)
            if usage:
                metadata["usage"] = usage
        if metadata:
            finish["messageMetadata"] = metadata
        self.stopped = True
        yield finish

    def _fail(self, error: BaseException | dict[str, Any]) -> Iterator[Chunk]:
        yield from self._close_parts()
        for call_id, start in self._open_calls.items():
            chunk: Chunk = {
                "type": "tool-input-error",
                "toolCallId": call_id,
                "toolName": start.tool_name,
                "input": self._input_text[call_id],
                "errorText": INTERRUPTED_CALL_TEXT,
            }
            if start.provider_executed:
                chunk["providerExecuted"] = True
            yield chunk
        self._open_calls.clear()
        self.stopped = True
        yield {"type": "error", "errorText": self._error_text(error)}

    def _error_text(self, error: BaseException | dict[str, Any]) -> str:
        return apply_error_policy(self.on_error or default_error_text, error, DEFAULT_ERROR_TEXT)


def _source(event: SourceUrl | SourceDocument) -> Chunk:
    if isinstance(event, SourceUrl):
        chunk: Chunk = {"type": "source-url", "sourceId": event.source_id, "url": event.url}
        if event.title is not None:
            chunk["title"] = event.title
        return chunk
    chunk = {
        "type": "source-document",
        "sourceId": event.source_id,
        "mediaType": event.media_type,
        "title": event.title,
    }
    if event.filename is not None:
        chunk["filename"] = event.filename
    return chunk
