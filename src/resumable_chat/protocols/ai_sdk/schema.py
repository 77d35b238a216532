"""The AI SDK's ``UIMessageChunk`` schema as TypedDicts checked by pydantic: which chunks the
client accepts.

``useChat`` parses every chunk with ``uiMessageChunkSchema`` (``ai`` 5.0 and 6.0,
``packages/ai/src/ui-message-stream/ui-message-chunks.ts``): a chunk of an unknown type, or one
missing a required field or carrying a wrong type, makes the client throw. :func:`chunk_problem`
applies the same rules on the server, so a source that yields such a chunk ends its answer
with one proper ``error`` chunk instead of breaking the client. Objects are loose (extra keys
are allowed, as in the newest clients; ``ai`` 5.0.0 to 5.0.2xx and 6.0.0 to 6.0.2xx use
``z.strictObject`` and refuse them, so a source meant for those clients sends only the keys
their schema lists; the dialect drops the one our sources add, ``finish.finishReason``,
:meth:`~resumable_chat.protocols.ai_sdk.dialect.AiSdkDialect.client_form`),
``z.unknown()`` fields (``input``, ``output``, ``data``, metadata) accept anything including
absence, optional fields may be absent but not ``null``, and provider/tool metadata are not
checked further.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, NotRequired

from pydantic import ConfigDict, StrictBool, StrictStr, TypeAdapter, ValidationError
from typing_extensions import TypedDict

__all__ = ["FINISH_REASONS", "chunk_problem"]

#: ``finish.finishReason`` values the client accepts.
FINISH_REASONS: Final = frozenset(
    {"stop", "length", "content-filter", "tool-calls", "error", "other"}
)


class _Chunk(TypedDict):
    """A chunk object: only the checked fields are declared (the zod objects are loose, so
    other keys are ignored); values are checked strictly (no coercion)."""

    __pydantic_config__ = ConfigDict(extra="ignore", strict=True)  # type: ignore[misc]


class _Id(_Chunk):
    id: StrictStr


class _TextDelta(_Id):
    delta: StrictStr


class _Error(_Chunk):
    errorText: StrictStr


class _ToolFlags(_Chunk):
    providerExecuted: NotRequired[StrictBool]
    dynamic: NotRequired[StrictBool]


class _ToolInput(_ToolFlags):
    toolCallId: StrictStr
    toolName: StrictStr
    title: NotRequired[StrictStr]


class _ToolInputDelta(_Chunk):
    toolCallId: StrictStr
    inputTextDelta: StrictStr


class _ToolInputError(_ToolInput):
    errorText: StrictStr


class _ToolApprovalRequest(_Chunk):
    approvalId: StrictStr
    toolCallId: StrictStr
    signature: NotRequired[StrictStr]


class _ToolOutput(_ToolFlags):
    toolCallId: StrictStr
    preliminary: NotRequired[StrictBool]


class _ToolOutputError(_ToolFlags):
    toolCallId: StrictStr
    errorText: StrictStr


class _ToolCallId(_Chunk):
    toolCallId: StrictStr


class _SourceUrl(_Chunk):
    sourceId: StrictStr
    url: StrictStr
    title: NotRequired[StrictStr]


class _SourceDocument(_Chunk):
    sourceId: StrictStr
    mediaType: StrictStr
    title: StrictStr
    filename: NotRequired[StrictStr]


class _File(_Chunk):
    url: StrictStr
    mediaType: StrictStr


class _Start(_Chunk):
    messageId: NotRequired[StrictStr]


class _Finish(_Chunk):
    finishReason: NotRequired[
        Literal["stop", "length", "content-filter", "tool-calls", "error", "other"] | None
    ]


class _Abort(_Chunk):
    reason: NotRequired[StrictStr]


class _Custom(_Chunk):
    kind: StrictStr


class _ToolApprovalResponse(_Chunk):
    approvalId: StrictStr
    approved: StrictBool
    reason: NotRequired[StrictStr]
    providerExecuted: NotRequired[StrictBool]


class _SteeringPart(TypedDict):
    __pydantic_config__ = ConfigDict(extra="ignore", strict=True)  # type: ignore[misc]
    type: Literal["text", "file"]


class _SteeringMessage(_Chunk):
    id: StrictStr
    parts: list[_SteeringPart]


class _FinishV7(_Chunk):
    finishReason: NotRequired[
        Literal["stop", "length", "content-filter", "tool-calls", "error", "interrupted", "other"]
        | None
    ]


class _Data(_Chunk):
    id: NotRequired[StrictStr]
    transient: NotRequired[StrictBool]


#: type → the shape its chunks must have.
_SHAPES: Final[dict[str, type[_Chunk]]] = {
    "text-start": _Id,
    "text-delta": _TextDelta,
    "text-end": _Id,
    "error": _Error,
    "tool-input-start": _ToolInput,
    "tool-input-delta": _ToolInputDelta,
    "tool-input-available": _ToolInput,
    "tool-input-error": _ToolInputError,
    "tool-approval-request": _ToolApprovalRequest,
    "tool-output-available": _ToolOutput,
    "tool-output-error": _ToolOutputError,
    "tool-output-denied": _ToolCallId,
    "reasoning-start": _Id,
    "reasoning-delta": _TextDelta,
    "reasoning-end": _Id,
    "source-url": _SourceUrl,
    "source-document": _SourceDocument,
    "file": _File,
    "start-step": _Chunk,
    "finish-step": _Chunk,
    "start": _Start,
    "finish": _Finish,
    "abort": _Abort,
    "message-metadata": _Chunk,
}
#: What ``ai`` 7 adds (``packages/ai/src/ui-message-stream/ui-message-chunks.ts`` of 7.x).
_SHAPES_V7: Final[dict[str, type[_Chunk]]] = {
    **_SHAPES,
    "custom": _Custom,
    "reasoning-file": _File,
    "steering-message": _SteeringMessage,
    "reset-step": _Chunk,
    "tool-approval-response": _ToolApprovalResponse,
    "finish": _FinishV7,
}
_VALIDATORS: Final[dict[str, TypeAdapter[Any]]] = {k: TypeAdapter(s) for k, s in _SHAPES.items()}
_VALIDATORS_V7: Final[dict[str, TypeAdapter[Any]]] = {
    k: TypeAdapter(s) for k, s in _SHAPES_V7.items()
}
_DATA_VALIDATOR: Final[TypeAdapter[Any]] = TypeAdapter(_Data)


def chunk_problem(chunk: Mapping[str, Any], version: int = 6) -> str | None:
    """Why the AI SDK client would reject ``chunk``, or ``None`` when it accepts it.

    Args:
        chunk: a mapping with a string ``type``.
        version: the ``ai`` major version the client runs: 5 and 6 share one schema; 7 adds
            ``custom``, ``reasoning-file``, ``steering-message``, ``reset-step``,
            ``tool-approval-response`` and ``finishReason: "interrupted"``.

    Returns:
        A short sentence naming the type and the offending field, or ``None``.
    """
    kind = chunk["type"]
    if (kind == "text-delta" or kind == "reasoning-delta") and (
        type(chunk.get("delta")) is str and type(chunk.get("id")) is str
    ):
        return None  # the shape of nearly every chunk, checked without pydantic
    validators = _VALIDATORS_V7 if version >= 7 else _VALIDATORS
    validator: TypeAdapter[Any] | None = validators.get(kind)
    if validator is None:
        if not kind.startswith("data-"):
            return f"unknown UIMessageChunk type {kind!r}"
        validator = _DATA_VALIDATOR
    try:
        validator.validate_python(chunk)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            return f"{kind!r} chunk is missing {field!r}"
        if chunk.get(field, 0) is None:
            return f"{kind!r} chunk has {field!r} = null (omit it instead)"
        return f"{kind!r} chunk has an invalid {field!r}: {error['msg']}"
    return None
