"""AG-UI durable runs on the TanStack dialect: what ``fetchServerSentEvents`` sends and reads.

The stock ``fetchServerSentEvents(url)`` adapter of ``@tanstack/ai-client`` 0.33 POSTs an AG-UI
``RunAgentInput`` and, against a *durable* server, resumes, joins and hydrates by itself
(``@tanstack/ai`` 0.58 ``stream-durability.js`` and
``stream-to-response.js`` for the server side). This module holds the protocol pieces; the
log reading is in :mod:`resumable_chat.protocols.agui.runs`, the routes in
:mod:`resumable_chat.fastapi.agui`.

- :func:`wire_to_ui_messages`: the request's AG-UI wire messages (no ``parts``) to TanStack
  ``UIMessage`` s, converted exactly as the client converts a ``MESSAGES_SNAPSHOT``.
- :func:`run_prelude`: what a run stores before its answer so the log alone rebuilds what the
  client shows: the new user message (three text events), the results of client tools the
  client ran (``TOOL_CALL_RESULT``), and the ``resume`` decisions (``CUSTOM run.resume``).
- :func:`run_accepted`: the ``CUSTOM run.accepted`` marker, the first event of every durable
  run (stored, so a join finds the run before the model said anything).
- :class:`AgUiTurn`: a TanStack turn that pins the request's ``threadId`` / ``runId`` on
  ``RUN_STARTED`` and the terminal event, and ends a run whose model called the client's tools
  with ``RUN_FINISHED.outcome`` interrupts, the way ``@tanstack/ai`` ``chat()`` pauses for them.
- :func:`apply_approval_responses`: approvals decided in a ``resume`` shown on the folded
  messages, as the client shows them after answering.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from resumable_chat.chat.dialect import Chunk
from resumable_chat.protocols.tanstack.dialect import TanStackTurn, user_message_events

__all__ = [
    "RUN_ACCEPTED",
    "RUN_RESUME",
    "AgUiTurn",
    "apply_approval_responses",
    "client_tool_interrupt",
    "run_accepted",
    "run_prelude",
    "wire_to_ui_messages",
]

#: ``CUSTOM`` name of the first event of a durable run (``@tanstack/ai`` ``RUN_ACCEPTED_EVENT``).
RUN_ACCEPTED = "run.accepted"
#: ``CUSTOM`` name of the stored ``resume`` of a run that answers interrupts (log only; the
#: client's ``StreamProcessor`` ignores unknown ``CUSTOM`` names).
RUN_RESUME = "run.resume"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def wire_to_ui_messages(wire: Sequence[Any]) -> list[dict[str, Any]]:
    """AG-UI wire messages (``RunAgentInput.messages``) → TanStack ``UIMessage`` dicts.

    The conversion of ``StreamProcessor`` for a ``MESSAGES_SNAPSHOT`` (``@tanstack/ai`` 0.58
    ``aguiSnapshotMessageToUIMessage``, ported in
    :mod:`~resumable_chat.protocols.tanstack.fold`): user ``content`` to text parts,
    ``toolCalls`` to tool-call parts, ``role: "tool"`` results onto their call, reasoning
    fan-out merged back. Entries that already have ``parts`` are kept. Never raises; entries
    that are not objects are dropped. ``createdAt`` comes from the messages' metadata or is
    left to the fold's clock.
    """
    from resumable_chat.protocols.tanstack.fold import fold_tanstack_messages

    entries = [m for m in wire if isinstance(m, dict)]
    return fold_tanstack_messages([{"type": "MESSAGES_SNAPSHOT", "messages": entries}])


def _trailing_tool_messages(wire: Sequence[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in reversed(wire):
        if not isinstance(message, dict) or message.get("role") != "tool":
            break
        out.append(message)
    out.reverse()
    return out


def _owner_of(ui_messages: Sequence[Mapping[str, Any]], tool_call_id: str) -> str | None:
    for message in reversed(ui_messages):
        for part in message.get("parts") or []:
            if (
                isinstance(part, Mapping)
                and part.get("type") == "tool-call"
                and part.get("id") == tool_call_id
            ):
                message_id = message.get("id")
                return message_id if isinstance(message_id, str) else None
    return None


def run_prelude(
    wire: Sequence[Any],
    ui_messages: Sequence[Mapping[str, Any]],
    *,
    resume: Sequence[Any] | None = None,
    parent_run_id: str | None = None,
    timestamp: int | None = None,
) -> list[Chunk]:
    """Records a run stores before its answer (not sent to the client that POSTed).

    Args:
        wire: the request's wire messages.
        ui_messages: the same, converted by :func:`wire_to_ui_messages`.
        resume: ``RunAgentInput.resume`` (``[{interruptId, status, payload?}]``) or ``None``.
        parent_run_id: ``RunAgentInput.parentRunId``.
        timestamp: ms since the epoch for the events (default now).

    Returns:
        When the last message is a user message: ``TEXT_MESSAGE_START`` (role ``user``) /
        ``CONTENT`` / ``END`` of it. When the request ends with ``role: "tool"`` messages (the
        client ran its tools): one ``TOOL_CALL_RESULT {messageId, toolCallId, content, role}``
        per result (``state: "output-error"`` for an ``error``), on the assistant message that
        holds the call. With ``resume``: ``CUSTOM run.resume {parentRunId, resume}``.
    """
    t = _now_ms() if timestamp is None else timestamp
    out: list[Chunk] = []
    last = ui_messages[-1] if ui_messages else None
    last_wire = wire[-1] if wire else None
    if (
        last is not None
        and last.get("role") == "user"
        and isinstance(last_wire, dict)
        and last_wire.get("role") == "user"
    ):
        out += user_message_events(last, t)
    for message in _trailing_tool_messages(wire):
        call_id = message.get("toolCallId")
        if not isinstance(call_id, str) or not call_id:
            continue
        content = message.get("content")
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        event: Chunk = {
            "type": "TOOL_CALL_RESULT",
            "timestamp": t,
            "messageId": _owner_of(ui_messages, call_id) or message.get("id") or call_id,
            "toolCallId": call_id,
            "content": content,
            "role": "tool",
        }
        if message.get("error") is not None:
            event["state"] = "output-error"
        out.append(event)
    if resume:
        value: dict[str, Any] = {"resume": list(resume)}
        if parent_run_id is not None:
            value["parentRunId"] = parent_run_id
        out.append({"type": "CUSTOM", "timestamp": t, "name": RUN_RESUME, "value": value})
    return out


def run_accepted(run_id: str, thread_id: str, parent_run_id: str | None = None) -> Chunk:
    """``CUSTOM run.accepted`` with ``value: {runId, threadId, parentRunId?}``.

    ``@tanstack/ai`` sends ``value: {}``; the ids let a join or a hydrate find the run in the
    log before its ``RUN_STARTED`` (the client reads ``value`` only in ``onCustomEvent``).
    """
    value: dict[str, Any] = {"runId": run_id, "threadId": thread_id}
    if parent_run_id is not None:
        value["parentRunId"] = parent_run_id
    return {"type": "CUSTOM", "timestamp": _now_ms(), "name": RUN_ACCEPTED, "value": value}


def client_tool_interrupt(tool_call_id: str, tool_name: str, input: Any) -> dict[str, Any]:
    """The AG-UI ``Interrupt`` that asks the client to run one of its tools.

    Shape of ``@tanstack/ai`` 0.58 ``chat()`` (``buildActionableInterrupts``): ``{id:
    "client_tool_<toolCallId>", reason: "tanstack:client_tool_execution", message,
    toolCallId, responseSchema: {}, metadata: {kind: "client_tool", toolName, input}}``.
    """
    return {
        "id": f"client_tool_{tool_call_id}",
        "reason": "tanstack:client_tool_execution",
        "message": f"Client tool {tool_name} is ready to run",
        "toolCallId": tool_call_id,
        "responseSchema": {},
        "metadata": {"kind": "client_tool", "toolName": tool_name, "input": input},
    }


class AgUiTurn(TanStackTurn):
    """One durable run: the request's ids on the run events, client tools as interrupts.

    Args:
        run_id: the request's ``runId`` (``X-Run-Id``), set on ``RUN_STARTED``,
            ``RUN_FINISHED`` and ``RUN_ERROR`` whatever the source put there.
        thread_id: the request's ``threadId``, set on the same events.
        parent_run_id: ``RunAgentInput.parentRunId``, set on ``RUN_STARTED`` when given.
        client_tools: names of the tools the client runs itself (``RunAgentInput.tools``).
            A ``RUN_FINISHED`` without an ``outcome`` after calls to them (``TOOL_CALL_END``)
            gets ``outcome: {type: "interrupt", interrupts: [...]}`` (one
            :func:`client_tool_interrupt` per call), so the client runs them and resumes.
    """

    __slots__ = ("_client_calls", "client_tools", "parent_run_id")

    def __init__(
        self,
        run_id: str,
        thread_id: str,
        *,
        parent_run_id: str | None = None,
        client_tools: Iterable[str] = (),
    ) -> None:
        super().__init__(run_id=run_id, thread_id=thread_id)
        self.parent_run_id = parent_run_id
        self.client_tools = frozenset(client_tools)
        self._client_calls: dict[str, tuple[str, Any]] = {}

    def observe(self, chunk: Chunk) -> None:
        """Pin the run's ids, note client tool calls, add their interrupts on the finish."""
        kind = chunk.get("type")
        if kind in ("RUN_STARTED", "RUN_FINISHED", "RUN_ERROR"):
            chunk["runId"] = self.run_id
            chunk["threadId"] = self.thread_id
            if kind == "RUN_STARTED" and self.parent_run_id is not None:
                chunk.setdefault("parentRunId", self.parent_run_id)
            if kind == "RUN_ERROR":
                metadata = chunk.get("metadata")
                tanstack = metadata.get("tanstack") if isinstance(metadata, dict) else None
                if isinstance(tanstack, dict):
                    tanstack["runId"] = self.run_id
                    tanstack["threadId"] = self.thread_id
        elif kind == "TOOL_CALL_START":
            self._client_calls.pop(str(chunk.get("toolCallId")), None)
        elif kind == "TOOL_CALL_END":
            name = chunk.get("toolCallName", chunk.get("toolName"))
            call_id = chunk.get("toolCallId")
            if isinstance(name, str) and name in self.client_tools and isinstance(call_id, str):
                self._client_calls[call_id] = (name, chunk.get("input", {}))
        elif kind == "TOOL_CALL_RESULT":
            self._client_calls.pop(str(chunk.get("toolCallId")), None)
        if kind == "RUN_FINISHED" and self._client_calls and chunk.get("outcome") is None:
            chunk["outcome"] = {
                "type": "interrupt",
                "interrupts": [
                    client_tool_interrupt(call_id, name, tool_input)
                    for call_id, (name, tool_input) in self._client_calls.items()
                ],
            }
            self._client_calls.clear()
        super().observe(chunk)


