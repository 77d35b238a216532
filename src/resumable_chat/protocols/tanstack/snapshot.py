"""Snapshot conversion of the TanStack fold: ``MESSAGES_SNAPSHOT`` messages (AG-UI wire
form or ``UIMessage`` s) to ``UIMessage`` s, as ``@tanstack/ai``'s
``activities/chat/messages.js``."""

from __future__ import annotations

import copy
import logging
from typing import Any

from resumable_chat.protocols.js_values import UNDEFINED as UNDEF
from resumable_chat.protocols.js_values import JsError as _JsError
from resumable_chat.protocols.js_values import coalesce as _coalesce
from resumable_chat.protocols.js_values import coerce_created_at as _coerce_created_at
from resumable_chat.protocols.js_values import is_record as _is_record
from resumable_chat.protocols.js_values import js_get as _get
from resumable_chat.protocols.js_values import js_string as _js_string
from resumable_chat.protocols.js_values import js_trim as _js_trim
from resumable_chat.protocols.js_values import json_parse as _json_parse
from resumable_chat.protocols.js_values import nullish as _nullish
from resumable_chat.protocols.js_values import same_value_zero_key as _key
from resumable_chat.protocols.js_values import strict_equals as _same
from resumable_chat.protocols.js_values import truthy as _truthy
from resumable_chat.protocols.tanstack.state import (
    FoldState,
    _get_part,
    _tanstack_metadata,
)

__all__ = ["SnapshotConversion"]

logger = logging.getLogger("resumable_chat.protocols.tanstack")

Json = Any
Part = dict[str, Any]
Message = dict[str, Any]


