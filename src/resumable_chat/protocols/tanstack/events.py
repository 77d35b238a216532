"""Neutral model events → TanStack AI ``StreamChunk`` dicts (AG-UI events).

The chunks are the events ``@tanstack/ai`` ``chat()`` yields for a chat-completions model
(``@tanstack/openai-base``, ``OpenAIBaseChatCompletionsTextAdapter.processStreamChunks``), in the
shape both current (``@tanstack/ai-client`` 0.33.x) and old (0.10.x) clients read
(``@tanstack/ai`` ``StreamProcessor``). Every chunk carries ``timestamp`` (ms).

====================================  ===========================================================
when                                  chunks (``type`` and fields besides ``timestamp``)
====================================  ===========================================================
stream opens                          ``RUN_STARTED {runId, threadId?}``
first part or tool call               ``TEXT_MESSAGE_START {messageId, role: "assistant"}``
reasoning part                        ``REASONING_START {messageId: rid}``,
                                      ``REASONING_MESSAGE_START {messageId: rid, role:
                                      "reasoning"}``, ``STEP_STARTED {stepName: rid, stepId:
                                      rid, stepType: "thinking"}``, ``REASONING_MESSAGE_CONTENT
                                      {messageId: rid, delta}`` per delta; closed by
                                      ``REASONING_MESSAGE_END``, ``REASONING_END``,
                                      ``STEP_FINISHED {stepName, stepId}``
text                                  ``TEXT_MESSAGE_CONTENT {messageId, delta, content}``
                                      (``content``: the text so far, as TanStack sends it)
tool call                             ``TOOL_CALL_START {toolCallId, toolCallName, toolName,
                                      parentMessageId, index}``, ``TOOL_CALL_ARGS {toolCallId,
                                      delta}``, ``TOOL_CALL_END {toolCallId, toolCallName,
                                      toolName, input?}`` (``input`` absent when the arguments
                                      are not valid JSON)
provider-run tool's output            ``TOOL_CALL_RESULT {toolCallId, messageId, content}``
model finished                        ``TEXT_MESSAGE_END {messageId}`` (if started),
                                      ``RUN_FINISHED {runId, threadId?, finishReason, usage?,
                                      metadata: {tanstack: {finishReason, model?}}}``
model failed                          ``TEXT_MESSAGE_START`` (if not started), ``TEXT_MESSAGE_
                                      END``, ``RUN_ERROR {runId, threadId?, message, code,
                                      error: {message, code}, usage?, metadata: {tanstack:
                                      {runId, threadId?, model?}}}``
====================================  ===========================================================

Choices, and why:

- Ids are stable: ``runId`` / ``messageId`` are the given ones or generated once; reasoning
  segments are ``<messageId>-reasoning-<n>``. ``TEXT_MESSAGE_START`` comes before the first part
  of any kind and ``TOOL_CALL_START`` names its ``parentMessageId``: otherwise the client's
  ``StreamProcessor`` files reasoning and tool calls under a message it names
  ``msg-<time>-<random>`` (different in every fold of the log), or, in a fold of a whole session
  log, under the previous turn's answer. An error before any content still opens (and closes)
  the message, so ``RUN_ERROR`` lands in the message with the stable id.
- ``runId`` is on every run event (top level, and in ``metadata.tanstack`` on ``RUN_ERROR``
  where the current wire keeps it), so the client's ``sessionGenerating`` returns to false.
- Both old and new keys: ``finishReason`` top level and in ``metadata.tanstack``;
  ``toolCallName`` and ``toolName``; ``RUN_ERROR.message`` and ``error: {message, code}``.
- ``STEP_FINISHED`` does not repeat the whole reasoning text in ``content`` (TanStack's adapter
  does, for pre-0.18 consumers only); the stored log would hold it twice.
- A tool call cut short by a failure is not closed (no ``TOOL_CALL_END``), as in TanStack's
  adapter: closing it would present half-streamed arguments as a complete call.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, TypedDict

from resumable_chat.chat.dialect import DEFAULT_ERROR_TEXT, Chunk
from resumable_chat.model_events import (
    ModelEvent,
    ModelFailed,
    ModelFinished,
    ModelIdentified,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    TextDelta,
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
    "FALLBACK_ERROR_CODE",
    "ErrorCodePolicy",
    "ErrorTextPolicy",
    "TanStackChunkStream",
    "TanStackStreamOptions",
    "default_error_code",
    "map_tanstack_finish_reason",
    "tanstack_token_usage",
]


#: Maps the raw failure to ``RUN_ERROR.code`` (the same shape as an error-text policy).
ErrorCodePolicy = ErrorTextPolicy

#: ``RUN_ERROR.code`` when the provider gives no usable code.
FALLBACK_ERROR_CODE: Final = "model_error"

_CODE_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")

_TANSTACK_FINISH_REASONS: Final = frozenset({"stop", "length", "content_filter", "tool_calls"})


def map_tanstack_finish_reason(reason: object, *, had_tool_calls: bool = False) -> str | None:
    """Map an OpenAI-named finish reason to TanStack's ``RunFinishedEvent.finishReason``.

    Args:
        reason: the provider's finish reason (``None`` if it never sent one).
        had_tool_calls: whether the answer completed at least one client-side tool call.

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


