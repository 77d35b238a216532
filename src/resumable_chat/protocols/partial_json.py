"""Partial JSON for streamed tool arguments, as each client parses it, on a library.

A tool call's arguments arrive as JSON text in deltas; while it is cut off the clients show
what has arrived so far. Both folds parse those prefixes through the ``partial-json-parser``
package (``Allow.ALL``), with the few rules each client adds on top:

- AI SDK ``parsePartialJson`` (``packages/ai/src/util/parse-partial-json.ts`` with
  ``fix-json.ts``): a complete value is parsed as it is, text after a complete top-level
  value is ignored, ``__proto__`` / ``constructor`` / ``prototype`` keys are dropped
  (``secure-json-parse``), nothing parseable gives ``undefined``.
- TanStack ``parsePartialJSON`` (``@tanstack/ai``, on the ``partial-json`` npm package):
  the text is trimmed first; empty or unparseable gives ``undefined``.

Strings cut inside a ``\\uXXXX`` surrogate pair keep a lone surrogate in JavaScript; here it
becomes U+FFFD, so the result can always be encoded as UTF-8. Malformed (not merely cut) text
may differ from the clients: ``partial-json`` salvages some syntax errors that the library
refuses (the result is then ``undefined``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from partial_json_parser import Allow, loads

from resumable_chat.protocols.js_values import UNDEFINED, js_trim
from resumable_chat.scalar_values import scalar_value_json

__all__ = ["ai_sdk_partial_json", "tanstack_partial_json"]

_NUMBER_CUT_AT_POINT = re.compile(r"-?\d+\.$")
_TRAILING_SPACES = re.compile(r" +$")
_DANGEROUS_KEYS = frozenset({"__proto__", "constructor", "prototype"})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _clean(value: Any, *, drop_dangerous: bool) -> Any:
    """Lone surrogates → U+FFFD (recursively); dangerous keys dropped when asked."""
    if isinstance(value, str):
        return scalar_value_json(value)
    if isinstance(value, dict):
        return {
            _clean(k, drop_dangerous=False): _clean(v, drop_dangerous=drop_dangerous)
            for k, v in value.items()
            if not (drop_dangerous and k in _DANGEROUS_KEYS)
        }
    if isinstance(value, list):
        return [_clean(v, drop_dangerous=drop_dangerous) for v in value]
    return value


def ai_sdk_partial_json(text: str) -> Any:
    """The AI SDK's ``parsePartialJson(text).value``.

    Args:
        text: the tool call's argument text so far.

    Returns:
        The parsed value, or :data:`~resumable_chat.protocols.js_values.UNDEFINED` when
        nothing parses.
    """
    try:
        return _clean(json.loads(text, parse_constant=_reject_constant), drop_dangerous=True)
    except (ValueError, RecursionError):
        pass
    stripped = text.lstrip(" \t\n\r")
    try:
        value, _ = json.JSONDecoder(parse_constant=_reject_constant).raw_decode(stripped)
    except (ValueError, RecursionError):
        value = _loads_keeping_trailing_spaces(stripped)
        if value is UNDEFINED:
            return UNDEFINED
    if _has_non_finite(value):
        return UNDEFINED  # JSON has no Infinity / NaN; the AI SDK's parse fails on them
    return _clean(value, drop_dangerous=True)


def _loads_keeping_trailing_spaces(text: str) -> Any:
    """``loads(text, Allow.ALL)``, but a string cut after spaces keeps them (the library
    trims its input; inside a string the AI SDK keeps them): the trailing spaces are tried
    first as ``\\u0020`` escapes, which parse only inside a string."""
    trailing = _TRAILING_SPACES.search(text)
    if trailing is not None:
        escaped = "".join(f"\\u{ord(ch):04x}" for ch in trailing.group())
        try:
            return loads(text[: trailing.start()] + escaped, Allow.ALL)
        except (Exception, RecursionError):
            pass
    try:
        return loads(text, Allow.ALL)
    except (Exception, RecursionError):
        return UNDEFINED


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def tanstack_partial_json(value: object) -> Any:
    """``parsePartialJSON`` of ``@tanstack/ai`` (``partial-json``, ``Allow.ALL``).

    Args:
        value: the argument text so far (anything else gives ``undefined``).

    Returns:
        The parsed value, or :data:`~resumable_chat.protocols.js_values.UNDEFINED`.
    """
    if not isinstance(value, str):
        return UNDEFINED
    text = js_trim(value)
    if not text:
        return UNDEFINED
    # ``partial-json`` drops a number cut right after its decimal point; the library would
    # keep its integer part
    text = _NUMBER_CUT_AT_POINT.sub("", text)
    try:
        return _clean(loads(text, Allow.ALL), drop_dangerous=False)
    except (Exception, RecursionError):
        return UNDEFINED
