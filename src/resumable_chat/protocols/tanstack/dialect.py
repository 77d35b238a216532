"""The TanStack AI dialect: AG-UI events, session replay with ``MESSAGES_SNAPSHOT``.

Behaviour of ``@s2-dev/resumable-stream/tanstack-ai`` 2.1.0 (``src/tanstack-ai.ts``) with what
both old and new ``@tanstack/ai-client`` versions read (``@tanstack/ai`` ``StreamProcessor``,
``@tanstack/ai-client`` 0.10 and 0.33):

- headers of ``toServerSentEventsResponse`` plus ``X-Accel-Buffering: no``; no ``[DONE]``;
- ``TEXT_MESSAGE_CONTENT`` is stored without its running ``content`` (deltas only);
- the turn's user message is stored as ``TEXT_MESSAGE_START`` (role user) / ``CONTENT`` /
  ``END`` before the model's chunks; stored again (``ChatClient.reload()``, same id), it
  replaces what followed it in history (:meth:`TanStackDialect.fold`);
- every run's ``RUN_STARTED`` / ``RUN_FINISHED`` / ``RUN_ERROR`` carry one ``runId`` (a
  missing one is filled in), so ``sessionGenerating`` never sticks;
- ``finishReason`` is sent at the top level and in ``metadata.tanstack``; ``RUN_ERROR`` has
  ``message`` and ``error: {message, code}``; ``TOOL_CALL_START`` has ``toolCallName`` and
  ``toolName``;
- a stop ends the run with ``RUN_FINISHED {runId, finishReason: "stop"}``.

How an answer ended stays in history, in the assistant message's ``metadata`` (which
``StreamProcessor`` merges from the ``metadata`` of ``TEXT_MESSAGE_START`` / ``END``,
``@tanstack/ai`` ``activities/chat/stream/processor.js``): ``{"stopped": true}`` when it was
stopped, ``{"error": "<message>"}`` when it ended in an error. The terminals written here
close (or re-close) the answer's message with a ``TEXT_MESSAGE_END`` carrying it, so live
clients get it too, and :meth:`TanStackDialect.fold` adds ``error`` for a ``RUN_ERROR`` a
source sent itself. No terminal carries an internal marker (no made-up ``model``, no
``s2-`` run ids).
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from resumable_chat.chat.dialect import (
    Chunk,
    Dialect,
    TurnState,
    normalize_messages,
    split_text_field,
)
from resumable_chat.chat.producer import decode_chunk
from resumable_chat.protocols.js_values import valid_ms

__all__ = [
    "TANSTACK_HEADERS",
    "TanStackDialect",
    "TanStackTurn",
    "normalize_messages",
    "user_message_events",
]

#: Headers of ``@tanstack/ai`` ``toServerSentEventsResponse``, plus ``X-Accel-Buffering``.
TANSTACK_HEADERS: Mapping[str, str] = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def user_message_events(message: Mapping[str, Any], timestamp: int | None = None) -> list[Chunk]:
    """The stored form of a user message: TEXT_MESSAGE_START / CONTENT / END
    (``@s2-dev/resumable-stream`` ``src/tanstack-ai.ts``).

    ``text`` is the concatenation of the ``content`` of ``text`` parts (a string ``content``
    field on the message is used when it has no parts); the CONTENT event is left out when
    the text is empty. ``timestamp`` in ms (default now).

    A message with other parts than text (the ``image``, ``audio``, ``video`` and
    ``document`` parts of a user's attachments, ``@tanstack/ai`` ``MessagePart``) also keeps
    all its parts (text parts as ``{"type": "text", "content"}``, the others as sent) in a
    ``parts`` field of the START event, which the history fold
    (:meth:`TanStackDialect.fold`) gives the message back: ``StreamProcessor`` reads only
    the fields it knows of a ``TEXT_MESSAGE_START``, and the text events alone would lose
    the attachments on the next load. Such a message has a CONTENT event only when its one
    text part is its last part: the client that sent the message receives its events too,
    and a CONTENT event would add the text again after an attachment (a client that was
    already following the chat then shows the message without text until its next load;
    one that loads later gets it whole in its snapshot). A text-only message is stored
    exactly as ``@s2-dev/resumable-stream`` stores it.
    """
    t = _now_ms() if timestamp is None else timestamp
    message_id = message.get("id")
    text = "".join(
        p["content"]
        for p in message.get("parts") or []
        if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("content"), str)
    )
    if not text and not message.get("parts") and isinstance(message.get("content"), str):
        text = message["content"]
    start: Chunk = {"type": "TEXT_MESSAGE_START", "timestamp": t, "messageId": message_id}
    start["role"] = "user"
    parts = [p for p in message.get("parts") or [] if isinstance(p, Mapping)]
    if any(p.get("type") != "text" for p in parts):
        kept = start["parts"] = [
            dict(p) if p.get("type") != "text" else {"type": "text", "content": p["content"]}
            for p in parts
            if p.get("type") != "text" or isinstance(p.get("content"), str)
        ]
        texts = [i for i, p in enumerate(kept) if p["type"] == "text"]
        if texts != [len(kept) - 1]:
            # The sender's client holds the message already, and a CONTENT event replaces
            # its last part only when that is its one text part, else appends a second
            # copy of the text (``updateTextPart``, ``@tanstack/ai``
            # ``activities/chat/stream/message-updaters.js``).
            text = ""
    events: list[Chunk] = [start]
    if text:
        events.append(
            {"type": "TEXT_MESSAGE_CONTENT", "timestamp": t, "messageId": message_id, "delta": text}
        )
    events.append({"type": "TEXT_MESSAGE_END", "timestamp": t, "messageId": message_id})
    return events


def _tanstack_meta(chunk: Chunk) -> dict[str, Any]:
    metadata = chunk.get("metadata")
    if not isinstance(metadata, dict):
        metadata = chunk["metadata"] = {}
    tanstack = metadata.get("tanstack")
    if not isinstance(tanstack, dict):
        tanstack = metadata["tanstack"] = {}
    return tanstack


class TanStackTurn(TurnState):
    """One run's state: its ``runId``, open text message and whether a terminal was seen.

    ``run_id``: the run id to use when the source does not give one (e.g. the client's
    ``X-Run-Id``); ``thread_id`` is echoed on synthesized terminals.
    """

    __slots__ = (
        "assistant_seen",
        "last_message",
        "open_message",
        "run_id",
        "terminal",
        "thread_id",
    )

    def __init__(self, run_id: str | None = None, thread_id: str | None = None) -> None:
        self.run_id = run_id
        self.thread_id = thread_id
        self.terminal = False
        self.open_message: str | None = None
        self.last_message: str | None = None
        self.assistant_seen = False

    def opening(self, first: Chunk | None) -> list[Chunk]:
        """Nothing: TanStack sources emit their own ``RUN_STARTED`` (``@s2-dev/resumable-stream``
        ``src/tanstack-ai.ts``)."""
        return []

    def _ensure_run_id(self, chunk: Chunk) -> None:
        run_id = chunk.get("runId")
        if isinstance(run_id, str) and run_id:
            if self.run_id is None:
                self.run_id = run_id
            return
        if self.run_id is None:
            self.run_id = "run-" + secrets.token_hex(8)
        chunk["runId"] = self.run_id

    def observe(self, chunk: Chunk) -> None:
        """Track the run; fill in ``runId`` and the fields old and new clients read."""
        kind = chunk.get("type")
        if kind == "TEXT_MESSAGE_CONTENT" or kind == "TOOL_CALL_ARGS":
            return
        if kind == "TEXT_MESSAGE_START":
            if chunk.get("role", "assistant") == "assistant":
                self.open_message = chunk.get("messageId")
                if isinstance(self.open_message, str):
                    self.last_message = self.open_message
                self.assistant_seen = True
        elif kind == "TEXT_MESSAGE_END":
            if chunk.get("messageId") == self.open_message:
                self.open_message = None
        elif kind == "RUN_STARTED":
            self.terminal = False
            self._ensure_run_id(chunk)
        elif kind == "RUN_FINISHED":
            self.terminal = True
            self._ensure_run_id(chunk)
            tanstack = _tanstack_meta(chunk)
            reason = chunk.get("finishReason", tanstack.get("finishReason"))
            if reason is not None:
                chunk.setdefault("finishReason", reason)
                tanstack.setdefault("finishReason", reason)
        elif kind == "RUN_ERROR":
            self.terminal = True
            self._ensure_run_id(chunk)
            raw_error = chunk.get("error")
            error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
            message = chunk.get("message", error.get("message", "An error occurred."))
            code = chunk.get("code", error.get("code"))
            chunk["message"] = message
            merged = {"message": message, **({"code": code} if code is not None else {})}
            chunk["error"] = {**merged, **error}
        elif kind == "TOOL_CALL_START":
            name = chunk.get("toolCallName", chunk.get("toolName"))
            if name is not None:
                chunk.setdefault("toolCallName", name)
                chunk.setdefault("toolName", name)

    def _mark(self, t: int, metadata: dict[str, Any]) -> list[Chunk]:
        """End the run's assistant message (the open one, else the last one) with
        ``metadata``; an already ended message gets a second END, which only merges it."""
        target = self.open_message or self.last_message
        self.open_message = None
        if target is None:
            return []
        return [
            {"type": "TEXT_MESSAGE_END", "timestamp": t, "messageId": target, "metadata": metadata}
        ]

    def stop_chunks(self) -> list[Chunk]:
        """End the answer's message marked ``{"stopped": true}``, then ``RUN_FINISHED`` with
        ``finishReason: "stop"`` and the run's id."""
        if self.terminal:
            return []
        t = _now_ms()
        out = self._mark(t, {"stopped": True})
        finished: Chunk = {
            "type": "RUN_FINISHED",
            "runId": self.run_id or "run-" + secrets.token_hex(8),
            "timestamp": t,
            "finishReason": "stop",
            "metadata": {"tanstack": {"finishReason": "stop"}},
        }
        if self.thread_id is not None:
            finished["threadId"] = self.thread_id
        out.append(finished)
        self.terminal = True
        return out

    def error_chunks(self, error_text: str) -> list[Chunk]:
        """End the answer's message marked ``{"error": error_text}``, then ``RUN_ERROR``
        with the run's id.

        When the run has no assistant message yet, an empty one (START/END) comes first:
        ``StreamProcessor`` would otherwise create one lazily and rename it to the next
        message it sees, turning the next user turn into an assistant message.
        """
        t = _now_ms()
        if not self.assistant_seen:
            message_id = "msg-" + secrets.token_hex(8)
            self.open_message = self.last_message = message_id
            self.assistant_seen = True
            out: list[Chunk] = [
                {
                    "type": "TEXT_MESSAGE_START",
                    "timestamp": t,
                    "messageId": message_id,
                    "role": "assistant",
                }
            ]
        else:
            out = []
        out += self._mark(t, {"error": error_text})
        error: Chunk = {
            "type": "RUN_ERROR",
            "timestamp": t,
            "message": error_text,
            "error": {"message": error_text},
        }
        if self.run_id is not None:
            error["runId"] = self.run_id
        if self.thread_id is not None:
            error["threadId"] = self.thread_id
        out.append(error)
        self.terminal = True
        return out


#: The chunks whose ``delta`` the client appends to text, a thinking step or a tool call's
#: arguments.
_DELTA_CHUNKS = frozenset({"TEXT_MESSAGE_CONTENT", "REASONING_MESSAGE_CONTENT", "TOOL_CALL_ARGS"})


class TanStackDialect(Dialect):
    """TanStack AI ``StreamChunk`` events (``protocol="tanstack"``)."""

    name = "tanstack"
    response_headers = TANSTACK_HEADERS
    done_frame = b""
    session_replay = "snapshot"

    def is_run_start(self, body: bytes) -> bool:
        """True for a stored ``RUN_STARTED`` event (a first-load replay sends the running run
        raw from it, after the history snapshot)."""
        if b'"RUN_STARTED"' not in body:
            return False
        chunk = decode_chunk(body)
        return chunk is not None and chunk.get("type") == "RUN_STARTED"

    def new_turn(self, *, message_id: str | None) -> TanStackTurn:
        """Turn state; ``message_id`` is unused (TanStack sources name their messages)."""
        return TanStackTurn()

    def session_messages(self, messages: object) -> list[dict[str, Any]]:
        """:func:`~resumable_chat.chat.dialect.normalize_messages`, then a ``text`` part
        written the AI SDK way (a string ``text``, no string ``content``) gets ``content``
        set to its ``text``.

        TanStack's ``TextPart`` is ``{type: "text", content}`` (``@tanstack/ai``
        ``src/types.ts``); the stored history (:meth:`message_records`) reads ``content``
        only, while a source converting messages may read ``text``. Copying it makes the
        source, the history and the storage check see the same text.
        """
        normalized = super().session_messages(messages)
        for message in normalized:
            parts = message.get("parts")
            if not isinstance(parts, list):
                continue
            for part in parts:  # copies (normalize_messages)
                if (
                    part.get("type") == "text"
                    and isinstance(part.get("text"), str)
                    and not isinstance(part.get("content"), str)
                ):
                    part["content"] = part["text"]
        return normalized

    def message_records(self, message: Mapping[str, Any]) -> list[Chunk]:
        """A user message as three text events; nothing for other roles
        (``@s2-dev/resumable-stream`` ``src/tanstack-ai.ts``)."""
        if message.get("role") != "user":
            return []
        return user_message_events(message)

    def storage_form(self, chunk: Chunk) -> Chunk:
        """``TEXT_MESSAGE_CONTENT`` without ``content``; other chunks unchanged."""
        if chunk.get("type") == "TEXT_MESSAGE_CONTENT" and "content" in chunk:
            return {k: v for k, v in chunk.items() if k != "content"}
        return chunk

    def split_chunk(
        self, chunk: Chunk, max_bytes: int, stored_size: Callable[[Chunk], int]
    ) -> list[Chunk] | None:
        """A ``TEXT_MESSAGE_CONTENT``, ``REASONING_MESSAGE_CONTENT`` or ``TOOL_CALL_ARGS``
        cut into consecutive ``delta`` pieces (``StreamProcessor`` appends each delta to the
        text, the thinking step or the tool call's arguments: ``@tanstack/ai``
        ``dist/esm/activities/chat/stream/processor.js``); ``None`` for every other chunk. The
        running ``content`` of a ``TEXT_MESSAGE_CONTENT`` (sent live, not stored) becomes
        the text up to the end of each piece when it ends with the delta, as a source that
        sent the pieces itself would have set it; otherwise only the last piece keeps it.
        See :meth:`Dialect.split_chunk`."""
        if chunk["type"] not in _DELTA_CHUNKS:
            return None
        pieces = split_text_field(chunk, "delta", max_bytes, stored_size)
        content = chunk.get("content")
        if pieces is None or content is None:
            return pieces
        delta: str = chunk["delta"]
        if isinstance(content, str) and content.endswith(delta):
            end = len(content) - len(delta)
            for piece in pieces:
                end += len(piece["delta"])
                piece["content"] = content[:end]
        else:
            for piece in pieces[:-1]:
                del piece["content"]
        return pieces

    def is_history_record(self, body: bytes) -> bool:
        """Nothing is hidden from TanStack replays."""
        return False

    def fold(self, chunks: Iterable[Chunk]) -> list[dict[str, Any]]:
        """UIMessages as ``@tanstack/ai`` ``StreamProcessor`` builds them, with
        ``metadata.error`` on every message a ``RUN_ERROR`` landed in (its ``message``), so
        history shows the error after a reload.

        A stored user message whose id is already in the history was sent again by a client
        that holds nothing after it: ``@tanstack/ai-client`` ``ChatClient.reload()`` removes
        every message after the last user message and sends that one again, same id
        (``dist/esm/chat-client.js``). The fold does what that client did
        (:meth:`~resumable_chat.protocols.tanstack.fold.TanStackMessageBuilder.resend`):
        the messages after it are dropped and its text is replaced, not appended to, so the
        new answer takes the place of the old one instead of following it. TanStack's own
        server persistence agrees: ``withPersistence`` (``@tanstack/ai-persistence``
        ``src/middleware.ts``) saves the request's messages plus the new answer over the
        stored thread.

        ``createdAt`` comes from the chunks' timestamps, so every fold of a log is the same.
        A user message stored with its attachments (:func:`user_message_events`) gets all
        its parts back, as the client sent them.
        """
        from resumable_chat.protocols.tanstack.fold import TanStackMessageBuilder

        builder = TanStackMessageBuilder(created_at_from_chunks=True)
        sent_parts: dict[str, list[Any]] = {}  # user messages stored with all their parts
        for chunk in chunks:
            if chunk.get("type") == "TEXT_MESSAGE_START" and chunk.get("role") == "user":
                builder.resend(chunk.get("messageId"))
                message_id, parts = chunk.get("messageId"), chunk.get("parts")
                if isinstance(message_id, str):
                    sent_parts.pop(message_id, None)
                    if isinstance(parts, list) and all(isinstance(p, dict) for p in parts):
                        sent_parts[message_id] = parts
            builder.add(chunk)
        messages = builder.messages
        for message in messages:
            message_id = message.get("id")
            parts = sent_parts.get(message_id) if isinstance(message_id, str) else None
            if parts is not None and message.get("role") == "user":
                message["parts"] = copy.deepcopy(parts)
        for message in messages:
            message_id = message.get("id")
            error_text = builder.failed.get(message_id) if isinstance(message_id, str) else None
            metadata = message.get("metadata")
            if error_text is not None and isinstance(metadata, dict | None):
                message["metadata"] = {**(metadata or {})}
                message["metadata"].setdefault("error", error_text)
        return messages

    def history_chunk(self, chunk: Chunk, stored_ms: int) -> Chunk:
        """``chunk`` with its record's S2 timestamp (ms) as ``timestamp`` when it has no
        valid one of its own (a source that leaves it out): the fold takes ``createdAt`` of
        the messages a chunk creates, and the time in the ids it makes, from ``timestamp``,
        so every fold of a log is the same (the client, ``StreamProcessor`` of
        ``@tanstack/ai``, uses its clock as it reads the chunk, about the time it was stored).
        """
        if valid_ms(chunk.get("timestamp")) is None:
            chunk["timestamp"] = stored_ms
        return chunk

    def snapshot_frame(self, messages: list[dict[str, Any]]) -> Chunk:
        """``{"type":"MESSAGES_SNAPSHOT","timestamp":<ms>,"messages":[...]}``."""
        return {"type": "MESSAGES_SNAPSHOT", "timestamp": _now_ms(), "messages": messages}
