"""The per-answer state of the AI SDK history fold: record validation as the client's schema
does it, the message being built and its open parts (``ai`` ``processUIMessageStream``'s
``StreamingUIMessageState``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resumable_chat.protocols.js_values import UNDEFINED
from resumable_chat.protocols.js_values import coalesce as _coalesce

Json = Any
Part = dict[str, Any]


_DANGEROUS_KEYS = frozenset({"__proto__", "constructor", "prototype"})


def _is_plain_object(value: object) -> bool:
    return isinstance(value, dict)


def _merge_objects(base: Json, overrides: Json) -> Json:
    """The client's ``mergeObjects``: recursive merge of plain objects; arrays and scalars in
    ``overrides`` replace; ``__proto__``/``constructor``/``prototype`` keys are skipped."""
    if not (_is_plain_object(base) and _is_plain_object(overrides)):
        return overrides
    result = dict(base)
    for key, value in overrides.items():
        if key in _DANGEROUS_KEYS or value is UNDEFINED:
            continue
        current = result.get(key, UNDEFINED)
        if _is_plain_object(value) and _is_plain_object(current):
            result[key] = _merge_objects(current, value)
        else:
            result[key] = value
    return result


# -- record validation -------------------------------------------------------------------------

_REQUIRED_STRINGS: dict[str, tuple[str, ...]] = {
    "text-start": ("id",),
    "text-delta": ("id", "delta"),
    "text-end": ("id",),
    "reasoning-start": ("id",),
    "reasoning-delta": ("id", "delta"),
    "reasoning-end": ("id",),
    "tool-input-start": ("toolCallId", "toolName"),
    "tool-input-delta": ("toolCallId", "inputTextDelta"),
    "tool-input-available": ("toolCallId", "toolName"),
    "tool-input-error": ("toolCallId", "toolName", "errorText"),
    "tool-approval-request": ("approvalId", "toolCallId"),
    "tool-output-available": ("toolCallId",),
    "tool-output-error": ("toolCallId", "errorText"),
    "tool-output-denied": ("toolCallId",),
    "source-url": ("sourceId", "url"),
    "source-document": ("sourceId", "mediaType", "title"),
    "file": ("url", "mediaType"),
    "error": ("errorText",),
    # ai 7
    "custom": ("kind",),
    "reasoning-file": ("url", "mediaType"),
    "steering-message": ("id",),
    "tool-approval-response": ("approvalId",),
}

_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "tool-input-available": ("input",),
    "tool-input-error": ("input",),
    "tool-output-available": ("output",),
    "message-metadata": ("messageMetadata",),
    "data": ("data",),
}

_OPTIONAL_STRINGS: dict[str, tuple[str, ...]] = {
    "start": ("messageId",),
    "source-url": ("title",),
    "source-document": ("filename",),
    "data": ("id",),
}


def _valid(record: Mapping[str, Any], kind: str) -> bool:
    key = "data" if kind.startswith("data-") else kind
    for name in _REQUIRED_STRINGS.get(key, ()):
        if not isinstance(record.get(name), str):
            return False
    for name in _REQUIRED_KEYS.get(key, ()):
        if name not in record:
            return False
    for name in _OPTIONAL_STRINGS.get(key, ()):
        if record.get(name) is not None and not isinstance(record.get(name), str):
            return False
    if key == "data" and record.get("transient") is not None:
        return isinstance(record.get("transient"), bool)
    return True


def _get(record: Mapping[str, Any], key: str) -> Any:
    """``record.key`` with JS semantics: a missing key is ``undefined``."""
    return record.get(key, UNDEFINED)


def _static_tool_name(part: Mapping[str, Any]) -> str:
    return str(part.get("type", ""))[len("tool-") :]


def _is_static_tool(part: Mapping[str, Any]) -> bool:
    kind = part.get("type")
    return isinstance(kind, str) and kind.startswith("tool-")


def _is_tool(part: Mapping[str, Any]) -> bool:
    return _is_static_tool(part) or part.get("type") == "dynamic-tool"


class _PartialToolCall:
    __slots__ = ("dynamic", "input_encoding", "text", "title", "tool_metadata", "tool_name")

    def __init__(
        self,
        *,
        text: str,
        input_encoding: Any,
        tool_name: str,
        dynamic: Any,
        title: Any,
        tool_metadata: Any,
    ) -> None:
        self.text = text
        self.input_encoding = input_encoding
        self.tool_name = tool_name
        self.dynamic = dynamic
        self.title = title
        self.tool_metadata = tool_metadata


class _Answer:
    """Per-answer state (``createStreamingUIMessageState``)."""

    __slots__ = ("active_reasoning", "active_text", "failed", "message", "partial_tool_calls")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self.active_text: dict[str, Part] = {}
        self.active_reasoning: dict[str, Part] = {}
        self.partial_tool_calls: dict[str, _PartialToolCall] = {}
        self.failed = False
        parts = message.get("parts")
        if not isinstance(parts, list):
            message["parts"] = parts = []
        last_step = -1
        for i, part in enumerate(parts):
            if isinstance(part, dict) and part.get("type") == "step-start":
                last_step = i
        for part in parts[last_step + 1 :]:
            if not isinstance(part, dict) or not _is_tool(part):
                continue
            if part.get("state") != "input-streaming" or not isinstance(
                part.get("toolCallId"), str
            ):
                continue
            dynamic = part.get("type") == "dynamic-tool"
            raw = part.get("rawInput")
            self.partial_tool_calls[part["toolCallId"]] = _PartialToolCall(
                text=raw if isinstance(raw, str) else "",
                input_encoding=_get(part, "inputEncoding"),
                tool_name=str(part.get("toolName", "")) if dynamic else _static_tool_name(part),
                dynamic=dynamic,
                title=_get(part, "title"),
                tool_metadata=_get(part, "toolMetadata"),
            )

    @property
    def parts(self) -> list[Part]:
        """The message's parts list (created if missing)."""
        parts = self.message.get("parts")
        if not isinstance(parts, list):
            self.message["parts"] = parts = []
        return parts

    def current_step_parts(self) -> list[Part]:
        """Parts after the last ``step-start`` (the client's ``getCurrentStepParts``)."""
        parts = self.parts
        index = len(parts) - 1
        while index >= 0 and not (
            isinstance(parts[index], dict) and parts[index].get("type") == "step-start"
        ):
            index -= 1
        return [p for p in parts[index + 1 :] if isinstance(p, dict)]

    def find_tool_invocation(self, tool_call_id: str) -> Part | None:
        """The tool part of ``tool_call_id``: current step first, then the whole message
        from the end (the client's ``getToolInvocation``); ``None`` if there is none."""
        for part in self.current_step_parts():
            if _is_tool(part) and part.get("toolCallId") == tool_call_id:
                return part
        for part in reversed(self.parts):
            if isinstance(part, dict) and _is_tool(part) and part.get("toolCallId") == tool_call_id:
                return part
        return None


def _apply_delta(active: dict[str, Part], record: Mapping[str, Any]) -> None:
    """``text-delta`` / ``reasoning-delta``: append to the open part with the record's id."""
    part = active.get(record["id"])
    if part is None:
        return
    part["text"] = str(part.get("text", "")) + record["delta"]
    part["providerMetadata"] = _coalesce(
        _get(record, "providerMetadata"), part.get("providerMetadata", UNDEFINED)
    )


def _end_part(active: dict[str, Part], record: Mapping[str, Any]) -> None:
    """``text-end`` / ``reasoning-end``: close the open part (state ``done``)."""
    part = active.pop(record["id"], None)
    if part is None:
        return
    part["state"] = "done"
    part["providerMetadata"] = _coalesce(
        _get(record, "providerMetadata"), part.get("providerMetadata", UNDEFINED)
    )
