"""Port of ``@tanstack/ai``'s message updaters (text, tool-call, tool-result, approval,
thinking and structured-output parts)."""

from __future__ import annotations

import logging
from typing import Any

from resumable_chat.protocols.js_values import UNDEFINED as UNDEF
from resumable_chat.protocols.js_values import JsError as _JsError
from resumable_chat.protocols.js_values import coalesce as _coalesce
from resumable_chat.protocols.js_values import js_get as _get
from resumable_chat.protocols.js_values import js_string as _js_string
from resumable_chat.protocols.js_values import js_stringify as _js_stringify
from resumable_chat.protocols.js_values import nullish as _nullish
from resumable_chat.protocols.js_values import strict_equals as _same
from resumable_chat.protocols.js_values import truthy as _truthy
from resumable_chat.protocols.partial_json import tanstack_partial_json as _parse_partial_json
from resumable_chat.protocols.tanstack.state import FoldState, _get_part, _index_of_type

__all__ = ["MessageUpdaters"]

logger = logging.getLogger("resumable_chat.protocols.tanstack")

Json = Any
Part = dict[str, Any]
Message = dict[str, Any]


class MessageUpdaters(FoldState):
    """The message updaters of ``@tanstack/ai`` (``activities/chat/stream/message-updaters.js``):
    pure updates of one message's parts, applied to every message with the id."""

    def _update_text_part(self, message_id: Any, content: str) -> None:
        for message in self._matching(message_id):
            parts = self._parts(message)
            new_part = {"type": "text", "content": content}
            if parts and _get_part(parts[-1], "type") == "text":
                parts[-1] = new_part
            else:
                parts.append(new_part)
            message["parts"] = parts

    def _update_tool_call_part(self, message_id: Any, call: dict[str, Any]) -> None:
        for message in self._matching(message_id):
            parts = self._parts(message)
            existing = next(
                (
                    p
                    for p in parts
                    if _get_part(p, "type") == "tool-call" and _same(_get_part(p, "id"), call["id"])
                ),
                None,
            )
            old = existing if isinstance(existing, dict) else {}
            metadata = _coalesce(call.get("metadata", UNDEF), old.get("metadata", UNDEF))
            tool_input = _coalesce(call.get("input", UNDEF), old.get("input", UNDEF))
            new_part: Part = {
                "type": "tool-call",
                "id": call["id"],
                "name": call["name"],
                "arguments": call["arguments"],
                "state": call["state"],
            }
            approval = old.get("approval", UNDEF)
            if _truthy(approval):
                new_part["approval"] = dict(approval) if isinstance(approval, dict) else {}
            if old.get("output", UNDEF) is not UNDEF:
                new_part["output"] = old["output"]
            if tool_input is not UNDEF:
                new_part["input"] = tool_input
            if metadata is not UNDEF:
                new_part["metadata"] = metadata
            if existing is not None:
                parts[next(i for i, p in enumerate(parts) if p is existing)] = new_part
            else:
                parts.append(new_part)
            message["parts"] = parts

    def _update_tool_result_part(
        self, message_id: Any, tool_call_id: Any, content: Any, state: str, error: Any
    ) -> None:
        for message in self._matching(message_id):
            parts = self._parts(message)
            index = next(
                (
                    i
                    for i, p in enumerate(parts)
                    if _get_part(p, "type") == "tool-result"
                    and _same(_get_part(p, "toolCallId"), tool_call_id)
                ),
                -1,
            )
            new_part: Part = {
                "type": "tool-result",
                "toolCallId": tool_call_id,
                "content": content,
                "state": state,
            }
            if _truthy(error):
                new_part["error"] = error
            if index >= 0:
                parts[index] = new_part
            else:
                parts.append(new_part)
            message["parts"] = parts

    def _update_tool_call_approval(
        self, message_id: Any, tool_call_id: Any, approval_id: Any
    ) -> None:
        for message in self._matching(message_id):
            parts = self._parts(message)
            for index, part in enumerate(parts):
                if _get_part(part, "type") == "tool-call" and _same(
                    _get_part(part, "id"), tool_call_id
                ):
                    parts[index] = {
                        **part,
                        "state": "approval-requested",
                        "approval": {"id": approval_id, "needsApproval": True},
                    }
                    break
            message["parts"] = parts

    def _update_tool_call_with_output(self, tool_call_id: Any, output: Any, state: Any) -> None:
        for message in self._messages:
            parts = self._parts(message)
            for index, part in enumerate(parts):
                if _get_part(part, "type") == "tool-call" and _same(
                    _get_part(part, "id"), tool_call_id
                ):
                    parts[index] = {
                        **part,
                        "output": output,
                        "state": state if not _nullish(state) else "complete",
                    }
                    break
            message["parts"] = parts

    def _update_thinking_part(
        self, message_id: Any, step_id: Any, content: Any, signature: Any
    ) -> None:
        for message in self._matching(message_id):
            parts = self._parts(message)
            index = next(
                (
                    i
                    for i, p in enumerate(parts)
                    if _get_part(p, "type") == "thinking" and _same(_get_part(p, "stepId"), step_id)
                ),
                -1,
            )
            new_part: Part = {"type": "thinking", "content": content, "stepId": step_id}
            if _truthy(signature):
                new_part["signature"] = signature
            if index >= 0:
                parts[index] = new_part
            else:
                parts.append(new_part)
            message["parts"] = parts

    # -- structured output (``message-updaters.js``) -----------------------------------------

    def _append_structured_delta(self, message_id: Any, delta: str) -> None:
        for message in self._matching(message_id):
            parts = self._parts(message)
            index = _index_of_type(parts, "structured-output")
            existing = parts[index] if index >= 0 else None
            old = existing if isinstance(existing, dict) else {}
            raw = _js_string(_coalesce(old.get("raw", UNDEF), "")) + delta
            progressive = _parse_partial_json(raw)
            partial = progressive if not _nullish(progressive) else old.get("partial", UNDEF)
            new_part: Part = {"type": "structured-output", "status": "streaming", "raw": raw}
            if partial is not UNDEF:
                new_part["partial"] = partial
            if old.get("reasoning", UNDEF) is not UNDEF:
                new_part["reasoning"] = old["reasoning"]
            if index >= 0:
                parts[index] = new_part
            else:
                parts.append(new_part)
            message["parts"] = parts

    def _complete_structured(self, message_id: Any, data: Any, raw: Any, reasoning: Any) -> None:
        for message in self._matching(message_id):
            parts = self._parts(message)
            index = _index_of_type(parts, "structured-output")
            existing_raw = _get(parts[index], "raw") if index >= 0 else ""
            resolved_raw = raw if _truthy(raw) else existing_raw
            if _same(resolved_raw, "") and data is not UNDEF:
                try:
                    resolved_raw = _js_stringify(data)
                except _JsError:
                    pass
            new_part: Part = {
                "type": "structured-output",
                "status": "complete",
                "data": data,
                "partial": data,
                "raw": resolved_raw,
            }
            if reasoning is not UNDEF:
                new_part["reasoning"] = reasoning
            if index >= 0:
                parts[index] = new_part
            else:
                parts.append(new_part)
            message["parts"] = parts

    def _error_structured(self, message_id: Any, error_message: Any) -> None:
        for message in self._matching(message_id):
            parts = self._parts(message)
            index = _index_of_type(parts, "structured-output")
            if index < 0:
                parts.append(
                    {
                        "type": "structured-output",
                        "status": "error",
                        "raw": "",
                        "errorMessage": error_message,
                    }
                )
                message["parts"] = parts
                continue
            existing = parts[index]
            if _get(existing, "status") == "complete":
                continue
            parts[index] = {**existing, "status": "error", "errorMessage": error_message}
            message["parts"] = parts
