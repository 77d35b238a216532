"""AI SDK or TanStack ``UIMessage`` history → OpenAI chat-completions ``messages``, or the
Responses API ``input`` (:func:`to_responses_input`).

The other direction of :mod:`resumable_chat.sources.openai_chat`: what a route hands the
model. Text parts become ``content``; an assistant's tool parts (``tool-<name>`` and
``dynamic-tool``) become ``tool_calls``, and those with an output (state
``output-available`` or ``output-error``) are followed by ``role: "tool"`` results, as the
OpenAI chat-completions API expects. TanStack messages work too: text parts with
``content``, ``tool-call`` parts (``id``, ``name``, ``arguments``) and ``tool-result`` parts.
Files a user attached (AI SDK ``file`` parts, TanStack ``image``/``audio``/``document`` parts)
go with the user's text as content parts (:mod:`resumable_chat.sources.attachments`: images,
WAV and MP3 audio, PDFs). Reasoning, thinking, sources, data parts and an assistant's files
are not sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from resumable_chat.sources.attachments import (
    Attachment,
    attachment_of,
    chat_content_part,
    responses_content_part,
)

__all__ = ["to_openai_messages", "to_responses_input"]


def _text(parts: Iterable[Mapping[str, Any]]) -> str:
    # AI SDK text parts carry ``text``; TanStack text parts carry ``content``.
    out = []
    for part in parts:
        if part.get("type") == "text":
            value = part.get("text", part.get("content"))
            if isinstance(value, str):
                out.append(value)
    return "".join(out)


#: An API's content part for an attachment (or ``None``: the API cannot take it), given the
#: part's index in its message.
_AttachmentPart = Callable[[Attachment, int], "dict[str, Any] | None"]


def _user_content(
    parts: list[Mapping[str, Any]], attach: _AttachmentPart
) -> str | list[dict[str, Any]]:
    """A user message's ``content``: its text, or, when it carries attachments the API can
    take, its parts in order (``{"type": "text", "text"}`` per non-empty text part, and
    each attachment's content part from ``attach``, as the AI SDK's OpenAI provider sends
    them)."""
    content: list[dict[str, Any]] = []
    attached = False
    for index, part in enumerate(parts):
        if part.get("type") == "text":
            value = part.get("text", part.get("content"))
            if isinstance(value, str) and value:
                content.append({"type": "text", "text": value})
            continue
        attachment = attachment_of(part)
        item = None if attachment is None else attach(attachment, index)
        if item is not None:
            content.append(item)
            attached = True
    return content if attached else _text(parts)


def to_openai_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Convert AI SDK or TanStack ``UIMessage`` dicts into OpenAI chat ``messages``.

    ``system`` messages keep their text; ``user`` messages too, or, when they carry
    attachments chat completions can take (images, WAV or MP3 audio as data URLs, PDFs as
    data URLs), a list of content parts in the message's order (text parts as ``{"type":
    "text", "text"}``; attachments as :func:`~resumable_chat.sources.attachments.chat_content_part`
    gives them). ``assistant`` messages carry their text (or ``None``) and ``tool_calls``,
    followed by one ``tool`` message per finished call. Messages with another role are
    skipped. Never raises on odd parts: they are ignored.

    Args:
        messages: ``{id, role, parts}`` dicts, as the routes pass them to a source: AI SDK
            parts (``text`` with ``text``, ``tool-<name>`` / ``dynamic-tool``) or TanStack
            parts (``text`` with ``content``, ``tool-call``, ``tool-result``); a user's
            attachments as AI SDK ``file`` parts or TanStack ``image``, ``audio`` and
            ``document`` parts.

    Returns:
        A new list of ``{"role", "content"[, "tool_calls"]}`` (a user's ``content`` a
        string, or a list of content parts when it has attachments) and ``{"role": "tool",
        "tool_call_id", "content"}`` dicts for ``chat.completions.create(messages=...)``.
    """
    return _convert(messages, chat_content_part)


