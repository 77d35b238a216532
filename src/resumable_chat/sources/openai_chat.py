"""OpenAI chat-completions streaming → neutral model events → AI SDK UI message stream chunks.

Input: the chunks of ``POST /chat/completions`` with ``stream: true`` (``chat.completion.chunk``
objects), as the ``openai`` SDK (``ChatCompletionChunk``) or ``litellm``
(``ModelResponseStream``) yield them, or as plain dicts parsed from the SSE ``data`` lines.
Objects are normalised with ``model_dump()``; anything else must be a mapping.

Output: plain dicts in the AI SDK ``UIMessageChunk`` JSON shape, restricted to the keys of the
"compat profile" (the chunk types every ``ai`` 5.0.92+ ``uiMessageChunkSchema`` accepts) so every
``ai`` client from 5.0.92 on
accepts them, strict (``z.strictObject``) or loose.

:class:`OpenAIChatEvents` reads the provider chunks into neutral model events
(:mod:`resumable_chat.model_events`), one handler per OpenAI delta kind; the AI SDK chunks are
made from those by :class:`~resumable_chat.protocols.ai_sdk.events.UIMessageChunkStream` (and
TanStack's by :mod:`.openai_tanstack` from the same events). End to end:

=================================================  =============================================
OpenAI                                             UIMessageChunk
=================================================  =============================================
(stream opens)                                     ``start{messageId}``, ``start-step``
``delta.reasoning_content`` / ``delta.reasoning``  ``reasoning-start`` / ``-delta`` / ``-end``
(DeepSeek, Groq, OpenRouter, vLLM; one of the two
per delta, ``reasoning_content`` first)
``delta.content`` and ``delta.refusal``            ``text-start`` / ``-delta`` / ``-end``
(a refusal is shown as the answer's text)
``delta.tool_calls[i]`` (``function_call``)        ``tool-input-start{toolCallId,toolName}``,
                                                   ``tool-input-delta{inputTextDelta}`` per
                                                   argument fragment, and at the end of the
                                                   step ``tool-input-available{input}`` (parsed
                                                   arguments) or ``tool-input-error`` (invalid
                                                   JSON; ``input`` is the raw text)
``choices[].finish_reason``                        closes open parts and tool calls; kept for
                                                   ``finish.finishReason``
``usage`` (on any chunk, usually the last one      ``finish.messageMetadata.usage``
with ``choices: []``)
(stream ends)                                      ``finish-step``, ``finish{finishReason,
                                                   messageMetadata?}``
``{"error": {...}}`` (no ``choices`` needed) or    open text/reasoning closed, unfinished tool
an exception raised by the iterator                calls → ``tool-input-error``, then one
                                                   ``error{errorText}``, and the stream stops
=================================================  =============================================

Details:

- Only choice ``index`` 0 is used (``n > 1`` answers cannot share one UI message).
- Text and reasoning never interleave inside one part: a reasoning delta closes an open text
  part and vice versa; a new tool call closes both ("close open parts before tool calls").
- Tool calls are keyed by ``index``. Providers bend this, so: an ``id`` already seen selects
  that call (OpenRouter repeats ``id``, ``type`` and ``name`` on every delta; the name is
  taken once, never concatenated); a new ``id`` on a known ``index`` starts a new call; a
  delta without ``index`` and without ``id`` continues the latest call (Mistral sends a whole
  call without ``index``); a call without ``id`` gets ``call_<random>``. ``tool-input-start``
  waits until the tool name is known. Empty arguments mean ``{}``.
- ``finishReason`` follows the AI SDK enum (:func:`map_finish_reason`). A stream that ends
  without ``finish_reason`` still ends with ``finish-step`` + ``finish``: ``"tool-calls"`` when
  it produced tool calls, otherwise ``"other"`` (what the AI SDK OpenAI provider reports).
- ``messageMetadata`` on ``finish`` is ``{"model": <model>, "usage": {...}}`` with the AI SDK
  ``LanguageModelUsage`` names: ``inputTokens``, ``outputTokens``, ``totalTokens`` and, when the
  provider reports them, ``reasoningTokens`` and ``cachedInputTokens``.
- Error texts come from ``on_error``; the default (:func:`default_error_text`) is a generic
  message so provider internals (request ids, failed generations, schemas) never reach the
  browser. The details are logged on the ``resumable_chat.sources.openai_chat`` logger.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator, Mapping
from typing import Any, Unpack

from resumable_chat.chat.dialect import DEFAULT_ERROR_TEXT, Chunk
from resumable_chat.model_events import (
    FinishReason,
    ModelEvent,
    ModelFailed,
    ModelFinished,
    ModelIdentified,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    TextDelta,
    TextEnd,
    TextStart,
    ToolCallFailed,
    ToolInputDelta,
    ToolInputStart,
    UsageReported,
)
from resumable_chat.protocols.ai_sdk.events import (
    ErrorTextPolicy,
    UIMessageStreamOptions,
    ai_sdk_finish_reason,
)
from resumable_chat.protocols.error_text import default_error_text, detailed_error_text
from resumable_chat.sources.openai_payloads import (
    as_payload_dict,
    finished_tool_call,
    openai_token_usage,
)
from resumable_chat.sources.recordings import openai_chunks_from_jsonl
from resumable_chat.sources.stream_driver import (
    ModelEventSource,
    StreamConverter,
    UIMessageConverter,
    drive_converter,
)

__all__ = [
    "DEFAULT_ERROR_TEXT",
    "OpenAIChatEvents",
    "OpenAIChatToUIMessageStream",
    "StreamConverter",
    "ai_sdk_chunks",
    "default_error_text",
    "detailed_error_text",
    "drive_converter",
    "map_finish_reason",
    "openai_chunks_from_jsonl",
    "openai_finish_reason",
]

logger = logging.getLogger("resumable_chat.sources.openai_chat")

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
}

_FUNCTION_CALL_KEY = "function_call"


def openai_finish_reason(reason: object) -> FinishReason:
    """An OpenAI ``finish_reason`` as a neutral :data:`~resumable_chat.model_events.FinishReason`.

    Args:
        reason: the provider's value (normally a string; anything is accepted).

    Returns:
        the same name for ``stop``, ``length``, ``tool_calls``, ``content_filter`` and
        ``error`` (OpenRouter's mid-stream error), ``"tool_calls"`` for the legacy
        ``function_call``, ``"other"`` for anything else. Never raises.
    """
    if isinstance(reason, str):
        return _FINISH_REASONS.get(reason, "other")
    return "other"


def map_finish_reason(reason: object) -> str:
    """Map an OpenAI ``finish_reason`` to the AI SDK ``finishReason`` enum: ``tool_calls`` and
    the legacy ``function_call`` → ``"tool-calls"``, ``content_filter`` → ``"content-filter"``,
    ``stop`` / ``length`` / ``error`` unchanged, anything else ``"other"`` (see
    :func:`~resumable_chat.protocols.ai_sdk.events.ai_sdk_finish_reason`). Never raises."""
    return ai_sdk_finish_reason(openai_finish_reason(reason))


class _ToolCall:
    """One streamed tool call: identity, name, accumulated argument text and progress."""

    __slots__ = ("arguments", "done", "id", "name", "started")

    def __init__(self, call_id: str) -> None:
        self.id = call_id
        self.name = ""
        self.arguments = ""
        self.started = False
        self.done = False


class OpenAIChatEvents:
    """Reads OpenAI chat-completions chunks into neutral model events.

    Shaped like pydantic-ai's ``ui/vercel_ai`` event stream: one handler per OpenAI delta kind
    (:meth:`handle_text`, :meth:`handle_reasoning`, :meth:`handle_tool_call_delta`,
    :meth:`handle_finish_reason`, :meth:`handle_usage`, :meth:`handle_error`), each a
    generator of :data:`~resumable_chat.model_events.ModelEvent` s. :meth:`handle_chunk`
    dispatches one provider chunk to them; :meth:`finish` closes the answer. See the module
    docstring for how providers' quirks are read.

    Attributes:
        stopped: True once the answer ended (finished or failed); later input yields nothing.
        finish_reason: the last raw ``finish_reason`` seen, or ``None``.
        model: the latest non-empty ``model`` seen, or ``None``.
    """

    def __init__(self) -> None:
        self.stopped = False
        self.finish_reason: str | None = None
        self.model: str | None = None
        self._token = secrets.token_hex(4)
        self._part_counter = 0
        self._text_id: str | None = None
        self._reasoning_id: str | None = None
        self._calls: list[_ToolCall] = []
        self._calls_by_id: dict[str, _ToolCall] = {}
        self._calls_by_index: dict[object, _ToolCall] = {}

    def finish(self) -> Iterator[ModelEvent]:
        """The provider stream ended normally.

        Yields:
            the ends of open parts, :class:`~resumable_chat.model_events.ToolCall` (or
            ``ToolCallFailed``) for calls not yet closed, then ``ModelFinished``. Nothing once
            :attr:`stopped`.
        """
        if self.stopped:
            return
        yield from self._close_parts()
        yield from self._close_tool_calls()
        self.stopped = True
        reason = None if self.finish_reason is None else openai_finish_reason(self.finish_reason)
        yield ModelFinished(reason, fallback_reason="other")

    def handle_exception(self, exc: BaseException) -> Iterator[ModelEvent]:
        """The provider iterator raised ``exc``: yields ``ModelFailed(exc)`` (logged)."""
        logger.warning("model stream raised %s", type(exc).__name__, exc_info=exc)
        yield from self._fail(exc)

    def handle_chunk(self, raw: object) -> Iterator[ModelEvent]:
        """Read one provider chunk.

        Args:
            raw: a ``ChatCompletionChunk`` / ``ModelResponseStream`` (anything with
                ``model_dump()``), a mapping, or JSON text of one chunk. Other values and
                chunks that fail to normalise are skipped (logged at debug level).

        Yields:
            the model events it holds (possibly none). An in-stream error payload yields
            ``ModelFailed`` and sets :attr:`stopped`.
        """
        if self.stopped:
            return
        data = as_payload_dict(raw)
        if data is None:
            logger.debug("skipping a chunk that is not an object: %r", type(raw).__name__)
            return
        model = data.get("model")
        if isinstance(model, str) and model and model != self.model:
            self.model = model
            yield ModelIdentified(model)
        error = data.get("error")
        if error:
            yield from self.handle_error(error if isinstance(error, dict) else data)
            return
        choices = data.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, Mapping):
                    continue
                index = choice.get("index")
                if index is not None and index != 0:
                    continue
                delta = choice.get("delta")
                if isinstance(delta, Mapping):
                    yield from self._handle_delta(delta)
                reason = choice.get("finish_reason")
                if reason:
                    yield from self.handle_finish_reason(reason)
        usage = data.get("usage")
        if isinstance(usage, Mapping):
            yield from self.handle_usage(usage)

    def _handle_delta(self, delta: Mapping[str, Any]) -> Iterator[ModelEvent]:
        reasoning = delta.get("reasoning_content")
        if not (isinstance(reasoning, str) and reasoning):
            reasoning = delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            yield from self.handle_reasoning(reasoning)
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                yield from self.handle_text(text)
        tool_calls = delta.get("tool_calls")
        if isinstance(tool_calls, list):
            for tool_call in tool_calls:
                if isinstance(tool_call, Mapping):
                    yield from self.handle_tool_call_delta(tool_call)
        function_call = delta.get("function_call")
        if isinstance(function_call, Mapping):
            # Legacy ``functions`` API: one call per answer, streamed like a tool call.
            yield from self.handle_tool_call_delta(
                {"index": _FUNCTION_CALL_KEY, "function": function_call}
            )

    # -- handlers ----------------------------------------------------------------------------

    def handle_text(self, text: str) -> Iterator[ModelEvent]:
        """Answer text (``delta.content``, and ``delta.refusal`` which is shown as text).

        Args:
            text: a non-empty fragment (empty strings yield nothing).

        Yields:
            ``ReasoningEnd`` if reasoning was open, ``TextStart`` if no text part is open, then
            ``TextDelta``.
        """
        if not text:
            return
        if self._reasoning_id is not None:
            yield ReasoningEnd(self._reasoning_id)
            self._reasoning_id = None
        if self._text_id is None:
            self._text_id = self._next_part_id("text")
            yield TextStart(self._text_id)
        yield TextDelta(self._text_id, text)

    def handle_reasoning(self, text: str) -> Iterator[ModelEvent]:
        """Reasoning text (``delta.reasoning_content`` or ``delta.reasoning``).

        Args:
            text: a non-empty fragment (empty strings yield nothing).

        Yields:
            ``TextEnd`` if text was open, ``ReasoningStart`` if no reasoning part is open, then
            ``ReasoningDelta``.
        """
        if not text:
            return
        if self._text_id is not None:
            yield TextEnd(self._text_id)
            self._text_id = None
        if self._reasoning_id is None:
            self._reasoning_id = self._next_part_id("reasoning")
            yield ReasoningStart(self._reasoning_id)
        yield ReasoningDelta(self._reasoning_id, text)

    def handle_tool_call_delta(self, tool_call: Mapping[str, Any]) -> Iterator[ModelEvent]:
        """One ``delta.tool_calls[]`` item: ``{index?, id?, type?, function: {name?, arguments?}}``.

        Args:
            tool_call: the item; see the module docstring for how it is matched to a call.

        Yields:
            the ends of open parts when a call starts, ``ToolInputStart`` once the name is
            known (with the arguments buffered so far as one ``ToolInputDelta``), then a
            ``ToolInputDelta`` per non-empty argument fragment.
        """
        call = self._resolve_call(tool_call)
        function = tool_call.get("function")
        name: object = None
        arguments: object = None
        if isinstance(function, Mapping):
            name = function.get("name")
            arguments = function.get("arguments")
        if isinstance(name, str) and name and not call.name:
            call.name = name
        fragment = arguments if isinstance(arguments, str) else ""
        if call.done:
            # A fragment after the call was closed (e.g. after finish_reason): ignore it.
            return
        if not call.started:
            call.arguments += fragment
            if not call.name:
                return
            yield from self._close_parts()
            call.started = True
            yield ToolInputStart(call.id, call.name)
            if call.arguments:
                yield ToolInputDelta(call.id, call.arguments)
            return
        if fragment:
            call.arguments += fragment
            yield ToolInputDelta(call.id, fragment)

    def handle_finish_reason(self, reason: object) -> Iterator[ModelEvent]:
        """``choices[0].finish_reason``: the step's content is complete.

        Args:
            reason: the raw value, kept in :attr:`finish_reason`.

        Yields:
            the ends of open parts, then ``ToolCall`` (or ``ToolCallFailed``) for every call
            not yet closed. ``ModelFinished`` waits for :meth:`finish`, because ``usage``
            usually follows in a later chunk.
        """
        self.finish_reason = reason if isinstance(reason, str) else str(reason)
        yield from self._close_parts()
        yield from self._close_tool_calls()

    def handle_usage(self, usage: Mapping[str, Any]) -> Iterator[ModelEvent]:
        """A ``usage`` object (on the last chunk, with or without ``choices``).

        Yields:
            ``UsageReported`` with its counts (the latest report wins).
        """
        yield UsageReported(openai_token_usage(usage))

    def handle_error(self, error: dict[str, Any]) -> Iterator[ModelEvent]:
        """An in-stream provider error (``{"error": {...}}``, e.g. Groq's ``tool_use_failed``).

        Args:
            error: the provider's error object (the payload's ``error`` member).

        Yields:
            ``ModelFailed(error)`` (logged); sets :attr:`stopped`.
        """
        logger.warning("model stream reported an error: %.500s", _compact(error))
        yield from self._fail(error)

    # -- internals ---------------------------------------------------------------------------

    def _next_part_id(self, kind: str) -> str:
        part_id = f"{kind}-{self._token}-{self._part_counter}"
        self._part_counter += 1
        return part_id

    def _resolve_call(self, tool_call: Mapping[str, Any]) -> _ToolCall:
        call_id = tool_call.get("id")
        index = tool_call.get("index")
        if isinstance(call_id, str) and call_id:
            known = self._calls_by_id.get(call_id)
            if known is not None:
                return known
            call = self._new_call(call_id)
            if index is not None:
                self._calls_by_index[index] = call
            return call
        if index is not None:
            known = self._calls_by_index.get(index)
            if known is not None:
                return known
            call = self._new_call("call_" + secrets.token_hex(12))
            self._calls_by_index[index] = call
            return call
        if self._calls and not self._calls[-1].done:
            return self._calls[-1]
        return self._new_call("call_" + secrets.token_hex(12))

    def _new_call(self, call_id: str) -> _ToolCall:
        call = _ToolCall(call_id)
        self._calls.append(call)
        self._calls_by_id[call_id] = call
        return call

    def _close_parts(self) -> Iterator[ModelEvent]:
        if self._text_id is not None:
            yield TextEnd(self._text_id)
            self._text_id = None
        if self._reasoning_id is not None:
            yield ReasoningEnd(self._reasoning_id)
            self._reasoning_id = None

    def _close_tool_calls(self) -> Iterator[ModelEvent]:
        for call in self._calls:
            if call.done:
                continue
            call.done = True
            if not call.started:
                # Never got a name: report it as a failed call rather than invent a tool.
                call.started = True
                yield ToolCallFailed(
                    call.id,
                    call.name or "unknown",
                    call.arguments,
                    "The tool call has no function name.",
                    started=False,
                )
                continue
            yield finished_tool_call(call.id, call.name, call.arguments)

    def _fail(self, error: BaseException | dict[str, Any]) -> Iterator[ModelEvent]:
        if self.stopped:
            return
        self.stopped = True
        yield ModelFailed(error)


def _compact(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


class OpenAIChatToUIMessageStream(UIMessageConverter):
    """Converter from OpenAI chat-completions chunks to AI SDK ``UIMessageChunk`` dicts:
    :class:`OpenAIChatEvents` joined to
    :class:`~resumable_chat.protocols.ai_sdk.events.UIMessageChunkStream`.

    :func:`ai_sdk_chunks` drives it over an async stream; use the class directly for
    synchronous or custom loops (:meth:`start`, :meth:`handle_chunk`,
    :meth:`handle_exception`, :meth:`finish`, each a generator of chunks).

    Args:
        normaliser: reads another provider format into model events (e.g.
            :class:`~.openai_responses.OpenAIResponsesEvents`); ``None``: chat completions.
        **options: the keyword arguments of :func:`ai_sdk_chunks` besides the stream:
            ``message_id``, ``on_error``, ``include_usage``, ``include_model``.

    Attributes:
        message_id: the ``messageId`` of this answer.
        stopped: True once ``finish`` or ``error`` was produced; feed nothing more after that.
    """

    def __init__(
        self,
        *,
        normaliser: ModelEventSource | None = None,
        **options: Unpack[UIMessageStreamOptions],
    ) -> None:
        super().__init__(normaliser if normaliser is not None else OpenAIChatEvents(), **options)


def ai_sdk_chunks(
    stream: AsyncIterable[Any] | Iterable[Any],
    *,
    message_id: str | None = None,
    on_error: ErrorTextPolicy | None = None,
    include_usage: bool = True,
    include_model: bool = True,
    normaliser: ModelEventSource | None = None,
) -> AsyncGenerator[Chunk, None]:
    """Convert an OpenAI chat-completions stream into AI SDK ``UIMessageChunk`` dicts.

    Args:
        stream: the provider stream: an async iterable (``await client.chat.completions.create(
            ..., stream=True)``, ``await litellm.acompletion(..., stream=True)``, an async
            generator of dicts). A plain iterable is iterated inline, for in-memory data only.
            Items: ``ChatCompletionChunk``-like objects (``model_dump()``), mappings or JSON.
        message_id: ``start.messageId``; ``None`` (default) generates ``msg-<hex>`` once, so
            every chunk of this answer belongs to one stable id. Pass the continued assistant
            message's id on a tool-result continuation (AI SDK ``processUIMessageStream``).
        on_error: ``errorText`` policy for an exception raised by ``stream`` or an in-stream
            error payload (``{"error": {...}}``); default :func:`default_error_text`
            (generic). :func:`detailed_error_text` shows provider messages (development). If
            it raises, the default text is used.
        include_usage: add ``usage`` (AI SDK names) to ``finish.messageMetadata`` (default
            True).
        include_model: add the provider's ``model`` to ``finish.messageMetadata`` (default
            True).
        normaliser: reads another provider format into model events (the Responses API's
            :class:`~.openai_responses.OpenAIResponsesEvents`); ``None``: chat completions.

    Yields:
        ``start``, ``start-step``, content chunks, then ``finish-step`` and ``finish`` — or,
        on a provider error, the closing chunks and one ``error`` chunk, after which the
        generator returns (the provider stream is closed). See the module docstring.

    Raises:
        TypeError: ``stream`` is not iterable.

    ``asyncio.CancelledError`` and other ``BaseException`` s are not converted; the provider
    stream is closed on the way out (also when the consumer closes this generator early, e.g.
    on stop).
    """
    converter = OpenAIChatToUIMessageStream(
        normaliser=normaliser,
        message_id=message_id,
        on_error=on_error,
        include_usage=include_usage,
        include_model=include_model,
    )
    return drive_converter(converter, stream)
