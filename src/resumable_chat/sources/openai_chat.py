"""OpenAI chat-completions streaming → AI SDK UI message stream chunks.

Input: the chunks of ``POST /chat/completions`` with ``stream: true`` (``chat.completion.chunk``
objects), as the ``openai`` SDK (``ChatCompletionChunk``) or ``litellm``
(``ModelResponseStream``) yield them, or as plain dicts parsed from the SSE ``data`` lines.
Objects are normalised with ``model_dump()``; anything else must be a mapping.

Output: plain dicts in the AI SDK ``UIMessageChunk`` JSON shape, restricted to the keys of the
"compat profile" (the chunk types every ``ai`` 5.0.92+ ``uiMessageChunkSchema`` accepts) so every
``ai`` client from 5.0.92 on
accepts them, strict (``z.strictObject``) or loose.

Mapping (one handler per OpenAI delta kind in :class:`OpenAIChatToUIMessageStream`):

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
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any

from resumable_chat.sources.error_text import default_error_text, detailed_error_text
from resumable_chat.sources.recordings import openai_chunks_from_jsonl
from resumable_chat.sources.stream_driver import StreamConverter, drive_converter

__all__ = [
    "DEFAULT_ERROR_TEXT",
    "OpenAIChatToUIMessageStream",
    "StreamConverter",
    "ai_sdk_chunks",
    "default_error_text",
    "detailed_error_text",
    "drive_converter",
    "map_finish_reason",
    "openai_chunks_from_jsonl",
]

from resumable_chat.chat.dialect import DEFAULT_ERROR_TEXT, Chunk

logger = logging.getLogger("resumable_chat.sources.openai_chat")

ErrorTextPolicy = Callable[[BaseException | dict[str, Any]], str]

_FINISH_REASONS: dict[str, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
    "content_filter": "content-filter",
    "error": "error",
}

_FUNCTION_CALL_KEY = "function_call"


def map_finish_reason(reason: object) -> str:
    """Map an OpenAI ``finish_reason`` to the AI SDK ``finishReason`` enum.

    Args:
        reason: the provider's value (normally a string; anything is accepted).

    Returns:
        ``"stop"`` for ``stop``, ``"length"`` for ``length``, ``"tool-calls"`` for
        ``tool_calls`` and the legacy ``function_call``, ``"content-filter"`` for
        ``content_filter``, ``"error"`` for ``error`` (OpenRouter's mid-stream error) and
        ``"other"`` for anything else. Never ``"unknown"``: ``ai`` 6 and later reject it. Never
        raises.
    """
    if isinstance(reason, str):
        return _FINISH_REASONS.get(reason, "other")
    return "other"


def _new_token() -> str:
    return secrets.token_hex(4)


def _as_dict(raw: object) -> dict[str, Any] | None:
    """Normalise one provider chunk to a dict (``model_dump()`` when available)."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, Mapping):
        return dict(raw)
    dump = getattr(raw, "model_dump", None)
    if callable(dump):
        try:
            dumped = dump()
        except Exception:
            logger.warning("model_dump() of a %s failed; chunk skipped", type(raw).__name__)
            return None
        return dumped if isinstance(dumped, dict) else None
    if isinstance(raw, str | bytes | bytearray):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _int(value: object) -> int | None:
    """``value`` if it is a JSON integer (not a bool), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage_metadata(usage: Mapping[str, Any]) -> dict[str, int]:
    """OpenAI ``usage`` → AI SDK ``LanguageModelUsage`` names (only the reported numbers)."""
    out: dict[str, int] = {}
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    total = _int(usage.get("total_tokens"))
    if prompt is not None:
        out["inputTokens"] = prompt
    if completion is not None:
        out["outputTokens"] = completion
    if total is not None:
        out["totalTokens"] = total
    elif prompt is not None and completion is not None:
        out["totalTokens"] = prompt + completion
    completion_details = usage.get("completion_tokens_details")
    if isinstance(completion_details, Mapping):
        reasoning = _int(completion_details.get("reasoning_tokens"))
        if reasoning is not None:
            out["reasoningTokens"] = reasoning
    prompt_details = usage.get("prompt_tokens_details")
    if isinstance(prompt_details, Mapping):
        cached = _int(prompt_details.get("cached_tokens"))
        if cached is not None:
            out["cachedInputTokens"] = cached
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_arguments(text: str) -> tuple[bool, Any, str]:
    """Parse complete tool-call arguments: ``(ok, value, error_message)``.

    Empty (or all-whitespace) arguments mean ``{}``: providers send ``""`` for tools without
    parameters. ``NaN``/``Infinity`` are rejected (not JSON; ``JSON.parse`` refuses them).
    """
    if not text.strip():
        return True, {}, ""
    try:
        return True, json.loads(text, parse_constant=_reject_constant), ""
    except ValueError as exc:
        return False, None, str(exc)


def tool_input_end(call_id: str, name: str, arguments: str) -> Chunk:
    """The chunk that closes a streamed tool call: ``tool-input-available`` with the parsed
    ``arguments`` (JSON text; empty means ``{}``), or ``tool-input-error`` with the raw text
    when it is not valid JSON."""
    ok, value, problem = _parse_arguments(arguments)
    if ok:
        return {
            "type": "tool-input-available",
            "toolCallId": call_id,
            "toolName": name,
            "input": value,
        }
    return {
        "type": "tool-input-error",
        "toolCallId": call_id,
        "toolName": name,
        "input": arguments,
        "errorText": f"Invalid JSON in tool call arguments: {problem}",
    }


class _ToolCall:
    """One streamed tool call: identity, name, accumulated argument text and progress."""

    __slots__ = ("arguments", "done", "id", "name", "started")

    def __init__(self, call_id: str) -> None:
        self.id = call_id
        self.name = ""
        self.arguments = ""
        self.started = False
        self.done = False


class OpenAIChatToUIMessageStream:
    """Stateful converter from OpenAI chat-completions chunks to AI SDK ``UIMessageChunk`` dicts.

    Shaped like pydantic-ai's ``ui/vercel_ai`` event stream: one handler per OpenAI delta kind
    (:meth:`handle_text`, :meth:`handle_reasoning`, :meth:`handle_tool_call_delta`,
    :meth:`handle_finish_reason`, :meth:`handle_usage`, :meth:`handle_error`), each a
    generator of chunks. :meth:`handle_chunk` dispatches one provider chunk to them;
    :meth:`start` and :meth:`finish` open and close the message. :func:`ai_sdk_chunks` drives
    it over an async stream; use the class directly for synchronous or custom loops.

    Args:
        message_id: ``start.messageId``; ``None`` generates ``msg-<random hex>`` once, so every
            chunk of this answer belongs to one stable id. Pass the continued assistant
            message's id on a tool-result continuation (AI SDK ``processUIMessageStream``).
        on_error: maps an exception or a provider error object to the ``errorText`` of the
            ``error`` chunk; ``None`` uses :func:`default_error_text`. If it raises, the
            default text is used.
        include_usage: put the normalised token usage into ``finish.messageMetadata.usage``.
        include_model: put the provider's ``model`` (the latest non-empty one seen) into
            ``finish.messageMetadata.model``.

    Attributes:
        message_id: the ``messageId`` of this answer.
        stopped: True once an error chunk was produced; feed nothing more after that.
        finish_reason: the last raw ``finish_reason`` seen, or ``None``.
        usage: the last ``usage`` object seen, or ``None``.
        model: the latest non-empty ``model`` seen, or ``None``.
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
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self._token = _new_token()
        self._part_counter = 0
        self._text_id: str | None = None
        self._reasoning_id: str | None = None
        self._calls: list[_ToolCall] = []
        self._calls_by_id: dict[str, _ToolCall] = {}
        self._calls_by_index: dict[object, _ToolCall] = {}
        self._had_tool_calls = False

    # -- message frame -----------------------------------------------------------------------

    def start(self) -> Iterator[Chunk]:
        """Open the answer.

        Yields:
            ``{"type": "start", "messageId": message_id}`` then ``{"type": "start-step"}``.
        """
        yield {"type": "start", "messageId": self.message_id}
        yield {"type": "start-step"}

    def finish(self) -> Iterator[Chunk]:
        """Close the answer after the provider stream ended normally.

        Yields:
            ``text-end`` / ``reasoning-end`` for open parts, ``tool-input-available`` /
            ``tool-input-error`` for calls not yet closed, ``finish-step``, then
            ``finish{finishReason, messageMetadata?}``. Nothing once :attr:`stopped`.
        """
        if self.stopped:
            return
        yield from self._close_parts()
        yield from self._close_tool_calls()
        yield {"type": "finish-step"}
        finish: Chunk = {"type": "finish", "finishReason": self._final_finish_reason()}
        metadata = self._message_metadata()
        if metadata:
            finish["messageMetadata"] = metadata
        yield finish
        self.stopped = True

    def handle_exception(self, exc: BaseException) -> Iterator[Chunk]:
        """The provider iterator raised ``exc``: end the answer with an ``error`` chunk.

        Yields:
            the chunks of :meth:`handle_error` for ``exc``.
        """
        logger.warning("model stream raised %s", type(exc).__name__, exc_info=exc)
        yield from self._fail(exc)

    # -- dispatch ----------------------------------------------------------------------------

    def handle_chunk(self, raw: object) -> Iterator[Chunk]:
        """Convert one provider chunk.

        Args:
            raw: a ``ChatCompletionChunk`` / ``ModelResponseStream`` (anything with
                ``model_dump()``), a mapping, or JSON text of one chunk. Other values and
                chunks that fail to normalise are skipped (logged at debug level).

        Yields:
            the UI message chunks it maps to (possibly none). An in-stream error payload yields
            the :meth:`handle_error` chunks and sets :attr:`stopped`.
        """
        if self.stopped:
            return
        data = _as_dict(raw)
        if data is None:
            logger.debug("skipping a chunk that is not an object: %r", type(raw).__name__)
            return
        model = data.get("model")
        if isinstance(model, str) and model:
            self.model = model
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
            self.handle_usage(usage)

    def _handle_delta(self, delta: Mapping[str, Any]) -> Iterator[Chunk]:
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

    def handle_text(self, text: str) -> Iterator[Chunk]:
        """Answer text (``delta.content``, and ``delta.refusal`` which is shown as text).

        Args:
            text: a non-empty fragment (empty strings yield nothing).

        Yields:
            ``reasoning-end`` if reasoning was open, ``text-start`` if no text part is open,
            then ``text-delta{id, delta}``.
        """
        if not text:
            return
        if self._reasoning_id is not None:
            yield {"type": "reasoning-end", "id": self._reasoning_id}
            self._reasoning_id = None
        if self._text_id is None:
            self._text_id = self._next_part_id("text")
            yield {"type": "text-start", "id": self._text_id}
        yield {"type": "text-delta", "id": self._text_id, "delta": text}

    def handle_reasoning(self, text: str) -> Iterator[Chunk]:
        """Reasoning text (``delta.reasoning_content`` or ``delta.reasoning``).

        Args:
            text: a non-empty fragment (empty strings yield nothing).

        Yields:
            ``text-end`` if text was open, ``reasoning-start`` if no reasoning part is open,
            then ``reasoning-delta{id, delta}``.
        """
        if not text:
            return
        if self._text_id is not None:
            yield {"type": "text-end", "id": self._text_id}
            self._text_id = None
        if self._reasoning_id is None:
            self._reasoning_id = self._next_part_id("reasoning")
            yield {"type": "reasoning-start", "id": self._reasoning_id}
        yield {"type": "reasoning-delta", "id": self._reasoning_id, "delta": text}

    def handle_tool_call_delta(self, tool_call: Mapping[str, Any]) -> Iterator[Chunk]:
        """One ``delta.tool_calls[]`` item: ``{index?, id?, type?, function: {name?, arguments?}}``.

        Args:
            tool_call: the item; see the module docstring for how it is matched to a call.

        Yields:
            ``text-end`` / ``reasoning-end`` for open parts when a call starts,
            ``tool-input-start{toolCallId, toolName}`` once the name is known (with the
            arguments buffered so far as one delta), then ``tool-input-delta{toolCallId,
            inputTextDelta}`` per non-empty argument fragment.
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
            self._had_tool_calls = True
            yield {"type": "tool-input-start", "toolCallId": call.id, "toolName": call.name}
            if call.arguments:
                yield {
                    "type": "tool-input-delta",
                    "toolCallId": call.id,
                    "inputTextDelta": call.arguments,
                }
            return
        if fragment:
            call.arguments += fragment
            yield {"type": "tool-input-delta", "toolCallId": call.id, "inputTextDelta": fragment}

    def handle_finish_reason(self, reason: object) -> Iterator[Chunk]:
        """``choices[0].finish_reason``: the step's content is complete.

        Args:
            reason: the raw value, kept in :attr:`finish_reason` (mapped at :meth:`finish`).

        Yields:
            ``text-end`` / ``reasoning-end`` for open parts, then ``tool-input-available`` (or
            ``tool-input-error``) for every call not yet closed. ``finish-step`` and ``finish``
            wait for :meth:`finish`, because ``usage`` usually follows in a later chunk.
        """
        self.finish_reason = reason if isinstance(reason, str) else str(reason)
        yield from self._close_parts()
        yield from self._close_tool_calls()

    def handle_usage(self, usage: Mapping[str, Any]) -> None:
        """A ``usage`` object (on the last chunk, with or without ``choices``): kept for
        ``finish.messageMetadata.usage``. The latest one wins. Yields nothing."""
        self.usage = dict(usage)

    def handle_error(self, error: dict[str, Any]) -> Iterator[Chunk]:
        """An in-stream provider error (``{"error": {...}}``, e.g. Groq's ``tool_use_failed``).

        Args:
            error: the provider's error object (the payload's ``error`` member).

        Yields:
            ``text-end`` / ``reasoning-end`` for open parts, ``tool-input-error`` for calls not
            yet closed (so no client tool runs for a failed answer), then
            ``{"type": "error", "errorText": on_error(error)}``. Sets :attr:`stopped`.
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

    def _close_parts(self) -> Iterator[Chunk]:
        if self._text_id is not None:
            yield {"type": "text-end", "id": self._text_id}
            self._text_id = None
        if self._reasoning_id is not None:
            yield {"type": "reasoning-end", "id": self._reasoning_id}
            self._reasoning_id = None

    def _close_tool_calls(self) -> Iterator[Chunk]:
        for call in self._calls:
            if call.done:
                continue
            call.done = True
            if not call.started:
                # Never got a name: report it as a failed call rather than invent a tool.
                call.started = True
                self._had_tool_calls = True
                yield {
                    "type": "tool-input-error",
                    "toolCallId": call.id,
                    "toolName": call.name or "unknown",
                    "input": call.arguments,
                    "errorText": "The tool call has no function name.",
                }
                continue
            yield tool_input_end(call.id, call.name, call.arguments)

    def _fail(self, error: BaseException | dict[str, Any]) -> Iterator[Chunk]:
        if self.stopped:
            return
        yield from self._close_parts()
        for call in self._calls:
            if call.done or not call.started:
                continue
            call.done = True
            yield {
                "type": "tool-input-error",
                "toolCallId": call.id,
                "toolName": call.name,
                "input": call.arguments,
                "errorText": "The tool call was interrupted by a model error.",
            }
        yield {"type": "error", "errorText": self._error_text(error)}
        self.stopped = True

    def _error_text(self, error: BaseException | dict[str, Any]) -> str:
        policy = self.on_error or default_error_text
        try:
            text = policy(error)
        except Exception:
            logger.exception("on_error raised; using the default error text")
            return DEFAULT_ERROR_TEXT
        return text if isinstance(text, str) else str(text)

    def _final_finish_reason(self) -> str:
        if self.finish_reason is not None:
            return map_finish_reason(self.finish_reason)
        return "tool-calls" if self._had_tool_calls else "other"

    def _message_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        if self.include_model and self.model:
            metadata["model"] = self.model
        if self.include_usage and self.usage is not None:
            usage = _usage_metadata(self.usage)
            if usage:
                metadata["usage"] = usage
        return metadata


def _compact(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def ai_sdk_chunks(
    stream: AsyncIterable[Any] | Iterable[Any],
    *,
    message_id: str | None = None,
    on_error: ErrorTextPolicy | None = None,
    include_usage: bool = True,
    include_model: bool = True,
) -> AsyncGenerator[Chunk, None]:
    """Convert an OpenAI chat-completions stream into AI SDK ``UIMessageChunk`` dicts.

    Args:
        stream: the provider stream: an async iterable (``await client.chat.completions.create(
            ..., stream=True)``, ``await litellm.acompletion(..., stream=True)``, an async
            generator of dicts). A plain iterable is iterated inline, for in-memory data only.
            Items: ``ChatCompletionChunk``-like objects (``model_dump()``), mappings or JSON.
        message_id: ``start.messageId``; ``None`` generates ``msg-<hex>`` once.
        on_error: ``errorText`` policy for an exception raised by ``stream`` or an in-stream
            error payload (``{"error": {...}}``); default :func:`default_error_text`
            (generic). :func:`detailed_error_text` shows provider messages (development).
        include_usage: add ``usage`` (AI SDK names) to ``finish.messageMetadata``.
        include_model: add the provider's ``model`` to ``finish.messageMetadata``.

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
        message_id=message_id,
        on_error=on_error,
        include_usage=include_usage,
        include_model=include_model,
    )
    return drive_converter(converter, stream)
