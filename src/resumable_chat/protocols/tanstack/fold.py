"""History fold for TanStack AI: stored ``StreamChunk`` dicts → ``UIMessage`` list.

This reproduces ``StreamProcessor.processChunk`` followed by ``getMessages()`` of
``@tanstack/ai`` 0.58.0 (``dist/esm/activities/chat/stream/processor.js``,
``message-updaters.js`` and ``activities/chat/messages.js``; the processor that
``@tanstack/ai-client`` 0.33.2 exports), i.e. what ``@s2-dev/resumable-stream`` 2.1.0 puts
into the ``MESSAGES_SNAPSHOT`` of a first load (``src/tanstack-ai.ts``), and what a TanStack
client shows after seeing the same chunks. Checked chunk-for-chunk against the real
processor (``tests/js/tanstack_fold.mjs``): same messages, parts, part states, key order.

Messages are ``{"id", "role", "parts", "createdAt", "metadata"?}`` with ``createdAt`` an
ISO-8601 string (``Date.toISOString()`` format). Parts (``@tanstack/ai`` ``UIMessage``):
``{"type": "text", "content"}``, ``{"type": "thinking", "content", "stepId",
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

One step of the client beyond ``processChunk``: :meth:`TanStackMessageBuilder.resend` does
what ``ChatClient.reload()`` does to its processor before the last user message goes out
again (``removeMessagesAfter``, ``prepareAssistantMessage``); the history fold of the TanStack
dialect calls it when a stored user message's id is already in the history.

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

from resumable_chat.protocols.tanstack.processor import (
    TanStackMessageBuilder,
    fold_tanstack_messages,
)

__all__ = ["TanStackMessageBuilder", "fold_tanstack_messages"]
