"""Strings as UTF-8 can hold them.

A Python ``str`` can hold surrogate code points (U+D800 to U+DFFF) on their own: JSON's
``"\\ud83d"`` escape parses to one, and so does a string a JavaScript peer cut inside an
emoji. UTF-8 cannot encode them, so such a string cannot be stored in an S2 record or sent
as UTF-8 SSE. JavaScript meets the same strings when it encodes text: ``TextEncoder`` (and
Node's ``Buffer.from``) first make the string a *scalar value string*
(https://infra.spec.whatwg.org/#javascript-string-convert, used by the UTF-8 encoder of
https://encoding.spec.whatwg.org/#utf-8-encoder): a high surrogate followed by a low one is
the character the pair encodes, any other surrogate becomes U+FFFD. The functions here do
the same, so that a source's text is stored and sent instead of failing its answer: a text
stream exactly as the JavaScript package stores it; a chat chunk as ``TextEncoder`` would
encode it (a JavaScript chat server's ``JSON.stringify`` writes a lone surrogate as a
``\\uXXXX`` escape instead, which a Python history fold or JSON response could not encode).
"""

from __future__ import annotations

from typing import Any

__all__ = ["scalar_value_json", "scalar_value_string"]


def scalar_value_string(text: str) -> str:
    """``text`` as a scalar value string: each surrogate pair (a high surrogate followed by
    a low one) made the character it encodes, each other surrogate U+FFFD.

    Args:
        text: any string.

    Returns:
        A string UTF-8 can encode. Its length in UTF-16 code units is that of ``text`` (a
        pair of code points becomes one character of two units; U+FFFD is one unit, as the
        lone surrogate was). Never raises.
    """
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def scalar_value_json(value: Any) -> Any:
    """``value`` (a JSON value: dicts, lists, strings, numbers, booleans, ``None``) with
    every string, object keys included, made a scalar value string
    (:func:`scalar_value_string`).

    Args:
        value: the JSON value; nested dicts and lists are walked.

    Returns:
        ``value`` itself when no string in it holds a surrogate; otherwise a copy (the
        input is not changed) in which the dicts and lists on the way to such a string are
        new and everything else is shared. Other types pass through as they are. Raises
        ``RecursionError`` for nesting deeper than the interpreter's recursion limit.
    """
    if isinstance(value, str):
        return scalar_value_string(value) if _has_surrogate(value) else value
    if isinstance(value, dict):
        items = [(scalar_value_json(k), scalar_value_json(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if isinstance(value, list):
        cleaned = [scalar_value_json(item) for item in value]
        if all(new is old for new, old in zip(cleaned, value, strict=True)):
            return value
        return cleaned
    return value
