"""OpenAI Responses API streaming → AI SDK UI message stream chunks (and TanStack, through
:mod:`.openai_tanstack`).

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

``messageMetadata`` is ``{"model", "usage"}`` with the AI SDK ``LanguageModelUsage`` names, as
for chat completions. Error texts come from ``on_error`` (default generic,
:func:`~.error_text.default_error_text`).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Iterator, Mapping
from typing import Any

from resumable_chat.chat.dialect import Chunk
from resumable_chat.sources.error_text import default_error_text
from resumable_chat.sources.openai_chat import (
    ErrorTextPolicy,
    _as_dict,
    _int,
    _usage_metadata,
    map_finish_reason,
    tool_input_end,
)
from resumable_chat.sources.openai_tanstack import tanstack_chunks
from resumable_chat.sources.stream_driver import drive_converter

__all__ = [
    "OpenAIResponsesToUIMessageStream",
    "ai_sdk_chunks_from_responses",
    "chat_usage_from_responses",
    "tanstack_chunks_from_responses",
]

logger = logging.getLogger("resumable_chat.sources.openai_responses")

#: ``incomplete_details.reason`` → the chat-completions ``finish_reason`` it stands for.
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}
#: What a built-in tool call's input and output are made of (item fields).
_TOOL_INPUT_FIELDS = ("action", "queries", "code", "arguments", "server_label", "name")
_TOOL_OUTPUT_FIELDS = ("results", "outputs", "output", "result", "error", "status")


def chat_usage_from_responses(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Responses ``usage`` (``input_tokens``, ``output_tokens``, ``total_tokens``, details) in
    the chat-completions names (``prompt_tokens``, ``completion_tokens``...), which both
    protocols' usage mappings read."""
    out: dict[str, Any] = {}
    for ours, theirs in (
        ("prompt_tokens", "input_tokens"),
        ("completion_tokens", "output_tokens"),
        ("total_tokens", "total_tokens"),
    ):
        value = _int(usage.get(theirs))
        if value is not None:
            out[ours] = value
    input_details = usage.get("input_tokens_details")
    if isinstance(input_details, Mapping) and _int(input_details.get("cached_tokens")) is not None:
        out["prompt_tokens_details"] = {"cached_tokens": input_details["cached_tokens"]}
    output_details = usage.get("output_tokens_details")
    if isinstance(output_details, Mapping):
        reasoning = _int(output_details.get("reasoning_tokens"))
        if reasoning is not None:
            out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


class _Call:
    """One tool call of the response, by output item id."""

    __slots__ = ("arguments", "call_id", "closed", "name", "provider_executed")

    def __init__(self, call_id: str, name: str, provider_executed: bool) -> None:
        self.call_id = call_id
        self.name = name
        self.provider_executed = provider_executed
        self.arguments = ""
        self.closed = False