def apply_approval_responses(
    messages: list[dict[str, Any]], chunks: Iterable[Chunk]
) -> list[dict[str, Any]]:
    """Show the approvals answered in stored ``CUSTOM run.resume`` records on ``messages``.

    For each resume item whose ``payload.approved`` is a boolean, the tool-call part whose
    ``approval.id`` is the ``interruptId`` gets ``approval.approved`` and, while it is still
    ``approval-requested``, state ``approval-responded``: what the client's
    ``addToolApprovalResponse`` does when the user answers. Later states (``complete``...)
    are kept. Returns ``messages`` (changed in place).
    """
    decisions: dict[str, bool] = {}
    for chunk in chunks:
        if chunk.get("type") != "CUSTOM" or chunk.get("name") != RUN_RESUME:
            continue
        value = chunk.get("value")
        items = value.get("resume") if isinstance(value, dict) else None
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            payload = item.get("payload")
            approved = payload.get("approved") if isinstance(payload, dict) else None
            interrupt_id = item.get("interruptId")
            if isinstance(approved, bool) and isinstance(interrupt_id, str):
                decisions[interrupt_id] = approved
    if not decisions:
        return messages
    for message in messages:
        for part in message.get("parts") or []:
            if not isinstance(part, dict) or part.get("type") != "tool-call":
                continue
            approval = part.get("approval")
            if not isinstance(approval, dict) or approval.get("id") not in decisions:
                continue
            part["approval"] = {**approval, "approved": decisions[approval["id"]]}
            if part.get("state") == "approval-requested":
                part["state"] = "approval-responded"
    return messages