def tanstack_token_usage(usage: TokenUsage) -> dict[str, Any] | None:
    """Token usage as TanStack's ``TokenUsage`` object.

    Args:
        usage: the provider's counts (tokens).

    Returns:
        ``{"promptTokens", "completionTokens", "totalTokens"}`` (missing counts are 0, a
        missing total is the sum, as TanStack's adapter does), plus ``promptTokensDetails:
        {"cachedTokens"}`` and ``completionTokensDetails: {"reasoningTokens"}`` when reported;
        ``None`` when none of the three counts was reported. Never raises.
    """
    prompt, completion, total = usage.input_tokens, usage.output_tokens, usage.total_tokens
    if prompt is None and completion is None and total is None:
        return None
    out: dict[str, Any] = {
        "promptTokens": prompt or 0,
        "completionTokens": completion or 0,
        "totalTokens": total if total is not None else (prompt or 0) + (completion or 0),
    }
    if usage.cached_input_tokens is not None:
        out["promptTokensDetails"] = {"cachedTokens": usage.cached_input_tokens}
    if usage.reasoning_tokens is not None:
        out["completionTokensDetails"] = {"reasoningTokens": usage.reasoning_tokens}
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
        error: the exception raised by the model stream, or the provider's error object.

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


class TanStackStreamOptions(TypedDict, total=False):
    """The keyword arguments of :class:`TanStackChunkStream` (see there), for the sources'
    converters and functions that pass them on."""

    run_id: str | None
    thread_id: str | None
    message_id: str | None
    model: str | None
    on_error: ErrorTextPolicy | None
    on_error_code: ErrorCodePolicy | None
    include_usage: bool
    clock_ms: Callable[[], int] | None


