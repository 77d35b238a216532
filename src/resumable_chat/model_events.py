"""Neutral model events: what a model stream said, before any chat protocol shapes it.

A source (:mod:`resumable_chat.sources`) normalises one provider format (OpenAI chat
completions, the Responses API) into these events once; each protocol's event stream
(``resumable_chat.protocols.ai_sdk.events``, ``resumable_chat.protocols.tanstack.events``) turns
them into its own chunks. So provider quirks are handled in one place per provider, and chat
protocol shapes in one place per protocol.

The events follow the stream parts of the AI SDK's provider interface
(``LanguageModelV2StreamPart`` in ``@ai-sdk/provider``,
``packages/provider/src/language-model/v2/language-model-v2-stream-part.ts``): text and reasoning
arrive as start / delta / end of a part with an id, a tool call as input start / input deltas
and then the whole call, then one finish or one error. Unlike there, tool-call input arrives
parsed (or as a :class:`ToolCallFailed`), finish reasons use OpenAI's names, and a failure keeps
the raw error so each protocol applies its own error-text policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "FinishReason",
    "ModelEvent",
    "ModelFailed",
    "ModelFinished",
    "ModelIdentified",
    "ReasoningDelta",
    "ReasoningEnd",
    "ReasoningStart",
    "SourceDocument",
    "SourceUrl",
    "TextDelta",
    "TextEnd",
    "TextStart",
    "TokenUsage",
    "ToolCall",
    "ToolCallFailed",
    "ToolInputDelta",
    "ToolInputStart",
    "ToolResult",
    "UsageReported",
]

#: Why the model stopped, in OpenAI's names (``finish_reason`` of chat completions):
#: ``"stop"``, ``"length"``, ``"tool_calls"``, ``"content_filter"``, ``"error"`` (a provider's
#: mid-stream error finish, e.g. OpenRouter), ``"other"`` (anything else the provider said).
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "other"]


@dataclass(frozen=True, slots=True)
class TextStart:
    """A text part of the answer opens. ``id``: the part's id, unique in the answer."""

    id: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """More text of the open part ``id``. ``delta``: a non-empty fragment."""

    id: str
    delta: str


@dataclass(frozen=True, slots=True)
class TextEnd:
    """The text part ``id`` is complete."""

    id: str


@dataclass(frozen=True, slots=True)
class ReasoningStart:
    """A reasoning part opens (reasoning text or a reasoning summary). ``id``: unique."""

    id: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """More reasoning text of the open part ``id``. ``delta``: a non-empty fragment."""

    id: str
    delta: str


@dataclass(frozen=True, slots=True)
class ReasoningEnd:
    """The reasoning part ``id`` is complete."""

    id: str


@dataclass(frozen=True, slots=True)
class ToolInputStart:
    """A tool call starts streaming its input.

    Attributes:
        call_id: the call's id (the provider's ``call_id`` / ``tool_calls[].id``).
        tool_name: the tool's (function's) name.
        provider_executed: the provider runs the tool itself (the Responses API's built-in
            tools: web search, file search, code interpreter...); the client must not.
    """

    call_id: str
    tool_name: str
    provider_executed: bool = False


@dataclass(frozen=True, slots=True)
class ToolInputDelta:
    """A fragment of the input text (JSON arguments, or code) of the started call ``call_id``."""

    call_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call is complete, with its parsed input.

    Attributes:
        call_id: as on :class:`ToolInputStart` (which always came first).
        tool_name: the tool's name.
        input: the parsed arguments (any JSON value; ``{}`` for empty arguments), or for a
            provider-executed tool what it was asked (its action, queries or code).
        provider_executed: as on :class:`ToolInputStart`.
    """

    call_id: str
    tool_name: str
    input: Any
    provider_executed: bool = False


@dataclass(frozen=True, slots=True)
class ToolCallFailed:
    """A tool call that cannot be run: its arguments are not valid JSON, or it never got a name.

    (A call still streaming when the model fails needs no event: :class:`ModelFailed` ends it.)

    Attributes:
        call_id: the call's id.
        tool_name: its name (``"unknown"`` when it never got one).
        input_text: the raw argument text received.
        error_text: what is wrong, for the user interface.
        started: a :class:`ToolInputStart` was sent for this call.
    """

    call_id: str
    tool_name: str
    input_text: str
    error_text: str
    started: bool


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The output of a tool the provider ran itself (``provider_executed`` calls only).

    Attributes:
        call_id: the call's id; its :class:`ToolCall` came first.
        tool_name: the tool's name.
        output: what the provider reports of the run (results, outputs, status), JSON-able.
    """

    call_id: str
    tool_name: str
    output: Any


@dataclass(frozen=True, slots=True)
class SourceUrl:
    """A web page the answer cites. ``source_id`` is unique in the answer; ``title`` optional."""

    source_id: str
    url: str
    title: str | None = None


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """A document (e.g. an uploaded file) the answer cites.

    Attributes:
        source_id: unique in the answer.
        title: what to show (the file name, else its id).
        filename: the file's name, when known.
        media_type: its IANA media type (``application/octet-stream`` when unknown).
    """

    source_id: str
    title: str
    filename: str | None = None
    media_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class ModelIdentified:
    """The provider named the model that answers (the latest one wins). ``model``: non-empty."""

    model: str


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of the answer, as the provider reported them (``None``: not reported).

    Attributes:
        input_tokens: prompt tokens (OpenAI ``prompt_tokens`` / ``input_tokens``).
        output_tokens: completion tokens (``completion_tokens`` / ``output_tokens``).
        total_tokens: the provider's total.
        reasoning_tokens: output tokens spent reasoning (``*_tokens_details.reasoning_tokens``).
        cached_input_tokens: input tokens served from the prompt cache (``cached_tokens``).
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_input_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class UsageReported:
    """The provider reported token usage (the latest report wins)."""

    usage: TokenUsage


@dataclass(frozen=True, slots=True)
class ModelFinished:
    """The model stream ended normally; every part and call before it is closed.

    Attributes:
        reason: why, as the provider said it; ``None`` when it never said.
        fallback_reason: the reason to report when ``reason`` is ``None`` and no tool call
            was made (``"other"`` for chat completions, as the AI SDK's OpenAI provider does;
            ``"stop"`` for the Responses API).
    """

    reason: FinishReason | None
    fallback_reason: FinishReason = "other"


@dataclass(frozen=True, slots=True)
class ModelFailed:
    """The model stream failed: an exception from the provider's iterator, or an in-stream
    error object (``{"message", "code", ...}``). Nothing follows it.

    ``error`` is kept raw so each protocol applies its own error-text policy; never show it to
    a user as is (provider messages can contain request details).
    """

    error: BaseException | dict[str, Any]


ModelEvent = (
    TextStart
    | TextDelta
    | TextEnd
    | ReasoningStart
    | ReasoningDelta
    | ReasoningEnd
    | ToolInputStart
    | ToolInputDelta
    | ToolCall
    | ToolCallFailed
    | ToolResult
    | SourceUrl
    | SourceDocument
    | ModelIdentified
    | UsageReported
    | ModelFinished
    | ModelFailed
)