class SnapshotConversion(FoldState):
    """``MESSAGES_SNAPSHOT`` handling: AG-UI wire messages and model messages converted to
    ``UIMessage`` s as ``@tanstack/ai`` does (``activities/chat/messages.js``)."""

    def _messages_snapshot(self, chunk: dict[str, Any]) -> None:
        self._reset_stream_state()
        previous = self._messages
        previous_by_id: dict[Any, Message] = {}
        for message in previous:
            previous_by_id[_key(message.get("id", UNDEF))] = message
        incoming = chunk.get("messages", UNDEF)
        if not isinstance(incoming, list):
            raise _JsError("chunk.messages.map is not a function")
        converted = [self._snapshot_message(m) for m in incoming]
        normalized = _merge_reasoning_fan_out(converted)
        reconciled = _reconcile_snapshot_tool_calls(normalized, previous)
        result: list[Message] = []
        for message in reconciled:
            if not _nullish(message.get("metadata", UNDEF)):
                result.append(message)
                continue
            prev = previous_by_id.get(_key(message.get("id", UNDEF)))
            if prev is None or _nullish(prev.get("metadata", UNDEF)):
                result.append(message)
                continue
            result.append({**message, "metadata": copy.deepcopy(prev["metadata"])})
        self._messages = result

    def _snapshot_message(self, message: Any) -> Message:
        """``aguiSnapshotMessageToUIMessage``: one snapshot entry → a ``UIMessage``."""
        if not isinstance(message, dict):
            raise _JsError("snapshot entry is not an object")
        if "parts" in message:
            ui = {**message, "id": self._id_or_generated(message.get("id", UNDEF))}
            return self._apply_snapshot_metadata(message, ui)
        message_id = self._id_or_generated(message.get("id", UNDEF))
        role = message.get("role", UNDEF)
        if role == "user":
            parts = _agui_user_content_to_parts(message.get("content", UNDEF))
            return self._apply_snapshot_metadata(
                message, {"id": message_id, "role": "user", "parts": parts}
            )
        if role == "assistant":
            tanstack = _tanstack_metadata(message)
            call_metadata = _get(tanstack, "toolCallMetadata") if tanstack is not UNDEF else UNDEF
            structured = _snapshot_structured_output(
                _get(tanstack, "structuredOutput") if tanstack is not UNDEF else UNDEF
            )
            tool_calls = message.get("toolCalls", UNDEF)
            model: dict[str, Any] = {
                "role": "assistant",
                "content": _coalesce(message.get("content", UNDEF), None),
            }
            if "name" in message:
                model["name"] = message["name"]
            if not _nullish(tool_calls):
                if not isinstance(tool_calls, list):
                    raise _JsError("toolCalls.map is not a function")
                mapped = []
                for call in tool_calls:
                    meta = (
                        _get(call_metadata, _js_string(_get(call, "id")))
                        if isinstance(call_metadata, dict)
                        else UNDEF
                    )
                    mapped.append(call if meta is UNDEF else {**call, "metadata": meta})
                model["toolCalls"] = mapped
            if structured is not None:
                model["structuredOutput"] = structured
            return self._apply_snapshot_metadata(message, self._model_to_ui(model, message_id))
        if role == "tool":
            message = _restore_tool_result_ownership(message)
            created_at = _coerce_created_at(message.get("createdAt", UNDEF))
            if created_at is None:
                created_at = _created_at_from_metadata(message)
            model = {
                "role": "tool",
                "content": message.get("content", UNDEF),
                "toolCallId": message.get("toolCallId", UNDEF),
            }
            if isinstance(message.get("name"), str):
                model["name"] = message["name"]
            if isinstance(message.get("id"), str):
                model["id"] = message["id"]
            if not _nullish(message.get("metadata", UNDEF)):
                model["metadata"] = message["metadata"]
            if created_at is not None:
                model["createdAt"] = created_at
            if message.get("error", UNDEF) is not UNDEF:
                model["error"] = message["error"]
            return self._apply_snapshot_metadata(message, self._model_to_ui(model, message_id))
        if role in ("system", "developer") and isinstance(role, str):
            content = message.get("content", UNDEF)
            parts = [{"type": "text", "content": content}] if _truthy(content) else []
            return self._apply_snapshot_metadata(
                message, {"id": message_id, "role": "system", "parts": parts}
            )
        if role == "reasoning":
            signature = _encrypted_value_from(message)
            content = message.get("content")
            text = content if isinstance(content, str) else ""
            parts = []
            if text or signature is not UNDEF:
                thinking: Part = {"type": "thinking", "content": text}
                if signature is not UNDEF:
                    thinking["signature"] = signature
                parts.append(thinking)
            return self._apply_snapshot_metadata(
                message, {"id": message_id, "role": "assistant", "parts": parts}
            )
        return self._apply_snapshot_metadata(
            message, {"id": message_id, "role": "assistant", "parts": []}
        )

    def _id_or_generated(self, value: Any) -> Any:
        return value if _truthy(value) else self._generate_id()

    def _model_to_ui(self, model: dict[str, Any], message_id: Any) -> Message:
        """``modelMessageToUIMessage`` for the snapshot roles ``assistant`` and ``tool``."""
        parts: list[Any] = []
        created_at = _coerce_created_at(model.get("createdAt", UNDEF))
        role = model.get("role")
        structured = model.get("structuredOutput", UNDEF)
        content = model.get("content", UNDEF)
        if role == "assistant" and not _nullish(structured):
            raw = _get(structured, "raw")
            if isinstance(content, str) and content and not _same(content, raw):
                suffix = raw
                text = (
                    content[: -len(suffix)]
                    if isinstance(suffix, str) and suffix != "" and content.endswith(suffix)
                    else content
                )
                if text:
                    parts.append({"type": "text", "content": text})
            parts.append(structured)
        elif role == "tool" and _truthy(model.get("toolCallId", UNDEF)):
            result: Part = {
                "type": "tool-result",
                "toolCallId": model["toolCallId"],
                "content": _tool_result_content(content),
                "state": "complete" if model.get("error", UNDEF) is UNDEF else "error",
            }
            for key in ("id", "name", "metadata"):
                if model.get(key, UNDEF) is not UNDEF:
                    result[key] = model[key]
            if created_at is not None:
                result["createdAt"] = created_at
            if model.get("error", UNDEF) is not UNDEF:
                result["error"] = model["error"]
            parts.append(result)
        elif isinstance(content, list):
            parts.extend(content)
        else:
            text = _text_content(content)
            if text:
                parts.append({"type": "text", "content": text})
        tool_calls = model.get("toolCalls", UNDEF)
        if isinstance(tool_calls, list):
            for call in tool_calls:
                function = _get(call, "function")
                arguments = _get(function, "arguments")
                try:
                    parsed = _json_parse(arguments)
                except (ValueError, _JsError):
                    parsed = UNDEF
                part: Part = {
                    "type": "tool-call",
                    "id": _get(call, "id"),
                    "name": _get(function, "name"),
                    "arguments": arguments,
                    "state": "input-complete",
                }
                if parsed is not UNDEF:
                    part["input"] = parsed
                if _get(call, "metadata") is not UNDEF:
                    part["metadata"] = call["metadata"]
                parts.append(part)
        ui: Message = {
            "id": message_id if _truthy(message_id) else self._generate_id(),
            "role": "assistant" if role == "tool" else role,
            "parts": parts,
        }
        if model.get("name", UNDEF) is not UNDEF:
            ui["name"] = model["name"]
        if created_at is not None:
            ui["createdAt"] = created_at
        if model.get("metadata", UNDEF) is not UNDEF:
            ui["metadata"] = model["metadata"]
        tanstack = _tanstack_metadata(model)
        stored = _get(tanstack, "uiResources") if tanstack is not UNDEF else UNDEF
        return _append_ui_resources(ui, stored if isinstance(stored, list) else [])

    def _apply_snapshot_metadata(self, source: dict[str, Any], ui: Message) -> Message:
        """``applySnapshotMetadata``: tool-result dates, ``name``, ``metadata``,
        ``createdAt`` (own or ``metadata.tanstack.createdAt``), stored ui-resources."""
        parts = ui.get("parts", UNDEF)
        if not isinstance(parts, list):
            raise _JsError("ui.parts.map is not a function")
        ui = {**ui, "parts": [_normalize_message_part(p) for p in parts]}
        name = source.get("name")
        if isinstance(name, str):
            ui = {**ui, "name": name}
        metadata: Any = UNDEF
        raw = source.get("metadata", UNDEF)
        if _is_record(raw):
            metadata = raw
            ui = {**ui, "metadata": metadata}
        created_at = _coerce_created_at(ui.get("createdAt", UNDEF))
        if created_at is None and metadata is not UNDEF:
            created_at = _created_at_from_metadata(metadata)
        if created_at is not None:
            ui = {**ui, "createdAt": created_at}
        elif ui.get("createdAt", UNDEF) is not UNDEF:
            ui = {k: v for k, v in ui.items() if k != "createdAt"}
        tanstack = _tanstack_metadata(metadata) if metadata is not UNDEF else UNDEF
        resources = _get(tanstack, "uiResources") if tanstack is not UNDEF else UNDEF
        return _append_ui_resources(ui, resources if isinstance(resources, list) else [])


