"""Port of ``@tanstack/ai``'s ``StreamProcessor`` (``activities/chat/stream/processor.js``):
the chunk handlers and the stream lifecycle; see :mod:`resumable_chat.protocols.tanstack.fold`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

from resumable_chat.protocols.js_values import UNDEFINED as UNDEF
from resumable_chat.protocols.js_values import JsError as _JsError
from resumable_chat.protocols.js_values import clone_json as _clone
from resumable_chat.protocols.js_values import coalesce as _coalesce
from resumable_chat.protocols.js_values import coerce_created_at as _coerce_created_at
from resumable_chat.protocols.js_values import export_json as _export
from resumable_chat.protocols.js_values import is_record as _is_record
from resumable_chat.protocols.js_values import js_get as _get
from resumable_chat.protocols.js_values import js_string as _js_string
from resumable_chat.protocols.js_values import js_stringify as _js_stringify
from resumable_chat.protocols.js_values import json_parse as _json_parse
from resumable_chat.protocols.js_values import nullish as _nullish
from resumable_chat.protocols.js_values import same_value_zero_key as _key
from resumable_chat.protocols.js_values import strict_equals as _same
from resumable_chat.protocols.js_values import truthy as _truthy
from resumable_chat.protocols.js_values import valid_ms as _valid_ms
from resumable_chat.protocols.tanstack.message_updaters import MessageUpdaters
from resumable_chat.protocols.tanstack.snapshot import (
    SnapshotConversion,
    _spread,
    _tool_result_error,
    _whitespace_only,
)
from resumable_chat.protocols.tanstack.state import (
    _get_part,
    _merge_metadata,
    _MessageState,
    _tanstack_metadata,
    _ToolCallState,
)

__all__ = ["TanStackMessageBuilder", "fold_tanstack_messages"]

logger = logging.getLogger("resumable_chat.protocols.tanstack")

Json = Any
Part = dict[str, Any]
Message = dict[str, Any]


# -- the builder -------------------------------------------------------------------------------

_Handler = Callable[["TanStackMessageBuilder", dict[str, Any]], None]

#: ``INTERRUPT_BINDING_METADATA_KEY`` of ``@tanstack/ai`` (``interrupt-resume.js``).
_BINDING_KEY: Final = "tanstack:interruptBinding"


class TanStackMessageBuilder(MessageUpdaters, SnapshotConversion):
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
        owned = False
        if isinstance(chunk, str | bytes | bytearray):
            try:
                chunk = json.loads(chunk)
            except ValueError:
                return self
            owned = True
        if not isinstance(chunk, dict):
            return self
        kind = chunk.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return self
        self._chunk_stamp = _valid_ms(chunk.get("timestamp"))
        try:
            handler(self, chunk if owned else _private_copy(chunk))
        except (_JsError, ValueError, TypeError, KeyError, RecursionError):
            logger.debug("chunk %s abandoned: the client would throw on it", kind, exc_info=True)
        return self

    def add_all(self, chunks: Iterable[object]) -> TanStackMessageBuilder:
        """Process every chunk in order (``add``); returns ``self``."""
        for chunk in chunks:
            self.add(chunk)
        return self

    def resend(self, message_id: object) -> bool:
        """Do to the processor what a client does before it sends the user message
        ``message_id`` again (``@tanstack/ai-client`` ``ChatClient.reload()`` then
        ``streamResponse()``, ``dist/esm/chat-client.js``): every message after the last
        user message with that id is removed (``StreamProcessor.removeMessagesAfter``) and
        the stream state is reset (``prepareAssistantMessage``). That message's events,
        folded next, then replace its text instead of appending to it, and the answer that
        follows takes the place of the removed ones.

        Args:
            message_id: the id of the user message being sent again.

        Returns:
            ``True`` when a user message has that id (it is kept, with its ``createdAt`` and
            ``metadata``); ``False``, changing nothing, otherwise. :attr:`failed` forgets the
            removed messages.
        """
        if isinstance(message_id, str) and not any(
            m.get("role") == "user" for m in self._matching(message_id)
        ):
            return False  # the common case, a new message: no scan of the history
        index = len(self._messages) - 1
        while index >= 0:
            message = self._messages[index]
            if message.get("role") == "user" and _same(message.get("id", UNDEF), message_id):
                break
            index -= 1
        if index < 0:
            return False
        for removed in self._messages[index + 1 :]:
            removed_id = removed.get("id")
            if isinstance(removed_id, str):
                self.failed.pop(removed_id, None)
        self._messages = self._messages[: index + 1]
        self._reset_stream_state()
        return True

    # -- stream state ----------------------------------------------------------------------

    def _create_state(self, message_id: Any, role: Any) -> _MessageState:
        state = _MessageState(message_id, role)
        self._states[_key(message_id)] = state
        return state

    def _state(self, message_id: Any) -> _MessageState | None:
        return self._states.get(message_id if type(message_id) is str else _key(message_id))

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
                self._drop_id_index()
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
        metadata = chunk.get("metadata", UNDEF)
        if metadata is not UNDEF:
            self._merge_message_metadata(message_id, metadata)
        if self._structured and _key(message_id) in self._structured:
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
            # _emit_text, with the state in hand (this is the fold's hottest path)
            state.last_emitted = state.current_segment
            self._update_text_part(message_id, state.current_segment)

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


def _private_copy(chunk: dict[str, Any]) -> dict[str, Any]:
    """The chunk as the handlers may keep it: handlers never change a chunk's own members,
    only store its nested objects and arrays, so a chunk with none is used as it is and any
    other is deep-copied (the caller may reuse or change its dicts afterwards)."""
    for value in chunk.values():
        if isinstance(value, dict | list):
            copied: dict[str, Any] = _clone(chunk)
            return copied
    return chunk


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
