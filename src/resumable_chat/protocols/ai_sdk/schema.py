"""The AI SDK's ``UIMessageChunk`` schema as a table: which chunks the client accepts.

``useChat`` parses every chunk with ``uiMessageChunkSchema`` (``ai`` 5.0 and 6.0,
``src/ui-message-stream/ui-message-chunks.ts``): a chunk of an unknown type, or one missing a
required field or carrying a wrong type, makes the client throw. :func:`chunk_problem` applies
the same rules on the server, so a source that yields such a chunk ends its answer with one
proper ``error`` chunk instead of breaking the client. Objects are loose (extra keys are
allowed), ``z.unknown()`` fields (``input``, ``output``, ``data``, metadata) accept anything
including absence, and provider/tool metadata are not checked further.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["FINISH_REASONS", "chunk_problem"]

#: ``finish.finishReason`` values the client accepts.
FINISH_REASONS: Final = frozenset(
    {"stop", "length", "content-filter", "tool-calls", "error", "other"}
)

_S, _S_OPT, _B_OPT = "string", "string?", "boolean?"

#: type → {field: "string" | "string?" | "boolean?"} (fields not listed are not checked).
_FIELDS: Final[dict[str, dict[str, str]]] = {
    "text-start": {"id": _S},
    "text-delta": {"id": _S, "delta": _S},
    "text-end": {"id": _S},
    "error": {"errorText": _S},
    "tool-input-start": {
        "toolCallId": _S,
        "toolName": _S,
        "providerExecuted": _B_OPT,
        "dynamic": _B_OPT,
        "title": _S_OPT,
    },
    "tool-input-delta": {"toolCallId": _S, "inputTextDelta": _S},
    "tool-input-available": {
        "toolCallId": _S,
        "toolName": _S,
        "providerExecuted": _B_OPT,
        "dynamic": _B_OPT,
        "title": _S_OPT,
    },
    "tool-input-error": {
        "toolCallId": _S,
        "toolName": _S,
        "errorText": _S,
        "providerExecuted": _B_OPT,
        "dynamic": _B_OPT,
        "title": _S_OPT,
    },
    "tool-approval-request": {"approvalId": _S, "toolCallId": _S, "signature": _S_OPT},
    "tool-output-available": {
        "toolCallId": _S,
        "providerExecuted": _B_OPT,
        "dynamic": _B_OPT,
        "preliminary": _B_OPT,
    },
    "tool-output-error": {
        "toolCallId": _S,
        "errorText": _S,
        "providerExecuted": _B_OPT,
        "dynamic": _B_OPT,
    },
    "tool-output-denied": {"toolCallId": _S},
    "reasoning-start": {"id": _S},
    "reasoning-delta": {"id": _S, "delta": _S},
    "reasoning-end": {"id": _S},
    "source-url": {"sourceId": _S, "url": _S, "title": _S_OPT},
    "source-document": {"sourceId": _S, "mediaType": _S, "title": _S, "filename": _S_OPT},
    "file": {"url": _S, "mediaType": _S},
    "start-step": {},
    "finish-step": {},
    "start": {"messageId": _S_OPT},
    "finish": {},
    "abort": {"reason": _S_OPT},
    "message-metadata": {},
}
_DATA_FIELDS: Final = {"id": _S_OPT, "transient": _B_OPT}


def _field_problem(chunk: Mapping[str, Any], name: str, kind: str) -> str | None:
    if name not in chunk:
        return None if kind.endswith("?") else f"is missing {name!r}"
    value = chunk[name]
    expected = str if kind.startswith("string") else bool
    if kind.endswith("?") and value is None:
        return f"has {name!r} = null (omit it instead)"
    if not isinstance(value, expected):
        return f"has {name!r} of type {type(value).__name__}, expected {kind.rstrip('?')}"
    return None


def chunk_problem(chunk: Mapping[str, Any]) -> str | None:
    """Why the AI SDK client would reject ``chunk``, or ``None`` when it accepts it.

    ``chunk`` must already be a mapping with a string ``type``. Returns a short sentence
    naming the type and the offending field.
    """
    kind = chunk["type"]
    fields = _FIELDS.get(kind)
    if fields is None:
        if not kind.startswith("data-"):
            return f"unknown UIMessageChunk type {kind!r}"
        fields = _DATA_FIELDS
    for name, expected in fields.items():
        problem = _field_problem(chunk, name, expected)
        if problem is not None:
            return f"{kind!r} chunk {problem}"
    if kind == "finish":
        reason = chunk.get("finishReason")
        if reason is not None and reason not in FINISH_REASONS:
            return f"'finish' chunk has an unknown finishReason {reason!r}"
    return None