# -- module helpers ----------------------------------------------------------------------------


def _spread(value: Any) -> dict[str, Any]:
    """``{...value}`` for an object or an array (index keys)."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, str):
        return {str(i): c for i, c in enumerate(value)}
    return {}


def _whitespace_only(parts: Any) -> bool:
    """``isWhitespaceOnlyMessage`` on a parts array."""
    if not isinstance(parts, list) or len(parts) == 0:
        return False
    for part in parts:
        if _get_part(part, "type") != "text":
            return False
        content = _get(part, "content")
        if not isinstance(content, str):
            raise _JsError("part.content.trim is not a function")
        if _js_trim(content) != "":
            return False
    return True


def _tool_result_error(output: Any) -> Any:
    """``extractToolResultError``."""
    if isinstance(output, dict) and isinstance(output.get("error"), str):
        return output["error"]
    return output if isinstance(output, str) else "Tool execution failed"


def _text_content(content: Any) -> str:
    """``getTextContent`` of a ``ModelMessage`` content."""
    if _nullish(content):
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _JsError("content.filter is not a function")
    return "".join(_js_string(_get(p, "content")) for p in content if _get(p, "type") == "text")


def _tool_result_content(content: Any) -> Any:
    return content if isinstance(content, list) else _text_content(content)


def _agui_user_content_to_parts(content: Any) -> list[Any]:
    """``aguiUserContentToParts``: AG-UI user content → TanStack parts."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    if not isinstance(content, list):
        raise _JsError("content is not iterable")
    parts: list[Any] = []
    for part in content:
        kind = _get(part, "type")
        if kind == "text":
            parts.append({"type": "text", "content": _get(part, "text")})
        elif kind != "binary":
            parts.append(part)
    return parts