def _convert(
    messages: Iterable[Mapping[str, Any]], attach: _AttachmentPart
) -> list[dict[str, Any]]:
    """:func:`to_openai_messages`, a user's attachments as ``attach`` gives them."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        parts = [p for p in message.get("parts") or [] if isinstance(p, Mapping)]
        if role == "system":
            out.append({"role": role, "content": _text(parts)})
            continue
        if role == "user":
            out.append({"role": role, "content": _user_content(parts, attach)})
            continue
        if role != "assistant":
            continue
        calls: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for part in parts:
            kind = str(part.get("type", ""))
            if kind == "tool-call":  # TanStack: {id, name, arguments, output?}
                call_id = str(part.get("id", ""))
                arguments = part.get("arguments") or "{}"
                function = {"name": part.get("name"), "arguments": arguments}
                calls.append({"id": call_id, "type": "function", "function": function})
                continue
            if kind == "tool-result":  # TanStack: {toolCallId, content}
                content = part.get("content")
                results.append(
                    {
                        "role": "tool",
                        "tool_call_id": str(part.get("toolCallId", "")),
                        "content": content if isinstance(content, str) else json.dumps(content),
                    }
                )
                continue
            if not (kind.startswith("tool-") or kind == "dynamic-tool"):
                continue
            call_id = str(part.get("toolCallId", ""))
            name = part.get("toolName") if kind == "dynamic-tool" else kind[len("tool-") :]
            arguments = json.dumps(part.get("input") or {}, ensure_ascii=False)
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
            state = part.get("state")
            if state == "output-available":
                content = json.dumps(part.get("output"), ensure_ascii=False)
            elif state == "output-error":
                content = json.dumps({"error": part.get("errorText")}, ensure_ascii=False)
            else:
                continue
            results.append({"role": "tool", "tool_call_id": call_id, "content": content})
        entry: dict[str, Any] = {"role": "assistant", "content": _text(parts) or None}
        if calls:
            entry["tool_calls"] = calls
        out.append(entry)
        out.extend(results)
    return out


def to_responses_input(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Convert AI SDK or TanStack ``UIMessage`` dicts into an OpenAI Responses ``input`` list.

    The same messages as :func:`to_openai_messages`, in the Responses item form
    (https://platform.openai.com/docs/api-reference/responses/create): text as
    ``{"role", "content": [{"type": "input_text" | "output_text", "text"}]}``, an assistant's
    user's attachments as ``input_image`` and ``input_file`` parts among the text
    (:func:`~resumable_chat.sources.attachments.responses_content_part`), an assistant's
    tool calls as ``{"type": "function_call", "call_id", "name", "arguments"}`` and their
    results as ``{"type": "function_call_output", "call_id", "output"}``. Calls of tools the
    provider ran itself (``providerExecuted``, e.g. web search) are left out: the provider
    has their results already.

    Args:
        messages: ``{id, role, parts}`` dicts, as the routes pass them to a source.

    Returns:
        A new list for ``client.responses.create(input=...)``. Never raises on odd parts.
    """
    own_calls = [
        {
            **message,
            "parts": [
                p
                for p in message.get("parts") or []
                if not (isinstance(p, Mapping) and p.get("providerExecuted"))
            ],
        }
        for message in messages
    ]
    out: list[dict[str, Any]] = []
    for entry in _convert(own_calls, responses_content_part):
        role = entry["role"]
        if role == "tool":
            out.append(
                {
                    "type": "function_call_output",
                    "call_id": entry["tool_call_id"],
                    "output": entry["content"],
                }
            )
            continue
        content = entry.get("content")
        if isinstance(content, list):  # a user's text and attachments
            parts = [
                {"type": "input_text", "text": p["text"]} if p["type"] == "text" else p
                for p in content
            ]
            out.append({"role": role, "content": parts})
        elif content:
            kind = "output_text" if role == "assistant" else "input_text"
            out.append({"role": role, "content": [{"type": kind, "text": content}]})
        for call in entry.get("tool_calls", []):
            out.append(
                {
                    "type": "function_call",
                    "call_id": call["id"],
                    "name": call["function"]["name"],
                    "arguments": call["function"]["arguments"],
                }
            )
    return out
