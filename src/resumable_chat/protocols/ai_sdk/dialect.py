"""The Vercel AI SDK dialect: UI message stream headers, terminals and history.

Wire facts (``ai`` 5.0.0 to 7.x, ``packages/ai/src/ui-message-stream/``):

- headers are ``UI_MESSAGE_STREAM_HEADERS``; a response ends with ``data: [DONE]``;
- every answer starts with ``start`` carrying a ``messageId`` (a resumed stream without one
  duplicates the assistant message, A.7); on a tool-result continuation it is the continued
  assistant message's id (A.4);
- the error terminal is ``{"type":"error","errorText":...}``;
- ``finish`` goes out without ``finishReason`` to ``ai`` 5 and 6 clients
  (:meth:`AiSdkDialect.client_form`): ``ai`` 5.0.0 to 5.0.91 reject the key (strict
  schemas), later ones take it as optional. ``ai`` 5.0.0 to 5.0.6 also lack
  ``tool-input-error``, which the sources send for a tool call whose arguments are not JSON;
- a stopped answer closes its open text/reasoning parts and step, then ``abort``: what the
  AI SDK's own ``streamText`` ends an aborted stream with in every version
  (``toUIMessageStream`` enqueues ``{"type":"abort"}`` and closes; ``ai`` 5.0
  ``packages/ai/src/generate-text/stream-text.ts``). The client keeps the partial message,
  records no ``finishReason`` and so starts no automatic follow-up request.

How an answer ended stays in history, in the message's ``metadata`` (the field the client
merges ``message-metadata`` chunks into, ``ai`` ``src/ui/process-ui-message-stream.ts``):
``{"stopped": true}`` for an answer that was stopped and ``{"error": "<errorText>"}`` for
one that ended in an error. The terminals this dialect writes carry it as a
``message-metadata`` chunk before ``finish`` / ``error``, so a live client merges it too;
:meth:`AiSdkDialect.fold` also adds ``error`` for error chunks a source sent itself.

The turn's user message (or the continued assistant message) is stored before the answer as
``{"type":"ui-message","message":<UIMessage>}``; replays skip it and
:func:`~resumable_chat.protocols.ai_sdk.fold.fold_ui_messages` upserts it into history.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from resumable_chat.chat.dialect import Chunk, Dialect, TurnState, split_text_field
from resumable_chat.protocols.ai_sdk.schema import chunk_problem
from resumable_chat.sse import DONE_FRAME

__all__ = ["AI_SDK_HEADERS", "AiSdkDialect", "AiSdkTurn", "new_message_id"]

#: ``UI_MESSAGE_STREAM_HEADERS`` of the ``ai`` package.
AI_SDK_HEADERS: Mapping[str, str] = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Vercel-AI-UI-Message-Stream": "v1",
    "X-Accel-Buffering": "no",
}

_MESSAGE_RECORD_PREFIX = b'{"type":"ui-message"'

#: The chunks whose text the client appends to a part, and the field holding it
#: (``processUIMessageStream`` in ``packages/ai/src/ui/process-ui-message-stream.ts``).
_DELTA_FIELDS = {
    "text-delta": "delta",
    "reasoning-delta": "delta",
    "tool-input-delta": "inputTextDelta",
}


def new_message_id() -> str:
    """A fresh message id, ``msg-`` and 16 URL-safe random characters."""
    return "msg-" + secrets.token_urlsafe(12)


class AiSdkTurn(TurnState):
    """Tracks one answer's open parts so a stop or an error can end it properly.

    ``message_id``: the id the ``start`` chunk must carry (``None``: keep the source's, or
    generate one if it sends none).
    """

    __slots__ = (
        "finished",
        "message_id",
        "open_reasoning",
        "open_text",
        "started",
        "step_open",
        "version",
    )

    def __init__(self, message_id: str | None, version: int = 6) -> None:
        self.message_id = message_id
        self.version = version
        self.started = False
        self.step_open = False
        self.finished = False
        self.open_text: dict[str, None] = {}
        self.open_reasoning: dict[str, None] = {}

    def _start_chunk(self) -> Chunk:
        if self.message_id is None:
            self.message_id = new_message_id()
        self.started = True
        return {"type": "start", "messageId": self.message_id}

    def opening(self, first: Chunk | None) -> list[Chunk]:
        """A ``start`` chunk unless the source's first chunk is one."""
        if first is not None and first.get("type") == "start":
            return []
        return [self._start_chunk()]

    def observe(self, chunk: Chunk) -> None:
        """Track parts and steps; pin ``start.messageId``."""
        kind = chunk.get("type")
        if kind == "text-delta" or kind == "reasoning-delta":
            return
        if kind == "text-start":
            self.open_text[chunk.get("id", "")] = None
        elif kind == "text-end":
            self.open_text.pop(chunk.get("id", ""), None)
        elif kind == "reasoning-start":
            self.open_reasoning[chunk.get("id", "")] = None
        elif kind == "reasoning-end":
            self.open_reasoning.pop(chunk.get("id", ""), None)
        elif kind == "start":
            if self.message_id is not None:
                chunk["messageId"] = self.message_id
            elif isinstance(chunk.get("messageId"), str):
                self.message_id = chunk["messageId"]
            else:
                chunk["messageId"] = self.message_id = new_message_id()
            self.started = True
        elif kind == "start-step":
            self.step_open = True
        elif kind == "finish-step":
            self.step_open = False
            self.open_text.clear()
            self.open_reasoning.clear()
        elif kind == "finish" or kind == "error" or kind == "abort":
            self.finished = True

    def _close_parts(self) -> list[Chunk]:
        out: list[Chunk] = [] if self.started else [self._start_chunk()]
        out += [{"type": "text-end", "id": i} for i in self.open_text]
        out += [{"type": "reasoning-end", "id": i} for i in self.open_reasoning]
        self.open_text.clear()
        self.open_reasoning.clear()
        if self.step_open:
            out.append({"type": "finish-step"})
            self.step_open = False
        return out

    def stop_chunks(self) -> list[Chunk]:
        """Close open parts and the step, mark the message ``stopped`` (a
        ``message-metadata`` chunk), then ``{"type":"abort"}``, as ``streamText`` ends a
        stream whose abort signal fired (``ai`` 5, 6 and 7 alike)."""
        if self.finished:
            return []
        out = self._close_parts()
        out.append({"type": "message-metadata", "messageMetadata": {"stopped": True}})
        out.append({"type": "abort"})
        self.finished = True
        return out

    def lost_chunks(self, error_text: str) -> list[Chunk]:
        """``ai`` 7: open parts and the step closed, ``message-metadata`` ``{"interrupted":
        true}``, then ``finish`` with ``finishReason: "interrupted"`` (the client keeps the
        partial answer and skips automatic follow-ups; ``ai`` 7 ``processUIMessageStream``).
        Earlier versions: :meth:`error_chunks`."""
        if self.version < 7:
            return self.error_chunks(error_text)
        if self.finished:
            return []
        out = self._close_parts()
        out.append({"type": "message-metadata", "messageMetadata": {"interrupted": True}})
        out.append({"type": "finish", "finishReason": "interrupted"})
        self.finished = True
        return out

    def error_chunks(self, error_text: str) -> list[Chunk]:
        """Close open parts, put the error text in the message's metadata (a
        ``message-metadata`` chunk), then ``{"type":"error","errorText":...}``."""
        out = self._close_parts()
        out.append({"type": "message-metadata", "messageMetadata": {"error": error_text}})
        out.append({"type": "error", "errorText": error_text})
        self.finished = True
        return out