def _encrypted_value_from(value: dict[str, Any]) -> Any:
    encrypted = value.get("encryptedValue", UNDEF)
    if isinstance(encrypted, str) and encrypted:
        return encrypted
    tanstack = _tanstack_metadata(value)
    signature = _get(tanstack, "signature") if tanstack is not UNDEF else UNDEF
    return signature if isinstance(signature, str) and signature else UNDEF


def _created_at_from_metadata(source: Any) -> str | None:
    tanstack = _tanstack_metadata(source)
    return _coerce_created_at(_get(tanstack, "createdAt")) if tanstack is not UNDEF else None


def _normalize_message_part(part: Any) -> Any:
    """``normalizeMessagePart``: a tool-result's ``createdAt`` re-parsed (and moved last)."""
    if _get_part(part, "type") != "tool-result":
        return part
    created_at = _coerce_created_at(part.get("createdAt", UNDEF))
    rest = {k: v for k, v in part.items() if k != "createdAt"}
    if created_at is not None:
        rest["createdAt"] = created_at
    return rest


def _snapshot_structured_output(value: Any) -> Part | None:
    if _nullish(value) or not isinstance(value, dict):
        return None
    if value.get("status") not in ("streaming", "complete", "error") or not isinstance(
        value.get("raw"), str
    ):
        return None
    part: Part = {"type": "structured-output", "status": value["status"], "raw": value["raw"]}
    for key in ("partial", "data"):
        if key in value:
            part[key] = value[key]
    if _truthy(value.get("reasoning", UNDEF)):
        part["reasoning"] = value["reasoning"]
    if "errorMessage" in value:
        part["errorMessage"] = value["errorMessage"]
    return part


def _is_ui_resource(part: Any) -> bool:
    if not isinstance(part, dict) or part.get("type") != "ui-resource":
        return False
    if not isinstance(part.get("toolCallId"), str) or not isinstance(part.get("toolName"), str):
        return False
    resource = part.get("resource")
    return (
        isinstance(resource, dict)
        and isinstance(resource.get("uri"), str)
        and isinstance(resource.get("mimeType"), str)
    )


def _ui_resource_key(part: dict[str, Any]) -> tuple[str, str, str]:
    return (part["toolCallId"], part["toolName"], part["resource"]["uri"])


def _append_ui_resources(ui: Message, resources: list[Any]) -> Message:
    valid = [r for r in resources if _is_ui_resource(r)]
    if not valid:
        return ui
    seen = {_ui_resource_key(p) for p in ui["parts"] if _is_ui_resource(p)}
    extra = [r for r in valid if _ui_resource_key(r) not in seen]
    if not extra:
        return ui
    return {**ui, "parts": [*ui["parts"], *extra]}