class OpenAIResponsesToUIMessageStream:
    """Converter of one Responses stream into ``UIMessageChunk`` dicts (see the module
    docstring). Same interface as :class:`~.openai_chat.OpenAIChatToUIMessageStream`
    (:meth:`start`, :meth:`handle_chunk`, :meth:`handle_exception`, :meth:`finish`,
    :attr:`stopped`), and the same :attr:`finish_reason` (chat-completions form),
    :attr:`usage` (chat-completions names) and :attr:`model` after the stream, so
    :class:`~.openai_tanstack.OpenAIChatToTanStackStream` can re-emit it as TanStack events.

    Args:
        message_id: ``start.messageId``; ``None`` generates ``msg-<hex>`` once.
        on_error: ``errorText`` policy (default :func:`~.error_text.default_error_text`).
        include_usage: add ``usage`` to ``finish.messageMetadata``.
        include_model: add the response's ``model`` to ``finish.messageMetadata``.
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
        self.on_error = on_error or default_error_text
        self.include_usage = include_usage
        self.include_model = include_model
        self.stopped = False
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self._open: tuple[str, str] | None = None  # ("text" | "reasoning", part id)
        self._parts = 0
        self._calls: dict[str, _Call] = {}
        self._function_calls = 0
        self._sources = 0
        self._ended = False  # a terminal event arrived

    # -- frame ---------------------------------------------------------------------------------

    def start(self) -> Iterator[Chunk]:
        """Yields ``start{messageId}`` and ``start-step``."""
        yield {"type": "start", "messageId": self.message_id}
        yield {"type": "start-step"}

    def finish(self) -> Iterator[Chunk]:
        """Close the answer when the stream ended (normally after ``response.completed``):
        open parts and calls, ``finish-step``, ``finish``. Nothing once :attr:`stopped`."""
        if self.stopped:
            return
        yield from self._close_part()
        yield from self._close_calls()
        yield {"type": "finish-step"}
        reason = self.finish_reason
        if reason is None:
            reason = "tool_calls" if self._function_calls else "stop"
            self.finish_reason = reason if self._ended else None
        finish: Chunk = {"type": "finish", "finishReason": map_finish_reason(reason)}
        metadata: dict[str, Any] = {}
        if self.include_model and self.model:
            metadata["model"] = self.model
        if self.include_usage and self.usage:
            metadata["usage"] = _usage_metadata(self.usage)
        if metadata:
            finish["messageMetadata"] = metadata
        yield finish
        self.stopped = True

    def handle_exception(self, exc: BaseException) -> Iterator[Chunk]:
        """The provider iterator raised ``exc``: close open parts, then ``error``."""
        logger.warning("model stream raised %s", type(exc).__name__, exc_info=exc)
        yield from self._fail(exc)

    # -- dispatch ------------------------------------------------------------------------------

    def handle_chunk(self, raw: object) -> Iterator[Chunk]:
        """Convert one Responses event (an SDK event object, a mapping or JSON text).

        Unknown event types are skipped: the API grows new ones, and a client must not break
        on them. An ``error`` or ``response.failed`` event ends the answer (:attr:`stopped`).
        """
        if self.stopped:
            return
        if isinstance(raw, str | bytes) and raw.strip() in ("[DONE]", b"[DONE]"):
            return
        event = _as_dict(raw)
        if event is None:
            logger.debug("skipping an event that is not an object: %r", type(raw).__name__)
            return
        kind = event.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is not None:
            yield from handler(self, event)

    def _response(self, event: dict[str, Any]) -> None:
        response = event.get("response")
        if isinstance(response, Mapping) and isinstance(response.get("model"), str):
            self.model = response["model"]

    def _text(self, event: dict[str, Any]) -> Iterator[Chunk]:
        delta = event.get("delta")
        if isinstance(delta, str) and delta:
            part = f"{event.get('item_id', '')}:{event.get('content_index', 0)}"
            yield from self._part("text", part)
            yield {"type": "text-delta", "id": self._open_id(), "delta": delta}

    def _reasoning(self, event: dict[str, Any]) -> Iterator[Chunk]:
        delta = event.get("delta")
        if isinstance(delta, str) and delta:
            index = event.get("summary_index", event.get("content_index", 0))
            yield from self._part("reasoning", f"{event.get('item_id', '')}:{index}")
            yield {"type": "reasoning-delta", "id": self._open_id(), "delta": delta}

    def _item_added(self, event: dict[str, Any]) -> Iterator[Chunk]:
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
        start: Chunk = {"type": "tool-input-start", "toolCallId": call.call_id}
        start["toolName"] = call.name
        if call.provider_executed:
            start["providerExecuted"] = True
        yield start

    def _arguments(self, event: dict[str, Any]) -> Iterator[Chunk]:
        call = self._calls.get(str(event.get("item_id")))
        delta = event.get("delta")
        if call is None or call.closed or not isinstance(delta, str) or not delta:
            return
        call.arguments += delta
        yield {"type": "tool-input-delta", "toolCallId": call.call_id, "inputTextDelta": delta}

    def _item_done(self, event: dict[str, Any]) -> Iterator[Chunk]:
        item = event.get("item")
        if not isinstance(item, Mapping):
            return
        item_id = str(item.get("id") or item.get("call_id") or "")
        call = self._calls.get(item_id)
        if call is None or call.closed:
            if self._open is not None and self._open[1].startswith(item_id + ":"):
                yield from self._close_part()
            return
        if not call.provider_executed:
            arguments = item.get("arguments")
            if isinstance(arguments, str):
                call.arguments = arguments
            yield from self._close_call(call)
            return
        call.closed = True
        tool_input = {k: item[k] for k in _TOOL_INPUT_FIELDS if item.get(k) is not None}
        yield {
            "type": "tool-input-available",
            "toolCallId": call.call_id,
            "toolName": call.name,
            "input": tool_input,
            "providerExecuted": True,
        }
        output = {k: item[k] for k in _TOOL_OUTPUT_FIELDS if k in item}
        yield {
            "type": "tool-output-available",
            "toolCallId": call.call_id,
            "output": output,
            "providerExecuted": True,
        }

    def _annotation(self, event: dict[str, Any]) -> Iterator[Chunk]:
        annotation = event.get("annotation")
        if not isinstance(annotation, Mapping):
            return
        self._sources += 1
        source_id = f"{self.message_id}-source-{self._sources}"
        if annotation.get("type") == "url_citation" and isinstance(annotation.get("url"), str):
            chunk: Chunk = {"type": "source-url", "sourceId": source_id, "url": annotation["url"]}
            if isinstance(annotation.get("title"), str):
                chunk["title"] = annotation["title"]
            yield chunk
        elif isinstance(annotation.get("filename"), str) or isinstance(
            annotation.get("file_id"), str
        ):
            title = str(annotation.get("filename") or annotation.get("file_id"))
            yield {
                "type": "source-document",
                "sourceId": source_id,
                "mediaType": "application/octet-stream",
                "title": title,
                "filename": title,
            }

    def _completed(self, event: dict[str, Any]) -> Iterator[Chunk]:
        self._response(event)
        response = event.get("response")
        if isinstance(response, Mapping) and isinstance(response.get("usage"), Mapping):
            self.usage = chat_usage_from_responses(response["usage"])
        self._ended = True
        if event.get("type") == "response.incomplete":
            details = response.get("incomplete_details") if isinstance(response, Mapping) else None
            reason = details.get("reason") if isinstance(details, Mapping) else None
            self.finish_reason = _INCOMPLETE_REASONS.get(str(reason), "other")
        else:
            self.finish_reason = "tool_calls" if self._function_calls else "stop"
        yield from ()

    def _error(self, event: dict[str, Any]) -> Iterator[Chunk]:
        error = event.get("error")
        if event.get("type") == "response.failed":
            response = event.get("response")
            error = response.get("error") if isinstance(response, Mapping) else None
        if not isinstance(error, Mapping):
            error = {k: event[k] for k in ("code", "message", "param") if k in event}
        yield from self._fail(dict(error))

    # -- parts ---------------------------------------------------------------------------------

    def _open_id(self) -> str:
        assert self._open is not None
        return f"{self.message_id}-{self._open[0]}-{self._parts}"

    def _part(self, kind: str, key: str) -> Iterator[Chunk]:
        if self._open is not None and self._open == (kind, key):
            return
        yield from self._close_part()
        self._parts += 1
        self._open = (kind, key)
        yield {"type": f"{kind}-start", "id": self._open_id()}

    def _close_part(self) -> Iterator[Chunk]:
        if self._open is not None:
            yield {"type": f"{self._open[0]}-end", "id": self._open_id()}
            self._open = None

    def _close_call(self, call: _Call) -> Iterator[Chunk]:
        call.closed = True
        yield tool_input_end(call.call_id, call.name, call.arguments)

    def _close_calls(self) -> Iterator[Chunk]:
        for call in self._calls.values():
            if not call.closed and not call.provider_executed:
                yield from self._close_call(call)

    def _fail(self, error: BaseException | dict[str, Any]) -> Iterator[Chunk]:
        if self.stopped:
            return
        if isinstance(error, dict):
            logger.warning("model stream reported an error: %s", json.dumps(error, default=str))
        yield from self._close_part()
        try:
            text = self.on_error(error)
        except Exception:
            logger.exception("on_error raised; using the default error text")
            text = default_error_text(error)
        self.finish_reason = "error"
        self.stopped = True
        yield {"type": "error", "errorText": text if isinstance(text, str) else str(text)}


_Handler = Callable[[OpenAIResponsesToUIMessageStream, dict[str, Any]], Iterator[Chunk]]


def _quiet(method: Callable[[OpenAIResponsesToUIMessageStream, dict[str, Any]], None]) -> _Handler:
    def handler(self: OpenAIResponsesToUIMessageStream, event: dict[str, Any]) -> Iterator[Chunk]:
        method(self, event)
        return iter(())

    return handler


_HANDLERS: dict[str, _Handler] = {
    "response.created": _quiet(OpenAIResponsesToUIMessageStream._response),
    "response.in_progress": _quiet(OpenAIResponsesToUIMessageStream._response),
    "response.queued": _quiet(OpenAIResponsesToUIMessageStream._response),
    "response.output_text.delta": OpenAIResponsesToUIMessageStream._text,
    "response.refusal.delta": OpenAIResponsesToUIMessageStream._text,
    "response.reasoning_summary_text.delta": OpenAIResponsesToUIMessageStream._reasoning,
    "response.reasoning_text.delta": OpenAIResponsesToUIMessageStream._reasoning,
    "response.output_item.added": OpenAIResponsesToUIMessageStream._item_added,
    "response.output_item.done": OpenAIResponsesToUIMessageStream._item_done,
    "response.function_call_arguments.delta": OpenAIResponsesToUIMessageStream._arguments,
    "response.code_interpreter_call_code.delta": OpenAIResponsesToUIMessageStream._arguments,
    "response.output_text.annotation.added": OpenAIResponsesToUIMessageStream._annotation,
    "response.completed": OpenAIResponsesToUIMessageStream._completed,
    "response.incomplete": OpenAIResponsesToUIMessageStream._completed,
    "response.failed": OpenAIResponsesToUIMessageStream._error,
    "error": OpenAIResponsesToUIMessageStream._error,
}


def ai_sdk_chunks_from_responses(
    stream: AsyncIterable[Any] | Iterable[Any],
    *,
    message_id: str | None = None,
    on_error: ErrorTextPolicy | None = None,
    include_usage: bool = True,
    include_model: bool = True,
) -> AsyncGenerator[Chunk, None]:
    """Convert an OpenAI Responses stream into AI SDK ``UIMessageChunk`` dicts.

    Args:
        stream: ``await client.responses.create(..., stream=True)`` (an async iterable of
            typed events), or any (async) iterable of event dicts / JSON lines.
        message_id: ``start.messageId``; ``None`` generates one.
        on_error: ``errorText`` policy for ``error`` / ``response.failed`` and exceptions.
        include_usage: add ``usage`` to ``finish.messageMetadata``.
        include_model: add the response's ``model`` to ``finish.messageMetadata``.

    Yields:
        ``start``, ``start-step``, the answer's parts, ``finish-step``, ``finish`` (or the
        closing chunks and one ``error``). The provider stream is closed on the way out, also
        when the consumer stops early (a stop ends the HTTP request to OpenAI).

    Raises:
        TypeError: ``stream`` is not iterable.
    """
    converter = OpenAIResponsesToUIMessageStream(
        message_id=message_id,
        on_error=on_error,
        include_usage=include_usage,
        include_model=include_model,
    )
    return drive_converter(converter, stream)


def tanstack_chunks_from_responses(
    stream: AsyncIterable[Any] | Iterable[Any], **options: Any
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
    return tanstack_chunks(stream, normaliser=_responses_normaliser, **options)


def _responses_normaliser(
    message_id: str, policy: ErrorTextPolicy
) -> OpenAIResponsesToUIMessageStream:
    return OpenAIResponsesToUIMessageStream(message_id=message_id, on_error=policy)