class TanStackChunkStream:
    """One run's TanStack chunks, made from neutral model events (see the module docstring).

    Args:
        run_id: ``runId`` of the run events (pass the request's AG-UI ``RunAgentInput.runId``);
            ``None`` generates ``run-<hex>`` once.
        thread_id: ``threadId`` for the run events (the request's); omitted when ``None``.
        message_id: the assistant message's id; ``None`` generates ``msg-<hex>`` once. Pass the
            continued message's id to append to it.
        model: the model name for ``metadata.tanstack.model`` until the model stream names one.
        on_error: the raw failure → ``RUN_ERROR.message``; ``None`` uses
            :func:`~resumable_chat.protocols.error_text.default_error_text` (generic). If it
            raises, :data:`~resumable_chat.chat.dialect.DEFAULT_ERROR_TEXT` is used.
        on_error_code: the same → ``RUN_ERROR.code``; ``None`` uses :func:`default_error_code`.
        include_usage: put ``usage`` (``TokenUsage``) on ``RUN_FINISHED`` / ``RUN_ERROR``.
        clock_ms: returns each chunk's ``timestamp``, ms since the epoch (default: system).

    Attributes:
        run_id, thread_id, message_id: as resolved at construction.
        stopped: True once ``RUN_FINISHED`` or ``RUN_ERROR`` was produced.
        finish_reason: the ``finishReason`` sent on ``RUN_FINISHED``, else ``None``.
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
        self._usage: TokenUsage | None = None
        self._message_started = False
        self._text = ""
        self._reasoning_id: str | None = None
        self._reasoning_count = 0
        self._tool_names: dict[str, str] = {}
        self._completed_tool_calls = 0

    def start(self) -> Iterator[Chunk]:
        """Open the run: yields ``RUN_STARTED {timestamp, runId, threadId?}``."""
        yield self._chunk("RUN_STARTED", runId=self.run_id, **self._thread())

    def handle(self, event: ModelEvent) -> Iterator[Chunk]:
        """The chunks for one model event (possibly none); nothing once :attr:`stopped`.

        Args:
            event: any :data:`~resumable_chat.model_events.ModelEvent`. Sources and
                ``TextEnd`` have no TanStack counterpart.

        Yields:
            the chunks of the module docstring's table.
        """
        if self.stopped:
            return
        match event:
            case TextStart():
                yield from self._open_message()
            case TextDelta(delta=delta):
                yield from self._open_message()
                self._text += delta
                yield self._chunk(
                    "TEXT_MESSAGE_CONTENT",
                    messageId=self.message_id,
                    delta=delta,
                    content=self._text,
                )
            case ReasoningStart():
                yield from self._open_reasoning()
            case ReasoningDelta(delta=delta):
                yield from self._open_reasoning()
                yield self._chunk(
                    "REASONING_MESSAGE_CONTENT", messageId=self._reasoning_id, delta=delta
                )
            case ReasoningEnd():
                yield from self._close_reasoning()
            case ToolInputStart():
                yield from self._tool_call_start(event)
            case ToolInputDelta(call_id=call_id, delta=delta):
                if call_id in self._tool_names:
                    yield self._chunk("TOOL_CALL_ARGS", toolCallId=call_id, delta=delta)
            case ToolCall() | ToolCallFailed():
                yield from self._tool_call_end(event)
            case ToolResult(call_id=call_id, output=output):
                if call_id in self._tool_names:
                    content = json.dumps(output, ensure_ascii=False, default=str)
                    yield self._chunk(
                        "TOOL_CALL_RESULT",
                        toolCallId=call_id,
                        messageId=self.message_id,
                        content=content,
                    )
            case ModelIdentified(model=model):
                self.model = model
            case UsageReported(usage=usage):
                self._usage = usage
            case ModelFinished():
                yield from self._run_finished(event)
            case ModelFailed(error=error):
                yield from self._run_error(error)

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

    def _tool_call_start(self, event: ToolInputStart) -> Iterator[Chunk]:
        yield from self._open_message()
        self._tool_names[event.call_id] = event.tool_name
        yield self._chunk(
            "TOOL_CALL_START",
            toolCallId=event.call_id,
            toolCallName=event.tool_name,
            toolName=event.tool_name,
            parentMessageId=self.message_id,
            index=len(self._tool_names) - 1,
        )

    def _tool_call_end(self, event: ToolCall | ToolCallFailed) -> Iterator[Chunk]:
        name = self._tool_names.get(event.call_id)
        if name is None:
            return  # never started (it never got a name): nothing to close
        fields: dict[str, Any] = {
            "toolCallId": event.call_id,
            "toolCallName": name,
            "toolName": name,
        }
        if isinstance(event, ToolCall):
            fields["input"] = event.input
        if not (isinstance(event, ToolCall) and event.provider_executed):
            self._completed_tool_calls += 1  # the client has calls to answer: "tool_calls"
        yield self._chunk("TOOL_CALL_END", **fields)

    def _close_message(self) -> Iterator[Chunk]:
        yield from self._close_reasoning()
        if self._message_started:
            yield self._chunk("TEXT_MESSAGE_END", messageId=self.message_id)

    def _run_finished(self, event: ModelFinished) -> Iterator[Chunk]:
        yield from self._close_message()
        reason = map_tanstack_finish_reason(
            event.reason, had_tool_calls=self._completed_tool_calls > 0
        )
        self.finish_reason = reason
        tanstack: dict[str, Any] = {"finishReason": reason}
        if self.model:
            tanstack["model"] = self.model
        fields: dict[str, Any] = {"runId": self.run_id, **self._thread(), "finishReason": reason}
        usage = self._usage_fields()
        if usage is not None:
            fields["usage"] = usage
        fields["metadata"] = {"tanstack": tanstack}
        self.stopped = True
        yield self._chunk("RUN_FINISHED", **fields)

    def _run_error(self, failure: BaseException | dict[str, Any]) -> Iterator[Chunk]:
        yield from self._open_message()
        yield from self._close_message()
        message = apply_error_policy(
            self.on_error or default_error_text, failure, DEFAULT_ERROR_TEXT
        )
        code = apply_error_policy(
            self.on_error_code or default_error_code, failure, FALLBACK_ERROR_CODE
        )
        tanstack: dict[str, Any] = {"runId": self.run_id, **self._thread()}
        if self.model:
            tanstack["model"] = self.model
        fields: dict[str, Any] = {
            "runId": self.run_id,
            **self._thread(),
            "message": message,
            "code": code,
            "error": {"message": message, "code": code},
        }
        usage = self._usage_fields()
        if usage is not None:
            fields["usage"] = usage
        fields["metadata"] = {"tanstack": tanstack}
        self.stopped = True
        yield self._chunk("RUN_ERROR", **fields)

    def _chunk(self, kind: str, **fields: Any) -> Chunk:
        return {"type": kind, "timestamp": self.clock_ms(), **fields}

    def _thread(self) -> dict[str, str]:
        return {"threadId": self.thread_id} if self.thread_id is not None else {}

    def _usage_fields(self) -> dict[str, Any] | None:
        if not self.include_usage or self._usage is None:
            return None
        return tanstack_token_usage(self._usage)