def _restore_tool_result_ownership(message: dict[str, Any]) -> dict[str, Any]:
    """``restoreToolResultOwnership``: a wire tool message's own id/createdAt/content back
    from ``metadata.tanstack.toolResult``."""
    tanstack = _tanstack_metadata(message)
    owned = UNDEF if tanstack is UNDEF else _get(tanstack, "toolResult")
    if not _is_record(owned):
        return message
    content = owned.get("content", UNDEF)
    if "content" in owned and not _is_content_part_array(content):
        return message
    restored = dict(message)
    if "id" not in owned:
        restored.pop("id", None)
    if "createdAt" not in owned:
        restored.pop("createdAt", None)
    if isinstance(owned.get("id"), str):
        restored["id"] = owned["id"]
    if isinstance(owned.get("createdAt"), str):
        created_at = _coerce_created_at(owned["createdAt"])
        if created_at is not None:
            restored["createdAt"] = created_at
    if _is_content_part_array(content):
        restored["content"] = content
    source_metadata = message.get("metadata")
    if isinstance(source_metadata, dict) and isinstance(source_metadata.get("tanstack"), dict):
        rest_tanstack = {k: v for k, v in source_metadata["tanstack"].items() if k != "toolResult"}
        rest_metadata = dict(source_metadata)
        if rest_tanstack:
            rest_metadata["tanstack"] = rest_tanstack
        else:
            del rest_metadata["tanstack"]
        if rest_metadata:
            restored["metadata"] = rest_metadata
        else:
            restored.pop("metadata", None)
    return restored


def _is_content_part_array(value: Any) -> bool:
    """``isContentPartArray``: a non-empty array of text/image/audio/video/document parts."""
    if not isinstance(value, list) or not value:
        return False
    for part in value:
        if not isinstance(part, dict):
            return False
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("content"), str):
                return False
            continue
        if kind not in ("image", "audio", "video", "document"):
            return False
        source = part.get("source")
        if not isinstance(source, dict) or not isinstance(source.get("value"), str):
            return False
        if source.get("type") == "data":
            if not isinstance(source.get("mimeType"), str):
                return False
        elif source.get("type") != "url":
            return False
    return True


def _merge_reasoning_fan_out(messages: list[Message]) -> list[Message]:
    """``mergeReasoningFanOut``: leading thinking-only messages fold into the next assistant."""

    def thinking_only(message: Message) -> bool:
        parts = message["parts"]
        return (
            message.get("role") == "assistant"
            and len(parts) > 0
            and all(_get_part(p, "type") == "thinking" for p in parts)
        )

    def tool_result_only(message: Message) -> bool:
        parts = message["parts"]
        return (
            message.get("role") == "assistant"
            and any(_get_part(p, "type") == "tool-result" for p in parts)
            and all(_get_part(p, "type") in ("tool-result", "ui-resource") for p in parts)
        )

    out: list[Message] = []
    pending: list[Message] = []
    for message in messages:
        if thinking_only(message):
            pending.append(message)
            continue
        if message.get("role") == "assistant" and pending and not tool_result_only(message):
            thinking = [
                p for m in pending for p in m["parts"] if _get_part(p, "type") == "thinking"
            ]
            out.append({**message, "parts": [*thinking, *message["parts"]]})
            pending = []
            continue
        out.extend(pending)
        pending = []
        out.append(message)
    out.extend(pending)
    return out


