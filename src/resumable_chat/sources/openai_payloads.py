"""Reading OpenAI streaming payloads: chunk objects to dicts, token usage, tool-call arguments.

Shared by the chat-completions and Responses API sources (``openai`` SDK objects, ``litellm``
objects, mappings, or the JSON text of an SSE ``data`` line).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from resumable_chat.model_events import TokenUsage, ToolCall, ToolCallFailed

__all__ = [
    "as_payload_dict",
    "finished_tool_call",
    "json_int",
    "openai_token_usage",
    "parse_tool_arguments",
]

logger = logging.getLogger("resumable_chat.sources")


def as_payload_dict(raw: object) -> dict[str, Any] | None:
    """One provider chunk or event as a dict.

    Args:
        raw: a mapping, an object with ``model_dump()`` (``openai`` SDK / ``litellm`` types),
            or JSON text (``str`` / ``bytes``) of one object.

    Returns:
        The dict, or ``None`` when ``raw`` is none of these or does not hold an object (a
        failing ``model_dump()`` is logged). Never raises.
    """
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, Mapping):
        return dict(raw)
    dump = getattr(raw, "model_dump", None)
    if callable(dump):
        try:
            dumped = dump()
        except Exception:
            logger.warning("model_dump() of a %s failed; chunk skipped", type(raw).__name__)
            return None
        return dumped if isinstance(dumped, dict) else None
    if isinstance(raw, str | bytes | bytearray):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def json_int(value: object) -> int | None:
    """``value`` if it is a JSON integer (not a bool), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def openai_token_usage(usage: Mapping[str, Any]) -> TokenUsage:
    """An OpenAI ``usage`` object as neutral token counts.

    Args:
        usage: chat completions' ``{prompt_tokens, completion_tokens, total_tokens,
            prompt_tokens_details?: {cached_tokens}, completion_tokens_details?:
            {reasoning_tokens}}`` or the Responses API's ``{input_tokens, output_tokens,
            total_tokens, input_tokens_details?: {cached_tokens}, output_tokens_details?:
            {reasoning_tokens}}`` (https://platform.openai.com/docs/api-reference/responses/object).

    Returns:
        The counts that are integers; the others ``None``. Never raises.
    """

    def first(*names: str) -> int | None:
        for name in names:
            value = json_int(usage.get(name))
            if value is not None:
                return value
        return None

    def detail(containers: tuple[str, ...], name: str) -> int | None:
        for container in containers:
            details = usage.get(container)
            if isinstance(details, Mapping) and json_int(details.get(name)) is not None:
                return json_int(details.get(name))
        return None

    return TokenUsage(
        input_tokens=first("prompt_tokens", "input_tokens"),
        output_tokens=first("completion_tokens", "output_tokens"),
        total_tokens=first("total_tokens"),
        reasoning_tokens=detail(
            ("completion_tokens_details", "output_tokens_details"), "reasoning_tokens"
        ),
        cached_input_tokens=detail(
            ("prompt_tokens_details", "input_tokens_details"), "cached_tokens"
        ),
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_tool_arguments(text: str) -> tuple[bool, Any, str]:
    """Parse a finished tool call's argument text.

    Args:
        text: the JSON text the model streamed.

    Returns:
        ``(True, value, "")``, or ``(False, None, problem)`` when it is not JSON. Empty (or
        all-whitespace) arguments mean ``{}``: providers send ``""`` for tools without
        parameters. ``NaN`` / ``Infinity`` are refused, as JavaScript's ``JSON.parse`` does.
    """
    if not text.strip():
        return True, {}, ""
    try:
        return True, json.loads(text, parse_constant=_reject_constant), ""
    except ValueError as exc:
        return False, None, str(exc)


def finished_tool_call(call_id: str, name: str, arguments: str) -> ToolCall | ToolCallFailed:
    """The event that closes a streamed (started) client-side tool call.

    Args:
        call_id: the call's id.
        name: the tool's name.
        arguments: the whole argument text.

    Returns:
        :class:`~resumable_chat.model_events.ToolCall` with the parsed arguments, or
        :class:`~resumable_chat.model_events.ToolCallFailed` with the raw text when they are
        not valid JSON.
    """
    ok, value, problem = parse_tool_arguments(arguments)
    if ok:
        return ToolCall(call_id, name, value)
    return ToolCallFailed(
        call_id,
        name,
        arguments,
        f"Invalid JSON in tool call arguments: {problem}",
        started=True,
    )
