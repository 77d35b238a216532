"""The state of the TanStack fold: messages, per-message stream state, clock and ids,
and the metadata helpers of ``@tanstack/ai`` (``utilities/merge-metadata.js``)."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable
from typing import Any

from resumable_chat.protocols.js_values import UNDEFINED as UNDEF
from resumable_chat.protocols.js_values import JsError as _JsError
from resumable_chat.protocols.js_values import is_record as _is_record
from resumable_chat.protocols.js_values import iso_from_ms as _iso_from_ms
from resumable_chat.protocols.js_values import js_get as _get
from resumable_chat.protocols.js_values import nullish as _nullish
from resumable_chat.protocols.js_values import strict_equals as _same

__all__ = ["FoldState"]

logger = logging.getLogger("resumable_chat.protocols.tanstack")

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


def _get_part(part: object, key: str) -> Any:
    """``part.key`` where ``part`` is an element of a parts array (``null`` throws)."""
    return _get(part, key)


def _index_of_type(parts: list[Any], kind: str) -> int:
    for index, part in enumerate(parts):
        if _get_part(part, "type") == kind:
            return index
    return -1


class FoldState:
    """The ``StreamProcessor`` state both halves of the fold work on (messages, per-message
    stream state, the clock and generated ids); see :class:`TanStackMessageBuilder
    <resumable_chat.protocols.tanstack.processor.TanStackMessageBuilder>` for the arguments."""

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
        # Messages by string id, in list order, for _find and _matching: valid for the first
        # _index_len messages of _index_list (the list only grows by appends or is replaced)
        # until a message id is rewritten (_drop_id_index).
        self._index_list: list[Message] | None = None
        self._index_len = 0
        self._index: dict[str, list[Message]] = {}
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

    def _id_index(self) -> dict[str, list[Message]]:
        """The messages with a string id, by id, in list order.

        Kept up to date by indexing only the messages appended since the last look, so a
        lookup costs O(1) however long the history: scanning the list per lookup made the
        fold of a long history O(messages²). Rebuilt when ``_messages`` is replaced or
        shrank, and after :meth:`_drop_id_index`.
        """
        messages = self._messages
        if messages is not self._index_list or len(messages) < self._index_len:
            self._index_list, self._index_len, self._index = messages, 0, {}
        if len(messages) > self._index_len:
            index = self._index
            for message in messages[self._index_len :]:
                message_id = message.get("id")
                if isinstance(message_id, str):
                    found = index.get(message_id)
                    if found is None:
                        index[message_id] = [message]
                    else:
                        found.append(message)
            self._index_len = len(messages)
        return self._index

    def _drop_id_index(self) -> None:
        """A message id was rewritten in place: the index is rebuilt on the next lookup."""
        self._index_list = None

    def _find(self, message_id: Any) -> Message | None:
        """``messages.find(m => m.id === messageId)``."""
        if isinstance(message_id, str):  # the common case, without the general comparison
            found = self._id_index().get(message_id)
            return found[0] if found else None
        return next((m for m in self._messages if _same(m.get("id", UNDEF), message_id)), None)

    def _matching(self, message_id: Any) -> list[Message]:
        """Every message with that id (the processor's updates map over all of them).

        String ids are answered from :meth:`_id_index`. Callers must not mutate the
        returned list.
        """
        if isinstance(message_id, str):
            return self._id_index().get(message_id) or []
        return [m for m in self._messages if _same(m.get("id", UNDEF), message_id)]

    @staticmethod
    def _parts(message: Message) -> list[Any]:
        parts = message.get("parts", UNDEF)
        if not isinstance(parts, list):
            raise _JsError("message.parts is not an array")
        return list(parts)

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