def _reconcile_snapshot_tool_calls(
    snapshot: list[Message], previous: list[Message]
) -> list[Message]:
    """``reconcileSnapshotToolCalls``: anchor tool-result-only messages into the message
    with their call, carry calls forward from the previous state, then copy results onto
    calls (``enrichSnapshotToolCallsFromResults``)."""
    previous_calls: dict[Any, dict[str, Any]] = {}
    for message in previous:
        parts = message.get("parts")
        if not isinstance(parts, list):
            raise _JsError("message.parts is not iterable")
        for part in parts:
            if _get_part(part, "type") == "tool-call":
                previous_calls[_key(part.get("id", UNDEF))] = part
    snapshot_call_ids: set[Any] = set()
    for message in snapshot:
        for part in message["parts"]:
            if _get_part(part, "type") == "tool-call":
                snapshot_call_ids.add(_key(part.get("id", UNDEF)))
    reconciled: list[Message] = []
    for message in snapshot:
        parts = message["parts"]
        results = [p for p in parts if _get_part(p, "type") == "tool-result"]
        result = (
            results[0]
            if message.get("role") == "assistant"
            and len(results) == 1
            and all(_get_part(p, "type") in ("tool-result", "ui-resource") for p in parts)
            else None
        )
        if result is None:
            reconciled.append(message)
            continue
        call_id = result.get("toolCallId", UNDEF)
        target = next(
            (
                m
                for m in reversed(reconciled)
                if any(
                    _get_part(p, "type") == "tool-call" and _same(_get_part(p, "id"), call_id)
                    for p in m["parts"]
                )
            ),
            None,
        )
        if target is None:
            target = next(
                (
                    m
                    for m in reversed(reconciled)
                    if m.get("role") == "assistant"
                    and not (
                        len(m["parts"]) == 1
                        and not _nullish(m["parts"][0])
                        and _get_part(m["parts"][0], "type") == "tool-result"
                    )
                ),
                None,
            )
        if target is None:
            reconciled.append(message)
            continue
        target_parts = list(target["parts"])
        if _key(call_id) not in snapshot_call_ids and not any(
            _get_part(p, "type") == "tool-call" and _same(_get_part(p, "id"), call_id)
            for p in target_parts
        ):
            prev = previous_calls.get(_key(call_id))
            if prev is not None:
                target_parts.append(copy.deepcopy(prev))
                snapshot_call_ids.add(_key(prev.get("id", UNDEF)))
        target_parts.extend(parts)
        target["parts"] = target_parts
    return _enrich_tool_calls_from_results(reconciled, previous_calls)


def _enrich_tool_calls_from_results(
    messages: list[Message], previous_calls: dict[Any, dict[str, Any]]
) -> list[Message]:
    results: dict[Any, dict[str, Any]] = {}
    for message in messages:
        for part in message["parts"]:
            if _get_part(part, "type") == "tool-result":
                results[_key(part.get("toolCallId", UNDEF))] = part
    out: list[Message] = []
    for message in messages:
        changed = False
        new_parts: list[Any] = []
        for part in message["parts"]:
            if _get_part(part, "type") != "tool-call":
                new_parts.append(part)
                continue
            prev = previous_calls.get(_key(part.get("id", UNDEF)))
            result = results.get(_key(part.get("id", UNDEF)))
            new = part
            if (
                prev is not None
                and (
                    prev.get("output", UNDEF) is not UNDEF
                    or prev.get("state") in ("complete", "error")
                )
                and (
                    part.get("output", UNDEF) is UNDEF
                    or part.get("state") in ("input-complete", "input-streaming", "awaiting-input")
                )
            ):
                new = {**part}
                if prev.get("output", UNDEF) is not UNDEF:
                    new["output"] = copy.deepcopy(prev["output"])
                new["state"] = prev.get("state", UNDEF)
                if prev.get("approval", UNDEF) is not UNDEF:
                    new["approval"] = copy.deepcopy(prev["approval"])
                if prev.get("metadata", UNDEF) is not UNDEF:
                    new["metadata"] = copy.deepcopy(prev["metadata"])
            if result is not None and new.get("output", UNDEF) is UNDEF:
                content = result.get("content", UNDEF)
                if isinstance(content, list):
                    output: Any = content
                else:
                    try:
                        output = _json_parse(content)
                    except (ValueError, _JsError):
                        output = content
                is_error = result.get("state") == "error"
                error_text = _tool_result_error(output) if is_error else UNDEF
                new = {
                    **new,
                    "output": {"error": error_text} if _truthy(error_text) else output,
                    "state": "error" if is_error else "complete",
                }
            if new is not part:
                changed = True
            new_parts.append(new)
        out.append({**message, "parts": new_parts} if changed else message)
    return out
