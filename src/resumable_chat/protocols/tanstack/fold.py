"""History fold for TanStack AI: stored ``StreamChunk`` dicts → ``UIMessage`` list.

This reproduces ``StreamProcessor.processChunk`` followed by ``getMessages()`` of
``@tanstack/ai`` 0.58.0 (``dist/esm/activities/chat/stream/processor.js``,
``message-updaters.js`` and ``activities/chat/messages.js``; the processor that
``@tanstack/ai-client`` 0.33.2 exports), i.e. what ``@s2-dev/resumable-stream`` 2.1.0 puts
into the ``MESSAGES_SNAPSHOT`` of a first load (``reference`` §5.6), and what a TanStack
client shows after seeing the same chunks. Checked chunk-for-chunk against the real
processor (``tests/js/tanstack_fold.mjs``): same messages, parts, part states, key order.

Messages are ``{"id", "role", "parts", "createdAt", "metadata"?}`` with ``createdAt`` an
ISO-8601 string (``Date.toISOString()`` format). Parts (``reference/wire-protocols.md``
§B.8): ``{"type": "text", "content"}``, ``{"type": "thinking", "content", "stepId",
"signature"?}``, ``{"type": "tool-call", "id", "name", "arguments", "state", "approval"?,
"output"?, "input"?, "metadata"?}``, ``{"type": "tool-result", "toolCallId", "content",
"state", "error"?}``, ``{"type": "structured-output", ...}``, ``{"type": "ui-resource",
...}``, and whatever a ``MESSAGES_SNAPSHOT`` carried.

What the processor does, in short (the module's handlers follow the JavaScript one by one):

- ``TEXT_MESSAGE_START {messageId, role}``: a new id appends ``{id, role, parts: [],
  createdAt}`` (roles other than ``user``/``system`` become ``assistant``); a known id is
  continued. If an assistant message was created lazily before (see below), this chunk
  *renames* that message to ``messageId`` instead, whatever ``role`` says.
- ``TEXT_MESSAGE_CONTENT``: appended to the text segment of the message with that id, else
  of the active assistant message, else of an existing message (rehydrated from its last
  text part), else of a new assistant message. The last part is replaced while it is a text
  part; text after a tool call starts a new text part.
- ``TOOL_CALL_START`` (``toolCallName``; ``toolName`` is not read by 0.58) /
  ``TOOL_CALL_ARGS`` / ``TOOL_CALL_END {input?}``: tool-call parts with states
  ``awaiting-input`` → ``input-streaming`` → ``input-complete``. ``TOOL_CALL_END`` does **not**
  read ``result`` any more (``toWireChunk`` turns it into a ``TOOL_CALL_RESULT`` on the way
  out of a TanStack server; a chunk stored with ``result`` keeps no result here, exactly as
  in the processor).
- ``TOOL_CALL_RESULT {toolCallId, content}``: ``output`` (``JSON.parse`` of ``content`` or
  the string) and state ``complete`` / ``error`` on the call, plus a tool-result part.
- ``REASONING_MESSAGE_CONTENT``: thinking parts keyed by step (``STEP_STARTED.stepName``,
  else the reasoning ``messageId``); ``REASONING_ENCRYPTED_VALUE`` / ``STEP_FINISHED
  {signature}``: signatures.
- ``CUSTOM``: ``approval-requested`` (state ``approval-requested`` + ``approval``),
  ``structured-output.start`` / ``.complete``, ``ui-resource``; others change nothing.
- ``RUN_STARTED`` / ``RUN_FINISHED`` (``outcome`` interrupts of kind approval) /
  ``RUN_ERROR``: when the last active run finishes, open tool calls are completed and,
  unless ``finishReason`` is ``tool_calls``, the stream is finalised: a last assistant
  message whose parts are all whitespace-only text is **removed** (not after an error).
  ``RUN_ERROR`` ensures an assistant message exists (possibly a new, empty one).
- ``MESSAGES_SNAPSHOT``: replaces the transcript (AG-UI wire messages are converted,
  entries with ``parts`` are kept), clears all stream state.
- Anything else (``STATE_*``, ``REASONING_START``..., unknown types): no effect.

Differences from the JavaScript, all deliberate:

- Clock: ``createdAt`` of messages created by chunks is ``now_ms`` (the processor uses the
  time it processes the chunk); with ``created_at_from_chunks=True`` it is the creating
  chunk's ``timestamp`` when that is a valid millisecond time, so every fold of the same
  log gives the same ``createdAt``.
- Generated ids: where the processor makes ``msg-<Date.now()>-<random>`` (a ``RUN_ERROR``
  with no assistant message, content for an unknown message, a ``STEP_STARTED`` without
  ``stepName``), the fold makes ``msg-<the chunk's timestamp>-f<counter>`` (``now_ms`` for
  a chunk without one): two folds of one log give the same ids, whatever their clock.
- Dates in snapshots are parsed with the ECMAScript date-time string grammar (what
  ``new Date(string)`` accepts in ISO form, including V8's day overflow); V8's legacy
  formats (``"Jan 1 2024"``) are treated as invalid, date-times without an offset as UTC.
- Malformed chunks never raise. A chunk whose handler would throw in JavaScript (e.g. a
  ``MESSAGES_SNAPSHOT`` without ``messages``) is abandoned at the same point, keeping the
  state changes made before it, like a client that catches the error. Values of wrong JSON
  types are compared with JavaScript's ``===`` semantics; text is concatenated as strings
  (numbers and booleans are converted like ``String()``, objects make the chunk be skipped).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from resumable_chat.protocols.js_values import UNDEFINED as UNDEF
from resumable_chat.protocols.js_values import JsError as _JsError
from resumable_chat.protocols.js_values import clone_json as _clone
from resumable_chat.protocols.js_values import coalesce as _coalesce
from resumable_chat.protocols.js_values import coerce_created_at as _coerce_created_at
from resumable_chat.protocols.js_values import export_json as _export
from resumable_chat.protocols.js_values import is_record as _is_record
from resumable_chat.protocols.js_values import iso_from_ms as _iso_from_ms
from resumable_chat.protocols.js_values import js_get as _get
from resumable_chat.protocols.js_values import js_string as _js_string
from resumable_chat.protocols.js_values import js_stringify as _js_stringify
from resumable_chat.protocols.js_values import js_trim as _js_trim
from resumable_chat.protocols.js_values import json_parse as _json_parse
from resumable_chat.protocols.js_values import nullish as _nullish
from resumable_chat.protocols.js_values import same_value_zero_key as _key
from resumable_chat.protocols.js_values import strict_equals as _same
from resumable_chat.protocols.js_values import truthy as _truthy
from resumable_chat.protocols.js_values import valid_ms as _valid_ms
from resumable_chat.protocols.partial_json import tanstack_partial_json as _parse_partial_json

__all__ = ["TanStackMessageBuilder", "fold_tanstack_messages"]

logger = logging.getLogger("resumable_chat.protocols.tanstack_fold")

Json = Any
Part = dict[str, Any]
Message = dict[str, Any]


# -- metadata helpers (``utilities/merge-metadata.js``) -----------------------------------------


def _tanstack_metadata(value: object) -> Any:
    """``tanstackMetadata(value)``: ``value.metadata.tanstack`` (or ``value.tanstack``)."""
    if _nullish(value):
        return UNDEF
    if not isinstance(value, dict):
        if isinstance(value, str | int | float):
            raise _JsError("'in' on a primitive")
        return UNDEF
    nested = value.get("metadata", UNDEF)
    source = nested if _is_record(nested) else value
    tanstack = source.get("tanstack", UNDEF)
    return tanstack if _is_record(tanstack) else UNDEF


def _merge_metadata(current: Any, incoming: Any) -> Any:
    if _nullish(incoming):
        return current
    if _nullish(current):
        return dict(incoming) if isinstance(incoming, dict) else incoming
    merged = {**current, **incoming}
    if _is_record(current.get("tanstack")) and _is_record(incoming.get("tanstack")):
        merged["tanstack"] = {**current["tanstack"], **incoming["tanstack"]}
    return merged


# -- per-message stream state ------------------------------------------------------------------


class _ToolCallState:
    __slots__ = ("arguments", "id", "metadata", "name", "state")

    def __init__(self, call_id: Any, name: Any, metadata: Any) -> None:
        self.id = call_id
        self.name = name
        self.arguments = ""
        self.state = "awaiting-input"
        self.metadata = metadata


class _MessageState:
    __slots__ = (
        "current_segment",
        "current_thinking_step",
        "has_seen_reasoning",
        "has_tool_calls_since_text_start",
        "id",
        "is_complete",
        "last_emitted",
        "role",
        "thinking_signatures",
        "thinking_steps",
        "tool_calls",
    )

    def __init__(self, message_id: Any, role: Any) -> None:
        self.id = message_id
        self.role = role
        self.current_segment = ""
        self.last_emitted = ""
        self.has_seen_reasoning = False
        self.thinking_steps: dict[Any, tuple[Any, str]] = {}
        self.thinking_signatures: dict[Any, Any] = {}
        self.current_thinking_step: Any = None
        self.tool_calls: dict[Any, _ToolCallState] = {}
        self.has_tool_calls_since_text_start = False
        self.is_complete = False


# -- the builder -------------------------------------------------------------------------------

_Handler = Callable[["TanStackMessageBuilder", dict[str, Any]], None]

#: ``INTERRUPT_BINDING_METADATA_KEY`` of ``@tanstack/ai`` (``interrupt-resume.js``).
_BINDING_KEY: Final = "tanstack:interruptBinding"


class TanStackMessageBuilder:
    """Incremental TanStack ``StreamProcessor``: feed chunks, read the messages.

    Args:
        now_ms: the processor's clock in milliseconds since the epoch: ``createdAt`` of the
            messages chunks create (and the time part of ids generated for chunks without a
            ``timestamp``). ``None`` reads the system clock once, when the builder is made.
        created_at_from_chunks: use the creating chunk's ``timestamp`` (ms) as ``createdAt``
            when it is a valid time, instead of ``now_ms``; makes repeated folds of one log
            identical.
        messages: initial messages (``StreamProcessor({initialMessages})``), copied.

    Attributes:
        finish_reason: the processor's ``finishReason`` (the last ``RUN_FINISHED``'s, reset
            by ``MESSAGES_SNAPSHOT``), ``None`` if none.
        done: the processor's ``isDone`` (a run finished with no other run active).
        has_error: a ``RUN_ERROR`` was seen since the last ``MESSAGES_SNAPSHOT``.
        failed: ``messageId → error text`` of every message a ``RUN_ERROR`` landed in (the
            error's ``message``, else ``error.message``); not part of the processor's state
            (kept across ``MESSAGES_SNAPSHOT`` s).
    """

    def __init__(
        self,
        *,
        now_ms: int | None = None,
        created_at_from_chunks: bool = False,
        messages: Iterable[Message] | None = None,
    ) -> None:
        self.now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        self.created_at_from_chunks = created_at_from_chunks
        self._messages: list[Message] = [copy.deepcopy(m) for m in (messages or [])]
        # _matching's answers for string ids, valid while _messages is this very list at
        # this length and no message id changed (see _matching).
        self._match_list: list[Message] | None = None
        self._match_len = 0
        self._match_cache: dict[str, list[Message]] = {}
        self._states: dict[Any, _MessageState] = {}
        self._active: dict[Any, Any] = {}
        self._tool_call_to_message: dict[Any, Any] = {}
        self._pending_manual_id: Any = None
        self._pending_thinking_step: Any = None
        self._structured: dict[Any, Any] = {}
        self._active_runs: dict[Any, None] = {}
        self._generated = 0
        self._chunk_stamp: int | None = None
        self.finish_reason: Any = None
        self.has_error = False
        self.failed: dict[str, str] = {}
        self.done = False

    # -- public API ------------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """The current messages, as ``JSON.parse(JSON.stringify(getMessages()))`` would give
        them: fresh copies, ``undefined`` members dropped, key order as the processor's."""
        exported: list[Message] = _export(self._messages)
        return exported

    def add(self, chunk: object) -> TanStackMessageBuilder:
        """Process one chunk (``processChunk``).

        Args:
            chunk: a ``StreamChunk`` dict (or its JSON text). Anything that is not an object
                with a string ``type`` is ignored.

        Returns:
            ``self``. Never raises on data: a chunk the processor would choke on is
            abandoned where it would throw (module docstring).
        """
        if isinstance(chunk, str | bytes | bytearray):
            try:
                chunk = json.loads(chunk)
            except ValueError:
                return self
        if not isinstance(chunk, dict):
            return self
        kind = chunk.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return self
        self._chunk_stamp = _valid_ms(chunk.get("timestamp"))
        try:
            handler(self, _clone(chunk))
        except (_JsError, ValueError, TypeError, KeyError, RecursionError):
            logger.debug("chunk %s abandoned: the client would throw on it", kind, exc_info=True)
        return self

    def add_all(self, chunks: Iterable[object]) -> TanStackMessageBuilder:
        """Process every chunk in order (``add``); returns ``self``."""
        for chunk in chunks:
            self.add(chunk)
        return self

    # -- clock and ids ---------------------------------------------------------------------

    def _now_iso(self) -> str:
        stamp = self._chunk_stamp if self.created_at_from_chunks else None
        return _iso_from_ms(self.now_ms if stamp is None else stamp)

    def _generate_id(self) -> str:
        """Stands in for ``generateMessageId()`` (``msg-<ms>-<random>``), deterministically:
        ``msg-<the chunk's timestamp, else now_ms>-f<n-th id of this fold>``."""
        stamp = self.now_ms if self._chunk_stamp is None else self._chunk_stamp
        generated = f"msg-{stamp}-f{self._generated}"
        self._generated += 1
        return generated

    # -- message list helpers --------------------------------------------------------------

    def _find(self, message_id: Any) -> Message | None:
        """``messages.find(m => m.id === messageId)``."""
        if isinstance(message_id, str):  # the common case, without the general comparison
            return next((m for m in self._messages if m.get("id") == message_id), None)
        return next((m for m in self._messages if _same(m.get("id", UNDEF), message_id)), None)

    def _matching(self, message_id: Any) -> list[Message]:
        """Every message with that id (the processor's updates map over all of them).

        String ids are answered from a cache (one scan per id instead of one per chunk:
        the fold of a long history was O(messages × chunks)). The cache is dropped when
        ``_messages`` is replaced or changes length, and when a message id is rewritten.
        Callers must not mutate the returned list.
        """
        if isinstance(message_id, str):
            messages = self._messages
            if messages is not self._match_list or len(messages) != self._match_len:
                self._match_list, self._match_len = messages, len(messages)
                self._match_cache = {}
            found = self._match_cache.get(message_id)
            if found is None:
                found = [m for m in messages if m.get("id") == message_id]
                self._match_cache[message_id] = found
            return found
        return [m for m in self._messages if _same(m.get("id", UNDEF), message_id)]

    @staticmethod
    def _parts(message: Message) -> list[Any]:
        parts = message.get("parts", UNDEF)
        if not isinstance(parts, list):
            raise _JsError("message.parts is not an array")
        return list(parts)

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

    # -- stream state ----------------------------------------------------------------------

    def _create_state(self, message_id: Any, role: Any) -> _MessageState:
        state = _MessageState(message_id, role)
        self._states[_key(message_id)] = state
        return state

    def _state(self, message_id: Any) -> _MessageState | None:
        return self._states.get(_key(message_id))

    def _activate(self, message_id: Any) -> None:
        self._active.setdefault(_key(message_id), message_id)

    def _active_assistant_id(self) -> Any:
        """``getActiveAssistantMessageId``: the newest active assistant, else the newest
        assistant with stream state, else ``None``."""
        for key in reversed(list(self._active)):
            state = self._states.get(key)
            if state is not None and state.role == "assistant":
                return self._active[key]
        for state in reversed(list(self._states.values())):
            if state.role == "assistant":
                return state.id
        return None

    def _resume(self, message_id: Any, state: _MessageState) -> None:
        self._activate(message_id)
        if state.is_complete or self.done:
            state.is_complete = False
            self.done = False

    def _ensure_assistant(self, preferred: Any = UNDEF) -> tuple[Any, _MessageState]:
        """``ensureAssistantMessage``: the message content without a known target goes to."""
        if _truthy(preferred):
            state = self._state(preferred)
            if state is not None:
                self._resume(preferred, state)
                return preferred, state
        active_id = self._active_assistant_id()
        if _truthy(active_id):
            state = self._state(active_id)
            if state is not None:
                self._resume(active_id, state)
                return active_id, state
        if _truthy(preferred):
            existing = self._find(preferred)
            if existing is not None:
                state = self._create_state(preferred, existing.get("role", UNDEF))
                self._activate(preferred)
                parts = existing.get("parts")
                last = parts[-1] if isinstance(parts, list) and parts else None
                if last is not None and _get_part(last, "type") == "text":
                    text = _js_string(_get(last, "content"))
                    state.current_segment = text
                    state.last_emitted = text
                return preferred, state
        message_id = preferred if _truthy(preferred) else self._generate_id()
        self._messages.append(
            {"id": message_id, "role": "assistant", "parts": [], "createdAt": self._now_iso()}
        )
        state = self._create_state(message_id, "assistant")
        self._activate(message_id)
        self._pending_manual_id = message_id
        return message_id, state

    def _merge_message_metadata(self, message_id: Any, incoming: Any) -> None:
        """``mergeMessageMetadata``: chunk ``metadata`` onto the message (``tanstack``
        deep-merged; ``tanstack.content``/``args`` dropped; ``tanstack.createdAt`` applied)."""
        if not _is_record(incoming):
            return
        message = self._find(message_id)
        if message is None:
            return
        incoming_tanstack = _tanstack_metadata(incoming)
        to_merge = incoming
        if _is_record(incoming_tanstack) and (
            "content" in incoming_tanstack or "args" in incoming_tanstack
        ):
            to_merge = {
                **incoming,
                "tanstack": {
                    k: v for k, v in incoming_tanstack.items() if k not in ("content", "args")
                },
            }
        metadata = _merge_metadata(message.get("metadata", UNDEF), to_merge)
        tanstack = _tanstack_metadata(incoming)
        created_at = _coerce_created_at(_get(tanstack, "createdAt") if tanstack else UNDEF)
        for target in self._matching(message_id):
            if metadata is not UNDEF:
                target["metadata"] = metadata
            if created_at is not None:
                target["createdAt"] = created_at

    def _emit_text(self, message_id: Any) -> None:
        state = self._state(message_id)
        if state is None:
            return
        state.last_emitted = state.current_segment
        self._update_text_part(message_id, state.current_segment)

    def _complete_tool_call(self, message_id: Any, call: _ToolCallState) -> None:
        call.state = "input-complete"
        strict_ok = False
        parsed: Any = UNDEF
        try:
            parsed = _json_parse(call.arguments)
            strict_ok = True
        except (ValueError, _JsError):
            pass
        if self._tool_call_part_has_state(call.id, ("error",)):
            return
        if self._tool_call_part_has_state(call.id, ("approval-requested", "approval-responded")):
            return
        update: dict[str, Any] = {
            "id": call.id,
            "name": call.name,
            "arguments": call.arguments,
            "state": "input-complete",
        }
        if strict_ok:
            update["input"] = parsed
        if call.metadata is not UNDEF:
            update["metadata"] = call.metadata
        self._update_tool_call_part(message_id, update)

    def _tool_call_part_has_state(self, tool_call_id: Any, states: tuple[str, ...]) -> bool:
        for message in self._messages:
            parts = message.get("parts")
            if not isinstance(parts, list):
                continue
            for part in parts:
                if (
                    _get_part(part, "type") == "tool-call"
                    and _same(_get_part(part, "id"), tool_call_id)
                    and _get_part(part, "state") in states
                ):
                    return True
        return False

    def _complete_tool_calls_for(self, message_id: Any) -> None:
        state = self._state(message_id)
        if state is None:
            return
        for call in list(state.tool_calls.values()):
            if call.state != "input-complete":
                self._complete_tool_call(message_id, call)

    def _complete_all_tool_calls(self) -> None:
        for message_id in list(self._active.values()):
            self._complete_tool_calls_for(message_id)

    def _reset_stream_state(self) -> None:
        self._states.clear()
        self._active.clear()
        self._active_runs.clear()
        self._tool_call_to_message.clear()
        self._structured.clear()
        self._pending_manual_id = None
        self._pending_thinking_step = None
        self.finish_reason = None
        self.has_error = False
        self.done = False

    def _finalize(self) -> None:
        """``finalizeStream``: complete calls, flush text, drop a whitespace-only answer."""
        self.done = True
        last: tuple[Any, Any] | None = None
        for message_id in list(self._active.values()):
            state = self._state(message_id)
            if state is None:
                continue
            self._complete_tool_calls_for(message_id)
            if state.current_segment != state.last_emitted:
                self._emit_text(message_id)
            state.is_complete = True
            message = self._find(message_id)
            if message is not None and message.get("role") == "assistant":
                # The processor keeps the message object it found; later updates replace
                # objects, so it checks this (possibly stale) version of the parts.
                last = (message.get("id", UNDEF), message.get("parts"))
        for message_id in list(self._structured.values()):
            self._error_structured(message_id, "Stream ended without structured-output.complete")
        self._structured.clear()
        self._active.clear()
        if last is not None and not self.has_error:
            last_id, parts = last
            if _whitespace_only(parts):
                self._messages = [
                    m for m in self._messages if not _same(m.get("id", UNDEF), last_id)
                ]

    # -- handlers: text --------------------------------------------------------------------

    def _text_message_start(self, chunk: dict[str, Any]) -> None:
        message_id = chunk.get("messageId", UNDEF)
        role = chunk.get("role", UNDEF)
        ui_role = role if role in ("user", "system") and isinstance(role, str) else "assistant"
        if _truthy(self._pending_manual_id):
            pending_id = self._pending_manual_id
            self._pending_manual_id = None
            if not _same(pending_id, message_id):
                for message in self._matching(pending_id):
                    message["id"] = message_id
                self._match_cache = {}
                moved = self._states.pop(_key(pending_id), None)
                if moved is not None:
                    moved.id = message_id
                    self._states[_key(message_id)] = moved
                self._active.pop(_key(pending_id), None)
                self._activate(message_id)
                for call_key, owner in list(self._tool_call_to_message.items()):
                    if _same(owner[0], pending_id):
                        self._tool_call_to_message[call_key] = (message_id, owner[1])
            state = self._state(message_id)
            if state is None:
                self._create_state(message_id, ui_role)
                self._activate(message_id)
            elif state.has_tool_calls_since_text_start:
                self._start_new_segment(message_id, state)
            self._merge_message_metadata(message_id, chunk.get("metadata", UNDEF))
            return
        if self._find(message_id) is not None:
            self._activate(message_id)
            state = self._state(message_id)
            if state is None:
                self._create_state(message_id, ui_role)
            elif state.has_tool_calls_since_text_start:
                self._start_new_segment(message_id, state)
            self._merge_message_metadata(message_id, chunk.get("metadata", UNDEF))
            return
        self._messages.append(
            {"id": message_id, "role": ui_role, "parts": [], "createdAt": self._now_iso()}
        )
        self._create_state(message_id, ui_role)
        self._activate(message_id)
        self._merge_message_metadata(message_id, chunk.get("metadata", UNDEF))

    def _start_new_segment(self, message_id: Any, state: _MessageState) -> None:
        if state.current_segment != state.last_emitted:
            self._emit_text(message_id)
        state.current_segment = ""
        state.last_emitted = ""
        state.has_tool_calls_since_text_start = False

    def _text_message_content(self, chunk: dict[str, Any]) -> None:
        raw_delta = chunk.get("delta", UNDEF)
        delta = _js_string(raw_delta) if _truthy(raw_delta) else ""
        message_id, state = self._ensure_assistant(chunk.get("messageId", UNDEF))
        self._merge_message_metadata(message_id, chunk.get("metadata", UNDEF))
        if _key(message_id) in self._structured:
            if delta != "":
                self._append_structured_delta(message_id, delta)
            return
        if state.has_tool_calls_since_text_start and len(state.current_segment) > 0:
            if state.current_segment != state.last_emitted:
                self._emit_text(message_id)
            state.current_segment = ""
            state.last_emitted = ""
        state.has_tool_calls_since_text_start = False
        state.current_segment = state.current_segment + delta
        if state.current_segment != state.last_emitted:
            self._emit_text(message_id)

    def _text_message_end(self, chunk: dict[str, Any]) -> None:
        message_id = chunk.get("messageId", UNDEF)
        self._merge_message_metadata(message_id, chunk.get("metadata", UNDEF))
        state = self._state(message_id)
        if state is None or state.is_complete:
            return
        if state.current_segment != state.last_emitted:
            self._emit_text(message_id)

    # -- handlers: tool calls --------------------------------------------------------------

    def _tool_call_start(self, chunk: dict[str, Any]) -> None:
        target = _coalesce(chunk.get("parentMessageId", UNDEF), self._active_assistant_id())
        message_id, state = self._ensure_assistant(_coalesce(target, UNDEF))
        state.has_tool_calls_since_text_start = True
        tool_call_id = chunk.get("toolCallId", UNDEF)
        if state.tool_calls.get(_key(tool_call_id)) is not None:
            return
        name = chunk.get("toolCallName", UNDEF)
        metadata = chunk.get("metadata", UNDEF)
        state.tool_calls[_key(tool_call_id)] = _ToolCallState(tool_call_id, name, metadata)
        self._tool_call_to_message[_key(tool_call_id)] = (message_id, tool_call_id)
        update: dict[str, Any] = {
            "id": tool_call_id,
            "name": name,
            "arguments": "",
            "state": "awaiting-input",
        }
        if metadata is not UNDEF:
            update["metadata"] = metadata
        self._update_tool_call_part(message_id, update)

    def _owner(self, tool_call_id: Any) -> tuple[Any, _MessageState, _ToolCallState] | None:
        owner = self._tool_call_to_message.get(_key(tool_call_id))
        if owner is None or not _truthy(owner[0]):
            return None
        state = self._state(owner[0])
        if state is None:
            return None
        call = state.tool_calls.get(_key(tool_call_id))
        if call is None:
            return None
        return owner[0], state, call

    def _tool_call_args(self, chunk: dict[str, Any]) -> None:
        owner = self._owner(chunk.get("toolCallId", UNDEF))
        if owner is None:
            return
        message_id, _, call = owner
        raw_delta = chunk.get("delta", UNDEF)
        delta = _js_string(raw_delta) if _truthy(raw_delta) else ""
        was_awaiting = call.state == "awaiting-input"
        call.arguments += delta
        if was_awaiting and _truthy(raw_delta):
            call.state = "input-streaming"
        self._update_tool_call_part(
            message_id,
            {"id": call.id, "name": call.name, "arguments": call.arguments, "state": call.state},
        )

    def _tool_call_end(self, chunk: dict[str, Any]) -> None:
        tool_call_id = chunk.get("toolCallId", UNDEF)
        owner = self._tool_call_to_message.get(_key(tool_call_id))
        if owner is None or not _truthy(owner[0]):
            return
        message_id = owner[0]
        state = self._state(message_id)
        if state is None:
            return
        tool_input = chunk.get("input", UNDEF)
        if tool_input is UNDEF:
            tanstack = _tanstack_metadata(chunk)
            tool_input = UNDEF if tanstack is UNDEF else _get(tanstack, "input")
        call = state.tool_calls.get(_key(tool_call_id))
        if call is None or call.state == "input-complete":
            return
        if tool_input is not UNDEF and not call.arguments:
            try:
                call.arguments = _js_stringify(tool_input)
            except _JsError:
                pass
        self._complete_tool_call(message_id, call)
        if tool_input is not UNDEF:
            update: dict[str, Any] = {
                "id": call.id,
                "name": call.name,
                "arguments": call.arguments,
                "state": "input-complete",
                "input": tool_input,
            }
            if call.metadata is not UNDEF:
                update["metadata"] = call.metadata
            self._update_tool_call_part(message_id, update)

    def _tool_call_result(self, chunk: dict[str, Any]) -> None:
        tool_call_id = chunk.get("toolCallId", UNDEF)
        owner = self._tool_call_to_message.get(_key(tool_call_id))
        message_id: Any = owner[0] if owner is not None else UNDEF
        if _nullish(message_id):
            for message in self._messages:
                parts = self._parts(message)
                if any(
                    _get_part(p, "type") == "tool-call" and _same(_get_part(p, "id"), tool_call_id)
                    for p in parts
                ):
                    message_id = message.get("id", UNDEF)
                    break
        if not _truthy(message_id):
            return
        tanstack = _tanstack_metadata(chunk)
        is_error = chunk.get("state") == "output-error" or (
            tanstack is not UNDEF and _get(tanstack, "state") == "output-error"
        )
        content = chunk.get("content", UNDEF)
        try:
            output = _json_parse(content)
        except (ValueError, _JsError):
            output = content
        self._update_tool_call_with_output(tool_call_id, output, "error" if is_error else UNDEF)
        result_state = "error" if is_error else "complete"
        self._update_tool_result_part(
            message_id,
            tool_call_id,
            content,
            result_state,
            _tool_result_error(output) if is_error else UNDEF,
        )

    # -- handlers: runs --------------------------------------------------------------------

    def _run_started(self, chunk: dict[str, Any]) -> None:
        self._active_runs[_key(chunk.get("runId", UNDEF))] = None

    def _run_finished(self, chunk: dict[str, Any]) -> None:
        if "finishReason" in chunk:
            self.finish_reason = chunk["finishReason"]
        else:
            tanstack = _tanstack_metadata(chunk)
            reason = _get(tanstack, "finishReason") if tanstack is not UNDEF else UNDEF
            self.finish_reason = None if _nullish(reason) else reason
        self._active_runs.pop(_key(chunk.get("runId", UNDEF)), None)
        outcome = chunk.get("outcome", UNDEF)
        interrupted = not _nullish(outcome) and _get(outcome, "type") == "interrupt"
        if interrupted:
            self._handle_interrupts(_get(outcome, "interrupts"))
        if not self._active_runs:
            self._complete_all_tool_calls()
            if _same(self.finish_reason, "tool_calls") and not interrupted:
                return
            self.done = True
            self._finalize()

    def _handle_interrupts(self, interrupts: Any) -> None:
        if not isinstance(interrupts, list):
            raise _JsError("interrupts.some is not a function")
        # ``interruptBatchHasGeneric`` only matters for client-tool events, but its
        # ``interrupts.some(i => i.metadata ...)`` throws on a null entry before it stops.
        for interrupt in interrupts:
            metadata = _get(interrupt, "metadata")
            binding = _get(metadata, _BINDING_KEY) if isinstance(metadata, dict) else UNDEF
            if isinstance(binding, dict) and binding.get("kind") == "generic":
                break
        for interrupt in interrupts:
            metadata = _get(interrupt, "metadata")
            if not (_truthy(metadata) and isinstance(metadata, dict | list)):
                metadata = {}
            kind = _get(metadata, "kind") if isinstance(metadata, dict) else UNDEF
            tool_call_id = _get(interrupt, "toolCallId")
            if not _truthy(tool_call_id):
                continue
            if kind == "approval" or _get(interrupt, "reason") == "approval_required":
                resolved = self._active_assistant_id()
                if _nullish(resolved):
                    owner = self._tool_call_to_message.get(_key(tool_call_id))
                    resolved = owner[0] if owner is not None else UNDEF
                if _nullish(resolved):
                    resolved = self._assistant_with_tool_call(tool_call_id)
                if _truthy(resolved):
                    self._update_tool_call_approval(resolved, tool_call_id, _get(interrupt, "id"))

    def _assistant_with_tool_call(self, tool_call_id: Any) -> Any:
        for message in self._messages:
            if message.get("role") != "assistant":
                continue
            if any(
                _get_part(p, "type") == "tool-call" and _same(_get_part(p, "id"), tool_call_id)
                for p in self._parts(message)
            ):
                return message.get("id", UNDEF)
        return UNDEF

    def _run_error(self, chunk: dict[str, Any]) -> None:
        self.has_error = True
        run_id = chunk.get("runId", UNDEF)
        if not (isinstance(run_id, str) and run_id):
            tanstack = _tanstack_metadata(chunk)
            run_id = _get(tanstack, "runId") if tanstack is not UNDEF else UNDEF
        if isinstance(run_id, str) and run_id:
            self._active_runs.pop(run_id, None)
        else:
            self._active_runs.clear()
        message_id, _ = self._ensure_assistant()
        message = chunk.get("message", UNDEF)
        error_message = message if _truthy(message) else "An error occurred"
        if isinstance(message_id, str):
            error = chunk.get("error", UNDEF)
            nested = error.get("message") if isinstance(error, dict) else None
            text = message if isinstance(message, str) and message else nested
            self.failed[message_id] = text if isinstance(text, str) and text else error_message
        if _key(message_id) in self._structured:
            self._error_structured(message_id, error_message)
            self._structured.pop(_key(message_id), None)

    # -- handlers: thinking ----------------------------------------------------------------

    def _step_started(self, chunk: dict[str, Any]) -> None:
        step_name = chunk.get("stepName", UNDEF)
        step_id = step_name if _truthy(step_name) else self._generate_id()
        active_id = self._active_assistant_id()
        if _truthy(active_id):
            state = self._state(active_id)
            if state is not None:
                state.current_thinking_step = step_id
                if _key(step_id) not in state.thinking_steps:
                    state.thinking_steps[_key(step_id)] = (step_id, "")
                self._pending_thinking_step = None
                return
        self._pending_thinking_step = step_id

    def _step_finished(self, chunk: dict[str, Any]) -> None:
        signature = chunk.get("signature", UNDEF)
        if not _truthy(signature):
            return
        message_id, state = self._ensure_assistant(_coalesce(self._active_assistant_id(), UNDEF))
        step_id = _coalesce(state.current_thinking_step, chunk.get("stepId", UNDEF))
        if not _truthy(step_id):
            return
        step = state.thinking_steps.get(_key(step_id))
        if step is None:
            return
        state.thinking_signatures[_key(step_id)] = signature
        self._update_thinking_part(message_id, step_id, step[1], signature)

    def _reasoning_message_content(self, chunk: dict[str, Any]) -> None:
        raw_delta = chunk.get("delta", UNDEF)
        delta = _js_string(raw_delta) if _truthy(raw_delta) else ""
        message_id, state = self._ensure_assistant(_coalesce(self._active_assistant_id(), UNDEF))
        state.has_seen_reasoning = True
        if _truthy(self._pending_thinking_step):
            pending = self._pending_thinking_step
            state.current_thinking_step = pending
            if _key(pending) not in state.thinking_steps:
                state.thinking_steps[_key(pending)] = (pending, "")
            self._pending_thinking_step = None
        step_id = _coalesce(state.current_thinking_step, chunk.get("messageId", UNDEF))
        if _key(step_id) not in state.thinking_steps:
            state.thinking_steps[_key(step_id)] = (step_id, "")
            state.current_thinking_step = step_id
        text = state.thinking_steps[_key(step_id)][1] + delta
        state.thinking_steps[_key(step_id)] = (step_id, text)
        self._update_thinking_part(
            message_id, step_id, text, state.thinking_signatures.get(_key(step_id), UNDEF)
        )

    def _reasoning_encrypted_value(self, chunk: dict[str, Any]) -> None:
        value = chunk.get("encryptedValue", UNDEF)
        if not isinstance(value, str) or value == "":
            return
        if chunk.get("subtype") == "tool-call":
            self._attach_tool_call_signature(chunk.get("entityId", UNDEF), value)
            return
        message_id, state = self._ensure_assistant(_coalesce(self._active_assistant_id(), UNDEF))
        step_id = _coalesce(state.current_thinking_step, chunk.get("entityId", UNDEF))
        state.thinking_signatures[_key(step_id)] = value
        step = state.thinking_steps.get(_key(step_id))
        content = step[1] if step is not None else ""
        if step is None:
            state.thinking_steps[_key(step_id)] = (step_id, content)
        self._update_thinking_part(message_id, step_id, content, value)

    def _attach_tool_call_signature(self, tool_call_id: Any, signature: str) -> None:
        for message in self._messages:
            parts = self._parts(message)
            changed = False
            for index, part in enumerate(parts):
                if _get_part(part, "type") != "tool-call" or not _same(
                    _get_part(part, "id"), tool_call_id
                ):
                    continue
                changed = True
                old = part.get("metadata")
                base = _spread(old) if old is not None and isinstance(old, dict | list) else {}
                parts[index] = {**part, "metadata": {**base, "thoughtSignature": signature}}
            if changed:
                message["parts"] = parts
        for state in self._states.values():
            call = state.tool_calls.get(_key(tool_call_id))
            if call is None:
                continue
            base = _spread(_coalesce(call.metadata, {}))
            call.metadata = {**base, "thoughtSignature": signature}

    # -- handlers: custom events and snapshots ---------------------------------------------

    def _custom(self, chunk: dict[str, Any]) -> None:
        message_id = self._active_assistant_id()
        name = chunk.get("name", UNDEF)
        value = chunk.get("value", UNDEF)
        if name == "structured-output.start" and _truthy(value):
            target, _ = self._ensure_assistant(
                _coalesce(_coalesce(_get(value, "messageId"), message_id), UNDEF)
            )
            if _truthy(target):
                self._structured[_key(target)] = target
            return
        if name == "structured-output.complete" and _truthy(value):
            target, _ = self._ensure_assistant(
                _coalesce(_coalesce(_get(value, "messageId"), message_id), UNDEF)
            )
            if _truthy(target):
                self._complete_structured(
                    target,
                    _get(value, "object"),
                    _coalesce(_get(value, "raw"), ""),
                    _get(value, "reasoning"),
                )
                self._structured.pop(_key(target), None)
        if name == "tool-input-available" and _truthy(value):
            return
        if name == "approval-requested" and _truthy(value):
            tool_call_id = _get(value, "toolCallId")
            approval = _get(value, "approval")
            resolved = message_id
            if _nullish(resolved):
                owner = self._tool_call_to_message.get(_key(tool_call_id))
                resolved = owner[0] if owner is not None else UNDEF
            if _truthy(resolved):
                # ``approval.id`` throws for a missing approval, as in the processor.
                self._update_tool_call_approval(resolved, tool_call_id, _get(approval, "id"))
            return
        if name == "ui-resource" and _truthy(value):
            tool_call_id = _get(value, "toolCallId")
            owner = self._tool_call_to_message.get(_key(tool_call_id))
            resolved = _coalesce(owner[0] if owner is not None else UNDEF, message_id)
            if _truthy(resolved):
                part: Part = {
                    "type": "ui-resource",
                    "resource": _get(value, "resource"),
                    "toolCallId": tool_call_id,
                    "toolName": _get(value, "toolName"),
                }
                if _get(value, "serverId") is not UNDEF:
                    part["serverId"] = value["serverId"]
                if _get(value, "meta") is not UNDEF:
                    part["meta"] = value["meta"]
                for message in self._matching(resolved):
                    message["parts"] = [*self._parts(message), dict(part)]
            return

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


def _get_part(part: object, key: str) -> Any:
    """``part.key`` where ``part`` is an element of a parts array (``null`` throws)."""
    return _get(part, key)


def _index_of_type(parts: list[Any], kind: str) -> int:
    for index, part in enumerate(parts):
        if _get_part(part, "type") == kind:
            return index
    return -1


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


_HANDLERS: dict[str, _Handler] = {
    "TEXT_MESSAGE_START": TanStackMessageBuilder._text_message_start,
    "TEXT_MESSAGE_CONTENT": TanStackMessageBuilder._text_message_content,
    "TEXT_MESSAGE_END": TanStackMessageBuilder._text_message_end,
    "TOOL_CALL_START": TanStackMessageBuilder._tool_call_start,
    "TOOL_CALL_ARGS": TanStackMessageBuilder._tool_call_args,
    "TOOL_CALL_END": TanStackMessageBuilder._tool_call_end,
    "TOOL_CALL_RESULT": TanStackMessageBuilder._tool_call_result,
    "RUN_STARTED": TanStackMessageBuilder._run_started,
    "RUN_FINISHED": TanStackMessageBuilder._run_finished,
    "RUN_ERROR": TanStackMessageBuilder._run_error,
    "STEP_STARTED": TanStackMessageBuilder._step_started,
    "STEP_FINISHED": TanStackMessageBuilder._step_finished,
    "REASONING_MESSAGE_CONTENT": TanStackMessageBuilder._reasoning_message_content,
    "REASONING_ENCRYPTED_VALUE": TanStackMessageBuilder._reasoning_encrypted_value,
    "CUSTOM": TanStackMessageBuilder._custom,
    "MESSAGES_SNAPSHOT": TanStackMessageBuilder._messages_snapshot,
}


def fold_tanstack_messages(
    chunks: Iterable[object],
    *,
    now_ms: int | None = None,
    created_at_from_chunks: bool = False,
) -> list[dict[str, Any]]:
    """Fold TanStack ``StreamChunk`` s into the ``UIMessage`` list a client would hold.

    Args:
        chunks: chunk dicts (or their JSON text) in log order: stored user turns
            (``TEXT_MESSAGE_START`` role ``user`` / ``CONTENT`` / ``END``), model chunks
            (with or without the running ``content`` on ``TEXT_MESSAGE_CONTENT``),
            ``MESSAGES_SNAPSHOT`` s... Malformed entries are skipped.
        now_ms: the clock in milliseconds since the epoch, for ``createdAt`` of messages the
            chunks create; ``None``: the system clock at the call.
        created_at_from_chunks: take ``createdAt`` from the creating chunk's ``timestamp``
            when it has a valid one (stable across folds of one log).

    Returns:
        Fresh ``UIMessage`` dicts ``{"id", "role", "parts", "createdAt", "metadata"?}``
        (``createdAt`` an ISO-8601 string), equal to ``StreamProcessor.getMessages()`` of
        ``@tanstack/ai`` 0.58.0 after ``processChunk`` on each chunk, JSON round-tripped,
        key order included (see the module docstring for the few deliberate differences).
        Never raises on data.
    """
    builder = TanStackMessageBuilder(now_ms=now_ms, created_at_from_chunks=created_at_from_chunks)
    return builder.add_all(chunks).messages
