"""OpenAI chat-completions streaming → TanStack AI ``StreamChunk`` dicts (AG-UI events).

Input: the same provider chunks as :mod:`.openai_chat` (``openai`` SDK ``ChatCompletionChunk``,
``litellm`` ``ModelResponseStream``, mappings or JSON text). Normalisation is shared with it:
the provider stream goes through :class:`~.openai_chat.OpenAIChatToUIMessageStream` (tool-call
matching by ``index``/``id``, providers' quirks, reasoning fields, refusals, in-stream error
payloads), and its parts are re-emitted as TanStack events, so both protocols see one model
answer the same way.

Output: the events ``@tanstack/ai`` ``chat()`` yields for an OpenAI chat-completions model
(``@tanstack/openai-base`` ``OpenAIBaseChatCompletionsTextAdapter.processStreamChunks``), in the
shape both current (``@tanstack/ai-client`` 0.33.x) and old (0.10.x) clients read
(``@tanstack/ai`` ``StreamProcessor``). Every chunk carries ``timestamp`` (ms).

====================================  ===========================================================
when                                  chunks (``type`` and fields besides ``timestamp``)
====================================  ===========================================================
stream opens                          ``RUN_STARTED {runId, threadId?}``
first reasoning, text or tool call    ``TEXT_MESSAGE_START {messageId, role: "assistant"}``
reasoning (``reasoning_content`` /    ``REASONING_START {messageId: rid}``,
``reasoning``)                        ``REASONING_MESSAGE_START {messageId: rid, role:
                                      "reasoning"}``, ``STEP_STARTED {stepName: rid, stepId:
                                      rid, stepType: "thinking"}``, then ``REASONING_MESSAGE_
                                      CONTENT {messageId: rid, delta}``; closed by
                                      ``REASONING_MESSAGE_END``, ``REASONING_END``,
                                      ``STEP_FINISHED {stepName, stepId}``
text (``content``, ``refusal``)       ``TEXT_MESSAGE_CONTENT {messageId, delta, content}``
                                      (``content``: the text so far, as TanStack sends it)
tool call                             ``TOOL_CALL_START {toolCallId, toolCallName, toolName,
                                      parentMessageId, index}``, ``TOOL_CALL_ARGS {toolCallId,
                                      delta}``, ``TOOL_CALL_END {toolCallId, toolCallName,
                                      toolName, input?}`` (``input``: parsed arguments, absent
                                      when they are not valid JSON)
stream ends                           ``TEXT_MESSAGE_END {messageId}`` (if started),
                                      ``RUN_FINISHED {runId, threadId?, finishReason, usage?,
                                      metadata: {tanstack: {finishReason, model?}}}``
provider error or exception           ``TEXT_MESSAGE_START`` (if not started), ``TEXT_MESSAGE_
                                      END``, ``RUN_ERROR {runId, threadId?, message, code,
                                      error: {message, code}, usage?, metadata: {tanstack:
                                      {runId, threadId?, model?}}}``; then the stream stops
====================================  ===========================================================

Choices, and why:

- Ids are stable: ``runId`` / ``messageId`` are the given ones or generated once
  (``run-<hex>`` / ``msg-<hex>``); reasoning segments are ``<messageId>-reasoning-<n>``.
  ``TEXT_MESSAGE_START`` comes before the first part of any kind (TanStack's adapter sends it
  with the first text), and ``TOOL_CALL_START`` names its ``parentMessageId``: otherwise the
  client's ``StreamProcessor`` files reasoning and tool calls under a message it names
  ``msg-<time>-<random>`` (different in every fold of the log) or, in a fold of a whole
  session log, under the previous turn's answer. An error before any content
  still opens (and closes) the message, so the ``RUN_ERROR`` lands in a message with the
  stable id instead of a randomly named one that would swallow the next user turn.
- ``runId`` is on ``RUN_STARTED``, ``RUN_FINISHED`` and ``RUN_ERROR`` (top level, and in
  ``metadata.tanstack`` on ``RUN_ERROR`` where the current wire keeps it), so the client's
  ``sessionGenerating`` returns to false (TanStack's own adapter sends ``RUN_ERROR`` without).
- Both old and new keys: ``finishReason`` top level and in ``metadata.tanstack``;
  ``toolCallName`` and ``toolName``; ``RUN_ERROR.message`` and ``error: {message, code}``.
- ``finishReason`` uses TanStack's values (``RunFinishedEvent``: ``stop``, ``length``,
  ``content_filter``, ``tool_calls``, ``null``) like the adapter: ``tool_calls`` when a tool
  call was completed, ``stop`` for an upstream ``tool_calls`` without one and for a stream that
  never said why it ended; other provider values (``error``, ``eos``...) give ``null``.
- ``usage`` is TanStack's ``TokenUsage`` object, the form ``chat()`` yields and both client
  generations read: ``{promptTokens, completionTokens, totalTokens}`` plus
  ``promptTokensDetails.cachedTokens`` / ``completionTokensDetails.reasoningTokens`` when
  reported. (The spec ``usage[]`` array of the current wire is rebuilt into this by the 0.33
  client anyway.)
- ``STEP_FINISHED`` does not repeat the whole reasoning text in ``content`` (TanStack's
  adapter does, for pre-0.18 consumers only); the stored log would hold it twice.
- A tool call cut short by an error is not closed (no ``TOOL_CALL_END``), as in TanStack's
  adapter: closing it would present half-streamed arguments as a complete call. (A fold of a
  whole session log still marks it ``input-complete`` once a later run finishes: the
  processor completes the calls of every message it still holds active.)
- Error texts come from ``on_error`` (default: generic, :func:`~.openai_chat.default_error_text`)
  and codes from ``on_error_code`` (default :func:`default_error_code`: the provider's code
  or HTTP status when it is a short identifier, else ``"model_error"``). The details are
  logged by the shared normaliser, on the ``resumable_chat.sources.openai_chat`` logger.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any, Final

from resumable_chat.chat.dialect import DEFAULT_ERROR_TEXT, Chunk
from resumable_chat.sources.openai_chat import (
    OpenAIChatToUIMessageStream,
    _as_dict,
    _int,
    default_error_text,
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

logger = logging.getLogger("resumable_chat.sources.openai_tanstack")

ErrorTextPolicy = Callable[[BaseException | dict[str, Any]], str]
ErrorCodePolicy = Callable[[BaseException | dict[str, Any]], str]

#: ``RUN_ERROR.code`` when the provider gives no usable code.
FALLBACK_ERROR_CODE: Final = "model_error"

_CODE_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")

_TANSTACK_FINISH_REASONS: Final = frozenset({"stop", "length", "content_filter", "tool_calls"})


def map_tanstack_finish_reason(reason: object, *, had_tool_calls: bool = False) -> str | None:
    """Map an OpenAI ``finish_reason`` to TanStack's ``RunFinishedEvent.finishReason``.

    Args:
        reason: the provider's last ``finish_reason`` (``None`` if it never sent one).
        had_tool_calls: whether the answer completed at least one tool call.

    Returns:
        ``"tool_calls"`` when ``had_tool_calls``; otherwise ``"stop"`` for ``stop``, for
        ``tool_calls`` / ``function_call`` (no call was completed: saying ``tool_calls`` would
        leave clients waiting for results) and for ``None``; ``"length"`` and
        ``"content_filter"`` unchanged; ``None`` (JSON ``null``, which the type allows and
        clients treat as a normal end) for anything else. This is the rule of TanStack's
        chat-completions adapter (``@tanstack/openai-base``), restricted to TanStack's values.
        Never raises.
    """
    if had_tool_calls:
        return "tool_calls"
    if reason is None or reason in ("tool_calls", "function_call"):
        return "stop"
    if isinstance(reason, str) and reason in _TANSTACK_FINISH_REASONS:
        return reason
    return None


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
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    total = _int(usage.get("total_tokens"))
    if prompt is None and completion is None and total is None:
        return None
    out: dict[str, Any] = {
        "promptTokens": prompt or 0,
        "completionTokens": completion or 0,
        "totalTokens": total if total is not None else (prompt or 0) + (completion or 0),
    }
    prompt_details = usage.get("prompt_tokens_details")
    if isinstance(prompt_details, Mapping):
        cached = _int(prompt_details.get("cached_tokens"))
        if cached is not None:
            out["promptTokensDetails"] = {"cachedTokens": cached}
    completion_details = usage.get("completion_tokens_details")
    if isinstance(completion_details, Mapping):
        reasoning = _int(completion_details.get("reasoning_tokens"))
        if reasoning is not None:
            out["completionTokensDetails"] = {"reasoningTokens": reasoning}
    return out


def _short_code(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = str(int(value))
    if isinstance(value, str) and _CODE_PATTERN.fullmatch(value):
        return value
    return None


def default_error_code(error: BaseException | dict[str, Any]) -> str:
    """The default ``on_error_code`` policy: the provider's code when it is safe to show.

    Args:
        error: the exception raised by the stream, or the provider's error object (the
            ``error`` member of an in-stream error payload).

    Returns:
        The first of: the error's ``code`` (an attribute of the exception, or the object's
        member), its HTTP status (``status_code`` / ``status``), accepted only when it is an
        identifier-like string or integer of at most 64 characters (``rate_limit_exceeded``,
        ``tool_use_failed``, ``429``), so no free text reaches the client; else
        :data:`FALLBACK_ERROR_CODE`. TanStack's adapters take ``code`` then ``status`` the same
        way (``toRunErrorPayload``). Never raises.
    """
    for name in ("code", "status_code", "status"):
        if isinstance(error, BaseException):
            value = getattr(error, name, None)
        else:
            value = error.get(name)
        code = _short_code(value)
        if code is not None:
            return code
    return FALLBACK_ERROR_CODE


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class OpenAIChatToTanStackStream:
    """Stateful converter from OpenAI chat-completions chunks to TanStack ``StreamChunk`` dicts.

    Handlers mirror :class:`~.openai_chat.OpenAIChatToUIMessageStream`: :meth:`start`,
    :meth:`handle_chunk`, :meth:`handle_exception` and :meth:`finish`, each a generator of
    chunks. :func:`tanstack_chunks` drives it over a stream; use it directly for custom loops.

    Args:
        run_id: ``runId`` of ``RUN_STARTED`` / ``RUN_FINISHED`` / ``RUN_ERROR``. Pass the
            request's ``runId`` (AG-UI ``RunAgentInput.runId``); ``None`` generates
            ``run-<hex>`` once.
        thread_id: ``threadId`` for the run events (the request's), omitted when ``None``.
        message_id: the assistant message's id; ``None`` generates ``msg-<hex>`` once. Pass the
            continued message's id to append to it.
        model: model name reported in ``metadata.tanstack.model`` when the provider chunks
            carry none (they usually do; the latest non-empty one wins).
        on_error: exception or provider error object → ``RUN_ERROR.message``; ``None`` uses
            :func:`~.openai_chat.default_error_text` (generic). If it raises, the default
            text is used.
        on_error_code: the same → ``RUN_ERROR.code``; ``None`` uses :func:`default_error_code`.
        include_usage: put ``usage`` (``TokenUsage``) on ``RUN_FINISHED`` / ``RUN_ERROR``.
        clock_ms: returns the ``timestamp`` of each chunk in ms since the epoch (default: the
            system clock).
        normaliser: ``(message_id, on_error) → converter`` of another provider format into
            ``UIMessageChunk`` s, with the interface and the ``finish_reason``, ``usage`` and
            ``model`` attributes of :class:`~.openai_chat.OpenAIChatToUIMessageStream`
            (e.g. :class:`~.openai_responses.OpenAIResponsesToUIMessageStream`); ``None``:
            chat completions.

    Attributes:
        run_id, thread_id, message_id: as resolved at construction.
        stopped: True once ``RUN_FINISHED`` or ``RUN_ERROR`` was produced.
        finish_reason: the TanStack ``finishReason`` sent on ``RUN_FINISHED`` (after
            :meth:`finish`), else ``None``.
    """

    def __init__(
        self,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        message_id: str | None = None,
        model: str | None = None,
        on_error: ErrorTextPolicy | None = None,
        on_error_code: ErrorCodePolicy | None = None,
        include_usage: bool = True,
        clock_ms: Callable[[], int] | None = None,
        normaliser: Callable[[str, ErrorTextPolicy], Any] | None = None,
    ) -> None:
        self.run_id = run_id if run_id is not None else "run-" + secrets.token_hex(8)
        self.thread_id = thread_id
        self.message_id = message_id if message_id is not None else "msg-" + secrets.token_hex(8)
        self.model = model
        self.on_error = on_error
        self.on_error_code = on_error_code
        self.include_usage = include_usage
        self.clock_ms = clock_ms or _now_ms
        self.stopped = False
        self.finish_reason: str | None = None
        # The shared normaliser (chat completions unless another provider format is given,
        # e.g. the Responses API); its errorText is replaced by ours (same policy, plus a code).
        self._inner: Any = (
            normaliser(self.message_id, _silent_policy)
            if normaliser is not None
            else OpenAIChatToUIMessageStream(
                message_id=self.message_id, on_error=_silent_policy, include_model=True
            )
        )
        self._message_started = False
        self._text = ""
        self._reasoning_id: str | None = None
        self._reasoning_count = 0
        self._tool_names: dict[str, str] = {}
        self._tool_count = 0
        self._completed_tool_calls = 0
        self._failure: BaseException | dict[str, Any] | None = None

    # -- frame -------------------------------------------------------------------------------

    def start(self) -> Iterator[Chunk]:
        """Open the run.

        Yields:
            ``RUN_STARTED {timestamp, runId, threadId?}``.
        """
        yield self._chunk("RUN_STARTED", runId=self.run_id, **self._thread())

    def finish(self) -> Iterator[Chunk]:
        """Close the run after the provider stream ended normally.

        Yields:
            the end of open reasoning, ``TOOL_CALL_END`` for calls not yet closed,
            ``TEXT_MESSAGE_END`` (if the message started), then ``RUN_FINISHED``. Nothing once
            :attr:`stopped`.
        """
        if self.stopped:
            return
        for ui_chunk in self._inner.finish():
            yield from self._translate(ui_chunk)

    def handle_exception(self, exc: BaseException) -> Iterator[Chunk]:
        """The provider iterator raised ``exc``: end the run with ``RUN_ERROR``.

        Yields:
            the end of open reasoning, the message frame, then ``RUN_ERROR`` (see
            :meth:`handle_chunk` for an error payload).
        """
        if self.stopped:
            return
        self._failure = exc
        for ui_chunk in self._inner.handle_exception(exc):
            yield from self._translate(ui_chunk)

    # -- dispatch ----------------------------------------------------------------------------

    def handle_chunk(self, raw: object) -> Iterator[Chunk]:
        """Convert one provider chunk.

        Args:
            raw: a ``ChatCompletionChunk`` / ``ModelResponseStream`` (``model_dump()``), a
                mapping, or JSON text. Chunks that do not normalise to an object are skipped.

        Yields:
            the TanStack chunks it maps to (possibly none). An in-stream error payload
            (``{"error": {...}}``) yields the closing chunks and ``RUN_ERROR``, and sets
            :attr:`stopped`.
        """
        if self.stopped:
            return
        data = _as_dict(raw)
        if data is None:
            logger.debug("skipping a chunk that is not an object: %r", type(raw).__name__)
            return
        error = data.get("error")
        if data.get("type") == "response.failed" and isinstance(data.get("response"), dict):
            error = data["response"].get("error") or data["response"]
        if error and self._failure is None:
            self._failure = error if isinstance(error, dict) else data
        for ui_chunk in self._inner.handle_chunk(data):
            yield from self._translate(ui_chunk)

    # -- translation of the normalised parts ---------------------------------------------

    def _translate(self, ui_chunk: Chunk) -> Iterator[Chunk]:
        kind = ui_chunk.get("type")
        if kind == "text-start":
            yield from self._open_message()
        elif kind == "text-delta":
            yield from self._open_message()
            delta = str(ui_chunk.get("delta", ""))
            self._text += delta
            yield self._chunk(
                "TEXT_MESSAGE_CONTENT", messageId=self.message_id, delta=delta, content=self._text
            )
        elif kind == "reasoning-start":
            yield from self._open_reasoning()
        elif kind == "reasoning-delta":
            yield from self._open_reasoning()
            assert self._reasoning_id is not None
            yield self._chunk(
                "REASONING_MESSAGE_CONTENT",
                messageId=self._reasoning_id,
                delta=str(ui_chunk.get("delta", "")),
            )
        elif kind == "reasoning-end":
            yield from self._close_reasoning()
        elif kind == "tool-input-start":
            yield from self._tool_call_start(ui_chunk)
        elif kind == "tool-input-delta":
            call_id = str(ui_chunk.get("toolCallId"))
            if call_id in self._tool_names:
                delta = str(ui_chunk.get("inputTextDelta", ""))
                yield self._chunk("TOOL_CALL_ARGS", toolCallId=call_id, delta=delta)
        elif kind in ("tool-input-available", "tool-input-error"):
            yield from self._tool_call_end(ui_chunk)
        elif kind == "tool-output-available":
            # a tool the provider ran itself (Responses API built-in tools)
            call_id = str(ui_chunk.get("toolCallId"))
            if call_id in self._tool_names:
                content = json.dumps(ui_chunk.get("output"), ensure_ascii=False, default=str)
                yield self._chunk(
                    "TOOL_CALL_RESULT",
                    toolCallId=call_id,
                    messageId=self.message_id,
                    content=content,
                )
        elif kind == "finish":
            yield from self._run_finished(ui_chunk)
        elif kind == "error":
            yield from self._run_error()
        # start, start-step, text-end, finish-step: no TanStack counterpart.

    def _open_message(self) -> Iterator[Chunk]:
        if not self._message_started:
            self._message_started = True
            yield self._chunk("TEXT_MESSAGE_START", messageId=self.message_id, role="assistant")

    def _open_reasoning(self) -> Iterator[Chunk]:
        yield from self._open_message()
        if self._reasoning_id is not None:
            return
        reasoning_id = f"{self.message_id}-reasoning-{self._reasoning_count}"
        self._reasoning_count += 1
        self._reasoning_id = reasoning_id
        yield self._chunk("REASONING_START", messageId=reasoning_id)
        yield self._chunk("REASONING_MESSAGE_START", messageId=reasoning_id, role="reasoning")
        yield self._chunk(
            "STEP_STARTED", stepName=reasoning_id, stepId=reasoning_id, stepType="thinking"
        )

    def _close_reasoning(self) -> Iterator[Chunk]:
        reasoning_id = self._reasoning_id
        if reasoning_id is None:
            return
        self._reasoning_id = None
        yield self._chunk("REASONING_MESSAGE_END", messageId=reasoning_id)
        yield self._chunk("REASONING_END", messageId=reasoning_id)
        yield self._chunk("STEP_FINISHED", stepName=reasoning_id, stepId=reasoning_id)

    def _tool_call_start(self, ui_chunk: Chunk) -> Iterator[Chunk]:
        yield from self._open_message()
        call_id = str(ui_chunk.get("toolCallId"))
        name = str(ui_chunk.get("toolName"))
        self._tool_names[call_id] = name
        index = self._tool_count
        self._tool_count += 1
        yield self._chunk(
            "TOOL_CALL_START",
            toolCallId=call_id,
            toolCallName=name,
            toolName=name,
            parentMessageId=self.message_id,
            index=index,
        )

    def _tool_call_end(self, ui_chunk: Chunk) -> Iterator[Chunk]:
        call_id = str(ui_chunk.get("toolCallId"))
        name = self._tool_names.get(call_id)
        if name is None or self._failure is not None:
            # Never started (no function name), or cut short by an error: left unclosed.
            return
        fields: dict[str, Any] = {"toolCallId": call_id, "toolCallName": name, "toolName": name}
        if ui_chunk.get("type") == "tool-input-available":
            fields["input"] = ui_chunk.get("input")
        if not ui_chunk.get("providerExecuted"):
            self._completed_tool_calls += 1  # the client has calls to answer: "tool_calls"
        yield self._chunk("TOOL_CALL_END", **fields)

    def _close_message(self) -> Iterator[Chunk]:
        yield from self._close_reasoning()
        if self._message_started:
            yield self._chunk("TEXT_MESSAGE_END", messageId=self.message_id)

    def _run_finished(self, ui_chunk: Chunk) -> Iterator[Chunk]:
        yield from self._close_message()
        reason = map_tanstack_finish_reason(
            self._inner.finish_reason, had_tool_calls=self._completed_tool_calls > 0
        )
        self.finish_reason = reason
        tanstack: dict[str, Any] = {"finishReason": reason}
        model = self._inner.model or self.model
        if model:
            tanstack["model"] = model
        fields: dict[str, Any] = {"runId": self.run_id, **self._thread(), "finishReason": reason}
        usage = self._usage()
        if usage is not None:
            fields["usage"] = usage
        fields["metadata"] = {"tanstack": tanstack}
        self.stopped = True
        yield self._chunk("RUN_FINISHED", **fields)

    def _run_error(self) -> Iterator[Chunk]:
        failure: BaseException | dict[str, Any] = self._failure if self._failure is not None else {}
        yield from self._open_message()
        yield from self._close_message()
        message = self._policy(self.on_error or default_error_text, failure, DEFAULT_ERROR_TEXT)
        code = self._policy(self.on_error_code or default_error_code, failure, FALLBACK_ERROR_CODE)
        tanstack: dict[str, Any] = {"runId": self.run_id, **self._thread()}
        model = self._inner.model or self.model
        if model:
            tanstack["model"] = model
        fields: dict[str, Any] = {
            "runId": self.run_id,
            **self._thread(),
            "message": message,
            "code": code,
            "error": {"message": message, "code": code},
        }
        usage = self._usage()
        if usage is not None:
            fields["usage"] = usage
        fields["metadata"] = {"tanstack": tanstack}
        self.stopped = True
        yield self._chunk("RUN_ERROR", **fields)

    # -- helpers ---------------------------------------------------------------------------

    def _chunk(self, kind: str, **fields: Any) -> Chunk:
        return {"type": kind, "timestamp": self.clock_ms(), **fields}

    def _thread(self) -> dict[str, str]:
        return {"threadId": self.thread_id} if self.thread_id is not None else {}

    def _usage(self) -> dict[str, Any] | None:
        if not self.include_usage or self._inner.usage is None:
            return None
        return tanstack_usage(self._inner.usage)

    @staticmethod
    def _policy(
        policy: Callable[[BaseException | dict[str, Any]], str],
        failure: BaseException | dict[str, Any],
        fallback: str,
    ) -> str:
        try:
            value = policy(failure)
        except Exception:
            logger.exception("an error policy raised; using %r", fallback)
            return fallback
        return value if isinstance(value, str) else str(value)


def _silent_policy(error: BaseException | dict[str, Any]) -> str:
    """The inner converter's ``on_error``: its ``errorText`` is not used."""
    return DEFAULT_ERROR_TEXT


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
    normaliser: Callable[[str, ErrorTextPolicy], Any] | None = None,
) -> AsyncGenerator[Chunk, None]:
    """Convert an OpenAI chat-completions stream into TanStack AI ``StreamChunk`` dicts.

    Args:
        stream: the provider stream: an async iterable (``await client.chat.completions.create(
            ..., stream=True)``, ``await litellm.acompletion(..., stream=True)``, an async
            generator of dicts). A plain iterable is iterated inline, for in-memory data only.
            Items: ``ChatCompletionChunk``-like objects (``model_dump()``), mappings or JSON.
        run_id: the run's id (the request's ``runId``); ``None`` generates ``run-<hex>``.
        thread_id: the request's ``threadId``, echoed on the run events; ``None`` omits it.
        message_id: the assistant message's id; ``None`` generates ``msg-<hex>``.
        model: model name for ``metadata.tanstack.model`` when the chunks carry none.
        on_error: ``RUN_ERROR.message`` policy for an exception raised by ``stream`` or an
            in-stream error payload; default generic
            (:func:`~.openai_chat.default_error_text`); :func:`~.openai_chat.detailed_error_text`
            shows provider messages (development).
        on_error_code: ``RUN_ERROR.code`` policy; default :func:`default_error_code`.
        include_usage: add ``usage`` (TanStack ``TokenUsage``) to the terminal chunk.
        clock_ms: ``timestamp`` source in ms since the epoch (default: the system clock).
        normaliser: another provider format's converter (see
            :class:`OpenAIChatToTanStackStream`); ``None``: chat completions.

    Yields:
        ``RUN_STARTED``, the message's chunks, then ``RUN_FINISHED``; or, on a provider error,
        the closing chunks and ``RUN_ERROR``, after which the generator returns (the provider
        stream is closed). Every chunk has ``timestamp``. See the module docstring.

    Raises:
        TypeError: ``stream`` is not iterable.

    ``asyncio.CancelledError`` and other ``BaseException`` s are not converted; the provider
    stream is closed on the way out (also when the consumer closes this generator early, e.g.
    on stop).
    """
    converter = OpenAIChatToTanStackStream(
        run_id=run_id,
        thread_id=thread_id,
        message_id=message_id,
        model=model,
        on_error=on_error,
        on_error_code=on_error_code,
        include_usage=include_usage,
        clock_ms=clock_ms,
        normaliser=normaliser,
    )
    return drive_converter(converter, stream)
