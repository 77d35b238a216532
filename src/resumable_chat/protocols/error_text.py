"""``on_error`` policies: what text a protocol's error chunk carries when the model stream fails."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from resumable_chat.chat.dialect import DEFAULT_ERROR_TEXT

__all__ = ["ErrorTextPolicy", "apply_error_policy", "default_error_text", "detailed_error_text"]

logger = logging.getLogger("resumable_chat.protocols")

#: Maps a model failure (the exception its stream raised, or the provider's error object) to a
#: string the protocol sends: an error text, or (TanStack) an error code.
ErrorTextPolicy = Callable[[BaseException | dict[str, Any]], str]


def apply_error_policy(
    policy: ErrorTextPolicy, error: BaseException | dict[str, Any], fallback: str
) -> str:
    """``policy(error)`` as a string; ``fallback`` when the policy raises (logged), so a
    faulty policy never breaks the stream that reports the failure.

    Args:
        policy: an ``on_error`` / ``on_error_code`` policy.
        error: the failure it describes.
        fallback: the string used when ``policy`` raises an ``Exception``.

    Returns:
        The policy's result (non-strings through ``str()``), or ``fallback``. Never raises an
        ``Exception``.
    """
    try:
        value = policy(error)
    except Exception:
        logger.exception("an error policy raised; using %r", fallback)
        return fallback
    return value if isinstance(value, str) else str(value)


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
