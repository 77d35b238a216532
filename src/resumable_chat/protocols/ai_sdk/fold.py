"""History fold for the AI SDK: stored UI message chunks → ``UIMessage`` list.

The fold reproduces what the ``ai`` client's ``processUIMessageStream`` (``ai`` 6.0.x,
``src/ui/process-ui-message-stream.ts``) builds from
the same chunks, so ``GET /api/chat/{id}/messages`` hydrates ``useChat`` with exactly the
messages the browser had: same parts, same states, same key order. Keys the client sets to
``undefined`` (which ``JSON.stringify`` drops) are absent here.

Records (in log order) are chunk dicts plus one record type of this library, written by the
chat core before each answer::

    {"type": "ui-message", "message": <UIMessage>}

It carries the last message of the turn's request: the new user message, the regenerated or
edited user message, or the continued assistant message on a tool-result continuation. The
client holds nothing after that message, so the fold does the same: a message with that
``id`` is replaced and every message after it dropped (a regenerated answer replaces the old
one); an unknown ``id`` is appended. It also ends the current answer, if any.

Answer chunks:

- ``start``: continue the message with ``messageId`` if one exists (new parts are appended),
  else append ``{id, role: "assistant", parts: []}``; without ``messageId`` the last message
  is continued when it is an assistant message (the client's rule), else a new one gets
  ``msg-<position>``. ``messageMetadata`` is deep-merged into ``metadata``
  (``mergeObjects``). Each ``start`` begins a new answer: open text/reasoning parts and
  partial tool calls of the previous one are forgotten.
- Content chunks before any ``start`` continue the last assistant message or create one.
- ``text-*`` / ``reasoning-*``: parts with ``state`` ``"streaming"`` then ``"done"``.
- ``tool-*``: ``tool-<name>`` parts (``dynamic-tool`` with ``dynamic: true``) with states
  ``input-streaming`` → ``input-available`` → ``output-available`` / ``output-error`` (also
  ``approval-requested`` and ``output-denied`` of ``ai`` 6). ``tool-input-delta`` keeps
  ``rawInput`` and a partial-JSON parse of it in ``input``, like the client's
  ``parsePartialJson``.
- ``source-url``, ``source-document``, ``file``: pushed as parts. ``data-*``: pushed, or the
  ``data`` of the part with the same type and ``id`` is replaced; ``transient`` ones are skipped.
- ``start-step`` pushes ``{"type": "step-start"}``; ``finish-step`` forgets open parts.
- ``finish`` / ``message-metadata``: merge ``messageMetadata``; ``finishReason`` is kept in
  :attr:`UIMessageBuilder.finish_reasons`.
- ``error``: the message stays as it is; ``errorText`` is kept in
  :attr:`UIMessageBuilder.errors`, and the rest of that answer is ignored (the client's
  ``Chat`` stops processing the stream at an error chunk). ``abort`` and unknown types are
  ignored.

Robustness: a record that the client would reject (wrong field types, a delta for an unknown
part, an output for an unknown tool call) is skipped; the fold never raises on data.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

from resumable_chat.protocols.ai_sdk.answer_state import (
    _Answer,
    _apply_delta,
    _end_part,
    _get,
    _is_static_tool,
    _is_tool,
    _merge_objects,
    _PartialToolCall,
    _static_tool_name,
    _valid,
)
from resumable_chat.protocols.js_values import UNDEFINED
from resumable_chat.protocols.js_values import coalesce as _coalesce
from resumable_chat.protocols.js_values import export_json as _export
from resumable_chat.protocols.js_values import present as _present
from resumable_chat.protocols.partial_json import ai_sdk_partial_json as _parse_partial_json

__all__ = ["MESSAGE_RECORD_TYPE", "UIMessageBuilder", "fold_ui_messages"]

logger = logging.getLogger("resumable_chat.protocols.ai_sdk_fold")

#: ``type`` of the record the chat core stores before each answer.
MESSAGE_RECORD_TYPE: Final = "ui-message"


Json = Any
Part = dict[str, Any]


class UIMessageBuilder:
    """Incremental fold of stored records into AI SDK ``UIMessage`` dicts.

    Args:
        messages: initial history (``UIMessage`` dicts, copied), e.g. from a snapshot.

    Use :meth:`add` per record (or :meth:`add_all`), then read :attr:`messages`. The behaviour
    is the ``ai`` client's ``processUIMessageStream`` (see the module docstring) plus the
    ``ui-message`` upsert record. Never raises on malformed records: they are skipped.

    Attributes:
        errors: ``{"messageId": str | None, "errorText": str}`` for every ``error`` chunk, in
            order (the messages themselves are left as they were, as in the client).
        failed: ``messageId → errorText`` of the messages whose latest answer ended with an
            ``error`` chunk (a later answer continuing the message, or an upsert of it,
            removes the entry).
        finish_reasons: ``messageId → finishReason`` of the answers that sent one.
    """

    def __init__(self, messages: Iterable[Mapping[str, Any]] | None = None) -> None:
        self._messages: list[dict[str, Any]] = []
        #: index in _messages of the last message with each id (every id here is a string):
        #: a lookup per upsert and per answer must not scan the history (O(messages²) fold)
        self._last: dict[str, int] = {}
        self._answer: _Answer | None = None
        self.errors: list[dict[str, Any]] = []
        self.failed: dict[str, str] = {}
        self.finish_reasons: dict[str, str] = {}
        for message in messages or ():
            self._upsert(message)

    # -- public ------------------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The folded ``UIMessage`` list: fresh deep copies, ``undefined`` members dropped.

        Shapes (AI SDK ``UIMessage``): ``{"id", "metadata"?, "role",
        "parts": [...]}`` for answers (upserted messages keep their own key order).
        """
        return [_export(m) for m in self._messages]

    def add_all(self, records: Iterable[Any]) -> UIMessageBuilder:
        """Fold every record of ``records`` in order (see :meth:`add`). Returns ``self``."""
        for record in records:
            self.add(record)
        return self

    def add(self, record: Any) -> None:
        """Fold one record.

        Args:
            record: a chunk dict (``{"type": ..., ...}``), a ``ui-message`` record, or JSON
                text/bytes of one. Anything unusable (not an object, missing or mistyped
                fields, a delta for an unknown part, an output for an unknown tool call, an
                unknown ``type``) is skipped.
        """
        if isinstance(record, str | bytes | bytearray):
            try:
                record = json.loads(record)
            except ValueError:
                return
        if not isinstance(record, Mapping):
            return
        kind = record.get("type")
        if not isinstance(kind, str):
            return
        try:
            self._dispatch(kind, record)
        except Exception:  # defensive: a bad record must never break the history
            logger.warning("skipped a %r record the fold could not apply", kind, exc_info=True)

    # -- dispatch ----------------------------------------------------------------------------

    def _dispatch(self, kind: str, record: Mapping[str, Any]) -> None:
        if kind == MESSAGE_RECORD_TYPE:
            message = record.get("message")
            if isinstance(message, Mapping):
                self._upsert(message)
            return
        if kind == "start":
            if _valid(record, kind):
                self._start(record)
            return
        if kind == "abort" or not _valid(record, kind):
            return
        handler = _HANDLERS.get(kind)
        if handler is None and not kind.startswith("data-"):
            return
        answer = self._answer
        if answer is not None and answer.failed:
            return
        if answer is None:
            # The client shows a message only once a chunk writes to it: chunks that change
            # nothing visible do not create one.
            if kind == "error":
                self.errors.append({"messageId": None, "errorText": record["errorText"]})
                return
            if kind == "finish-step" or (
                kind in ("finish", "message-metadata")
                and not _present(_get(record, "messageMetadata"))
            ):
                return
            answer = self._open_answer(None)
        if handler is None:
            self._data(answer, record)
        else:
            handler(self, answer, record)

    def _upsert(self, message: Mapping[str, Any]) -> None:
        message_id = message.get("id")
        if not isinstance(message_id, str):
            return
        copied: dict[str, Any] = copy.deepcopy(dict(message))
        if not isinstance(copied.get("parts"), list):
            copied["parts"] = []
        self._answer = None
        self.failed.pop(message_id, None)
        messages = self._messages
        index = self._last.get(message_id)
        if index is None:
            self._last[message_id] = len(messages)
            messages.append(copied)
            return
        messages[index] = copied
        if index + 1 < len(messages):  # a message sent again: what followed it is dropped
            del messages[index + 1 :]
            self._last = {m["id"]: i for i, m in enumerate(messages)}

    def _open_answer(self, message_id: str | None) -> _Answer:
        target: dict[str, Any] | None = None
        if message_id is not None:
            index = self._last.get(message_id)
            if index is not None:
                target = self._messages[index]
        elif self._messages and self._messages[-1].get("role") == "assistant":
            target = self._messages[-1]
        if target is None:
            new_id = message_id if message_id is not None else f"msg-{len(self._messages)}"
            target = {"id": new_id, "metadata": UNDEFINED, "role": "assistant", "parts": []}
            self._last[new_id] = len(self._messages)
            self._messages.append(target)
        self._answer = _Answer(target)
        return self._answer

    # -- chunk handlers ----------------------------------------------------------------------

    def _start(self, record: Mapping[str, Any]) -> None:
        message_id = record.get("messageId")
        answer = self._open_answer(message_id if isinstance(message_id, str) else None)
        target_id = answer.message.get("id")
        if isinstance(target_id, str):
            self.failed.pop(target_id, None)
        self._merge_metadata(answer, _get(record, "messageMetadata"))

    def _merge_metadata(self, answer: _Answer, metadata: Any) -> None:
        if not _present(metadata):
            return
        current = answer.message.get("metadata", UNDEFINED)
        answer.message["metadata"] = (
            _merge_objects(current, metadata) if _present(current) else metadata
        )

    def _text_start(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        part: Part = {
            "type": "text",
            "text": "",
            "providerMetadata": _get(record, "providerMetadata"),
            "state": "streaming",
        }
        answer.active_text[record["id"]] = part
        answer.parts.append(part)

    def _text_delta(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        _apply_delta(answer.active_text, record)

    def _text_end(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        _end_part(answer.active_text, record)

    def _reasoning_start(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        part: Part = {
            "type": "reasoning",
            "id": record["id"],
            "text": "",
            "providerMetadata": _get(record, "providerMetadata"),
            "state": "streaming",
        }
        answer.active_reasoning[record["id"]] = part
        answer.parts.append(part)

    def _reasoning_delta(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        _apply_delta(answer.active_reasoning, record)

    def _reasoning_end(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        _end_part(answer.active_reasoning, record)

    def _file(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        part: Part = {"type": "file", "mediaType": record["mediaType"], "url": record["url"]}
        if _present(_get(record, "providerMetadata")):
            part["providerMetadata"] = record["providerMetadata"]
        answer.parts.append(part)

    def _source_url(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        answer.parts.append(
            {
                "type": "source-url",
                "sourceId": record["sourceId"],
                "url": record["url"],
                "title": _get(record, "title"),
                "providerMetadata": _get(record, "providerMetadata"),
            }
        )

    def _source_document(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        answer.parts.append(
            {
                "type": "source-document",
                "sourceId": record["sourceId"],
                "mediaType": record["mediaType"],
                "title": record["title"],
                "filename": _get(record, "filename"),
                "providerMetadata": _get(record, "providerMetadata"),
            }
        )

    def _data(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        if record.get("transient"):
            return
        data_id = record.get("id")
        if data_id is not None:
            for part in answer.parts:
                if (
                    isinstance(part, dict)
                    and part.get("type") == record["type"]
                    and part.get("id") == data_id
                ):
                    part["data"] = record["data"]
                    return
        # The client pushes the parsed chunk itself; its schema puts the known keys first.
        pushed: Part = {"type": record["type"]}
        for key in ("id", "data", "transient"):
            if key in record:
                pushed[key] = record[key]
        for key, value in record.items():
            if key not in pushed:
                pushed[key] = value
        answer.parts.append(pushed)

    def _start_step(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        answer.parts.append({"type": "step-start"})

    def _finish_step(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        answer.active_text = {}
        answer.active_reasoning = {}

    def _finish(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        reason = record.get("finishReason")
        if isinstance(reason, str):
            message_id = answer.message.get("id")
            if isinstance(message_id, str):
                self.finish_reasons[message_id] = reason
        self._merge_metadata(answer, _get(record, "messageMetadata"))

    def _message_metadata(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        self._merge_metadata(answer, _get(record, "messageMetadata"))

    def _error(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        message_id = answer.message.get("id")
        self.errors.append(
            {
                "messageId": message_id if isinstance(message_id, str) else None,
                "errorText": record["errorText"],
            }
        )
        if isinstance(message_id, str):
            self.failed[message_id] = record["errorText"]
        answer.failed = True

    # -- tool parts (updateToolPart / updateDynamicToolPart) ---------------------------------

    def _update_tool_part(
        self, answer: _Answer, options: dict[str, Any], existing: Part | None = None
    ) -> None:
        part = existing
        if part is None:
            for candidate in answer.current_step_parts():
                if _is_static_tool(candidate) and candidate.get("toolCallId") == options["id"]:
                    part = candidate
                    break
        opt = options.get
        provider_metadata = opt("providerMetadata", UNDEFINED)
        is_result = opt("state") in ("output-available", "output-error")
        if part is not None:
            part["state"] = options["state"]
            part["type"] = f"tool-{options['toolName']}"
            part["input"] = opt("input", UNDEFINED)
            part["output"] = opt("output", UNDEFINED)
            part["errorText"] = opt("errorText", UNDEFINED)
            part["rawInput"] = opt("rawInput", UNDEFINED)
            self._apply_common_update(part, options)
            return
        new: Part = {
            "type": f"tool-{options['toolName']}",
            "toolCallId": options["id"],
            "state": options["state"],
            "title": opt("title", UNDEFINED),
        }
        if opt("toolMetadata", UNDEFINED) is not UNDEFINED:
            new["toolMetadata"] = options["toolMetadata"]
        new["input"] = opt("input", UNDEFINED)
        if _present(opt("inputEncoding", UNDEFINED)):
            new["inputEncoding"] = options["inputEncoding"]
        new["output"] = opt("output", UNDEFINED)
        new["rawInput"] = opt("rawInput", UNDEFINED)
        new["errorText"] = opt("errorText", UNDEFINED)
        new["providerExecuted"] = opt("providerExecuted", UNDEFINED)
        new["preliminary"] = opt("preliminary", UNDEFINED)
        if _present(provider_metadata):
            key = "resultProviderMetadata" if is_result else "callProviderMetadata"
            new[key] = provider_metadata
        answer.parts.append(new)

    def _update_dynamic_tool_part(
        self, answer: _Answer, options: dict[str, Any], existing: Part | None = None
    ) -> None:
        part = existing
        if part is None:
            for candidate in answer.current_step_parts():
                if (
                    candidate.get("type") == "dynamic-tool"
                    and candidate.get("toolCallId") == options["id"]
                ):
                    part = candidate
                    break
        opt = options.get
        provider_metadata = opt("providerMetadata", UNDEFINED)
        is_result = opt("state") in ("output-available", "output-error")
        if part is not None:
            part["state"] = options["state"]
            part["toolName"] = options["toolName"]
            part["input"] = opt("input", UNDEFINED)
            part["output"] = opt("output", UNDEFINED)
            part["errorText"] = opt("errorText", UNDEFINED)
            part["rawInput"] = opt("rawInput", UNDEFINED)
            self._apply_common_update(part, options)
            return
        new: Part = {
            "type": "dynamic-tool",
            "toolName": options["toolName"],
            "toolCallId": options["id"],
            "state": options["state"],
            "input": opt("input", UNDEFINED),
        }
        if _present(opt("inputEncoding", UNDEFINED)):
            new["inputEncoding"] = options["inputEncoding"]
        new["output"] = opt("output", UNDEFINED)
        new["errorText"] = opt("errorText", UNDEFINED)
        new["preliminary"] = opt("preliminary", UNDEFINED)
        new["providerExecuted"] = opt("providerExecuted", UNDEFINED)
        new["title"] = opt("title", UNDEFINED)
        if opt("toolMetadata", UNDEFINED) is not UNDEFINED:
            new["toolMetadata"] = options["toolMetadata"]
        if _present(provider_metadata):
            key = "resultProviderMetadata" if is_result else "callProviderMetadata"
            new[key] = provider_metadata
        answer.parts.append(new)

    @staticmethod
    def _apply_common_update(part: Part, options: dict[str, Any]) -> None:
        opt = options.get
        if _present(opt("inputEncoding", UNDEFINED)):
            part["inputEncoding"] = options["inputEncoding"]
        else:
            part.pop("inputEncoding", None)
        part["preliminary"] = opt("preliminary", UNDEFINED)
        if opt("title", UNDEFINED) is not UNDEFINED:
            part["title"] = options["title"]
        if opt("toolMetadata", UNDEFINED) is not UNDEFINED:
            part["toolMetadata"] = options["toolMetadata"]
        part["providerExecuted"] = _coalesce(
            opt("providerExecuted", UNDEFINED), part.get("providerExecuted", UNDEFINED)
        )
        provider_metadata = opt("providerMetadata", UNDEFINED)
        if _present(provider_metadata):
            if options["state"] in ("output-available", "output-error"):
                part["resultProviderMetadata"] = provider_metadata
            else:
                part["callProviderMetadata"] = provider_metadata

    def _update(
        self, answer: _Answer, dynamic: bool, options: dict[str, Any], existing: Part | None = None
    ) -> None:
        if dynamic:
            self._update_dynamic_tool_part(answer, options, existing)
        else:
            self._update_tool_part(answer, options, existing)

    def _tool_input_start(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        tool_call_id = record["toolCallId"]
        answer.partial_tool_calls[tool_call_id] = _PartialToolCall(
            text="",
            input_encoding=_get(record, "inputEncoding"),
            tool_name=record["toolName"],
            dynamic=_get(record, "dynamic"),
            title=_get(record, "title"),
            tool_metadata=_get(record, "toolMetadata"),
        )
        self._update(
            answer,
            bool(record.get("dynamic")),
            {
                "id": tool_call_id,
                "toolName": record["toolName"],
                "state": "input-streaming",
                "inputEncoding": _get(record, "inputEncoding"),
                "input": UNDEFINED,
                "providerExecuted": _get(record, "providerExecuted"),
                "title": _get(record, "title"),
                "toolMetadata": _get(record, "toolMetadata"),
                "providerMetadata": _get(record, "providerMetadata"),
            },
        )

    def _tool_input_delta(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        partial = answer.partial_tool_calls.get(record["toolCallId"])
        if partial is None:
            return
        partial.text += record["inputTextDelta"]
        value = (
            partial.text if partial.input_encoding == "text" else _parse_partial_json(partial.text)
        )
        self._update(
            answer,
            bool(partial.dynamic),
            {
                "id": record["toolCallId"],
                "toolName": partial.tool_name,
                "state": "input-streaming",
                "inputEncoding": partial.input_encoding,
                "input": value,
                "rawInput": partial.text,
                "title": partial.title,
                "toolMetadata": partial.tool_metadata,
            },
        )

    def _tool_input_available(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        self._update(
            answer,
            bool(record.get("dynamic")),
            {
                "id": record["toolCallId"],
                "toolName": record["toolName"],
                "state": "input-available",
                "input": record["input"],
                "providerExecuted": _get(record, "providerExecuted"),
                "providerMetadata": _get(record, "providerMetadata"),
                "title": _get(record, "title"),
                "toolMetadata": _get(record, "toolMetadata"),
            },
        )

    def _tool_input_error(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        tool_call_id = record["toolCallId"]
        existing = next(
            (
                p
                for p in answer.current_step_parts()
                if _is_tool(p) and p.get("toolCallId") == tool_call_id
            ),
            None,
        )
        dynamic = (
            existing.get("type") == "dynamic-tool"
            if existing is not None
            else bool(record.get("dynamic"))
        )
        common = {
            "id": tool_call_id,
            "toolName": record["toolName"],
            "state": "output-error",
            "errorText": record["errorText"],
            "providerExecuted": _get(record, "providerExecuted"),
            "providerMetadata": _get(record, "providerMetadata"),
            "toolMetadata": _get(record, "toolMetadata"),
        }
        if dynamic:
            self._update_dynamic_tool_part(answer, {**common, "input": record["input"]})
        else:
            self._update_tool_part(
                answer, {**common, "input": UNDEFINED, "rawInput": record["input"]}
            )

    def _tool_approval_request(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        part = answer.find_tool_invocation(record["toolCallId"])
        if part is None:
            return
        part["state"] = "approval-requested"
        approval: dict[str, Any] = {"id": record["approvalId"]}
        if _present(_get(record, "approvalDescriptor")):
            approval["descriptor"] = record["approvalDescriptor"]
        if "inputSchemaInput" in record:
            approval["inputSchemaInput"] = record["inputSchemaInput"]
        if _present(_get(record, "signature")):
            approval["signature"] = record["signature"]
        part["approval"] = approval

    # -- ai 7 chunk types (``processUIMessageStream`` of ``ai`` 7) ---------------------------

    def _custom(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        part: Part = {"type": "custom", "kind": record["kind"]}
        if _present(_get(record, "providerMetadata")):
            part["providerMetadata"] = record["providerMetadata"]
        answer.parts.append(part)

    def _reasoning_file(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        part: Part = {"type": "reasoning-file", "mediaType": record["mediaType"]}
        part["url"] = record["url"]
        if _present(_get(record, "providerMetadata")):
            part["providerMetadata"] = record["providerMetadata"]
        answer.parts.append(part)

    def _steering_message(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        parts = record.get("parts")
        answer.parts.append(
            {"type": "steering-message", "id": record["id"], "parts": _export(parts)}
        )

    def _reset_step(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        """Drop the current step's parts (a step the model restarts)."""
        current = answer.current_step_parts()
        answer.active_text = {}
        answer.active_reasoning = {}
        answer.partial_tool_calls = {}
        if current:
            del answer.parts[len(answer.parts) - len(current) :]

    def _tool_approval_response(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        approval_id = record["approvalId"]
        part = next(
            (
                p
                for p in answer.parts
                if isinstance(p, dict)
                and _is_tool(p)
                and isinstance(p.get("approval"), dict)
                and p["approval"].get("id") == approval_id
            ),
            None,
        )
        if part is None:
            return
        part["state"] = "approval-responded"
        approval = {**part["approval"], "id": approval_id, "approved": record.get("approved")}
        if _present(_get(record, "reason")):
            approval["reason"] = record["reason"]
        part["approval"] = approval
        if _present(_get(record, "providerExecuted")):
            part["providerExecuted"] = record["providerExecuted"]
        if _present(_get(record, "providerMetadata")):
            part["callProviderMetadata"] = record["providerMetadata"]

    def _tool_output_denied(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        part = answer.find_tool_invocation(record["toolCallId"])
        if part is not None:
            part["state"] = "output-denied"

    def _tool_output(self, answer: _Answer, record: Mapping[str, Any]) -> None:
        part = answer.find_tool_invocation(record["toolCallId"])
        if part is None:
            return
        dynamic = part.get("type") == "dynamic-tool"
        is_error = record["type"] == "tool-output-error"
        options: dict[str, Any] = {
            "id": record["toolCallId"],
            "toolName": str(part.get("toolName", "")) if dynamic else _static_tool_name(part),
            "state": "output-error" if is_error else "output-available",
            "input": part.get("input", UNDEFINED),
        }
        if is_error:
            if not dynamic:
                options["rawInput"] = part.get("rawInput", UNDEFINED)
            options["errorText"] = record["errorText"]
        else:
            options["output"] = record["output"]
            options["preliminary"] = _get(record, "preliminary")
        options["providerExecuted"] = _get(record, "providerExecuted")
        options["providerMetadata"] = _get(record, "providerMetadata")
        options["title"] = part.get("title", UNDEFINED)
        options["toolMetadata"] = _coalesce(
            _get(record, "toolMetadata"), part.get("toolMetadata", UNDEFINED)
        )
        self._update(answer, dynamic, options, part)


_HANDLERS: dict[str, Any] = {
    "text-start": UIMessageBuilder._text_start,
    "text-delta": UIMessageBuilder._text_delta,
    "text-end": UIMessageBuilder._text_end,
    "reasoning-start": UIMessageBuilder._reasoning_start,
    "reasoning-delta": UIMessageBuilder._reasoning_delta,
    "reasoning-end": UIMessageBuilder._reasoning_end,
    "file": UIMessageBuilder._file,
    "source-url": UIMessageBuilder._source_url,
    "source-document": UIMessageBuilder._source_document,
    "tool-input-start": UIMessageBuilder._tool_input_start,
    "tool-input-delta": UIMessageBuilder._tool_input_delta,
    "tool-input-available": UIMessageBuilder._tool_input_available,
    "tool-input-error": UIMessageBuilder._tool_input_error,
    "tool-approval-request": UIMessageBuilder._tool_approval_request,
    "tool-output-denied": UIMessageBuilder._tool_output_denied,
    "tool-output-available": UIMessageBuilder._tool_output,
    "tool-output-error": UIMessageBuilder._tool_output,
    "start-step": UIMessageBuilder._start_step,
    "finish-step": UIMessageBuilder._finish_step,
    "finish": UIMessageBuilder._finish,
    "message-metadata": UIMessageBuilder._message_metadata,
    "error": UIMessageBuilder._error,
    "custom": UIMessageBuilder._custom,
    "reasoning-file": UIMessageBuilder._reasoning_file,
    "steering-message": UIMessageBuilder._steering_message,
    "reset-step": UIMessageBuilder._reset_step,
    "tool-approval-response": UIMessageBuilder._tool_approval_response,
}


def fold_ui_messages(records: Iterable[Any]) -> list[dict[str, Any]]:
    """Fold stored records into the AI SDK ``UIMessage`` list the client would show.

    Args:
        records: the chat's records in log order: UI message chunk dicts and
            ``{"type": "ui-message", "message": UIMessage}`` upserts (JSON text is accepted
            too). Malformed records are skipped.

    Returns:
        ``UIMessage`` dicts (``{"id", "metadata"?, "role", "parts"}``), fresh copies, in
        the key order the ``ai`` client produces. Behaviour: ``processUIMessageStream`` of
        ``ai`` 6 (module docstring). Never raises on data.
    """
    return UIMessageBuilder().add_all(records).messages