class AiSdkDialect(Dialect):
    """The AI SDK UI message stream protocol (``protocol="ai-sdk"``; ``"ai-sdk-v7"`` for
    clients on ``ai`` 7).

    Args:
        version: the ``ai`` major version of the clients: 5 or 6 (the default, one schema) or
            7, which accepts ``custom``, ``reasoning-file``, ``steering-message``,
            ``reset-step`` and ``tool-approval-response`` chunks and ends an answer whose
            server stopped with ``finish`` + ``finishReason: "interrupted"`` (the partial
            answer is kept, no error) instead of ``error``. ``ai`` 5 and 6 reject those, so a
            server must know which clients it serves.
    """

    name = "ai-sdk"
    response_headers = AI_SDK_HEADERS
    done_frame = DONE_FRAME
    #: ``GET /messages`` leaves a running answer out (``useChat({resume: true})`` replays
    #: it): ``ai`` 5.0.0 to 5.0.23x, 6.0.0 to 6.0.2xx and the first 7.0 releases
    #: (``Chat.makeRequest``) resume onto the last assistant message they hold, so a partial
    #: answer in history would be shown twice; later clients replace it. The turn's own
    #: message stays.
    history_includes_running = False

    def __init__(self, version: int = 6) -> None:
        if version not in (5, 6, 7):
            raise ValueError(f"ai_sdk version must be 5, 6 or 7, got {version!r}")
        self.version = version

    def new_turn(self, *, message_id: str | None) -> AiSdkTurn:
        """Turn state pinning the answer's ``messageId`` when given."""
        return AiSdkTurn(message_id, self.version)

    def chunk_problem(self, chunk: Chunk) -> str | None:
        """The client's ``uiMessageChunkSchema`` rules (:mod:`.schema`) for its version."""
        return chunk_problem(chunk, self.version)

    def client_form(self, chunk: Chunk) -> Chunk:
        """For ``ai`` 5 and 6 clients, ``finish`` without ``finishReason``; other chunks
        unchanged (the same object).

        ``ai`` 5.0.0 to 5.0.91 parse every chunk with ``z.strictObject`` schemas whose
        ``finish`` has only ``messageMetadata`` (``packages/ai/src/ui-message-stream/
        ui-message-chunks.ts`` at ``ai@5.0.91``), so a ``finishReason`` key makes them reject
        the whole answer; later 5.x and 6.x clients treat it as optional (their ``onFinish``
        then gets ``finishReason: undefined``). ``ai`` 7 clients keep it: they need
        ``"interrupted"`` (:meth:`AiSdkTurn.lost_chunks`).
        """
        if self.version < 7 and chunk["type"] == "finish" and "finishReason" in chunk:
            return {key: value for key, value in chunk.items() if key != "finishReason"}
        return chunk

    def split_chunk(
        self, chunk: Chunk, max_bytes: int, stored_size: Callable[[Chunk], int]
    ) -> list[Chunk] | None:
        """A ``text-delta`` or ``reasoning-delta`` cut into consecutive ``delta`` pieces, a
        ``tool-input-delta`` into ``inputTextDelta`` pieces (the client appends each to the
        part's text or to the tool input's text, so the pieces make the same message);
        ``None`` for every other chunk. See :meth:`Dialect.split_chunk`."""
        field = _DELTA_FIELDS.get(chunk["type"])
        return None if field is None else split_text_field(chunk, field, max_bytes, stored_size)

    def message_records(self, message: Mapping[str, Any]) -> list[Chunk]:
        """``[{"type":"ui-message","message":message}]``."""
        return [{"type": "ui-message", "message": dict(message)}]

    def is_history_record(self, body: bytes) -> bool:
        """True for the stored ``ui-message`` record."""
        return body.startswith(_MESSAGE_RECORD_PREFIX)

    def fold(self, chunks: Iterable[Chunk]) -> list[dict[str, Any]]:
        """``UIMessage`` list, as the AI SDK client's ``processUIMessageStream`` builds it,
        with ``metadata.error`` (the ``errorText``) on every message whose latest answer
        ended with an ``error`` chunk, so history shows the error after a reload. A message
        whose ``metadata`` is set and not an object is left as it is."""
        from resumable_chat.protocols.ai_sdk.fold import UIMessageBuilder

        builder = UIMessageBuilder().add_all(chunks)
        messages = builder.messages
        if not builder.failed:
            return messages
        for index, message in enumerate(messages):
            message_id = message.get("id")
            error_text = builder.failed.get(message_id) if isinstance(message_id, str) else None
            metadata = message.get("metadata")
            if error_text is None or not isinstance(metadata, dict | None):
                continue
            merged = {**(metadata or {})}
            merged.setdefault("error", error_text)
            rest = {k: v for k, v in message.items() if k not in ("id", "metadata")}
            messages[index] = {"id": message["id"], "metadata": merged, **rest}
        return messages
