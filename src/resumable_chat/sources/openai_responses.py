"""OpenAI Responses API streaming → neutral model events → AI SDK UI message stream chunks (and
TanStack's, from the same events).

Input: the events of ``POST /v1/responses`` with ``stream: true``, as the ``openai`` SDK yields
them from ``client.responses.create(..., stream=True)`` (typed event objects, normalised with
``model_dump()``), or as dicts / JSON text of the SSE ``data`` lines (a ``[DONE]`` line, which
OpenRouter sends, is ignored). Event reference: https://platform.openai.com/docs/api-reference/responses-streaming

=================================================  =============================================
Responses event                                    UIMessageChunk
=================================================  =============================================
(stream opens)                                     ``start{messageId}``, ``start-step``
``response.reasoning_summary_text.delta``,         ``reasoning-start`` / ``-delta`` / ``-end``
``response.reasoning_text.delta``                  (one part per reasoning item and summary part)
``response.output_text.delta``,                    ``text-start`` / ``-delta`` / ``-end``
``response.refusal.delta``                         (a refusal is shown as the answer's text)
``response.output_item.added`` ``function_call``,  ``tool-input-start``, ``tool-input-delta``
``response.function_call_arguments.delta``,        per fragment, ``tool-input-available{input}``
``response.output_item.done`` ``function_call``    (or ``tool-input-error`` for invalid JSON)
``response.output_item.added`` / ``.done`` of a    ``tool-input-start{providerExecuted: true}``,
built-in tool (``web_search_call``,                ``tool-input-available{input}`` (the call's
``file_search_call``, ``code_interpreter_call``,   action, queries or code), then
``image_generation_call``, ``mcp_call``...)        ``tool-output-available{output}`` (its
                                                   results / outputs / status); the tool name is
                                                   the item type without ``_call``
``response.code_interpreter_call_code.delta``      ``tool-input-delta`` of that call
``response.output_text.annotation.added``          ``source-url`` (``url_citation``) or
                                                   ``source-document`` (file citations)
``response.completed``                             ``finish-step``, ``finish{finishReason:
                                                   "stop" | "tool-calls", messageMetadata}``
``response.incomplete``                            the same with ``"length"``
                                                   (``max_output_tokens``), ``"content-filter"``
                                                   or ``"other"``
``error``, ``response.failed``                     open parts closed, then ``error{errorText}``
=================================================  =============================================

:class:`OpenAIResponsesEvents` reads the events into neutral model events
(:mod:`resumable_chat.model_events`); the table shows the AI SDK chunks
:class:`~resumable_chat.protocols.ai_sdk.events.UIMessageChunkStream` makes of them.
``messageMetadata`` is ``{"model", "usage"}`` with the AI SDK ``LanguageModelUsage`` names, as
for chat completions. Error texts come from ``on_error`` (default generic,
:func:`~resumable_chat.protocols.error_text.default_error_text`).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any, Unpack

from resumable_chat.chat.dialect import Chunk
from resumable_chat.model_events import (
    FinishReason,
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
    ToolCall,
    ToolInputDelta,
    ToolInputStart,
    ToolResult,
    UsageReported,
)
from resumable_chat.protocols.ai_sdk.events import UIMessageStreamOptions
from resumable_chat.protocols.tanstack.events import TanStackStreamOptions
from resumable_chat.sources.openai_chat import OpenAIChatToUIMessageStream, ai_sdk_chunks
from resumable_chat.sources.openai_payloads import (
    as_payload_dict,
    finished_tool_call,
    openai_token_usage,
)
from resumable_chat.sources.openai_tanstack import tanstack_chunks

__all__ = [
    "OpenAIResponsesEvents",
    "OpenAIResponsesToUIMessageStream",
    "ai_sdk_chunks_from_responses",
    "tanstack_chunks_from_responses",
]

logger = logging.getLogger("resumable_chat.sources.openai_responses")

#: ``incomplete_details.reason`` → the finish reason it stands for.
_INCOMPLETE_REASONS: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}
#: What a built-in tool call's input and output are made of (item fields).
_TOOL_INPUT_FIELDS = ("action", "queries", "code", "arguments", "server_label", "name")
_TOOL_OUTPUT_FIELDS = ("results", "outputs", "output", "result", "error", "status")


class _Call:
    """One tool call of the response, by output item id."""

    __slots__ = ("arguments", "call_id", "closed", "name", "provider_executed")

    def __init__(self, call_id: str, name: str, provider_executed: bool) -> None:
        self.call_id = call_id
        self.name = name
        self.provider_executed = provider_executed
        self.arguments = ""
        self.closed = False


class OpenAIResponsesEvents:
    """Reads one Responses stream into neutral model events (see the module docstring).

    Same interface as :class:`~.openai_chat.OpenAIChatEvents` (:meth:`handle_chunk`,
    :meth:`handle_exception`, :meth:`finish`, :attr:`stopped`). Unknown event types are
    skipped: the API grows new ones, and a client must not break on them.

    Attributes:
        stopped: True once the answer ended (finished or failed).
        finish_reason: what ``response.completed`` / ``response.incomplete`` said, or ``None``.
        model: the response's model, once an event named it.
    """

    def __init__(self) -> None:
        self.stopped = False
        self.finish_reason: FinishReason | None = None
        self.model: str | None = None
        self._token = secrets.token_hex(4)
        self._open: tuple[str, str, str] | None = None  # (kind, item key, part id)
        self._parts = 0
        self._calls: dict[str, _Call] = {}
        self._function_calls = 0
        self._sources = 0

    def finish(self) -> Iterator[ModelEvent]:
        """The stream ended (normally after ``response.completed``): yields the ends of open
        parts and calls, then ``ModelFinished``. Nothing once :attr:`stopped`."""
        if self.stopped:
            return
        yield from self._close_part()
        for call in self._calls.values():
            if not call.closed and not call.provider_executed:
                call.closed = True
                yield finished_tool_call(call.call_id, call.name, call.arguments)
        self.stopped = True
        yield ModelFinished(self.finish_reason, fallback_reason="stop")

    def handle_exception(self, exc: BaseException) -> Iterator[ModelEvent]:
        """The provider iterator raised ``exc``: yields ``ModelFailed(exc)`` (logged)."""
        logger.warning("model stream raised %s", type(exc).__name__, exc_info=exc)
        yield from self._fail(exc)

    def handle_chunk(self, raw: object) -> Iterator[ModelEvent]:
        """Read one Responses event (an SDK event object, a mapping or JSON text; a
        ``[DONE]`` line is ignored). An ``error`` or ``response.failed`` event yields
        ``ModelFailed`` and sets :attr:`stopped`."""
        if self.stopped:
            return
        if isinstance(raw, str | bytes) and raw.strip() in ("[DONE]", b"[DONE]"):
            return
        event = as_payload_dict(raw)
        if event is None:
            logger.debug("skipping an event that is not an object: %r", type(raw).__name__)
            return
        kind = event.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is not None:
            yield from handler(self, event)

    def _response(self, event: dict[str, Any]) -> Iterator[ModelEvent]:
        response = event.get("response")
        if isinstance(response, Mapping) and isinstance(response.get("model"), str):
            model = response["model"]
            if model and model != self.model:
                self.model = model
                yield ModelIdentified(model)

    def _text(self, event: dict[str, Any]) -> Iterator[ModelEvent]:
        delta = event.get("delta")
        if isinstance(delta, str) and delta:
            key = f"{event.get('item_id', '')}:{event.get('content_index', 0)}"
            part = yield from self._part("text", key)
            yield TextDelta(part, delta)

    def _reasoning(self, event: dict[str, Any]) -> Iterator[ModelEvent]:
        delta = event.get("delta")
        if isinstance(delta, str) and delta:
            index = event.get("summary_index", event.get("content_index", 0))
            part = yield from self._part("reasoning", f"{event.get('item_id', '')}:{index}")
            yield ReasoningDelta(part, delta)

    def _item_added(self, event: dict[str, Any]) -> Iterator[ModelEvent]:
        item = event.get("item")
        if not isinstance(item, Mapping):
            return
        kind = item.get("type")
        if not isinstance(kind, str) or not kind.endswith("_call"):
            return
        item_id = str(item.get("id") or item.get("call_id") or "call_" + secrets.token_hex(4))
        if kind == "function_call":
            call = _Call(str(item.get("call_id") or item_id), str(item.get("name", "")), False)
            self._function_calls += 1
        else:
            call = _Call(item_id, kind.removesuffix("_call"), True)
        self._calls[item_id] = call
        yield from self._close_part()
        yield ToolInputStart(call.call_id, call.name, provider_executed=call.provider_executed)

    def _arguments(self, event: dict[str, Any]) -> Iterator[ModelEvent]:
        call = self._calls.get(str(event.get("item_id")))
        delta = event.get("delta")
        if call is None or call.closed or not isinstance(delta, str) or not delta:
            return
        call.arguments += delta
        yield ToolInputDelta(call.call_id, delta)

    def _item_done(self, event: dict[str, Any]) -> Iterator[ModelEvent]:
        item = event.get("item")
        if not isinstance(item, Mapping):
            return
        item_id = str(item.get("id") or item.get("call_id") or "")
        call = self._calls.get(item_id)
        if call is None or call.closed:
            if self._open is not None and self._open[1].startswith(item_id + ":"):
                yield from self._close_part()
            return
        call.closed = True
        if not call.provider_executed:
            arguments = item.get("arguments")
            if isinstance(arguments, str):
                call.arguments = arguments
            yield finished_tool_call(call.call_id, call.name, call.arguments)
            return
        tool_input = {k: item[k] for k in _TOOL_INPUT_FIELDS if item.get(k) is not None}
        yield ToolCall(call.call_id, call.name, tool_input, provider_executed=True)
        output = {k: item[k] for k in _TOOL_OUTPUT_FIELDS if k in item}
        yield ToolResult(call.call_id, call.name, output)

    def _annotation(self, event: dict[str, Any]) -> Iterator[ModelEvent]:
        annotation = event.get("annotation")
        if not isinstance(annotation, Mapping):
            return
        self._sources += 1
        source_id = f"source-{self._token}-{self._sources}"
        if annotation.get("type") == "url_citation" and isinstance(annotation.get("url"), str):
            title = annotation.get("title")
            yield SourceUrl(source_id, annotation["url"], title if isinstance(title, str) else None)
        elif isinstance(annotation.get("filename"), str) or isinstance(
            annotation.get("file_id"), str
        ):
            title = str(annotation.get("filename") or annotation.get("file_id"))
            yield SourceDocument(source_id, title, filename=title)

    def _completed(self, event: dict[str, Any]) -> Iterator[ModelEvent]:
        yield from self._response(event)
        response = event.get("response")
        if isinstance(response, Mapping) and isinstance(response.get("usage"), Mapping):
            yield UsageReported(openai_token_usage(response["usage"]))
        if event.get("type") == "response.incomplete":
            details = response.get("incomplete_details") if isinstance(response, Mapping) else None
            reason = details.get("reason") if isinstance(details, Mapping) else None
            self.finish_reason = _INCOMPLETE_REASONS.get(str(reason), "other")
        else:
            self.finish_reason = "tool_calls" if self._function_calls else "stop"

    def _error(self, event: dict[str, Any]) -> Iterator[ModelEvent]:
        error = event.get("error")
        if event.get("type") == "response.failed":
            response = event.get("response")
            error = response.get("error") if isinstance(response, Mapping) else None
        if not isinstance(error, Mapping):
            error = {k: event[k] for k in ("code", "message", "param") if k in event}
        error = dict(error)
        logger.warning("model stream reported an error: %s", json.dumps(error, default=str))
        yield from self._fail(error)

    # -- parts ---------------------------------------------------------------------------------

    def _part(self, kind: str, key: str) -> Generator[ModelEvent, None, str]:
        """Make ``(kind, key)`` the open part (closing another); returns its id."""
        if self._open is not None and self._open[:2] == (kind, key):
            return self._open[2]
        yield from self._close_part()
        self._parts += 1
        part = f"{kind}-{self._token}-{self._parts}"
        self._open = (kind, key, part)
        yield TextStart(part) if kind == "text" else ReasoningStart(part)
        return part

    def _close_part(self) -> Iterator[ModelEvent]:
        if self._open is not None:
            kind, _, part = self._open
            self._open = None
            yield TextEnd(part) if kind == "text" else ReasoningEnd(part)

    def _fail(self, error: BaseException | dict[str, Any]) -> Iterator[ModelEvent]:
        if self.stopped:
            return
        self.stopped = True
        yield ModelFailed(error)


_Handler = Callable[[OpenAIResponsesEvents, dict[str, Any]], Iterator[ModelEvent]]

_HANDLERS: dict[str, _Handler] = {
    "response.created": OpenAIResponsesEvents._response,
    "response.in_progress": OpenAIResponsesEvents._response,
    "response.queued": OpenAIResponsesEvents._response,
    "response.output_text.delta": OpenAIResponsesEvents._text,
    "response.refusal.delta": OpenAIResponsesEvents._text,
    "response.reasoning_summary_text.delta": OpenAIResponsesEvents._reasoning,
    "response.reasoning_text.delta": OpenAIResponsesEvents._reasoning,
    "response.output_item.added": OpenAIResponsesEvents._item_added,
    "response.output_item.done": OpenAIResponsesEvents._item_done,
    "response.function_call_arguments.delta": OpenAIResponsesEvents._arguments,
    "response.code_interpreter_call_code.delta": OpenAIResponsesEvents._arguments,
    "response.output_text.annotation.added": OpenAIResponsesEvents._annotation,
    "response.completed": OpenAIResponsesEvents._completed,
    "response.incomplete": OpenAIResponsesEvents._completed,
    "response.failed": OpenAIResponsesEvents._error,
    "error": OpenAIResponsesEvents._error,
}


class OpenAIResponsesToUIMessageStream(OpenAIChatToUIMessageStream):
    """Converter of one Responses stream into ``UIMessageChunk`` dicts:
    :class:`OpenAIResponsesEvents` joined to
    :class:`~resumable_chat.protocols.ai_sdk.events.UIMessageChunkStream`. Same interface as
    :class:`~.openai_chat.OpenAIChatToUIMessageStream`.

    Args:
        **options: the keyword arguments of :func:`~.openai_chat.ai_sdk_chunks` besides the
            stream and ``normaliser``.
    """

    def __init__(self, **options: Unpack[UIMessageStreamOptions]) -> None:
        super().__init__(normaliser=OpenAIResponsesEvents(), **options)


def ai_sdk_chunks_from_responses(
    stream: AsyncIterable[Any] | Iterable[Any], **options: Unpack[UIMessageStreamOptions]
) -> AsyncGenerator[Chunk, None]:
    """Convert an OpenAI Responses stream into AI SDK ``UIMessageChunk`` dicts.

    The same keyword arguments as :func:`~.openai_chat.ai_sdk_chunks` (``message_id``,
    ``on_error``, ``include_usage``, ``include_model``); the input is a Responses stream.

    Args:
        stream: ``await client.responses.create(..., stream=True)`` (an async iterable of
            typed events), or any (async) iterable of event dicts / JSON lines.
        **options: as for :func:`~.openai_chat.ai_sdk_chunks`.

    Yields:
        ``start``, ``start-step``, the answer's parts, ``finish-step``, ``finish`` (or the
        closing chunks and one ``error``). The provider stream is closed on the way out, also
        when the consumer stops early (a stop ends the HTTP request to OpenAI).

    Raises:
        TypeError: ``stream`` is not iterable, or an unknown keyword argument.
    """
    return ai_sdk_chunks(stream, normaliser=OpenAIResponsesEvents(), **options)


def tanstack_chunks_from_responses(
    stream: AsyncIterable[Any] | Iterable[Any], **options: Unpack[TanStackStreamOptions]
) -> AsyncGenerator[Chunk, None]:
    """Convert an OpenAI Responses stream into TanStack AI ``StreamChunk`` dicts.

    The same keyword arguments and events as :func:`~.openai_tanstack.tanstack_chunks`
    (``run_id``, ``thread_id``, ``message_id``, ``model``, ``on_error``, ``on_error_code``,
    ``include_usage``, ``clock_ms``; ``RUN_STARTED``, text, reasoning, ``TOOL_CALL_*``,
    ``TOOL_CALL_RESULT`` for built-in tools, then ``RUN_FINISHED`` or ``RUN_ERROR``); the input
    is a Responses stream (see :func:`ai_sdk_chunks_from_responses`).

    Raises:
        TypeError: ``stream`` is not iterable, or an unknown keyword argument.
    """
    return tanstack_chunks(stream, normaliser=OpenAIResponsesEvents(), **options)
