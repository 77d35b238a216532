"""``on_error`` policies: what text a protocol's error chunk carries when the model stream fails."""

from __future__ import annotations

import json
from typing import Any

from resumable_chat.chat.dialect import DEFAULT_ERROR_TEXT

__all__ = ["default_error_text", "detailed_error_text"]


def default_error_text(error: BaseException | dict[str, Any]) -> str:
    """The default ``on_error`` policy: a generic, safe message.

    Args:
        error: the exception raised by the stream, or the provider's error object (the
            ``error`` member of an in-stream error payload, or the whole payload).

    Returns:
        :data:`DEFAULT_ERROR_TEXT` whatever the error is, so nothing from the provider (or from
        a traceback) reaches the client. Never raises.
    """
    return DEFAULT_ERROR_TEXT


def detailed_error_text(error: BaseException | dict[str, Any]) -> str:
    """An ``on_error`` policy for development: the provider's message.

    Args:
        error: an exception, or a provider error object such as
            ``{"message": "...", "type": "...", "code": "tool_use_failed", ...}``.

    Returns:
        ``"<ExceptionType>: <message>"`` for an exception; for an error object its ``message``
        (with ``" (code)"`` appended when there is a ``code``), else its compact JSON. Do not
        use in production: provider messages can contain request details. Never raises.
    """
    if isinstance(error, BaseException):
        text = str(error)
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    message = error.get("message")
    code = error.get("code")
    if isinstance(message, str) and message:
        return f"{message} ({code})" if isinstance(code, str | int) and code != "" else message
    try:
        return json.dumps(error, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return DEFAULT_ERROR_TEXT
